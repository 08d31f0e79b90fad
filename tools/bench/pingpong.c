/*
 * Ping-pong: N connections, each keeping P messages of S bytes in flight;
 * when a message has come back in full the next one is issued. With P > 1
 * the messages completed by one read are replaced by one write, as a
 * pipelining client would. The latency of a message runs from its issue to
 * the arrival of its last byte.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

/* Issue k more messages on c: their issue times go into the ring ts[]. */
static void pp_issue(struct conn *c, uint64_t k, uint64_t now)
{
	uint64_t m = c->target / opt.size, i;

	for (i = 0; i < k; i++)
		c->ts[(m + i) % opt.pipeline] = now;
	c->target += k * opt.size;
}

static void pp_setup(void)
{
	/* One block for all rings: a slot's ring outlives its connections. */
	uint64_t *ts = calloc((size_t)opt.conns * opt.pipeline, sizeof(*ts));
	unsigned i;

	if (!ts)
		fatal("out of memory");
	for (i = 0; i < opt.conns; i++)
		g.conns[i].ts = ts + (size_t)i * opt.pipeline;
}

static void pp_cleanup(void)
{
	free(g.conns[0].ts);
}

static void pp_established(struct conn *c, uint64_t now)
{
	pp_issue(c, 1, now);
}

static int pp_readable(struct conn *c, uint64_t before, uint64_t now)
{
	uint64_t m0 = before / opt.size, m1 = c->recvd / opt.size, m;

	if (m1 == m0)
		return 0;
	if (!c->primed) {
		conn_primed(c); /* message 0 opened the connection */
		m0 = 1;
	}
	for (m = m0; m < m1; m++)
		hist_record(&g.interval, now - c->ts[m % opt.pipeline]);
	g.msgs += m1 - m0;
	if (issuing())
		pp_issue(c, m1 - m0, now);
	return 0;
}

static void pp_begin_load(struct conn *c, uint64_t now)
{
	pp_issue(c, opt.pipeline, now);
	conn_write(c);
}

static void pp_report(const struct result *r)
{
	printf("  %-16s %u message%s per connection\n", "in flight", opt.pipeline,
	       opt.pipeline == 1 ? "" : "s");
	report_size("message size");
	report_measured(r);
	report_rate(r, "messages");
	report_cpu(r);
}

const struct bench_mode mode_pingpong = {
	.name = "pingpong",
	.unit = "msg",
	.latency_label = "latency (us)",
	.flags = BM_NODELAY | BM_WINDOW,
	.setup = pp_setup,
	.cleanup = pp_cleanup,
	.start = conn_start,
	.on_event = conn_event,
	.on_established = pp_established,
	.on_readable = pp_readable,
	.begin_load = pp_begin_load,
	.report = pp_report,
};
