/* Listen addresses: parse the `listen` syntax, format socket addresses. */
#ifndef ECHOD_ADDRESS_H
#define ECHOD_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

enum listen_kind {
	LISTEN_TCP,
	LISTEN_UDP,
	LISTEN_UNIX,
};

struct listen_addr {
	enum listen_kind kind;
	/* `proxy:`: each connection starts with a PROXY protocol header
	 * (stream sockets only: never with LISTEN_UDP). */
	bool proxy;
	/* "[::]" or a bare port: dual stack, or 0.0.0.0 where IPv6 is absent. */
	bool wildcard_v6;
	socklen_t len;
	struct sockaddr_storage sa;
};

/* Longest text address_format() produces, with its NUL. */
#define ADDRESS_TEXT_MAX 128

/* Parses PORT, HOST:PORT, [IPV6]:PORT, unix:/PATH, unix:@ABSTRACT, each
 * IP form optionally prefixed by tcp: or udp:; any stream form (not udp:)
 * optionally prefixed by proxy:. Host names are never resolved.
 * Returns 0, or -1 with a message in err. */
int address_parse(const char *text, struct listen_addr *out, char *err, size_t errlen);

/* "127.0.0.1:7", "[::1]:7", "unix:/run/echo.sock", "unix:@name". */
void address_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

const char *address_kind_name(enum listen_kind kind);

#endif
