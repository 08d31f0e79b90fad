#include "acceptor.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "datagram.h"
#include "log.h"
#include "util.h"

/* Accepts per wakeup before the listener yields to the connections. */
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

static void pause_listener(struct listener *l)
{
	if (!l->paused) {
		l->paused = true;
		A.n_paused++;
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

	for (int budget = ACCEPTS_PER_EVENT; budget > 0; budget--) {
		if (A.max_connections && A.stats->current >= A.max_connections) {
			/* New clients wait in the backlog until one ends. */
			if (!l->paused)
				A.stats->refused++;
			pause_listener(l);
			return;
		}
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			switch (errno) {
			case EAGAIN:
				return;
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
			default:
				log_err("accept on %s failed: %s", l->name, strerror(errno));
				return;
			}
		}
		conn_open(fd);
	}
	loop_defer(A.loop, &l->io);
}

static void retry_timer(struct timer *t)
{
	struct listener *l = container_of(t, struct listener, retry);

	if (l->paused) {
		l->paused = false;
		A.n_paused--;
	}
	accept_io(&l->io, 0);
}

void acceptor_conn_closed(void)
{
	if (A.n_paused == 0)
		return;
	for (struct listener *l = *A.list; l; l = l->next) {
		if (!l->paused)
			continue;
		l->paused = false;
		A.n_paused--;
		loop_timer_stop(A.loop, &l->retry);
		loop_defer(A.loop, &l->io);
	}
}

int acceptor_start(struct listener *l)
{
	l->io.fn = l->kind == LISTEN_UDP ? datagram_io : accept_io;
	l->retry.fn = retry_timer;
	return loop_add(A.loop, l->fd, EPOLLIN | EPOLLET, &l->io);
}

void acceptor_stop(struct listener *l)
{
	if (l->paused) {
		l->paused = false;
		A.n_paused--;
	}
	loop_timer_stop(A.loop, &l->retry);
	loop_undefer(&l->io);
	loop_del(A.loop, l->fd);
}
