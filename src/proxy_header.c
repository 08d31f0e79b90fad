#include "proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

/* Step results inside the parser; converted to the public codes at the end. */
enum step { STEP_OK = 1, STEP_MORE = 0, STEP_ERR = -1 };

struct cursor {
	const uint8_t *buf;
	size_t len, pos;
	struct proxy_result *out;
};

static enum step fail(struct cursor *c, const char *why)
{
	c->out->error = why;
	return STEP_ERR;
}

/* ---- version 1: one line of text ---- */

/* The next byte of a v1 line, or why there is none. A line that reaches
 * PROXY_V1_MAX bytes without its CRLF is refused at once, however the
 * bytes arrive. */
static enum step v1_next(struct cursor *c, uint8_t *b)
{
	if (c->pos >= PROXY_V1_MAX)
		return fail(c, "v1 header longer than 107 bytes");
	if (c->pos >= c->len)
		return STEP_MORE;
	*b = c->buf[c->pos++];
	return STEP_OK;
}

/* Matches lit byte by byte, so a wrong byte is an error before the rest
 * has arrived. Case matters: the specification spells the words in
 * capitals and so do all senders. */
static enum step v1_literal(struct cursor *c, const char *lit, const char *why)
{
	for (; *lit; lit++) {
		uint8_t b;
		enum step s = v1_next(c, &b);
		if (s != STEP_OK)
			return s;
		if (b != (uint8_t)*lit)
			return fail(c, why);
	}
	return STEP_OK;
}

enum token_class { TOKEN_IPV4, TOKEN_IPV6 };

static bool token_char(enum token_class k, uint8_t b)
{
	bool digit = b >= '0' && b <= '9';

	if (k == TOKEN_IPV4)
		return digit || b == '.';
	return digit || b == ':' || b == '.' || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
}

/* Whether text[0 .. n) can still begin a dotted quad as inet_pton() takes
 * it: at most 4 octets of 1-3 digits, none above 255, no leading zero. So
 * "256" or "01" is refused at its bad digit. (IPv6 is only checked for its
 * characters and length until its end: inet_pton() then decides.) */
static bool ipv4_prefix_ok(const char *text, size_t n)
{
	unsigned octets = 1, digits = 0, value = 0;

	for (size_t i = 0; i < n; i++) {
		if (text[i] == '.') {
			if (digits == 0 || ++octets > 4)
				return false;
			digits = value = 0;
			continue;
		}
		if (digits == 1 && value == 0)
			return false;
		value = value * 10 + (unsigned)(text[i] - '0');
		if (++digits > 3 || value > 255)
			return false;
	}
	return true;
}

/* Reads a non-empty token of class k, at most max bytes, up to and over
 * the byte end, into dst (NUL-terminated). Fields are separated by exactly
 * one space: a second space is not a token character, so it is an error. */
static enum step v1_token(struct cursor *c, enum token_class k, size_t max, uint8_t end,
			  char *dst, const char *why)
{
	size_t n = 0;

	for (;;) {
		uint8_t b;
		enum step s = v1_next(c, &b);
		if (s != STEP_OK)
			return s;
		if (b == end && n > 0)
			break;
		if (!token_char(k, b) || n == max)
			return fail(c, why);
		dst[n++] = (char)b;
		if (k == TOKEN_IPV4 && !ipv4_prefix_ok(dst, n))
			return fail(c, why);
	}
	dst[n] = '\0';
	return STEP_OK;
}

/* Decimal 0..65535: no sign, no leading zero (no sender writes one, and
 * strictness leaves one spelling per port). Each is refused at its first
 * wrong byte, a sixth digit or a value above 65535 too. */
static enum step v1_port(struct cursor *c, uint8_t end, uint16_t *port)
{
	uint32_t v = 0;
	size_t n = 0;

	for (;;) {
		uint8_t b;
		enum step s = v1_next(c, &b);
		if (s != STEP_OK)
			return s;
		if (b == end && n > 0)
			break;
		if (b < '0' || b > '9' || (n == 1 && v == 0))
			return fail(c, "v1 bad port");
		v = v * 10 + (uint32_t)(b - '0');
		n++;
		if (v > 65535)
			return fail(c, "v1 bad port");
	}
	*port = (uint16_t)v;
	return STEP_OK;
}

