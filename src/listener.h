/* Listening sockets: opened and bound by echod, or adopted from the
 * service manager (socket activation). Sockets only, no event loop. */
#ifndef ECHOD_LISTENER_H
#define ECHOD_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "address.h"
#include "loop.h"

struct listener {
	/* Its registration in the loop, and what the acceptor keeps for a
	 * stream listener it serves (acceptor.c; the datagram and metrics
	 * modules need none, or keep their own). */
	struct io io;
	void *serving;
	int fd;
	enum listen_kind kind;
	bool activated; /* passed by the service manager: never re-bound */
	bool bound_path; /* a unix socket file echod created: unlinked at exit */
	dev_t path_dev;  /* ... if the file at its path is still that one */
	ino_t path_ino;
	bool defer_accept; /* TCP_DEFER_ACCEPT: accepted clients have sent data */
	bool proxy;        /* connections begin with a PROXY protocol header */
	bool metrics;      /* the metrics endpoint, not an echo listener */
	uint16_t port;     /* TCP/UDP port, 0 for Unix */
	char config_text[128]; /* the `listen` value it was opened for */
	char name[ADDRESS_TEXT_MAX];
	struct listener *next;
};

struct listen_options {
	int backlog;
	bool reuse_port;
	bool free_bind;
	/* TCP keepalive on accepted connections: first probe after this
	 * many seconds of silence, 0 = off. */
	unsigned keepalive_s;
	unsigned defer_accept_s; /* TCP_DEFER_ACCEPT, 0 = off */
	mode_t unix_mode;        /* of socket files echod creates */
	gid_t unix_gid;          /* their group, (gid_t)-1 = unchanged */
};

/* TCP options set on a listener (opened or adopted) for the connections
 * it accepts, which inherit them: no setsockopt per connection. 0 or
 * -errno. */
int listener_set_tcp_options(int fd, const struct listen_options *o);

/* Opens one listener for a `listen` value into *out. 0, or -errno with
 * the reason logged (naming the address, with a hint where one helps). */
int listener_open(const char *text, const struct listen_options *o, struct listener **out);

/* A reload keeps l: applies the options that can change on a listening
 * socket (backlog, TCP keepalive, deferred accepts) and its mode (proxy),
 * from text, a spelling of the same address. */
void listener_update(struct listener *l, const char *text, const struct listen_options *o);

/* Whether text names the socket l is bound to, perhaps with another
 * spelling or mode (proxy: or not): a reload then keeps the socket. */
bool listener_same_socket(const struct listener *l, const char *text);

/* Adopts the sockets passed with LISTEN_FDS. Returns how many (0 when
 * none were passed), or -errno with a message naming the fd logged. */
int listener_adopt_all(struct listener **list, const struct listen_options *o);

/* Closes the socket, and removes the socket file echod created if the
 * file at its path is still that one. */
void listener_free(struct listener *l);

#endif
