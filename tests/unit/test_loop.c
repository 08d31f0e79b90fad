/* Unit tests of the event loop: edge-triggered I/O callbacks, timers in
 * deadline order, deferred work. */
#include <check.h>
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

static Suite *suite(void)
{
	Suite *s = suite_create("loop");
	TCase *t = tcase_create("loop");
	tcase_add_test(t, io_event);
	tcase_add_test(t, deferred_calls_without_edge);
	tcase_add_test(t, undefer_cancels);
	tcase_add_test(t, timers_in_deadline_order);
	suite_add_tcase(s, t);
	return s;
}

CHECK_MAIN(suite)
