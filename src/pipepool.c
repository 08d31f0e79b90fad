#include "pipepool.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

void pipepool_init(struct pipepool *p, size_t max_free)
{
	p->free_list = NULL;
	p->n_free = 0;
	p->max_free = max_free;
}

static void destroy(struct pipe_pair *pp)
{
	close(pp->r);
	close(pp->w);
	free(pp);
}

void pipepool_clear(struct pipepool *p)
{
	while (p->free_list) {
		struct pipe_pair *pp = p->free_list;
		p->free_list = pp->next_free;
		destroy(pp);
	}
	p->n_free = 0;
}

struct pipe_pair *pipepool_get(struct pipepool *p)
{
	struct pipe_pair *pp = p->free_list;
	int fds[2];

	if (pp) {
		p->free_list = pp->next_free;
		p->n_free--;
		pp->next_free = NULL;
		return pp;
	}
	pp = malloc(sizeof(*pp));
	if (!pp)
		return NULL;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		free(pp);
		return NULL;
	}
	pp->r = fds[0];
	pp->w = fds[1];
	pp->len = 0;
	pp->next_free = NULL;
	return pp;
}

void pipepool_put(struct pipepool *p, struct pipe_pair *pp)
{
	if (pp->len != 0 || p->n_free >= p->max_free) {
		destroy(pp);
		return;
	}
	pp->next_free = p->free_list;
	p->free_list = pp;
	p->n_free++;
}
