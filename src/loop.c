#include "loop.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t loop_clock_ms(void)
{
	return clock_us() / 1000u;
}

int loop_init(struct loop *loop)
{
	memset(loop, 0, sizeof(*loop));
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		return -errno;
	timer_heap_init(&loop->timers);
	loop->defer_head.defer_next = loop->defer_head.defer_prev = &loop->defer_head;
	loop->now_ms = loop_clock_ms();
	return 0;
}

void loop_close(struct loop *loop)
{
	if (loop->epfd >= 0)
		close(loop->epfd);
	loop->epfd = -1;
	timer_heap_free(&loop->timers);
}

int loop_add(struct loop *loop, int fd, uint32_t events, struct io *io)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int loop_mod(struct loop *loop, int fd, uint32_t events, struct io *io)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int loop_del(struct loop *loop, int fd)
{
	return epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

void loop_defer(struct loop *loop, struct io *io)
{
	struct io *head = &loop->defer_head;

	assert(io->fn); /* a closed io is never deferred */
	if (io->deferred)
		return;
	io->deferred = true;
	io->defer_prev = head->defer_prev;
	io->defer_next = head;
	head->defer_prev->defer_next = io;
	head->defer_prev = io;
}

void loop_undefer(struct io *io)
{
	if (!io->deferred)
		return;
	io->defer_prev->defer_next = io->defer_next;
	io->defer_next->defer_prev = io->defer_prev;
	io->defer_prev = io->defer_next = NULL;
	io->deferred = false;
	io->held = 0;
}

void loop_forget(struct loop *loop, struct io *io)
{
	loop_undefer(io);
	if (io->batch_slot) {
		loop->events[io->batch_slot - 1].data.ptr = NULL;
		io->batch_slot = 0;
	}
}

int loop_timer_at(struct loop *loop, struct timer *t, uint64_t deadline_ms)
{
	return timer_heap_set(&loop->timers, t, deadline_ms);
}

int loop_timer_in(struct loop *loop, struct timer *t, uint64_t delay_ms)
{
	return timer_heap_set(&loop->timers, t, loop->now_ms + delay_ms);
}

void loop_timer_stop(struct loop *loop, struct timer *t)
{
	timer_heap_remove(&loop->timers, t);
}

static int next_timeout(const struct loop *loop)
{
	const struct timer *t;

	if (loop->defer_head.defer_next != &loop->defer_head)
		return 0;
	t = timer_heap_top(&loop->timers);
	if (!t)
		return -1;
	if (t->deadline <= loop->now_ms)
		return 0;
	uint64_t d = t->deadline - loop->now_ms;
	return d > 60000 ? 60000 : (int)d;
}

static void run_timers(struct loop *loop)
{
	struct timer *t;

	while ((t = timer_heap_top(&loop->timers)) && t->deadline <= loop->now_ms) {
		timer_heap_remove(&loop->timers, t);
		t->fn(t);
	}
}

static void splice_all(struct io *from, struct io *to)
{
	if (from->defer_next == from)
		return;
	from->defer_next->defer_prev = to->defer_prev;
	from->defer_prev->defer_next = to;
	to->defer_prev->defer_next = from->defer_next;
	to->defer_prev = from->defer_prev;
	from->defer_next = from->defer_prev = from;
}

/* Waits for events (up to timeout_ms) and dispatches them: one wakeup. */
static int poll_events(struct loop *loop, int timeout_ms)
{
	struct epoll_event *events = loop->events;
	int n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	loop->now_ms = loop_clock_ms();
	loop->pass++;
	/* epoll reports an fd at most once per batch, so one slot per io
	 * is enough; a callback that tears another io down clears it. */
	for (int i = 0; i < n; i++)
		((struct io *)events[i].data.ptr)->batch_slot = (uint16_t)(i + 1);
	for (int i = 0; i < n; i++) {
		struct io *io = events[i].data.ptr;
		if (!io)
			continue; /* torn down earlier in this batch */
		io->batch_slot = 0;
		if (io->deferred) {
			/* Busy with bulk data: it gets no second budget
			 * in this pass, it waits for its turn. */
			io->held |= (uint16_t)events[i].events;
			continue;
		}
		io->fn(io, events[i].events);
	}
	return 0;
}

/* Runs what was deferred before this pass; what defers itself again now
 * waits for the next pass, after fresh events, so nobody starves.
 * Deferred work is bulk data (each entry spent a whole budget), and a
 * pass over n busy streams takes n budgets: so between entries, once
 * FRESH_POLL_US have gone by, fresh events are served first. A ping-pong
 * client beside streams then waits for one stream's budget, not for all
 * of them, and streams keep their large budgets (bench/RESULTS.md,
 * fairness). One empty epoll_wait costs far less than a budget's worth
 * of splice() calls. */
#ifndef FRESH_POLL_US
#define FRESH_POLL_US 200
#endif
static int run_deferred(struct loop *loop)
{
	struct io batch;
	uint64_t polled;
	int r = 0;

	if (loop->defer_head.defer_next == &loop->defer_head)
		return 0; /* the common case: no clock read either */
	polled = clock_us();
	batch.defer_next = batch.defer_prev = &batch;
	splice_all(&loop->defer_head, &batch);
	while (batch.defer_next != &batch && !loop->stop) {
		struct io *io = batch.defer_next;
		uint32_t held = io->held;
		loop_undefer(io);
		io->fn(io, held ? held | EPOLLIN : 0);
		if (batch.defer_next != &batch && !loop->stop) {
			uint64_t now = clock_us();
			if (now - polled >= FRESH_POLL_US) {
				r = poll_events(loop, 0);
				if (r < 0)
					break;
				/* Deadlines (idle, PROXY, shutdown, the watchdog)
				 * are not late by a whole pass over the streams. */
				run_timers(loop);
				polled = clock_us();
			}
		}
	}
	splice_all(&batch, &loop->defer_head);
	return r;
}

int loop_run(struct loop *loop)
{
	while (!loop->stop) {
		int r = poll_events(loop, next_timeout(loop));
		if (r < 0)
			return r;
		run_timers(loop);
		r = run_deferred(loop);
		if (r < 0)
			return r;
	}
	return 0;
}
