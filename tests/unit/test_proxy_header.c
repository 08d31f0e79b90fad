/* Unit tests of the PROXY protocol header parser, v1 and v2. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "check_main.h"
#include "proxy_header.h"
#include "util.h"

static const uint8_t sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

/* A v2 header: signature, ver_cmd, fam, length, then block[0 .. n). */
static size_t v2(uint8_t *b, uint8_t ver_cmd, uint8_t fam, const uint8_t *block, size_t n)
{
	memcpy(b, sig, 12);
	b[12] = ver_cmd;
	b[13] = fam;
	b[14] = (uint8_t)(n >> 8);
	b[15] = (uint8_t)n;
	if (n)
		memcpy(b + 16, block, n);
	return 16 + n;
}

static const uint8_t inet_block[12] = { 192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x00, 0x07 };

static int parse(const void *buf, size_t len, struct proxy_result *r)
{
	return proxy_header_parse(buf, len, r);
}

static int parse_str(const char *s, struct proxy_result *r)
{
	return parse(s, strlen(s), r);
}

/* Every proper prefix answers NEED_MORE, the whole answers hlen; trailing
 * payload is not consumed. */
static void check_every_split(const uint8_t *buf, size_t hlen, size_t len)
{
	struct proxy_result r;

	for (size_t n = 0; n < hlen; n++)
		ck_assert_msg(parse(buf, n, &r) == PROXY_NEED_MORE, "prefix %zu of %zu", n, hlen);
	for (size_t n = hlen; n <= len; n++)
		ck_assert_int_eq(parse(buf, n, &r), (int)hlen);
}

static void check_in4(const struct sockaddr_storage *ss, const char *addr, uint16_t port)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
	char text[INET_ADDRSTRLEN];

	ck_assert_int_eq(in->sin_family, AF_INET);
	ck_assert_str_eq(inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)), addr);
	ck_assert_uint_eq(ntohs(in->sin_port), port);
}

static void check_in6(const struct sockaddr_storage *ss, const char *addr, uint16_t port)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
	char text[INET6_ADDRSTRLEN];

	ck_assert_int_eq(in6->sin6_family, AF_INET6);
	ck_assert_str_eq(inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text)), addr);
	ck_assert_uint_eq(ntohs(in6->sin6_port), port);
}

START_TEST(v1_tcp4)
{
	const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 7\r\n";
	char buf[128];
	struct proxy_result r;

	snprintf(buf, sizeof(buf), "%shello\r\n", h);
	ck_assert_int_eq(parse_str(buf, &r), (int)strlen(h));
	ck_assert(!r.local);
	ck_assert_uint_eq(r.version, 1);
	ck_assert_uint_eq(r.src_len, sizeof(struct sockaddr_in));
	check_in4(&r.src, "192.0.2.1", 56324);
	check_in4(&r.dst, "198.51.100.2", 7);
	check_every_split((const uint8_t *)buf, strlen(h), strlen(buf));
}
END_TEST

START_TEST(v1_tcp6)
{
	const char *h = "PROXY TCP6 2001:db8::1 ::ffff:192.0.2.9 0 65535\r\n";
	struct proxy_result r;

	ck_assert_int_eq(parse_str(h, &r), (int)strlen(h));
	ck_assert(!r.local);
	ck_assert_uint_eq(r.src_len, sizeof(struct sockaddr_in6));
	check_in6(&r.src, "2001:db8::1", 0);
	check_in6(&r.dst, "::ffff:192.0.2.9", 65535);
	check_every_split((const uint8_t *)h, strlen(h), strlen(h));
}
END_TEST

START_TEST(v1_unknown)
{
	static const char *const ok[] = {
		"PROXY UNKNOWN\r\n",
		"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
		"PROXY UNKNOWN anything at all, even \n\0 bytes\r\n",
	};
	struct proxy_result r;

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		size_t n = strlen(ok[i]);
		if (i == 2)
			n = sizeof("PROXY UNKNOWN anything at all, even \n\0 bytes\r\n") - 1;
		ck_assert_int_eq(parse(ok[i], n, &r), (int)n);
		ck_assert(r.local);
		check_every_split((const uint8_t *)ok[i], n, n);
	}
}
END_TEST

