/*
 * echod-bench - load generator and verifier for TCP, Unix and UDP echo servers.
 *
 * One thread, one edge-triggered epoll loop; see bench.h for the layout.
 * This file holds the process set-up, the loop and its timer, and main().
 *
 * Every byte a connection sends comes from its own pseudo-random stream and
 * every byte echoed back is compared with it (stream.h).
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "stream.h"

#define TIMER_TAG UINT64_MAX /* epoll data of the timerfd */

struct options opt;
struct state g;
volatile sig_atomic_t stop_requested;

static struct epoll_event events[MAX_EVENTS];

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void setup_process(void)
{
	struct rlimit rl;
	struct sigaction sa;
	rlim_t need = (rlim_t)opt.conns + 16;
	double limit_s;

	/* As many descriptors as we may have (soft up to hard). */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < need)
		fatal("%u connections need %llu file descriptors, but the limit is "
		      "%llu (see ulimit -n)",
		      opt.conns, (unsigned long long)need,
		      (unsigned long long)rl.rlim_cur);

	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND; /* a second signal ends us at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* Whatever happens, the run ends by itself. */
	limit_s = opt.warmup + opt.duration + 3 * opt.stall + 30.0;
	if (!(opt.mode->flags & BM_RECYCLES))
		limit_s += opt.open_timeout;
	alarm((unsigned)ceil(limit_s));
}

/*
 * The epoll_wait timeout: 0 if work is queued, else -1 with the next timed
 * event (tick, stall scan, phase deadline, connect retry) on the timerfd.
 * A finite epoll_wait timeout would arm and cancel a kernel timer on every
 * sleep, which costs more per message than anything else here (a VM exit
 * on virtual machines); the timerfd is reprogrammed only when the next
 * wake-up time changes, a few times a second.
 */
static int next_timeout(uint64_t now)
{
	uint64_t next = g.t_next_tick;

	if (g.runq_n > 0)
		return 0;
	if (g.t_next_scan < next)
		next = g.t_next_scan;
	if (g.t_deadline < next)
		next = g.t_deadline;
	if (g.retryq_n > 0 && g.t_last_retry + RETRY_NS < next)
		next = g.t_last_retry + RETRY_NS;
	if (next <= now)
		return 0;
	if (next != g.timer_at) {
		struct itimerspec its;

		memset(&its, 0, sizeof(its));
		its.it_value.tv_sec = (time_t)(next / NS_PER_S);
		its.it_value.tv_nsec = (long)(next % NS_PER_S);
		if (timerfd_settime(g.timer, TFD_TIMER_ABSTIME, &its, NULL) < 0)
			fatal("timerfd_settime: %s", strerror(errno));
		g.timer_at = next;
	}
	return -1;
}

static void run_queues(uint64_t now)
{
	unsigned i, n;
	uint32_t *q;

	if (g.runq_n > 0) {
		q = g.runq;
		n = g.runq_n;
		g.runq = g.runq_work;
		g.runq_work = q;
		g.runq_n = 0;
		for (i = 0; i < n; i++) {
			struct conn *c = &g.conns[q[i]];

			c->queued = 0;
			if (c->state == C_OPEN)
				opt.mode->on_event(c, 0, now_ns());
		}
	}
	if (g.retryq_n > 0 && now >= g.t_last_retry + RETRY_NS) {
		q = g.retryq;
		n = g.retryq_n;
		g.retryq = g.retryq_work;
		g.retryq_work = q;
		g.retryq_n = 0;
		g.t_last_retry = now;
		for (i = 0; i < n; i++) {
			struct conn *c = &g.conns[q[i]];
			int again = g.phase == PH_OPEN ||
				    ((opt.mode->flags & BM_RECYCLES) && issuing());

			c->retrying = 0;
			if (c->state == C_RETRY && again)
				opt.mode->start(c, now);
			else if (c->state == C_RETRY)
				conn_close(c, (opt.mode->flags & BM_RECYCLES) ? C_FREE : C_DEAD);
			else if (c->state == C_FREE && (opt.mode->flags & BM_RECYCLES) && again)
				opt.mode->start(c, now);
		}
	}
}

