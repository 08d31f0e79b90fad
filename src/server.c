#include "server.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "acceptor.h"
#include "build-config.h"
#include "conn.h"
#include "datagram.h"
#include "guard.h"
#include "listener.h"
#include "listener_set.h"
#include "log.h"
#include "loop.h"
#include "metrics_server.h"
#include "notify.h"
#include "stats.h"
#include "util.h"

#define STATUS_INTERVAL_MS 1000

static struct {
	struct loop loop;
	struct stats stats;
	struct listener *listeners;
	struct listener *metrics; /* the `metrics` listener echod opened, or NULL */
	bool activated;
	const struct options *opts;
	struct config cfg;
	size_t fd_limit;
	int sigfd;
	struct io sig_io;
	struct timer status_timer, watchdog_timer, shutdown_timer, signal_retry;
	bool stopping;
	char last_status[256];
} server;

static uint64_t wall_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void stop_if_drained(void)
{
	if (server.stopping && server.stats.current == 0)
		server.loop.stop = true;
}

static void conn_closed(void)
{
	acceptor_conn_closed();
	stop_if_drained();
}

/* Settings that apply to new connections and to datagrams. */
static int apply_settings(const struct config *cfg)
{
	struct policy *p = policy_new(cfg);
	int r;

	if (!p)
		return -ENOMEM;
	/* Sized for every connection the fd limit allows, whatever
	 * max_connections says now: a reload may raise it. */
	r = guard_configure(cfg, server.fd_limit);
	if (r < 0) {
		policy_unref(p);
		return r;
	}
	conn_set_policy(p);
	policy_unref(p);
	acceptor_set_limits(cfg->max_connections);
	datagram_set_transform(cfg->transform);
	log_set_level(cfg->log_level);
	return 0;
}

/* The ports of echod's own UDP sockets, for the echo-loop filter. */
static void update_udp_ports(void)
{
	uint16_t ports[CONFIG_MAX_LISTEN];
	size_t n = 0;

	for (struct listener *l = server.listeners; l && n < CONFIG_MAX_LISTEN; l = l->next)
		if (l->kind == LISTEN_UDP && l->port)
			ports[n++] = l->port;
	guard_set_udp_ports(ports, n);
}

/* Every periodic timer re-arms itself through here. The heap grows only
 * when a timer is armed for the first time, so a failure is a failure
 * to allocate: said once, and that timer stops. */
static void rearm(struct timer *t, uint64_t delay_ms, const char *what)
{
	int r = loop_timer_in(&server.loop, t, delay_ms);

	if (r < 0)
		log_errno(LOG_LEVEL_ERR, r, "cannot arm the %s timer", what);
}

/* "3 connections, 10 served, 4096 bytes echoed", then the refusals and
 * drops that happened, by reason: "; refused: acl 2, udp_rate 7". */
static void format_status(char *buf, size_t size)
{
	const struct stats *st = &server.stats;
	int n = snprintf(buf, size, "%llu connections, %llu served, %llu bytes echoed",
			 (unsigned long long)st->current, (unsigned long long)st->total,
			 (unsigned long long)st->bytes);
	const char *lead = "; refused: ";

	for (int r = 0; r < REFUSE_N && n > 0 && (size_t)n < size; r++) {
		if (!st->refused[r])
			continue;
		n += snprintf(buf + n, size - (size_t)n, "%s%s %llu", lead,
			      refusal_reason_name((enum refusal_reason)r),
			      (unsigned long long)st->refused[r]);
		lead = ", ";
	}
}

static void status_tick(struct timer *t)
{
	char text[sizeof(server.last_status)];

	format_status(text, sizeof(text));
	if (strcmp(text, server.last_status) != 0) {
		notify_status(text);
		memcpy(server.last_status, text, sizeof(text));
	}
	rearm(t, STATUS_INTERVAL_MS, "status");
}

static void watchdog_tick(struct timer *t)
{
	uint64_t half_ms = notify_watchdog_usec() / 2000;

	/* Sent from the loop itself: a hung loop stops feeding it. */
	notify_watchdog();
	rearm(t, half_ms ? half_ms : 1, "watchdog");
}

