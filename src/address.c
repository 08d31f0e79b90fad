#include "address.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static int parse_port(const char *s, in_port_t *port)
{
	unsigned long v = 0;

	if (*s == '\0' || strlen(s) > 5)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v > 65535)
		return -1;
	*port = htons((in_port_t)v);
	return 0;
}

static int parse_unix(const char *path, struct listen_addr *out, char *err, size_t errlen)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&out->sa;
	size_t n = strlen(path);

	if (path[0] != '/' && path[0] != '@') {
		snprintf(err, errlen, "unix socket path must be absolute or start with '@': '%s'", path);
		return -1;
	}
	/* A path needs its terminating NUL in sun_path; an abstract name is
	 * not terminated, its '@' stands for the leading NUL byte. */
	if (path[0] == '/' && (n < 2 || n > sizeof(sun->sun_path) - 1)) {
		snprintf(err, errlen, "unix socket path must be 2 to %zu characters: '%s'",
			 sizeof(sun->sun_path) - 1, path);
		return -1;
	}
	if (path[0] == '@' && (n < 2 || n > sizeof(sun->sun_path))) {
		snprintf(err, errlen, "abstract unix socket name must be 1 to %zu characters after '@': '%s'",
			 sizeof(sun->sun_path) - 1, path);
		return -1;
	}
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n);
	if (path[0] == '@')
		sun->sun_path[0] = '\0'; /* abstract namespace: not NUL-terminated */
	out->kind = LISTEN_UNIX;
	out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
	return 0;
}

/* "localhost", "echo.example.com": worth the hint that names are not
 * resolved. "300.1.1.1" or "1.2.3" is a mistyped address, not a name. */
static bool looks_like_host_name(const char *s)
{
	bool letter = false;

	for (; *s; s++) {
		if (isalpha((unsigned char)*s))
			letter = true;
		else if (!isdigit((unsigned char)*s) && *s != '-' && *s != '.')
			return false;
	}
	return letter;
}

static int parse_ip(const char *text, struct listen_addr *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE];
	const char *port_text;
	in_port_t port;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen, "expected [IPV6]:PORT: '%s'", text);
			return -1;
		}
		if ((size_t)(close - text - 1) >= sizeof(host)) {
			snprintf(err, errlen, "invalid IPv6 address in '%s'", text);
			return -1;
		}
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = '\0';
		port_text = close + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon) {
			host[0] = '\0';
			port_text = text;
		} else {
			if ((size_t)(colon - text) >= sizeof(host) || memchr(text, ':', (size_t)(colon - text))) {
				snprintf(err, errlen, "invalid address '%s' (IPv6 addresses go in brackets: [::1]:7)", text);
				return -1;
			}
			memcpy(host, text, (size_t)(colon - text));
			host[colon - text] = '\0';
			port_text = colon + 1;
		}
	}
	if (parse_port(port_text, &port) < 0) {
		snprintf(err, errlen, "invalid port '%s' (expected 0 to 65535)", port_text);
		return -1;
	}

	memset(&out->sa, 0, sizeof(out->sa));
	out->wildcard_v6 = false;
	if (host[0] == '\0' || strcmp(host, "*") == 0 || strcmp(host, "::") == 0) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_any;
		s6->sin6_port = port;
		out->len = sizeof(*s6);
		out->wildcard_v6 = true;
		return 0;
	}
	if (text[0] != '[') {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&out->sa;
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
			snprintf(err, errlen, "invalid IPv4 address '%s'%s", host,
				 looks_like_host_name(host) ? " (host names are not resolved)" : "");
			return -1;
		}
		s4->sin_family = AF_INET;
		s4->sin_port = port;
		out->len = sizeof(*s4);
		return 0;
	}

	/* inet_pton, and the scope id (fe80::1%eth0) by hand: getaddrinfo
	 * would allocate, and an allocation that fails would read as a bad
	 * address. */
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;
	char addr[INET6_ADDRSTRLEN];
	const char *scope = strchr(host, '%');
	size_t alen = scope ? (size_t)(scope - host) : strlen(host);
	if (alen >= sizeof(addr))
		goto bad6;
	memcpy(addr, host, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
		goto bad6;
	if (scope) {
		const char *name = scope + 1;
		char *end;
		unsigned long id;
		if (!*name)
			goto bad6;
		errno = 0;
		id = strtoul(name, &end, 10);
		if (*name >= '0' && *name <= '9') {
			if (*end || errno || id > UINT32_MAX)
				goto bad6;
		} else if (!(id = if_nametoindex(name))) {
			goto bad6;
		}
		s6->sin6_scope_id = (uint32_t)id;
	}
	s6->sin6_family = AF_INET6;
	s6->sin6_port = port;
	out->len = sizeof(*s6);
	return 0;
bad6:
	snprintf(err, errlen, "invalid IPv6 address '%s'", host);
	return -1;
}

