#include "acceptor.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "datagram.h"
#include "log.h"
#include "util.h"

/* Accepts in one pass when clients queue up, before the listener yields
 * to the connections. */
#define ACCEPTS_PER_EVENT 64
/* Out of fds: retry this late unless a connection ends first. */
#define FD_RETRY_MS 1000
/* At most one "out of file descriptors" warning in this interval. */
#define FD_WARN_INTERVAL_MS 10000

static struct {
	struct loop *loop;
	struct stats *stats;
	struct listener **list;
	uint64_t max_connections;
	unsigned n_paused;
	uint64_t last_fd_warning;
	bool fd_warned;
} A;

void acceptor_init(struct loop *loop, struct stats *stats, struct listener **list)
{
	memset(&A, 0, sizeof(A));
	A.loop = loop;
	A.stats = stats;
	A.list = list;
}

void acceptor_set_limits(uint64_t max_connections, int transform)
{
	A.max_connections = max_connections;
	datagram_set_transform(transform);
	/* A raised limit may let waiting clients in now. */
	acceptor_conn_closed();
}

/* Stream listeners are level-triggered, as nginx has them: epoll reports
 * a listener in every pass while clients wait in its queue. So one accept
 * per report loses nobody, and no round of accepts has to end with an
 * accept4() that fails with EAGAIN, the price edge-triggering charged each
 * wakeup (under a connect storm most wakeups find a single client). Only
 * a listener reported in two passes in a row has a queue worth emptying at
 * once, and then the failing accept4() is shared by many. A paused
 * listener leaves the interest set, or it would be reported in every
 * pass. */
#define LISTEN_EVENTS EPOLLIN

static void pause_listener(struct listener *l)
{
	if (!l->paused) {
		l->paused = true;
		A.n_paused++;
		loop_mod(A.loop, l->fd, 0, &l->io);
	}
}

static void resume_listener(struct listener *l)
{
	if (l->paused) {
		l->paused = false;
		A.n_paused--;
		if (loop_mod(A.loop, l->fd, LISTEN_EVENTS, &l->io) < 0)
			log_err("cannot watch %s again: %s", l->name, strerror(errno));
	}
}

static void fd_exhausted(struct listener *l, int err)
{
	uint64_t now = A.loop->now_ms;

	A.stats->refused++;
	if (!A.fd_warned || now - A.last_fd_warning >= FD_WARN_INTERVAL_MS) {
		log_warning("cannot accept on %s: %s; out of file descriptors, pausing accepts "
			    "until a connection ends (%llu connections open)",
			    l->name, strerror(err), (unsigned long long)A.stats->current);
		A.fd_warned = true;
		A.last_fd_warning = now;
	}
	pause_listener(l);
	/* ENFILE is system-wide: fds may be freed by others, not by us. */
	loop_timer_in(A.loop, &l->retry, FD_RETRY_MS);
}

static void accept_io(struct io *io, uint32_t events)
{
	struct listener *l = container_of(io, struct listener, io);
	int budget = l->last_pass + 1 == A.loop->pass ? ACCEPTS_PER_EVENT : 1;

	l->last_pass = A.loop->pass;
	for (; budget > 0; budget--) {
		if (A.max_connections && A.stats->current >= A.max_connections) {
			/* New clients wait in the backlog until one ends. */
			A.stats->refused++;
			pause_listener(l);
			return;
		}
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_open(fd, l->defer_accept);
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
		case EPERM: /* refused by a firewall rule */
			continue;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			fd_exhausted(l, errno);
			return;
		case EAGAIN:
			return;
		default:
			log_err("accept on %s failed: %s", l->name, strerror(errno));
			return;
		}
	}
}

static void retry_timer(struct timer *t)
{
	resume_listener(container_of(t, struct listener, retry));
}

void acceptor_conn_closed(void)
{
	if (A.n_paused == 0)
		return;
	for (struct listener *l = *A.list; l; l = l->next) {
		if (!l->paused)
			continue;
		loop_timer_stop(A.loop, &l->retry);
		resume_listener(l);
	}
}

int acceptor_start(struct listener *l)
{
	l->io.fn = l->kind == LISTEN_UDP ? datagram_io : accept_io;
	l->retry.fn = retry_timer;
	if (l->kind == LISTEN_UDP)
		return loop_add(A.loop, l->fd, EPOLLIN | EPOLLET, &l->io);
	return loop_add(A.loop, l->fd, LISTEN_EVENTS, &l->io);
}

void acceptor_stop(struct listener *l)
{
	if (l->paused) {
		l->paused = false;
		A.n_paused--;
	}
	loop_timer_stop(A.loop, &l->retry);
	/* A UDP listener may be on the deferred list (a flood), and either
	 * kind may have an event later in the batch: both must go before
	 * the listener is freed. */
	loop_forget(A.loop, &l->io);
	loop_del(A.loop, l->fd);
}
