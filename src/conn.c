#include "conn.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "address.h"
#include "conn_int.h"
#include "guard.h"
#include "log.h"
#include "transform.h"
#include "util.h"

/* Reads per wakeup before a connection yields to the others (libuv uses
 * 32); what is left is served from the deferred list, without an edge. */
#define READS_PER_EVENT 16
/* Bytes per connection per wakeup: what one stream may move before the
 * others (and the ping-pong clients among them) get their turn. A pass
 * over n busy streams would take n times this, so the loop serves fresh
 * events between deferred entries (loop.c): a ping-pong client waits for
 * about one budget. 256 KiB (4 full reads of the default 64K) kept the
 * ping-pong p99 beside 8 streams under 1 ms where 1 MiB gave 2 to 5 ms,
 * for the same streaming rate and CPU per MB (bench/RESULTS.md,
 * fairness, with what 64K and 1M do to both sides). */
#ifndef BYTES_PER_EVENT /* -DBYTES_PER_EVENT=N: bench/RESULTS.md measures others */
#define BYTES_PER_EVENT (256 * 1024)
#endif
/* Memory in free buffers kept for reuse: enough for bursts (16 buffers
 * of the default 64K), small when idle, none for buffers over 1M. */
#define POOL_MAX_FREE_BYTES (1024 * 1024)
/* Free pipes kept for reuse (two fds each). */
#define PIPES_MAX_FREE 16
/* EPOLLPRI reports TCP urgent data, which arrives inline (SO_OOBINLINE on
 * the listener) but changes how the socket must be read. */
#define CONN_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLPRI | EPOLLET)

struct conn_state conns;

struct policy *policy_new(const struct config *cfg)
{
	struct policy *p = malloc(sizeof(*p));

	if (!p)
		return NULL;
	p->refs = 1;
	p->buffer_size = cfg->buffer_size;
	p->transform = cfg->transform;
	p->log_connections = cfg->log_connections;
	p->idle_timeout_ms = cfg->idle_timeout_ms;
	p->max_time_ms = cfg->max_connection_time_ms;
	return p;
}

void policy_unref(struct policy *p)
{
	if (p && --p->refs == 0)
		free(p);
}

/* The slot is all an idle connection costs (man echod, Memory): whatever
 * grows it grows every connection. */
static_assert(sizeof(struct conn) <= 96, "a connection's table slot outgrew 96 bytes");

int conn_table_init(struct loop *loop, size_t fd_limit, struct stats *stats, void (*on_close)(void))
{
	memset(&conns, 0, sizeof(conns));
	conns.loop = loop;
	conns.stats = stats;
	conns.on_close = on_close;
	/* calloc of a large table maps fresh zero pages: a slot costs memory
	 * only once a connection with that fd has used it. */
	conns.table = calloc(fd_limit, sizeof(*conns.table));
	conns.scratch = malloc(SCRATCH_SIZE);
	if (!conns.table || !conns.scratch) {
		conn_table_free();
		return -ENOMEM;
	}
	conns.n_table = fd_limit;
	bufpool_init(&conns.pool, 16 * 1024, POOL_MAX_FREE_BYTES);
	pipepool_init(&conns.pipes, PIPES_MAX_FREE);
	return 0;
}

void conn_table_free(void)
{
	conn_close_all();
	free(conns.table);
	free(conns.scratch);
	bufpool_clear(&conns.pool);
	pipepool_clear(&conns.pipes);
	policy_unref(conns.policy);
	memset(&conns, 0, sizeof(conns));
}

void conn_set_policy(struct policy *p)
{
	p->refs++;
	policy_unref(conns.policy);
	conns.policy = p;
	bufpool_set_size(&conns.pool, p->buffer_size);
}

/* log_connections: one line per connection at close. */
static void log_close(const struct conn *c, const char *why)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	char peer[ADDRESS_TEXT_MAX], on[ADDRESS_TEXT_MAX];
	uint64_t ms = conns.loop->now_ms - c->x->opened;

	guard_format_peer(conn_peer(c), peer, sizeof(peer));
	if (getsockname(c->fd, (struct sockaddr *)&local, &len) == 0)
		address_format((const struct sockaddr *)&local, len, on, sizeof(on));
	else
		snprintf(on, sizeof(on), "?");
	log_info("connection from %s on %s closed after %llu.%03llus: %llu bytes in, %llu bytes out (%s)",
		 peer, on, (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000),
		 (unsigned long long)c->x->bytes_in, (unsigned long long)c->x->bytes_out, why);
}

