/* Fuzz target of the PROXY header parser (libFuzzer's entry point; the
 * corpus in corpus/proxy_header/ also replays as a regression test).
 *
 * Beyond "no crash, no read past the input", it checks the promises the
 * connection code relies on: a header is never longer than its input or
 * PROXY_HEADER_MAX; NEED_MORE only below PROXY_HEADER_MAX bytes, so a
 * buffer of that size always ends the wait; every proper prefix of an
 * accepted header is NEED_MORE (a stream split anywhere parses the same);
 * bytes after the header change nothing; errors carry a reason. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "proxy_header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_address(const struct sockaddr_storage *ss, socklen_t len)
{
	switch (ss->ss_family) {
	case AF_INET:
		if (len != sizeof(struct sockaddr_in))
			abort();
		break;
	case AF_INET6:
		if (len != sizeof(struct sockaddr_in6))
			abort();
		break;
	case AF_UNIX:
		if (len < offsetof(struct sockaddr_un, sun_path) || len > sizeof(struct sockaddr_un))
			abort();
		break;
	default:
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_result r, again;
	int n = proxy_header_parse(data, size, &r);

	if (n == PROXY_NEED_MORE) {
		if (size >= PROXY_HEADER_MAX)
			abort();
		return 0;
	}
	if (n == PROXY_ERROR) {
		if (!r.error)
			abort();
		return 0;
	}
	if (n < 0 || (size_t)n > size || n > PROXY_HEADER_MAX)
		abort();
	if (r.version != 1 && r.version != 2)
		abort();
	if (!r.local) {
		check_address(&r.src, r.src_len);
		check_address(&r.dst, r.dst_len);
		if (r.src.ss_family != r.dst.ss_family)
			abort();
	}
	if (proxy_header_parse(data, (size_t)n, &again) != n ||
	    memcmp(&r, &again, sizeof(r)) != 0)
		abort();
	for (size_t i = 0; i < (size_t)n; i++)
		if (proxy_header_parse(data, i, &again) != PROXY_NEED_MORE)
			abort();
	return 0;
}
