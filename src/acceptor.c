#include "acceptor.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "guard.h"
#include "log.h"
#include "util.h"

/* Accepts in one wakeup when clients queue up, before the listener
 * yields to the connections. */
#define ACCEPTS_PER_EVENT 64
/* Out of fds: retry this late unless a connection ends first. */
#define FD_RETRY_MS 1000
/* At most one "out of file descriptors" warning in this interval. */
#define FD_WARN_INTERVAL_MS 10000
/* An unexpected accept error: retry this late, and say so at most once
 * in this interval, so that a persistent one neither spins nor floods
 * the log. */
#define ERROR_RETRY_MS 1000
#define ERROR_LOG_INTERVAL_MS 10000

/* What accepting keeps per stream listener, beside the socket. */
struct accepting {
	struct listener *l;
	struct timer retry; /* accepting paused for lack of fds, or after an error */
	uint64_t last_pass; /* the wakeup (loop->pass) that last reported it ready */
	bool paused;        /* out of the loop: at a limit, or retrying */
	bool broken;        /* accept fails for good: out of the loop for ever */
};

static struct {
	struct loop *loop;
	struct stats *stats;
	struct listener **list;
	uint64_t max_connections;
	unsigned n_paused;
	uint64_t last_fd_warning;
	bool fd_warned;
	uint64_t last_error_log;
	uint64_t errors_unlogged;
	bool error_logged;
} acceptor;

void acceptor_init(struct loop *loop, struct stats *stats, struct listener **list)
{
	memset(&acceptor, 0, sizeof(acceptor));
	acceptor.loop = loop;
	acceptor.stats = stats;
	acceptor.list = list;
}

void acceptor_set_limits(uint64_t max_connections)
{
	acceptor.max_connections = max_connections;
	/* A raised limit may let waiting clients in now. */
	acceptor_conn_closed();
}

/* Stream listeners are level-triggered, as nginx has them: epoll reports
 * a listener in every pass while clients wait in its queue. So one accept
 * per report loses nobody, and no round of accepts has to end with an
 * accept4() that fails with EAGAIN, the price edge-triggering charged each
 * wakeup (under a connect storm most wakeups find a single client). Only
 * a listener reported in two wakeups in a row has a queue worth emptying
 * at once, and then the failing accept4() is shared by many. The polls
 * run between deferred streams (loop.c) are wakeups too: beside bulk
 * traffic a queue gets ACCEPTS_PER_EVENT at each of them, as often as a
 * ping-pong client is answered. A paused
 * listener leaves the interest set, or it would be reported in every
 * pass. */
#define LISTEN_EVENTS EPOLLIN

/* A paused listener leaves the epoll set, as nginx has it: an empty
 * interest set is not enough, since EPOLLHUP and EPOLLERR are reported
 * whatever it holds, and a listener shut down by the process that passed
 * it would then be reported in every pass. */
static struct accepting *A(const struct listener *l)
{
	return l->serving;
}

static void pause_listener(struct listener *l)
{
	if (!A(l)->paused) {
		A(l)->paused = true;
		acceptor.n_paused++;
		loop_forget(acceptor.loop, &l->io);
		int r = loop_del(acceptor.loop, l->fd);
		if (r < 0)
			log_errno(LOG_LEVEL_ERR, r, "cannot pause accepting on %s", l->name);
	}
}

static void resume_listener(struct listener *l)
{
	if (A(l)->paused && !A(l)->broken) {
		A(l)->paused = false;
		acceptor.n_paused--;
		int r = loop_add(acceptor.loop, l->fd, LISTEN_EVENTS, &l->io);
		if (r < 0)
			log_errno(LOG_LEVEL_ERR, r, "cannot watch %s again", l->name);
	}
}

static void fd_exhausted(struct listener *l, int err)
{
	uint64_t now = acceptor.loop->now_ms;

	acceptor.stats->accept_waits++;
	if (!acceptor.fd_warned || now - acceptor.last_fd_warning >= FD_WARN_INTERVAL_MS) {
		log_warning("cannot accept on %s: %s; out of %s, pausing accepts "
			    "until a connection ends (%llu connections open)",
			    l->name, strerror(err),
			    err == EMFILE || err == ENFILE ? "file descriptors" : "memory",
			    (unsigned long long)acceptor.stats->current);
		acceptor.fd_warned = true;
		acceptor.last_fd_warning = now;
	}
	pause_listener(l);
	/* ENFILE is system-wide: fds may be freed by others, not by us. */
	if (loop_timer_in(acceptor.loop, &A(l)->retry, FD_RETRY_MS) < 0 && acceptor.stats->current == 0)
		resume_listener(l); /* no timer, and no close to wake it: never stay paused */
}

/* accept4() fails in a way that no retry can mend: the socket no longer
 * listens (the process that passed it shut it down), or is no socket. It
 * leaves the loop, where it would be reported in every pass (a socket
 * shut down reports EPOLLHUP whatever the interest set). */
