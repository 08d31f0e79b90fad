/*
 * Connect storm: K slots, each repeating: open a connection, send S bytes,
 * read them back, close. The latency runs from socket() to the verified
 * echo, so it includes the handshake and the server's accept.
 */
#include "bench.h"

static void cs_established(struct conn *c, uint64_t now)
{
	c->target = opt.size;
}

static int cs_readable(struct conn *c, uint64_t before, uint64_t now)
{
	if (c->recvd < c->target)
		return 0;
	hist_record(&g.interval, now - c->t_start);
	g.msgs++;
	g.conns_done++;
	conn_close(c, C_FREE);
	if (issuing())
		conn_start(c, now);
	return -1;
}

static void cs_report(const struct result *r)
{
	report_size("message size");
	report_measured(r);
	report_rate(r, "connections");
	report_cpu(r);
}

const struct bench_mode mode_connect = {
	.name = "connect",
	.unit = "conn",
	.latency_label = "conn+echo (us)",
	.flags = BM_RECYCLES,
	.start = conn_start,
	.on_event = conn_event,
	.on_established = cs_established,
	.on_readable = cs_readable,
	.report = cs_report,
	.json = json_conns_per_s,
};
