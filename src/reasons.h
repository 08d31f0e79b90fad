/* Why a connection was refused or a datagram dropped: one list shared by
 * the counters, the refusal log lines and the metrics, so the three always
 * use the same names (those of the contract). */
#ifndef ECHOD_REASONS_H
#define ECHOD_REASONS_H

#include <stdbool.h>

enum refusal_reason {
	/* TCP (and Unix stream) connections closed at once: refused_total. */
	REFUSE_ACL,        /* allow/deny */
	REFUSE_PER_SOURCE, /* max_connections_per_source */
	REFUSE_LIFETIME,   /* max_connection_time */
	REFUSE_PROXY,      /* PROXY header missing, malformed, late, or untrusted peer */
	/* UDP datagrams not answered: udp_dropped_total. */
	REFUSE_UDP_LOOP,    /* source port 0, below 1024, or one of ours */
	REFUSE_UDP_MARTIAN, /* source not a unicast address */
	REFUSE_UDP_ACL,     /* allow/deny */
	REFUSE_UDP_RATE,    /* udp_rate_per_source */
	REFUSE_N
};

/* The first UDP reason: TCP reasons are those below it. */
#define REFUSE_UDP_FIRST REFUSE_UDP_LOOP

/* The contract's name, e.g. "per_source" or "udp_rate"; "unknown" for a
 * value out of range (never NULL: it goes straight into a log line). */
const char *refusal_reason_name(enum refusal_reason r);

static inline bool refusal_reason_is_udp(enum refusal_reason r)
{
	return r >= REFUSE_UDP_FIRST && r < REFUSE_N;
}

#endif
