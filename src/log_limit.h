/* Log lines limited in rate: a flood of refused peers must not flood the
 * journal, yet the operator must learn how much was not said. The first
 * event is logged; then at most one line per interval, which carries the
 * number of events suppressed since the line before. One limiter per
 * reason (see reasons.h), so one noisy reason does not hide the others.
 * Pure: the caller passes the clock (the loop's now_ms) and logs. */
#ifndef ECHOD_LOG_LIMIT_H
#define ECHOD_LOG_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* The contract's interval: one refusal line per reason every 10 seconds. */
#define LOG_LIMIT_INTERVAL_MS 10000u

/* Zero-initialised is ready for use (not armed: the first event logs). */
struct log_limiter {
	uint64_t last_ms;    /* when the last line was allowed */
	uint64_t suppressed; /* events since then that were not logged */
	bool armed;          /* a line has been allowed at least once */
};

/* Called once per event. True: log a line now, and mention
 * *suppressed_out events not logged since the previous line (0 for the
 * first). False: say nothing; the event is counted for the next line.
 * suppressed_out may be NULL. A clock that stepped back suppresses until
 * it passes the last line again plus the interval. */
bool log_limiter_allow(struct log_limiter *l, uint64_t now_ms, uint64_t *suppressed_out);

/* The same with another interval, for limiters other than refusals. */
bool log_limiter_allow_every(struct log_limiter *l, uint64_t now_ms, uint64_t interval_ms,
			     uint64_t *suppressed_out);

#endif
