/*
 * UDP: N connected datagram sockets, each keeping W datagrams of S bytes in
 * flight. A datagram carries its sequence number, its window slot and a tag
 * of its socket's key in a 16-byte header; the rest is the socket's byte
 * stream at seq * S, so a reply is checked as thoroughly as a TCP echo.
 *
 * UDP loses datagrams by design (a full socket buffer on either side drops
 * them), so a datagram not answered within the loss timeout is counted as
 * lost and its slot sends a new one: the window never stalls. A reply that
 * comes after that is counted as late, not verified twice. Neither is an
 * error; a reply that does not match what was sent is.
 *
 * Per socket, the generic counters count datagrams: target = issued,
 * sent = written, recvd = resolved (answered or lost), so the drain and the
 * stall scan of phases.c work unchanged.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench.h"
#include "stream.h"

/* Replies read per socket per turn, then it goes to the back of the run
 * queue: at most its window. A socket's next datagram can come back
 * within the same turn, so with a larger budget (it was 64) one socket's
 * window cycled on while the other sockets' replies waited in their
 * queues: the load generator, not the server, made a tail of 5 to 15 ms
 * beside a median of 33 us. */
#define UDP_READ_BUDGET_MAX 64

enum slot_state { SLOT_FREE, SLOT_UNSENT, SLOT_INFLIGHT };

struct slot {
	uint64_t seq;
	uint64_t t_sent;
	uint8_t state;
};

/* 16 bytes, in host order: the replies come back to the same host. */
struct header {
	uint64_t seq;
	uint32_t slot;
	uint32_t tag;
};

_Static_assert(sizeof(struct header) == UDP_HEADER_SIZE, "header layout");

static struct slot *slots; /* opt.pipeline per socket */
static uint64_t n_sent, n_lost, n_late; /* datagrams, over the whole run */
/* One byte more than the largest datagram, so a longer reply shows. */
static unsigned char dbuf[UDP_MAX_SIZE + 1];

static inline struct slot *slot_of(const struct conn *c, unsigned j)
{
	return &slots[(size_t)(c - g.conns) * opt.pipeline + j];
}

static inline uint32_t key_tag(uint64_t key)
{
	return (uint32_t)(key >> 32);
}

/*
 * EPOLLOUT only while a datagram waits for room. Unlike a TCP socket, a UDP
 * socket's send buffer drains by one datagram at a time, and in edge mode
 * each of those would be an event of its own.
 */
static void want_writable(struct conn *c, int on)
{
	struct epoll_event ev;

	ev.events = EPOLLIN | EPOLLET | (on ? EPOLLOUT : 0);
	ev.data.u64 = ((uint64_t)(uint32_t)c->fd << 32) | (uint32_t)(c - g.conns);
	if (epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		fatal("epoll_ctl: %s", strerror(errno));
	c->wblocked = (uint8_t)on;
}

/* Write slot j's datagram. 0, or -1 if c failed (and was closed). */
static int udp_xmit(struct conn *c, unsigned j, uint64_t now)
{
	struct slot *s = slot_of(c, j);
	struct header h = { s->seq, j, key_tag(c->key) };
	struct iovec iov[MAX_IOV + 1];
	struct msghdr msg;
	ssize_t n;

	iov[0].iov_base = &h;
	iov[0].iov_len = sizeof(h);
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = 1 + (size_t)stream_iov(c->key, s->seq * opt.size + UDP_HEADER_SIZE,
						opt.size - UDP_HEADER_SIZE, iov + 1);
	do
		n = sendmsg(c->fd, &msg, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == ENOBUFS) {
			/* The socket buffer is full: EPOLLOUT, or the next
			 * scan, sends it. */
			s->state = SLOT_UNSENT;
			if (!c->wblocked)
				want_writable(c, 1);
			return 0;
		}
		conn_fail(c, FAIL_ERRNO, errno);
		return -1;
	}
	s->state = SLOT_INFLIGHT;
	s->t_sent = now;
	c->sent++;
	n_sent++;
	g.bytes_tx += (uint64_t)n;
	return 0;
}

/* A new datagram in slot j. */
static int udp_issue(struct conn *c, unsigned j, uint64_t now)
{
	slot_of(c, j)->seq = c->target++;
	return udp_xmit(c, j, now);
}

