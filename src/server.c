#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "conn.h"
#include "datagram.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "stats.h"
#include "util.h"

#define STATUS_INTERVAL_MS 1000

static struct {
	struct loop loop;
	struct stats stats;
	struct listener *listeners;
	bool activated;
	const struct options *opts;
	struct config cfg;
	int sigfd;
	struct io sig_io;
	struct timer status_timer, watchdog_timer, shutdown_timer;
	bool stopping;
	char last_status[128];
} S;

static void stop_if_drained(void)
{
	if (S.stopping && S.stats.current == 0)
		S.loop.stop = true;
}

static void conn_closed(void)
{
	acceptor_conn_closed();
	stop_if_drained();
}

/* Settings that apply to new connections and to datagrams. */
static int apply_settings(const struct config *cfg)
{
	struct policy *p = policy_new((uint32_t)cfg->buffer_size, (int)cfg->transform, cfg->idle_timeout_ms);

	if (!p)
		return -ENOMEM;
	conn_set_policy(p);
	policy_unref(p);
	acceptor_set_limits(cfg->max_connections, (int)cfg->transform);
	log_set_level((enum log_level)cfg->log_level);
	return 0;
}

static void format_status(char *buf, size_t size)
{
	snprintf(buf, size, "%llu connections, %llu served, %llu bytes echoed",
		 (unsigned long long)S.stats.current, (unsigned long long)S.stats.total,
		 (unsigned long long)S.stats.bytes);
}

static void status_tick(struct timer *t)
{
	char text[sizeof(S.last_status)];

	format_status(text, sizeof(text));
	if (strcmp(text, S.last_status) != 0) {
		notify_status(text);
		memcpy(S.last_status, text, sizeof(text));
	}
	loop_timer_in(&S.loop, t, STATUS_INTERVAL_MS);
}

static void watchdog_tick(struct timer *t)
{
	uint64_t half_ms = notify_watchdog_usec() / 2000;

	/* Sent from the loop itself: a hung loop stops feeding it. */
	notify_watchdog();
	loop_timer_in(&S.loop, t, half_ms ? half_ms : 1);
}

static void shutdown_timeout(struct timer *t)
{
	log_warning("shutdown timeout: closing %llu connections with data still pending",
		    (unsigned long long)S.stats.current);
	conn_close_all();
	S.loop.stop = true;
}

static void free_listeners(struct listener *l)
{
	while (l) {
		struct listener *next = l->next;
		acceptor_stop(l);
		listener_free(l);
		l = next;
	}
}

static void begin_shutdown(int sig)
{
	if (S.stopping) {
		log_notice("%s again: closing every connection now", strsignal(sig));
		conn_close_all();
		S.loop.stop = true;
		return;
	}
	S.stopping = true;
	notify_stopping();
	log_notice("shutting down (%llu connections open)", (unsigned long long)S.stats.current);
	free_listeners(S.listeners);
	S.listeners = NULL;
	conn_drain_all();
	stop_if_drained();
	if (!S.loop.stop)
		loop_timer_in(&S.loop, &S.shutdown_timer, S.cfg.shutdown_timeout_ms);
}

static struct listen_options listen_options_of(const struct config *cfg)
{
	return (struct listen_options){
		.backlog = (int)cfg->backlog,
		.reuse_port = cfg->reuse_port,
		.keepalive_s = 60,
	};
}

static bool config_lists(const struct config *cfg, const char *text)
{
	for (size_t i = 0; i < cfg->n_listen; i++)
		if (strcmp(cfg->listen[i], text) == 0)
			return true;
	return false;
}

static struct listener *find_listener(struct listener *list, const char *text)
{
	for (; list; list = list->next)
		if (strcmp(list->config_text, text) == 0)
			return list;
	return NULL;
}

static void announce(const struct listener *l)
{
	log_info("listening on %s (%s)", l->name, address_kind_name(l->kind));
}

/* Opens what the new `listen` list adds, keeps what it keeps, closes what
 * it drops. All or nothing: if one address fails, nothing changes. */
static int reopen_listeners(const struct config *cfg, char *err, size_t errlen)
{
	struct listen_options o = listen_options_of(cfg);
	struct listener *fresh = NULL, *next = NULL, *l;

	for (size_t i = 0; i < cfg->n_listen; i++) {
		if (find_listener(S.listeners, cfg->listen[i]))
			continue;
		l = listener_open(cfg->listen[i], &o, err, errlen);
		if (!l) {
			free_listeners(fresh);
			return -1;
		}
		l->next = fresh;
		fresh = l;
	}
	while ((l = S.listeners)) {
		S.listeners = l->next;
		if (!config_lists(cfg, l->config_text)) {
			log_info("no longer listening on %s (%s)", l->name, address_kind_name(l->kind));
			acceptor_stop(l);
			listener_free(l);
			continue;
		}
		/* listen(2) on a listening socket just updates its backlog. */
		if (l->kind != LISTEN_UDP)
			listen(l->fd, (int)cfg->backlog);
		l->next = next;
		next = l;
	}
	while ((l = fresh)) {
		fresh = l->next;
		l->next = next;
		next = l;
		if (acceptor_start(l) < 0)
			log_err("cannot watch %s: %s", l->name, strerror(errno));
		else
			announce(l);
	}
	S.listeners = next;
	return 0;
}

