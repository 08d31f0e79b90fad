/* Unit tests of the per-source table: keys, connection caps, token buckets. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <string.h>
#include <sys/un.h>

#include "check_main.h"
#include "source_table.h"

static const struct source_seed seed = { 0x0123456789abcdefull, 0xfedcba9876543210ull };

static struct source_key key4(uint32_t host_order)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(host_order) };
	struct source_key k;

	ck_assert(source_key_from_sockaddr((struct sockaddr *)&in, sizeof(in), &k));
	return k;
}

static struct source_key key6(const char *text)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	struct source_key k;

	ck_assert_int_eq(inet_pton(AF_INET6, text, &in6.sin6_addr), 1);
	ck_assert(source_key_from_sockaddr((struct sockaddr *)&in6, sizeof(in6), &k));
	return k;
}

static bool same(struct source_key a, struct source_key b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

START_TEST(key_ipv6_aggregates_to_64)
{
	ck_assert(same(key6("2001:db8:1:2::1"), key6("2001:db8:1:2:ffff:1:2:3")));
	ck_assert(!same(key6("2001:db8:1:2::1"), key6("2001:db8:1:3::1")));
	/* ::/64 is all zeros; it is still a key, distinct from any IPv4. */
	ck_assert(same(key6("::1"), key6("::")));
	ck_assert(!same(key6("::1"), key4(0)));
}
END_TEST

START_TEST(key_mapped_ipv4_is_ipv4)
{
	ck_assert(same(key6("::ffff:192.0.2.7"), key4(0xc0000207)));
	ck_assert(!same(key6("::ffff:192.0.2.7"), key4(0xc0000208)));
	/* IPv4 is the whole address, not a prefix of it. */
	ck_assert(!same(key4(0x7f000001), key4(0x7f000002)));
}
END_TEST

START_TEST(key_refuses_other_families)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX, .sun_path = "/x" };
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct source_key k;

	ck_assert(!source_key_from_sockaddr((struct sockaddr *)&un, sizeof(un), &k));
	/* A truncated address is not read past its length. */
	ck_assert(!source_key_from_sockaddr((struct sockaddr *)&in, 4, &k));
}
END_TEST

START_TEST(slots_for_bounds)
{
	ck_assert_uint_eq(source_table_slots_for(0), SOURCE_SLOTS_MIN);
	ck_assert_uint_eq(source_table_slots_for(100), 256);
	ck_assert_uint_eq(source_table_slots_for(128), 256);
	ck_assert_uint_eq(source_table_slots_for(129), 512);
	ck_assert_uint_eq(source_table_slots_for(UINT64_MAX / 4), SOURCE_SLOTS_MAX);
}
END_TEST

START_TEST(conn_cap_one_source)
{
	struct source_table t;
	struct source_key a = key4(0x0a000001);

	ck_assert_int_eq(source_table_init(&t, 64, &seed), 0);
	for (int i = 0; i < 3; i++)
		ck_assert(conn_count_acquire(&t, &a, 3));
	ck_assert(!conn_count_acquire(&t, &a, 3));
	ck_assert_uint_eq(conn_count_get(&t, &a), 3);
	conn_count_release(&t, &a);
	ck_assert(conn_count_acquire(&t, &a, 3));
	ck_assert(!conn_count_acquire(&t, &a, 3));
	/* A lower cap after a reload refuses until enough have closed. */
	ck_assert(!conn_count_acquire(&t, &a, 2));
	for (int i = 0; i < 3; i++)
		conn_count_release(&t, &a);
	ck_assert_uint_eq(conn_count_get(&t, &a), 0);
	/* One release too many (a caller's bug) does not wrap a count. */
	conn_count_release(&t, &a);
	ck_assert_uint_eq(conn_count_get(&t, &a), 0);
	ck_assert_uint_eq(t.overflow, 0);
	source_table_free(&t);
}
END_TEST

