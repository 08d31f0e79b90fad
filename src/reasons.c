#include "reasons.h"

static const char *const names[REFUSE_N] = {
	[REFUSE_ACL] = "acl",
	[REFUSE_PER_SOURCE] = "per_source",
	[REFUSE_LIFETIME] = "lifetime",
	[REFUSE_PROXY] = "proxy",
	[REFUSE_UDP_LOOP] = "udp_loop",
	[REFUSE_UDP_MARTIAN] = "udp_martian",
	[REFUSE_UDP_ACL] = "udp_acl",
	[REFUSE_UDP_RATE] = "udp_rate",
};

const char *refusal_reason_name(enum refusal_reason r)
{
	/* Unsigned compare: also catches a negative value. */
	if ((unsigned)r >= REFUSE_N)
		return "unknown";
	return names[r];
}