int address_parse(const char *text, struct listen_addr *out, char *err, size_t errlen)
{
	const char *whole = text;
	enum listen_kind kind = LISTEN_TCP;
	bool proxy = false;

	memset(out, 0, sizeof(*out));
	if (strncmp(text, "proxy:", 6) == 0) {
		proxy = true;
		text += 6;
	}
	if (strncmp(text, "unix:", 5) == 0) {
		if (parse_unix(text + 5, out, err, errlen) < 0)
			return -1;
		out->proxy = proxy;
		return 0;
	}
	if (strncmp(text, "udp:", 4) == 0) {
		kind = LISTEN_UDP;
		text += 4;
		if (proxy || strncmp(text, "proxy:", 6) == 0) {
			snprintf(err, errlen, "proxy: and udp: cannot combine (PROXY protocol is for TCP and unix stream sockets): '%s'",
				 whole);
			return -1;
		}
		if (strncmp(text, "unix:", 5) == 0) {
			snprintf(err, errlen, "UDP needs an IP address, not a unix socket: '%s'", whole);
			return -1;
		}
	} else if (strncmp(text, "tcp:", 4) == 0) {
		text += 4;
	}
	if (*text == '\0') {
		snprintf(err, errlen, "empty address");
		return -1;
	}
	if (parse_ip(text, out, err, errlen) < 0)
		return -1;
	out->kind = kind;
	out->proxy = proxy;
	return 0;
}

void address_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE];

	switch (sa->sa_family) {
	/* Copies, not casts: sa may be only as aligned as struct sockaddr. */
	case AF_INET: {
		struct sockaddr_in s4;
		if (len < sizeof(s4))
			break;
		memcpy(&s4, sa, sizeof(s4));
		inet_ntop(AF_INET, &s4.sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(s4.sin_port));
		return;
	}
	case AF_INET6: {
		struct sockaddr_in6 s6;
		if (len < sizeof(s6))
			break;
		memcpy(&s6, sa, sizeof(s6));
		inet_ntop(AF_INET6, &s6.sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(s6.sin6_port));
		return;
	}
	case AF_UNIX: {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
		size_t n = len > offsetof(struct sockaddr_un, sun_path)
				   ? len - offsetof(struct sockaddr_un, sun_path) : 0;
		if (n == 0) {
			snprintf(buf, size, "unix:(unnamed)");
		} else if (sun->sun_path[0] == '\0') {
			snprintf(buf, size, "unix:@%.*s", (int)(n - 1), sun->sun_path + 1);
		} else {
			snprintf(buf, size, "unix:%.*s", (int)strnlen(sun->sun_path, n), sun->sun_path);
		}
		return;
	}
	default:
		break;
	}
	snprintf(buf, size, "(address family %d, %u bytes)", sa->sa_family, (unsigned)len);
}

const char *address_kind_name(enum listen_kind kind)
{
	switch (kind) {
	case LISTEN_TCP: return "tcp";
	case LISTEN_UDP: return "udp";
	case LISTEN_UNIX: return "unix";
	}
	return "?";
}
