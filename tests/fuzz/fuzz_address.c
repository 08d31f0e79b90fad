/* The `listen` address parser: any text. Invariant: an address that
 * parses formats within ADDRESS_TEXT_MAX, and the formatted text of an IP
 * address parses back to the same socket address. */
#include <string.h>

#include "address.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[512], shown[ADDRESS_TEXT_MAX], err[512];
	struct listen_addr a, b;

	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (address_parse(text, &a, err, sizeof(err)) < 0) {
		FUZZ_ASSERT(err[0] != '\0');
		return 0;
	}
	FUZZ_ASSERT(a.len > 0 && a.len <= sizeof(a.sa));
	FUZZ_ASSERT(!(a.proxy && a.kind == LISTEN_UDP));
	address_format((const struct sockaddr *)&a.sa, a.len, shown, sizeof(shown));
	FUZZ_ASSERT(strlen(shown) < sizeof(shown));
	/* IPv4 prints back exactly; IPv6 loses its scope id in the text. */
	if (a.sa.ss_family == AF_INET) {
		FUZZ_ASSERT(address_parse(shown, &b, err, sizeof(err)) == 0);
		FUZZ_ASSERT(b.len == a.len && memcmp(&a.sa, &b.sa, a.len) == 0);
	}
	return 0;
}
