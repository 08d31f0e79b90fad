/* Datagram echo: each datagram goes back to its sender. */
#ifndef ECHOD_DATAGRAM_H
#define ECHOD_DATAGRAM_H

#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "stats.h"

void datagram_init(struct loop *loop, struct stats *stats);
void datagram_free(void);
void datagram_set_transform(enum transform transform);

struct listener;
/* Puts a UDP listener in the loop. 0 or -errno. */
int datagram_start(struct listener *l);
/* Takes it out again (idempotent, also for one never started). */
void datagram_stop(struct listener *l);

#endif
