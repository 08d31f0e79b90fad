/* Counters the daemon reports (SIGUSR1, STATUS=, the metrics endpoint). */
#ifndef ECHOD_STATS_H
#define ECHOD_STATS_H

#include <stdint.h>

#include "reasons.h"

struct stats {
	uint64_t current;       /* open stream connections */
	uint64_t total;         /* stream connections accepted since start */
	uint64_t bytes;         /* bytes echoed, stream and datagram */
	/* Times accepting paused while clients waited in the backlog: at
	 * max_connections, or out of file descriptors. Pauses, not clients. */
	uint64_t accept_waits;
	uint64_t udp_datagrams; /* datagrams received, answered or not */
	uint64_t refused[REFUSE_N]; /* refusals and drops, by reason */
	uint64_t start_time_ms; /* wall clock at start (CLOCK_REALTIME) */
};

#endif
