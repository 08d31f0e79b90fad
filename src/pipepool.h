/* Pipes for splice(2): bulk data goes socket -> pipe -> socket without
 * being copied through user space. A pipe costs two fds and kernel
 * memory, so a connection holds one only while data is in flight, and a
 * few are kept for reuse. */
#ifndef ECHOD_PIPEPOOL_H
#define ECHOD_PIPEPOOL_H

#include <stddef.h>
#include <stdint.h>

struct pipe_pair {
	int r, w;
	uint32_t len; /* bytes in the pipe, not yet sent */
	struct pipe_pair *next_free;
};

/* A pipe's capacity: 16 pages by default; splices never ask for more. */
#define PIPE_CAPACITY (64 * 1024)

struct pipepool {
	struct pipe_pair *free_list;
	size_t n_free, max_free;
};

void pipepool_init(struct pipepool *p, size_t max_free);
void pipepool_clear(struct pipepool *p);
/* An empty pipe, or NULL (out of fds or memory: callers copy instead). */
struct pipe_pair *pipepool_get(struct pipepool *p);
/* A pipe that still holds data cannot be reused: it is closed. */
void pipepool_put(struct pipepool *p, struct pipe_pair *pp);

#endif
