#include "datagram.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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
	int transform;
	char *buf; /* DGRAM_BATCH * DGRAM_MAX, allocated on first use */
} D;

void datagram_init(struct loop *loop, struct stats *stats)
{
	D.loop = loop;
	D.stats = stats;
}

void datagram_free(void)
{
	free(D.buf);
	D.buf = NULL;
}

void datagram_set_transform(int transform)
{
	D.transform = transform;
}

void datagram_io(struct io *io, uint32_t events)
{
	struct listener *l = container_of(io, struct listener, io);
	struct mmsghdr msgs[DGRAM_BATCH];
	struct sockaddr_storage peers[DGRAM_BATCH];
	struct iovec iov[DGRAM_BATCH];

	if (!D.buf && !(D.buf = malloc((size_t)DGRAM_BATCH * DGRAM_MAX))) {
		log_err("out of memory for datagrams on %s", l->name);
		return;
	}
	for (int batch = 0; batch < DGRAM_BATCHES_PER_EVENT; batch++) {
		for (int i = 0; i < DGRAM_BATCH; i++) {
			iov[i].iov_base = D.buf + (size_t)i * DGRAM_MAX;
			iov[i].iov_len = DGRAM_MAX;
			memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
			msgs[i].msg_hdr.msg_name = &peers[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(peers[i]);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		int n = recvmmsg(l->fd, msgs, DGRAM_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN)
				log_debug("receive on %s failed: %s", l->name, strerror(errno));
			return;
		}
		for (int i = 0; i < n; i++) {
			iov[i].iov_len = msgs[i].msg_len;
			transform_apply(D.transform, iov[i].iov_base, msgs[i].msg_len);
		}
		/* UDP is lossy by design: what the kernel cannot take now
		 * (or cannot route back) is dropped, never queued. */
		for (int off = 0; off < n;) {
			int sent = sendmmsg(l->fd, msgs + off, (unsigned)(n - off), MSG_DONTWAIT);
			if (sent < 0) {
				if (errno == EAGAIN)
					break;
				off++; /* this one cannot go back: skip it */
				continue;
			}
			for (int i = off; i < off + sent; i++)
				D.stats->bytes += msgs[i].msg_len;
			off += sent;
		}
		if (n < DGRAM_BATCH)
			return;
	}
	loop_defer(D.loop, io);
}
