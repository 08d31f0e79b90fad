#include "cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static void __attribute__((format(printf, 3, 4))) set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Whether any bit of addr past the first prefix bits is set. */
static bool host_bits(const uint8_t *addr, unsigned bytes, unsigned prefix)
{
	for (unsigned i = prefix / 8; i < bytes; i++) {
		unsigned keep = i == prefix / 8 ? prefix % 8 : 0;
		uint8_t mask = (uint8_t)(0xff >> keep);
		if (addr[i] & mask)
			return true;
	}
	return false;
}

int cidr_parse(const char *text, struct cidr *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
	unsigned max, prefix;
	struct cidr c;

	memset(&c, 0, sizeof(c));
	if (hlen == 0 || hlen >= sizeof(host)) {
		set_err(err, errlen, "invalid address '%s' (expected ADDR or ADDR/PREFIXLEN)", text);
		return -EINVAL;
	}
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, c.addr) == 1) {
		c.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, c.addr) == 1) {
		c.family = AF_INET6;
		max = 128;
	} else {
		set_err(err, errlen, "invalid address '%s' (expected an IPv4 or IPv6 address, optionally /PREFIXLEN)",
			text);
		return -EINVAL;
	}
	prefix = max;
	if (slash) {
		const char *p = slash + 1;
		/* Decimal, no sign, no leading zero (so that "/08" is not read
		 * as anything but a mistake), at most three digits. */
		if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] != '\0') || strlen(p) > 3) {
			set_err(err, errlen, "invalid prefix length in '%s'", text);
			return -EINVAL;
		}
		prefix = 0;
		for (; *p; p++) {
			if (*p < '0' || *p > '9') {
				set_err(err, errlen, "invalid prefix length in '%s'", text);
				return -EINVAL;
			}
			prefix = prefix * 10 + (unsigned)(*p - '0');
		}
		if (prefix > max) {
			set_err(err, errlen, "prefix length out of range in '%s' (0 to %u)", text, max);
			return -EINVAL;
		}
	}
	if (host_bits(c.addr, max / 8, prefix)) {
		set_err(err, errlen, "host bits set past the prefix length in '%s'", text);
		return -EINVAL;
	}
	c.prefix = (uint8_t)prefix;
	*out = c;
	return 0;
}

void cidr_format(const struct cidr *c, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];
	unsigned max = c->family == AF_INET ? 32 : 128;

	if (!inet_ntop(c->family, c->addr, host, sizeof(host))) {
		snprintf(buf, size, "?");
		return;
	}
	if (c->prefix == max)
		snprintf(buf, size, "%s", host);
	else
		snprintf(buf, size, "%s/%u", host, c->prefix);
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return ((a[whole] ^ b[whole]) & mask) == 0;
}

bool cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	/* Read through memcpy: sa may be only as aligned as struct sockaddr. */
	const char *base = (const char *)sa;
	uint8_t a[16];

	if (sa->sa_family == AF_INET) {
		memcpy(a, base + offsetof(struct sockaddr_in, sin_addr), 4);
		return c->family == AF_INET && prefix_equal(c->addr, a, c->prefix);
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(a, base + offsetof(struct sockaddr_in6, sin6_addr), 16);
		if (c->family == AF_INET6)
			return prefix_equal(c->addr, a, c->prefix);
		return c->family == AF_INET && memcmp(a, v4mapped, sizeof(v4mapped)) == 0 &&
		       prefix_equal(c->addr, a + 12, c->prefix);
	}
	return false;
}

bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	for (size_t i = 0; i < l->n; i++)
		if (cidr_match(&l->entries[i], sa))
			return true;
	return false;
}

int cidr_list_add(struct cidr_list *l, const struct cidr *c)
{
	if (l->n >= CIDR_LIST_MAX)
		return -ENOSPC;
	l->entries[l->n++] = *c;
	return 0;
}
