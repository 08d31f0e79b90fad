/* A connection's deadlines, on its one timer: the PROXY header's, the idle
 * timeout, max_connection_time, the quiet period while shutting down and
 * the linger after expiry. The timer is lazy: activity only stores a time
 * stamp; when the timer fires it looks at what is due and re-arms itself
 * for the next deadline. Also the shutdown drain and the re-check of live
 * connections after a reload. */
#include <errno.h>
#include <sys/socket.h>

#include "conn_int.h"
#include "guard.h"
#include "log.h"
#include "util.h"

static uint64_t earliest(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* UINT64_MAX: nothing due. */
static uint64_t next_deadline(const struct conn *c)
{
	const struct policy *p = c->policy;
	uint64_t due = UINT64_MAX;

	if (c->flags & C_EXPIRED)
		return c->x->opened + p->max_time_ms + LINGER_MS;
	if (c->flags & C_PROXY)
		/* Nothing else applies before the header: not even the
		 * lifetime, whose end would linger for a client not yet
		 * admitted. */
		return c->x->opened + (p->max_time_ms ? earliest(PROXY_TIMEOUT_MS, p->max_time_ms)
							: PROXY_TIMEOUT_MS);
	if (p->max_time_ms)
		due = earliest(due, c->x->opened + p->max_time_ms);
	if (c->flags & C_DRAIN)
		due = earliest(due, c->last_active + DRAIN_QUIET_MS);
	else if (p->idle_timeout_ms)
		due = earliest(due, c->last_active + p->idle_timeout_ms);
	return due;
}

int conn_arm_timer(struct conn *c)
{
	uint64_t due = next_deadline(c);

	if (due == UINT64_MAX) {
		loop_timer_stop(conns.loop, &c->timer);
		return 0;
	}
	return loop_timer_at(conns.loop, &c->timer, due);
}

void conn_timer_fn(struct timer *t)
{
	struct conn *c = container_of(t, struct conn, timer);
	const struct policy *p = c->policy;
	uint64_t now = conns.loop->now_ms;

	if (c->flags & C_EXPIRED) {
		/* Pending echoes or lingering: the client gets LINGER_MS. */
		if (now >= c->x->opened + p->max_time_ms + LINGER_MS) {
			conn_close(c, "max_connection_time");
			return;
		}
	} else if (c->flags & C_PROXY) {
		if (now >= next_deadline(c)) {
			guard_refuse(REFUSE_PROXY, conn_peer(c), now);
			conn_close(c, "no PROXY header in time");
			return;
		}
	} else if (p->max_time_ms && now >= c->x->opened + p->max_time_ms) {
		/* Stop reading, send what is pending, then FIN, and linger
		 * until the client closes (at most LINGER_MS), so that the
		 * close does not reset echoes it has not read (conn_io). */
		guard_refuse(REFUSE_LIFETIME, conn_peer(c), now);
		c->flags |= C_EXPIRED;
		int fd = c->fd;
		conn_io(&c->io, 0);
		if (!(conns.table[fd].flags & C_OPEN))
			return;
	} else if (c->flags & C_DRAIN) {
		if (now >= c->last_active + DRAIN_QUIET_MS) {
			if (!conn_pending(c) && !c->io.deferred) {
				conn_close(c, "shutting down");
				return;
			}
			/* Still at work, or waiting for the client to read
			 * (the shutdown timeout bounds that). */
			c->last_active = now;
		}
	} else if (p->idle_timeout_ms && now >= c->last_active + p->idle_timeout_ms) {
		conn_close(c, "idle timeout");
		return;
	}
	if (conn_arm_timer(c) < 0)
		conn_close(c, "no timer");
}

void conn_drain_all(void)
{
	for (size_t fd = 0; fd < conns.hwm; fd++) {
		struct conn *c = &conns.table[fd];
		if (!(c->flags & C_OPEN) || (c->flags & C_DRAIN))
			continue;
		c->flags |= C_DRAIN;
		if (conn_arm_timer(c) < 0) {
			conn_close(c, "shutting down");
			continue;
		}
		conn_io(&c->io, 0);
	}
}

size_t conn_recheck_acl(void)
{
	size_t closed = 0;

	for (size_t fd = 0; fd < conns.hwm; fd++) {
		struct conn *c = &conns.table[fd];
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		const struct sockaddr *peer = conn_peer(c);

		if (!(c->flags & C_OPEN) || (c->flags & C_PROXY))
			continue;
		/* Most connections do not keep their address: a reload is
		 * rare enough to ask the kernel for it. */
		if (!peer && getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0)
			peer = (const struct sockaddr *)&ss;
		if (!peer || guard_acl_admits(peer))
			continue;
		guard_refuse(REFUSE_ACL, peer, conns.loop->now_ms);
		conn_close(c, "refused by allow/deny after a reload");
		closed++;
	}
	return closed;
}
