/* Unit tests of the `listen` address syntax. */
#include <arpa/inet.h>
#include <check.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "address.h"
#include "check_main.h"

static struct listen_addr a;
static char err[512];

static void roundtrip(const char *text, enum listen_kind kind, const char *shown)
{
	char buf[ADDRESS_TEXT_MAX];
	ck_assert_msg(address_parse(text, &a, err, sizeof(err)) == 0, "%s: %s", text, err);
	ck_assert_int_eq(a.kind, kind);
	address_format((struct sockaddr *)&a.sa, a.len, buf, sizeof(buf));
	ck_assert_str_eq(buf, shown);
}

static void rejects(const char *text, const char *msg)
{
	ck_assert_int_eq(address_parse(text, &a, err, sizeof(err)), -1);
	ck_assert_str_eq(err, msg);
}

START_TEST(ip_forms)
{
	roundtrip("7", LISTEN_TCP, "[::]:7");
	ck_assert(a.wildcard_v6);
	roundtrip("127.0.0.1:7007", LISTEN_TCP, "127.0.0.1:7007");
	ck_assert(!a.wildcard_v6);
	roundtrip("0.0.0.0:0", LISTEN_TCP, "0.0.0.0:0");
	roundtrip("[::1]:7", LISTEN_TCP, "[::1]:7");
	ck_assert(!a.wildcard_v6);
	roundtrip("[::]:7", LISTEN_TCP, "[::]:7");
	ck_assert(a.wildcard_v6);
	roundtrip("*:65535", LISTEN_TCP, "[::]:65535");
	roundtrip("tcp:127.0.0.1:7", LISTEN_TCP, "127.0.0.1:7");
	roundtrip("udp:127.0.0.1:7", LISTEN_UDP, "127.0.0.1:7");
	roundtrip("udp:[::1]:7", LISTEN_UDP, "[::1]:7");
	roundtrip("udp:7", LISTEN_UDP, "[::]:7");
	ck_assert(!a.proxy);
}
END_TEST

START_TEST(proxy_forms)
{
	roundtrip("proxy:0.0.0.0:7007", LISTEN_TCP, "0.0.0.0:7007");
	ck_assert(a.proxy);
	roundtrip("proxy:[::]:7", LISTEN_TCP, "[::]:7");
	ck_assert(a.proxy);
	ck_assert(a.wildcard_v6);
	roundtrip("proxy:tcp:127.0.0.1:7", LISTEN_TCP, "127.0.0.1:7");
	ck_assert(a.proxy);
	roundtrip("proxy:unix:/run/echod/lb.sock", LISTEN_UNIX, "unix:/run/echod/lb.sock");
	ck_assert(a.proxy);
	roundtrip("proxy:7", LISTEN_TCP, "[::]:7");
	ck_assert(a.proxy);
	roundtrip("127.0.0.1:7", LISTEN_TCP, "127.0.0.1:7");
	ck_assert(!a.proxy);
	rejects("proxy:udp:127.0.0.1:7",
		"proxy: and udp: cannot combine (PROXY protocol is for TCP and unix stream sockets): 'proxy:udp:127.0.0.1:7'");
	rejects("udp:proxy:127.0.0.1:7",
		"proxy: and udp: cannot combine (PROXY protocol is for TCP and unix stream sockets): 'udp:proxy:127.0.0.1:7'");
	rejects("proxy:", "empty address");
	rejects("proxy:proxy:7", "invalid IPv4 address 'proxy' (host names are not resolved)");
}
END_TEST

