/*
 * proxy_connect: a connect storm whose clients speak the PROXY protocol.
 * K connections at once, each: connect, send a PROXY v1 header and S bytes
 * in one write (a load balancer forwards the header with the client's first
 * data), read the S bytes back and check them, close; repeat for D seconds.
 * With -n, no header is sent: the same storm against a plain listener.
 *
 *   cc -O2 -o proxy_connect bench/proxy_connect.c
 *   proxy_connect [-n] [-c K] [-s S] [-d D] [-w W] PORT
 *
 * Prints "RESULT conns_per_s=... errors=... mismatches=...", counting only
 * the connections completed after W seconds of warm-up.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct slot {
	int fd;
	unsigned got, serial;
};

static int port, size = 64, proxy = 1;
static unsigned long long done, errors, mismatches;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char pattern(unsigned serial, unsigned k)
{
	return (char)('a' + (serial * 7 + k) % 26);
}

static void start(int ep, struct slot *s, unsigned serial)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = s };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	s->got = 0;
	s->serial = serial;
	if (s->fd < 0 || (connect(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)) {
		perror("connect");
		exit(1);
	}
	epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
}

static int send_first(struct slot *s)
{
	char buf[256 + 65536];
	struct sockaddr_in me;
	socklen_t len = sizeof(me);
	int n = 0;

	if (proxy) {
		getsockname(s->fd, (struct sockaddr *)&me, &len);
		n = snprintf(buf, 256, "PROXY TCP4 192.0.2.%u 127.0.0.1 %u %d\r\n", 1 + s->serial % 250,
			     ntohs(me.sin_port), port);
	}
	for (int k = 0; k < size; k++)
		buf[n + k] = pattern(s->serial, (unsigned)k);
	return send(s->fd, buf, (size_t)(n + size), MSG_NOSIGNAL) == n + size ? 0 : -1;
}

int main(int argc, char **argv)
{
	int k = 32, opt, ep;
	double dur = 5, warm = 1, t0, tm, tend;
	unsigned serial = 0;
	unsigned long long done0 = 0;
	int measuring = 0;

	while ((opt = getopt(argc, argv, "nc:s:d:w:")) != -1) {
		switch (opt) {
		case 'n': proxy = 0; break;
		case 'c': k = atoi(optarg); break;
		case 's': size = atoi(optarg); break;
		case 'd': dur = atof(optarg); break;
		case 'w': warm = atof(optarg); break;
		default: fprintf(stderr, "usage: proxy_connect [-n] [-c K] [-s S] [-d D] [-w W] PORT\n"); return 2;
		}
	}
	if (optind >= argc || size < 1 || size > 65536 || k < 1) {
		fprintf(stderr, "usage: proxy_connect [-n] [-c K] [-s S] [-d D] [-w W] PORT\n");
		return 2;
	}
	port = atoi(argv[optind]);
	ep = epoll_create1(0);
	struct slot *slots = calloc((size_t)k, sizeof(*slots));
	for (int i = 0; i < k; i++)
		start(ep, &slots[i], serial++);
	t0 = now();
	tm = t0 + warm;
	tend = tm + dur;
	for (;;) {
		struct epoll_event evs[256];
		double t = now();
		int n;

		if (!measuring && t >= tm) {
			measuring = 1;
			done0 = done;
		}
		if (t >= tend)
			break;
		n = epoll_wait(ep, evs, 256, 100);
		for (int e = 0; e < n; e++) {
			struct slot *s = evs[e].data.ptr;
			int bad = 0;

			if (evs[e].events & EPOLLOUT) {
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
				if (send_first(s) < 0)
					bad = 1;
				else
					epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
			} else {
				char buf[65536];
				ssize_t r = recv(s->fd, buf, sizeof(buf), 0);
				if (r <= 0) {
					bad = r == 0 || errno != EAGAIN;
					if (!bad)
						continue;
				} else {
					for (ssize_t j = 0; j < r; j++)
						if (buf[j] != pattern(s->serial, s->got + (unsigned)j))
							mismatches++;
					s->got += (unsigned)r;
					if (s->got < (unsigned)size)
						continue;
					done++;
				}
			}
			if (bad || s->got >= (unsigned)size) {
				errors += (unsigned long long)bad;
				close(s->fd); /* also leaves the epoll set */
				start(ep, s, serial++);
			}
		}
	}
	printf("RESULT conns_per_s=%.0f errors=%llu mismatches=%llu\n", (double)(done - done0) / dur, errors,
	       mismatches);
	return errors || mismatches ? 1 : 0;
}
