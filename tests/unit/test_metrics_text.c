/* Unit tests of the metrics text, the request parser and the responses. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "metrics_text.h"
#include "util.h"

static struct metrics_snapshot sample(void)
{
	struct metrics_snapshot m = {
		.connections = 3,
		.connections_total = 12345678901234ull,
		.bytes_echoed_total = 1,
		.accept_waits_total = 4,
		.udp_datagrams_total = 99,
		.version = "0.2.0",
		.start_time_ms = 1764655975042ull,
	};

	m.refused[REFUSE_PER_SOURCE] = 5;
	m.refused[REFUSE_UDP_RATE] = 6;
	return m;
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p += n)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

START_TEST(every_family_and_reason)
{
	static const char *const want[] = {
		"# TYPE echod_connections gauge",
		"echod_connections 3",
		"# TYPE echod_connections_total counter",
		"echod_connections_total 12345678901234",
		"echod_bytes_echoed_total 1",
		"echod_accept_waits_total 4",
		"# TYPE echod_refused_total counter",
		"echod_refused_total{reason=\"acl\"} 0",
		"echod_refused_total{reason=\"per_source\"} 5",
		"echod_refused_total{reason=\"lifetime\"} 0",
		"echod_refused_total{reason=\"proxy\"} 0",
		"echod_udp_datagrams_total 99",
		"# TYPE echod_udp_dropped_total counter",
		"echod_udp_dropped_total{reason=\"udp_loop\"} 0",
		"echod_udp_dropped_total{reason=\"udp_martian\"} 0",
		"echod_udp_dropped_total{reason=\"udp_acl\"} 0",
		"echod_udp_dropped_total{reason=\"udp_rate\"} 6",
		"# TYPE echod_build_info gauge",
		"echod_build_info{version=\"0.2.0\"} 1",
		"# TYPE echod_start_time_seconds gauge",
		"echod_start_time_seconds 1764655975.042",
	};
	struct metrics_snapshot m = sample();
	char buf[METRICS_TEXT_MAX];
	int n = metrics_text_write(&m, buf, sizeof(buf));

	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq(strlen(buf), (size_t)n);
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		ck_assert_msg(has_line(buf, want[i]), "missing: %s", want[i]);
	/* UDP reasons are not TCP refusals, and the other way round. */
	ck_assert_ptr_null(strstr(buf, "refused_total{reason=\"udp_"));
	ck_assert_ptr_null(strstr(buf, "dropped_total{reason=\"acl"));
	/* Each family has one HELP and one TYPE line. */
	int help = 0, type = 0;
	for (const char *p = buf; (p = strstr(p, "# HELP ")); p++)
		help++;
	for (const char *p = buf; (p = strstr(p, "# TYPE ")); p++)
		type++;
	ck_assert_int_eq(help, 9);
	ck_assert_int_eq(type, 9);
	ck_assert_int_eq(buf[n - 1], '\n');
}
END_TEST

START_TEST(version_label_escaped)
{
	struct metrics_snapshot m = sample();
	char buf[METRICS_TEXT_MAX];

	m.version = "1.0 \"q\" \\ \n";
	ck_assert_int_gt(metrics_text_write(&m, buf, sizeof(buf)), 0);
	ck_assert(has_line(buf, "echod_build_info{version=\"1.0 \\\"q\\\" \\\\ \\n\"} 1"));
	m.version = NULL;
	ck_assert_int_gt(metrics_text_write(&m, buf, sizeof(buf)), 0);
	ck_assert(has_line(buf, "echod_build_info{version=\"unknown\"} 1"));
}
END_TEST

/* Every buffer too small is refused, and nothing is written past it. */
START_TEST(bounded_by_cap)
{
	struct metrics_snapshot m = sample();
	static char buf[METRICS_TEXT_MAX + 1];
	int full = metrics_text_write(&m, buf, sizeof(buf));

	ck_assert_int_gt(full, 0);
	ck_assert_int_eq(metrics_text_write(&m, NULL, 0), -ENOSPC);
	for (size_t cap = 1; cap <= (size_t)full; cap++) {
		memset(buf, 'Z', sizeof(buf));
		ck_assert_int_eq(metrics_text_write(&m, buf, cap), -ENOSPC);
		ck_assert_int_eq(buf[cap], 'Z');
	}
	ck_assert_int_eq(metrics_text_write(&m, buf, (size_t)full + 1), full);
	/* The largest counters still fit the documented bound. */
	memset(&m, 0xff, sizeof(m));
	m.version = "0.1.0-1234-gdeadbeef-dirty";
	ck_assert_int_gt(metrics_text_write(&m, buf, METRICS_TEXT_MAX), 0);
}
END_TEST