START_TEST(conn_cap_zero_counts_without_limit)
{
	struct source_table t;
	struct source_key a = key4(0x0a000001);

	ck_assert_int_eq(source_table_init(&t, 16, &seed), 0);
	for (int i = 0; i < 1000; i++)
		ck_assert(conn_count_acquire(&t, &a, 0));
	ck_assert_uint_eq(conn_count_get(&t, &a), 1000);
	/* Counted all along, so a cap set later holds at once. */
	ck_assert(!conn_count_acquire(&t, &a, 10));
	source_table_free(&t);
}
END_TEST

START_TEST(conn_cap_many_sources)
{
	enum { SOURCES = 1000, CAP = 2 };
	struct source_table t;

	ck_assert_int_eq(source_table_init(&t, source_table_slots_for(SOURCES * CAP), &seed), 0);
	for (uint32_t s = 0; s < SOURCES; s++) {
		struct source_key k = key4(0x0a000000 + s);
		ck_assert(conn_count_acquire(&t, &k, CAP));
		ck_assert(conn_count_acquire(&t, &k, CAP));
		ck_assert(!conn_count_acquire(&t, &k, CAP));
	}
	ck_assert_uint_eq(t.overflow, 0);
	for (uint32_t s = 0; s < SOURCES; s++) {
		struct source_key k = key4(0x0a000000 + s);
		conn_count_release(&t, &k);
		conn_count_release(&t, &k);
	}
	for (uint32_t i = 0; i <= t.mask; i++)
		ck_assert_uint_eq(t.slots[i].n, 0);
	source_table_free(&t);
}
END_TEST

/* Tables of 1, 2 and 4 slots force every window to fill: random opens and
 * closes from 12 sources, checking after each that no source is over its
 * cap, and that everything drains back to zero. */
START_TEST(conn_cap_holds_under_collisions)
{
	enum { SOURCES = 12, CAP = 3, OPS = 20000 };
	static const uint32_t sizes[] = { 1, 2, 4 };

	for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		struct source_table t;
		unsigned open[SOURCES] = { 0 };
		unsigned refused = 0;

		ck_assert_int_eq(source_table_init(&t, sizes[z], &seed), 0);
		ck_assert_uint_eq(t.mask + 1, sizes[z]);
		srand(7);
		for (int op = 0; op < OPS; op++) {
			int s = rand() % SOURCES;
			struct source_key k = key4(0xc0000200 + (uint32_t)s);
			if (rand() % 2 && open[s]) {
				conn_count_release(&t, &k);
				open[s]--;
			} else if (conn_count_acquire(&t, &k, CAP)) {
				open[s]++;
				ck_assert_uint_le(open[s], CAP);
			} else {
				refused++;
			}
		}
		ck_assert_uint_gt(refused, 0);
		for (int s = 0; s < SOURCES; s++) {
			struct source_key k = key4(0xc0000200 + (uint32_t)s);
			while (open[s]--)
				conn_count_release(&t, &k);
		}
		ck_assert_uint_eq(t.overflow, 0);
		for (uint32_t i = 0; i <= t.mask; i++)
			ck_assert_uint_eq(t.slots[i].n, 0);
		source_table_free(&t);
	}
}
END_TEST

/* The same churn through the slot hints, as echod uses them: each
 * connection gives back its count at the slot it got, or (overflow, or
 * the hint gone stale) the long way; caps hold, and all returns to 0. */
