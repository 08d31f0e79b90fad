/*
 * The per-connection byte streams. A 4 MiB table is filled once from
 * xorshift64*. A connection's stream is cut into 16 KiB pages; page k of the
 * connection with key K is the table window starting at hash(K, k). So each
 * connection has its own, non-periodic stream, a byte at any position is
 * found in O(1), writes go straight out of the table and a check is a memcmp.
 */
#ifndef ECHOD_BENCH_STREAM_H
#define ECHOD_BENCH_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bench.h"

#define PATTERN_BITS 22
#define PATTERN_SIZE ((size_t)1 << PATTERN_BITS)
#define PAGE_BITS 14
#define PAGE_SIZE_ ((size_t)1 << PAGE_BITS)
#define PAGE_MASK_ (PAGE_SIZE_ - 1)
#define MAX_IOV (MAX_WRITE / PAGE_SIZE_ + 2)
#define GOLDEN 0x9e3779b97f4a7c15ull

extern unsigned char *pattern;

void pattern_init(uint64_t seed);
void pattern_free(void);

/* The byte at stream position pos of key's stream; valid up to the next page. */
static inline unsigned char *stream_at(uint64_t key, uint64_t pos)
{
	size_t off = mix64(key + (pos >> PAGE_BITS) * GOLDEN) & (PATTERN_SIZE - 1);

	return pattern + off + (pos & PAGE_MASK_);
}

/* iov[] (at most MAX_IOV) covering len bytes of key's stream from pos;
 * returns the count, which covers less than len only past MAX_WRITE. */
int stream_iov(uint64_t key, uint64_t pos, size_t len, struct iovec *iov);

/* 0 if buf[0..n) is what key's stream holds at pos. */
int stream_check(uint64_t key, uint64_t pos, const unsigned char *buf, size_t n);

#endif
