/* Serving stream listeners: the accept loop, with the connection limit,
 * fd exhaustion and accept errors handled without spinning. */
#ifndef ECHOD_ACCEPTOR_H
#define ECHOD_ACCEPTOR_H

#include <stdint.h>

#include "listener.h"
#include "loop.h"
#include "stats.h"

/* list: the head of the server's listener list, walked to resume. */
void acceptor_init(struct loop *loop, struct stats *stats, struct listener **list);
void acceptor_set_limits(uint64_t max_connections);

/* Puts a TCP or Unix stream listener in the loop. 0 or -errno. */
int acceptor_start(struct listener *l);
/* Takes it out again (idempotent, also for one never started). */
void acceptor_stop(struct listener *l);

/* A connection has ended: paused listeners may accept again. */
void acceptor_conn_closed(void);

#endif
