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

void datagram_set_transform(int transform)
{
	dgram.transform = transform;
}

static void datagram_io(struct io *io, uint32_t events)
{
	struct listener *l = container_of(io, struct listener, io);
	struct mmsghdr msgs[DGRAM_BATCH];
	struct sockaddr_storage peers[DGRAM_BATCH];
	struct iovec iov[DGRAM_BATCH];

	if (!dgram.buf && !(dgram.buf = malloc((size_t)DGRAM_BATCH * DGRAM_MAX))) {
		log_err("out of memory for datagrams on %s", l->name);
		return;
	}
	for (int batch = 0; batch < DGRAM_BATCHES_PER_EVENT; batch++) {
		for (int i = 0; i < DGRAM_BATCH; i++) {
			iov[i].iov_base = dgram.buf + (size_t)i * DGRAM_MAX;
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
			transform_apply(dgram.transform, iov[i].iov_base, msgs[i].msg_len);
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
				dgram.stats->bytes += msgs[i].msg_len;
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
