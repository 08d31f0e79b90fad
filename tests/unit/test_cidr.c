/* Unit tests of address prefixes: parse, format, match. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "check_main.h"
#include "cidr.h"

static char err[256];

static struct cidr parsed(const char *text)
{
	struct cidr c;
	ck_assert_msg(cidr_parse(text, &c, err, sizeof(err)) == 0, "%s: %s", text, err);
	return c;
}

static void shows(const char *text, const char *shown)
{
	char buf[CIDR_TEXT_MAX];
	struct cidr c = parsed(text);
	cidr_format(&c, buf, sizeof(buf));
	ck_assert_str_eq(buf, shown);
}

static void rejects(const char *text, const char *msg)
{
	struct cidr c;
	ck_assert_int_eq(cidr_parse(text, &c, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, msg);
}

static struct sockaddr_storage peer(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

static bool matches(const char *cidr, const char *ip)
{
	struct cidr c = parsed(cidr);
	struct sockaddr_storage ss = peer(ip);
	return cidr_match(&c, (struct sockaddr *)&ss);
}

START_TEST(parse_forms)
{
	struct cidr c = parsed("10.0.0.0/8");
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.prefix, 8);
	ck_assert_uint_eq(c.addr[0], 10);
	c = parsed("192.0.2.1");
	ck_assert_uint_eq(c.prefix, 32);
	c = parsed("::1");
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_uint_eq(c.prefix, 128);
	c = parsed("2001:db8::/32");
	ck_assert_uint_eq(c.prefix, 32);
	c = parsed("0.0.0.0/0");
	ck_assert_uint_eq(c.prefix, 0);
	c = parsed("::/0");
	ck_assert_uint_eq(c.prefix, 0);
	shows("10.0.0.0/8", "10.0.0.0/8");
	shows("192.0.2.1/32", "192.0.2.1");
	shows("2001:DB8:0:0::/64", "2001:db8::/64");
	shows("::ffff:192.0.2.0/120", "::ffff:192.0.2.0/120");
	shows("10.1.2.2/31", "10.1.2.2/31");
}
END_TEST

START_TEST(parse_errors)
{
	rejects("", "invalid address '' (expected ADDR or ADDR/PREFIXLEN)");
	rejects("/8", "invalid address '/8' (expected ADDR or ADDR/PREFIXLEN)");
	rejects("10.0.0.0/", "invalid prefix length in '10.0.0.0/'");
	rejects("10.0.0.0/33", "prefix length out of range in '10.0.0.0/33' (0 to 32)");
	rejects("::/129", "prefix length out of range in '::/129' (0 to 128)");
	rejects("10.0.0.0/08", "invalid prefix length in '10.0.0.0/08'");
	rejects("10.0.0.0/+8", "invalid prefix length in '10.0.0.0/+8'");
	rejects("10.0.0.0/8x", "invalid prefix length in '10.0.0.0/8x'");
	rejects("10.0.0.0/1000", "invalid prefix length in '10.0.0.0/1000'");
	rejects("10.0.0.0/8/8", "invalid prefix length in '10.0.0.0/8/8'");
	rejects("10.0.0.1/8", "host bits set past the prefix length in '10.0.0.1/8'");
	rejects("10.0.0.129/25", "host bits set past the prefix length in '10.0.0.129/25'");
	rejects("2001:db8::1/64", "host bits set past the prefix length in '2001:db8::1/64'");
	rejects("10.0.0", "invalid address '10.0.0' (expected an IPv4 or IPv6 address, optionally /PREFIXLEN)");
	rejects("localhost", "invalid address 'localhost' (expected an IPv4 or IPv6 address, optionally /PREFIXLEN)");
	rejects("[::1]", "invalid address '[::1]' (expected an IPv4 or IPv6 address, optionally /PREFIXLEN)");
	rejects("fe80::1%eth0", "invalid address 'fe80::1%eth0' (expected an IPv4 or IPv6 address, optionally /PREFIXLEN)");
	rejects(" 10.0.0.0/8", "invalid address ' 10.0.0.0/8' (expected an IPv4 or IPv6 address, optionally /PREFIXLEN)");
	/* No message buffer: still an error. */
	struct cidr c;
	ck_assert_int_eq(cidr_parse("x", &c, NULL, 0), -EINVAL);
}
END_TEST

START_TEST(match_ipv4)
{
	ck_assert(matches("10.0.0.0/8", "10.255.1.2"));
	ck_assert(!matches("10.0.0.0/8", "11.0.0.0"));
	ck_assert(matches("192.0.2.128/25", "192.0.2.200"));
	ck_assert(!matches("192.0.2.128/25", "192.0.2.127"));
	ck_assert(matches("192.0.2.1", "192.0.2.1"));
	ck_assert(!matches("192.0.2.1", "192.0.2.2"));
	ck_assert(matches("0.0.0.0/0", "203.0.113.9"));
	/* An IPv4 entry never matches a plain IPv6 peer, nor the reverse. */
	ck_assert(!matches("0.0.0.0/0", "2001:db8::1"));
	ck_assert(!matches("::/0", "192.0.2.1"));
}
END_TEST