void conn_close(struct conn *c, const char *why)
{
	if (c->policy->log_connections)
		log_close(c, why);
	log_debug("connection %d closed: %s", c->fd, why);
	loop_forget(conns.loop, &c->io);
	loop_timer_stop(conns.loop, &c->timer);
	if (conn_out(c))
		bufpool_put(&conns.pool, conn_out(c));
	if (conn_pipe(c))
		pipepool_put(&conns.pipes, conn_pipe(c));
	if (c->x) {
		if (c->x->hdr)
			bufpool_put(&conns.pool, c->x->hdr);
		if (c->flags & C_COUNTED)
			guard_release_conn(conn_peer(c), sizeof(c->x->peer), c->x->source_slot);
		free(c->x);
	}
	/* close(2) also removes it from the epoll set (no dup'ed fds). */
	close(c->fd);
	policy_unref(c->policy);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	conns.stats->current--;
	if (conns.on_close)
		conns.on_close();
}

/* The peer as a mapped IPv6 address: one form for the lists, the
 * per-source table and the log, whatever the listener's family. */
void conn_set_peer(struct conn *c, const struct sockaddr *sa)
{
	struct sockaddr_in6 *p = &c->x->peer;

	memset(p, 0, sizeof(*p));
	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		p->sin6_family = AF_INET6;
		p->sin6_port = s4->sin_port;
		p->sin6_addr.s6_addr[10] = 0xff;
		p->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&p->sin6_addr.s6_addr[12], &s4->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		memcpy(p, sa, sizeof(*p));
	} else {
		p->sin6_family = AF_UNIX;
	}
}

/* Whether c needs its extra state, from what it is and the settings. */
static bool needs_extra(const struct conn_origin *o, const struct policy *p)
{
	return o->proxy || o->counted || p->log_connections || p->max_time_ms;
}

int conn_open(int fd, const struct conn_origin *o)
{
	struct conn *c;
	int r;

	if (fd < 0 || (size_t)fd >= conns.n_table) {
		close(fd);
		if (o->counted)
			guard_release_conn(o->peer, o->peer_len, o->slot);
		return -EMFILE;
	}
	c = &conns.table[fd];
	assert(!(c->flags & C_OPEN)); /* the kernel never hands out an fd in use */
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->flags = C_OPEN | (o->exact_reads ? C_EXACT : 0) | (o->proxy ? C_PROXY : 0) |
		   (o->counted ? C_COUNTED : 0);
	c->io.fn = conn_io;
	c->timer.fn = conn_timer_fn;
	c->policy = conns.policy;
	c->policy->refs++;
	if (needs_extra(o, c->policy)) {
		/* malloc, not calloc: glibc's calloc skips the per-thread
		 * cache, and costs a guarded connection 3x more. */
		c->x = malloc(sizeof(*c->x));
		if (!c->x) {
			/* Not opened yet: undo by hand. */
			policy_unref(c->policy);
			memset(c, 0, sizeof(*c));
			close(fd);
			if (o->counted)
				guard_release_conn(o->peer, o->peer_len, o->slot);
			return log_errno(LOG_LEVEL_WARNING, -ENOMEM, "cannot open a connection");
		}
		memset(c->x, 0, sizeof(*c->x));
		conn_set_peer(c, o->peer);
		c->x->source_slot = o->slot;
		c->x->opened = conns.loop->now_ms;
	}
	conns.stats->current++;
	conns.stats->total++;
	if ((size_t)fd >= conns.hwm)
		conns.hwm = (size_t)fd + 1;
	c->last_active = conns.loop->now_ms;

	/* Edge-triggered, for input only: a fresh socket is writable, and
	 * watching EPOLLOUT from the start would cost every connection a
	 * wakeup for nothing. It is added the first time the client falls
	 * behind, and then kept, so epoll_ctl stays off the hot path. Data
	 * that arrived before this call is reported too. */
	r = loop_add(conns.loop, fd, CONN_EVENTS, &c->io);
	if (r == 0)
		r = conn_arm_timer(c);
	if (r < 0) {
		log_errno(LOG_LEVEL_WARNING, r, "cannot register connection");
		conn_close(c, "registration failed");
		return r;
	}
	log_debug("connection %d opened", fd);
	if (o->sent_first)
		conn_io(&c->io, EPOLLIN);
	return 0;
}