static void shutdown_timeout(struct timer *t)
{
	log_warning("shutdown timeout: closing %llu connections with data still pending",
		    (unsigned long long)server.stats.current);
	conn_close_all();
	server.loop.stop = true;
}

/* ---- the metrics endpoint ---- */

static int serve_metrics(struct listener *l)
{
	int r = metrics_server_start(l);

	if (r < 0)
		return r; /* logged */
	log_info("serving metrics on %s (%s)", l->name, address_kind_name(l->kind));
	return 0;
}

static const struct listener_hooks metrics_hooks = {
	.start = serve_metrics,
	.stop = metrics_server_stop,
};

/* A socket passed by the service manager under the name `metrics` takes
 * the place of the `metrics` key. */
static bool metrics_activated(void)
{
	for (struct listener *l = server.listeners; l; l = l->next)
		if (l->metrics)
			return true;
	return false;
}

/* ---- listeners ---- */

static int serve_listener(struct listener *l)
{
	if (l->metrics)
		return serve_metrics(l);
	int r = l->kind == LISTEN_UDP ? datagram_start(l) : acceptor_start(l);

	if (r < 0)
		return log_errno(LOG_LEVEL_ERR, r, "cannot watch %s", l->name);
	log_info("listening on %s (%s)", l->name, address_kind_name(l->kind));
	return 0;
}

static void unserve_listener(struct listener *l)
{
	if (l->metrics)
		metrics_server_stop(l);
	else if (l->kind == LISTEN_UDP)
		datagram_stop(l);
	else
		acceptor_stop(l);
}

static const struct listener_hooks hooks = {
	.start = serve_listener,
	.stop = unserve_listener,
};

static void begin_shutdown(int sig)
{
	int r;

	if (server.stopping) {
		log_notice("%s again: closing every connection now", strsignal(sig));
		conn_close_all();
		server.loop.stop = true;
		return;
	}
	server.stopping = true;
	notify_stopping();
	log_notice("shutting down (%llu connections open)", (unsigned long long)server.stats.current);
	listener_set_free(&server.metrics, &metrics_hooks);
	listener_set_free(&server.listeners, &hooks);
	conn_drain_all();
	stop_if_drained();
	if (server.loop.stop)
		return;
	r = loop_timer_in(&server.loop, &server.shutdown_timer, server.cfg.shutdown_timeout_ms);
	if (r < 0) {
		/* Without its timer the drain would have no bound. */
		log_errno(LOG_LEVEL_ERR, r, "cannot arm the shutdown timer; closing every connection now");
		conn_close_all();
		server.loop.stop = true;
	}
}

/* unix_group: a number, or a name looked up now (at start and reload). */
static int resolve_group(const char *text, gid_t *gid)
{
	char *end;
	unsigned long v;

	*gid = (gid_t)-1;
	if (!text[0])
		return 0;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (*end == '\0' && errno == 0 && v < (gid_t)-1) {
		*gid = (gid_t)v;
		return 0;
	}
	struct group *g = getgrnam(text);
	if (!g) {
		log_err("unix_group: no such group '%s'", text);
		return -ENOENT;
	}
	*gid = g->gr_gid;
	return 0;
}

static int listen_options_of(const struct config *cfg, struct listen_options *o)
{
	*o = (struct listen_options){
		.backlog = (int)cfg->backlog,
		.reuse_port = cfg->reuse_port,
		.free_bind = cfg->free_bind,
		.keepalive_s = cfg->tcp_keepalive_s,
		.defer_accept_s = cfg->defer_accept_s,
		.unix_mode = (mode_t)cfg->unix_mode,
	};
	return resolve_group(cfg->unix_group, &o->unix_gid);
}

/* The `listen` values of cfg as the array of strings listener_set takes. */
static size_t listen_texts(const struct config *cfg, const char **texts)
{
	for (size_t i = 0; i < cfg->n_listen; i++)
		texts[i] = cfg->listen[i];
	return cfg->n_listen;
}

/* Opens cfg's `metrics` address onto *out (not served yet); nothing when
 * it is off or a passed socket serves the metrics. 0 or -errno (logged). */
