#include "source_table.h"

#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Thousandths of a datagram: integer refill at rates below 1 per ms. */
#define MILLI 1000u

bool source_key_from_sockaddr(const struct sockaddr *sa, socklen_t len,
			      struct source_key *key)
{
	memset(key, 0, sizeof(*key));
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		key->b[10] = key->b[11] = 0xff;
		memcpy(&key->b[12], &in->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		/* A mapped address is already in the IPv4 key form. */
		if (IN6_IS_ADDR_V4MAPPED(a))
			memcpy(key->b, a, 16);
		else
			memcpy(key->b, a, 8);
		return true;
	}
	return false;
}

int source_seed_random(struct source_seed *seed)
{
	uint8_t *p = (uint8_t *)seed;
	size_t left = sizeof(*seed);

	while (left) {
		ssize_t n = getrandom(p, left, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		left -= (size_t)n;
	}
	return 0;
}

/* SipHash-1-3 (Aumasson, Bernstein) of a 16-byte key: a keyed PRF, so slot
 * positions are unpredictable without the seed. */
static inline uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND(v0, v1, v2, v3)                                            \
	do {                                                                \
		v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);   \
		v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                      \
		v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                      \
		v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);   \
	} while (0)

/* One load on little-endian machines (the byte loop it replaces cost a
 * fifth of a guarded accept's user time). */
