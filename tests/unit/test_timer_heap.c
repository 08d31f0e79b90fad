/* Unit tests of the timer heap. */
#include <check.h>
#include <stdlib.h>

#include "check_main.h"
#include "timer_heap.h"

#define N 1000

static void nop(struct timer *t)
{
	(void)t;
}

/* Pops everything, checking deadlines never go down. */
static size_t drain_ordered(struct timer_heap *h)
{
	uint64_t last = 0;
	size_t n = 0;
	struct timer *t;

	while ((t = timer_heap_top(h))) {
		ck_assert_uint_ge(t->deadline, last);
		last = t->deadline;
		timer_heap_remove(h, t);
		ck_assert(!timer_armed(t));
		n++;
	}
	return n;
}

START_TEST(orders_random_deadlines)
{
	struct timer_heap h;
	static struct timer t[N];

	timer_heap_init(&h);
	srand(1);
	for (int i = 0; i < N; i++) {
		t[i].fn = nop;
		ck_assert_int_eq(timer_heap_set(&h, &t[i], (uint64_t)(rand() % 5000)), 0);
	}
	ck_assert_uint_eq(drain_ordered(&h), N);
	timer_heap_free(&h);
}
END_TEST

START_TEST(remove_and_move)
{
	struct timer_heap h;
	static struct timer t[N];

	timer_heap_init(&h);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(timer_heap_set(&h, &t[i], (uint64_t)(N - i)), 0);
	/* Remove every third, from the middle of the heap. */
	for (int i = 0; i < N; i += 3)
		timer_heap_remove(&h, &t[i]);
	timer_heap_remove(&h, &t[0]); /* twice is harmless */
	/* Move some earlier and some later. */
	for (int i = 1; i < N; i += 7)
		if (i % 3 != 0)
			ck_assert_int_eq(timer_heap_set(&h, &t[i], (uint64_t)(i * 13 % 997)), 0);
	ck_assert_uint_eq(h.n, N - (N + 2) / 3);
	ck_assert_uint_eq(drain_ordered(&h), N - (N + 2) / 3);
	timer_heap_free(&h);
}
END_TEST

START_TEST(top_is_earliest)
{
	struct timer_heap h;
	struct timer a = { 0 }, b = { 0 }, c = { 0 };

	timer_heap_init(&h);
	ck_assert_ptr_null(timer_heap_top(&h));
	timer_heap_set(&h, &a, 30);
	timer_heap_set(&h, &b, 10);
	timer_heap_set(&h, &c, 20);
	ck_assert_ptr_eq(timer_heap_top(&h), &b);
	timer_heap_set(&h, &b, 40); /* re-arm later */
	ck_assert_ptr_eq(timer_heap_top(&h), &c);
	timer_heap_remove(&h, &c);
	ck_assert_ptr_eq(timer_heap_top(&h), &a);
	timer_heap_free(&h);
	ck_assert(!timer_armed(&a));
	ck_assert(!timer_armed(&b));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("timer_heap");
	TCase *t = tcase_create("timer_heap");
	tcase_add_test(t, orders_random_deadlines);
	tcase_add_test(t, remove_and_move);
	tcase_add_test(t, top_is_earliest);
	suite_add_tcase(s, t);
	return s;
}

CHECK_MAIN(suite)
