/* Unit tests of the metrics endpoint through the listener API, with no
 * daemon around it: a loop, a listener on loopback, clients in-process. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "listener.h"
#include "loop.h"
#include "metrics_server.h"
#include "stats.h"

static struct loop L;
static struct stats st;
static struct listener *ml;
static struct timer stopper;

static void stop_cb(struct timer *t)
{
	(void)t;
	L.stop = true;
}

/* Runs the loop for about ms milliseconds. */
static void run_for(unsigned ms)
{
	L.stop = false;
	L.now_ms = loop_clock_ms();
	ck_assert_int_eq(loop_timer_in(&L, &stopper, ms), 0);
	ck_assert_int_eq(loop_run(&L), 0);
}

static void setup(void)
{
	struct listen_options o = { .backlog = 64 };

	ck_assert_int_eq(loop_init(&L), 0);
	stopper.fn = stop_cb;
	memset(&st, 0, sizeof(st));
	st.total = 7;
	st.bytes = 1234;
	st.refused[REFUSE_PROXY] = 3;
	st.refused[REFUSE_UDP_RATE] = 5;
	metrics_server_init(&L, &st, "1.2.3");
	ck_assert_int_eq(listener_open("127.0.0.1:0", &o, &ml), 0);
	ck_assert_int_eq(metrics_server_start(ml), 0);
}

static void teardown(void)
{
	metrics_server_stop(ml);
	listener_free(ml);
	metrics_server_free();
	loop_close(&L);
}

static int client(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(getsockname(ml->fd, (struct sockaddr *)&a, &len), 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, len), 0);
	return fd;
}

static void send_all(int fd, const char *s)
{
	ck_assert_int_eq(send(fd, s, strlen(s), 0), (ssize_t)strlen(s));
}

/* What has arrived, non-blocking; *eof tells whether the peer closed. */
static size_t drain(int fd, char *buf, size_t cap, bool *eof)
{
	size_t n = 0;

	*eof = false;
	for (;;) {
		ssize_t r = recv(fd, buf + n, cap - 1 - n, MSG_DONTWAIT);
		if (r > 0) {
			n += (size_t)r;
			continue;
		}
		if (r == 0)
			*eof = true;
		else
			ck_assert_int_eq(errno, EAGAIN); /* no reset */
		break;
	}
	buf[n] = '\0';
	return n;
}

