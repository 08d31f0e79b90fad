/* Log-linear latency histogram; see hist.h. */
#include "hist.h"

#include <string.h>

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	unsigned i;

	if (src->count == 0)
		return;
	for (i = 0; i < HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hist_bucket_high(unsigned idx)
{
	unsigned shift;
	uint64_t sub, low;

	if (idx < 2 * HIST_SUB)
		return idx; /* buckets of width one */
	shift = (idx >> HIST_SUB_BITS) - 1;
	sub = idx & (HIST_SUB - 1);
	low = ((uint64_t)HIST_SUB + sub) << shift;
	return low + ((UINT64_C(1) << shift) - 1);
}

uint64_t hist_percentile(const struct hist *h, double pct)
{
	uint64_t rank, acc = 0, v;
	unsigned i;

	if (h->count == 0)
		return 0;
	if (pct >= 100.0)
		return h->max;
	if (pct <= 0.0)
		return h->min;
	/* HdrHistogram's rank: nearest integer, so that 99.9 % of 1000
	 * samples is the 999th whatever the rounding of 99.9 / 100 */
	rank = (uint64_t)(pct / 100.0 * (double)h->count + 0.5);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		acc += h->bucket[i];
		if (acc >= rank)
			break;
	}
	if (i == HIST_BUCKETS)
		return h->max;
	v = hist_bucket_high(i);
	if (v > h->max)
		v = h->max;
	if (v < h->min)
		v = h->min;
	return v;
}

double hist_mean(const struct hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}
