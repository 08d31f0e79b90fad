/*
 * Stream-socket connections (TCP, Unix): open, read and verify, write, fail
 * and close. What a connection sends, and what a verified echo means, is
 * the mode's business (struct bench_mode); this file only moves the bytes.
 * The slot bookkeeping (run and retry queues, close, fail, primed) serves
 * the datagram engine (udp.c) as well.
 *
 * Every socket is registered once with EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET,
 * so the per-message path is epoll_wait (amortized), read, compare, writev:
 * no epoll_ctl, no allocation.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench.h"
#include "stream.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static unsigned char rbuf[RBUF_SIZE] __attribute__((aligned(64)));

/* A connection with work left over from a budget: served again before the
 * next epoll_wait sleeps. */
void runq_push(struct conn *c)
{
	if (!c->queued) {
		c->queued = 1;
		g.runq[g.runq_n++] = (uint32_t)(c - g.conns);
	}
}

/*
 * Start c again after RETRY_NS: a C_RETRY slot repeats its connect, a C_FREE
 * one (connect mode, after a failure) gets a new connection. Never started
 * from the failure path itself, so a refusing server cannot recurse us.
 */
void retry_push(struct conn *c)
{
	if (!c->retrying) {
		c->retrying = 1;
		g.retryq[g.retryq_n++] = (uint32_t)(c - g.conns);
	}
}

