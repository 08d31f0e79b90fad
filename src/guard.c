#include "guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "address.h"
#include "cidr.h"
#include "log.h"
#include "log_limit.h"
#include "source_table.h"
#include "udp_filter.h"

/* Sources the UDP rate table tracks at once before it evicts: 2^15
 * slots of 32 bytes, 1 MiB, whatever the number of sources. */
#define UDP_RATE_SOURCES 16384
#define MAX_UDP_PORTS 64

static struct {
	struct stats *stats;
	struct cidr_list allow, deny, proxy_trusted;
	bool acl;                 /* a list is not empty */
	uint32_t per_source;      /* 0 = no cap */
	struct source_table conns; /* allocated once a cap is set; then kept */
	uint32_t udp_rate;        /* 0 = no limit */
	struct source_table udp;
	struct source_seed seed;
	uint16_t udp_ports[MAX_UDP_PORTS];
	size_t n_udp_ports;
	struct log_limiter limiter[REFUSE_N];
} guard;

void guard_init(struct stats *stats)
{
	memset(&guard, 0, sizeof(guard));
	guard.stats = stats;
	/* A secret hash key: sources cannot aim for the same slots. */
	if (source_seed_random(&guard.seed) < 0)
		log_warning("no random seed for the per-source tables; using a fixed one");
}

void guard_free(void)
{
	source_table_free(&guard.conns);
	source_table_free(&guard.udp);
	memset(&guard, 0, sizeof(guard));
}

int guard_configure(const struct config *cfg, size_t max_conns)
{
	int r = 0;

	if (cfg->max_connections_per_source && !guard.conns.slots) {
		r = source_table_init(&guard.conns, source_table_slots_for(max_conns), &guard.seed);
		if (r < 0)
			return r;
	}
	if (cfg->udp_rate_per_source != guard.udp_rate) {
		if (!cfg->udp_rate_per_source)
			source_table_free(&guard.udp);
		else if (guard.udp.slots)
			r = source_table_set_rate(&guard.udp, cfg->udp_rate_per_source);
		else
			r = source_table_init_rate(&guard.udp, source_table_slots_for(UDP_RATE_SOURCES),
						   cfg->udp_rate_per_source, &guard.seed);
		if (cfg->udp_rate_per_source && r < 0)
			return r;
	}
	guard.udp_rate = cfg->udp_rate_per_source;
	guard.per_source = cfg->max_connections_per_source;
	guard.proxy_trusted = cfg->proxy_trusted;
	guard.allow = cfg->allow;
	guard.deny = cfg->deny;
	guard.acl = cfg->allow.n || cfg->deny.n;
	return 0;
}

void guard_set_udp_ports(const uint16_t *ports, size_t n)
{
	guard.n_udp_ports = n < MAX_UDP_PORTS ? n : MAX_UDP_PORTS;
	memcpy(guard.udp_ports, ports, guard.n_udp_ports * sizeof(*ports));
}

static bool is_ip(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET || sa->sa_family == AF_INET6;
}

bool guard_proxy_trusted(const struct sockaddr *peer)
{
	return !is_ip(peer) || cidr_list_match(&guard.proxy_trusted, peer);
}

bool guard_acl_admits(const struct sockaddr *peer)
{
	if (!guard.acl || !is_ip(peer))
		return true;
	if (cidr_list_match(&guard.deny, peer))
		return false;
	return guard.allow.n == 0 || cidr_list_match(&guard.allow, peer);
}

bool guard_admit_conn(const struct sockaddr *peer, socklen_t len, uint64_t now_ms, bool *counted,
		      uint32_t *slot)
{
	struct source_key key;

	*counted = false;
	if (!guard_acl_admits(peer)) {
		guard_refuse(REFUSE_ACL, peer, now_ms);
		return false;
	}
	if (!guard.conns.slots || !source_key_from_sockaddr(peer, len, &key))
		return true;
	/* Counted even with no cap (after a reload set it to 0), so that a
	 * cap set again applies to the connections already open. */
	if (!conn_count_acquire_at(&guard.conns, &key, guard.per_source ? guard.per_source : UINT32_MAX,
				   slot)) {
		guard_refuse(REFUSE_PER_SOURCE, peer, now_ms);
		return false;
	}
	*counted = true;
	return true;
}

void guard_release_conn(const struct sockaddr *peer, socklen_t len, uint32_t slot)
{
	struct source_key key;

	if (guard.conns.slots && source_key_from_sockaddr(peer, len, &key))
		conn_count_release_at(&guard.conns, &key, slot);
}

bool guard_admit_datagram(const struct sockaddr *peer, socklen_t len, uint64_t now_ms)
{
	enum refusal_reason why;
	struct source_key key;

	if (udp_source_refused(peer, guard.udp_ports, guard.n_udp_ports, &why)) {
		guard_refuse(why, peer, now_ms);
		return false;
	}
	if (!guard_acl_admits(peer)) {
		guard_refuse(REFUSE_UDP_ACL, peer, now_ms);
		return false;
	}
	if (guard.udp_rate && source_key_from_sockaddr(peer, len, &key) &&
	    !rate_admit(&guard.udp, &key, now_ms)) {
		guard_refuse(REFUSE_UDP_RATE, peer, now_ms);
		return false;
	}
	return true;
}

void guard_format_peer(const struct sockaddr *peer, char *buf, size_t size)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)peer;

	if (peer->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = s6->sin6_port };
		memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
		address_format((const struct sockaddr *)&s4, sizeof(s4), buf, size);
	} else if (is_ip(peer)) {
		address_format(peer, sizeof(struct sockaddr_in6), buf, size);
	} else {
		snprintf(buf, size, "unix");
	}
}

static const char *what_refused(enum refusal_reason r)
{
	switch (r) {
	case REFUSE_ACL: return "connection refused by allow/deny";
	case REFUSE_PER_SOURCE: return "connection refused: max_connections_per_source reached";
	case REFUSE_LIFETIME: return "connection closed: max_connection_time reached";
	case REFUSE_PROXY: return "connection refused: bad, late or untrusted PROXY header";
	case REFUSE_UDP_LOOP: return "datagram dropped: source port 0, below 1024 or one of echod's";
	case REFUSE_UDP_MARTIAN: return "datagram dropped: source is not a unicast address";
	case REFUSE_UDP_ACL: return "datagram dropped by allow/deny";
	case REFUSE_UDP_RATE: return "datagram dropped: udp_rate_per_source reached";
	case REFUSE_N: break;
	}
	return "refused";
}

void guard_refuse(enum refusal_reason r, const struct sockaddr *peer, uint64_t now_ms)
{
	uint64_t suppressed;
	char who[ADDRESS_TEXT_MAX];

	guard.stats->refused[r]++;
	if (!log_enabled(LOG_LEVEL_NOTICE) || !log_limiter_allow(&guard.limiter[r], now_ms, &suppressed))
		return;
	if (peer)
		guard_format_peer(peer, who, sizeof(who));
	else
		snprintf(who, sizeof(who), "?");
	if (suppressed)
		log_notice("%s (%s, from %s; %llu more not logged in the last %u s)", what_refused(r),
			   refusal_reason_name(r), who, (unsigned long long)suppressed,
			   LOG_LIMIT_INTERVAL_MS / 1000);
	else
		log_notice("%s (%s, from %s)", what_refused(r), refusal_reason_name(r), who);
}