START_TEST(match_ipv6)
{
	ck_assert(matches("2001:db8::/32", "2001:db8:ffff::1"));
	ck_assert(!matches("2001:db8::/32", "2001:db9::1"));
	ck_assert(matches("2001:db8::/63", "2001:db8:0:1::5"));
	ck_assert(!matches("2001:db8:0:2::/63", "2001:db8:0:1::5"));
	ck_assert(matches("::1", "::1"));
	ck_assert(matches("::/0", "::1"));
}
END_TEST

START_TEST(match_v4_mapped)
{
	/* A peer on a dual-stack socket arrives as ::ffff:a.b.c.d. */
	ck_assert(matches("192.0.2.0/24", "::ffff:192.0.2.7"));
	ck_assert(!matches("192.0.2.0/24", "::ffff:192.0.3.7"));
	ck_assert(matches("127.0.0.0/8", "::ffff:127.0.0.1"));
	ck_assert(matches("0.0.0.0/0", "::ffff:1.2.3.4"));
	/* Not mapped: the same last 32 bits under another prefix. */
	ck_assert(!matches("192.0.2.0/24", "::192.0.2.7"));
	ck_assert(!matches("192.0.2.0/24", "64:ff9b::192.0.2.7"));
	/* As itself it still matches IPv6 entries. */
	ck_assert(matches("::ffff:0:0/96", "::ffff:192.0.2.7"));
}
END_TEST

START_TEST(match_other_families)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct cidr all4 = parsed("0.0.0.0/0"), all6 = parsed("::/0");
	ck_assert(!cidr_match(&all4, (struct sockaddr *)&sun));
	ck_assert(!cidr_match(&all6, (struct sockaddr *)&sun));
}
END_TEST

START_TEST(list)
{
	struct cidr_list l;
	struct cidr c = parsed("10.0.0.0/8");
	struct sockaddr_storage a = peer("10.1.1.1"), b = peer("2001:db8::1");
	memset(&l, 0, sizeof(l));
	ck_assert(!cidr_list_match(&l, (struct sockaddr *)&a));
	ck_assert_int_eq(cidr_list_add(&l, &c), 0);
	ck_assert(cidr_list_match(&l, (struct sockaddr *)&a));
	ck_assert(!cidr_list_match(&l, (struct sockaddr *)&b));
	c = parsed("2001:db8::/32");
	ck_assert_int_eq(cidr_list_add(&l, &c), 0);
	ck_assert(cidr_list_match(&l, (struct sockaddr *)&b));
	while (l.n < CIDR_LIST_MAX)
		ck_assert_int_eq(cidr_list_add(&l, &c), 0);
	ck_assert_int_eq(cidr_list_add(&l, &c), -ENOSPC);
	ck_assert_uint_eq(l.n, CIDR_LIST_MAX);
}
END_TEST

START_TEST(every_prefix_length)
{
	/* For each length, a network of alternating bits matches its first
	 * and last address, and not the address before it. */
	for (unsigned p = 1; p <= 32; p++) {
		struct cidr c;
		char text[48], host[INET_ADDRSTRLEN];
		uint32_t mask = 0xffffffffu << (32 - p);
		uint32_t net = 0xaaaaaaaau & mask, last = net | ~mask;
		struct sockaddr_in in = { .sin_family = AF_INET };

		in.sin_addr.s_addr = htonl(net);
		inet_ntop(AF_INET, &in.sin_addr, host, sizeof(host));
		snprintf(text, sizeof(text), "%s/%u", host, p);
		ck_assert_msg(cidr_parse(text, &c, err, sizeof(err)) == 0, "%s: %s", text, err);
		ck_assert_msg(cidr_match(&c, (struct sockaddr *)&in), "%s first", text);
		in.sin_addr.s_addr = htonl(last);
		ck_assert_msg(cidr_match(&c, (struct sockaddr *)&in), "%s last", text);
		in.sin_addr.s_addr = htonl(net - 1);
		ck_assert_msg(!cidr_match(&c, (struct sockaddr *)&in), "%s before", text);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cidr");
	TCase *t = tcase_create("cidr");
	tcase_add_test(t, parse_forms);
	tcase_add_test(t, parse_errors);
	tcase_add_test(t, match_ipv4);
	tcase_add_test(t, match_ipv6);
	tcase_add_test(t, match_v4_mapped);
	tcase_add_test(t, match_other_families);
	tcase_add_test(t, list);
	tcase_add_test(t, every_prefix_length);
	suite_add_tcase(s, t);
	return s;
}

CHECK_MAIN(suite)