static int open_metrics(const struct config *cfg, struct listener **out)
{
	const char *text = cfg->metrics;
	struct listen_options o;
	int r;

	if (!text[0])
		return 0;
	if (metrics_activated()) {
		log_info("using the metrics socket passed by the service manager; ignoring 'metrics'");
		return 0;
	}
	r = listen_options_of(cfg, &o);
	if (r < 0)
		return r;
	return listener_set_open(out, &text, 1, &o);
}

/* Serves what open_metrics() opened, in place of the current one. */
static void swap_metrics(struct listener *fresh)
{
	listener_set_free(&server.metrics, &metrics_hooks);
	server.metrics = fresh;
	if (fresh && serve_metrics(fresh) < 0)
		listener_set_free(&server.metrics, &metrics_hooks);
}

static bool metrics_changed(const struct config *cfg)
{
	return strcmp(cfg->metrics, server.metrics ? server.metrics->config_text : "") != 0 &&
	       !metrics_activated();
}

static void reload(void)
{
	struct config *cfg = malloc(sizeof(*cfg));
	char err[CONFIG_ERROR_MAX + 64];
	struct listener *metrics = NULL;
	bool new_metrics = false;

	notify_reloading();
	if (!cfg) {
		log_err("reload: out of memory");
		goto done;
	}
	if (options_load_config(server.opts, cfg, err, sizeof(err)) < 0) {
		log_err("%s", err);
		log_warning("reload failed, keeping the current configuration");
		goto done;
	}
	/* A new metrics address is opened first and served last: if it or
	 * a `listen` address fails, nothing has changed. */
	new_metrics = metrics_changed(cfg);
	if (new_metrics && open_metrics(cfg, &metrics) < 0) {
		log_warning("reload failed, keeping the current configuration");
		goto done;
	}
	if (!server.activated) {
		const char *texts[CONFIG_MAX_LISTEN];
		size_t n = listen_texts(cfg, texts);
		struct listen_options o;
		if (listen_options_of(cfg, &o) < 0 ||
		    listener_set_reconcile(&server.listeners, texts, n, &o, &hooks) < 0) {
			listener_set_free(&metrics, NULL);
			log_warning("reload failed, keeping the current configuration");
			goto done;
		}
		update_udp_ports();
	}
	if (new_metrics) {
		if (server.metrics)
			log_info("no longer serving metrics on %s", server.metrics->name);
		swap_metrics(metrics);
	}
	if (apply_settings(cfg) < 0) {
		log_err("reload: out of memory");
		goto done;
	}
	server.cfg = *cfg;
	log_notice("configuration reloaded from %s", server.opts->config_path);
	{
		/* The lists apply to the connections already open, too. */
		size_t n = conn_recheck_acl();
		if (n)
			log_notice("closed %zu connection(s) the new allow/deny lists refuse", n);
	}
done:
	free(cfg);
	notify_ready();
}

static void log_stats(void)
{
	const struct stats *st = &server.stats;
	char reasons[512];
	size_t n = 0;

	/* Every reason, also at zero, so that the line parses the same way
	 * whatever happened: "refused: acl 0, ...; dropped: udp_loop 0, ...". */
	for (int r = 0; r < REFUSE_N; r++) {
		const char *lead = r == 0 ? "; refused: " : r == REFUSE_UDP_FIRST ? "; dropped: " : ", ";
		n += (size_t)snprintf(reasons + n, sizeof(reasons) - n, "%s%s %llu", lead,
				      refusal_reason_name((enum refusal_reason)r),
				      (unsigned long long)st->refused[r]);
	}
	log_notice("stats: %llu current, %llu total connections, %llu bytes echoed, "
		   "%llu accept waits, %llu datagrams%s",
		   (unsigned long long)st->current, (unsigned long long)st->total,
		   (unsigned long long)st->bytes, (unsigned long long)st->accept_waits,
		   (unsigned long long)st->udp_datagrams, reasons);
}

/* Signals to read: the signalfd is edge-triggered, so a read that fails
 * (not for want of signals) would leave a SIGTERM pending with no edge
 * to come. It is read again a little later, never in a busy loop. */
