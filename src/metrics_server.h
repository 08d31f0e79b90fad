/* The metrics endpoint: GET /metrics on a stream listener (TCP or Unix),
 * served from the daemon's own event loop, one short request per
 * connection. Scrapers are not echo connections: they are not counted,
 * have their own small fixed table, and cannot hold more than it. */
#ifndef ECHOD_METRICS_SERVER_H
#define ECHOD_METRICS_SERVER_H

#include "listener.h"
#include "loop.h"
#include "stats.h"

/* Scrapers served at once. Beyond that, the metrics listeners leave the
 * loop until one ends: further scrapers wait in the kernel's backlog
 * (bounded by `backlog`) and are served in turn; none is refused. */
#define METRICS_SCRAPERS_MAX 8
/* Metrics listeners served at once (several only under socket
 * activation, e.g. one for IPv4 and one for IPv6). */
#define METRICS_LISTENERS_MAX 8
/* From accept to close: reading the request, answering, and waiting for
 * the scraper's end of the connection. A slower scraper is closed. */
#define METRICS_DEADLINE_MS 3000

/* stats is read at each scrape; version is build_info's label (kept, not
 * copied). */
void metrics_server_init(struct loop *loop, const struct stats *stats, const char *version);

/* Serves a stream listener: 0, or -errno (logged, naming the listener). */
int metrics_server_start(struct listener *l);
/* Stops accepting on it (idempotent, also for one never started).
 * Scrapers it accepted are served to their end. */
void metrics_server_stop(struct listener *l);

/* Closes every scraper, at exit (the listeners are the caller's). */
void metrics_server_free(void);

#endif