static void sent(struct conn *c, ssize_t w)
{
	conns.stats->bytes += (uint64_t)w;
	if (c->x)
		c->x->bytes_out += (uint64_t)w;
	c->last_active = conns.loop->now_ms;
}

/* Writes what is pending. The kernel takes less only when its buffer is
 * full, and then an EPOLLOUT edge follows: one write is enough. */
static int flush(struct conn *c)
{
	ssize_t w;

	struct pipe_pair *p = conn_pipe(c);
	if (p) {
		w = splice(p->r, NULL, c->fd, NULL, p->len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (w < 0)
			return errno == EAGAIN ? 0 : -errno;
		sent(c, w);
		p->len -= (uint32_t)w;
		if (p->len == 0) {
			pipepool_put(&conns.pipes, p);
			conn_set_pipe(c, NULL);
		}
		return 0;
	}
	struct buf *b = conn_out(c);
	w = send(c->fd, b->data + b->off, b->len, MSG_NOSIGNAL);
	if (w < 0)
		return errno == EAGAIN ? 0 : -errno;
	sent(c, w);
	b->off += (uint32_t)w;
	b->len -= (uint32_t)w;
	if (b->len == 0) {
		bufpool_put(&conns.pool, b);
		conn_set_out(c, NULL);
	}
	return 0;
}

/* The client has stopped reading with bytes still in the pipe: move them
 * into a buffer (they fit: a pipe is filled with at most buffer_size) and
 * give the pipe back, so that a blocked client holds one fd, its socket,
 * and not three. Bulk data resumes through pipes once it reads again. */
static int park(struct conn *c)
{
	struct pipe_pair *p = conn_pipe(c);
	struct buf *b = bufpool_get(&conns.pool, c->policy->buffer_size);
	ssize_t n;

	if (!b)
		return -ENOMEM;
	n = read(p->r, b->data, p->len);
	if (n != (ssize_t)p->len) {
		bufpool_put(&conns.pool, b);
		return n < 0 ? -errno : -EIO;
	}
	b->len = (uint32_t)n;
	p->len = 0;
	pipepool_put(&conns.pipes, p);
	conn_set_out(c, b);
	return 0;
}

int conn_echo(struct conn *c, const char *data, size_t n)
{
	/* MSG_NOSIGNAL: a vanished client must not raise SIGPIPE, whatever
	 * the signal's disposition. */
	ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);

	if (w < 0) {
		if (errno != EAGAIN)
			return -errno;
		w = 0;
	}
	conns.stats->bytes += (uint64_t)w;
	if (c->x)
		c->x->bytes_out += (uint64_t)w;
	if ((size_t)w == n)
		return 0;
	/* n is at most buffer_size, except for the data that came in the
	 * same read as a PROXY header (less than PROXY_HEADER_MAX more):
	 * that once, the buffer is as large as it must be, and pump() reads
	 * nothing more into it until it is back under buffer_size. */
	size_t cap = c->policy->buffer_size;
	if (n - (size_t)w > cap)
		cap = n - (size_t)w;
	struct buf *b = bufpool_get(&conns.pool, (uint32_t)cap);
	if (!b)
		return -ENOMEM;
	memcpy(b->data, data + w, n - (size_t)w);
	b->len = (uint32_t)(n - (size_t)w);
	conn_set_out(c, b);
	return 0;
}

/* What one wakeup may still do for a connection. */
struct budget {
	int reads;
	ssize_t bytes;
};

static bool spent(const struct budget *b)
{
	return b->reads <= 0 || b->bytes <= 0;
}

/* Whether the next read may go through a pipe: nothing pending (a pipe is
 * never held across wakeups, see park()), nothing to transform, no urgent
 * mark to stop at. */
static bool can_splice(const struct conn *c)
{
	return !conn_pending(c) && c->policy->transform == TRANSFORM_NONE && !(c->flags & C_URGENT);
}

/* Bulk data: socket -> pipe -> socket with splice(2), never copied
 * through user space. Ends when the socket is drained (a short splice does
 * not prove that, so this path reads until EAGAIN), or when the budget is
 * spent (0). Returns 1 when the caller must go on copying: no pipe to be
 * had, or the client stopped reading and its bytes were parked in a
 * buffer. */
