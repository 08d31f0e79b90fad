#include "bufpool.h"

#include <stdlib.h>

void bufpool_init(struct bufpool *p, uint32_t size, size_t max_free)
{
	p->free_list = NULL;
	p->n_free = 0;
	p->max_free = max_free;
	p->size = size;
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
	p->size = size;
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