static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static uint64_t siphash13_16(const struct source_seed *s, const struct source_key *key)
{
	uint64_t v0 = s->k0 ^ 0x736f6d6570736575ull;
	uint64_t v1 = s->k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = s->k0 ^ 0x6c7967656e657261ull;
	uint64_t v3 = s->k1 ^ 0x7465646279746573ull;
	uint64_t m[3] = { load_le64(key->b), load_le64(key->b + 8), 16ull << 56 };

	for (int i = 0; i < 3; i++) {
		v3 ^= m[i];
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m[i];
	}
	v2 ^= 0xff;
	for (int i = 0; i < 3; i++)
		SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

uint32_t source_table_slots_for(uint64_t expected)
{
	uint32_t n = SOURCE_SLOTS_MIN;

	while (n < SOURCE_SLOTS_MAX && (uint64_t)n < expected * 2)
		n <<= 1;
	return n;
}

static int table_init(struct source_table *t, uint32_t slots, uint32_t rate,
		      const struct source_seed *seed)
{
	uint32_t n = 1;

	/* Rounded up to a power of two and clamped above, but not raised to
	 * SOURCE_SLOTS_MIN: tests force collisions with tables of 1 to 4
	 * slots. The daemon sizes with source_table_slots_for(). */
	while (n < slots && n < SOURCE_SLOTS_MAX)
		n <<= 1;
	memset(t, 0, sizeof(*t));
	t->slots = calloc(n, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->mask = n - 1;
	t->probe = n < SOURCE_PROBE ? n : SOURCE_PROBE;
	t->seed = *seed;
	t->rate = rate;
	return 0;
}

int source_table_init(struct source_table *t, uint32_t slots,
		      const struct source_seed *seed)
{
	return table_init(t, slots, 0, seed);
}

int source_table_init_rate(struct source_table *t, uint32_t slots,
			   uint32_t rate, const struct source_seed *seed)
{
	if (rate == 0 || rate > SOURCE_RATE_MAX)
		return -EINVAL;
	return table_init(t, slots, rate, seed);
}

int source_table_set_rate(struct source_table *t, uint32_t rate)
{
	if (rate == 0 || rate > SOURCE_RATE_MAX)
		return -EINVAL;
	/* Buckets fuller than the new burst are clamped on their next refill
	 * (bucket_tokens()), so nothing else needs touching. */
	t->rate = rate;
	return 0;
}

void source_table_free(struct source_table *t)
{
	free(t->slots);
	t->slots = NULL;
}

static inline uint32_t window_start(const struct source_table *t, const struct source_key *key)
{
	return (uint32_t)siphash13_16(&t->seed, key) & t->mask;
}

static inline bool key_eq(const struct source_key *a, const struct source_key *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

/* The slot holding key's count, or NULL; *free_slot is the first free slot
 * of the window, or NULL. The whole window is scanned: a key may sit after
 * a slot freed since it was placed, and must never be placed twice. */
static struct source_slot *conn_find(const struct source_table *t, const struct source_key *key,
				     struct source_slot **free_slot)
{
	uint32_t i = window_start(t, key);

	*free_slot = NULL;
	for (uint32_t step = 0; step < t->probe; step++, i = (i + 1) & t->mask) {
		struct source_slot *s = &t->slots[i];
		if (s->n == 0) {
			if (!*free_slot)
				*free_slot = s;
		} else if (key_eq(&s->key, key)) {
			return s;
		}
	}
	return NULL;
}

uint64_t conn_count_get(const struct source_table *t, const struct source_key *key)
{
	struct source_slot *free_slot;
	struct source_slot *s = conn_find(t, key, &free_slot);

	return (s ? s->n : 0) + t->overflow;
}

bool conn_count_acquire(struct source_table *t, const struct source_key *key, uint32_t cap)
{
	uint32_t slot;

	return conn_count_acquire_at(t, key, cap, &slot);
}

bool conn_count_acquire_at(struct source_table *t, const struct source_key *key, uint32_t cap,
			   uint32_t *slot)
{
	struct source_slot *free_slot;
	struct source_slot *s = conn_find(t, key, &free_slot);
	/* The overflow budget may hold some of key's connections (placed
	 * there while its window was full), and which ones is not recorded:
	 * count all of it against key. Zero unless the table overflowed. */
	uint64_t have = (s ? s->n : 0) + t->overflow;

	if (cap && have >= cap)
		return false;
	if (s) {
		s->n++;
	} else if (free_slot) {
		free_slot->key = *key;
		free_slot->n = 1;
		s = free_slot;
	} else {
		t->overflow++;
	}
	*slot = s ? (uint32_t)(s - t->slots) : SOURCE_SLOT_NONE;
	return true;
}

void conn_count_release_at(struct source_table *t, const struct source_key *key, uint32_t slot)
{
	/* The slot the count went to still holds the key while the key has
	 * a count there: no hash, no window scan. A table replaced since (or
	 * a count in the overflow) takes the long way. */
	if (slot <= t->mask && t->slots[slot].n && key_eq(&t->slots[slot].key, key)) {
		t->slots[slot].n--;
		return;
	}
	conn_count_release(t, key);
}

void conn_count_release(struct source_table *t, const struct source_key *key)
{
	struct source_slot *free_slot;
	struct source_slot *s = conn_find(t, key, &free_slot);

	/* Counts are fungible per key: releasing from the slot first keeps
	 * slot + overflow >= the key's open connections, whichever of them
	 * closes. Without a slot the connection must be in the overflow. */
	if (s)
		s->n--;
	else if (t->overflow)
		t->overflow--;
}

/* The bucket's tokens at now, without writing it back. */
static uint64_t bucket_tokens(const struct source_table *t, const struct source_slot *s,
			      uint64_t now_ms)
{
	uint64_t full = (uint64_t)t->rate * MILLI;
	uint64_t last = s->stamp - 1;
	uint64_t elapsed = now_ms > last ? now_ms - last : 0;

	/* From empty to full takes 1000 ms; clamping first keeps the
	 * product far from overflow whatever the gap. */
	if (elapsed > 1000)
		elapsed = 1000;
	uint64_t tokens = s->n + elapsed * t->rate;
	return tokens < full ? tokens : full;
}

bool rate_admit(struct source_table *t, const struct source_key *key, uint64_t now_ms)
{
	uint64_t full = (uint64_t)t->rate * MILLI;
	uint32_t i = window_start(t, key);
	struct source_slot *victim = NULL;
	uint64_t victim_tokens = 0;

	/* Not a rate table: no limit rather than arithmetic on a zero burst. */
	if (t->rate == 0)
		return true;
	for (uint32_t step = 0; step < t->probe; step++, i = (i + 1) & t->mask) {
		struct source_slot *s = &t->slots[i];
		if (s->stamp == 0) {
			/* Free: as good as a full bucket, nothing lost. */
			if (!victim || victim_tokens < full) {
				victim = s;
				victim_tokens = full;
			}
			continue;
		}
		if (key_eq(&s->key, key)) {
			s->n = bucket_tokens(t, s, now_ms);
			s->stamp = now_ms + 1;
			if (s->n < MILLI)
				return false;
			s->n -= MILLI;
			return true;
		}
		/* Prefer the fullest: a full bucket says nothing a new one
		 * would not, and a source being limited (empty) goes last. */
		uint64_t tokens = bucket_tokens(t, s, now_ms);
		if (!victim || tokens > victim_tokens) {
			victim = s;
			victim_tokens = tokens;
		}
	}
	if (victim_tokens < full)
		t->evictions++;
	victim->key = *key;
	victim->n = full - MILLI;
	victim->stamp = now_ms + 1;
	return true;
}