START_TEST(conn_slot_hints_under_collisions)
{
	enum { SOURCES = 12, CAP = 3, OPS = 20000 };
	static const uint32_t sizes[] = { 1, 2, 4, 64 };

	for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		struct source_table t;
		uint32_t slot[SOURCES][CAP];
		unsigned open[SOURCES] = { 0 };
		unsigned hinted = 0;

		ck_assert_int_eq(source_table_init(&t, sizes[z], &seed), 0);
		srand(11);
		for (int op = 0; op < OPS; op++) {
			int s = rand() % SOURCES;
			struct source_key k = key4(0xc0000200 + (uint32_t)s);
			if (rand() % 2 && open[s]) {
				/* Any of its connections may close: counts are fungible. */
				unsigned which = (unsigned)rand() % open[s];
				uint32_t at = slot[s][which];
				slot[s][which] = slot[s][--open[s]];
				hinted += at != SOURCE_SLOT_NONE;
				conn_count_release_at(&t, &k, at);
			} else if (conn_count_acquire_at(&t, &k, CAP, &slot[s][open[s] < CAP ? open[s] : 0])) {
				ck_assert_uint_lt(open[s], CAP);
				uint32_t at = slot[s][open[s]];
				ck_assert(at == SOURCE_SLOT_NONE || (at <= t.mask && same(t.slots[at].key, k)));
				open[s]++;
			}
		}
		ck_assert_uint_gt(hinted, 0);
		for (int s = 0; s < SOURCES; s++) {
			struct source_key k = key4(0xc0000200 + (uint32_t)s);
			while (open[s]) {
				open[s]--;
				conn_count_release_at(&t, &k, slot[s][open[s]]);
			}
		}
		ck_assert_uint_eq(t.overflow, 0);
		for (uint32_t i = 0; i <= t.mask; i++)
			ck_assert_uint_eq(t.slots[i].n, 0);
		/* A stale hint (another key's slot, or out of range) is harmless. */
		struct source_key a = key4(0x0a000001), b = key4(0x0a000002);
		uint32_t sa, sb;
		ck_assert(conn_count_acquire_at(&t, &a, 0, &sa));
		ck_assert(conn_count_acquire_at(&t, &b, 0, &sb));
		conn_count_release_at(&t, &a, sb == sa ? t.mask + 7 : sb);
		ck_assert_uint_ge(conn_count_get(&t, &b), 1);
		conn_count_release_at(&t, &b, UINT32_MAX - 1);
		ck_assert_uint_eq(t.overflow, 0);
		for (uint32_t i = 0; i <= t.mask; i++)
			ck_assert_uint_eq(t.slots[i].n, 0);
		source_table_free(&t);
	}
}
END_TEST

/* 100,000 distinct sources (as 127.x.y.z on loopback) come and go while
 * 500 others stay connected and one sits at its cap: the table is the size
 * it was given, every newcomer is admitted, the capped one stays capped. */
START_TEST(conn_churn_100k_sources)
{
	enum { CHURN = 100000, HELD = 500, CAP = 4 };
	struct source_table t;
	struct source_key x = key4(0xcb007101);
	uint32_t slots = source_table_slots_for(1024);

	ck_assert_int_eq(source_table_init(&t, slots, &seed), 0);
	for (int i = 0; i < CAP; i++)
		ck_assert(conn_count_acquire(&t, &x, CAP));
	for (uint32_t i = 0; i < HELD; i++) {
		struct source_key k = key4(0x0a000000 + i);
		ck_assert(conn_count_acquire(&t, &k, CAP));
	}
	for (uint32_t i = 0; i < CHURN; i++) {
		struct source_key k = key4(0x7f000000 + i);
		ck_assert(conn_count_acquire(&t, &k, CAP));
		if (i % 1000 == 0)
			ck_assert(!conn_count_acquire(&t, &x, CAP));
		conn_count_release(&t, &k);
	}
	ck_assert_uint_eq(t.mask + 1, slots);
	ck_assert_uint_eq(conn_count_get(&t, &x), CAP);
	ck_assert(!conn_count_acquire(&t, &x, CAP));
	conn_count_release(&t, &x);
	ck_assert(conn_count_acquire(&t, &x, CAP));
	source_table_free(&t);
}
END_TEST

START_TEST(rate_init_bounds)
{
	struct source_table t;

	ck_assert_int_eq(source_table_init_rate(&t, 16, 0, &seed), -EINVAL);
	ck_assert_int_eq(source_table_init_rate(&t, 16, SOURCE_RATE_MAX + 1, &seed), -EINVAL);
	ck_assert_int_eq(source_table_init_rate(&t, 16, SOURCE_RATE_MAX, &seed), 0);
	/* At the ceiling a full refill after a long gap must not overflow. */
	struct source_key a = key4(1);
	ck_assert(rate_admit(&t, &a, 0));
	ck_assert(rate_admit(&t, &a, UINT64_MAX / 2));
	source_table_free(&t);
}
END_TEST

