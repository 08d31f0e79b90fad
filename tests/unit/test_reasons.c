/* Unit tests of the refusal reasons: the contract's names, in its order. */
#include <check.h>
#include <string.h>

#include "check_main.h"
#include "reasons.h"

START_TEST(names_are_the_contracts)
{
	static const char *const want[] = {
		"acl", "per_source", "lifetime", "proxy",
		"udp_loop", "udp_martian", "udp_acl", "udp_rate",
	};

	ck_assert_int_eq(REFUSE_N, sizeof(want) / sizeof(want[0]));
	for (int r = 0; r < REFUSE_N; r++) {
		ck_assert_str_eq(refusal_reason_name((enum refusal_reason)r), want[r]);
		/* UDP reasons, and only they, are spelt udp_. */
		ck_assert(refusal_reason_is_udp((enum refusal_reason)r) ==
			  (strncmp(want[r], "udp_", 4) == 0));
	}
}
END_TEST

START_TEST(out_of_range_is_unknown)
{
	ck_assert_str_eq(refusal_reason_name(REFUSE_N), "unknown");
	ck_assert_str_eq(refusal_reason_name((enum refusal_reason)-1), "unknown");
	ck_assert(!refusal_reason_is_udp(REFUSE_N));
}
END_TEST

static Suite *reasons_suite(void)
{
	Suite *s = suite_create("reasons");
	TCase *c = tcase_create("names");

	tcase_add_test(c, names_are_the_contracts);
	tcase_add_test(c, out_of_range_is_unknown);
	suite_add_tcase(s, c);
	return s;
}

CHECK_MAIN(reasons_suite)
