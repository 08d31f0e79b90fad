/* Datagram echo: each datagram goes back to its sender. */
#ifndef ECHOD_DATAGRAM_H
#define ECHOD_DATAGRAM_H

#include <stdint.h>

#include "loop.h"
#include "stats.h"

void datagram_init(struct loop *loop, struct stats *stats);
void datagram_free(void);
void datagram_set_transform(int transform);
/* The io callback of a datagram listener (a struct listener). */
void datagram_io(struct io *io, uint32_t events);

#endif
