#include "metrics_text.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ---- output into a bounded buffer ---- */

struct out {
	char *buf;
	size_t cap, len;
	bool full; /* something did not fit: the result is -ENOSPC */
};

__attribute__((format(printf, 2, 3)))
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	size_t room = o->len < o->cap ? o->cap - o->len : 0;

	va_start(ap, fmt);
	int n = vsnprintf(o->buf + (room ? o->len : 0), room, fmt, ap);
	va_end(ap);
	/* The NUL must fit too: the text stays a C string, and a cut-off
	 * last byte would otherwise go unnoticed. */
	if (n < 0 || (size_t)n >= room)
		o->full = true;
	else
		o->len += (size_t)n;
}

/* A label value, escaped as the format asks: backslash, quote, newline. */
static void put_label_value(struct out *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			put(o, "\\\\");
		else if (*s == '"')
			put(o, "\\\"");
		else if (*s == '\n')
			put(o, "\\n");
		else
			put(o, "%c", *s);
	}
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP echod_%s %s\n# TYPE echod_%s %s\n", name, help, name, type);
}

static void sample(struct out *o, const char *name, uint64_t v)
{
	put(o, "echod_%s %" PRIu64 "\n", name, v);
}

/* One sample per reason of one transport, zeros included: a series that
 * appears only once it is non-zero breaks rate() and alerts on absence. */
static void by_reason(struct out *o, const char *name, const struct metrics_snapshot *m, bool udp)
{
	for (int r = 0; r < REFUSE_N; r++)
		if (refusal_reason_is_udp((enum refusal_reason)r) == udp)
			put(o, "echod_%s{reason=\"%s\"} %" PRIu64 "\n", name,
			    refusal_reason_name((enum refusal_reason)r), m->refused[r]);
}

int metrics_text_write(const struct metrics_snapshot *m, char *buf, size_t cap)
{
	struct out o = { .buf = buf, .cap = cap };

	family(&o, "connections", "gauge", "Open stream connections.");
	sample(&o, "connections", m->connections);
	family(&o, "connections_total", "counter", "Stream connections accepted.");
	sample(&o, "connections_total", m->connections_total);
	family(&o, "bytes_echoed_total", "counter", "Bytes echoed, stream and datagram.");
	sample(&o, "bytes_echoed_total", m->bytes_echoed_total);
	family(&o, "accept_waits_total", "counter",
	       "Times a waiting client could not be accepted (connection or file descriptor limit).");
	sample(&o, "accept_waits_total", m->accept_waits_total);
	family(&o, "refused_total", "counter", "Stream connections refused, or closed before their end, by reason.");
	by_reason(&o, "refused_total", m, false);
	family(&o, "udp_datagrams_total", "counter", "UDP datagrams received.");
	sample(&o, "udp_datagrams_total", m->udp_datagrams_total);
	family(&o, "udp_dropped_total", "counter", "UDP datagrams not answered, by reason.");
	by_reason(&o, "udp_dropped_total", m, true);
	family(&o, "build_info", "gauge", "Always 1; the version is in the label.");
	put(&o, "echod_build_info{version=\"");
	put_label_value(&o, m->version ? m->version : "unknown");
	put(&o, "\"} 1\n");
	family(&o, "start_time_seconds", "gauge", "Start time of the process, Unix time in seconds.");
	put(&o, "echod_start_time_seconds %" PRIu64 ".%03u\n", m->start_time_ms / 1000,
	    (unsigned)(m->start_time_ms % 1000));
	if (o.full)
		return -ENOSPC;
	return (int)o.len;
}

/* ---- the request ---- */

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* RFC 9110 tchar: what a method may be made of. */
static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Whether s[0 .. n) is, or can still become, the version of a request we
 * serve. */
static bool version_ok(const char *s, size_t n, bool complete)
{
	static const char v0[] = "HTTP/1.0", v1[] = "HTTP/1.1";
	size_t want = sizeof(v0) - 1;

	if (n > want || (complete && n != want))
		return false;
	return memcmp(s, v0, n) == 0 || memcmp(s, v1, n) == 0;
}

/* Checks the request line s[0 .. n) (no CRLF), or the part of it that has
 * arrived when !complete, and tells whether it asks for the metrics:
 * method SP target SP version, single spaces. */
