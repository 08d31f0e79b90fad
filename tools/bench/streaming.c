/*
 * Streaming: N connections, each writing S-byte chunks as fast as the
 * socket takes them while reading the echo back. Measures bytes, not
 * messages: the chunks are cut and merged on the way, so there is no
 * message to time.
 */
#include <stdio.h>

#include "bench.h"

static void st_established(struct conn *c, uint64_t now)
{
	/* A small first echo proves the connection before the load starts,
	 * without a full chunk per connection in flight while opening. */
	c->target = opt.size < STREAM_PRIME ? opt.size : STREAM_PRIME;
}

static int st_readable(struct conn *c, uint64_t before, uint64_t now)
{
	if (!c->primed && c->recvd == c->target)
		conn_primed(c);
	return 0;
}

static int st_writable(struct conn *c)
{
	if (!issuing())
		return 0;
	c->target += opt.size;
	return 1;
}

static void st_begin_load(struct conn *c, uint64_t now)
{
	conn_write(c);
}

static void st_begin_drain(struct conn *c, uint64_t now)
{
	if (c->target > c->sent)
		c->target = c->sent; /* drop the rest of the chunk */
}

static void st_compute(struct result *r)
{
	r->msgs_per_s = 0;
	r->msgs = 0;
}

static void st_report(const struct result *r)
{
	report_size("write size");
	report_measured(r);
	printf("  %-16s %.1f MB/s (%.3f MB echoed)\n", "throughput", r->mb_per_s,
	       (double)r->bytes / 1e6);
	report_cpu(r);
}

const struct bench_mode mode_stream = {
	.name = "stream",
	.unit = "MB",
	.latency_label = "open+echo (us)",
	.flags = BM_NODELAY | BM_ENDLESS,
	.default_size = 64u << 10,
	.start = conn_start,
	.on_event = conn_event,
	.on_established = st_established,
	.on_readable = st_readable,
	.on_writable = st_writable,
	.begin_load = st_begin_load,
	.begin_drain = st_begin_drain,
	.compute = st_compute,
	.report = st_report,
};
