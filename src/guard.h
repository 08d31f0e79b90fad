/* Who is served: the allow/deny lists, the per-source connection cap, the
 * UDP rate per source and the always-on UDP filters (contract v2), and
 * the counting and rate-limited logging of every refusal. Per-source
 * state lives in fixed-size tables: no memory grows with the number of
 * sources. Unix-socket peers are never filtered or limited. */
#ifndef ECHOD_GUARD_H
#define ECHOD_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "reasons.h"
#include "stats.h"

void guard_init(struct stats *stats);
void guard_free(void);

/* Applies the lists and limits of cfg (at start and on reload).
 * max_conns bounds the connections open at once (it sizes the per-source
 * table). 0, or -errno with the old settings kept. */
int guard_configure(const struct config *cfg, size_t max_conns);

/* The ports of echod's own UDP sockets: datagrams from them are the
 * echo loop of CERT CA-1996-01. */
void guard_set_udp_ports(const uint16_t *ports, size_t n);

/* Whether peer may send PROXY headers (proxy_trusted; Unix peers may:
 * the socket file's permissions decide who reaches them). */
bool guard_proxy_trusted(const struct sockaddr *peer);

/* Whether the allow/deny lists admit peer (always for Unix peers). */
bool guard_acl_admits(const struct sockaddr *peer);

/* A new stream connection from peer: the lists, then the per-source
 * cap. True: admitted, and *counted says whether it holds a place in its
 * source's count, *slot where (give both back to guard_release_conn).
 * False: refused, counted and logged. */
bool guard_admit_conn(const struct sockaddr *peer, socklen_t len, uint64_t now_ms, bool *counted,
		      uint32_t *slot);
void guard_release_conn(const struct sockaddr *peer, socklen_t len, uint32_t slot);

/* A datagram from peer: the filters, the lists, the rate. False: drop it
 * (counted and logged). */
bool guard_admit_datagram(const struct sockaddr *peer, socklen_t len, uint64_t now_ms);

/* Counts a refusal and logs it, at most one line per reason every 10
 * seconds, with the number not logged since. peer may be NULL. */
void guard_refuse(enum refusal_reason r, const struct sockaddr *peer, uint64_t now_ms);

/* "1.2.3.4:5" (IPv4-mapped addresses unwrapped), "[::1]:5", "unix". */
void guard_format_peer(const struct sockaddr *peer, char *buf, size_t size);

#endif
