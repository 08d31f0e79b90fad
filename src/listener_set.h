/* The set of listeners echod serves, as a list: opening every `listen`
 * address, and applying a new list on reload, all or nothing. Serving a
 * listener (putting it in the loop) is the caller's, through hooks, so
 * that this file knows sockets only. */
#ifndef ECHOD_LISTENER_SET_H
#define ECHOD_LISTENER_SET_H

#include <stddef.h>

#include "listener.h"

struct listener_hooks {
	int (*start)(struct listener *l); /* 0 or -errno (logged) */
	void (*stop)(struct listener *l);
};

/* Opens a listener for each of texts[0..n) onto *set. 0, or the first
 * failure's -errno (logged; what was opened stays on *set). */
int listener_set_open(struct listener **set, const char *const *texts, size_t n,
		      const struct listen_options *o);

/* Opens what texts add, keeps what they keep (with the new backlog),
 * stops and closes what they drop; new listeners are started with
 * h->start. All or nothing: if one address fails to open, nothing
 * changes and its -errno is returned (logged). */
int listener_set_reconcile(struct listener **set, const char *const *texts, size_t n,
			   const struct listen_options *o, const struct listener_hooks *h);

/* Stops (h may be NULL: never started) and frees every listener. */
void listener_set_free(struct listener **set, const struct listener_hooks *h);

#endif
