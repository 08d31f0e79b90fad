/* Counters the daemon reports (SIGUSR1, STATUS=). */
#ifndef ECHOD_STATS_H
#define ECHOD_STATS_H

#include <stdint.h>

struct stats {
	uint64_t current;      /* open stream connections */
	uint64_t total;        /* stream connections accepted since start */
	uint64_t bytes;        /* bytes echoed, stream and datagram */
	uint64_t refused;      /* times a waiting client could not be accepted: limit reached */
};

#endif
