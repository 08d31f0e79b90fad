/* Fuzz target of the metrics endpoint's request parser (libFuzzer's entry
 * point; corpus in corpus/http_request/).
 *
 * Beyond "no crash, no read past the input": NEED_MORE only below
 * HTTP_REQUEST_MAX bytes, so the endpoint's buffer always ends the wait;
 * and verdicts are final: once a prefix has one, every longer prefix has
 * the same (a request split anywhere is judged the same), and the response
 * to it can be written into HTTP_RESPONSE_MAX bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "metrics_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char resp[HTTP_RESPONSE_MAX];
	static const struct metrics_snapshot m = { .version = "fuzz" };
	const char *buf = (const char *)data;
	enum http_verdict v = http_request_parse(buf, size);

	if (v == HTTP_NEED_MORE) {
		if (size >= HTTP_REQUEST_MAX)
			abort();
		return 0;
	}
	if (v != HTTP_GET_METRICS && v != HTTP_NOT_FOUND && v != HTTP_BAD)
		abort();
	if (http_response_write(v, &m, resp, sizeof(resp)) <= 0)
		abort();
	/* The shortest prefix with a verdict, found by bisection (prefixes
	 * are NEED_MORE up to some length, then final): it must have v. */
	size_t lo = 0, hi = size;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (http_request_parse(buf, mid) == HTTP_NEED_MORE)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (http_request_parse(buf, lo) != v)
		abort();
	/* And every prefix below it waits, above it agrees: sample a few. */
	for (size_t i = 0; i < lo; i += 1 + lo / 16)
		if (http_request_parse(buf, i) != HTTP_NEED_MORE)
			abort();
	for (size_t i = lo; i <= size; i += 1 + (size - lo) / 16)
		if (http_request_parse(buf, i) != v)
			abort();
	return 0;
}
