/* Unit tests of the event loop: edge-triggered I/O callbacks, timers in
 * deadline order, deferred work. */
#include <check.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "loop.h"

static struct loop L;
static int order[8], n_order;

struct probe {
	struct io io;
	struct timer t;
	int id;
	int calls;
	uint32_t last_events;
	int defer_times;
};

#define PROBE(p) ((struct probe *)((char *)(p) - offsetof(struct probe, io)))
#define PROBE_T(p) ((struct probe *)((char *)(p) - offsetof(struct probe, t)))

static void io_cb(struct io *io, uint32_t events)
{
	struct probe *p = PROBE(io);
	p->calls++;
	p->last_events = events;
	if (p->defer_times-- > 0)
		loop_defer(&L, io);
	else
		L.stop = true;
}

static void timer_cb(struct timer *t)
{
	struct probe *p = PROBE_T(t);
	order[n_order++] = p->id;
	if (n_order == 3)
		L.stop = true;
}

START_TEST(io_event)
{
	int fds[2];
	struct probe p = { .io.fn = io_cb };

	ck_assert_int_eq(loop_init(&L), 0);
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(loop_add(&L, fds[0], EPOLLIN | EPOLLET, &p.io), 0);
	ck_assert_int_eq(write(fds[1], "x", 1), 1);
	ck_assert_int_eq(loop_run(&L), 0);
	ck_assert_int_eq(p.calls, 1);
	ck_assert(p.last_events & EPOLLIN);
	close(fds[0]);
	close(fds[1]);
	loop_close(&L);
}
END_TEST

START_TEST(deferred_calls_without_edge)
{
	int fds[2];
	struct probe p = { .io.fn = io_cb, .defer_times = 3 };

	ck_assert_int_eq(loop_init(&L), 0);
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(loop_add(&L, fds[0], EPOLLIN | EPOLLET, &p.io), 0);
	ck_assert_int_eq(write(fds[1], "x", 1), 1);
	ck_assert_int_eq(loop_run(&L), 0);
	ck_assert_int_eq(p.calls, 4);      /* one edge, three deferred calls */
	ck_assert_uint_eq(p.last_events, 0); /* deferred calls carry no events */
	close(fds[0]);
	close(fds[1]);
	loop_close(&L);
}
END_TEST

START_TEST(undefer_cancels)
{
	struct probe p = { .io.fn = io_cb }, q = { .io.fn = io_cb };

	ck_assert_int_eq(loop_init(&L), 0);
	loop_defer(&L, &p.io);
	loop_defer(&L, &p.io); /* idempotent */
	loop_defer(&L, &q.io);
	loop_undefer(&p.io);
	ck_assert_int_eq(loop_run(&L), 0);
	ck_assert_int_eq(p.calls, 0);
	ck_assert_int_eq(q.calls, 1);
	loop_close(&L);
}
END_TEST

START_TEST(timers_in_deadline_order)
{
	struct probe a = { .t.fn = timer_cb, .id = 1 };
	struct probe b = { .t.fn = timer_cb, .id = 2 };
	struct probe c = { .t.fn = timer_cb, .id = 3 };

	/* Read before loop_init(): timers count from the loop's cached clock. */
	uint64_t start = loop_clock_ms();
	ck_assert_int_eq(loop_init(&L), 0);
	n_order = 0;
	loop_timer_in(&L, &c.t, 30);
	loop_timer_in(&L, &a.t, 10);
	loop_timer_in(&L, &b.t, 20);
	ck_assert_int_eq(loop_run(&L), 0);
	ck_assert_int_eq(n_order, 3);
	ck_assert_int_eq(order[0], 1);
	ck_assert_int_eq(order[1], 2);
	ck_assert_int_eq(order[2], 3);
	ck_assert_uint_ge(loop_clock_ms() - start, 30); /* never early */
	loop_close(&L);
}
END_TEST

/* Events for an io on the deferred list are not dispatched at once (that
 * would give a bulk stream a second budget in the same pass): they come
 * with its deferred call, none lost, EPOLLIN added. */
static int held_calls, held_while_deferred;
static uint32_t held_events;

static void held_cb(struct io *io, uint32_t events)
{
	held_calls++;
	held_while_deferred += io->deferred;
	held_events |= events;
	L.stop = true;
}

