/* Address prefixes (`allow`, `deny`, `proxy_trusted`): parse, format and
 * match against a peer's socket address. Pure functions, no allocation. */
#ifndef ECHOD_CIDR_H
#define ECHOD_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An IPv4 (AF_INET, addr[0..3]) or IPv6 (AF_INET6) prefix. Host bits past
 * prefix are always zero: the parser refuses text that sets them. */
struct cidr {
	sa_family_t family;
	uint8_t prefix;
	uint8_t addr[16];
};

#define CIDR_LIST_MAX 256

/* Plain data like struct config, so that it copies and compares whole. */
struct cidr_list {
	size_t n;
	struct cidr entries[CIDR_LIST_MAX];
};

/* Longest text cidr_format() produces, with its NUL. */
#define CIDR_TEXT_MAX 48 /* INET6_ADDRSTRLEN + "/128" */

/* Parses ADDR or ADDR/PREFIXLEN, IPv4 or IPv6 (no brackets, no scope id);
 * without /PREFIXLEN the prefix is the whole address. The prefix length is
 * decimal, 0..32 or 0..128, without leading zeros. Host bits set past the
 * prefix (10.0.0.1/8) are refused rather than masked: such text is
 * usually a mistake about which network is meant. Returns 0, or -EINVAL
 * with a message in err (which may be NULL). */
int cidr_parse(const char *text, struct cidr *out, char *err, size_t errlen);

/* "10.0.0.0/8", "::1" (a full-length prefix is printed without /LEN). */
void cidr_format(const struct cidr *c, char *buf, size_t size);

/* Whether the peer address sa falls in c. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) matches IPv4 entries as a.b.c.d, and also IPv6 entries
 * as itself. Other families (AF_UNIX) never match. */
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);

/* Whether sa matches any entry of the list. */
bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);

/* Appends c; -ENOSPC when the list is full, 0 otherwise. */
int cidr_list_add(struct cidr_list *l, const struct cidr *c);

#endif