static int pump_splice(struct conn *c, struct budget *bud)
{
	size_t room = c->policy->buffer_size < PIPE_CAPACITY ? c->policy->buffer_size : PIPE_CAPACITY;

	while (!spent(bud)) {
		struct pipe_pair *p = pipepool_get(&conns.pipes);
		ssize_t n;
		int r;

		if (!p)
			return 1; /* no pipe to be had: copy instead */
		bud->reads--;
		conn_set_pipe(c, p);
		n = splice(c->fd, NULL, p->w, NULL, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n <= 0) {
			int e = errno;
			pipepool_put(&conns.pipes, p);
			conn_set_pipe(c, NULL);
			c->flags &= (uint16_t)~C_BLOCKED;
			if (n == 0) {
				c->flags |= C_EOF;
				return 0;
			}
			return e == EAGAIN ? 0 : -e;
		}
		c->last_active = conns.loop->now_ms;
		if (c->x)
			c->x->bytes_in += (uint64_t)n;
		bud->bytes -= n;
		p->len = (uint32_t)n;
		if ((size_t)n == room)
			c->flags |= C_BULK;
		r = flush(c);
		if (r < 0)
			return r;
		if (conn_pipe(c)) {
			/* The client is not keeping up: keep its bytes in a
			 * buffer, and read on into it (within buffer_size). */
			return park(c) < 0 ? -ENOMEM : 1;
		}
	}
	loop_defer(conns.loop, &c->io);
	return 0;
}

/* A wakeup of a streaming connection that moves less than this ends its
 * streaming: it starts with recv() again. */
#define BULK_MIN_BYTES 2048

/* Reads and echoes until the socket is drained, the buffer is full, or
 * the budget (reads and bytes) is spent. */
static int pump(struct conn *c)
{
	struct budget bud = { READS_PER_EVENT, BYTES_PER_EVENT };

	/* A connection streaming bulk data (a read has filled a pipe) starts
	 * its wakeups with splice: starting with recv(), a wakeup that finds
	 * less than a full read copies it all through user space, and at
	 * a NIC's pace most do (over veth, 12 recv calls per MB and a fifth
	 * of the CPU in copies; bench/RESULTS.md, streaming over veth). It
	 * costs a splice that sees EAGAIN where a short recv would have
	 * proved the socket empty, so a wakeup that moves less than
	 * BULK_MIN_BYTES (request and response again) goes back to recv. */
	if ((c->flags & C_BULK) && can_splice(c)) {
		ssize_t before = bud.bytes;
		int r = pump_splice(c, &bud);
		if (before - bud.bytes < BULK_MIN_BYTES)
			c->flags &= (uint16_t)~C_BULK;
		if (r <= 0)
			return r;
	}
	while (!spent(&bud)) {
		struct buf *b = conn_out(c);
		size_t room;
		char *dst;
		ssize_t n;

		if (b) {
			/* The kernel's send buffer is full: collect into ours,
			 * up to buffer_size, and stop there (backpressure). */
			if (b->off) {
				memmove(b->data, b->data + b->off, b->len);
				b->off = 0;
			}
			/* buffer_size, not the capacity: see conn_echo(). */
			room = b->len < c->policy->buffer_size ? c->policy->buffer_size - b->len : 0;
			if (room == 0) {
				c->flags |= C_BLOCKED;
				return 0;
			}
			dst = b->data + b->len;
		} else {
			room = c->policy->buffer_size < SCRATCH_SIZE ? c->policy->buffer_size : SCRATCH_SIZE;
			dst = conns.scratch;
		}
		bud.reads--;
		n = recv(c->fd, dst, room, 0);
		if (n <= 0) {
			c->flags &= (uint16_t)~C_BLOCKED;
			if (n == 0) {
				c->flags |= C_EOF;
				return 0;
			}
			return errno == EAGAIN ? 0 : -errno;
		}
		c->last_active = conns.loop->now_ms;
		if (c->x)
			c->x->bytes_in += (uint64_t)n;
		bud.bytes -= n;
		transform_apply(c->policy->transform, dst, (size_t)n);
		if (b) {
			b->len += (uint32_t)n;
		} else {
			int r = conn_echo(c, dst, (size_t)n);
			if (r < 0)
				return r;
		}
		if ((size_t)n < room) {
			if (c->flags & C_EXACT)
				continue; /* only EAGAIN says the socket is empty */
			/* A short read drained the socket; the next data brings a
			 * new edge, so no read just to see EAGAIN. If FIN has
			 * arrived, this was the last of the data. */
			c->flags &= (uint16_t)~C_BLOCKED;
			if (c->flags & C_RDHUP)
				c->flags |= C_EOF;
			return 0;
		}
		/* A full read: bulk data is flowing. Unless it must be
		 * transformed, move the rest without copying it. */
		if (can_splice(c)) {
			int r = pump_splice(c, &bud);
			if (r <= 0)
				return r;
		}
	}
	loop_defer(conns.loop, &c->io);
	return 0;
}

