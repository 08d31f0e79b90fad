#include "datagram.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "guard.h"
#include "listener.h"
#include "log.h"
#include "transform.h"
#include "util.h"

/* Datagrams per recvmmsg/sendmmsg, and batches per wakeup. */
#define DGRAM_BATCH 16
#define DGRAM_BATCHES_PER_EVENT 8
/* The largest UDP payload, so nothing is ever truncated. */
#define DGRAM_MAX 65536

static struct {
	struct loop *loop;
	struct stats *stats;
	enum transform transform;
	char *buf; /* DGRAM_BATCH * DGRAM_MAX, allocated on first use */
} dgram;

void datagram_init(struct loop *loop, struct stats *stats)
{
	dgram.loop = loop;
	dgram.stats = stats;
}

void datagram_free(void)
{
	free(dgram.buf);
	dgram.buf = NULL;
}

void datagram_set_transform(enum transform transform)
{
	dgram.transform = transform;
}

/* Room for the control messages a datagram arrives with: the address it
 * was sent to, as IP_PKTINFO, IPV6_PKTINFO, or both (an IPv4 datagram on
 * a dual-stack socket). */
struct pktinfo_space {
	/* cmsghdr's alignment */
	_Alignas(size_t) char buf[CMSG_SPACE(sizeof(struct in_pktinfo)) +
				  CMSG_SPACE(sizeof(struct in6_pktinfo))];
};

/* Turns the destination the datagram arrived with into the source of its
 * reply, in place: a wildcard socket on a host with several addresses
 * then answers from the address the client wrote to, which is the only
 * one the client accepts replies from. */
static void reply_from_destination(struct msghdr *h)
{
	struct cmsghdr *cm;

	/* Even when truncated, the messages before the cut are whole. */
	for (cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR(h, cm)) {
		if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
			struct in_pktinfo *pi = (struct in_pktinfo *)CMSG_DATA(cm);
			pi->ipi_spec_dst = pi->ipi_addr;
			pi->ipi_ifindex = 0; /* let routing pick the way back */
			h->msg_controllen = CMSG_SPACE(sizeof(*pi));
			h->msg_control = cm;
			return;
		}
		if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
			/* The interface stays: link-local addresses need it. */
			h->msg_controllen = CMSG_SPACE(sizeof(struct in6_pktinfo));
			h->msg_control = cm;
			return;
		}
	}
	h->msg_control = NULL;
	h->msg_controllen = 0;
}

static void datagram_io(struct io *io, uint32_t events)
{
	struct listener *l = container_of(io, struct listener, io);
	struct mmsghdr in[DGRAM_BATCH], out[DGRAM_BATCH];
	struct sockaddr_storage peers[DGRAM_BATCH];
	struct iovec iov[DGRAM_BATCH];
	struct pktinfo_space ctl[DGRAM_BATCH];

	if (!dgram.buf && !(dgram.buf = malloc((size_t)DGRAM_BATCH * DGRAM_MAX))) {
		log_err("out of memory for datagrams on %s", l->name);
		return;
	}
	for (int batch = 0; batch < DGRAM_BATCHES_PER_EVENT; batch++) {
		int n, m = 0;

		for (int i = 0; i < DGRAM_BATCH; i++) {
			iov[i].iov_base = dgram.buf + (size_t)i * DGRAM_MAX;
			iov[i].iov_len = DGRAM_MAX;
			memset(&in[i].msg_hdr, 0, sizeof(in[i].msg_hdr));
			in[i].msg_hdr.msg_name = &peers[i];
			in[i].msg_hdr.msg_namelen = sizeof(peers[i]);
			in[i].msg_hdr.msg_iov = &iov[i];
			in[i].msg_hdr.msg_iovlen = 1;
			in[i].msg_hdr.msg_control = ctl[i].buf;
			in[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
		}
		n = recvmmsg(l->fd, in, DGRAM_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN)
				log_debug("receive on %s failed: %s", l->name, strerror(errno));
			return;
		}
		dgram.stats->udp_datagrams += (uint64_t)n;
		for (int i = 0; i < n; i++) {
			struct msghdr *h = &in[i].msg_hdr;
			if (!guard_admit_datagram(h->msg_name, h->msg_namelen, dgram.loop->now_ms))
				continue;
			iov[i].iov_len = in[i].msg_len;
			transform_apply(dgram.transform, iov[i].iov_base, in[i].msg_len);
			reply_from_destination(h);
			out[m].msg_hdr = *h;
			out[m].msg_hdr.msg_flags = 0;
			m++;
		}
		/* UDP is lossy by design: what the kernel cannot take now
		 * (or cannot route back) is dropped, never queued. */
		for (int off = 0; off < m;) {
			int sent = sendmmsg(l->fd, out + off, (unsigned)(m - off), MSG_DONTWAIT);
			if (sent < 0) {
				if (errno == EAGAIN)
					break;
				off++; /* this one cannot go back: skip it */
				continue;
			}
			for (int i = off; i < off + sent; i++)
				dgram.stats->bytes += out[i].msg_len;
			off += sent;
		}
		if (n < DGRAM_BATCH)
			return;
	}
	loop_defer(dgram.loop, io);
}

int datagram_start(struct listener *l)
{
	l->io.fn = datagram_io;
	return loop_add(dgram.loop, l->fd, EPOLLIN | EPOLLET, &l->io);
}

void datagram_stop(struct listener *l)
{
	/* A flooded listener defers itself, and it may have an event later
	 * in the batch: both must go before the listener is freed. */
	loop_forget(dgram.loop, &l->io);
	if (l->io.fn)
		loop_del(dgram.loop, l->fd);
	l->io.fn = NULL;
}