/* 107 bytes is the longest line; the 108th byte is refused even before a
 * CRLF could come, and so is a line of 107 bytes without one. */
START_TEST(v1_length_bound)
{
	char line[200] = "PROXY UNKNOWN ";
	struct proxy_result r;
	size_t n = strlen(line);

	memset(line + n, 'x', PROXY_V1_MAX - 2 - n);
	memcpy(line + PROXY_V1_MAX - 2, "\r\n", 3);
	ck_assert_int_eq(parse_str(line, &r), PROXY_V1_MAX);
	memset(line + n, 'x', PROXY_V1_MAX - 1 - n);
	memcpy(line + PROXY_V1_MAX - 1, "\r\n", 3);
	ck_assert_int_eq(parse(line, PROXY_V1_MAX, &r), PROXY_ERROR);
	ck_assert_str_eq(r.error, "v1 header longer than 107 bytes");
	memset(line + n, 'x', sizeof(line) - n);
	ck_assert_int_eq(parse(line, PROXY_V1_MAX - 1, &r), PROXY_NEED_MORE);
	ck_assert_int_eq(parse(line, PROXY_V1_MAX, &r), PROXY_ERROR);
	ck_assert_int_eq(parse(line, sizeof(line), &r), PROXY_ERROR);
}
END_TEST

START_TEST(v1_malformed)
{
	static const char *const bad[] = {
		"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",        /* lowercase */
		"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",       /* double spaces */
		"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",      /* trailing space */
		"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",      /* ports */
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",         /* line ends */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
		"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",     /* addresses */
		"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n",
		"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP6 2001:db8:::1 ::1 1 2\r\n",
		"PROXY TCP6 2001:db8::g ::1 1 2\r\n",
		"PROXY TCP4 localhost 5.6.7.8 1 2\r\n",
		"PROXY UNKNOWNX\r\n",                       /* other forms */
		"PROXY UNKNOWN\n",
		"PROXY\r\n",
		"PROXY \r\n",
		"GET /metrics HTTP/1.0\r\n\r\n",
		"\r\n\r\nX",                             /* not the v2 signature */
	};
	struct proxy_result r;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		ck_assert_msg(parse_str(bad[i], &r) == PROXY_ERROR, "accepted: %s", bad[i]);
		ck_assert_ptr_nonnull(r.error);
	}
}
END_TEST

/* A prefix that can no longer become a header is refused at its first
 * wrong byte, without waiting for more. */
START_TEST(errors_come_early)
{
	struct proxy_result r;
	uint8_t b[16];

	ck_assert_int_eq(parse_str("G", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str("PROXX", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4x", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str("PROXY TCP4 256", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str("PROXY TCP4 01", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str("PROXY TCP4 1..", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4.", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str("PROXY TCP4 255.0.0.0", &r), PROXY_NEED_MORE);
	ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 0", &r), PROXY_NEED_MORE);
	ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 00", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 6553", &r), PROXY_NEED_MORE);
	ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 65536", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", &r), PROXY_NEED_MORE);
	ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", &r), PROXY_ERROR);
	memcpy(b, sig, 12);
	for (size_t i = 1; i < 12; i++) {
		b[i] ^= 0x20;
		ck_assert_msg(parse(b, i + 1, &r) == PROXY_ERROR, "signature byte %zu", i);
		b[i] ^= 0x20;
	}
	b[12] = 0x22;
	ck_assert_int_eq(parse(b, 13, &r), PROXY_ERROR);
	b[12] = 0x21;
	b[13] = 0x12;
	ck_assert_int_eq(parse(b, 14, &r), PROXY_ERROR);
}
END_TEST

START_TEST(v2_inet)
{
	uint8_t b[64];
	struct proxy_result r;
	size_t n = v2(b, 0x21, 0x11, inet_block, sizeof(inet_block));

	memcpy(b + n, "payload", 7);
	ck_assert_int_eq(parse(b, n + 7, &r), (int)n);
	ck_assert(!r.local);
	ck_assert_uint_eq(r.version, 2);
	check_in4(&r.src, "192.0.2.1", 56324);
	check_in4(&r.dst, "198.51.100.2", 7);
	check_every_split(b, n, n + 7);
}
END_TEST

