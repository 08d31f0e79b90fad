/* Checks of the log-linear histogram used by echod-bench. */
#include "hist.h"

#include <stdio.h>
#include <stdlib.h>

static int failures;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                            \
			failures++;                                          \
		}                                                            \
	} while (0)

static struct hist h, h2;

/* |a - b| <= b / 128: the precision the bucket layout promises */
static int close_to(uint64_t a, uint64_t b)
{
	uint64_t d = a > b ? a - b : b - a;

	return d <= b / HIST_SUB;
}

static void test_index_layout(void)
{
	uint64_t v;
	unsigned prev = 0;

	/* every value maps into range, monotonically, and into a bucket
	 * whose highest value is not below it and within the precision */
	for (v = 0; v < 1000000; v += (v < 4096 ? 1 : v / 97)) {
		unsigned i = hist_index(v);

		CHECK(i < HIST_BUCKETS);
		CHECK(i >= prev);
		CHECK(hist_bucket_high(i) >= v);
		CHECK(close_to(hist_bucket_high(i), v));
		if (i > 0)
			CHECK(hist_bucket_high(i - 1) < v);
		prev = i;
	}
	CHECK(hist_index(UINT64_MAX) == HIST_BUCKETS - 1);
	CHECK(hist_bucket_high(HIST_BUCKETS - 1) == UINT64_MAX);
	for (v = 0; v < 2 * HIST_SUB; v++)
		CHECK(hist_bucket_high(hist_index(v)) == v); /* exact below 256 */
}

static void test_percentiles(void)
{
	uint64_t v;

	hist_reset(&h);
	CHECK(hist_percentile(&h, 50) == 0);
	CHECK(hist_mean(&h) == 0.0);

	/* 1..100000 ns: pN is N% of the way up */
	for (v = 1; v <= 100000; v++)
		hist_record(&h, v);
	CHECK(h.count == 100000);
	CHECK(h.min == 1 && h.max == 100000);
	CHECK(close_to(hist_percentile(&h, 50), 50000));
	CHECK(close_to(hist_percentile(&h, 90), 90000));
	CHECK(close_to(hist_percentile(&h, 99), 99000));
	CHECK(close_to(hist_percentile(&h, 99.9), 99900));
	CHECK(hist_percentile(&h, 100) == 100000);
	CHECK(hist_percentile(&h, 0) == 1);
	CHECK(hist_mean(&h) == 50000.5);

	/* one outlier: p99.9 of 999 fast + 1 slow sample is still fast,
	 * the max is exact */
	hist_reset(&h);
	for (v = 0; v < 999; v++)
		hist_record(&h, 30000);
	hist_record(&h, 5000000000ull);
	CHECK(close_to(hist_percentile(&h, 99.9), 30000));
	CHECK(hist_percentile(&h, 99.9) <= 30000 + 30000 / HIST_SUB);
	CHECK(hist_percentile(&h, 100) == 5000000000ull);
	CHECK(hist_percentile(&h, 99.95) == 5000000000ull);
}

static void test_merge(void)
{
	hist_reset(&h);
	hist_reset(&h2);
	hist_record(&h, 10);
	hist_record(&h2, 1000000);
	hist_record(&h2, 7);
	hist_merge(&h, &h2);
	CHECK(h.count == 3);
	CHECK(h.min == 7 && h.max == 1000000);
	CHECK(h.sum == 1000017);
	CHECK(hist_percentile(&h, 50) == 10);
	hist_reset(&h2);
	hist_merge(&h, &h2); /* empty merge changes nothing */
	CHECK(h.count == 3 && h.min == 7);
}

int main(void)
{
	test_index_layout();
	test_percentiles();
	test_merge();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return EXIT_FAILURE;
	}
	printf("histogram: all checks passed\n");
	return 0;
}
