/* Levelled logging to stderr; journal-aware (sd-daemon priority prefixes).
 * Never blocks: what cannot be written at once is dropped and counted. */
#ifndef ECHOD_LOG_H
#define ECHOD_LOG_H

#include <stdarg.h>

/* syslog(3) priorities, as sd-daemon(3) prefixes expect them. */
enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/* Decide once whether stderr is the journal (JOURNAL_STREAM matches it). */
void log_init(void);
void log_set_level(enum log_level level);

/* Cheap test for the per-connection debug path: no formatting when off. */
extern enum log_level log_max_level;
#define log_enabled(level) ((level) <= log_max_level)

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Logs the message with ": strerror(-r)" appended and returns r (a
 * -errno), so that an error path is one statement:
 *   return log_errno(LOG_LEVEL_ERR, r, "cannot watch %s", name); */
int log_errno(enum log_level level, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                          \
	do {                                                    \
		if (log_enabled(LOG_LEVEL_DEBUG))               \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);  \
	} while (0)

#endif
