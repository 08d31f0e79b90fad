/* The byte streams every connection sends and every echo is checked
 * against; see stream.h. */
#include <stdlib.h>
#include <string.h>

#include "stream.h"

unsigned char *pattern;

void pattern_init(uint64_t seed)
{
	uint64_t x = mix64(seed ^ GOLDEN) | 1;
	size_t i;

	/* One page more than the table: a window may start at its last byte. */
	pattern = malloc(PATTERN_SIZE + PAGE_SIZE_);
	if (!pattern)
		fatal("out of memory");
	for (i = 0; i < PATTERN_SIZE + PAGE_SIZE_; i += 8) {
		uint64_t v;

		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		v = x * 0x2545f4914f6cdd1dull;
		memcpy(pattern + i, &v, 8);
	}
}

void pattern_free(void)
{
	free(pattern);
	pattern = NULL;
}

int stream_iov(uint64_t key, uint64_t pos, size_t len, struct iovec *iov)
{
	int n = 0;

	while (len > 0 && n < (int)MAX_IOV) {
		size_t k = PAGE_SIZE_ - (pos & PAGE_MASK_);

		if (k > len)
			k = len;
		iov[n].iov_base = stream_at(key, pos);
		iov[n].iov_len = k;
		n++;
		pos += k;
		len -= k;
	}
	return n;
}

int stream_check(uint64_t key, uint64_t pos, const unsigned char *buf, size_t n)
{
	while (n > 0) {
		size_t k = PAGE_SIZE_ - (pos & PAGE_MASK_);

		if (k > n)
			k = n;
		if (memcmp(buf, stream_at(key, pos), k) != 0)
			return -1;
		buf += k;
		pos += k;
		n -= k;
	}
	return 0;
}
