#include "metrics_server.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics_text.h"
#include "util.h"

/* Out of fds, or an unexpected accept error: retry this late, and say so
 * at most once in the interval after it (the echo acceptor warns about
 * fd exhaustion too). */
#define ACCEPT_RETRY_MS 1000
#define ACCEPT_LOG_INTERVAL_MS 10000
/* Reads of unwanted bytes per wakeup before a scraper yields; the rest is
 * read from the deferred list. A scraper sends a few hundred bytes, so
 * only a hostile one ever reaches it. */
#define DISCARDS_PER_EVENT 8

/* Edge-triggered, as connections are: a scraper is read until EAGAIN. */
#define SCRAPER_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLET)

enum scraper_state {
	S_FREE,
	S_READ,   /* reading the request head */
	S_WRITE,  /* sending the response; what the scraper sends is discarded */
	S_LINGER, /* response sent and FIN queued: discarding until its EOF */
};

struct scraper {
	struct io io;
	struct timer deadline;
	int fd;
	enum scraper_state state;
	bool wout; /* EPOLLOUT is in the interest set */
	bool eof;  /* the scraper has closed its side */
	size_t req_len, out_len, sent;
	char req[HTTP_REQUEST_MAX];
	char out[HTTP_RESPONSE_MAX];
};

struct metrics_listener {
	struct listener *l; /* NULL = free slot */
	struct timer retry; /* accepting paused after an accept error */
	bool paused;        /* out of the interest set: table full, or retry armed */
	bool broken;        /* accept fails for good: out of the loop */
};

static struct {
	struct loop *loop;
	const struct stats *stats;
	const char *version;
	unsigned n_scrapers;
	uint64_t last_accept_log;
	bool accept_logged;
	struct metrics_listener listeners[METRICS_LISTENERS_MAX];
	struct scraper scrapers[METRICS_SCRAPERS_MAX];
	char discard[4096];
} metrics;

/* ---- listeners ---- */

/* Out of the epoll set while paused: EPOLLHUP and EPOLLERR would be
 * reported whatever the interest set (see acceptor.c). */
static void pause_listener(struct metrics_listener *ml)
{
	if (ml->paused || ml->broken)
		return;
	ml->paused = true;
	loop_forget(metrics.loop, &ml->l->io);
	int r = loop_del(metrics.loop, ml->l->fd);
	if (r < 0)
		log_errno(LOG_LEVEL_ERR, r, "cannot pause accepting on %s", ml->l->name);
}

static void resume_listener(struct metrics_listener *ml)
{
	if (!ml->paused || ml->broken || timer_armed(&ml->retry) ||
	    metrics.n_scrapers >= METRICS_SCRAPERS_MAX)
		return;
	ml->paused = false;
	int r = loop_add(metrics.loop, ml->l->fd, EPOLLIN, &ml->l->io);
	if (r < 0)
		log_errno(LOG_LEVEL_ERR, r, "cannot watch %s again", ml->l->name);
}

static void pause_all(void)
{
	for (size_t i = 0; i < METRICS_LISTENERS_MAX; i++)
		if (metrics.listeners[i].l)
			pause_listener(&metrics.listeners[i]);
}

static void resume_all(void)
{
	for (size_t i = 0; i < METRICS_LISTENERS_MAX; i++)
		if (metrics.listeners[i].l)
			resume_listener(&metrics.listeners[i]);
}

static struct metrics_listener *find_listener(const struct listener *l)
{
	for (size_t i = 0; i < METRICS_LISTENERS_MAX; i++)
		if (metrics.listeners[i].l == l)
			return &metrics.listeners[i];
	return NULL;
}

/* ---- scrapers ---- */

static void scraper_close(struct scraper *s)
{
	loop_forget(metrics.loop, &s->io);
	loop_timer_stop(metrics.loop, &s->deadline);
	close(s->fd);
	s->fd = -1;
	s->state = S_FREE;
	metrics.n_scrapers--;
	resume_all();
}

static int set_wout(struct scraper *s, bool on)
{
	if (s->wout == on)
		return 0;
	int r = loop_mod(metrics.loop, s->fd, SCRAPER_EVENTS | (on ? EPOLLOUT : 0), &s->io);
	if (r < 0)
		return log_errno(LOG_LEVEL_ERR, r, "metrics: cannot change a scraper's events");
	s->wout = on;
	return 0;
}

/* Reads and drops what the scraper still sends, until EAGAIN, or its
 * EOF, or the budget (then it goes on from the deferred list). Closing
 * with unread bytes in the receive queue would answer with a reset, and
 * a reset can destroy the response before the scraper has read it; so
 * the socket is closed only once the scraper has closed its side (or at
 * the deadline). An EOF while the response is still going out (a
 * scraper may half-close after its request) is noted, and the close
 * waits for the response to be sent. */