static void reload(void)
{
	struct config *cfg = malloc(sizeof(*cfg));
	char err[CONFIG_ERROR_MAX + 64];

	notify_reloading();
	if (!cfg) {
		log_err("reload: out of memory");
		goto done;
	}
	if (options_load_config(S.opts, cfg, err, sizeof(err)) < 0) {
		log_err("%s", err);
		log_warning("reload failed, keeping the current configuration");
		goto done;
	}
	if (!S.activated && reopen_listeners(cfg, err, sizeof(err)) < 0) {
		log_err("%s", err);
		log_warning("reload failed, keeping the current configuration");
		goto done;
	}
	if (apply_settings(cfg) < 0) {
		log_err("reload: out of memory");
		goto done;
	}
	S.cfg = *cfg;
	log_notice("configuration reloaded from %s", S.opts->config_path);
done:
	free(cfg);
	notify_ready();
}

static void log_stats(void)
{
	log_notice("stats: %llu current, %llu total connections, %llu bytes echoed, %llu refused at limit",
		   (unsigned long long)S.stats.current, (unsigned long long)S.stats.total,
		   (unsigned long long)S.stats.bytes, (unsigned long long)S.stats.refused);
}

static void signal_io(struct io *io, uint32_t events)
{
	struct signalfd_siginfo si;

	while (read(S.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			begin_shutdown((int)si.ssi_signo);
			break;
		case SIGHUP:
			if (!S.stopping)
				reload();
			break;
		case SIGUSR1:
			log_stats();
			break;
		}
	}
}

static int setup_signals(void)
{
	sigset_t set;

	/* A vanished client must cost one connection, never the daemon. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	S.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (S.sigfd < 0)
		return -errno;
	S.sig_io.fn = signal_io;
	return loop_add(&S.loop, S.sigfd, EPOLLIN | EPOLLET, &S.sig_io);
}

/* Serving many clients needs many fds: take the hard limit. */
static size_t raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	/* An unlimited or huge limit must not size a huge table. */
	return rl.rlim_cur > (1u << 24) ? (1u << 24) : (size_t)rl.rlim_cur;
}

static int open_listeners(char *err, size_t errlen)
{
	struct listen_options o = listen_options_of(&S.cfg);
	int n = listener_adopt_all(&S.listeners, &o, err, errlen);

	if (n < 0)
		return -1;
	if (n > 0) {
		S.activated = true;
		log_info("using %d socket(s) passed by the service manager; ignoring 'listen'", n);
		return 0;
	}
	for (size_t i = 0; i < S.cfg.n_listen; i++) {
		struct listener *l = listener_open(S.cfg.listen[i], &o, err, errlen);
		if (!l)
			return -1;
		l->next = S.listeners;
		S.listeners = l;
	}
	return 0;
}

int server_run(const struct options *opts, const struct config *cfg)
{
	char err[CONFIG_ERROR_MAX + 64];
	int r, status = 1;

	memset(&S, 0, sizeof(S));
	S.opts = opts;
	S.cfg = *cfg;
	S.sigfd = -1;
	S.status_timer.fn = status_tick;
	S.watchdog_timer.fn = watchdog_tick;
	S.shutdown_timer.fn = shutdown_timeout;
	notify_init();

	r = loop_init(&S.loop);
	if (r < 0) {
		log_err("cannot create the event loop: %s", strerror(-r));
		return 1;
	}
	r = conn_table_init(&S.loop, raise_fd_limit(), &S.stats, conn_closed);
	if (r < 0) {
		log_err("cannot allocate the connection table: %s", strerror(-r));
		goto out;
	}
	acceptor_init(&S.loop, &S.stats, &S.listeners);
	datagram_init(&S.loop, &S.stats);
	if (apply_settings(&S.cfg) < 0 || setup_signals() < 0) {
		log_err("cannot set up: %s", strerror(errno));
		goto out;
	}
	if (open_listeners(err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	if (!S.listeners) {
		log_err("nothing to listen on");
		goto out;
	}
	for (struct listener *l = S.listeners; l; l = l->next) {
		if (acceptor_start(l) < 0) {
			log_err("cannot watch %s: %s", l->name, strerror(errno));
			goto out;
		}
		announce(l);
	}

	/* Every listener is in the loop: connections will be served. */
	notify_ready();
	log_info("ready");
	if (notify_enabled())
		status_tick(&S.status_timer);
	if (notify_watchdog_usec())
		watchdog_tick(&S.watchdog_timer);

	r = loop_run(&S.loop);
	if (r < 0) {
		log_err("event loop failed: %s", strerror(-r));
		goto out;
	}
	status = 0;
	log_info("exiting");
out:
	free_listeners(S.listeners);
	S.listeners = NULL;
	S.stopping = false;
	conn_table_free();
	datagram_free();
	if (S.sigfd >= 0)
		close(S.sigfd);
	loop_close(&S.loop);
	return status;
}
