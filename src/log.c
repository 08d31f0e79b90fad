#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum log_level log_max_level = LOG_LEVEL_INFO;
static bool to_journal;
static int out_fd = STDERR_FILENO;
static bool out_is_socket;
/* Lines that could not be written without blocking, since the last line
 * that could: reported ahead of the next one that gets through. */
static unsigned long long dropped;

/* Logging must never block the loop: a full pipe or a stalled terminal
 * costs log lines, not service. A socket (the journal's stream) is
 * written with MSG_DONTWAIT; a pipe, FIFO or terminal is reopened through
 * /proc with O_NONBLOCK, which gives echod a file description of its own
 * (setting O_NONBLOCK on the inherited one would change it for every
 * process sharing it). Regular files never block. */
static void open_output(void)
{
	struct stat st;

	if (fstat(STDERR_FILENO, &st) < 0)
		return;
	if (S_ISSOCK(st.st_mode)) {
		out_is_socket = true;
	} else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd >= 0)
			out_fd = fd;
	}
}

void log_init(void)
{
	/* JOURNAL_STREAM is "DEV:INO" of the stream systemd connected; it is
	 * inherited by children, so compare it with what stderr really is. */
	const char *e = getenv("JOURNAL_STREAM");
	struct stat st;
	unsigned long long dev, ino;

	to_journal = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 &&
		     fstat(STDERR_FILENO, &st) == 0 &&
		     (unsigned long long)st.st_dev == dev &&
		     (unsigned long long)st.st_ino == ino;
	open_output();
}

void log_set_level(enum log_level level)
{
	log_max_level = level;
}

/* One line, one write(2): lines never interleave, and a pipe takes a line
 * (at most PIPE_BUF bytes) whole or not at all. */
static bool emit(const char *line, size_t len)
{
	ssize_t w;

	do {
		w = out_is_socket ? send(out_fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL)
				  : write(out_fd, line, len);
	} while (w < 0 && errno == EINTR);
	if (w > 0 && (size_t)w < len && out_is_socket)
		/* A stream socket took part of the line: end it, so that the
		 * next line does not run on from the fragment. */
		send(out_fd, "\n", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	return w == (ssize_t)len;
}

/* A message is at most LOG_TEXT_MAX - 1 bytes (vsnprintf into a buffer
 * of LOG_TEXT_MAX cuts it), so a line with its prefix always fits. */
#define LOG_TEXT_MAX 1024
#define LOG_PREFIX_MAX sizeof("echod: ")

static void log_line(enum log_level level, const char *text)
{
	char line[LOG_TEXT_MAX + LOG_PREFIX_MAX + 1];
	int n;

	_Static_assert(sizeof("<7>") <= LOG_PREFIX_MAX, "journal prefix fits");
	if (dropped) {
		n = to_journal ? snprintf(line, sizeof(line), "<%d>%llu log lines dropped (the log was not writable)\n",
					  LOG_LEVEL_WARNING, dropped)
			       : snprintf(line, sizeof(line), "echod: %llu log lines dropped (the log was not writable)\n",
					  dropped);
		if (!emit(line, (size_t)n)) {
			dropped++;
			return;
		}
		dropped = 0;
	}
	n = to_journal ? snprintf(line, sizeof(line), "<%d>%s\n", (int)level, text)
		       : snprintf(line, sizeof(line), "echod: %s\n", text);
	if (!emit(line, (size_t)n))
		dropped++;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char text[LOG_TEXT_MAX];
	va_list ap;
	int saved = errno;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_line(level, text);
	errno = saved;
}

int log_errno(enum log_level level, int r, const char *fmt, ...)
{
	char text[LOG_TEXT_MAX];
	va_list ap;
	int saved = errno;
	int n;

	if (!log_enabled(level))
		return r;
	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(text))
		snprintf(text + n, sizeof(text) - (size_t)n, ": %s", strerror(r < 0 ? -r : r));
	log_line(level, text);
	errno = saved;
	return r;
}