static void discard_input(struct scraper *s)
{
	for (int i = 0; i < DISCARDS_PER_EVENT; i++) {
		ssize_t n = recv(s->fd, metrics.discard, sizeof(metrics.discard), 0);
		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n == 0 && s->state == S_WRITE) {
			s->eof = true;
			return;
		}
		scraper_close(s); /* EOF after the response, or an error */
		return;
	}
	loop_defer(metrics.loop, &s->io);
}

static void send_response(struct scraper *s)
{
	while (s->sent < s->out_len) {
		ssize_t n = send(s->fd, s->out + s->sent, s->out_len - s->sent, MSG_NOSIGNAL);
		if (n >= 0) {
			s->sent += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			/* The response is a few KiB: only a scraper that does
			 * not read gets here; the deadline bounds it. */
			if (set_wout(s, true) < 0)
				scraper_close(s);
			return;
		}
		scraper_close(s);
		return;
	}
	/* Everything it sent has been read: a close now is a plain FIN. */
	if (s->eof || set_wout(s, false) < 0 || shutdown(s->fd, SHUT_WR) < 0) {
		scraper_close(s);
		return;
	}
	s->state = S_LINGER;
}

static void snapshot(struct metrics_snapshot *m)
{
	const struct stats *st = metrics.stats;

	*m = (struct metrics_snapshot){
		.connections = st->current,
		.connections_total = st->total,
		.bytes_echoed_total = st->bytes,
		.accept_waits_total = st->accept_waits,
		.udp_datagrams_total = st->udp_datagrams,
		.version = metrics.version,
		.start_time_ms = st->start_time_ms,
	};
	memcpy(m->refused, st->refused, sizeof(m->refused));
}

static void respond(struct scraper *s, enum http_verdict v)
{
	struct metrics_snapshot m;
	int n;

	snapshot(&m);
	n = http_response_write(v, &m, s->out, sizeof(s->out));
	if (n < 0) {
		/* Cannot happen with HTTP_RESPONSE_MAX; never send half. */
		log_errno(LOG_LEVEL_ERR, n, "metrics: cannot write the response");
		scraper_close(s);
		return;
	}
	s->out_len = (size_t)n;
	s->sent = 0;
	s->state = S_WRITE;
}

/* Reads the request head (at most HTTP_REQUEST_MAX bytes: the parser
 * calls anything longer bad). Returns true once a response is due. */
static bool read_request(struct scraper *s)
{
	for (;;) {
		/* Never 0: a full buffer is HTTP_BAD, answered below. */
		size_t room = sizeof(s->req) - s->req_len;
		ssize_t n = recv(s->fd, s->req + s->req_len, room, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return false;
		if (n <= 0) {
			/* Gone, or half-closed before the end of its head:
			 * nobody waits for an answer. */
			scraper_close(s);
			return false;
		}
		s->req_len += (size_t)n;
		enum http_verdict v = http_request_parse(s->req, s->req_len);
		if (v != HTTP_NEED_MORE) {
			respond(s, v);
			return s->state == S_WRITE;
		}
	}
}

static void scraper_io(struct io *io, uint32_t events)
{
	struct scraper *s = container_of(io, struct scraper, io);

	(void)events; /* errors and hang-ups show in recv() and send() */
	switch (s->state) {
	case S_READ:
		if (!read_request(s))
			return;
		/* Answered at once, then what follows is dropped. */
		__attribute__((fallthrough));
	case S_WRITE:
		send_response(s);
		if (s->state == S_FREE)
			return;
		discard_input(s);
		return;
	case S_LINGER:
		discard_input(s);
		return;
	case S_FREE:
		return;
	}
}

static void scraper_deadline(struct timer *t)
{
	struct scraper *s = container_of(t, struct scraper, deadline);

	log_debug("metrics: closing a scraper after %d ms (state %d)", METRICS_DEADLINE_MS,
		  (int)s->state);
	scraper_close(s);
}

static struct scraper *scraper_slot(void)
{
	for (size_t i = 0; i < METRICS_SCRAPERS_MAX; i++)
		if (metrics.scrapers[i].state == S_FREE)
			return &metrics.scrapers[i];
	return NULL;
}

static void scraper_open(int fd)
{
	struct scraper *s = scraper_slot();
	int r;

	assert(s); /* the caller accepts only while a slot is free */
	s->fd = fd;
	s->state = S_READ;
	s->wout = s->eof = false;
	s->req_len = s->out_len = s->sent = 0;
	s->io = (struct io){ .fn = scraper_io };
	s->deadline.fn = scraper_deadline;
	metrics.n_scrapers++;
	r = loop_timer_in(metrics.loop, &s->deadline, METRICS_DEADLINE_MS);
	if (r < 0) {
		/* Without a deadline a silent scraper would hold its slot. */
		log_errno(LOG_LEVEL_ERR, r, "metrics: cannot arm a scraper's deadline");
		scraper_close(s);
		return;
	}
	r = loop_add(metrics.loop, fd, SCRAPER_EVENTS, &s->io);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "metrics: cannot watch a scraper");
		scraper_close(s);
		return;
	}
}

