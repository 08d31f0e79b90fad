/* Per-source state in a fixed-size table: concurrent connection counts
 * (max_connections_per_source) and UDP token buckets (udp_rate_per_source).
 *
 * A "source" is an IPv4 address or an IPv6 /64; an IPv4-mapped IPv6 peer is
 * its IPv4 address. Hostile peers choose their addresses, so nothing here
 * grows with the number of sources: the table is allocated once, at init,
 * and each lookup touches at most SOURCE_PROBE slots (open addressing with a
 * bounded probe window). Slots are placed by SipHash-1-3 under a secret seed,
 * so a peer cannot pick addresses that pile into one window.
 *
 * What happens when a window is full differs by use, on purpose:
 * - Connection counts are live state (a count must come back down when the
 *   connection closes), so nothing may be evicted. Sources that find no room
 *   share one overflow budget, and while that budget is in use every source's
 *   headroom shrinks by it: a source never exceeds its cap, at the price of
 *   refusing early while the table overflows.
 * - A token bucket that has refilled holds no information (a new bucket
 *   starts full), so full buckets are free slots. Otherwise the fullest
 *   bucket of the window is evicted; its source starts again with a full
 *   burst, so it can send at most one burst more per eviction. A source
 *   being limited has an empty bucket and is evicted last.
 *
 * No allocation after init, no syscall on the per-packet path, O(1). */
#ifndef ECHOD_SOURCE_TABLE_H
#define ECHOD_SOURCE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* IPv4 as ::ffff:a.b.c.d; IPv6 as its /64 followed by zeros. The two never
 * meet: a mapped address has ff ff in bytes 10-11, an IPv6 key zeros. The
 * form is an in6_addr, so inet_ntop(AF_INET6, ...) prints it for logs. */
struct source_key {
	uint8_t b[16];
};

/* The secret that places sources; draw it with source_seed_random(). */
struct source_seed {
	uint64_t k0, k1;
};

/* Slots looked at per lookup. 16 slots of 32 bytes are 8 cache lines. */
#define SOURCE_PROBE 16u
/* Bounds on the table, in slots: 32 bytes each, so at most 32 MiB. */
#define SOURCE_SLOTS_MIN 16u
#define SOURCE_SLOTS_MAX (1u << 20)
/* The udp_rate_per_source ceiling of the contract; keeps tokens in 64 bits. */
#define SOURCE_RATE_MAX 10000000u

struct source_slot {
	struct source_key key;
	/* Connections: open connections; 0 = free.
	 * Rate: tokens, in thousandths of a datagram. */
	uint64_t n;
	/* Rate: the time of the last refill + 1; 0 = free. (The key cannot
	 * say: all zeros is a valid key, the IPv6 ::/64.) */
	uint64_t stamp;
};

struct source_table {
	struct source_slot *slots;
	uint32_t mask;  /* slots - 1, a power of two minus one */
	uint32_t probe; /* window length: min(SOURCE_PROBE, slots) */
	struct source_seed seed;
	uint32_t rate;      /* datagrams per second and burst; rate tables only */
	uint64_t overflow;  /* connections counted in the shared budget */
	uint64_t evictions; /* token buckets evicted while not full */
};

/* Reads the key of an AF_INET or AF_INET6 address. False for AF_UNIX and
 * anything else: those peers are never limited by source. */
bool source_key_from_sockaddr(const struct sockaddr *sa, socklen_t len,
			      struct source_key *key);

/* Fills seed from getrandom(2). 0 or -errno. Call once, at start-up. */
int source_seed_random(struct source_seed *seed);

/* Slots for `expected` entries: the next power of two >= 2 * expected,
 * within SOURCE_SLOTS_MIN..SOURCE_SLOTS_MAX. */
uint32_t source_table_slots_for(uint64_t expected);

/* Allocates a table of `slots` (rounded up to a power of two, clamped as
 * above) for connection counts. 0 or -ENOMEM. For max_connections_per_source,
 * expected = max_connections, or the fd limit when that is 0. */
int source_table_init(struct source_table *t, uint32_t slots,
		      const struct source_seed *seed);
/* The same for token buckets of `rate` datagrams per second and a burst of
 * `rate` (1..SOURCE_RATE_MAX). 0, -EINVAL or -ENOMEM. */
int source_table_init_rate(struct source_table *t, uint32_t slots,
			   uint32_t rate, const struct source_seed *seed);
/* A new udp_rate_per_source after a reload (1..SOURCE_RATE_MAX), keeping
 * the buckets. 0 or -EINVAL; to lift the limit, free the table. */
int source_table_set_rate(struct source_table *t, uint32_t rate);
void source_table_free(struct source_table *t);

/* Admits one more connection from key if it has fewer than cap open (cap 0
 * is no cap, still counted so that release stays symmetric). Every true must
 * be matched by exactly one conn_count_release() with the same key. */
bool conn_count_acquire(struct source_table *t, const struct source_key *key,
			uint32_t cap);
void conn_count_release(struct source_table *t, const struct source_key *key);
/* The same, with where the count went (*slot; SOURCE_SLOT_NONE for the
 * overflow), so that its release needs no lookup. */
#define SOURCE_SLOT_NONE UINT32_MAX
bool conn_count_acquire_at(struct source_table *t, const struct source_key *key,
			   uint32_t cap, uint32_t *slot);
void conn_count_release_at(struct source_table *t, const struct source_key *key, uint32_t slot);
/* Open connections counted for key (its slot plus the shared overflow
 * budget, which it may be part of): what the cap is checked against. */
uint64_t conn_count_get(const struct source_table *t, const struct source_key *key);

/* Takes one token from key's bucket. now_ms is a monotonic clock that never
 * goes back (the loop's now_ms); it may start at 0. */
bool rate_admit(struct source_table *t, const struct source_key *key, uint64_t now_ms);

#endif
