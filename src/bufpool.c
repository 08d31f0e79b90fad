#include "bufpool.h"

#include <malloc.h>
#include <stdlib.h>

static void set_size(struct bufpool *p, uint32_t size)
{
	p->size = size;
	p->max_free = size ? p->max_bytes / size : 0;
}

void bufpool_init(struct bufpool *p, uint32_t size, size_t max_bytes)
{
	/* A fixed threshold also stops glibc's dynamic adjustment. */
	mallopt(M_MMAP_THRESHOLD, BUFPOOL_MMAP_MIN);
	p->free_list = NULL;
	p->n_free = 0;
	p->max_bytes = max_bytes;
	set_size(p, size);
}

void bufpool_clear(struct bufpool *p)
{
	while (p->free_list) {
		struct buf *b = p->free_list;
		p->free_list = b->next_free;
		free(b);
	}
	p->n_free = 0;
}

void bufpool_set_size(struct bufpool *p, uint32_t size)
{
	if (size != p->size)
		bufpool_clear(p);
	set_size(p, size);
}

struct buf *bufpool_get(struct bufpool *p, uint32_t size)
{
	struct buf *b = size == p->size ? p->free_list : NULL;

	if (b) {
		p->free_list = b->next_free;
		p->n_free--;
	} else {
		b = malloc(sizeof(*b) + size);
		if (!b)
			return NULL;
		b->cap = size;
	}
	b->next_free = NULL;
	b->off = b->len = 0;
	return b;
}

void bufpool_put(struct bufpool *p, struct buf *b)
{
	if (b->cap != p->size || p->n_free >= p->max_free) {
		free(b);
		return;
	}
	b->next_free = p->free_list;
	p->free_list = b;
	p->n_free++;
}
