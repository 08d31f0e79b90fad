/* Unit tests of the configuration's value parsers and formatters (sizes,
 * durations, booleans, enums). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "config.h"
#include "log.h"

/* ---- value parsers ---- */

START_TEST(uint_accepts_bounds)
{
	uint64_t v;
	ck_assert_int_eq(parse_uint("1", 1, 65535, &v), 0);
	ck_assert_uint_eq(v, 1);
	ck_assert_int_eq(parse_uint("65535", 1, 65535, &v), 0);
	ck_assert_uint_eq(v, 65535);
	ck_assert_int_eq(parse_uint("007", 0, 10, &v), 0);
	ck_assert_uint_eq(v, 7);
}
END_TEST

START_TEST(uint_rejects)
{
	uint64_t v = 42;
	ck_assert_int_eq(parse_uint("0", 1, 65535, &v), -ERANGE);
	ck_assert_int_eq(parse_uint("65536", 1, 65535, &v), -ERANGE);
	ck_assert_int_eq(parse_uint("99999999999999999999999", 0, UINT64_MAX, &v), -ERANGE);
	ck_assert_int_eq(parse_uint("", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_uint("-1", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_uint("+1", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_uint(" 1", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_uint("1 ", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_uint("1x", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_uint("0x10", 0, 100, &v), -EINVAL);
	ck_assert_uint_eq(v, 42); /* untouched on error */
}
END_TEST

START_TEST(size_units)
{
	uint64_t v;
	ck_assert_int_eq(parse_size("64", 64, 64 << 20, &v), 0);
	ck_assert_uint_eq(v, 64);
	ck_assert_int_eq(parse_size("16K", 64, 64 << 20, &v), 0);
	ck_assert_uint_eq(v, 16384);
	ck_assert_int_eq(parse_size("16k", 64, 64 << 20, &v), 0);
	ck_assert_uint_eq(v, 16384);
	ck_assert_int_eq(parse_size("64M", 64, 64 << 20, &v), 0);
	ck_assert_uint_eq(v, 64u << 20);
	ck_assert_int_eq(parse_size("63", 64, 64 << 20, &v), -ERANGE);
	ck_assert_int_eq(parse_size("65M", 64, 64 << 20, &v), -ERANGE);
	ck_assert_int_eq(parse_size("65537K", 64, 64 << 20, &v), -ERANGE);
	ck_assert_int_eq(parse_size("99999999999999999M", 64, 64 << 20, &v), -ERANGE);
	ck_assert_int_eq(parse_size("16KB", 64, 64 << 20, &v), -EINVAL);
	ck_assert_int_eq(parse_size("16G", 64, 64 << 20, &v), -EINVAL);
	ck_assert_int_eq(parse_size("K", 64, 64 << 20, &v), -EINVAL);
	ck_assert_int_eq(parse_size("1.5K", 64, 64 << 20, &v), -EINVAL);
}
END_TEST

START_TEST(duration_units)
{
	uint64_t v, max = 30ULL * 24 * 3600 * 1000;
	ck_assert_int_eq(parse_duration_ms("0", 0, max, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(parse_duration_ms("30", 0, max, &v), 0);
	ck_assert_uint_eq(v, 30000);
	ck_assert_int_eq(parse_duration_ms("30s", 0, max, &v), 0);
	ck_assert_uint_eq(v, 30000);
	ck_assert_int_eq(parse_duration_ms("250ms", 0, max, &v), 0);
	ck_assert_uint_eq(v, 250);
	ck_assert_int_eq(parse_duration_ms("2min", 0, max, &v), 0);
	ck_assert_uint_eq(v, 120000);
	ck_assert_int_eq(parse_duration_ms("43201min", 0, max, &v), -ERANGE);
	ck_assert_int_eq(parse_duration_ms("5h", 0, max, &v), -EINVAL);
	ck_assert_int_eq(parse_duration_ms("5 s", 0, max, &v), -EINVAL);
	ck_assert_int_eq(parse_duration_ms("s", 0, max, &v), -EINVAL);
	ck_assert_int_eq(parse_duration_ms("1.5s", 0, max, &v), -EINVAL);
	ck_assert_int_eq(parse_duration_ms("-1", 0, max, &v), -EINVAL);
}
END_TEST

START_TEST(booleans)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES", "True" };
	static const char *const no[] = { "no", "false", "off", "0", "NO", "Off" };
	bool b;
	for (size_t i = 0; i < 6; i++) {
		b = false;
		ck_assert_int_eq(parse_bool(yes[i], &b), 0);
		ck_assert(b);
		b = true;
		ck_assert_int_eq(parse_bool(no[i], &b), 0);
		ck_assert(!b);
	}
	ck_assert_int_eq(parse_bool("y", &b), -EINVAL);
	ck_assert_int_eq(parse_bool("2", &b), -EINVAL);
	ck_assert_int_eq(parse_bool("", &b), -EINVAL);
}
END_TEST

START_TEST(enums)
{
	enum transform t;
	enum log_level l;
	ck_assert_int_eq(parse_transform("none", &t), 0);
	ck_assert_int_eq(t, TRANSFORM_NONE);
	ck_assert_int_eq(parse_transform("upper", &t), 0);
	ck_assert_int_eq(t, TRANSFORM_UPPER);
	ck_assert_int_eq(parse_transform("UPPER", &t), -EINVAL);
	ck_assert_int_eq(parse_transform("lower", &t), -EINVAL);
	ck_assert_int_eq(parse_log_level("err", &l), 0);
	ck_assert_int_eq(l, LOG_LEVEL_ERR);
	ck_assert_int_eq(parse_log_level("debug", &l), 0);
	ck_assert_int_eq(l, LOG_LEVEL_DEBUG);
	ck_assert_int_eq(parse_log_level("error", &l), -EINVAL);
	ck_assert_str_eq(log_level_name(LOG_LEVEL_NOTICE), "notice");
	ck_assert_str_eq(transform_name(TRANSFORM_UPPER), "upper");
}
END_TEST

START_TEST(formats_round_trip)
{
	char buf[32];
	format_size(16384, buf, sizeof(buf));
	ck_assert_str_eq(buf, "16K");
	format_size(64u << 20, buf, sizeof(buf));
	ck_assert_str_eq(buf, "64M");
	format_size(100, buf, sizeof(buf));
	ck_assert_str_eq(buf, "100");
	format_duration_ms(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "0");
	format_duration_ms(5000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "5s");
	format_duration_ms(250, buf, sizeof(buf));
	ck_assert_str_eq(buf, "250ms");
	format_duration_ms(120000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2min");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("config_values");
	TCase *t = tcase_create("parsers");
	tcase_add_test(t, uint_accepts_bounds);
	tcase_add_test(t, uint_rejects);
	tcase_add_test(t, size_units);
	tcase_add_test(t, duration_units);
	tcase_add_test(t, booleans);
	tcase_add_test(t, enums);
	tcase_add_test(t, formats_round_trip);
	suite_add_tcase(s, t);
	return s;
}

CHECK_MAIN(suite)
