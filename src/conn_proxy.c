/* The PROXY protocol header of a connection on a proxy listener: read it
 * (in pieces if it comes in pieces), take the client's address from it,
 * admit or refuse the client by that address, and echo what followed the
 * header in the same read. When the header arrives with the first data,
 * as load balancers send it, this costs no system call of its own. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "conn_int.h"
#include "guard.h"
#include "log.h"
#include "proxy_header.h"
#include "transform.h"

static int refuse(struct conn *c, const char *why)
{
	log_debug("connection %d: PROXY header refused: %s", c->fd, why);
	guard_refuse(REFUSE_PROXY, conn_peer(c), conns.loop->now_ms);
	return -EPROTO;
}

/* The header is in: the address it carries is the client's from now on
 * (lists, per-source cap, log lines); what followed it is echoed. */
static int header_done(struct conn *c, const struct proxy_result *res, char *rest, size_t n)
{
	bool counted;
	uint32_t slot;

	if (!res->local && (res->src.ss_family == AF_INET || res->src.ss_family == AF_INET6))
		conn_set_peer(c, (const struct sockaddr *)&res->src);
	if (!guard_admit_conn(conn_peer(c), sizeof(c->x->peer), conns.loop->now_ms,
			      &counted, &slot))
		return -EACCES;
	if (counted) {
		c->flags |= C_COUNTED;
		c->x->source_slot = slot;
	}
	c->flags &= (uint16_t)~C_PROXY;
	if (n) {
		c->last_active = conns.loop->now_ms;
		c->x->bytes_in += n;
		transform_apply(c->policy->transform, rest, n);
		int r = conn_echo(c, rest, n);
		if (r < 0)
			return r;
	}
	return conn_arm_timer(c); /* the header deadline is over */
}

int conn_read_proxy(struct conn *c)
{
	for (;;) {
		struct proxy_result res;
		char *base = c->x->hdr ? c->x->hdr->data : conns.scratch;
		size_t have = c->x->hdr ? c->x->hdr->len : 0;
		/* Into the scratch buffer, the whole read: the header and the
		 * data behind it, at most buffer_size of data beyond the
		 * header's bound (conn_echo() keeps what is not sent). Once
		 * pieces are kept, at most up to the header's bound. */
		size_t first = PROXY_HEADER_MAX + (size_t)c->policy->buffer_size;
		size_t room = c->x->hdr ? PROXY_HEADER_MAX - have : first < SCRATCH_SIZE ? first : SCRATCH_SIZE;
		ssize_t n = recv(c->fd, base + have, room, 0);
		int r;

		if (n == 0)
			return refuse(c, "end of input before the header");
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		have += (size_t)n;
		r = proxy_header_parse((const uint8_t *)base, have, &res);
		if (r > 0) {
			r = header_done(c, &res, base + r, have - (size_t)r);
			if (c->x->hdr) {
				bufpool_put(&conns.pool, c->x->hdr);
				c->x->hdr = NULL;
			}
			if (r < 0)
				return r;
			/* A short read drained the socket, as in pump(): no
			 * read after it just to see EAGAIN. */
			if ((size_t)n < room && !(c->flags & C_EXACT)) {
				if (c->flags & C_RDHUP)
					c->flags |= C_EOF;
				return 2;
			}
			return 1;
		}
		if (r < 0)
			return refuse(c, res.error ? res.error : "malformed");
		/* Not all of it yet: keep what came (the parser never asks
		 * for more beyond PROXY_HEADER_MAX bytes). */
		if (!c->x->hdr) {
			c->x->hdr = bufpool_get(&conns.pool, PROXY_HEADER_MAX);
			if (!c->x->hdr)
				return -ENOMEM;
			memcpy(c->x->hdr->data, base, have);
		}
		c->x->hdr->len = (uint32_t)have;
		if ((size_t)n < room && !(c->flags & C_EXACT))
			return 0; /* drained: the rest brings a new edge */
	}
}
