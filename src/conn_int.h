/* Inside the connection module (conn.c: the echo state machine;
 * conn_proxy.c: the PROXY header; conn_timer.c: deadlines and shutdown).
 * Nothing outside these files includes it. */
#ifndef ECHOD_CONN_INT_H
#define ECHOD_CONN_INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "bufpool.h"
#include "conn.h"
#include "loop.h"
#include "pipepool.h"

/* The shared read buffer: data is written back straight from here, and
 * only an unsent remainder is copied into a buffer of the connection's. */
#define SCRATCH_SIZE (64 * 1024)
/* Shutting down, a connection is closed once it has been quiet this long
 * with nothing pending: an empty receive queue only says the socket is
 * empty now, not that the client has finished, and a close while its data
 * is still on the way would answer it with a reset that destroys the
 * echoes it has not read yet. */
#define DRAIN_QUIET_MS 1000
/* The contract's bound on the arrival of a PROXY header. */
#define PROXY_TIMEOUT_MS 3000
/* A connection past max_connection_time has sent FIN after its last
 * echo; its client gets this long to read them and close. */
#define LINGER_MS 5000

enum {
	C_OPEN = 1 << 0,
	C_EOF = 1 << 1,     /* no more reading: FIN came, or the connection expired */
	C_RDHUP = 1 << 2,   /* FIN has arrived: a short read means EOF */
	C_BLOCKED = 1 << 3, /* stopped reading: the buffer is full */
	C_DRAIN = 1 << 4,   /* shutting down: close once idle */
	C_WOUT = 1 << 5,    /* EPOLLOUT is in the interest set */
	/* A short read does not prove the socket empty: read until EAGAIN.
	 * Unix sockets stop a read at every message that carries file
	 * descriptors or other credentials; TCP stops at the urgent mark. */
	C_EXACT = 1 << 6,
	C_URGENT = 1 << 7,  /* urgent data seen: recv() only (splice stalls at the mark) */
	C_PROXY = 1 << 8,   /* its PROXY header has not arrived yet */
	C_COUNTED = 1 << 9, /* holds a place in its source's connection count */
	C_EXPIRED = 1 << 10, /* max_connection_time reached: not read any more */
	C_LINGER = 1 << 11,  /* ... and all sent, then FIN: waiting for the client's */
	C_PIPED = 1 << 12,   /* what is pending is in a pipe, not a buffer */
	C_BULK = 1 << 13,    /* streaming: a wakeup starts with splice, not recv */
};

/* What only some connections need, allocated for those alone (PROXY
 * listeners, a per-source count, max_connection_time, log_connections),
 * so that a plain idle connection costs its table slot and nothing else. */
struct conn_extra {
	/* The client (after PROXY), IPv4 as mapped IPv6; sin6_family is
	 * AF_UNIX for Unix peers. */
	struct sockaddr_in6 peer;
	uint32_t source_slot; /* where its per-source count is (C_COUNTED) */
	uint64_t opened; /* loop clock at accept */
	uint64_t bytes_in, bytes_out;
	struct buf *hdr; /* a PROXY header arriving in pieces */
};

struct conn {
	struct io io;
	/* One timer for every deadline: idle, lifetime, PROXY header,
	 * shutdown quiet period, linger (see conn_timer.c). */
	struct timer timer;
	/* Unsent bytes, in a buffer or (bulk data) in a pipe, never both:
	 * one pointer, C_PIPED says which, NULL whenever nothing is pending.
	 * Sharing it keeps a table slot, all an idle connection costs, at 96
	 * bytes. Read and set only through the helpers below. */
	union {
		struct buf *buf;
		struct pipe_pair *pipe;
	} pending;
	struct policy *policy;
	struct conn_extra *x; /* NULL for most */
	uint64_t last_active; /* last byte read or sent */
	int fd;
	uint16_t flags;
};

/* The client's address if the connection keeps it, else NULL. */
static inline const struct sockaddr *conn_peer(const struct conn *c)
{
	return c->x ? (const struct sockaddr *)&c->x->peer : NULL;
}

struct conn_state {
	struct loop *loop;
	struct conn *table; /* indexed by fd */
	size_t n_table;
	size_t hwm; /* highest fd used + 1 */
	struct bufpool pool;
	struct pipepool pipes;
	char *scratch;
	struct policy *policy;
	struct stats *stats;
	void (*on_close)(void);
};
extern struct conn_state conns;

static inline bool conn_pending(const struct conn *c)
{
	return c->pending.buf != NULL;
}

/* The buffer of unsent bytes, NULL if none (or they are in a pipe). */
static inline struct buf *conn_out(const struct conn *c)
{
	return (c->flags & C_PIPED) ? NULL : c->pending.buf;
}

/* The pipe of unsent bytes, NULL if none (or they are in a buffer). */
static inline struct pipe_pair *conn_pipe(const struct conn *c)
{
	return (c->flags & C_PIPED) ? c->pending.pipe : NULL;
}

/* Sets what is pending to b (NULL: nothing). */
static inline void conn_set_out(struct conn *c, struct buf *b)
{
	c->flags &= (uint16_t)~C_PIPED;
	c->pending.buf = b;
}

/* Sets what is pending to p (NULL: nothing). */
static inline void conn_set_pipe(struct conn *c, struct pipe_pair *p)
{
	if (p)
		c->flags |= C_PIPED;
	else
		c->flags &= (uint16_t)~C_PIPED;
	c->pending.pipe = p;
}

void conn_close(struct conn *c, const char *why);
/* Stores the client's address in c->x (IPv4 mapped; NULL or AF_UNIX: a
 * Unix peer). */
void conn_set_peer(struct conn *c, const struct sockaddr *sa);
/* Sends data straight back; keeps only what the kernel did not take. */
int conn_echo(struct conn *c, const char *data, size_t n);
void conn_io(struct io *io, uint32_t events);

/* Reads the PROXY header: 1 once it is in (and what followed it echoed),
 * 2 if so and the read that completed it drained the socket, 0 while
 * waiting for more, -errno when the connection must close (a refusal is
 * already counted). */
int conn_read_proxy(struct conn *c);

/* (Re)arms c's timer for its earliest deadline; 0 or -errno. */
int conn_arm_timer(struct conn *c);
void conn_timer_fn(struct timer *t);

#endif