static enum step v1_address(struct cursor *c, int family, struct sockaddr_storage *ss,
			    socklen_t *sslen)
{
	/* INET6_ADDRSTRLEN - 1: the longest form, with a dotted IPv4 tail. */
	char text[INET6_ADDRSTRLEN];
	enum token_class k = family == AF_INET ? TOKEN_IPV4 : TOKEN_IPV6;
	size_t max = family == AF_INET ? INET_ADDRSTRLEN - 1 : INET6_ADDRSTRLEN - 1;
	enum step s = v1_token(c, k, max, ' ', text, "v1 bad address");

	if (s != STEP_OK)
		return s;
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		if (inet_pton(AF_INET, text, &in->sin_addr) != 1)
			return fail(c, "v1 bad address");
		*sslen = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, text, &in6->sin6_addr) != 1)
			return fail(c, "v1 bad address");
		*sslen = sizeof(*in6);
	}
	return STEP_OK;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* "UNKNOWN", then CRLF or a space and anything up to CRLF: the receiver
 * ignores the rest of the line. */
static enum step v1_unknown(struct cursor *c)
{
	struct proxy_result *out = c->out;
	uint8_t b;
	enum step s = v1_literal(c, "UNKNOWN", "v1 unknown protocol");

	if (s != STEP_OK)
		return s;
	if ((s = v1_next(c, &b)) != STEP_OK)
		return s;
	if (b != ' ' && b != '\r')
		return fail(c, "v1 unknown protocol");
	while (b != '\r')
		if ((s = v1_next(c, &b)) != STEP_OK)
			return s;
	if ((s = v1_literal(c, "\n", "v1 header without CRLF")) != STEP_OK)
		return s;
	out->local = true;
	return STEP_OK;
}

static enum step v1_tcp(struct cursor *c)
{
	struct proxy_result *out = c->out;
	uint16_t sport, dport;
	uint8_t b;
	int family;
	enum step s = v1_literal(c, "TCP", "v1 unknown protocol");

	if (s != STEP_OK)
		return s;
	if ((s = v1_next(c, &b)) != STEP_OK)
		return s;
	if (b != '4' && b != '6')
		return fail(c, "v1 unknown protocol");
	family = b == '4' ? AF_INET : AF_INET6;
	if ((s = v1_literal(c, " ", "v1 unknown protocol")) != STEP_OK ||
	    (s = v1_address(c, family, &out->src, &out->src_len)) != STEP_OK ||
	    (s = v1_address(c, family, &out->dst, &out->dst_len)) != STEP_OK ||
	    (s = v1_port(c, ' ', &sport)) != STEP_OK ||
	    (s = v1_port(c, '\r', &dport)) != STEP_OK ||
	    (s = v1_literal(c, "\n", "v1 header without CRLF")) != STEP_OK)
		return s;
	set_port(&out->src, sport);
	set_port(&out->dst, dport);
	return STEP_OK;
}

static enum step v1_parse(struct cursor *c)
{
	enum step s = v1_literal(c, "PROXY ", "not a PROXY header");

	if (s != STEP_OK)
		return s;
	c->out->version = 1;
	if (c->pos >= c->len)
		return STEP_MORE;
	/* The first letter decides; the literal then checks the rest. */
	return c->buf[c->pos] == 'U' ? v1_unknown(c) : v1_tcp(c);
}

/* ---- version 2: binary ---- */