static bool request_line(const char *s, size_t n, bool complete, bool *metrics)
{
	const char *sp1 = memchr(s, ' ', n);
	size_t i;

	for (i = 0; i < (sp1 ? (size_t)(sp1 - s) : n); i++)
		if (!is_tchar((unsigned char)s[i]))
			return false;
	if (!sp1)
		return !complete;
	if (sp1 == s)
		return false;
	const char *target = sp1 + 1;
	size_t rest = n - (size_t)(target - s);
	const char *sp2 = memchr(target, ' ', rest);
	if (!sp2)
		return !complete;
	if (sp2 == target)
		return false;
	size_t tlen = (size_t)(sp2 - target);
	const char *version = sp2 + 1;
	if (!version_ok(version, rest - tlen - 1, complete))
		return false;
	*metrics = (size_t)(sp1 - s) == 3 && memcmp(s, "GET", 3) == 0 &&
		   tlen >= 8 && memcmp(target, "/metrics", 8) == 0 &&
		   (tlen == 8 || target[8] == '?');
	return true;
}

/* A line ends at LF; a CR before it is part of the ending. Bare LF is
 * taken as well, as RFC 9112 allows a recipient to. */
static size_t line_len(const char *line, const char *lf)
{
	size_t n = (size_t)(lf - line);

	return n && line[n - 1] == '\r' ? n - 1 : n;
}

enum http_verdict http_request_parse(const char *buf, size_t len)
{
	size_t n = len < HTTP_REQUEST_MAX ? len : HTTP_REQUEST_MAX;
	const char *lf = memchr(buf, '\n', n);
	size_t first = lf ? line_len(buf, lf) : n;
	bool metrics = false;

	for (size_t i = 0; i < first; i++)
		if (is_ctl((unsigned char)buf[i]) && !(buf[i] == '\r' && !lf && i == n - 1))
			return HTTP_BAD;
	if (!request_line(buf, first - (!lf && first && buf[first - 1] == '\r'), lf != NULL,
			  &metrics))
		return HTTP_BAD;
	if (!lf)
		return len >= HTTP_REQUEST_MAX ? HTTP_BAD : HTTP_NEED_MORE;
	/* Headers are skipped to the empty line that ends the head. */
	for (const char *p = lf + 1;;) {
		size_t left = n - (size_t)(p - buf);
		lf = memchr(p, '\n', left);
		if (!lf)
			return len >= HTTP_REQUEST_MAX ? HTTP_BAD : HTTP_NEED_MORE;
		if (line_len(p, lf) == 0)
			return metrics ? HTTP_GET_METRICS : HTTP_NOT_FOUND;
		p = lf + 1;
	}
}

/* ---- the response ---- */

static int head(char *buf, size_t cap, const char *status, const char *type, size_t body)
{
	int n = snprintf(buf, cap,
			 "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n",
			 status, type, body);

	/* n == cap: the last byte went to the NUL, the head is cut. */
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

int http_response_write(enum http_verdict v, const struct metrics_snapshot *m,
			char *buf, size_t cap)
{
	static const char type_text[] = "text/plain; charset=utf-8";
	char h[256];
	const char *status, *body;
	int hn, bn;

	if (v == HTTP_GET_METRICS) {
		/* The body first, past the longest head, then the head before
		 * it: Content-Length is known without a second rendering. */
		size_t reserve = sizeof(h);
		if (cap < reserve)
			return -ENOSPC;
		bn = metrics_text_write(m, buf + reserve, cap - reserve);
		if (bn < 0)
			return bn;
		hn = head(h, sizeof(h), "200 OK", "text/plain; version=0.0.4; charset=utf-8",
			  (size_t)bn);
		if (hn < 0)
			return hn;
		memmove(buf + hn, buf + reserve, (size_t)bn);
		memcpy(buf, h, (size_t)hn);
		return hn + bn;
	}
	if (v == HTTP_NOT_FOUND) {
		status = "404 Not Found";
		body = "Not found: the metrics are at /metrics.\n";
	} else if (v == HTTP_BAD) {
		status = "400 Bad Request";
		body = "Bad request.\n";
	} else {
		return -EINVAL;
	}
	bn = (int)strlen(body);
	hn = head(h, sizeof(h), status, type_text, (size_t)bn);
	if (hn < 0)
		return hn;
	if ((size_t)(hn + bn) > cap)
		return -ENOSPC;
	memcpy(buf, h, (size_t)hn);
	memcpy(buf + hn, body, (size_t)bn);
	return hn + bn;
}