START_TEST(requests)
{
	static const struct {
		const char *req;
		enum http_verdict want;
	} cases[] = {
		{ "GET /metrics HTTP/1.0\r\n\r\n", HTTP_GET_METRICS },
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n", HTTP_GET_METRICS },
		{ "GET /metrics?x=1 HTTP/1.1\r\n\r\n", HTTP_GET_METRICS },
		{ "GET /metrics HTTP/1.0\n\n", HTTP_GET_METRICS },
		{ "GET / HTTP/1.0\r\n\r\n", HTTP_NOT_FOUND },
		{ "GET /metricsx HTTP/1.0\r\n\r\n", HTTP_NOT_FOUND },
		{ "GET /metrics/ HTTP/1.0\r\n\r\n", HTTP_NOT_FOUND },
		{ "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", HTTP_NOT_FOUND },
		{ "get /metrics HTTP/1.1\r\n\r\n", HTTP_NOT_FOUND },
		{ "GET /metrics HTTP/1.0\r\n", HTTP_NEED_MORE },
		{ "GET /metrics HTTP/1.0\r\nHost: x\r\n", HTTP_NEED_MORE },
		{ "GET /metrics HTTP/1.0\r", HTTP_NEED_MORE },
		{ "GET /metr", HTTP_NEED_MORE },
		{ "GET", HTTP_NEED_MORE },
		{ "", HTTP_NEED_MORE },
		{ "GET /metrics HTTP/2.0\r\n\r\n", HTTP_BAD },
		{ "GET /metrics HTTP/1.0 \r\n\r\n", HTTP_BAD },
		{ "GET /metrics\r\n\r\n", HTTP_BAD },            /* HTTP/0.9 */
		{ "GET  /metrics HTTP/1.0\r\n\r\n", HTTP_BAD },
		{ " GET /metrics HTTP/1.0\r\n\r\n", HTTP_BAD },
		{ "GET /met\trics HTTP/1.0\r\n\r\n", HTTP_BAD },
		{ "GET /metrics HTTP/1.0\r\r\n\r\n", HTTP_BAD },
		{ "G(T /metrics HTTP/1.0\r\n\r\n", HTTP_BAD },
		{ "\x16\x03\x01", HTTP_BAD },                    /* a TLS hello */
		{ "GET /metrics HTTP/1.2", HTTP_BAD },           /* early */
		{ "GET /metrics XTTP", HTTP_BAD },
		{ "GETS /metrics HTTP/1.0\r\n\r\n", HTTP_NOT_FOUND },   /* another method */
		{ "M-SEARCH* /metrics HTTP/1.1\r\n\r\n", HTTP_NOT_FOUND }, /* tchars */
		{ "GET /m HTTP/1.0\r\n\r\n", HTTP_NOT_FOUND },
		{ "GET /metrics HTTP/1.0\n", HTTP_NEED_MORE },
		{ "GET /metrics HTTP/1.0\r\nX: \x01\r\n\r\n", HTTP_GET_METRICS }, /* headers skipped */
		{ "G\x80T /metrics HTTP/1.0\r\n\r\n", HTTP_BAD },
		{ "\r\n", HTTP_BAD },                            /* an empty request line */
		{ "\n", HTTP_BAD },
		{ "GET /metrics \r\n\r\n", HTTP_BAD },          /* no version */
		{ "GET /metrics HTTP/1.1x\r\n\r\n", HTTP_BAD },
		{ "GET \r\n\r\n", HTTP_BAD },
		{ "GET /metrics HTTP/1.1\x7f", HTTP_BAD },
		{ "PUT /metrics HTTP/1.0\r\n\r\n", HTTP_NOT_FOUND },  /* three letters, not GET */
		{ "GET /metrics\rHTTP/1.0", HTTP_BAD },          /* a CR that ends nothing */
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		ck_assert_msg(http_request_parse(cases[i].req, strlen(cases[i].req)) == cases[i].want,
			      "case %zu: %s", i, cases[i].req);
}
END_TEST

START_TEST(request_bounded)
{
	static char buf[HTTP_REQUEST_MAX + 100];
	size_t head = strlen("GET /metrics HTTP/1.0\r\n");

	memcpy(buf, "GET /metrics HTTP/1.0\r\n", head);
	memset(buf + head, 'a', sizeof(buf) - head);
	ck_assert_int_eq(http_request_parse(buf, HTTP_REQUEST_MAX - 1), HTTP_NEED_MORE);
	ck_assert_int_eq(http_request_parse(buf, HTTP_REQUEST_MAX), HTTP_BAD);
	ck_assert_int_eq(http_request_parse(buf, sizeof(buf)), HTTP_BAD);
	/* The empty line just inside the bound counts; past it, not. */
	memcpy(buf + HTTP_REQUEST_MAX - 4, "\r\n\r\n", 4);
	ck_assert_int_eq(http_request_parse(buf, sizeof(buf)), HTTP_GET_METRICS);
	memset(buf + head, 'a', sizeof(buf) - head);
	memcpy(buf + HTTP_REQUEST_MAX - 3, "\r\n\r\n", 4);
	ck_assert_int_eq(http_request_parse(buf, sizeof(buf)), HTTP_BAD);
	/* A request line with no end. */
	memset(buf, 'A', sizeof(buf));
	ck_assert_int_eq(http_request_parse(buf, HTTP_REQUEST_MAX), HTTP_BAD);
}
END_TEST

/* Split anywhere, a request is NEED_MORE until its empty line. */
START_TEST(request_every_split)
{
	const char *req = "GET /metrics HTTP/1.1\r\nHost: localhost:9100\r\nUser-Agent: p\r\n\r\n";
	size_t n = strlen(req);

	for (size_t i = 0; i < n; i++)
		ck_assert_msg(http_request_parse(req, i) == HTTP_NEED_MORE, "prefix %zu", i);
	ck_assert_int_eq(http_request_parse(req, n), HTTP_GET_METRICS);
}
END_TEST

static size_t content_length(const char *resp)
{
	const char *p = strstr(resp, "\r\nContent-Length: ");
	size_t v = 0;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p, "\r\nContent-Length: %zu", &v), 1);
	return v;
}

