#include "log_limit.h"

bool log_limiter_allow_every(struct log_limiter *l, uint64_t now_ms, uint64_t interval_ms,
			     uint64_t *suppressed_out)
{
	/* now_ms < last_ms would wrap the subtraction into "long ago" and let
	 * every event through; compare without subtracting from now. */
	if (l->armed && (now_ms < l->last_ms || now_ms - l->last_ms < interval_ms)) {
		/* Saturates rather than wraps, however long the flood. */
		if (l->suppressed != UINT64_MAX)
			l->suppressed++;
		return false;
	}
	if (suppressed_out)
		*suppressed_out = l->suppressed;
	l->suppressed = 0;
	l->last_ms = now_ms;
	l->armed = true;
	return true;
}

bool log_limiter_allow(struct log_limiter *l, uint64_t now_ms, uint64_t *suppressed_out)
{
	return log_limiter_allow_every(l, now_ms, LOG_LIMIT_INTERVAL_MS, suppressed_out);
}
