/* Data buffers, lent to a connection only while it has unsent bytes. A
 * small free list makes the lend/return cycle of a busy server cheap
 * without letting idle memory grow. */
#ifndef ECHOD_BUFPOOL_H
#define ECHOD_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	struct buf *next_free;
	uint32_t cap;
	uint32_t off; /* first unsent byte */
	uint32_t len; /* unsent bytes */
	char data[];
};

struct bufpool {
	struct buf *free_list;
	size_t n_free, max_free;
	uint32_t size; /* capacity of the buffers it keeps */
};

void bufpool_init(struct bufpool *p, uint32_t size, size_t max_free);
/* Buffers of another size are still accepted back, and freed. */
void bufpool_set_size(struct bufpool *p, uint32_t size);
void bufpool_clear(struct bufpool *p);

/* An empty buffer of capacity size (from the free list when size is the
 * pool's), or NULL when out of memory. */
struct buf *bufpool_get(struct bufpool *p, uint32_t size);
void bufpool_put(struct bufpool *p, struct buf *b);

#endif
