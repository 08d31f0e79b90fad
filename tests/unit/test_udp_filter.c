/* Unit tests of the always-on UDP source filters. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "check_main.h"
#include "udp_filter.h"
#include "util.h"

/* An AF_INET or AF_INET6 address from text, chosen by the text's form. */
static struct sockaddr_storage addr(const char *text, uint16_t port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		ck_assert_int_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		ck_assert_int_eq(inet_pton(AF_INET, text, &in->sin_addr), 1);
	}
	return ss;
}

static bool martian(const char *text)
{
	struct sockaddr_storage ss = addr(text, 40000);

	return udp_source_is_martian((struct sockaddr *)&ss);
}

START_TEST(martians)
{
	static const char *const bad[] = {
		"0.0.0.0", "0.1.2.3", "0.255.255.255",
		"224.0.0.1", "239.255.255.250", "232.1.1.1",
		"240.0.0.1", "254.1.2.3", "255.255.255.255",
		"ff02::1", "ff05::1:3", "ff0e::1", "::",
		"::ffff:0.0.0.0", "::ffff:224.0.0.251", "::ffff:255.255.255.255",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ck_assert_msg(martian(bad[i]), "%s", bad[i]);
}
END_TEST

START_TEST(unicast_passes)
{
	static const char *const good[] = {
		"127.0.0.1", "127.255.0.9", "1.0.0.0", "10.0.0.1", "192.0.2.255",
		"223.255.255.255", "169.254.1.1",
		"::1", "2001:db8::1", "fe80::1", "fd00::7",
		"::ffff:127.0.0.1", "::ffff:192.0.2.1",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		ck_assert_msg(!martian(good[i]), "%s", good[i]);
}
END_TEST

START_TEST(ports)
{
	static const uint16_t own[] = { 7, 7007, 40000 };

	ck_assert(udp_source_port_refused(0, NULL, 0));
	ck_assert(udp_source_port_refused(7, NULL, 0));
	ck_assert(udp_source_port_refused(19, NULL, 0));  /* chargen */
	ck_assert(udp_source_port_refused(1023, NULL, 0));
	ck_assert(!udp_source_port_refused(1024, NULL, 0));
	ck_assert(!udp_source_port_refused(65535, NULL, 0));
	ck_assert(udp_source_port_refused(7007, own, ARRAY_SIZE(own)));
	ck_assert(udp_source_port_refused(40000, own, ARRAY_SIZE(own)));
	ck_assert(!udp_source_port_refused(7008, own, ARRAY_SIZE(own)));
}
END_TEST

START_TEST(combined_reasons)
{
	static const uint16_t own[] = { 7007 };
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	enum refusal_reason why = REFUSE_N;
	struct sockaddr_storage ss;

	ss = addr("192.0.2.1", 40000);
	ck_assert(!udp_source_refused((struct sockaddr *)&ss, own, 1, &why));
	ck_assert_int_eq(why, REFUSE_N); /* untouched when admitted */
	ss = addr("2001:db8::1", 7007);
	ck_assert(udp_source_refused((struct sockaddr *)&ss, own, 1, &why));
	ck_assert_int_eq(why, REFUSE_UDP_LOOP);
	ss = addr("::ffff:192.0.2.1", 19);
	ck_assert(udp_source_refused((struct sockaddr *)&ss, own, 1, &why));
	ck_assert_int_eq(why, REFUSE_UDP_LOOP);
	/* Martian wins over a bad port. */
	ss = addr("255.255.255.255", 7);
	ck_assert(udp_source_refused((struct sockaddr *)&ss, own, 1, &why));
	ck_assert_int_eq(why, REFUSE_UDP_MARTIAN);
	/* Not IP: not judged here. */
	ck_assert(!udp_source_refused((struct sockaddr *)&un, own, 1, &why));
	ck_assert(!udp_source_is_martian((struct sockaddr *)&un));
}
END_TEST

static Suite *udp_filter_suite(void)
{
	Suite *s = suite_create("udp_filter");
	TCase *c = tcase_create("filters");

	tcase_add_test(c, martians);
	tcase_add_test(c, unicast_passes);
	tcase_add_test(c, ports);
	tcase_add_test(c, combined_reasons);
	suite_add_tcase(s, c);
	return s;
}

CHECK_MAIN(udp_filter_suite)
