#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "build-config.h"
#include "log.h"
#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

/* Keepalive probes after the first: every KEEPALIVE_INTERVAL_S seconds,
 * and a peer that answers none of KEEPALIVE_PROBES is gone. */
#define KEEPALIVE_INTERVAL_S 10
#define KEEPALIVE_PROBES 3

static int set_int(int fd, int level, int name, int value)
{
	return setsockopt(fd, level, name, &value, sizeof(value));
}

int listener_set_tcp_options(int fd, const struct listen_options *o)
{
	/* Urgent data is echoed in place like any other byte, instead of
	 * being taken out of the stream. */
	if (set_int(fd, SOL_SOCKET, SO_OOBINLINE, 1) < 0 || set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1) < 0)
		return -errno;
	if (set_int(fd, SOL_SOCKET, SO_KEEPALIVE, o->keepalive_s > 0) < 0)
		return -errno;
	/* A peer that vanished without FIN or RST (a crashed host, a
	 * connection the kernel completed from a SYN cookie whose client
	 * is long gone) would otherwise be held for ever. */
	if (o->keepalive_s &&
	    (set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)o->keepalive_s) < 0 ||
	     set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S) < 0 ||
	     set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, KEEPALIVE_PROBES) < 0))
		return -errno;
	return 0;
}

/* Whether some socket is bound to this path right now: /proc/net/unix
 * lists every bound path of this network namespace, also those of
 * sockets that have not called listen(2) yet. -1 when it cannot say. */
static int path_is_bound(const char *path)
{
	char line[512];
	size_t n = strlen(path);
	int found = 0;
	FILE *f = fopen("/proc/net/unix", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, '/');
		if (p && strncmp(p, path, n) == 0 && (p[n] == '\n' || p[n] == '\0')) {
			found = 1;
			break;
		}
	}
	fclose(f);
	return found;
}

/* A unix socket file left by a crashed run is removed; one that a live
 * process listens on, or has bound and will listen on, is not (bind then
 * fails with EADDRINUSE). */
static void remove_stale_socket(const struct listen_addr *a)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->sa;
	struct stat st;
	int fd, r;

	if (sun->sun_path[0] == '\0' || lstat(sun->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return;
	/* Non-blocking: a live server with a full backlog answers EAGAIN
	 * instead of stalling echod's start. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	r = connect(fd, (const struct sockaddr *)&a->sa, a->len) < 0 ? errno : 0;
	close(fd);
	/* Refused: nobody listens, but a process may have bound the path
	 * and not listened yet; only a path nobody has bound is stale. */
	if (r == ECONNREFUSED && path_is_bound(sun->sun_path) != 1)
		unlink(sun->sun_path);
}

static void fill_name(struct listener *l)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0) {
		snprintf(l->name, sizeof(l->name), "fd %d", l->fd);
		return;
	}
	address_format((struct sockaddr *)&ss, len, l->name, sizeof(l->name));
	if (ss.ss_family == AF_INET)
		l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		l->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Datagram sockets report the address each datagram was sent to, which
 * its reply is sent from (IP_PKTINFO; IPV6_RECVPKTINFO, and on a dual
 * stack socket IP_PKTINFO too, for its IPv4 peers). */
static int set_udp_options(int fd, int family)
{
	if (family == AF_INET6 && set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) < 0)
		return -errno;
	if (set_int(fd, IPPROTO_IP, IP_PKTINFO, 1) < 0 && family == AF_INET)
		return -errno;
	return 0;
}

/* The socket file gets unix_mode from the start (umask around bind: no
 * window with other permissions), then unix_group. */
static int bind_unix(int fd, const struct listen_addr *a, const struct listen_options *o)
{
	const char *path = ((const struct sockaddr_un *)&a->sa)->sun_path;
	mode_t old = umask(~o->unix_mode & 0777);
	int r = bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0 ? -errno : 0;

	umask(old);
	if (r == 0 && path[0] && o->unix_gid != (gid_t)-1 && chown(path, (uid_t)-1, o->unix_gid) < 0) {
		r = -errno;
		unlink(path);
	}
	return r;
}

