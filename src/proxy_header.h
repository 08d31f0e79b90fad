/* The PROXY protocol header, versions 1 (text) and 2 (binary), as the HAProxy
 * specification (proxy-protocol.txt) defines it: a load balancer sends it
 * first on each connection to tell the client's real address.
 *
 * The parser is incremental without state: the caller keeps the bytes read
 * so far and calls again from the start whenever more arrive. It is bounded:
 * it never asks for more than PROXY_HEADER_MAX bytes, so a buffer of that
 * size always suffices, and it rejects a prefix as soon as no valid header
 * can begin with it, so a peer speaking something else is closed at its
 * first wrong byte, not after a timeout. Pure: no sockets, no allocation. */
#ifndef ECHOD_PROXY_HEADER_H
#define ECHOD_PROXY_HEADER_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The contract's bound on a header, v2's 16 fixed bytes included. */
#define PROXY_HEADER_MAX 4096
/* v1: "PROXY UNKNOWN " and two full IPv6 addresses and ports, with CRLF. */
#define PROXY_V1_MAX 107

/* proxy_header_parse() results besides a header length (> 0). */
#define PROXY_NEED_MORE 0
#define PROXY_ERROR (-EPROTO)

struct proxy_result {
	/* v1 UNKNOWN, v2 LOCAL or v2 PROXY with family UNSPEC: no address is
	 * carried (a health check, or a sender that does not know it): use
	 * the connection's own peer. src and dst are then unset. */
	bool local;
	uint8_t version; /* 1 or 2 */
	/* AF_INET, AF_INET6 or, from v2 only, AF_UNIX. */
	struct sockaddr_storage src, dst;
	socklen_t src_len, dst_len;
	/* With PROXY_ERROR: what was wrong, a static string for the log. */
	const char *error;
};

/* Parses the header at the start of buf[0 .. len). Returns its length (> 0;
 * what follows it is the client's data), PROXY_NEED_MORE, or PROXY_ERROR
 * with out->error set. NEED_MORE is only ever returned for len below
 * PROXY_HEADER_MAX. */
int proxy_header_parse(const uint8_t *buf, size_t len, struct proxy_result *out);

#endif