START_TEST(responses)
{
	struct metrics_snapshot m = sample();
	static char buf[HTTP_RESPONSE_MAX + 1];
	int n = http_response_write(HTTP_GET_METRICS, &m, buf, HTTP_RESPONSE_MAX);

	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_ptr_eq(strstr(buf, "HTTP/1.0 200 OK\r\n"), buf);
	ck_assert_ptr_nonnull(strstr(buf, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	ck_assert_ptr_nonnull(strstr(buf, "\r\nConnection: close\r\n"));
	const char *body = strstr(buf, "\r\n\r\n") + 4;
	ck_assert_uint_eq(content_length(buf), strlen(body));
	ck_assert_ptr_eq(strstr(body, "# HELP echod_connections "), body);

	n = http_response_write(HTTP_NOT_FOUND, NULL, buf, HTTP_RESPONSE_MAX);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_ptr_eq(strstr(buf, "HTTP/1.0 404 Not Found\r\n"), buf);
	ck_assert_uint_eq(content_length(buf), strlen(strstr(buf, "\r\n\r\n") + 4));

	n = http_response_write(HTTP_BAD, NULL, buf, HTTP_RESPONSE_MAX);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_ptr_eq(strstr(buf, "HTTP/1.0 400 Bad Request\r\n"), buf);
	ck_assert_uint_eq(content_length(buf), strlen(strstr(buf, "\r\n\r\n") + 4));

	ck_assert_int_eq(http_response_write(HTTP_NEED_MORE, NULL, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(http_response_write(HTTP_BAD, NULL, buf, 10), -ENOSPC);
	ck_assert_int_eq(http_response_write(HTTP_GET_METRICS, &m, buf, 300), -ENOSPC);
	/* Not even room for the longest head. */
	ck_assert_int_eq(http_response_write(HTTP_GET_METRICS, &m, buf, 100), -ENOSPC);
}
END_TEST

static Suite *metrics_text_suite(void)
{
	Suite *s = suite_create("metrics_text");
	TCase *t = tcase_create("text"), *h = tcase_create("http");

	tcase_add_test(t, every_family_and_reason);
	tcase_add_test(t, version_label_escaped);
	tcase_add_test(t, bounded_by_cap);
	tcase_add_test(h, requests);
	tcase_add_test(h, request_bounded);
	tcase_add_test(h, request_every_split);
	tcase_add_test(h, responses);
	suite_add_tcase(s, t);
	suite_add_tcase(s, h);
	return s;
}

CHECK_MAIN(metrics_text_suite)
