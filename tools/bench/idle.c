/*
 * Idle: open N connections, each through one S-byte echo, hold them for the
 * duration, then one more echo on each before they close. What it measures
 * is on the server's side (memory per held connection); here it counts the
 * opening rate, and a connection the server dropped while held.
 */
#include <stdio.h>

#include "bench.h"

static void idle_established(struct conn *c, uint64_t now)
{
	c->target = opt.size;
}

static int idle_readable(struct conn *c, uint64_t before, uint64_t now)
{
	if (c->recvd == c->target) {
		if (!c->primed) {
			hist_record(&g.interval, now - c->t_start);
			conn_primed(c);
		}
		g.msgs++;
	}
	return 0;
}

/* One more echo on every held connection: it proves it is still served. */
static void idle_begin_drain(struct conn *c, uint64_t now)
{
	c->target += opt.size;
	c->t_progress = now;
	conn_write(c);
}

static void idle_compute(struct result *r)
{
	r->window = (double)(g.t_end - g.t_measure) / NS_PER_S;
	r->msgs = g.opened;
	r->bytes = (uint64_t)g.opened * opt.size;
	r->conns_per_s = r->open_s > 0 ? g.opened / r->open_s : 0;
	r->msgs_per_s = r->conns_per_s;
	r->mb_per_s = r->conns_per_s * (double)opt.size / 1e6;
	r->cpu = 0;
}

static void idle_report(const struct result *r)
{
	char a[32];

	report_size("message size");
	printf("  %-16s %.3f s, %s still open at the end\n", "held", r->window,
	       fmt_count(a, sizeof(a), g.held));
	printf("  %-16s %s conn/s\n", "opening rate",
	       fmt_count(a, sizeof(a), (uint64_t)(r->conns_per_s + 0.5)));
}

const struct bench_mode mode_idle = {
	.name = "idle",
	.unit = "conn",
	.latency_label = "open+echo (us)",
	.flags = BM_HOLDS,
	.start = conn_start,
	.on_event = conn_event,
	.on_established = idle_established,
	.on_readable = idle_readable,
	.begin_drain = idle_begin_drain,
	.compute = idle_compute,
	.report = idle_report,
	.json = json_conns_per_s,
};
