/* Unit tests of the log line limiter. */
#include <check.h>

#include "check_main.h"
#include "log_limit.h"

START_TEST(first_event_logs)
{
	struct log_limiter l = { 0 };
	uint64_t n = 99;

	/* At time 0 too: "never logged" is the armed flag, not last_ms. */
	ck_assert(log_limiter_allow(&l, 0, &n));
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(one_line_per_interval_with_count)
{
	struct log_limiter l = { 0 };
	uint64_t n = 0;

	ck_assert(log_limiter_allow(&l, 5000, &n));
	for (uint64_t t = 5000; t < 15000; t += 10)
		ck_assert(!log_limiter_allow(&l, t, &n));
	ck_assert(log_limiter_allow(&l, 15000, &n));
	ck_assert_uint_eq(n, 1000);
	/* Nothing suppressed since: the next line says 0. */
	ck_assert(!log_limiter_allow(&l, 24999, NULL));
	ck_assert(log_limiter_allow(&l, 25000, &n));
	ck_assert_uint_eq(n, 1);
	ck_assert(log_limiter_allow(&l, 90000, &n));
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(flood_logs_bounded_lines)
{
	struct log_limiter l = { 0 };
	uint64_t n, lines = 0, told = 0, events = 0;

	/* 1,000 events a second for 100 s: 10 lines, and every event is
	 * either logged or counted in a later line. */
	for (uint64_t t = 0; t < 100000; t++) {
		events++;
		if (log_limiter_allow(&l, t, &n)) {
			lines++;
			told += 1 + n;
		}
	}
	ck_assert_uint_eq(lines, 10);
	ck_assert_uint_eq(told + l.suppressed, events);
}
END_TEST

START_TEST(clock_back_does_not_open_the_gate)
{
	struct log_limiter l = { 0 };
	uint64_t n;

	ck_assert(log_limiter_allow(&l, 100000, &n));
	ck_assert(!log_limiter_allow(&l, 5, &n));
	ck_assert(!log_limiter_allow(&l, 109999, &n));
	ck_assert(log_limiter_allow(&l, 110000, &n));
	ck_assert_uint_eq(n, 2);
}
END_TEST

START_TEST(other_interval)
{
	struct log_limiter l = { 0 };
	uint64_t n;

	ck_assert(log_limiter_allow_every(&l, 0, 1000, &n));
	ck_assert(!log_limiter_allow_every(&l, 999, 1000, &n));
	ck_assert(log_limiter_allow_every(&l, 1000, 1000, &n));
	ck_assert_uint_eq(n, 1);
}
END_TEST

START_TEST(count_saturates)
{
	struct log_limiter l = { 0 };
	uint64_t n;

	ck_assert(log_limiter_allow(&l, 0, NULL)); /* the count may be unwanted */
	l.suppressed = UINT64_MAX - 1;
	ck_assert(!log_limiter_allow(&l, 1, &n));
	ck_assert(!log_limiter_allow(&l, 2, &n));
	ck_assert_uint_eq(l.suppressed, UINT64_MAX);
	ck_assert(log_limiter_allow(&l, 20000, &n));
	ck_assert_uint_eq(n, UINT64_MAX);
}
END_TEST

static Suite *log_limit_suite(void)
{
	Suite *s = suite_create("log_limit");
	TCase *c = tcase_create("limiter");

	tcase_add_test(c, first_event_logs);
	tcase_add_test(c, one_line_per_interval_with_count);
	tcase_add_test(c, flood_logs_bounded_lines);
	tcase_add_test(c, clock_back_does_not_open_the_gate);
	tcase_add_test(c, other_interval);
	tcase_add_test(c, count_saturates);
	suite_add_tcase(s, c);
	return s;
}

CHECK_MAIN(log_limit_suite)
