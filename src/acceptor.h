/* Serving listeners: the accept loop for stream listeners (with limits
 * and fd exhaustion handling) and the echo of datagram listeners. */
#ifndef ECHOD_ACCEPTOR_H
#define ECHOD_ACCEPTOR_H

#include <stdint.h>

#include "listener.h"
#include "loop.h"
#include "stats.h"

/* list: the head of the server's listener list, walked to resume. */
void acceptor_init(struct loop *loop, struct stats *stats, struct listener **list);
void acceptor_set_limits(uint64_t max_connections, int transform);

int acceptor_start(struct listener *l);
void acceptor_stop(struct listener *l);

/* A connection has ended: paused listeners may accept again. */
void acceptor_conn_closed(void);

#endif