/* ---- accepting ---- */

static void accept_trouble(struct metrics_listener *ml, int err)
{
	uint64_t now = metrics.loop->now_ms;

	if (err == EINVAL || err == EBADF || err == ENOTSOCK || err == EOPNOTSUPP) {
		log_err("accept on %s failed: %s; no longer serving metrics on it", ml->l->name,
			strerror(err));
		pause_listener(ml); /* out of the loop */
		ml->broken = true;
		return;
	}
	if (!metrics.accept_logged || now - metrics.last_accept_log >= ACCEPT_LOG_INTERVAL_MS) {
		log_warning("accept on %s failed: %s; retrying in %d ms", ml->l->name, strerror(err),
			    ACCEPT_RETRY_MS);
		metrics.accept_logged = true;
		metrics.last_accept_log = now;
	}
	if (loop_timer_in(metrics.loop, &ml->retry, ACCEPT_RETRY_MS) < 0)
		return; /* no timer to be had: stay in the loop, never paused for ever */
	pause_listener(ml);
}

/* The listener is level-triggered, as the echo listeners are (see
 * acceptor.c): one accept per free slot, and a full table takes every
 * metrics listener out of the loop, or it would be reported in every
 * pass. */
static void accept_io(struct io *io, uint32_t events)
{
	struct listener *l = container_of(io, struct listener, io);
	struct metrics_listener *ml = find_listener(l);

	(void)events;
	if (!ml)
		return;
	while (metrics.n_scrapers < METRICS_SCRAPERS_MAX) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			scraper_open(fd);
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
		case EPERM:
			continue;
		case EAGAIN:
			return;
		default:
			accept_trouble(ml, errno);
			return;
		}
	}
	pause_all();
}

static void retry_timer(struct timer *t)
{
	resume_listener(container_of(t, struct metrics_listener, retry));
}

void metrics_server_init(struct loop *loop, const struct stats *stats, const char *version)
{
	memset(&metrics, 0, sizeof(metrics));
	metrics.loop = loop;
	metrics.stats = stats;
	metrics.version = version;
	for (size_t i = 0; i < METRICS_SCRAPERS_MAX; i++)
		metrics.scrapers[i].fd = -1;
}

int metrics_server_start(struct listener *l)
{
	struct metrics_listener *ml;
	int r;

	if (l->kind == LISTEN_UDP) {
		log_err("cannot serve metrics on %s: it needs a TCP or unix: address", l->name);
		return -EPROTOTYPE;
	}
	ml = find_listener(NULL);
	if (!ml) {
		log_err("cannot serve metrics on %s: at most %d metrics listeners", l->name,
			METRICS_LISTENERS_MAX);
		return -ENOSPC;
	}
	l->io = (struct io){ .fn = accept_io };
	r = loop_add(metrics.loop, l->fd, EPOLLIN, &l->io);
	if (r < 0) {
		l->io.fn = NULL;
		return log_errno(LOG_LEVEL_ERR, r, "cannot watch %s", l->name);
	}
	*ml = (struct metrics_listener){ .l = l, .retry.fn = retry_timer };
	if (metrics.n_scrapers >= METRICS_SCRAPERS_MAX)
		pause_listener(ml);
	return 0;
}

void metrics_server_stop(struct listener *l)
{
	struct metrics_listener *ml = find_listener(l);

	if (!ml)
		return;
	loop_timer_stop(metrics.loop, &ml->retry);
	/* It may have an event later in the batch: that must go before the
	 * listener is freed. */
	loop_forget(metrics.loop, &l->io);
	if (!ml->paused && !ml->broken)
		loop_del(metrics.loop, l->fd);
	l->io.fn = NULL;
	*ml = (struct metrics_listener){ 0 };
}

void metrics_server_free(void)
{
	for (size_t i = 0; i < METRICS_SCRAPERS_MAX; i++)
		if (metrics.scrapers[i].state != S_FREE)
			scraper_close(&metrics.scrapers[i]);
}