static int open_socket(struct listen_addr *a, const struct listen_options *o, struct listener *l)
{
	int type = a->kind == LISTEN_UDP ? SOCK_DGRAM : SOCK_STREAM;
	int family = a->sa.ss_family;
	int fd;

	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && a->wildcard_v6 && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
		/* No IPv6 on this host: the wildcard becomes 0.0.0.0. */
		struct sockaddr_in *s4 = (struct sockaddr_in *)&a->sa;
		in_port_t port = ((struct sockaddr_in6 *)&a->sa)->sin6_port;
		memset(&a->sa, 0, sizeof(a->sa));
		s4->sin_family = AF_INET;
		s4->sin_port = port;
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
		a->len = sizeof(*s4);
		family = AF_INET;
		fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (fd < 0)
		return -errno;
	l->fd = fd;

	if (family != AF_UNIX) {
		if (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0)
			return -errno;
		if (o->reuse_port && set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0)
			return -errno;
		/* Binds an address not (yet) on any interface. */
		if (o->free_bind && set_int(fd, IPPROTO_IP, IP_FREEBIND, 1) < 0)
			return -errno;
		/* "[::]" serves IPv4 too, whatever the sysctl default says; a
		 * specific IPv6 address serves only itself. */
		if (family == AF_INET6 && set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, a->wildcard_v6 ? 0 : 1) < 0)
			return -errno;
		if (type == SOCK_STREAM) {
			int r = listener_set_tcp_options(fd, o);
			if (r < 0)
				return r;
			/* An echo client speaks first, so the kernel may complete
			 * the accept when its first bytes arrive: accepting and
			 * reading them then take one wakeup, not two (Apache
			 * httpd defers its accepts the same way). */
			if (o->defer_accept_s &&
			    set_int(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, (int)o->defer_accept_s) < 0)
				return -errno;
			l->defer_accept = o->defer_accept_s > 0;
		} else {
			int r = set_udp_options(fd, family);
			if (r < 0)
				return r;
		}
	} else {
		remove_stale_socket(a);
	}
	if (family == AF_UNIX) {
		int r = bind_unix(fd, a, o);
		if (r < 0)
			return r;
	} else if (bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0) {
		return -errno;
	}
	if (family == AF_UNIX && ((struct sockaddr_un *)&a->sa)->sun_path[0] != '\0') {
		/* Remember which file bind created: at exit, only that one is
		 * removed, not one another instance has put there since. */
		struct stat st;
		if (lstat(((struct sockaddr_un *)&a->sa)->sun_path, &st) == 0) {
			l->bound_path = true;
			l->path_dev = st.st_dev;
			l->path_ino = st.st_ino;
		}
	}
	if (type == SOCK_STREAM && listen(fd, o->backlog) < 0)
		return -errno;
	return 0;
}