static const uint8_t v2_signature[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

#define V2_FIXED 16 /* signature, version and command, family, length */
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_AF_UNSPEC 0x0
#define V2_AF_INET 0x1
#define V2_AF_INET6 0x2
#define V2_AF_UNIX 0x3
#define V2_STREAM 0x1
#define V2_UNIX_PATH 108

/* Bytes of the address block for a v2 family. */
static size_t v2_address_size(unsigned family)
{
	switch (family) {
	case V2_AF_INET:
		return 4 + 4 + 2 + 2;
	case V2_AF_INET6:
		return 16 + 16 + 2 + 2;
	case V2_AF_UNIX:
		return V2_UNIX_PATH * 2;
	}
	return 0;
}

/* Checks the signature and the three fixed fields as far as they have
 * arrived; on STEP_OK all 16 bytes are there and *total is the header
 * length. */
static enum step v2_fixed(struct cursor *c, size_t *total)
{
	size_t have = c->len < sizeof(v2_signature) ? c->len : sizeof(v2_signature);

	if (memcmp(c->buf, v2_signature, have) != 0)
		return fail(c, "not a PROXY header");
	if (c->len > 12) {
		if (c->buf[12] >> 4 != 2)
			return fail(c, "v2 unsupported version");
		if ((c->buf[12] & 0xf) > V2_CMD_PROXY)
			return fail(c, "v2 unknown command");
	}
	/* LOCAL ignores the family byte, as the specification asks. */
	if (c->len > 13 && (c->buf[12] & 0xf) == V2_CMD_PROXY) {
		unsigned family = c->buf[13] >> 4, transport = c->buf[13] & 0xf;
		if (family > V2_AF_UNIX)
			return fail(c, "v2 unknown address family");
		if (family != V2_AF_UNSPEC ? transport != V2_STREAM : transport > 2)
			return fail(c, "v2 transport is not a stream");
	}
	if (c->len < V2_FIXED)
		return STEP_MORE;
	size_t n = (size_t)c->buf[14] << 8 | c->buf[15];
	if (V2_FIXED + n > PROXY_HEADER_MAX)
		return fail(c, "v2 header longer than 4096 bytes");
	if ((c->buf[12] & 0xf) == V2_CMD_PROXY && n < v2_address_size(c->buf[13] >> 4))
		return fail(c, "v2 length too short for the addresses");
	*total = V2_FIXED + n;
	return STEP_OK;
}

/* TLVs are skipped, but their framing must fill the block exactly: a
 * length that runs past it is an error as soon as its 3-byte head is in. */
static enum step v2_tlvs(struct cursor *c, size_t pos, size_t end)
{
	while (pos < end) {
		if (end - pos < 3)
			return fail(c, "v2 malformed TLV");
		if (c->len < pos + 3)
			return STEP_MORE;
		size_t n = (size_t)c->buf[pos + 1] << 8 | c->buf[pos + 2];
		if (n > end - pos - 3)
			return fail(c, "v2 malformed TLV");
		pos += 3 + n;
	}
	return c->len < end ? STEP_MORE : STEP_OK;
}

static void v2_inet(const uint8_t *p, struct proxy_result *out)
{
	struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
	struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;

	s->sin_family = d->sin_family = AF_INET;
	memcpy(&s->sin_addr, p, 4);
	memcpy(&d->sin_addr, p + 4, 4);
	memcpy(&s->sin_port, p + 8, 2); /* both in network order already */
	memcpy(&d->sin_port, p + 10, 2);
	out->src_len = out->dst_len = sizeof(*s);
}

static void v2_inet6(const uint8_t *p, struct proxy_result *out)
{
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
	struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;

	s->sin6_family = d->sin6_family = AF_INET6;
	memcpy(&s->sin6_addr, p, 16);
	memcpy(&d->sin6_addr, p + 16, 16);
	memcpy(&s->sin6_port, p + 32, 2);
	memcpy(&d->sin6_port, p + 34, 2);
	out->src_len = out->dst_len = sizeof(*s);
}

/* A path of up to 108 bytes, NUL-padded; one that fills all 108 has no NUL
 * and its length is then the whole field. */
static socklen_t unix_path(const uint8_t *p, struct sockaddr_storage *ss)
{
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	size_t n = strnlen((const char *)p, V2_UNIX_PATH);

	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, p, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

static enum step v2_parse(struct cursor *c)
{
	struct proxy_result *out = c->out;
	size_t total;
	enum step s = v2_fixed(c, &total);

	if (s != STEP_OK)
		return s;
	out->version = 2;
	unsigned command = c->buf[12] & 0xf, family = c->buf[13] >> 4;
	c->pos = total;
	/* LOCAL (a health check) and UNSPEC carry nothing to use: the block,
	 * whatever it holds, is skipped. */
	if (command == V2_CMD_LOCAL || family == V2_AF_UNSPEC) {
		out->local = true;
		return c->len < total ? STEP_MORE : STEP_OK;
	}
	size_t addr = v2_address_size(family);
	if ((s = v2_tlvs(c, V2_FIXED + addr, total)) != STEP_OK)
		return s;
	const uint8_t *p = c->buf + V2_FIXED;
	if (family == V2_AF_INET) {
		v2_inet(p, out);
	} else if (family == V2_AF_INET6) {
		v2_inet6(p, out);
	} else {
		out->src_len = unix_path(p, &out->src);
		out->dst_len = unix_path(p + V2_UNIX_PATH, &out->dst);
	}
	return STEP_OK;
}

int proxy_header_parse(const uint8_t *buf, size_t len, struct proxy_result *out)
{
	struct cursor c = { .buf = buf, .len = len, .pos = 0, .out = out };
	enum step s;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return PROXY_NEED_MORE;
	/* The first byte tells the versions apart: 'P' or CR. */
	if (buf[0] == v2_signature[0])
		s = v2_parse(&c);
	else
		s = v1_parse(&c);
	if (s == STEP_ERR)
		return PROXY_ERROR;
	if (s == STEP_MORE)
		return PROXY_NEED_MORE;
	return (int)c.pos;
}
