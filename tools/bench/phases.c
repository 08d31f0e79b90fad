/*
 * The phases of a run: open the connections (each through one echo), warm
 * up, measure, or hold (idle), then drain. Also the stall scan, which turns
 * a connection that waits too long for its echo into a counted error rather
 * than a hung run.
 */
#include <inttypes.h>
#include <string.h>

#include "bench.h"

void snapshot(struct counters *s, uint64_t now)
{
	s->t = now;
	s->msgs = g.msgs;
	s->bytes_rx = g.bytes_rx;
	s->bytes_tx = g.bytes_tx;
	s->conns_done = g.conns_done;
	s->cpu = cpu_seconds();
}

/* Move the latencies of the current interval into the total, or drop them. */
void hist_flush(int keep)
{
	if (keep)
		hist_merge(&g.total, &g.interval);
	hist_reset(&g.interval);
}

void open_more(uint64_t now)
{
	while (g.opening < opt.open_concurrency && g.next_open < opt.conns)
		opt.mode->start(&g.conns[g.next_open++], now);
}

void begin_measure(uint64_t now)
{
	g.phase = PH_MEASURE;
	hist_flush(0);
	hist_reset(&g.total);
	g.measuring = 1;
	snapshot(&g.m0, now);
	g.t_measure = now;
	g.t_deadline = now + (uint64_t)(opt.duration * NS_PER_S);
	note("measuring for %.3g s", opt.duration);
}

static void begin_drain(uint64_t now)
{
	unsigned i;

	g.phase = PH_DRAIN;
	/* Connections that make no progress for the stall time are counted
	 * by stall_scan(); this only bounds a drain that creeps along. */
	g.t_deadline = now + (uint64_t)(3 * opt.stall * NS_PER_S);
	if (opt.mode->flags & BM_HOLDS) {
		g.held = 0;
		for (i = 0; i < opt.conns; i++)
			if (g.conns[i].state == C_OPEN)
				g.held++;
	}
	for (i = 0; i < opt.conns; i++) {
		struct conn *c = &g.conns[i];

		if (c->state == C_OPEN && opt.mode->begin_drain)
			opt.mode->begin_drain(c, now);
	}
	note("draining");
}

static void end_measure(uint64_t now)
{
	hist_flush(1);
	g.measuring = 0;
	snapshot(&g.m1, now);
	g.t_end = now;
	begin_drain(now);
}

static void end_hold(uint64_t now)
{
	g.t_end = now;
	begin_drain(now);
}

static void end_open(uint64_t now)
{
	unsigned i;

	for (i = 0; i < opt.conns; i++) {
		struct conn *c = &g.conns[i];

		if (c->state == C_DEAD || c->primed)
			continue;
		if (!c->stalled)
			g.not_opened++;
		if (c->state == C_FREE)
			c->state = C_DEAD; /* never started */
		else
			conn_close(c, C_DEAD);
	}
	g.retryq_n = 0;
	g.t_opened = now;
	note("opened %u of %u connections in %.3f s", g.opened, opt.conns,
	     (double)(now - g.t_begin) / NS_PER_S);
	if (g.opened == 0) {
		progress_clear();
		if (g.first_errno)
			fatal("no connection to %s could be opened: %s", opt.target,
			      strerror(g.first_errno));
		if (g.stalled)
			fatal("no connection to %s could be opened: no echo within "
			      "%g s (%" PRIu64 " connections stalled)",
			      opt.target, opt.stall, g.stalled);
		fatal("no connection to %s could be opened within %g s", opt.target,
		      opt.open_timeout);
	}
	if (opt.mode->flags & BM_HOLDS) {
		hist_flush(1);
		g.measuring = 0;
		g.phase = PH_HOLD;
		g.t_measure = now;
		g.t_deadline = now + (uint64_t)(opt.duration * NS_PER_S);
		note("holding %u connections for %.3g s", g.opened, opt.duration);
		return;
	}
	g.phase = PH_WARMUP;
	g.t_deadline = now + (uint64_t)(opt.warmup * NS_PER_S);
	note("warming up for %.3g s", opt.warmup);
	for (i = 0; i < opt.conns; i++) {
		struct conn *c = &g.conns[i];

		if (c->state != C_OPEN)
			continue;
		c->t_progress = now;
		opt.mode->begin_load(c, now);
	}
}

static int drain_done(void)
{
	unsigned i;

	if (opt.mode->flags & BM_RECYCLES)
		return g.active == 0;
	for (i = 0; i < opt.conns; i++) {
		const struct conn *c = &g.conns[i];

		if (c->state == C_OPEN && c->recvd < c->target && !c->stalled)
			return 0;
	}
	return 1;
}

void stall_scan(uint64_t now)
{
	uint64_t limit = (uint64_t)(opt.stall * NS_PER_S);
	unsigned i;

	for (i = 0; i < opt.conns; i++) {
		struct conn *c = &g.conns[i];
		int waiting;

		if (c->state == C_FREE || c->state == C_DEAD)
			continue;
		if (c->state == C_OPEN && opt.mode->scan) {
			opt.mode->scan(c, now);
			if (c->state != C_OPEN)
				continue;
		}
		waiting = c->state != C_OPEN || c->recvd < c->target;
		if (!waiting || now < c->t_progress || now - c->t_progress < limit)
			continue;
		if (!c->stalled) {
			c->stalled = 1;
			g.stalled++;
			if (g.stalled <= 10)
				note("connection %u: no echo for %.3g s (%" PRIu64
				     " of %" PRIu64 " %s back)",
				     i, (double)(now - c->t_progress) / NS_PER_S,
				     c->recvd, c->target, count_unit());
		}
		if (opt.mode->flags & BM_RECYCLES) {
			/* give the slot a fresh connection */
			conn_close(c, C_FREE);
			if (issuing())
				retry_push(c);
		} else if (g.phase == PH_OPEN && !c->primed) {
			/* not worth waiting for: let the opening go on */
			conn_close(c, C_DEAD);
		}
	}
}

void phase_step(uint64_t now)
{
	if (stop_requested && !g.interrupted) {
		/* SIGINT/SIGTERM: cut the current phase short and report */
		g.interrupted = 1;
		note("interrupted");
		if (g.phase == PH_OPEN)
			end_open(now);
		if (g.phase == PH_WARMUP)
			begin_measure(now);
		if (g.phase == PH_MEASURE)
			end_measure(now);
		else if (g.phase == PH_HOLD)
			end_hold(now);
	}
	switch (g.phase) {
	case PH_OPEN:
		if ((g.next_open == opt.conns && g.opening == 0) || now >= g.t_deadline)
			end_open(now);
		if (g.phase == PH_WARMUP && opt.warmup <= 0.0)
			begin_measure(now);
		break;
	case PH_WARMUP:
		if (now >= g.t_deadline)
			begin_measure(now);
		break;
	case PH_MEASURE:
		if (now >= g.t_deadline)
			end_measure(now);
		break;
	case PH_HOLD:
		if (now >= g.t_deadline)
			end_hold(now);
		break;
	case PH_DRAIN:
		if (drain_done()) {
			g.phase = PH_DONE;
		} else if (now >= g.t_deadline) {
			/* whatever is still waiting now has stalled */
			stall_scan(now + (uint64_t)(opt.stall * NS_PER_S) + 1);
			g.phase = PH_DONE;
		}
		break;
	case PH_DONE:
		break;
	}
}

