/* The metrics endpoint's text: the counters in the Prometheus text
 * exposition format, version 0.0.4, and the little HTTP/1.x around it.
 *
 * Pure and bounded: the daemon fills a plain snapshot of its counters, this
 * writes into the caller's buffer (no allocation, no I/O) and refuses with
 * -ENOSPC rather than truncate. The request parser reads only the request
 * line and skips the headers; a scraper needs no more, and a peer cannot
 * make it hold more than HTTP_REQUEST_MAX bytes. */
#ifndef ECHOD_METRICS_TEXT_H
#define ECHOD_METRICS_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "reasons.h"

struct metrics_snapshot {
	uint64_t connections;         /* open stream connections (gauge) */
	uint64_t connections_total;   /* stream connections accepted since start */
	uint64_t bytes_echoed_total;  /* stream and datagram */
	uint64_t accept_waits_total;  /* a waiting client could not be accepted:
	                               * max_connections or fd exhaustion */
	uint64_t udp_datagrams_total; /* UDP datagrams received, dropped or not */
	/* By reason: the TCP reasons go to refused_total, the UDP ones to
	 * udp_dropped_total (refusal_reason_is_udp()). */
	uint64_t refused[REFUSE_N];
	const char *version;          /* build_info's label; NULL = "unknown" */
	uint64_t start_time_ms;       /* Unix time of start, in milliseconds */
};

/* Writes the exposition into buf[0 .. cap), NUL-terminated: every family
 * with HELP and TYPE, every reason also at zero. Returns the length, NUL
 * not counted, or -ENOSPC (buf's content then unspecified).
 * METRICS_TEXT_MAX always suffices when version is short (< 64 bytes). */
#define METRICS_TEXT_MAX 4096
int metrics_text_write(const struct metrics_snapshot *m, char *buf, size_t cap);

/* The request head, request line and headers, is read up to its empty line
 * and within HTTP_REQUEST_MAX bytes. */
#define HTTP_REQUEST_MAX 2048

enum http_verdict {
	HTTP_NEED_MORE = 0, /* no empty line yet, and nothing wrong so far */
	HTTP_GET_METRICS,   /* GET /metrics (a query string is ignored) */
	HTTP_NOT_FOUND,     /* a well-formed request for anything else */
	HTTP_BAD,           /* malformed, not HTTP/1.0 or 1.1, or too long */
};

/* Judges buf[0 .. len), the bytes read so far from the start of the
 * connection. A malformed request line is HTTP_BAD as soon as it is seen;
 * otherwise the verdict waits for the end of the head, so the response
 * never goes out while the client is still sending (closing a socket with
 * unread data would reset the connection and lose the response). */
enum http_verdict http_request_parse(const char *buf, size_t len);

/* The whole HTTP/1.0 response to a verdict other than HTTP_NEED_MORE,
 * with Content-Length and Connection: close: 200 with the exposition
 * (Content-Type text/plain; version=0.0.4), 404 or 400 with a short text.
 * m is read only for HTTP_GET_METRICS. Returns the length or -ENOSPC
 * (-EINVAL for HTTP_NEED_MORE). HTTP_RESPONSE_MAX always suffices. */
#define HTTP_RESPONSE_MAX (METRICS_TEXT_MAX + 256)
int http_response_write(enum http_verdict v, const struct metrics_snapshot *m,
			char *buf, size_t cap);

#endif
