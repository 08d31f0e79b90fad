/* The always-on UDP source filters (contract v2; no key turns them off).
 *
 * A UDP echo answers whatever address a datagram claims to come from, and
 * that address is trivially forged. Two kinds of claim are never answered:
 * - a source port of another service that may answer back: 0, anything
 *   below 1024 (echo, chargen, daytime, DNS... : the echo/chargen ping-pong
 *   of CERT CA-1996-01) or one of echod's own UDP ports (two echods, or one
 *   talking to itself, would bounce a datagram forever);
 * - a source that is not one unicast host: an answer to a multicast or
 *   broadcast address reaches many, an answer to 0.0.0.0 nobody sane.
 * Pure predicates over addresses: no sockets, no state. */
#ifndef ECHOD_UDP_FILTER_H
#define ECHOD_UDP_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "reasons.h"

/* Whether an AF_INET or AF_INET6 source is not a unicast address:
 * IPv4 0.0.0.0/8, multicast 224.0.0.0/4, 240.0.0.0/4 (reserved, with the
 * limited broadcast 255.255.255.255); IPv6 multicast ff00::/8 and the
 * unspecified ::. An IPv4-mapped IPv6 address is judged as its IPv4
 * address. Loopback is allowed (local tests, local clients). Other
 * families are not IP sources: false.
 *
 * Not caught: subnet-directed broadcasts (192.0.2.255 on a /24). Whether
 * an address is one depends on the host's interfaces and their prefixes,
 * which a pure function cannot know; the kernel does not deliver such a
 * datagram as unicast anyway, and routers drop them by default (RFC 2644). */
bool udp_source_is_martian(const struct sockaddr *sa);

/* Whether a source port (host order) is refused: 0, below 1024, or one of
 * own_ports[0 .. n), the ports of echod's own UDP sockets. */
bool udp_source_port_refused(uint16_t port, const uint16_t *own_ports, size_t n);

/* Both checks on a datagram's source: false if it may be answered, else
 * true with *why set to REFUSE_UDP_MARTIAN or REFUSE_UDP_LOOP. Only
 * AF_INET and AF_INET6 are judged. */
bool udp_source_refused(const struct sockaddr *sa, const uint16_t *own_ports, size_t n,
			enum refusal_reason *why);

#endif