static int udp_start(struct conn *c, uint64_t now)
{
	struct epoll_event ev;
	int fd;

	c->t_start = c->t_progress = now;
	c->key = mix64(opt.seed ^ mix64(++g.serial));
	c->target = c->sent = c->recvd = 0;
	c->primed = c->stalled = 0;
	if (!c->pending) {
		c->pending = 1;
		g.opening++;
	}
	fd = socket(opt.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	c->fd = fd;
	/* Connected: replies from anyone but the target are not ours, and an
	 * ICMP port unreachable comes back as ECONNREFUSED. */
	if (connect(fd, (struct sockaddr *)&opt.addr, opt.addrlen) < 0)
		goto fail;
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = ((uint64_t)(uint32_t)fd << 32) | (uint32_t)(c - g.conns);
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		goto fail;
	c->state = C_OPEN;
	/* One datagram answered proves the socket before the load starts. */
	return udp_issue(c, 0, now);

fail:
	conn_fail(c, FAIL_ERRNO, errno);
	return -1;
}

static void udp_mismatch(struct conn *c, const char *what)
{
	/* A bad datagram does not desynchronise the others: count it and go
	 * on; its slot is resolved by the loss timeout. */
	g.mismatches++;
	if (!g.first_errno)
		g.first_errno = EBADMSG;
	if (g.mismatches + g.conn_errors <= 10)
		note("socket %u: %s", (unsigned)(c - g.conns), what);
}

/* One reply of n bytes in dbuf. Returns -1 if c was closed. */
static int udp_reply(struct conn *c, size_t n, uint64_t now)
{
	struct header h;
	struct slot *s;

	if (n != opt.size) {
		udp_mismatch(c, "a reply of another size than was sent");
		return 0;
	}
	memcpy(&h, dbuf, sizeof(h));
	if (h.tag != key_tag(c->key) || h.slot >= opt.pipeline || h.seq >= c->target ||
	    stream_check(c->key, h.seq * opt.size + UDP_HEADER_SIZE, dbuf + UDP_HEADER_SIZE,
			 n - UDP_HEADER_SIZE) < 0) {
		udp_mismatch(c, "reply bytes differ from any datagram sent");
		return 0;
	}
	g.bytes_rx += n;
	s = slot_of(c, h.slot);
	if (s->state != SLOT_INFLIGHT || s->seq != h.seq) {
		n_late++; /* counted lost already, or a duplicate */
		return 0;
	}
	s->state = SLOT_FREE;
	c->recvd++;
	c->t_progress = now;
	if (!c->primed) {
		conn_primed(c); /* the opening datagram: not timed */
		return 0;
	}
	hist_record(&g.interval, now - s->t_sent);
	g.msgs++;
	return issuing() ? udp_issue(c, h.slot, now) : 0;
}

static void udp_event(struct conn *c, uint32_t ev, uint64_t now)
{
	unsigned budget, j;

	if (c->state != C_OPEN)
		return;
	if ((ev & EPOLLOUT) && c->wblocked) {
		want_writable(c, 0);
		for (j = 0; j < opt.pipeline && !c->wblocked; j++)
			if (slot_of(c, j)->state == SLOT_UNSENT && udp_xmit(c, j, now) < 0)
				return;
	}
	if (!(ev & (EPOLLIN | EPOLLERR)) && !c->rmore)
		return;
	c->rmore = 0;
	budget = opt.pipeline < UDP_READ_BUDGET_MAX ? opt.pipeline : UDP_READ_BUDGET_MAX;
	for (; budget > 0; budget--) {
		ssize_t n = recv(c->fd, dbuf, sizeof(dbuf), 0);

		if (n >= 0) {
			/* A clock per datagram: the datagram this reply sends
			 * may come back within this very loop. */
			now = now_ns();
			if (udp_reply(c, (size_t)n, now) < 0)
				return;
			continue;
		}
		if (errno == EAGAIN)
			return;
		if (errno == EINTR)
			continue;
		conn_fail(c, FAIL_ERRNO, errno); /* ECONNREFUSED: nobody listens */
		return;
	}
	c->rmore = 1;
	runq_push(c);
}

/* Every scan: resolve what waited too long, retry what could not be sent. */
static void udp_scan(struct conn *c, uint64_t now)
{
	uint64_t limit = (uint64_t)(opt.loss_timeout * NS_PER_S);
	unsigned j;

	for (j = 0; j < opt.pipeline && c->state == C_OPEN; j++) {
		struct slot *s = slot_of(c, j);

		if (s->state == SLOT_UNSENT) {
			udp_xmit(c, j, now);
			continue;
		}
		if (s->state != SLOT_INFLIGHT || now - s->t_sent < limit)
			continue;
		n_lost++;
		s->state = SLOT_FREE;
		c->recvd++;
		/* An opening datagram is replaced until the open timeout. */
		if (issuing() || !c->primed)
			udp_issue(c, j, now);
	}
}

static void udp_setup(void)
{
	uint64_t loss = (uint64_t)(opt.loss_timeout * NS_PER_S);

	slots = calloc((size_t)opt.conns * opt.pipeline, sizeof(*slots));
	if (!slots)
		fatal("out of memory");
	/* Scanned four times per loss timeout: a loss is seen within 1.25 of it. */
	if (loss / 4 < g.scan_ns)
		g.scan_ns = loss / 4 > NS_PER_MS ? loss / 4 : NS_PER_MS;
}

static void udp_cleanup(void)
{
	free(slots);
	slots = NULL;
}

static void udp_begin_load(struct conn *c, uint64_t now)
{
	unsigned j;

	for (j = 0; j < opt.pipeline; j++)
		if (slot_of(c, j)->state == SLOT_FREE && udp_issue(c, j, now) < 0)
			return;
}

static void udp_report(const struct result *r)
{
	char a[32], b[32], c[32];

	printf("  %-16s %u datagram%s per socket\n", "in flight", opt.pipeline,
	       opt.pipeline == 1 ? "" : "s");
	report_size("datagram size");
	report_measured(r);
	report_rate(r, "messages");
	printf("  %-16s %s of %s sent (%.3f%%), %s late replies\n", "lost",
	       fmt_count(a, sizeof(a), n_lost), fmt_count(b, sizeof(b), n_sent),
	       n_sent ? 100.0 * (double)n_lost / (double)n_sent : 0.0,
	       fmt_count(c, sizeof(c), n_late));
	report_cpu(r);
}

static void udp_json(const struct result *r)
{
	printf("\"sent\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"late\":%" PRIu64
	       ",\"loss_timeout_s\":%.3f,",
	       n_sent, n_lost, n_late, opt.loss_timeout);
}

const struct bench_mode mode_udp = {
	.name = "udp",
	.unit = "msg",
	.count_unit = "datagrams",
	.latency_label = "latency (us)",
	.flags = BM_WINDOW | BM_DGRAM,
	.start = udp_start,
	.on_event = udp_event,
	.setup = udp_setup,
	.cleanup = udp_cleanup,
	.begin_load = udp_begin_load,
	.scan = udp_scan,
	.report = udp_report,
	.json = udp_json,
};