START_TEST(unix_forms)
{
	roundtrip("unix:/run/echod.sock", LISTEN_UNIX, "unix:/run/echod.sock");
	ck_assert_uint_eq(a.len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/echod.sock") + 1);
	roundtrip("unix:@echod", LISTEN_UNIX, "unix:@echod");
	ck_assert_uint_eq(a.len, offsetof(struct sockaddr_un, sun_path) + strlen("@echod"));
}
END_TEST

START_TEST(errors)
{
	rejects("", "empty address");
	rejects("udp:", "empty address");
	rejects("70000", "invalid port '70000' (expected 0 to 65535)");
	rejects("127.0.0.1:", "invalid port '' (expected 0 to 65535)");
	rejects("127.0.0.1:x", "invalid port 'x' (expected 0 to 65535)");
	rejects("127.0.0.1:-1", "invalid port '-1' (expected 0 to 65535)");
	rejects("localhost:7", "invalid IPv4 address 'localhost' (host names are not resolved)");
	rejects("echo.example.com:7", "invalid IPv4 address 'echo.example.com' (host names are not resolved)");
	rejects("300.1.1.1:7", "invalid IPv4 address '300.1.1.1'");
	rejects("1.2.3:7", "invalid IPv4 address '1.2.3'");
	rejects("udp:unix:/x", "UDP needs an IP address, not a unix socket: 'udp:unix:/x'");
	rejects("::1:7", "invalid address '::1:7' (IPv6 addresses go in brackets: [::1]:7)");
	rejects("[::1]7", "expected [IPV6]:PORT: '[::1]7'");
	rejects("[::1", "expected [IPV6]:PORT: '[::1'");
	rejects("[1.2.3.4]:7", "invalid IPv6 address '1.2.3.4'");
	rejects("unix:relative", "unix socket path must be absolute or start with '@': 'relative'");
	rejects("unix:/", "unix socket path must be 2 to 107 characters: '/'");
	rejects("unix:@", "abstract unix socket name must be 1 to 107 characters after '@': '@'");
	char longpath[200] = "unix:/";
	memset(longpath + 6, 'x', 150);
	longpath[156] = '\0';
	ck_assert_int_eq(address_parse(longpath, &a, err, sizeof(err)), -1);
}
END_TEST

/* Hosts longer than any address, in and out of brackets, and the names
 * that get the "not resolved" hint. */
START_TEST(long_hosts_and_names)
{
	char text[128];

	snprintf(text, sizeof(text), "[%070d]:7", 0);
	rejects(text, "invalid IPv6 address in '[0000000000000000000000000000000000000000000000000000000000000000000000]:7'");
	snprintf(text, sizeof(text), "[%050d]:7", 0);
	rejects(text, "invalid IPv6 address '00000000000000000000000000000000000000000000000000'");
	snprintf(text, sizeof(text), "[%050d%%lo]:7", 0);
	rejects(text, "invalid IPv6 address '00000000000000000000000000000000000000000000000000%lo'");
	snprintf(text, sizeof(text), "%070d:7", 0);
	rejects(text, "invalid address '0000000000000000000000000000000000000000000000000000000000000000000000:7' (IPv6 addresses go in brackets: [::1]:7)");
	rejects("echo-1.example:7", "invalid IPv4 address 'echo-1.example' (host names are not resolved)");
	rejects("echo_1:7", "invalid IPv4 address 'echo_1'");
}
END_TEST

/* sun_path holds 108 bytes: a path of 107 and its NUL, or an abstract
 * name of 107 after its leading NUL. The messages state those bounds. */
START_TEST(unix_length_bounds)
{
	char text[200], msg[300];
	memset(text, 0, sizeof(text));
	strcpy(text, "unix:/");
	memset(text + 6, 'p', 106); /* a path of 107 characters */
	roundtrip(text, LISTEN_UNIX, text);
	ck_assert_uint_eq(a.len, sizeof(struct sockaddr_un));
	text[6 + 106] = 'p'; /* 108 */
	snprintf(msg, sizeof(msg), "unix socket path must be 2 to 107 characters: '%s'", text + 5);
	rejects(text, msg);

	memset(text, 0, sizeof(text));
	strcpy(text, "unix:@");
	memset(text + 6, 'a', 107); /* an abstract name of 107 */
	roundtrip(text, LISTEN_UNIX, text);
	ck_assert_uint_eq(a.len, sizeof(struct sockaddr_un));
	text[6 + 107] = 'a'; /* 108 */
	snprintf(msg, sizeof(msg), "abstract unix socket name must be 1 to 107 characters after '@': '%s'", text + 5);
	rejects(text, msg);
}
END_TEST

/* Scope ids by number or interface name; a failure to parse is the
 * address's, with no allocation on the way that could fail instead. */
START_TEST(ipv6_scope)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a.sa;

	roundtrip("[fe80::1%1]:7", LISTEN_TCP, "[fe80::1]:7");
	ck_assert_uint_eq(s6->sin6_scope_id, 1);
	roundtrip("[fe80::1%lo]:7", LISTEN_TCP, "[fe80::1]:7");
	ck_assert_uint_eq(s6->sin6_scope_id, if_nametoindex("lo"));
	roundtrip("[fe80::1%4294967295]:7", LISTEN_TCP, "[fe80::1]:7");
	ck_assert_uint_eq(s6->sin6_scope_id, 4294967295u);
	rejects("[fe80::1%]:7", "invalid IPv6 address 'fe80::1%'");
	rejects("[fe80::1%4294967296]:7", "invalid IPv6 address 'fe80::1%4294967296'");
	rejects("[fe80::1%99999999999999999999999]:7",
		"invalid IPv6 address 'fe80::1%99999999999999999999999'");
	rejects("[fe80::1%1x]:7", "invalid IPv6 address 'fe80::1%1x'");
	rejects("[fe80::1%no-such-if]:7", "invalid IPv6 address 'fe80::1%no-such-if'");
	rejects("[0000:0000:0000:0000:0000:0000:0000:0000:0]:7",
		"invalid IPv6 address '0000:0000:0000:0000:0000:0000:0000:0000:0'");
	rejects("[1:2:3:4:5:6:7:8:9]:7", "invalid IPv6 address '1:2:3:4:5:6:7:8:9'");
}
END_TEST

/* What the log says of addresses the kernel hands back. */
START_TEST(format_other)
{
	char buf[ADDRESS_TEXT_MAX];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct sockaddr_in s4 = { .sin_family = AF_INET };
	struct sockaddr sa = { .sa_family = AF_APPLETALK };

	address_format((struct sockaddr *)&sun, sizeof(sa_family_t), buf, sizeof(buf));
	ck_assert_str_eq(buf, "unix:(unnamed)");
	address_format((struct sockaddr *)&s4, 4, buf, sizeof(buf));
	ck_assert_str_eq(buf, "(address family 2, 4 bytes)");
	address_format((struct sockaddr *)&s4, 4, buf, sizeof(buf));
	address_format(&sa, sizeof(sa), buf, sizeof(buf));
	ck_assert_str_eq(buf, "(address family 5, 16 bytes)");
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	address_format((struct sockaddr *)&s6, sizeof(s6) - 4, buf, sizeof(buf));
	ck_assert_str_eq(buf, "(address family 10, 24 bytes)");
	ck_assert_str_eq(address_kind_name(LISTEN_UNIX), "unix");
	ck_assert_str_eq(address_kind_name((enum listen_kind)99), "?");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("address");
	TCase *t = tcase_create("address");
	tcase_add_test(t, ip_forms);
	tcase_add_test(t, unix_forms);
	tcase_add_test(t, proxy_forms);
	tcase_add_test(t, errors);
	tcase_add_test(t, long_hosts_and_names);
	tcase_add_test(t, unix_length_bounds);
	tcase_add_test(t, ipv6_scope);
	tcase_add_test(t, format_other);
	suite_add_tcase(s, t);
	return s;
}

CHECK_MAIN(suite)
