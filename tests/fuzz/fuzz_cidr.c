/* The CIDR parser and matcher: any text. Invariants: what parses has no
 * host bits past its prefix, formats to text that parses back the same,
 * and matches its own network address. */
#include <netinet/in.h>
#include <string.h>

#include "cidr.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[256], shown[CIDR_TEXT_MAX], err[256];
	struct cidr c, d;
	struct sockaddr_storage ss;

	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (cidr_parse(text, &c, err, sizeof(err)) < 0) {
		FUZZ_ASSERT(err[0] != '\0');
		return 0;
	}
	FUZZ_ASSERT(c.family == AF_INET ? c.prefix <= 32 : c.family == AF_INET6 && c.prefix <= 128);
	cidr_format(&c, shown, sizeof(shown));
	FUZZ_ASSERT(cidr_parse(shown, &d, err, sizeof(err)) == 0);
	FUZZ_ASSERT(memcmp(&c, &d, sizeof(c)) == 0);

	memset(&ss, 0, sizeof(ss));
	if (c.family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, c.addr, 4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, c.addr, 16);
	}
	FUZZ_ASSERT(cidr_match(&c, (const struct sockaddr *)&ss));
	/* An IPv4 network also matches its IPv4-mapped IPv6 form. */
	if (c.family == AF_INET) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		memset(&ss, 0, sizeof(ss));
		s6->sin6_family = AF_INET6;
		s6->sin6_addr.s6_addr[10] = 0xff;
		s6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&s6->sin6_addr.s6_addr[12], c.addr, 4);
		FUZZ_ASSERT(cidr_match(&c, (const struct sockaddr *)&ss));
	}
	return 0;
}