void conn_close(struct conn *c, enum cstate next)
{
	if (c->fd >= 0) {
		if (opt.reset) {
			struct linger lg = { 1, 0 };

			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(c->fd);
		c->fd = -1;
	}
	if (c->pending) {
		c->pending = 0;
		g.opening--;
	}
	if ((opt.mode->flags & BM_RECYCLES) && c->state != C_FREE && c->state != C_DEAD)
		g.active--;
	c->state = (uint8_t)next;
	c->rmore = 0;
	c->wblocked = 0;
}

/* Stream mode: load is issued as long as the socket takes it. */
static inline int endless(void)
{
	return (opt.mode->flags & BM_ENDLESS) && issuing();
}

void conn_fail(struct conn *c, enum fail why, int err)
{
	const char *what = why == FAIL_MISMATCH ? "echoed bytes differ from those sent"
			   : why == FAIL_EOF	 ? "closed by the server"
						 : strerror(err);

	if (why == FAIL_MISMATCH)
		g.mismatches++;
	else
		g.conn_errors++;
	if (!g.first_errno)
		g.first_errno = why == FAIL_ERRNO ? err : why == FAIL_EOF ? ECONNRESET : EBADMSG;
	if (g.mismatches + g.conn_errors <= 10)
		note("connection %u: %s (after %" PRIu64 " %s echoed)",
		     (unsigned)(c - g.conns), what, c->recvd, count_unit());
	conn_close(c, (opt.mode->flags & BM_RECYCLES) ? C_FREE : C_DEAD);
	if ((opt.mode->flags & BM_RECYCLES) && issuing())
		retry_push(c);
}


/* The connection completed: the mode issues its first message. */
static void conn_established(struct conn *c, uint64_t now)
{
	c->state = C_OPEN;
	c->t_progress = now;
	opt.mode->on_established(c, now);
}

/* Open a connection in slot c. Returns 0, or -1 if it failed (counted). */
int conn_start(struct conn *c, uint64_t now)
{
	struct epoll_event ev;
	int fd, rc, err, one = 1;

	if (c->state != C_RETRY) {
		c->t_start = now;
		c->key = mix64(opt.seed ^ mix64(++g.serial));
		c->target = c->sent = c->recvd = 0;
		c->primed = 0;
		c->stalled = 0;
		if (!c->pending && !(opt.mode->flags & BM_RECYCLES)) {
			c->pending = 1;
			g.opening++;
		}
		if (opt.mode->flags & BM_RECYCLES)
			g.active++;
	}
	c->t_progress = now;
	c->state = C_CONNECTING;
	fd = socket(opt.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	c->fd = fd;
	if (opt.addr.ss_family != AF_UNIX &&
	    (opt.mode->flags & BM_NODELAY))
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (opt.source_addrs > 0) {
		struct sockaddr_in src;

		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr.s_addr =
			htonl(0x7f000002u + (uint32_t)(g.serial % opt.source_addrs));
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
			goto fail;
	}
	rc = connect(fd, (struct sockaddr *)&opt.addr, opt.addrlen);
	if (rc < 0 && errno != EINPROGRESS)
		goto fail;
	/* Registered once, after connect(): a socket that is not yet
	 * connecting would report EPOLLHUP. */
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.u64 = ((uint64_t)(uint32_t)fd << 32) | (uint32_t)(c - g.conns);
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		goto fail;
	if (rc == 0) { /* Unix sockets connect at once */
		conn_established(c, now);
		conn_write(c);
	}
	return 0;

fail:
	err = errno;
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (err == EAGAIN || err == EADDRNOTAVAIL || err == EADDRINUSE ||
	    err == ENOBUFS) {
		/* Full Unix-socket backlog or no free local port: try again soon. */
		if (err != EAGAIN)
			g.addr_retries++;
		c->state = C_RETRY;
		retry_push(c);
		return 0;
	}
	conn_fail(c, FAIL_ERRNO, err);
	return -1;
}

void conn_primed(struct conn *c)
{
	c->primed = 1;
	if (c->pending) {
		c->pending = 0;
		g.opening--;
	}
	g.opened++;
}

/* Read and check until the socket is drained. Returns -1 if c was closed. */
static int conn_read(struct conn *c, uint64_t now)
{
	unsigned budget;

	c->rmore = 0;
	for (budget = READ_BUDGET; budget > 0; budget--) {
		ssize_t n = read(c->fd, rbuf, sizeof(rbuf));

		if (n > 0) {
			uint64_t before = c->recvd;

			if ((uint64_t)n > c->sent - c->recvd ||
			    stream_check(c->key, c->recvd, rbuf, (size_t)n) < 0) {
				conn_fail(c, FAIL_MISMATCH, 0);
				return -1;
			}
			c->recvd += (uint64_t)n;
			c->t_progress = now;
			g.bytes_rx += (uint64_t)n;
			if (opt.mode->on_readable(c, before, now) < 0)
				return -1;
			/* A short read means the socket is drained for now; new
			 * data brings a new edge. */
			if ((size_t)n < sizeof(rbuf))
				return 0;
			continue;
		}
		if (n == 0) {
			conn_fail(c, FAIL_EOF, 0);
			return -1;
		}
		if (errno == EAGAIN)
			return 0;
		if (errno == EINTR)
			continue;
		conn_fail(c, FAIL_ERRNO, errno);
		return -1;
	}
	c->rmore = 1;
	runq_push(c);
	return 0;
}

/* Write what is issued (stream: keep issuing chunks). Returns -1 if closed. */
int conn_write(struct conn *c)
{
	struct iovec iov[MAX_IOV];
	unsigned budget = WRITE_BUDGET;

	while (!c->wblocked) {
		size_t len;
		ssize_t n;
		int cnt;

		if (c->sent == c->target) {
			if (!opt.mode->on_writable || !opt.mode->on_writable(c))
				return 0;
		}
		len = c->target - c->sent > MAX_WRITE ? MAX_WRITE
						       : (size_t)(c->target - c->sent);
		cnt = stream_iov(c->key, c->sent, len, iov);
		/* write() is cheaper than writev() for the common single piece */
		n = cnt == 1 ? write(c->fd, iov[0].iov_base, iov[0].iov_len)
			     : writev(c->fd, iov, cnt);
		if (n < 0) {
			if (errno == EAGAIN) {
				c->wblocked = 1;
				return 0;
			}
			if (errno == EINTR)
				continue;
			conn_fail(c, FAIL_ERRNO, errno);
			return -1;
		}
		c->sent += (uint64_t)n;
		g.bytes_tx += (uint64_t)n;
		if ((size_t)n < len) {
			/* The socket is full; EPOLLOUT comes when it drains. */
			c->wblocked = 1;
			return 0;
		}
		if (--budget == 0) {
			if (c->sent < c->target || endless())
				runq_push(c);
			return 0;
		}
	}
	return 0;
}

void conn_event(struct conn *c, uint32_t ev, uint64_t now)
{
	if (c->state == C_CONNECTING) {
		if (ev & (EPOLLERR | EPOLLHUP)) {
			int err = 0;
			socklen_t len = sizeof(err);

			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
			conn_fail(c, FAIL_ERRNO, err ? err : ECONNRESET);
			return;
		}
		if (!(ev & EPOLLOUT))
			return;
		conn_established(c, now);
	}
	if (c->state != C_OPEN)
		return;
	if (ev & EPOLLOUT)
		c->wblocked = 0;
	if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) || c->rmore)
		if (conn_read(c, now) < 0)
			return;
	if (!c->wblocked &&
	    (c->sent < c->target || endless()))
		conn_write(c);
}

