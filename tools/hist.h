/*
 * Log-linear histogram of latencies in nanoseconds, in the manner of
 * HdrHistogram: a fixed array of counters, no per-sample storage.
 *
 * Values below 2^HIST_SUB_BITS are counted exactly. Above that, every power
 * of two [2^k, 2^(k+1)) is split into 2^HIST_SUB_BITS equal buckets, so a
 * reported value is within 1/128 (0.8 %) of the true one, over the whole
 * 64-bit range. Recording is a handful of instructions and never allocates.
 */
#ifndef ECHOD_BENCH_HIST_H
#define ECHOD_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	uint64_t sum;
	uint64_t bucket[HIST_BUCKETS];
};

static inline unsigned hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	return ((shift + 1) << HIST_SUB_BITS) +
	       (unsigned)((v >> shift) & (HIST_SUB - 1));
}

static inline void hist_record(struct hist *h, uint64_t v)
{
	h->bucket[hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void hist_reset(struct hist *h);
/* Add every count of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);
/* Highest value that lands in the same bucket as index idx. */
uint64_t hist_bucket_high(unsigned idx);
/*
 * The value below or at which pct percent of the samples fall (HdrHistogram's
 * "highest equivalent value", clamped to the exact min and max); 0 if empty.
 * pct = 100 gives the exact maximum.
 */
uint64_t hist_percentile(const struct hist *h, double pct);
double hist_mean(const struct hist *h);

#endif