START_TEST(v2_inet6)
{
	uint8_t block[36] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1, [16] = 0xfe, [17] = 0x80, [31] = 2,
			      [32] = 0x30, [33] = 0x39, [34] = 0, [35] = 7 };
	uint8_t b[64];
	struct proxy_result r;
	size_t n = v2(b, 0x21, 0x21, block, sizeof(block));

	ck_assert_int_eq(parse(b, n, &r), (int)n);
	check_in6(&r.src, "2001:db8::1", 12345);
	check_in6(&r.dst, "fe80::2", 7);
	check_every_split(b, n, n);
}
END_TEST

START_TEST(v2_unix)
{
	uint8_t block[216] = { 0 };
	uint8_t b[256];
	struct proxy_result r;

	memcpy(block, "/run/client", 11);
	memset(block + 108, 'd', 108); /* a full path: no NUL at all */
	size_t n = v2(b, 0x21, 0x31, block, sizeof(block));
	ck_assert_int_eq(parse(b, n, &r), (int)n);
	const struct sockaddr_un *s = (const struct sockaddr_un *)&r.src;
	const struct sockaddr_un *d = (const struct sockaddr_un *)&r.dst;
	ck_assert_int_eq(s->sun_family, AF_UNIX);
	ck_assert_uint_eq(r.src_len, offsetof(struct sockaddr_un, sun_path) + 11);
	ck_assert_str_eq(s->sun_path, "/run/client");
	ck_assert_uint_eq(r.dst_len, offsetof(struct sockaddr_un, sun_path) + 108);
	ck_assert_int_eq(d->sun_path[107], 'd');
}
END_TEST

START_TEST(v2_local_and_unspec)
{
	uint8_t b[64];
	struct proxy_result r;
	/* LOCAL: family ignored, whatever the block holds. */
	size_t n = v2(b, 0x20, 0x00, NULL, 0);

	ck_assert_int_eq(parse(b, n, &r), 16);
	ck_assert(r.local);
	n = v2(b, 0x20, 0xff, inet_block, 5);
	ck_assert_int_eq(parse(b, n, &r), (int)n);
	ck_assert(r.local);
	check_every_split(b, n, n);
	/* PROXY with UNSPEC: the sender has no address to tell. */
	n = v2(b, 0x21, 0x00, inet_block, 3);
	ck_assert_int_eq(parse(b, n, &r), (int)n);
	ck_assert(r.local);
}
END_TEST

START_TEST(v2_tlvs_skipped)
{
	uint8_t block[12 + 3 + 5 + 3 + 0 + 3 + 2];
	uint8_t b[64];
	struct proxy_result r;

	memcpy(block, inet_block, 12);
	memcpy(block + 12, "\x01\x00\x05h2abc", 8);   /* ALPN, 5 bytes */
	memcpy(block + 20, "\x04\x00\x00", 3);        /* NOOP, empty */
	memcpy(block + 23, "\x30\x00\x02zz", 5);      /* NETNS, 2 bytes */
	size_t n = v2(b, 0x21, 0x11, block, sizeof(block));
	ck_assert_int_eq(parse(b, n, &r), (int)n);
	check_in4(&r.src, "192.0.2.1", 56324);
	check_every_split(b, n, n);
}
END_TEST