START_TEST(rate_burst_then_steady)
{
	enum { RATE = 10 };
	struct source_table t;
	struct source_key a = key4(0x0a000001);
	unsigned admitted = 0;

	ck_assert_int_eq(source_table_init_rate(&t, 64, RATE, &seed), 0);
	/* The burst, at time 0 (a valid clock value). */
	for (int i = 0; i < RATE; i++)
		ck_assert(rate_admit(&t, &a, 0));
	ck_assert(!rate_admit(&t, &a, 0));
	/* One token per 100 ms; partial refills accumulate across refusals. */
	ck_assert(!rate_admit(&t, &a, 50));
	ck_assert(!rate_admit(&t, &a, 99));
	ck_assert(rate_admit(&t, &a, 100));
	ck_assert(!rate_admit(&t, &a, 100));
	/* Steady: one try per ms for 10 s admits the rate, no more. */
	for (uint64_t now = 101; now <= 10100; now++)
		admitted += rate_admit(&t, &a, now);
	ck_assert_uint_eq(admitted, 10 * RATE);
	/* A long silence refills the burst and not more. */
	admitted = 0;
	for (int i = 0; i < 3 * RATE; i++)
		admitted += rate_admit(&t, &a, 1000000);
	ck_assert_uint_eq(admitted, RATE);
	source_table_free(&t);
}
END_TEST

START_TEST(rate_sources_are_independent)
{
	struct source_table t;
	struct source_key a = key4(0x0a000001), b = key6("2001:db8::1"), b2 = key6("2001:db8::2");

	ck_assert_int_eq(source_table_init_rate(&t, 64, 2, &seed), 0);
	ck_assert(rate_admit(&t, &a, 5));
	ck_assert(rate_admit(&t, &a, 5));
	ck_assert(!rate_admit(&t, &a, 5));
	ck_assert(rate_admit(&t, &b, 5));
	/* Same /64, same bucket. */
	ck_assert(rate_admit(&t, &b2, 5));
	ck_assert(!rate_admit(&t, &b, 5));
	source_table_free(&t);
}
END_TEST

/* A flood of 100,000 one-datagram sources churns the table; a source
 * being limited has the emptiest bucket of its window, is never evicted
 * and stays limited. */
START_TEST(rate_flood_keeps_limited_source_limited)
{
	enum { RATE = 10, FLOOD = 100000 };
	struct source_table t;
	struct source_key x = key4(0xcb007101);
	uint32_t slots = source_table_slots_for(1024);

	ck_assert_int_eq(source_table_init_rate(&t, slots, RATE, &seed), 0);
	for (int i = 0; i < RATE; i++)
		ck_assert(rate_admit(&t, &x, 0));
	for (uint32_t i = 0; i < FLOOD; i++) {
		struct source_key k = key4(0x7f000000 + i);
		/* 1 ms per 1000 datagrams: x refills 1 token per 100 ms,
		 * i.e. during 100,000 datagrams. */
		uint64_t now = i / 1000;
		ck_assert(rate_admit(&t, &k, now));
		if (i % 100 == 0)
			ck_assert(!rate_admit(&t, &x, now));
	}
	ck_assert_uint_gt(t.evictions, 0);
	ck_assert_uint_eq(t.mask + 1, slots);
	ck_assert(rate_admit(&t, &x, 100));
	source_table_free(&t);
}
END_TEST

/* In a one-slot table two sources evict each other: the documented bound,
 * at most one extra burst per eviction, is what each gets. */
START_TEST(rate_eviction_costs_one_burst)
{
	enum { RATE = 5 };
	struct source_table t;
	struct source_key a = key4(1), b = key4(2);
	unsigned admitted = 0;

	ck_assert_int_eq(source_table_init_rate(&t, 1, RATE, &seed), 0);
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 2 * RATE; i++)
			admitted += rate_admit(&t, &a, 0);
		ck_assert(rate_admit(&t, &b, 0));
	}
	ck_assert_uint_eq(t.evictions, 7);
	ck_assert_uint_eq(admitted, RATE * (t.evictions / 2 + 1));
	source_table_free(&t);
}
END_TEST

/* A bucket that has refilled is taken over without counting an eviction:
 * its source loses nothing. */