static bool accept_error_final(int err)
{
	return err == EINVAL || err == EBADF || err == ENOTSOCK || err == EOPNOTSUPP;
}

static void accept_failed(struct listener *l, int err)
{
	uint64_t now = acceptor.loop->now_ms;

	if (accept_error_final(err)) {
		log_err("accept on %s failed: %s; no longer accepting on it", l->name, strerror(err));
		pause_listener(l); /* out of the loop */
		A(l)->broken = true;
		loop_timer_stop(acceptor.loop, &A(l)->retry);
		return;
	}
	if (!acceptor.error_logged || now - acceptor.last_error_log >= ERROR_LOG_INTERVAL_MS) {
		if (acceptor.errors_unlogged)
			log_err("accept on %s failed: %s; retrying in %d ms (%llu more failures not logged)",
				l->name, strerror(err), ERROR_RETRY_MS, (unsigned long long)acceptor.errors_unlogged);
		else
			log_err("accept on %s failed: %s; retrying in %d ms", l->name, strerror(err),
				ERROR_RETRY_MS);
		acceptor.error_logged = true;
		acceptor.last_error_log = now;
		acceptor.errors_unlogged = 0;
	} else {
		acceptor.errors_unlogged++;
	}
	pause_listener(l);
	if (loop_timer_in(acceptor.loop, &A(l)->retry, ERROR_RETRY_MS) < 0)
		resume_listener(l); /* no timer to be had: never stay paused */
}

/* The peer address comes with accept4(): checking it costs no system
 * call. A refused client gets no byte: its socket is closed at once
 * (with deferred accepts, when it first speaks). Behind a PROXY
 * listener the lists and caps wait for the header's address. */
static void admit(struct listener *l, int fd, const struct sockaddr *peer, socklen_t len)
{
	struct conn_origin o = {
		.peer = peer,
		.peer_len = len,
		.sent_first = l->defer_accept,
		.exact_reads = l->kind == LISTEN_UNIX,
		.proxy = l->proxy,
	};

	if (l->kind == LISTEN_UNIX)
		o.peer = NULL; /* never filtered or limited */
	else if (l->proxy ? !guard_proxy_trusted(peer)
			  : !guard_admit_conn(peer, len, acceptor.loop->now_ms, &o.counted, &o.slot)) {
		if (l->proxy)
			guard_refuse(REFUSE_PROXY, peer, acceptor.loop->now_ms);
		close(fd);
		return;
	}
	conn_open(fd, &o);
}

static void accept_io(struct io *io, uint32_t events)
{
	struct listener *l = container_of(io, struct listener, io);
	int budget = A(l)->last_pass + 1 == acceptor.loop->pass ? ACCEPTS_PER_EVENT : 1;

	A(l)->last_pass = acceptor.loop->pass;
	for (; budget > 0; budget--) {
		if (acceptor.max_connections && acceptor.stats->current >= acceptor.max_connections) {
			/* New clients wait in the backlog until one ends. */
			acceptor.stats->accept_waits++;
			pause_listener(l);
			return;
		}
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			admit(l, fd, (struct sockaddr *)&peer, len);
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
			accept_failed(l, errno);
			return;
		}
	}
}

static void retry_timer(struct timer *t)
{
	resume_listener(container_of(t, struct accepting, retry)->l);
}

void acceptor_conn_closed(void)
{
	if (acceptor.n_paused == 0)
		return;
	for (struct listener *l = *acceptor.list; l; l = l->next) {
		if (l->kind == LISTEN_UDP || !A(l) || !A(l)->paused)
			continue;
		loop_timer_stop(acceptor.loop, &A(l)->retry);
		resume_listener(l);
	}
}

int acceptor_start(struct listener *l)
{
	struct accepting *a;
	int r;

	assert(l->kind != LISTEN_UDP && !l->serving);
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->l = l;
	a->retry.fn = retry_timer;
	l->serving = a;
	l->io.fn = accept_io;
	r = loop_add(acceptor.loop, l->fd, LISTEN_EVENTS, &l->io);
	if (r < 0) {
		l->io.fn = NULL;
		l->serving = NULL;
		free(a);
	}
	return r;
}

void acceptor_stop(struct listener *l)
{
	struct accepting *a = A(l);

	if (!a)
		return; /* never started */
	if (a->paused)
		acceptor.n_paused--;
	loop_timer_stop(acceptor.loop, &a->retry);
	/* It may have an event later in the batch: that must go before the
	 * listener is freed. */
	loop_forget(acceptor.loop, &l->io);
	if (!a->paused) /* a paused one has left the loop */
		loop_del(acceptor.loop, l->fd);
	l->io.fn = NULL;
	l->serving = NULL;
	free(a);
}