#define SIGNAL_RETRY_MS 100

static void signal_io(struct io *io, uint32_t events)
{
	struct signalfd_siginfo si;
	ssize_t n;

	while ((n = read(server.sigfd, &si, sizeof(si))) == (ssize_t)sizeof(si) ||
	       (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			begin_shutdown((int)si.ssi_signo);
			break;
		case SIGHUP:
			if (!server.stopping)
				reload();
			break;
		case SIGUSR1:
			log_stats();
			break;
		}
	}
	if (n < 0 && errno != EAGAIN) {
		log_errno(LOG_LEVEL_ERR, -errno, "cannot read the pending signals; again in %d ms",
			  SIGNAL_RETRY_MS);
		rearm(&server.signal_retry, SIGNAL_RETRY_MS, "signal");
	}
}

static void signal_retry(struct timer *t)
{
	signal_io(&server.sig_io, EPOLLIN);
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
	server.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (server.sigfd < 0)
		return -errno;
	server.sig_io.fn = signal_io;
	return loop_add(&server.loop, server.sigfd, EPOLLIN | EPOLLET, &server.sig_io);
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

static int open_listeners(void)
{
	struct listen_options o;
	const char *texts[CONFIG_MAX_LISTEN];
	int n = listen_options_of(&server.cfg, &o);

	if (n < 0)
		return n;
	n = listener_adopt_all(&server.listeners, &o);
	if (n < 0)
		return n;
	if (n > 0) {
		server.activated = true;
		log_info("using %d socket(s) passed by the service manager; ignoring 'listen'", n);
		return 0;
	}
	return listener_set_open(&server.listeners, texts, listen_texts(&server.cfg, texts), &o);
}

int server_run(const struct options *opts, const struct config *cfg)
{
	int r, status = 1;

	memset(&server, 0, sizeof(server));
	server.opts = opts;
	server.cfg = *cfg;
	server.sigfd = -1;
	server.status_timer.fn = status_tick;
	server.watchdog_timer.fn = watchdog_tick;
	server.shutdown_timer.fn = shutdown_timeout;
	server.signal_retry.fn = signal_retry;
	server.stats.start_time_ms = wall_clock_ms();
	notify_init();

	r = loop_init(&server.loop);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "cannot create the event loop");
		return 1;
	}
	server.fd_limit = raise_fd_limit();
	guard_init(&server.stats);
	r = conn_table_init(&server.loop, server.fd_limit, &server.stats, conn_closed);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "cannot allocate the connection table");
		goto out;
	}
	acceptor_init(&server.loop, &server.stats, &server.listeners);
	datagram_init(&server.loop, &server.stats);
	metrics_server_init(&server.loop, &server.stats, ECHOD_VERSION);
	r = apply_settings(&server.cfg);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "cannot apply the settings");
		goto out;
	}
	r = setup_signals();
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "cannot set up signal handling");
		goto out;
	}
	if (open_listeners() < 0)
		goto out;
	if (!server.listeners) {
		log_err("nothing to listen on");
		goto out;
	}
	if (open_metrics(&server.cfg, &server.metrics) < 0)
		goto out;
	for (struct listener *l = server.listeners; l; l = l->next)
		if (serve_listener(l) < 0)
			goto out;
	update_udp_ports();
	if (server.metrics && serve_metrics(server.metrics) < 0)
		goto out;

	/* Every listener is in the loop: connections will be served. */
	notify_ready();
	log_info("ready");
	if (notify_enabled())
		status_tick(&server.status_timer);
	if (notify_watchdog_usec())
		watchdog_tick(&server.watchdog_timer);

	r = loop_run(&server.loop);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "event loop failed");
		goto out;
	}
	status = 0;
	log_info("exiting");
out:
	/* Never started listeners are stopped too: stopping is idempotent. */
	listener_set_free(&server.metrics, &metrics_hooks);
	listener_set_free(&server.listeners, &hooks);
	metrics_server_free();
	server.stopping = false;
	conn_table_free();
	datagram_free();
	guard_free();
	if (server.sigfd >= 0)
		close(server.sigfd);
	loop_close(&server.loop);
	return status;
}
