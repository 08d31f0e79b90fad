#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bufpool.h"
#include "config.h"
#include "log.h"
#include "pipepool.h"
#include "transform.h"
#include "util.h"

/* Reads per wakeup before a connection yields to the others (libuv uses
 * 32); what is left is served from the deferred list, without an edge. */
#define READS_PER_EVENT 16
/* The shared read buffer: data is written back straight from here, and
 * only an unsent remainder is copied into a buffer of the connection's. */
#define SCRATCH_SIZE (64 * 1024)
/* Memory in free buffers kept for reuse: enough for bursts (16 buffers
 * of the default 64K), small when idle, none for buffers over 1M. */
#define POOL_MAX_FREE_BYTES (1024 * 1024)
/* Free pipes kept for reuse (two fds each). */
#define PIPES_MAX_FREE 16
/* Shutting down, a connection is closed once it has been quiet this long
 * with nothing pending: an empty receive queue only says the socket is
 * empty now, not that the client has finished, and a close while its data
 * is still on the way would answer it with a reset that destroys the
 * echoes it has not read yet. */
#define DRAIN_QUIET_MS 1000


enum {
	C_OPEN = 1 << 0,
	C_EOF = 1 << 1,     /* the client sent FIN: nothing more to read */
	C_RDHUP = 1 << 2,   /* FIN has arrived: a short read means EOF */
	C_BLOCKED = 1 << 3, /* stopped reading: the buffer is full */
	C_DRAIN = 1 << 4,   /* shutting down: close once idle */
	C_WOUT = 1 << 5,    /* EPOLLOUT is in the interest set */
	/* A short read does not prove the socket empty: read until EAGAIN.
	 * Unix sockets stop a read at every message that carries file
	 * descriptors or other credentials; TCP stops at the urgent mark. */
	C_EXACT = 1 << 6,
	C_URGENT = 1 << 7,  /* urgent data seen: recv() only (splice stalls at the mark) */
};

struct conn {
	struct io io;
	struct timer idle;
	/* Unsent bytes, in a buffer or (bulk data) in a pipe; both NULL
	 * whenever nothing is pending, and never both set. */
	struct buf *out;
	struct pipe_pair *pipe;
	struct policy *policy;
	uint64_t last_active; /* last byte read or sent (loop clock) */
	int fd;
	uint8_t flags;
};

static struct {
	struct loop *loop;
	struct conn *conns; /* indexed by fd */
	size_t n_conns;
	size_t hwm; /* highest fd used + 1 */
	struct bufpool pool;
	struct pipepool pipes;
	char *scratch;
	struct policy *policy;
	struct stats *stats;
	void (*on_close)(void);
} conns;

struct policy *policy_new(uint32_t buffer_size, int transform, uint64_t idle_timeout_ms)
{
	struct policy *p = malloc(sizeof(*p));

	if (!p)
		return NULL;
	p->refs = 1;
	p->buffer_size = buffer_size;
	p->transform = (uint8_t)transform;
	p->idle_timeout_ms = idle_timeout_ms;
	return p;
}

void policy_unref(struct policy *p)
{
	if (p && --p->refs == 0)
		free(p);
}

static void conn_io(struct io *io, uint32_t events);
static void conn_idle(struct timer *t);

/* EPOLLPRI reports TCP urgent data, which arrives inline (SO_OOBINLINE on
 * the listener) but changes how the socket must be read. */
#define CONN_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLPRI | EPOLLET)

int conn_table_init(struct loop *loop, size_t fd_limit, struct stats *stats, void (*on_close)(void))
{
	memset(&conns, 0, sizeof(conns));
	conns.loop = loop;
	conns.stats = stats;
	conns.on_close = on_close;
	/* calloc of a large table maps fresh zero pages: a slot costs memory
	 * only once a connection with that fd has used it. */
	conns.conns = calloc(fd_limit, sizeof(*conns.conns));
	conns.scratch = malloc(SCRATCH_SIZE);
	if (!conns.conns || !conns.scratch) {
		conn_table_free();
		return -ENOMEM;
	}
	conns.n_conns = fd_limit;
	bufpool_init(&conns.pool, 16 * 1024, POOL_MAX_FREE_BYTES);
	pipepool_init(&conns.pipes, PIPES_MAX_FREE);
	return 0;
}