void conn_io(struct io *io, uint32_t events)
{
	struct conn *c = container_of(io, struct conn, io);
	bool drained = false; /* the PROXY header's read emptied the socket */
	int r;

	if (events & EPOLLRDHUP)
		c->flags |= C_RDHUP;
	if (events & EPOLLPRI)
		c->flags |= C_EXACT | C_URGENT; /* for the rest of its life: rare */
	if (c->flags & C_LINGER) {
		/* FIN is sent: what the client still sends is not echoed,
		 * only read, so that closing does not reset the echoes it
		 * has not read yet. Its FIN ends it. */
		ssize_t n = 0;
		/* A stream's turn, no more (and one read at the least). */
		int budget = BYTES_PER_EVENT > SCRATCH_SIZE ? BYTES_PER_EVENT / SCRATCH_SIZE : 1;
		while (budget-- > 0 && (n = recv(c->fd, conns.scratch, SCRATCH_SIZE, 0)) > 0)
			;
		if (n > 0)
			loop_defer(conns.loop, &c->io); /* the rest after the others */
		else if (n == 0 || errno != EAGAIN)
			conn_close(c, "max_connection_time");
		return;
	}
	if (conn_pending(c)) {
		r = flush(c);
		if (r < 0) {
			conn_close(c, strerror(-r));
			return;
		}
	}
	if (c->flags & C_PROXY) {
		r = conn_read_proxy(c);
		if (r <= 0) {
			if (r < 0)
				conn_close(c, "bad PROXY header");
			return;
		}
		drained = r == 2;
	}
	/* An EPOLLOUT-only edge needs no read, unless a full buffer had
	 * stopped reading and the flush has made room. */
	if (!(c->flags & (C_EOF | C_EXPIRED)) && !drained &&
	    (events == 0 || (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ||
	     ((c->flags & C_BLOCKED) && !conn_pipe(c) &&
	      (!conn_out(c) || conn_out(c)->len < c->policy->buffer_size)))) {
		r = pump(c);
		if (r < 0) {
			conn_close(c, strerror(-r));
			return;
		}
	}
	if (conn_pending(c)) {
		if (!(c->flags & C_WOUT)) {
			/* Re-arming also reports EPOLLOUT at once if the
			 * client has caught up meanwhile: no edge is lost. */
			r = loop_mod(conns.loop, c->fd, CONN_EVENTS | EPOLLOUT, &c->io);
			if (r < 0) {
				conn_close(c, strerror(-r));
				return;
			}
			c->flags |= C_WOUT;
		}
		return;
	}
	if (c->flags & C_EXPIRED) {
		/* All sent: FIN goes after the last echo. */
		c->flags |= C_LINGER;
		shutdown(c->fd, SHUT_WR);
		conn_io(&c->io, 0);
	} else if (c->flags & C_EOF) {
		conn_close(c, "end of input");
	} else if ((c->flags & C_DRAIN) && !c->io.deferred &&
		 conns.loop->now_ms - c->last_active >= DRAIN_QUIET_MS) {
		/* Shutting down, all echoed, input drained, and the client
		 * quiet for a while: a close now sends FIN, not a reset. One
		 * that spoke recently is closed by the quiet timer once it
		 * falls silent, or when it half-closes. */
		conn_close(c, "shutting down");
	}
}

void conn_close_all(void)
{
	for (size_t fd = 0; fd < conns.hwm; fd++)
		if (conns.table[fd].flags & C_OPEN)
			conn_close(&conns.table[fd], "shutting down");
}
