#include "udp_filter.h"

#include <netinet/in.h>
#include <string.h>

/* Privileged ports are those of services, not of clients. */
#define FIRST_CLIENT_PORT 1024

/* addr in network order. */
static bool ipv4_is_martian(const uint8_t addr[4])
{
	/* 0.0.0.0/8: "this network", only valid as a source while a host
	 * learns its address, and never an address to reply to. */
	if (addr[0] == 0)
		return true;
	/* 224.0.0.0/4 multicast, 240.0.0.0/4 reserved and 255.255.255.255:
	 * the top three bits set covers both /4s. */
	return (addr[0] & 0xe0) == 0xe0;
}

bool udp_source_is_martian(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return ipv4_is_martian((const uint8_t *)&in->sin_addr);
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		/* On a dual-stack socket IPv4 peers arrive mapped. */
		if (IN6_IS_ADDR_V4MAPPED(a))
			return ipv4_is_martian(a->s6_addr + 12);
		return IN6_IS_ADDR_MULTICAST(a) || IN6_IS_ADDR_UNSPECIFIED(a);
	}
	return false;
}

bool udp_source_port_refused(uint16_t port, const uint16_t *own_ports, size_t n)
{
	if (port < FIRST_CLIENT_PORT)
		return true;
	for (size_t i = 0; i < n; i++)
		if (own_ports[i] == port)
			return true;
	return false;
}

static bool source_port(const struct sockaddr *sa, uint16_t *port)
{
	if (sa->sa_family == AF_INET) {
		*port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		*port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
		return true;
	}
	return false;
}

bool udp_source_refused(const struct sockaddr *sa, const uint16_t *own_ports, size_t n,
			enum refusal_reason *why)
{
	uint16_t port;

	if (!source_port(sa, &port))
		return false;
	/* Martian first: a multicast source is that whatever its port. */
	if (udp_source_is_martian(sa)) {
		*why = REFUSE_UDP_MARTIAN;
		return true;
	}
	if (udp_source_port_refused(port, own_ports, n)) {
		*why = REFUSE_UDP_LOOP;
		return true;
	}
	return false;
}