START_TEST(v2_malformed)
{
	uint8_t b[64], block[20];
	struct proxy_result r;
	size_t n;

	memcpy(block, inet_block, 12);
	/* Versions other than 2, commands other than LOCAL and PROXY. */
	static const uint8_t ver_cmd[] = { 0x11, 0x31, 0xf1, 0x01, 0x22, 0x2f };
	for (size_t i = 0; i < ARRAY_SIZE(ver_cmd); i++) {
		n = v2(b, ver_cmd[i], 0x11, block, 12);
		ck_assert_int_eq(parse(b, n, &r), PROXY_ERROR);
	}
	/* Unknown families, and transports other than a stream. */
	static const uint8_t fam[] = { 0x41, 0xf1, 0x10, 0x12, 0x22, 0x32, 0x13, 0x03 };
	for (size_t i = 0; i < ARRAY_SIZE(fam); i++) {
		n = v2(b, 0x21, fam[i], block, 20);
		ck_assert_msg(parse(b, n, &r) == PROXY_ERROR, "family byte %#x", fam[i]);
	}
	/* A length that cannot hold the stated addresses. */
	n = v2(b, 0x21, 0x11, block, 11);
	ck_assert_int_eq(parse(b, 16, &r), PROXY_ERROR);
	ck_assert_str_eq(r.error, "v2 length too short for the addresses");
	n = v2(b, 0x21, 0x21, block, 20);
	ck_assert_int_eq(parse(b, n, &r), PROXY_ERROR);
	/* TLVs that do not frame the rest of the block. */
	memcpy(block + 12, "\x01\x00\x06xyzuv", 8);  /* 6 bytes announced, 5 there */
	n = v2(b, 0x21, 0x11, block, 20);
	ck_assert_int_eq(parse(b, n, &r), PROXY_ERROR);
	ck_assert_int_eq(parse(b, 16 + 15, &r), PROXY_ERROR); /* told by its head */
	n = v2(b, 0x21, 0x11, block, 14);                 /* 2 bytes: no TLV head */
	ck_assert_int_eq(parse(b, n, &r), PROXY_ERROR);
	/* A bad signature, however much follows. */
	n = v2(b, 0x21, 0x11, block, 12);
	b[11] = 0x0b;
	ck_assert_int_eq(parse(b, n, &r), PROXY_ERROR);
}
END_TEST

/* 4096 bytes in all is the bound: the largest header is accepted, one byte
 * more is refused as soon as the length field is in, and NEED_MORE is never
 * the answer to a full buffer. */
START_TEST(v2_length_bound)
{
	static uint8_t b[PROXY_HEADER_MAX + 1];
	static uint8_t block[PROXY_HEADER_MAX];
	struct proxy_result r;
	size_t room = PROXY_HEADER_MAX - 16 - 12 - 3;

	memcpy(block, inet_block, 12);
	block[12] = 0x04;
	block[13] = (uint8_t)(room >> 8);
	block[14] = (uint8_t)room;
	size_t n = v2(b, 0x21, 0x11, block, PROXY_HEADER_MAX - 16);
	ck_assert_uint_eq(n, PROXY_HEADER_MAX);
	ck_assert_int_eq(parse(b, PROXY_HEADER_MAX - 1, &r), PROXY_NEED_MORE);
	ck_assert_int_eq(parse(b, PROXY_HEADER_MAX, &r), PROXY_HEADER_MAX);
	b[14] = (uint8_t)((PROXY_HEADER_MAX - 15) >> 8);
	b[15] = (uint8_t)(PROXY_HEADER_MAX - 15);
	ck_assert_int_eq(parse(b, 16, &r), PROXY_ERROR);
	ck_assert_str_eq(r.error, "v2 header longer than 4096 bytes");
	b[14] = b[15] = 0xff;
	ck_assert_int_eq(parse(b, 16, &r), PROXY_ERROR);
	/* Also for LOCAL, which skips the block unread. */
	b[12] = 0x20;
	ck_assert_int_eq(parse(b, 16, &r), PROXY_ERROR);
}
END_TEST

static Suite *proxy_header_suite(void)
{
	Suite *s = suite_create("proxy_header");
	TCase *t1 = tcase_create("v1"), *t2 = tcase_create("v2");

	tcase_add_test(t1, v1_tcp4);
	tcase_add_test(t1, v1_tcp6);
	tcase_add_test(t1, v1_unknown);
	tcase_add_test(t1, v1_length_bound);
	tcase_add_test(t1, v1_malformed);
	tcase_add_test(t1, errors_come_early);
	tcase_add_test(t2, v2_inet);
	tcase_add_test(t2, v2_inet6);
	tcase_add_test(t2, v2_unix);
	tcase_add_test(t2, v2_local_and_unspec);
	tcase_add_test(t2, v2_tlvs_skipped);
	tcase_add_test(t2, v2_malformed);
	tcase_add_test(t2, v2_length_bound);
	suite_add_tcase(s, t1);
	suite_add_tcase(s, t2);
	return s;
}

CHECK_MAIN(proxy_header_suite)