/* What an admin can do about the common failures to listen. */
static const char *listen_hint(int err, const struct listen_addr *a)
{
	in_port_t port = 0;

	if (a->sa.ss_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
	else if (a->sa.ss_family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
	if (err == EACCES && port > 0 && port < 1024)
		return " (ports below 1024 need CAP_NET_BIND_SERVICE: run echod as root, "
		       "or through its socket unit, echod.socket)";
	if (err == EADDRINUSE && a->kind != LISTEN_UNIX)
		return " (another program, or another echod, listens there; "
		       "instances of echod share a port with reuse_port = yes)";
	if (err == EADDRNOTAVAIL)
		return " (no interface has this address; free_bind = yes binds it anyway)";
	return "";
}

int listener_open(const char *text, const struct listen_options *o, struct listener **out)
{
	struct listen_addr a;
	struct listener *l;
	char why[256];
	int r;

	if (address_parse(text, &a, why, sizeof(why)) < 0) {
		log_err("invalid listen address: %s", why);
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return log_errno(LOG_LEVEL_ERR, -ENOMEM, "cannot listen on %s", text);
	l->fd = -1;
	l->kind = a.kind;
	l->proxy = a.proxy;
	snprintf(l->config_text, sizeof(l->config_text), "%s", text);
	r = open_socket(&a, o, l);
	if (r < 0) {
		char shown[ADDRESS_TEXT_MAX];
		address_format((const struct sockaddr *)&a.sa, a.len, shown, sizeof(shown));
		log_err("cannot listen on %s (%s): %s%s", shown, address_kind_name(a.kind), strerror(-r),
			listen_hint(-r, &a));
		l->bound_path = false; /* a failed listen must not remove the file */
		listener_free(l);
		return r;
	}
	fill_name(l);
	*out = l;
	return 0;
}

bool listener_same_socket(const struct listener *l, const char *text)
{
	struct listen_addr a, b;
	char why[256];

	if (l->activated || address_parse(text, &a, why, sizeof(why)) < 0 ||
	    address_parse(l->config_text, &b, why, sizeof(why)) < 0)
		return false;
	return a.kind == b.kind && a.len == b.len && memcmp(&a.sa, &b.sa, a.len) == 0;
}

void listener_update(struct listener *l, const char *text, const struct listen_options *o)
{
	struct listen_addr a;
	char why[256];

	if (l->kind == LISTEN_UDP)
		return;
	if (listen(l->fd, o->backlog) < 0)
		log_errno(LOG_LEVEL_WARNING, -errno, "cannot change the backlog of %s", l->name);
	if (address_parse(text, &a, why, sizeof(why)) == 0) {
		l->proxy = a.proxy;
		snprintf(l->config_text, sizeof(l->config_text), "%s", text);
	}
	if (l->kind != LISTEN_TCP)
		return;
	int r = listener_set_tcp_options(l->fd, o);
	if (r == 0 && set_int(l->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, (int)o->defer_accept_s) < 0)
		r = -errno;
	if (r < 0)
		log_errno(LOG_LEVEL_WARNING, r, "cannot update the TCP options of %s", l->name);
	else
		l->defer_accept = o->defer_accept_s > 0;
}

#if HAVE_SYSTEMD
/* A datagram socket echoes only if it is bound and not connected: a
 * connected one would answer a single peer, an unbound one nobody. */
static int check_datagram(int fd, const struct sockaddr_storage *ss, socklen_t slen)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	bool unbound;

	if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0) {
		log_err("passed fd %d is a connected datagram socket", fd);
		return -EISCONN;
	}
	if (ss->ss_family == AF_INET)
		unbound = ((const struct sockaddr_in *)ss)->sin_port == 0;
	else if (ss->ss_family == AF_INET6)
		unbound = ((const struct sockaddr_in6 *)ss)->sin6_port == 0;
	else
		unbound = slen <= offsetof(struct sockaddr_un, sun_path);
	if (unbound) {
		log_err("passed fd %d is a datagram socket that is not bound", fd);
		return -EDESTADDRREQ;
	}
	return 0;
}

static int adopt(int fd, const char *name, const struct listen_options *o, struct listener **out)
{
	struct listener *l;
	int type = 0, family;
	socklen_t len = sizeof(type);
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);

	if (sd_is_socket(fd, AF_UNSPEC, 0, -1) <= 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &slen) < 0) {
		log_err("passed fd %d is not a socket", fd);
		return -ENOTSOCK;
	}
	family = ss.ss_family;
	if (family != AF_INET && family != AF_INET6 && family != AF_UNIX) {
		log_err("passed fd %d is a socket of unsupported address family %d", fd, family);
		return -EAFNOSUPPORT;
	}
	if (type == SOCK_STREAM) {
		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			log_err("passed fd %d is a stream socket that is not listening", fd);
			return -EINVAL;
		}
	} else if (type != SOCK_DGRAM) {
		log_err("passed fd %d is neither a stream nor a datagram socket", fd);
		return -ESOCKTNOSUPPORT;
	} else {
		int r = check_datagram(fd, &ss, slen);
		if (r < 0)
			return r;
	}
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		return log_errno(LOG_LEVEL_ERR, -errno, "passed fd %d: cannot make it non-blocking", fd);
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return log_errno(LOG_LEVEL_ERR, -ENOMEM, "passed fd %d", fd);
	l->fd = fd;
	l->activated = true;
	l->kind = type == SOCK_DGRAM ? LISTEN_UDP : family == AF_UNIX ? LISTEN_UNIX : LISTEN_TCP;
	/* FileDescriptorName= says what a stream socket is for. */
	if (type == SOCK_STREAM && name && strcmp(name, "proxy") == 0)
		l->proxy = true;
	else if (type == SOCK_STREAM && name && strcmp(name, "metrics") == 0)
		l->metrics = true;
	if (type == SOCK_DGRAM && family != AF_UNIX) {
		int r = set_udp_options(fd, family);
		if (r < 0) {
			free(l);
			return log_errno(LOG_LEVEL_ERR, r, "passed fd %d: cannot set UDP options", fd);
		}
	}
	if (type == SOCK_STREAM && family != AF_UNIX) {
		/* Not bind-time options: safe on an inherited socket. */
		int defer = 0;
		socklen_t dlen = sizeof(defer);
		int r = listener_set_tcp_options(fd, o);
		if (r < 0) {
			free(l);
			return log_errno(LOG_LEVEL_ERR, r, "passed fd %d: cannot set TCP options", fd);
		}
		/* Deferred accepts are the socket owner's choice
		 * (DeferAcceptSec= in the socket unit); echod follows it. */
		l->defer_accept = getsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, &dlen) == 0 && defer > 0;
	}
	fill_name(l);
	*out = l;
	return 0;
}

int listener_adopt_all(struct listener **list, const struct listen_options *o)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	int r = 0;

	if (n < 0)
		return log_errno(LOG_LEVEL_ERR, n, "cannot read the sockets passed by the service manager");
	for (int i = 0; i < n && r == 0; i++) {
		struct listener *l;
		r = adopt(SD_LISTEN_FDS_START + i, names ? names[i] : NULL, o, &l);
		if (r == 0) {
			l->next = *list;
			*list = l;
		}
	}
	for (int i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	return r < 0 ? r : n;
}
#else
int listener_adopt_all(struct listener **list, const struct listen_options *o)
{
	(void)list;
	(void)o;
	if (getenv("LISTEN_FDS")) {
		log_err("sockets were passed (LISTEN_FDS), but echod was built without systemd support");
		return -EOPNOTSUPP;
	}
	return 0;
}
#endif

void listener_free(struct listener *l)
{
	if (!l)
		return;
	if (l->bound_path) {
		struct sockaddr_un sun;
		socklen_t len = sizeof(sun);
		struct stat st;
		if (getsockname(l->fd, (struct sockaddr *)&sun, &len) == 0 && sun.sun_path[0] &&
		    lstat(sun.sun_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    st.st_dev == l->path_dev && st.st_ino == l->path_ino)
			unlink(sun.sun_path);
	}
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}