void conn_table_free(void)
{
	conn_close_all();
	free(conns.conns);
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

static void conn_close(struct conn *c, const char *why)
{
	log_debug("connection %d closed: %s", c->fd, why);
	loop_forget(conns.loop, &c->io);
	loop_timer_stop(conns.loop, &c->idle);
	if (c->out)
		bufpool_put(&conns.pool, c->out);
	if (c->pipe)
		pipepool_put(&conns.pipes, c->pipe);
	/* close(2) also removes it from the epoll set (no dup'ed fds). */
	close(c->fd);
	policy_unref(c->policy);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	conns.stats->current--;
	if (conns.on_close)
		conns.on_close();
}

int conn_open(int fd, bool sent_first, bool exact_reads)
{
	struct conn *c;
	int r;

	if (fd < 0 || (size_t)fd >= conns.n_conns) {
		close(fd);
		return -EMFILE;
	}
	c = &conns.conns[fd];
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->flags = C_OPEN | (exact_reads ? C_EXACT : 0);
	c->io.fn = conn_io;
	c->idle.fn = conn_idle;
	c->policy = conns.policy;
	c->policy->refs++;
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
	if (r == 0 && c->policy->idle_timeout_ms) {
		r = loop_timer_in(conns.loop, &c->idle, c->policy->idle_timeout_ms);
	}
	if (r < 0) {
		log_warning("cannot register connection: %s", strerror(-r));
		conn_close(c, "registration failed");
		return r;
	}
	log_debug("connection %d opened", fd);
	if (sent_first)
		conn_io(&c->io, EPOLLIN);
	return 0;
}

static bool pending(const struct conn *c)
{
	return c->out || c->pipe;
}

static void sent(struct conn *c, ssize_t w)
{
	conns.stats->bytes += (uint64_t)w;
	c->last_active = conns.loop->now_ms;
}

/* Writes what is pending. The kernel takes less only when its buffer is
 * full, and then an EPOLLOUT edge follows: one write is enough. */
static int flush(struct conn *c)
{
	ssize_t w;

	if (c->pipe) {
		struct pipe_pair *p = c->pipe;
		w = splice(p->r, NULL, c->fd, NULL, p->len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (w < 0)
			return errno == EAGAIN ? 0 : -errno;
		sent(c, w);
		p->len -= (uint32_t)w;
		if (p->len == 0) {
			pipepool_put(&conns.pipes, p);
			c->pipe = NULL;
		}
		return 0;
	}
	struct buf *b = c->out;
	w = send(c->fd, b->data + b->off, b->len, MSG_NOSIGNAL);
	if (w < 0)
		return errno == EAGAIN ? 0 : -errno;
	sent(c, w);
	b->off += (uint32_t)w;
	b->len -= (uint32_t)w;
	if (b->len == 0) {
		bufpool_put(&conns.pool, b);
		c->out = NULL;
	}
	return 0;
}

/* The client has stopped reading with bytes still in the pipe: move them
 * into a buffer (they fit: a pipe is filled with at most buffer_size) and
 * give the pipe back, so that a blocked client holds one fd, its socket,
 * and not three. Bulk data resumes through pipes once it reads again. */
static int park(struct conn *c)
{
	struct pipe_pair *p = c->pipe;
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
	c->pipe = NULL;
	c->out = b;
	return 0;
}

/* Sends data straight back; keeps only what the kernel did not take. */
static int echo(struct conn *c, const char *data, size_t n)
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
	if ((size_t)w == n)
		return 0;
	c->out = bufpool_get(&conns.pool, c->policy->buffer_size);
	if (!c->out)
		return -ENOMEM;
	memcpy(c->out->data, data + w, n - (size_t)w);
	c->out->len = (uint32_t)(n - (size_t)w);
	return 0;
}

/* Bulk data: socket -> pipe -> socket with splice(2), never copied
 * through user space. Ends when the socket is drained (a short splice does
 * not prove that, so this path reads until EAGAIN), or when the budget is
 * spent (0). Returns 1 when the caller must go on copying: no pipe to be
 * had, or the client stopped reading and its bytes were parked in a
 * buffer. */
static int pump_splice(struct conn *c, int budget)
{
	size_t room = c->policy->buffer_size < PIPE_CAPACITY ? c->policy->buffer_size : PIPE_CAPACITY;

	for (; budget > 0; budget--) {
		struct pipe_pair *p = pipepool_get(&conns.pipes);
		ssize_t n;
		int r;

		if (!p)
			return 1; /* no pipe to be had: copy instead */
		c->pipe = p;
		n = splice(c->fd, NULL, p->w, NULL, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n <= 0) {
			int e = errno;
			pipepool_put(&conns.pipes, p);
			c->pipe = NULL;
			c->flags &= (uint8_t)~C_BLOCKED;
			if (n == 0) {
				c->flags |= C_EOF;
				return 0;
			}
			return e == EAGAIN ? 0 : -e;
		}
		c->last_active = conns.loop->now_ms;
		p->len = (uint32_t)n;
		r = flush(c);
		if (r < 0)
			return r;
		if (c->pipe) {
			/* The client is not keeping up: keep its bytes in a
			 * buffer, and read on into it (within buffer_size). */
			return park(c) < 0 ? -ENOMEM : 1;
		}
	}
	loop_defer(conns.loop, &c->io);
	return 0;
}

/* Reads and echoes until the socket is drained, the buffer is full, or
 * the budget is spent. */
static int pump(struct conn *c)
{
	for (int budget = READS_PER_EVENT; budget > 0; budget--) {
		struct buf *b = c->out;
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
			room = b->cap - b->len;
			if (room == 0) {
				c->flags |= C_BLOCKED;
				return 0;
			}
			dst = b->data + b->len;
		} else {
			room = c->policy->buffer_size < SCRATCH_SIZE ? c->policy->buffer_size : SCRATCH_SIZE;
			dst = conns.scratch;
		}
		n = recv(c->fd, dst, room, 0);
		if (n <= 0) {
			c->flags &= (uint8_t)~C_BLOCKED;
			if (n == 0) {
				c->flags |= C_EOF;
				return 0;
			}
			return errno == EAGAIN ? 0 : -errno;
		}
		c->last_active = conns.loop->now_ms;
		transform_apply(c->policy->transform, dst, (size_t)n);
		if (b) {
			b->len += (uint32_t)n;
		} else {
			int r = echo(c, dst, (size_t)n);
			if (r < 0)
				return r;
		}
		if ((size_t)n < room) {
			if (c->flags & C_EXACT)
				continue; /* only EAGAIN says the socket is empty */
			/* A short read drained the socket; the next data brings a
			 * new edge, so no read just to see EAGAIN. If FIN has
			 * arrived, this was the last of the data. */
			c->flags &= (uint8_t)~C_BLOCKED;
			if (c->flags & C_RDHUP)
				c->flags |= C_EOF;
			return 0;
		}
		/* A full read: bulk data is flowing. Unless it must be
		 * transformed, move the rest without copying it. */
		if (!c->out && c->policy->transform == TRANSFORM_NONE && !(c->flags & C_URGENT)) {
			int r = pump_splice(c, budget - 1);
			if (r <= 0)
				return r;
		}
	}
	loop_defer(conns.loop, &c->io);
	return 0;
}

