/* Stream connections: read, echo, backpressure, half-close, deadlines,
 * the PROXY header. The only code on the per-message path. */
#ifndef ECHOD_CONN_H
#define ECHOD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "loop.h"
#include "stats.h"

/* Settings a connection keeps for its whole life: a reload applies to
 * connections accepted after it. Shared and reference counted. */
struct policy {
	unsigned refs;
	uint32_t buffer_size;
	enum transform transform;
	bool log_connections;
	uint64_t idle_timeout_ms;
	uint64_t max_time_ms; /* max_connection_time, 0 = none */
};

struct policy *policy_new(const struct config *cfg);
void policy_unref(struct policy *p);

/* Creates the connection table, indexed by fd, sized for fd_limit
 * descriptors. on_close runs after each close (to resume accepting). */
int conn_table_init(struct loop *loop, size_t fd_limit, struct stats *stats,
		    void (*on_close)(void));
void conn_table_free(void);

/* Connections accepted from now on use p (the table takes a reference). */
void conn_set_policy(struct policy *p);

/* Where a connection comes from, as the acceptor saw it. */
struct conn_origin {
	const struct sockaddr *peer;
	socklen_t peer_len;
	/* The client has most likely sent data already (a deferred accept),
	 * so it is read at once instead of after the next wakeup. */
	bool sent_first;
	/* A short read does not mean the socket is empty (Unix sockets,
	 * which stop at passed descriptors). */
	bool exact_reads;
	/* A PROXY header comes first; admission waits for its address. */
	bool proxy;
	/* It holds a place in its source's count, in that slot
	 * (guard_admit_conn). */
	bool counted;
	uint32_t slot;
};

/* Takes ownership of a connected, non-blocking socket. 0 or -errno (the
 * socket is then closed). */
int conn_open(int fd, const struct conn_origin *o);

/* Shutdown: each connection is served as usual (up to the caller's
 * shutdown timeout) and closed once it has nothing pending and nothing
 * unread, and its client has half-closed or been quiet for a second: at
 * once for a client already quiet that long, never in the middle of a
 * stream. */
void conn_drain_all(void);
/* Closes every connection at once. */
void conn_close_all(void);
/* After a reload: closes the live connections whose peer the allow/deny
 * lists now refuse. Returns how many. */
size_t conn_recheck_acl(void);

#endif