START_TEST(scrape)
{
	char buf[8192];
	bool eof;
	int fd = client();

	send_all(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	run_for(100);
	drain(fd, buf, sizeof(buf), &eof);
	ck_assert(eof);
	ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.0 200 OK\r\n"));
	ck_assert_ptr_nonnull(strstr(buf, "\nechod_connections_total 7\n"));
	ck_assert_ptr_nonnull(strstr(buf, "\nechod_bytes_echoed_total 1234\n"));
	ck_assert_ptr_nonnull(strstr(buf, "\nechod_refused_total{reason=\"proxy\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(buf, "\nechod_udp_dropped_total{reason=\"udp_rate\"} 5\n"));
	ck_assert_ptr_nonnull(strstr(buf, "\nechod_build_info{version=\"1.2.3\"} 1\n"));
	/* Read at the time of the request, not at start. */
	st.total = 8;
	close(fd);
	fd = client();
	send_all(fd, "GET /metrics HTTP/1.0\r\n\r\n");
	run_for(100);
	drain(fd, buf, sizeof(buf), &eof);
	ck_assert(eof);
	ck_assert_ptr_nonnull(strstr(buf, "\nechod_connections_total 8\n"));
	close(fd);
}
END_TEST

START_TEST(not_found_and_bad)
{
	char buf[8192];
	bool eof;
	int a = client(), b = client();

	send_all(a, "GET /nope HTTP/1.1\r\n\r\n");
	send_all(b, "\x16\x03\x01 garbage\r\n");
	run_for(100);
	drain(a, buf, sizeof(buf), &eof);
	ck_assert(eof);
	ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.0 404 "));
	drain(b, buf, sizeof(buf), &eof);
	ck_assert(eof);
	ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.0 400 "));
	close(a);
	close(b);
}
END_TEST

/* Bytes the client sends after its request are read and dropped before
 * the close, so the close is a FIN, never a reset. */
START_TEST(linger_until_eof)
{
	char buf[8192];
	bool eof;
	int fd = client();

	char more[6000];

	/* More than the request buffer: the rest is still queued when the
	 * response goes out. */
	memset(more, 'x', sizeof(more) - 1);
	more[sizeof(more) - 1] = '\0';
	send_all(fd, "GET /metrics HTTP/1.1\r\n\r\n");
	send_all(fd, more);
	run_for(100);
	ck_assert_uint_gt(drain(fd, buf, sizeof(buf), &eof), 0);
	ck_assert(eof); /* the FIN of shutdown(SHUT_WR) */
	send_all(fd, "still talking");
	run_for(50);
	shutdown(fd, SHUT_WR);
	run_for(50);
	ck_assert_uint_eq(drain(fd, buf, sizeof(buf), &eof), 0);
	ck_assert(eof);
	close(fd);
}
END_TEST

/* A scraper that half-closes right after its request (printf | nc -N)
 * still gets the whole response. */
START_TEST(half_closed_scraper)
{
	char buf[8192];
	bool eof;
	int fd = client();

	send_all(fd, "GET /metrics HTTP/1.0\r\n\r\n");
	shutdown(fd, SHUT_WR);
	run_for(100);
	drain(fd, buf, sizeof(buf), &eof);
	ck_assert(eof);
	ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.0 200 OK\r\n"));
	ck_assert_ptr_nonnull(strstr(buf, "\nechod_start_time_seconds "));
	close(fd);
}
END_TEST

/* A full table takes the listener out of the loop; a slot freed by the
 * deadline brings it back, and the waiting scraper is served. */
START_TEST(cap_and_deadline)
{
	char buf[8192];
	bool eof;
	int slow[METRICS_SCRAPERS_MAX], late;

	for (int i = 0; i < METRICS_SCRAPERS_MAX; i++) {
		slow[i] = client();
		send_all(slow[i], "GET /metr");
	}
	run_for(100);
	late = client();
	send_all(late, "GET /metrics HTTP/1.0\r\n\r\n");
	run_for(200);
	ck_assert_uint_eq(drain(late, buf, sizeof(buf), &eof), 0);
	ck_assert(!eof);
	run_for(METRICS_DEADLINE_MS);
	for (int i = 0; i < METRICS_SCRAPERS_MAX; i++) {
		ck_assert_uint_eq(drain(slow[i], buf, sizeof(buf), &eof), 0);
		ck_assert(eof);
		close(slow[i]);
	}
	run_for(100);
	drain(late, buf, sizeof(buf), &eof);
	ck_assert(eof);
	ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.0 200 OK\r\n"));
	close(late);
}
END_TEST

/* Stopping the listener leaves its scrapers served; freeing closes them
 * (teardown, under the sanitizers: nothing leaks). */
START_TEST(stop_and_free)
{
	int fd = client(), other = client();

	send_all(fd, "GET /metrics HTTP/1.0\r\n");
	send_all(other, "GET");
	run_for(50);
	metrics_server_stop(ml);
	metrics_server_stop(ml); /* idempotent */
	send_all(fd, "\r\n");
	run_for(50);
	{
		char buf[8192];
		bool eof;
		drain(fd, buf, sizeof(buf), &eof);
		ck_assert(eof);
		ck_assert_ptr_nonnull(strstr(buf, " 200 OK"));
	}
	close(fd);
	close(other);
}
END_TEST

START_TEST(udp_refused)
{
	struct listen_options o = { .backlog = 1 };
	struct listener *u;

	ck_assert_int_eq(listener_open("udp:127.0.0.1:0", &o, &u), 0);
	ck_assert_int_lt(metrics_server_start(u), 0);
	metrics_server_stop(u); /* never started: a no-op */
	listener_free(u);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("metrics_server");
	TCase *t = tcase_create("core");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 20);
	tcase_add_test(t, scrape);
	tcase_add_test(t, not_found_and_bad);
	tcase_add_test(t, linger_until_eof);
	tcase_add_test(t, half_closed_scraper);
	tcase_add_test(t, cap_and_deadline);
	tcase_add_test(t, stop_and_free);
	tcase_add_test(t, udp_refused);
	suite_add_tcase(s, t);
	return s;
}

CHECK_MAIN(suite)