START_TEST(rate_full_bucket_is_free)
{
	struct source_table t;
	struct source_key a = key4(1), b = key4(2);

	ck_assert_int_eq(source_table_init_rate(&t, 1, 4, &seed), 0);
	ck_assert(rate_admit(&t, &a, 0));
	ck_assert(rate_admit(&t, &b, 250));
	ck_assert_uint_eq(t.evictions, 0);
	ck_assert(rate_admit(&t, &a, 251));
	ck_assert_uint_eq(t.evictions, 1);
	source_table_free(&t);
}
END_TEST

START_TEST(rate_change_keeps_buckets)
{
	struct source_table t;
	struct source_key a = key4(1);
	unsigned admitted = 0;

	ck_assert_int_eq(source_table_init_rate(&t, 16, 100, &seed), 0);
	ck_assert(rate_admit(&t, &a, 0));
	ck_assert_int_eq(source_table_set_rate(&t, 0), -EINVAL);
	ck_assert_int_eq(source_table_set_rate(&t, SOURCE_RATE_MAX + 1), -EINVAL);
	/* Down to 3: the 99 tokens left are clamped to the new burst. */
	ck_assert_int_eq(source_table_set_rate(&t, 3), 0);
	for (int i = 0; i < 10; i++)
		admitted += rate_admit(&t, &a, 1);
	ck_assert_uint_eq(admitted, 3);
	source_table_free(&t);
}
END_TEST

START_TEST(rate_on_count_table_is_no_limit)
{
	struct source_table t;
	struct source_key a = key4(1);

	ck_assert_int_eq(source_table_init(&t, 16, &seed), 0);
	for (int i = 0; i < 100; i++)
		ck_assert(rate_admit(&t, &a, 0));
	source_table_free(&t);
}
END_TEST

START_TEST(seed_changes_placement)
{
	struct source_table t1, t2;
	struct source_seed other = { 1, 2 };
	struct source_seed drawn;
	int differ = 0;

	ck_assert_int_eq(source_seed_random(&drawn), 0);
	ck_assert_int_eq(source_table_init(&t1, 1024, &seed), 0);
	ck_assert_int_eq(source_table_init(&t2, 1024, &other), 0);
	for (uint32_t i = 0; i < 64; i++) {
		struct source_key k = key4(0x7f000000 + i);
		conn_count_acquire(&t1, &k, 0);
		conn_count_acquire(&t2, &k, 0);
	}
	for (uint32_t i = 0; i <= t1.mask; i++)
		differ += (t1.slots[i].n != t2.slots[i].n);
	ck_assert_int_gt(differ, 0);
	source_table_free(&t1);
	source_table_free(&t2);
}
END_TEST

static Suite *source_table_suite(void)
{
	Suite *s = suite_create("source_table");
	TCase *k = tcase_create("keys"), *c = tcase_create("conn"), *r = tcase_create("rate");

	tcase_add_test(k, key_ipv6_aggregates_to_64);
	tcase_add_test(k, key_mapped_ipv4_is_ipv4);
	tcase_add_test(k, key_refuses_other_families);
	tcase_add_test(k, slots_for_bounds);
	tcase_add_test(k, seed_changes_placement);
	tcase_add_test(c, conn_cap_one_source);
	tcase_add_test(c, conn_cap_zero_counts_without_limit);
	tcase_add_test(c, conn_cap_many_sources);
	tcase_add_test(c, conn_cap_holds_under_collisions);
	tcase_add_test(c, conn_slot_hints_under_collisions);
	tcase_add_test(c, conn_churn_100k_sources);
	tcase_add_test(r, rate_init_bounds);
	tcase_add_test(r, rate_burst_then_steady);
	tcase_add_test(r, rate_sources_are_independent);
	tcase_add_test(r, rate_flood_keeps_limited_source_limited);
	tcase_add_test(r, rate_eviction_costs_one_burst);
	tcase_add_test(r, rate_full_bucket_is_free);
	tcase_add_test(r, rate_change_keeps_buckets);
	tcase_add_test(r, rate_on_count_table_is_no_limit);
	suite_add_tcase(s, k);
	suite_add_tcase(s, c);
	suite_add_tcase(s, r);
	return s;
}

CHECK_MAIN(source_table_suite)
