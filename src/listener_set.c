#include "listener_set.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

int listener_set_open(struct listener **set, const char *const *texts, size_t n,
		      const struct listen_options *o)
{
	for (size_t i = 0; i < n; i++) {
		struct listener *l;
		int r = listener_open(texts[i], o, &l);
		if (r < 0)
			return r;
		l->next = *set;
		*set = l;
	}
	return 0;
}

static bool lists(const char *const *texts, size_t n, const char *text)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(texts[i], text) == 0)
			return true;
	return false;
}

static bool has(const struct listener *set, const char *text)
{
	for (; set; set = set->next)
		if (strcmp(set->config_text, text) == 0)
			return true;
	return false;
}

int listener_set_reconcile(struct listener **set, const char *const *texts, size_t n,
			   const struct listen_options *o, const struct listener_hooks *h)
{
	struct listener *fresh = NULL, *kept = NULL, *l;

	for (size_t i = 0; i < n; i++) {
		if (has(*set, texts[i]) || has(fresh, texts[i]))
			continue;
		int r = listener_set_open(&fresh, &texts[i], 1, o);
		if (r < 0) {
			listener_set_free(&fresh, NULL);
			return r;
		}
	}
	while ((l = *set)) {
		*set = l->next;
		if (!lists(texts, n, l->config_text)) {
			log_info("no longer listening on %s (%s)", l->name, address_kind_name(l->kind));
			h->stop(l);
			listener_free(l);
			continue;
		}
		/* listen(2) on a listening socket just updates its backlog. */
		if (l->kind != LISTEN_UDP && listen(l->fd, o->backlog) < 0)
			log_errno(LOG_LEVEL_WARNING, -errno, "cannot change the backlog of %s", l->name);
		l->next = kept;
		kept = l;
	}
	while ((l = fresh)) {
		fresh = l->next;
		l->next = kept;
		kept = l;
		h->start(l); /* a failure is logged; the listener is closed with the rest */
	}
	*set = kept;
	return 0;
}

void listener_set_free(struct listener **set, const struct listener_hooks *h)
{
	struct listener *l;

	while ((l = *set)) {
		*set = l->next;
		if (h)
			h->stop(l);
		listener_free(l);
	}
}
