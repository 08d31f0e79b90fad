/* The main() every unit test shares: run one suite, exit non-zero on a
 * failure. Each test runs in its own forked process (Check's default). */
#ifndef ECHOD_CHECK_MAIN_H
#define ECHOD_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

#define CHECK_MAIN(make_suite)                                  \
	int main(void)                                          \
	{                                                       \
		SRunner *r = srunner_create(make_suite());      \
		srunner_run_all(r, CK_NORMAL);                  \
		int failed = srunner_ntests_failed(r);          \
		srunner_free(r);                                \
		return failed ? EXIT_FAILURE : EXIT_SUCCESS;    \
	}

#endif
