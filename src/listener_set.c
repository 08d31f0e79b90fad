#include "listener_set.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
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

static bool has(const struct listener *set, const char *text)
{
	for (; set; set = set->next)
		if (strcmp(set->config_text, text) == 0)
			return true;
	return false;
}

/* The kept listener whose socket text names, by spelling or by address. */
static struct listener *kept_for(struct listener *set, const char *text)
{
	for (struct listener *l = set; l; l = l->next)
		if (strcmp(l->config_text, text) == 0)
			return l;
	for (struct listener *l = set; l; l = l->next)
		if (listener_same_socket(l, text))
			return l;
	return NULL;
}

int listener_set_reconcile(struct listener **set, const char *const *texts, size_t n,
			   const struct listen_options *o, const struct listener_hooks *h)
{
	struct listener *fresh = NULL, *kept = NULL, *l;
	struct listener *keep[CONFIG_MAX_LISTEN] = { NULL };

	/* Which socket each text keeps; the others are opened now, before
	 * anything changes, so that a failure leaves all as it was. */
	for (size_t i = 0; i < n && i < CONFIG_MAX_LISTEN; i++) {
		keep[i] = kept_for(*set, texts[i]);
		if (keep[i] || has(fresh, texts[i]))
			continue;
		int r = listener_set_open(&fresh, &texts[i], 1, o);
		if (r < 0) {
			listener_set_free(&fresh, NULL);
			return r;
		}
	}
	while ((l = *set)) {
		size_t i;
		*set = l->next;
		for (i = 0; i < n && keep[i] != l; i++)
			;
		if (i == n) {
			log_info("no longer listening on %s (%s)", l->name, address_kind_name(l->kind));
			h->stop(l);
			listener_free(l);
			continue;
		}
		listener_update(l, texts[i], o);
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