static void conn_io(struct io *io, uint32_t events)
{
	struct conn *c = container_of(io, struct conn, io);
	int r;

	if (events & EPOLLRDHUP)
		c->flags |= C_RDHUP;
	if (events & EPOLLPRI)
		c->flags |= C_EXACT | C_URGENT; /* for the rest of its life: rare */
	if (pending(c)) {
		r = flush(c);
		if (r < 0) {
			conn_close(c, strerror(-r));
			return;
		}
	}
	/* An EPOLLOUT-only edge needs no read, unless a full buffer had
	 * stopped reading and the flush has made room. */
	if (!(c->flags & C_EOF) &&
	    (events == 0 || (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ||
	     ((c->flags & C_BLOCKED) && !c->pipe && (!c->out || c->out->len < c->out->cap)))) {
		r = pump(c);
		if (r < 0) {
			conn_close(c, strerror(-r));
			return;
		}
	}
	if (pending(c)) {
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
	if (c->flags & C_EOF)
		conn_close(c, "end of input");
	else if ((c->flags & C_DRAIN) && !c->io.deferred &&
		 conns.loop->now_ms - c->last_active >= DRAIN_QUIET_MS)
		/* Shutting down, all echoed, input drained, and the client
		 * quiet for a while: a close now sends FIN, not a reset. One
		 * that spoke recently is closed by the quiet timer once it
		 * falls silent (conn_idle), or when it half-closes. */
		conn_close(c, "shutting down");
}

/* Lazy idle timer: activity only stores a time stamp; the timer checks
 * it when it fires and re-arms itself for the real deadline. While
 * shutting down it is the quiet timer: nothing pending, nothing read for
 * DRAIN_QUIET_MS, and the client is taken to have finished. */
static void conn_idle(struct timer *t)
{
	struct conn *c = container_of(t, struct conn, idle);
	bool draining = c->flags & C_DRAIN;
	uint64_t due = c->last_active + (draining ? DRAIN_QUIET_MS : c->policy->idle_timeout_ms);

	if (draining && due <= conns.loop->now_ms && (pending(c) || c->io.deferred))
		/* Still at work, or waiting for the client to read (the
		 * shutdown timeout bounds that): look again later. */
		due = conns.loop->now_ms + DRAIN_QUIET_MS;
	if (due > conns.loop->now_ms && loop_timer_at(conns.loop, t, due) == 0)
		return;
	conn_close(c, draining ? "shutting down" : "idle timeout");
}

void conn_drain_all(void)
{
	for (size_t fd = 0; fd < conns.hwm; fd++) {
		struct conn *c = &conns.conns[fd];
		if (!(c->flags & C_OPEN) || (c->flags & C_DRAIN))
			continue;
		c->flags |= C_DRAIN;
		if (loop_timer_at(conns.loop, &c->idle, c->last_active + DRAIN_QUIET_MS) < 0) {
			conn_close(c, "shutting down");
			continue;
		}
		conn_io(&c->io, 0);
	}
}

void conn_close_all(void)
{
	for (size_t fd = 0; fd < conns.hwm; fd++)
		if (conns.conns[fd].flags & C_OPEN)
			conn_close(&conns.conns[fd], "shutting down");
}
