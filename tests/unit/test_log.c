/* Unit tests of the logger: what reaches stderr, with and without the
 * journal's priority prefixes, and what happens to lines that cannot be
 * written. Each test runs in its own process (Check forks), so each gets
 * a fresh logger and its own stderr. */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "log.h"

/* Makes stderr one end of a new socket pair (stream) or pipe (pipe);
 * returns the other end, non-blocking. */
static int redirect_stderr(bool pipe)
{
	int sv[2], ours, theirs;

	if (pipe) {
		ck_assert_int_eq(pipe2(sv, O_CLOEXEC), 0);
		ours = sv[0], theirs = sv[1];
	} else {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		ours = sv[1], theirs = sv[0];
	}
	ck_assert_int_eq(dup2(theirs, STDERR_FILENO), STDERR_FILENO);
	close(theirs);
	ck_assert_int_eq(fcntl(ours, F_SETFL, O_NONBLOCK), 0);
	return ours;
}

/* What the other end has received since the last call. */
static const char *received(int fd)
{
	static char buf[1 << 17];
	ssize_t n;
	size_t got = 0;

	while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	return buf;
}

static void set_journal_stream(int fd)
{
	struct stat st;
	char v[64];

	ck_assert_int_eq(fstat(fd, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	ck_assert_int_eq(setenv("JOURNAL_STREAM", v, 1), 0);
}

START_TEST(plain_prefix)
{
	int peer = redirect_stderr(false);

	unsetenv("JOURNAL_STREAM");
	log_init();
	log_info("hello %d", 7);
	ck_assert_str_eq(received(peer), "echod: hello 7\n");
}
END_TEST

START_TEST(journal_priorities)
{
	int peer = redirect_stderr(false);

	set_journal_stream(STDERR_FILENO);
	log_init();
	log_warning("careful");
	errno = 0;
	ck_assert_int_eq(log_errno(LOG_LEVEL_ERR, -EACCES, "cannot open %s", "x"), -EACCES);
	ck_assert_str_eq(received(peer), "<4>careful\n<3>cannot open x: Permission denied\n");
}
END_TEST

START_TEST(journal_stream_of_another_file)
{
	int peer = redirect_stderr(false);

	/* Inherited from a parent whose stderr was the journal: not ours. */
	set_journal_stream(peer);
	log_init();
	log_notice("n");
	ck_assert_str_eq(received(peer), "echod: n\n");
	/* Not DEV:INO at all. */
	setenv("JOURNAL_STREAM", "journal", 1);
	log_init();
	log_notice("m");
	ck_assert_str_eq(received(peer), "echod: m\n");
}
END_TEST

START_TEST(levels_filter_and_keep_errno)
{
	int peer = redirect_stderr(false);

	log_init();
	log_set_level(LOG_LEVEL_WARNING);
	errno = EBUSY;
	log_info("not shown");
	log_debug("not shown");
	/* A filtered log_errno still returns its error, and touches no errno. */
	ck_assert_int_eq(log_errno(LOG_LEVEL_INFO, -EIO, "nor this"), -EIO);
	ck_assert_int_eq(errno, EBUSY);
	log_err("shown");
	ck_assert_int_eq(errno, EBUSY);
	ck_assert_str_eq(received(peer), "echod: shown\n");
}
END_TEST

START_TEST(overlong_message_is_cut_whole_line)
{
	int peer = redirect_stderr(false);
	char big[3000];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_init();
	log_info("%s", big);
	/* log_errno's text fills up: no room for the error, still one line. */
	log_errno(LOG_LEVEL_ERR, -EIO, "%s", big);
	const char *got = received(peer);
	const char *nl = strchr(got, '\n');
	ck_assert_ptr_nonnull(nl);
	ck_assert_uint_eq((size_t)(nl - got), strlen("echod: ") + 1023);
	ck_assert_ptr_nonnull(strchr(nl + 1, '\n'));
	ck_assert_uint_eq(strlen(nl + 1), strlen("echod: ") + 1023 + 1);
	ck_assert_ptr_null(strstr(got, "Input/output"));
}
END_TEST

/* The count a "N log lines dropped" line gives, or 0 if it is not one. */
static unsigned told_dropped(const char *line, const char *notice_prefix)
{
	unsigned n;
	char rest[64];

	if (strncmp(line, notice_prefix, strlen(notice_prefix)) != 0 ||
	    sscanf(line + strlen(notice_prefix), "%u log lines dropped %63[^\n]", &n, rest) != 2)
		return 0;
	ck_assert_str_eq(rest, "(the log was not writable)");
	return n;
}

/* A pipe that nobody reads: lines are dropped, not waited for, and each
 * is either written whole or counted in a later "dropped" line. */
static void dropped_then_told(bool journal, const char *prefix)
{
	const char *notice_prefix = journal ? "<4>" : "echod: ";
	int peer = redirect_stderr(true);
	char line[512];
	unsigned whole = 0, counted = 0;

	if (journal)
		set_journal_stream(STDERR_FILENO);
	else
		unsetenv("JOURNAL_STREAM");
	log_init();
	memset(line, 'z', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	/* A pipe holds 64 KiB: 200 lines of 520 bytes cannot all fit. */
	for (int i = 0; i < 200; i++)
		log_info("%s", line);
	log_info("after"); /* may fit, or be counted */
	char *got = strdup(received(peer));
	for (char *l = got, *nl; (nl = strchr(l, '\n')); l = nl + 1) {
		*nl = '\0';
		if (strncmp(l, prefix, strlen(prefix)) == 0 &&
		    (strcmp(l + strlen(prefix), line) == 0 || strcmp(l + strlen(prefix), "after") == 0))
			whole++;
		else
			ck_assert_uint_gt(counted += told_dropped(l, notice_prefix), 0);
	}
	ck_assert_uint_gt(whole, 0);
	ck_assert_uint_lt(whole, 200);
	/* Drained: the count of what is still untold comes first. */
	log_info("again");
	const char *tail = received(peer);
	unsigned last = told_dropped(tail, notice_prefix);
	ck_assert_uint_gt(last, 0);
	ck_assert_uint_eq(whole + counted + last, 201);
	char want[64];
	snprintf(want, sizeof(want), "%sagain\n", prefix);
	ck_assert_str_eq(strchr(tail, '\n') + 1, want);
	free(got);
}

START_TEST(pipe_full_drops_and_counts)
{
	dropped_then_told(false, "echod: ");
}
END_TEST

START_TEST(journal_pipe_full_drops_and_counts)
{
	dropped_then_told(true, "<6>");
}
END_TEST

START_TEST(character_device)
{
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

	/* Reopened non-blocking: lines go to it, and nothing is dropped. */
	ck_assert_int_ge(null, 0);
	ck_assert_int_eq(dup2(null, STDERR_FILENO), STDERR_FILENO);
	close(null);
	log_init();
	log_info("into /dev/null");
	int peer = redirect_stderr(false);
	/* The reopened /dev/null is still the output: nothing arrives here. */
	log_info("still /dev/null");
	ck_assert_str_eq(received(peer), "");
}
END_TEST

START_TEST(no_stderr)
{
	/* Lines are counted as dropped; nothing breaks, errno is kept. */
	close(STDERR_FILENO);
	log_init();
	errno = EAGAIN;
	log_info("nowhere");
	log_err("nowhere either");
	ck_assert_int_eq(errno, EAGAIN);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *c = tcase_create("lines");

	tcase_add_test(c, plain_prefix);
	tcase_add_test(c, journal_priorities);
	tcase_add_test(c, journal_stream_of_another_file);
	tcase_add_test(c, levels_filter_and_keep_errno);
	tcase_add_test(c, overlong_message_is_cut_whole_line);
	tcase_add_test(c, pipe_full_drops_and_counts);
	tcase_add_test(c, journal_pipe_full_drops_and_counts);
	tcase_add_test(c, character_device);
	tcase_add_test(c, no_stderr);
	suite_add_tcase(s, c);
	return s;
}

CHECK_MAIN(log_suite)
