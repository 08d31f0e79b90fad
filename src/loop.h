/* The event loop: epoll, timers, deferred work. It knows file descriptors
 * and callbacks, nothing of what they mean. Connections register
 * edge-triggered, stream listeners level-triggered (see acceptor.c). */
#ifndef ECHOD_LOOP_H
#define ECHOD_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "timer_heap.h"

struct io;
/* events: the epoll mask, or 0 when called back from loop_defer(). Events
 * for an io that is deferred wait for its turn on the deferred list, and
 * come with that call, EPOLLIN added (it was deferred with more to read). */
typedef void io_fn(struct io *io, uint32_t events);

struct io {
	io_fn *fn;
	struct io *defer_prev, *defer_next;
	/* Index + 1 of its event in the batch being dispatched, 0 if none:
	 * what loop_forget() clears so that no callback runs for an io torn
	 * down earlier in the same batch. */
	uint16_t batch_slot;
	/* Events that came while deferred. What epoll reports fits in 16
	 * bits (EPOLLRDHUP is 0x2000; the high bits are request flags):
	 * with batch_slot, it keeps an idle connection's slot small. */
	uint16_t held;
	bool deferred;
};

/* Events per epoll_wait: large, so that thousands of busy connections
 * cost few wakeups. */
#define LOOP_MAX_EVENTS 1024
_Static_assert(LOOP_MAX_EVENTS < UINT16_MAX, "batch_slot holds an index + 1");

struct loop {
	int epfd;
	bool stop;
	uint64_t now_ms; /* CLOCK_MONOTONIC, read once per wakeup */
	uint64_t pass;   /* wakeups so far */
	struct timer_heap timers;
	struct io defer_head; /* sentinel of the deferred list */
	struct epoll_event events[LOOP_MAX_EVENTS]; /* the batch being dispatched */
};

int loop_init(struct loop *loop);
void loop_close(struct loop *loop);

int loop_add(struct loop *loop, int fd, uint32_t events, struct io *io);
int loop_mod(struct loop *loop, int fd, uint32_t events, struct io *io);
int loop_del(struct loop *loop, int fd);

/* Calls io back after the current batch of events, without a new edge:
 * for work cut short by a budget, or resumed after a limit lifted. */
void loop_defer(struct loop *loop, struct io *io);
/* Takes io off the deferred list; events held for it are dropped with it
 * (only teardown and the deferred call itself undefer an io). */
void loop_undefer(struct io *io);

/* Before an io is closed, freed or reused: takes it off the deferred list
 * and drops its event still waiting in the current batch, if any. Every
 * teardown of an io goes through here, whatever the order of events (the
 * way libuv invalidates the pending events of a closed fd). */
void loop_forget(struct loop *loop, struct io *io);

/* Timers run with the loop's clock in milliseconds. */
int loop_timer_at(struct loop *loop, struct timer *t, uint64_t deadline_ms);
int loop_timer_in(struct loop *loop, struct timer *t, uint64_t delay_ms);
void loop_timer_stop(struct loop *loop, struct timer *t);

/* Runs until loop->stop is set. Returns 0, or -errno if epoll fails. */
int loop_run(struct loop *loop);

uint64_t loop_clock_ms(void);

#endif
