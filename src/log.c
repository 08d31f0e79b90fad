#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

enum log_level log_max_level = LOG_LEVEL_INFO;
static int to_journal;

void log_init(void)
{
	/* JOURNAL_STREAM is "DEV:INO" of the stream systemd connected; it is
	 * inherited by children, so compare it with what stderr really is. */
	const char *e = getenv("JOURNAL_STREAM");
	struct stat st;
	unsigned long long dev, ino;

	to_journal = 0;
	if (e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 &&
	    fstat(STDERR_FILENO, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino)
		to_journal = 1;
}

void log_set_level(enum log_level level)
{
	log_max_level = level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int saved = errno;
	int n;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	/* One fprintf, so a line is one write(2) and never interleaves. */
	if (to_journal)
		fprintf(stderr, "<%d>%s\n", (int)level, line);
	else
		fprintf(stderr, "echod: %s\n", line);
	errno = saved;
}
