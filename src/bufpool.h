/* Data buffers, lent to a connection only while it has unsent bytes. A
 * small free list makes the lend/return cycle of a busy server cheap
 * without letting idle memory grow: it is bounded in bytes, so that large
 * buffers (buffer_size up to 64M) go back to the system once a load has
 * passed. */
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
	size_t n_free, max_free; /* max_free follows from max_bytes / size */
	size_t max_bytes;        /* most memory the free list may hold */
	uint32_t size;           /* capacity of the buffers it keeps */
};

/* Also makes every buffer larger than BUFPOOL_MMAP_MIN its own mapping,
 * so that freeing it returns its memory at once (glibc would otherwise
 * raise its mmap threshold after the first such free, and keep freed
 * buffers in the heap). */
#define BUFPOOL_MMAP_MIN (256 * 1024)
void bufpool_init(struct bufpool *p, uint32_t size, size_t max_bytes);
/* Buffers of another size are still accepted back, and freed. */
void bufpool_set_size(struct bufpool *p, uint32_t size);
void bufpool_clear(struct bufpool *p);

/* An empty buffer of capacity size (from the free list when size is the
 * pool's), or NULL when out of memory. */
struct buf *bufpool_get(struct bufpool *p, uint32_t size);
void bufpool_put(struct bufpool *p, struct buf *b);

#endif