START_TEST(events_while_deferred_wait_for_turn)
{
	int sv[2];
	struct io io = { .fn = held_cb };

	held_calls = held_while_deferred = 0;
	held_events = 0;
	ck_assert_int_eq(loop_init(&L), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(loop_add(&L, sv[0], EPOLLIN | EPOLLRDHUP | EPOLLET, &io), 0);
	loop_defer(&L, &io);
	ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0); /* the peer's FIN */
	ck_assert_int_eq(loop_run(&L), 0);
	ck_assert_int_eq(held_calls, 1);
	ck_assert_int_eq(held_while_deferred, 0);
	ck_assert(held_events & EPOLLRDHUP);
	ck_assert(held_events & EPOLLIN);
	ck_assert_uint_eq(io.held, 0);
	close(sv[0]);
	close(sv[1]);
	loop_close(&L);
}
END_TEST

/* Between deferred entries that take long, fresh events are served first:
 * a ping-pong client waits for one stream's budget, not for all of them. */
struct busy {
	struct io io;
	int id;
	int wake_fd; /* written to when it runs, or -1 */
	struct timer *arm; /* set to fire in 1 ms when it runs, or NULL */
};

static void busy_spin_us(unsigned us)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < (long)us);
}

static void busy_cb(struct io *io, uint32_t events)
{
	struct busy *b = (struct busy *)((char *)io - offsetof(struct busy, io));

	(void)events;
	order[n_order++] = b->id;
	if (b->wake_fd >= 0)
		ck_assert_int_eq(write(b->wake_fd, "x", 1), 1);
	if (b->arm)
		loop_timer_in(&L, b->arm, 1);
	if (b->wake_fd >= 0 || b->arm)
		busy_spin_us(5000); /* far longer than the loop's poll interval */
	if (n_order == 3)
		L.stop = true;
}

START_TEST(fresh_events_between_deferred)
{
	int fds[2];
	struct busy a = { .io.fn = busy_cb, .id = 1 }, b = { .io.fn = busy_cb, .id = 2, .wake_fd = -1 },
		    c = { .io.fn = busy_cb, .id = 3, .wake_fd = -1 };

	n_order = 0;
	ck_assert_int_eq(loop_init(&L), 0);
	ck_assert_int_eq(pipe(fds), 0);
	a.wake_fd = fds[1];
	ck_assert_int_eq(loop_add(&L, fds[0], EPOLLIN | EPOLLET, &c.io), 0);
	loop_defer(&L, &a.io);
	loop_defer(&L, &b.io);
	ck_assert_int_eq(loop_run(&L), 0);
	ck_assert_int_eq(n_order, 3);
	ck_assert_int_eq(order[0], 1);
	ck_assert_int_eq(order[1], 3); /* the fresh event, before b */
	ck_assert_int_eq(order[2], 2);
	close(fds[0]);
	close(fds[1]);
	loop_close(&L);
}
END_TEST

/* A deadline that falls due during a long pass over deferred work fires
 * between its entries, not after the pass. */
START_TEST(timers_between_deferred)
{
	struct probe t = { .t.fn = timer_cb, .id = 9 };
	struct busy a = { .io.fn = busy_cb, .id = 1, .wake_fd = -1, .arm = &t.t };
	struct busy b = { .io.fn = busy_cb, .id = 2, .wake_fd = -1 };

	n_order = 0;
	ck_assert_int_eq(loop_init(&L), 0);
	loop_defer(&L, &a.io);
	loop_defer(&L, &b.io);
	ck_assert_int_eq(loop_run(&L), 0);
	ck_assert_int_eq(n_order, 3);
	ck_assert_int_eq(order[0], 1);
	ck_assert_int_eq(order[1], 9); /* due while a ran: before b */
	ck_assert_int_eq(order[2], 2);
	loop_close(&L);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("loop");
	TCase *t = tcase_create("loop");
	tcase_add_test(t, io_event);
	tcase_add_test(t, deferred_calls_without_edge);
	tcase_add_test(t, undefer_cancels);
	tcase_add_test(t, events_while_deferred_wait_for_turn);
	tcase_add_test(t, fresh_events_between_deferred);
	tcase_add_test(t, timers_between_deferred);
	tcase_add_test(t, timers_in_deadline_order);
	suite_add_tcase(s, t);
	return s;
}

CHECK_MAIN(suite)