static void run(void)
{
	uint64_t now = now_ns();
	unsigned i;

	g.t_begin = g.t_opened = now;
	g.t_next_tick = now + NS_PER_S;
	g.t_next_scan = now + g.scan_ns;
	snapshot(&g.tick, now);
	if (opt.mode->flags & BM_RECYCLES) {
		/* no opening phase: the slots connect over and over */
		g.phase = PH_WARMUP;
		g.t_deadline = now + (uint64_t)(opt.warmup * NS_PER_S);
		note("warming up for %.3g s", opt.warmup);
		for (i = 0; i < opt.conns; i++)
			opt.mode->start(&g.conns[i], now);
		if (opt.warmup <= 0.0)
			begin_measure(now);
	} else {
		g.phase = PH_OPEN;
		g.measuring = (opt.mode->flags & BM_HOLDS) != 0;
		g.t_deadline = now + (uint64_t)(opt.open_timeout * NS_PER_S);
		open_more(now);
	}

	while (g.phase != PH_DONE) {
		int n, k;

		now = now_ns();
		phase_step(now);
		if (g.phase == PH_DONE)
			break;
		if (now >= g.t_next_scan) {
			stall_scan(now);
			g.t_next_scan = now + g.scan_ns;
		}
		if (now >= g.t_next_tick) {
			tick(now);
			g.t_next_tick += NS_PER_S;
			if (g.t_next_tick <= now)
				g.t_next_tick = now + NS_PER_S;
		}
		n = epoll_wait(g.ep, events, MAX_EVENTS, next_timeout(now));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait: %s", strerror(errno));
		}
		for (k = 0; k < n; k++) {
			uint32_t idx;
			int fd;
			struct conn *c;

			if (events[k].data.u64 == TIMER_TAG) {
				uint64_t expirations;

				if (read(g.timer, &expirations, sizeof(expirations)) < 0 &&
				    errno != EAGAIN)
					fatal("timerfd: %s", strerror(errno));
				g.timer_at = 0;
				continue;
			}
			idx = (uint32_t)events[k].data.u64;
			fd = (int)(events[k].data.u64 >> 32);
			c = &g.conns[idx];

			if (c->fd != fd) /* stale: the slot moved on */
				continue;
			opt.mode->on_event(c, events[k].events, now_ns());
		}
		now = now_ns();
		run_queues(now);
		if (g.phase == PH_OPEN)
			open_more(now);
	}
	progress_clear();
	for (i = 0; i < opt.conns; i++)
		if (g.conns[i].fd >= 0)
			conn_close(&g.conns[i], C_FREE);
}

int main(int argc, char **argv)
{
	struct result r;
	unsigned i;

	parse_options(argc, argv);
	setup_process();

	g.progress = !opt.quiet && isatty(STDOUT_FILENO);
	g.scan_ns = STALL_SCAN_NS;
	pattern_init(opt.seed);
	hist_reset(&g.interval);
	hist_reset(&g.total);
	g.ep = epoll_create1(EPOLL_CLOEXEC);
	if (g.ep < 0)
		fatal("epoll_create1: %s", strerror(errno));
	g.timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (g.timer < 0)
		fatal("timerfd_create: %s", strerror(errno));
	{
		struct epoll_event ev;

		ev.events = EPOLLIN;
		ev.data.u64 = TIMER_TAG;
		if (epoll_ctl(g.ep, EPOLL_CTL_ADD, g.timer, &ev) < 0)
			fatal("epoll_ctl: %s", strerror(errno));
	}
	g.conns = calloc(opt.conns, sizeof(*g.conns));
	g.runq = calloc(opt.conns, sizeof(*g.runq));
	g.runq_work = calloc(opt.conns, sizeof(*g.runq_work));
	g.retryq = calloc(opt.conns, sizeof(*g.retryq));
	g.retryq_work = calloc(opt.conns, sizeof(*g.retryq_work));
	if (!g.conns || !g.runq || !g.runq_work || !g.retryq || !g.retryq_work)
		fatal("out of memory");
	for (i = 0; i < opt.conns; i++) {
		g.conns[i].fd = -1;
		g.conns[i].state = C_FREE;
	}
	if (opt.mode->setup)
		opt.mode->setup();

	run();

	compute(&r);
	if (opt.json)
		report_json(&r);
	else
		report_table(&r);
	fflush(stdout);

	if (opt.mode->cleanup)
		opt.mode->cleanup();
	free(g.conns);
	free(g.runq);
	free(g.runq_work);
	free(g.retryq);
	free(g.retryq_work);
	pattern_free();
	close(g.timer);
	close(g.ep);
	return total_errors() > 0 || g.interrupted ? EXIT_ERRORS : 0;
}
