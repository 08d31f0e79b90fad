/*
 * echod-bench - load generator and verifier for TCP and Unix echo servers.
 *
 * One thread, one edge-triggered epoll loop. Every socket is registered once
 * with EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, so the per-message path is
 * epoll_wait (amortized), read, compare, writev: no epoll_ctl, no allocation.
 *
 * Modes:
 *   pingpong  N connections, each keeping P messages of S bytes in flight;
 *             latency of every message.
 *   stream    N connections, each writing S-byte chunks as fast as the
 *             socket takes them while reading the echo back.
 *   connect   K slots, each looping: connect, send S bytes, read them back,
 *             close. Latency = socket() to verified echo.
 *   idle      open N connections (one echo each), hold them for the
 *             duration, then one more echo on each, then close.
 *
 * Every byte a connection sends comes from its own pseudo-random stream and
 * every byte echoed back is compared with it (see stream_at()).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "build-config.h"
#include "hist.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define PROG "echod-bench"
#define EXIT_ERRORS 1 /* the run failed or counted errors */
#define EXIT_USAGE 2

#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull

#define MAX_CONNS 1000000u
#define MAX_PIPELINE 65536u
#define MAX_SIZE (64u << 20)
#define MAX_SECONDS 86400.0
#define MAX_SOURCE_ADDRS 250u
#define DEFAULT_SOURCE_ADDRS 16u /* IPv4 loopback: connect mode, many conns */
#define MANY_CONNS 1000u

#define RBUF_SIZE (256u << 10) /* one read buffer for every connection */
#define MAX_WRITE (256u << 10) /* bytes per writev */
#define MAX_EVENTS 4096
#define READ_BUDGET 16  /* reads per wakeup per connection, then requeue */
#define WRITE_BUDGET 4  /* writes per wakeup per connection, then requeue */
#define STREAM_PRIME 1024u /* stream: size of the first (opening) echo */
#define STALL_SCAN_NS (250 * NS_PER_MS)
#define RETRY_NS NS_PER_MS
#define TIMER_TAG UINT64_MAX /* epoll data of the timerfd */

/*
 * The per-connection byte streams. A 4 MiB table is filled once from
 * xorshift64*. A connection's stream is cut into 16 KiB pages; page k of the
 * connection with key K is the table window starting at hash(K, k). So each
 * connection has its own, non-periodic stream, a byte at any position is
 * found in O(1), writes go straight out of the table and a check is a memcmp.
 */
#define PATTERN_BITS 22
#define PATTERN_SIZE ((size_t)1 << PATTERN_BITS)
#define PAGE_BITS 14
#define PAGE_SIZE_ ((size_t)1 << PAGE_BITS)
#define PAGE_MASK_ (PAGE_SIZE_ - 1)
#define MAX_IOV (MAX_WRITE / PAGE_SIZE_ + 2)
#define GOLDEN 0x9e3779b97f4a7c15ull

enum mode { MODE_PINGPONG, MODE_STREAM, MODE_CONNECT, MODE_IDLE };
static const char *const mode_name[] = { "pingpong", "stream", "connect", "idle" };

enum phase { PH_OPEN, PH_WARMUP, PH_MEASURE, PH_HOLD, PH_DRAIN, PH_DONE };

enum cstate {
	C_FREE,       /* no socket */
	C_RETRY,      /* connect() said "try again" (full Unix backlog, no port) */
	C_CONNECTING, /* waiting for the connection to complete */
	C_OPEN,       /* connected */
	C_DEAD,       /* failed; not reopened */
};

struct conn {
	int fd;
	uint8_t state;
	uint8_t primed;   /* first echo verified (pingpong, stream, idle) */
	uint8_t pending;  /* counted in g.opening */
	uint8_t wblocked; /* a write found the socket full: wait for EPOLLOUT */
	uint8_t rmore;    /* the read budget ran out: data may be waiting */
	uint8_t queued;   /* on the run queue */
	uint8_t stalled;  /* already counted as stalled */
	uint8_t retrying; /* on the retry queue */
	uint64_t key;     /* selects this connection's byte stream */
	uint64_t target;  /* stream bytes issued (to be sent) */
	uint64_t sent;    /* stream bytes written */
	uint64_t recvd;   /* stream bytes echoed back and verified */
	uint64_t t_start;    /* socket() of this connection, ns */
	uint64_t t_progress; /* last echoed byte (or connect), ns */
	uint64_t *ts;     /* pingpong: issue time of message m at ts[m % P] */
};

struct counters {
	uint64_t t;
	uint64_t msgs, bytes_rx, bytes_tx, conns_done;
	double cpu; /* seconds of our own CPU time */
};

static struct options {
	enum mode mode;
	const char *target;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned conns;
	unsigned pipeline;
	size_t size;
	double duration, warmup, open_timeout, stall;
	unsigned open_concurrency;
	unsigned source_addrs;
	uint64_t seed;
	int json, quiet, verbose, reset;
} o;

static struct {
	enum phase phase;
	int ep;
	int timer;            /* timerfd for every wake-up that is not I/O */
	uint64_t timer_at;    /* what it is set to (CLOCK_MONOTONIC ns) */
	struct conn *conns;
	uint32_t *runq, *runq_work;
	unsigned runq_n;
	uint32_t *retryq, *retryq_work;
	unsigned retryq_n;
	uint64_t t_last_retry;
	uint64_t serial;      /* connections ever started */
	unsigned next_open;   /* open phase: next slot to open */
	unsigned opening;     /* started, not yet through their first echo */
	unsigned opened;      /* through their first echo */
	unsigned active;      /* connect mode: slots with a connection */
	int measuring;        /* merge latencies into g.total */
	int interrupted;
	int progress;         /* draw the progress line (stdout is a terminal) */
	int progress_drawn;
	uint64_t t_begin, t_opened, t_deadline, t_measure, t_end;
	uint64_t t_next_tick, t_next_scan;
	struct counters m0, m1, tick;
	/* totals */
	uint64_t msgs, bytes_rx, bytes_tx, conns_done;
	uint64_t mismatches, conn_errors, stalled, not_opened, addr_retries;
	unsigned held;
	int first_errno;
	struct hist interval, total;
} g;

static unsigned char *pattern;
static unsigned char rbuf[RBUF_SIZE] __attribute__((aligned(64)));
static struct epoll_event events[MAX_EVENTS];
static volatile sig_atomic_t stop_requested;

/* ---------------------------------------------------------------- utils */

static void usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry '" PROG " --help' for more information.\n", stderr);
	exit(EXIT_USAGE);
}

static void fatal(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_ERRORS);
}

static void progress_clear(void)
{
	if (g.progress_drawn) {
		fputs("\r\033[K", stdout);
		fflush(stdout);
		g.progress_drawn = 0;
	}
}

/* A line on stderr when --verbose (phases, first errors). */
static void note(const char *fmt, ...)
{
	va_list ap;

	if (!o.verbose)
		return;
	progress_clear();
	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* "1,234,567" */
static const char *fmt_count(char *buf, size_t len, uint64_t v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
	size_t i, j = 0;

	for (i = 0; i < (size_t)n && j + 2 < len; i++) {
		if (i > 0 && ((size_t)n - i) % 3 == 0)
			buf[j++] = ',';
		buf[j++] = tmp[i];
	}
	buf[j] = '\0';
	return buf;
}

/* ------------------------------------------------------------- options */

static int digits_only(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static uint64_t parse_uint(const char *opt, const char *s, uint64_t min,
			   uint64_t max)
{
	char *end;
	unsigned long long v;

	if (!(*s >= '0' && *s <= '9'))
		usage_error("invalid value for %s: '%s'", opt, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end != '\0')
		usage_error("invalid value for %s: '%s'", opt, s);
	if (v < min || v > max)
		usage_error("%s must be between %" PRIu64 " and %" PRIu64
			    ", not '%s'", opt, min, max, s);
	return v;
}

/* BYTES, or with suffix K or M (x1024). */
static size_t parse_size(const char *opt, const char *s, size_t min, size_t max)
{
	char *end;
	unsigned long long v;
	unsigned long long mult = 1;

	if (!(*s >= '0' && *s <= '9'))
		usage_error("invalid size for %s: '%s'", opt, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		usage_error("invalid size for %s: '%s'", opt, s);
	if (*end == 'K' || *end == 'k')
		mult = 1024, end++;
	else if (*end == 'M' || *end == 'm')
		mult = 1024 * 1024, end++;
	if (*end != '\0' || v > max / mult)
		usage_error("invalid size for %s: '%s' (at most %zu)", opt, s, max);
	v *= mult;
	if (v < min || v > max)
		usage_error("%s must be between %zu and %zu bytes, not '%s'", opt,
			    min, max, s);
	return (size_t)v;
}

/* SECONDS (decimals allowed), or with suffix ms, s or min. */
static double parse_duration(const char *opt, const char *s, double min)
{
	char *end;
	double v;

	if (!((*s >= '0' && *s <= '9') || *s == '.'))
		usage_error("invalid duration for %s: '%s'", opt, s);
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v))
		usage_error("invalid duration for %s: '%s'", opt, s);
	if (strcmp(end, "ms") == 0)
		v /= 1000.0;
	else if (strcmp(end, "min") == 0)
		v *= 60.0;
	else if (*end != '\0' && strcmp(end, "s") != 0)
		usage_error("invalid duration for %s: '%s' (use a number of "
			    "seconds, or a suffix ms, s or min)", opt, s);
	if (v < min || v > MAX_SECONDS)
		usage_error("%s must be between %g s and %g s, not '%s'", opt, min,
			    MAX_SECONDS, s);
	return v;
}

static void parse_target(const char *s)
{
	char host[256];
	const char *port_s;
	uint16_t port;

	memset(&o.addr, 0, sizeof(o.addr));
	if (strncmp(s, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&o.addr;
		size_t len = strlen(s + 5);

		if (len == 0 || len >= sizeof(un->sun_path))
			usage_error("invalid Unix socket path in '%s'", s);
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, s + 5, len + 1);
		o.addrlen = (socklen_t)sizeof(*un);
		return;
	}
	if (digits_only(s)) {
		snprintf(host, sizeof(host), "127.0.0.1");
		port_s = s;
	} else if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		size_t len;

		if (!rb || rb[1] != ':')
			usage_error("invalid address '%s' (expected [IPV6]:PORT)", s);
		len = (size_t)(rb - s - 1);
		if (len == 0 || len >= sizeof(host))
			usage_error("invalid address '%s'", s);
		memcpy(host, s + 1, len);
		host[len] = '\0';
		port_s = rb + 2;
	} else {
		const char *colon = strrchr(s, ':');
		size_t len;

		if (!colon || strchr(s, ':') != colon)
			usage_error("invalid address '%s' (expected HOST:PORT, "
				    "[IPV6]:PORT or unix:/PATH)", s);
		len = (size_t)(colon - s);
		if (len == 0 || len >= sizeof(host))
			usage_error("invalid address '%s'", s);
		memcpy(host, s, len);
		host[len] = '\0';
		port_s = colon + 1;
	}
	if (!digits_only(port_s) || strlen(port_s) > 5 || atoi(port_s) < 1 ||
	    atoi(port_s) > 65535)
		usage_error("invalid port in '%s'", s);
	port = (uint16_t)atoi(port_s);

	if (s[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&o.addr;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			usage_error("invalid IPv6 address in '%s'", s);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		o.addrlen = (socklen_t)sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&o.addr;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			struct addrinfo hints, *res = NULL;
			int rc;

			memset(&hints, 0, sizeof(hints));
			hints.ai_family = AF_UNSPEC;
			hints.ai_socktype = SOCK_STREAM;
			rc = getaddrinfo(host, NULL, &hints, &res);
			if (rc != 0 || !res)
				usage_error("cannot resolve '%s': %s", host,
					    gai_strerror(rc));
			memcpy(&o.addr, res->ai_addr, res->ai_addrlen);
			o.addrlen = res->ai_addrlen;
			freeaddrinfo(res);
			if (o.addr.ss_family == AF_INET6)
				((struct sockaddr_in6 *)&o.addr)->sin6_port = htons(port);
			else
				((struct sockaddr_in *)&o.addr)->sin_port = htons(port);
			return;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		o.addrlen = (socklen_t)sizeof(*sin);
	}
}

static int target_is_ipv4_loopback(void)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&o.addr;

	return o.addr.ss_family == AF_INET &&
	       (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
}

static void usage(void)
{
	printf(
"Usage: " PROG " [OPTION]... [ADDRESS]\n"
"Load generator for echo servers: drives connections in one epoll loop,\n"
"checks every echoed byte and reports rates and latency percentiles.\n"
"\n"
"ADDRESS is HOST:PORT, [IPV6]:PORT, unix:/PATH or PORT (127.0.0.1:PORT);\n"
"default 127.0.0.1:7.\n"
"\n"
"  -m, --mode=MODE           pingpong (default), stream, connect or idle\n"
"  -c, --connections=N       connections (connect: concurrent connectors); 1\n"
"  -P, --pipeline=N          pingpong: messages in flight per connection; 1\n"
"  -s, --size=SIZE           message size (stream: write size); 64, stream 64K\n"
"  -d, --duration=DURATION   measured time (idle: hold time); 5s\n"
"  -w, --warmup=DURATION     load before measuring starts; 1s\n"
"      --open-timeout=DURATION  limit for opening all connections; 30s\n"
"      --open-concurrency=N  connections being opened at once; 64\n"
"      --stall-timeout=DURATION  a connection waiting this long for its\n"
"                            echo counts as stalled; 2s\n"
"      --source-addrs=N      cycle source addresses 127.0.0.2 .. 127.0.0.N+1\n"
"                            (IPv4 loopback; default 16 in connect mode or\n"
"                            above 1000 connections, else 0)\n"
"      --seed=N              seed of the byte streams; 1\n"
"      --reset               close connections with a reset (SO_LINGER 0)\n"
"  -j, --json                print the result as one JSON line\n"
"  -q, --quiet               no progress line\n"
"  -v, --verbose             report phases and errors on stderr\n"
"  -h, --help                display this help and exit\n"
"  -V, --version             output version information and exit\n"
"\n"
"DURATION is seconds, or a number with suffix ms, s or min. SIZE is bytes,\n"
"or a number with suffix K or M. Exit status: 0 if every byte came back\n"
"right and nothing stalled or failed, 1 otherwise, 2 on a usage error.\n");
}

static void parse_options(int argc, char **argv)
{
	enum {
		OPT_OPEN_TIMEOUT = 256,
		OPT_OPEN_CONCURRENCY,
		OPT_STALL_TIMEOUT,
		OPT_SOURCE_ADDRS,
		OPT_SEED,
		OPT_RESET,
	};
	static const struct option longopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "connections", required_argument, NULL, 'c' },
		{ "pipeline", required_argument, NULL, 'P' },
		{ "size", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "open-timeout", required_argument, NULL, OPT_OPEN_TIMEOUT },
		{ "open-concurrency", required_argument, NULL, OPT_OPEN_CONCURRENCY },
		{ "stall-timeout", required_argument, NULL, OPT_STALL_TIMEOUT },
		{ "source-addrs", required_argument, NULL, OPT_SOURCE_ADDRS },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "reset", no_argument, NULL, OPT_RESET },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, size_set = 0, srcaddr_set = 0, pipeline_set = 0;

	o.mode = MODE_PINGPONG;
	o.target = "127.0.0.1:7";
	o.conns = 1;
	o.pipeline = 1;
	o.size = 64;
	o.duration = 5.0;
	o.warmup = 1.0;
	o.open_timeout = 30.0;
	o.stall = 2.0;
	o.open_concurrency = 64;
	o.seed = 1;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":m:c:P:s:d:w:jqvhV", longopts,
				 NULL)) != -1) {
		switch (ch) {
		case 'm': {
			unsigned i;

			for (i = 0; i < sizeof(mode_name) / sizeof(mode_name[0]); i++)
				if (strcmp(optarg, mode_name[i]) == 0)
					break;
			if (i == sizeof(mode_name) / sizeof(mode_name[0]))
				usage_error("unknown mode '%s' (pingpong, stream, "
					    "connect or idle)", optarg);
			o.mode = (enum mode)i;
			break;
		}
		case 'c':
			o.conns = (unsigned)parse_uint("--connections", optarg, 1,
						       MAX_CONNS);
			break;
		case 'P':
			o.pipeline = (unsigned)parse_uint("--pipeline", optarg, 1,
							  MAX_PIPELINE);
			pipeline_set = 1;
			break;
		case 's':
			o.size = parse_size("--size", optarg, 1, MAX_SIZE);
			size_set = 1;
			break;
		case 'd':
			o.duration = parse_duration("--duration", optarg, 0.001);
			break;
		case 'w':
			o.warmup = parse_duration("--warmup", optarg, 0.0);
			break;
		case OPT_OPEN_TIMEOUT:
			o.open_timeout = parse_duration("--open-timeout", optarg, 0.001);
			break;
		case OPT_OPEN_CONCURRENCY:
			o.open_concurrency = (unsigned)parse_uint(
				"--open-concurrency", optarg, 1, MAX_CONNS);
			break;
		case OPT_STALL_TIMEOUT:
			o.stall = parse_duration("--stall-timeout", optarg, 0.01);
			break;
		case OPT_SOURCE_ADDRS:
			o.source_addrs = (unsigned)parse_uint("--source-addrs", optarg,
							      0, MAX_SOURCE_ADDRS);
			srcaddr_set = 1;
			break;
		case OPT_SEED:
			o.seed = parse_uint("--seed", optarg, 0, UINT64_MAX);
			break;
		case OPT_RESET:
			o.reset = 1;
			break;
		case 'j':
			o.json = 1;
			break;
		case 'q':
			o.quiet = 1;
			break;
		case 'v':
			o.verbose = 1;
			break;
		case 'h':
			usage();
			exit(0);
		case 'V':
			printf(PROG " %s\n", ECHOD_VERSION);
			exit(0);
		case ':':
			if (optopt)
				usage_error("option '-%c' requires an argument", optopt);
			usage_error("option '%s' requires an argument",
				    argv[optind - 1]);
		default:
			if (optopt)
				usage_error("invalid option '-%c'", optopt);
			usage_error("unrecognized option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		o.target = argv[optind++];
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	parse_target(o.target);

	if (!size_set && o.mode == MODE_STREAM)
		o.size = 64u << 10;
	if (pipeline_set && o.mode != MODE_PINGPONG && o.pipeline != 1)
		usage_error("--pipeline applies to pingpong mode only");
	if (o.mode == MODE_PINGPONG &&
	    (uint64_t)o.conns * o.pipeline > (UINT64_C(1) << 26))
		usage_error("--connections times --pipeline must be at most %llu",
			    1ull << 26);
	if (srcaddr_set && o.source_addrs > 0 && !target_is_ipv4_loopback())
		usage_error("--source-addrs needs an IPv4 loopback (127.x.x.x) target");
	/* Spread many connections over several source addresses: a connect
	 * storm leaves ports in TIME_WAIT, and with most of the ephemeral range
	 * in use the kernel takes ever longer to find a free port. */
	if (!srcaddr_set && target_is_ipv4_loopback() &&
	    (o.mode == MODE_CONNECT || o.conns > MANY_CONNS))
		o.source_addrs = DEFAULT_SOURCE_ADDRS;
}

/* ------------------------------------------------------------- streams */

static void pattern_init(uint64_t seed)
{
	uint64_t x = mix64(seed ^ GOLDEN) | 1;
	size_t i;

	pattern = malloc(PATTERN_SIZE + PAGE_SIZE_);
	if (!pattern)
		fatal("out of memory");
	for (i = 0; i < PATTERN_SIZE + PAGE_SIZE_; i += 8) {
		uint64_t v;

		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		v = x * 0x2545f4914f6cdd1dull;
		memcpy(pattern + i, &v, 8);
	}
}

/* The byte at stream position pos of key's stream; valid up to the next page. */
static inline unsigned char *stream_at(uint64_t key, uint64_t pos)
{
	size_t off = mix64(key + (pos >> PAGE_BITS) * GOLDEN) & (PATTERN_SIZE - 1);

	return pattern + off + (pos & PAGE_MASK_);
}

static int stream_iov(uint64_t key, uint64_t pos, size_t len, struct iovec *iov)
{
	int n = 0;

	while (len > 0 && n < (int)MAX_IOV) {
		size_t k = PAGE_SIZE_ - (pos & PAGE_MASK_);

		if (k > len)
			k = len;
		iov[n].iov_base = stream_at(key, pos);
		iov[n].iov_len = k;
		n++;
		pos += k;
		len -= k;
	}
	return n;
}

/* 0 if buf[0..n) is what key's stream holds at pos. */
static int stream_check(uint64_t key, uint64_t pos, const unsigned char *buf,
			size_t n)
{
	while (n > 0) {
		size_t k = PAGE_SIZE_ - (pos & PAGE_MASK_);

		if (k > n)
			k = n;
		if (memcmp(buf, stream_at(key, pos), k) != 0)
			return -1;
		buf += k;
		pos += k;
		n -= k;
	}
	return 0;
}

/* --------------------------------------------------------- connections */

static int conn_start(struct conn *c, uint64_t now);

static inline int issuing(void)
{
	return g.phase == PH_WARMUP || g.phase == PH_MEASURE;
}

static void runq_push(struct conn *c)
{
	if (!c->queued) {
		c->queued = 1;
		g.runq[g.runq_n++] = (uint32_t)(c - g.conns);
	}
}

/*
 * Start c again after RETRY_NS: a C_RETRY slot repeats its connect, a C_FREE
 * one (connect mode, after a failure) gets a new connection. Never started
 * from the failure path itself, so a refusing server cannot recurse us.
 */
static void retry_push(struct conn *c)
{
	if (!c->retrying) {
		c->retrying = 1;
		g.retryq[g.retryq_n++] = (uint32_t)(c - g.conns);
	}
}

static void conn_close(struct conn *c, enum cstate next)
{
	if (c->fd >= 0) {
		if (o.reset) {
			struct linger lg = { 1, 0 };

			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(c->fd);
		c->fd = -1;
	}
	if (c->pending) {
		c->pending = 0;
		g.opening--;
	}
	if (o.mode == MODE_CONNECT && c->state != C_FREE && c->state != C_DEAD)
		g.active--;
	c->state = (uint8_t)next;
	c->rmore = 0;
	c->wblocked = 0;
}

enum fail { FAIL_MISMATCH, FAIL_EOF, FAIL_ERRNO };

static void conn_fail(struct conn *c, enum fail why, int err)
{
	const char *what = why == FAIL_MISMATCH ? "echoed bytes differ from those sent"
			   : why == FAIL_EOF	 ? "closed by the server"
						 : strerror(err);

	if (why == FAIL_MISMATCH)
		g.mismatches++;
	else
		g.conn_errors++;
	if (!g.first_errno)
		g.first_errno = why == FAIL_ERRNO ? err : why == FAIL_EOF ? ECONNRESET : EBADMSG;
	if (g.mismatches + g.conn_errors <= 10)
		note("connection %u: %s (after %" PRIu64 " bytes echoed)",
		     (unsigned)(c - g.conns), what, c->recvd);
	conn_close(c, o.mode == MODE_CONNECT ? C_FREE : C_DEAD);
	if (o.mode == MODE_CONNECT && issuing())
		retry_push(c);
}

static void conn_established(struct conn *c, uint64_t now);
static int conn_write(struct conn *c);

/* Open a connection in slot c. Returns 0, or -1 if it failed (counted). */
static int conn_start(struct conn *c, uint64_t now)
{
	struct epoll_event ev;
	int fd, rc, err, one = 1;

	if (c->state != C_RETRY) {
		c->t_start = now;
		c->key = mix64(o.seed ^ mix64(++g.serial));
		c->target = c->sent = c->recvd = 0;
		c->primed = 0;
		c->stalled = 0;
		if (!c->pending && o.mode != MODE_CONNECT) {
			c->pending = 1;
			g.opening++;
		}
		if (o.mode == MODE_CONNECT)
			g.active++;
	}
	c->t_progress = now;
	c->state = C_CONNECTING;
	fd = socket(o.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	c->fd = fd;
	if (o.addr.ss_family != AF_UNIX &&
	    (o.mode == MODE_PINGPONG || o.mode == MODE_STREAM))
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o.source_addrs > 0) {
		struct sockaddr_in src;

		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr.s_addr =
			htonl(0x7f000002u + (uint32_t)(g.serial % o.source_addrs));
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
			goto fail;
	}
	rc = connect(fd, (struct sockaddr *)&o.addr, o.addrlen);
	if (rc < 0 && errno != EINPROGRESS)
		goto fail;
	/* Registered once, after connect(): a socket that is not yet
	 * connecting would report EPOLLHUP. */
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.u64 = ((uint64_t)(uint32_t)fd << 32) | (uint32_t)(c - g.conns);
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		goto fail;
	if (rc == 0) { /* Unix sockets connect at once */
		conn_established(c, now);
		conn_write(c);
	}
	return 0;

fail:
	err = errno;
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (err == EAGAIN || err == EADDRNOTAVAIL || err == EADDRINUSE ||
	    err == ENOBUFS) {
		/* Full Unix-socket backlog or no free local port: try again soon. */
		if (err != EAGAIN)
			g.addr_retries++;
		c->state = C_RETRY;
		retry_push(c);
		return 0;
	}
	conn_fail(c, FAIL_ERRNO, err);
	return -1;
}

static void conn_primed(struct conn *c)
{
	c->primed = 1;
	if (c->pending) {
		c->pending = 0;
		g.opening--;
	}
	g.opened++;
}

static void pp_issue(struct conn *c, uint64_t k, uint64_t now)
{
	uint64_t m = c->target / o.size, i;

	for (i = 0; i < k; i++)
		c->ts[(m + i) % o.pipeline] = now;
	c->target += k * o.size;
}

/* The connection completed: write its first message. */
static void conn_established(struct conn *c, uint64_t now)
{
	c->state = C_OPEN;
	c->t_progress = now;
	switch (o.mode) {
	case MODE_PINGPONG:
		pp_issue(c, 1, now);
		break;
	case MODE_STREAM:
		c->target = o.size < STREAM_PRIME ? o.size : STREAM_PRIME;
		break;
	case MODE_CONNECT:
	case MODE_IDLE:
		c->target = o.size;
		break;
	}
}

/* Account for newly verified bytes. Returns -1 if c was closed. */
static int conn_received(struct conn *c, uint64_t before, uint64_t now)
{
	switch (o.mode) {
	case MODE_PINGPONG: {
		uint64_t m0 = before / o.size, m1 = c->recvd / o.size, m;

		if (m1 == m0)
			return 0;
		if (!c->primed) {
			conn_primed(c); /* message 0 opened the connection */
			m0 = 1;
		}
		for (m = m0; m < m1; m++)
			hist_record(&g.interval, now - c->ts[m % o.pipeline]);
		g.msgs += m1 - m0;
		if (issuing())
			pp_issue(c, m1 - m0, now);
		return 0;
	}
	case MODE_STREAM:
		if (!c->primed && c->recvd == c->target)
			conn_primed(c);
		return 0;
	case MODE_IDLE:
		if (c->recvd == c->target) {
			if (!c->primed) {
				hist_record(&g.interval, now - c->t_start);
				conn_primed(c);
			}
			g.msgs++;
		}
		return 0;
	case MODE_CONNECT:
		if (c->recvd == c->target) {
			hist_record(&g.interval, now - c->t_start);
			g.msgs++;
			g.conns_done++;
			conn_close(c, C_FREE);
			if (issuing())
				conn_start(c, now);
			return -1;
		}
		return 0;
	}
	return 0;
}

/* Read and check until the socket is drained. Returns -1 if c was closed. */
static int conn_read(struct conn *c, uint64_t now)
{
	unsigned budget;

	c->rmore = 0;
	for (budget = READ_BUDGET; budget > 0; budget--) {
		ssize_t n = read(c->fd, rbuf, sizeof(rbuf));

		if (n > 0) {
			uint64_t before = c->recvd;

			if ((uint64_t)n > c->sent - c->recvd ||
			    stream_check(c->key, c->recvd, rbuf, (size_t)n) < 0) {
				conn_fail(c, FAIL_MISMATCH, 0);
				return -1;
			}
			c->recvd += (uint64_t)n;
			c->t_progress = now;
			g.bytes_rx += (uint64_t)n;
			if (conn_received(c, before, now) < 0)
				return -1;
			/* A short read means the socket is drained for now; new
			 * data brings a new edge. */
			if ((size_t)n < sizeof(rbuf))
				return 0;
			continue;
		}
		if (n == 0) {
			conn_fail(c, FAIL_EOF, 0);
			return -1;
		}
		if (errno == EAGAIN)
			return 0;
		if (errno == EINTR)
			continue;
		conn_fail(c, FAIL_ERRNO, errno);
		return -1;
	}
	c->rmore = 1;
	runq_push(c);
	return 0;
}

/* Write what is issued (stream: keep issuing chunks). Returns -1 if closed. */
static int conn_write(struct conn *c)
{
	struct iovec iov[MAX_IOV];
	unsigned budget = WRITE_BUDGET;

	while (!c->wblocked) {
		size_t len;
		ssize_t n;
		int cnt;

		if (c->sent == c->target) {
			if (o.mode != MODE_STREAM || !issuing())
				return 0;
			c->target += o.size;
		}
		len = c->target - c->sent > MAX_WRITE ? MAX_WRITE
						       : (size_t)(c->target - c->sent);
		cnt = stream_iov(c->key, c->sent, len, iov);
		/* write() is cheaper than writev() for the common single piece */
		n = cnt == 1 ? write(c->fd, iov[0].iov_base, iov[0].iov_len)
			     : writev(c->fd, iov, cnt);
		if (n < 0) {
			if (errno == EAGAIN) {
				c->wblocked = 1;
				return 0;
			}
			if (errno == EINTR)
				continue;
			conn_fail(c, FAIL_ERRNO, errno);
			return -1;
		}
		c->sent += (uint64_t)n;
		g.bytes_tx += (uint64_t)n;
		if ((size_t)n < len) {
			/* The socket is full; EPOLLOUT comes when it drains. */
			c->wblocked = 1;
			return 0;
		}
		if (--budget == 0) {
			if (c->sent < c->target || (o.mode == MODE_STREAM && issuing()))
				runq_push(c);
			return 0;
		}
	}
	return 0;
}

static void conn_event(struct conn *c, uint32_t ev, uint64_t now)
{
	if (c->state == C_CONNECTING) {
		if (ev & (EPOLLERR | EPOLLHUP)) {
			int err = 0;
			socklen_t len = sizeof(err);

			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
			conn_fail(c, FAIL_ERRNO, err ? err : ECONNRESET);
			return;
		}
		if (!(ev & EPOLLOUT))
			return;
		conn_established(c, now);
	}
	if (c->state != C_OPEN)
		return;
	if (ev & EPOLLOUT)
		c->wblocked = 0;
	if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) || c->rmore)
		if (conn_read(c, now) < 0)
			return;
	if (!c->wblocked &&
	    (c->sent < c->target || (o.mode == MODE_STREAM && issuing())))
		conn_write(c);
}

/* ------------------------------------------------------------- phases */

static void snapshot(struct counters *s, uint64_t now)
{
	s->t = now;
	s->msgs = g.msgs;
	s->bytes_rx = g.bytes_rx;
	s->bytes_tx = g.bytes_tx;
	s->conns_done = g.conns_done;
	s->cpu = cpu_seconds();
}

/* Move the latencies of the current interval into the total, or drop them. */
static void hist_flush(int keep)
{
	if (keep)
		hist_merge(&g.total, &g.interval);
	hist_reset(&g.interval);
}

static void open_more(uint64_t now)
{
	while (g.opening < o.open_concurrency && g.next_open < o.conns)
		conn_start(&g.conns[g.next_open++], now);
}

static void begin_measure(uint64_t now)
{
	g.phase = PH_MEASURE;
	hist_flush(0);
	hist_reset(&g.total);
	g.measuring = 1;
	snapshot(&g.m0, now);
	g.t_measure = now;
	g.t_deadline = now + (uint64_t)(o.duration * NS_PER_S);
	note("measuring for %.3g s", o.duration);
}

static void begin_drain(uint64_t now)
{
	unsigned i;

	g.phase = PH_DRAIN;
	/* Connections that make no progress for the stall time are counted
	 * by stall_scan(); this only bounds a drain that creeps along. */
	g.t_deadline = now + (uint64_t)(3 * o.stall * NS_PER_S);
	if (o.mode == MODE_IDLE) {
		g.held = 0;
		for (i = 0; i < o.conns; i++)
			if (g.conns[i].state == C_OPEN)
				g.held++;
	}
	for (i = 0; i < o.conns; i++) {
		struct conn *c = &g.conns[i];

		if (c->state != C_OPEN)
			continue;
		if (o.mode == MODE_STREAM && c->target > c->sent)
			c->target = c->sent; /* drop the rest of the chunk */
		if (o.mode == MODE_IDLE) {
			/* one more echo on every held connection */
			c->target += o.size;
			c->t_progress = now;
			conn_write(c);
		}
	}
	note("draining");
}

static void end_measure(uint64_t now)
{
	hist_flush(1);
	g.measuring = 0;
	snapshot(&g.m1, now);
	g.t_end = now;
	begin_drain(now);
}

static void end_hold(uint64_t now)
{
	g.t_end = now;
	begin_drain(now);
}

static void end_open(uint64_t now)
{
	unsigned i;

	for (i = 0; i < o.conns; i++) {
		struct conn *c = &g.conns[i];

		if (c->state == C_DEAD || c->primed)
			continue;
		if (!c->stalled)
			g.not_opened++;
		if (c->state == C_FREE)
			c->state = C_DEAD; /* never started */
		else
			conn_close(c, C_DEAD);
	}
	g.retryq_n = 0;
	g.t_opened = now;
	note("opened %u of %u connections in %.3f s", g.opened, o.conns,
	     (double)(now - g.t_begin) / NS_PER_S);
	if (g.opened == 0) {
		progress_clear();
		if (g.first_errno)
			fatal("no connection to %s could be opened: %s", o.target,
			      strerror(g.first_errno));
		if (g.stalled)
			fatal("no connection to %s could be opened: no echo within "
			      "%g s (%" PRIu64 " connections stalled)",
			      o.target, o.stall, g.stalled);
		fatal("no connection to %s could be opened within %g s", o.target,
		      o.open_timeout);
	}
	if (o.mode == MODE_IDLE) {
		hist_flush(1);
		g.measuring = 0;
		g.phase = PH_HOLD;
		g.t_measure = now;
		g.t_deadline = now + (uint64_t)(o.duration * NS_PER_S);
		note("holding %u connections for %.3g s", g.opened, o.duration);
		return;
	}
	g.phase = PH_WARMUP;
	g.t_deadline = now + (uint64_t)(o.warmup * NS_PER_S);
	note("warming up for %.3g s", o.warmup);
	for (i = 0; i < o.conns; i++) {
		struct conn *c = &g.conns[i];

		if (c->state != C_OPEN)
			continue;
		c->t_progress = now;
		if (o.mode == MODE_PINGPONG)
			pp_issue(c, o.pipeline, now);
		conn_write(c);
	}
}

static int drain_done(void)
{
	unsigned i;

	if (o.mode == MODE_CONNECT)
		return g.active == 0;
	for (i = 0; i < o.conns; i++) {
		const struct conn *c = &g.conns[i];

		if (c->state == C_OPEN && c->recvd < c->target && !c->stalled)
			return 0;
	}
	return 1;
}

static void stall_scan(uint64_t now)
{
	uint64_t limit = (uint64_t)(o.stall * NS_PER_S);
	unsigned i;

	for (i = 0; i < o.conns; i++) {
		struct conn *c = &g.conns[i];
		int waiting;

		if (c->state == C_FREE || c->state == C_DEAD)
			continue;
		waiting = c->state != C_OPEN || c->recvd < c->target;
		if (!waiting || now < c->t_progress || now - c->t_progress < limit)
			continue;
		if (!c->stalled) {
			c->stalled = 1;
			g.stalled++;
			if (g.stalled <= 10)
				note("connection %u: no echo for %.3g s (%" PRIu64
				     " of %" PRIu64 " bytes back)",
				     i, (double)(now - c->t_progress) / NS_PER_S,
				     c->recvd, c->target);
		}
		if (o.mode == MODE_CONNECT) {
			/* give the slot a fresh connection */
			conn_close(c, C_FREE);
			if (issuing())
				retry_push(c);
		} else if (g.phase == PH_OPEN && !c->primed) {
			/* not worth waiting for: let the opening go on */
			conn_close(c, C_DEAD);
		}
	}
}

static void phase_step(uint64_t now)
{
	if (stop_requested && !g.interrupted) {
		/* SIGINT/SIGTERM: cut the current phase short and report */
		g.interrupted = 1;
		note("interrupted");
		if (g.phase == PH_OPEN)
			end_open(now);
		if (g.phase == PH_WARMUP)
			begin_measure(now);
		if (g.phase == PH_MEASURE)
			end_measure(now);
		else if (g.phase == PH_HOLD)
			end_hold(now);
	}
	switch (g.phase) {
	case PH_OPEN:
		if ((g.next_open == o.conns && g.opening == 0) || now >= g.t_deadline)
			end_open(now);
		if (g.phase == PH_WARMUP && o.warmup <= 0.0)
			begin_measure(now);
		break;
	case PH_WARMUP:
		if (now >= g.t_deadline)
			begin_measure(now);
		break;
	case PH_MEASURE:
		if (now >= g.t_deadline)
			end_measure(now);
		break;
	case PH_HOLD:
		if (now >= g.t_deadline)
			end_hold(now);
		break;
	case PH_DRAIN:
		if (drain_done()) {
			g.phase = PH_DONE;
		} else if (now >= g.t_deadline) {
			/* whatever is still waiting now has stalled */
			stall_scan(now + (uint64_t)(o.stall * NS_PER_S) + 1);
			g.phase = PH_DONE;
		}
		break;
	case PH_DONE:
		break;
	}
}

/* ------------------------------------------------------------- report */

static uint64_t total_errors(void)
{
	return g.mismatches + g.conn_errors + g.stalled + g.not_opened;
}

static void progress_tick(uint64_t now)
{
	char line[256], a[32], b[32];
	double dt = (double)(now - g.tick.t) / NS_PER_S;
	uint64_t errs = total_errors();
	int n = 0;

	if (dt <= 0)
		dt = 1;
	switch (g.phase) {
	case PH_OPEN:
		n = snprintf(line, sizeof(line), "opening connections: %s of %s",
			     fmt_count(a, sizeof(a), g.opened),
			     fmt_count(b, sizeof(b), o.conns));
		break;
	case PH_WARMUP:
	case PH_MEASURE: {
		double t = g.phase == PH_WARMUP
				   ? (double)(now - g.t_opened) / NS_PER_S
				   : (double)(now - g.t_measure) / NS_PER_S;
		const char *ph = g.phase == PH_WARMUP ? "warm-up" : "measure";
		double total = g.phase == PH_WARMUP ? o.warmup : o.duration;

		if (o.mode == MODE_STREAM)
			n = snprintf(line, sizeof(line),
				     "%s %.0f/%.0f s  %.1f MB/s  errors %" PRIu64, ph, t,
				     total, (double)(g.bytes_rx - g.tick.bytes_rx) / dt / 1e6,
				     errs);
		else
			n = snprintf(line, sizeof(line),
				     "%s %.0f/%.0f s  %s %s/s  p50 %.1f us  p99 %.1f us  "
				     "errors %" PRIu64,
				     ph, t, total,
				     fmt_count(a, sizeof(a),
					       (uint64_t)((double)(g.msgs - g.tick.msgs) / dt)),
				     o.mode == MODE_CONNECT ? "conn" : "msg",
				     (double)hist_percentile(&g.interval, 50) / 1e3,
				     (double)hist_percentile(&g.interval, 99) / 1e3, errs);
		break;
	}
	case PH_HOLD:
		n = snprintf(line, sizeof(line),
			     "holding %s connections  %.0f/%.0f s  errors %" PRIu64,
			     fmt_count(a, sizeof(a), g.opened),
			     (double)(now - g.t_measure) / NS_PER_S, o.duration, errs);
		break;
	case PH_DRAIN:
	case PH_DONE:
		n = snprintf(line, sizeof(line), "draining  errors %" PRIu64, errs);
		break;
	}
	if (n > 0) {
		printf("\r%s\033[K", line);
		fflush(stdout);
		g.progress_drawn = 1;
	}
}

static void tick(uint64_t now)
{
	if (g.progress)
		progress_tick(now);
	hist_flush(g.measuring);
	snapshot(&g.tick, now);
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

struct result {
	double window, open_s, msgs_per_s, mb_per_s, conns_per_s, cpu;
	uint64_t msgs, bytes;
	double lat[7]; /* min p50 p90 p99 p99.9 max mean, microseconds */
};

static void compute(struct result *r)
{
	static const double pct[] = { 0, 50, 90, 99, 99.9, 100 };
	unsigned i;

	memset(r, 0, sizeof(*r));
	r->open_s = (double)(g.t_opened - g.t_begin) / NS_PER_S;
	if (o.mode == MODE_IDLE) {
		r->window = (double)(g.t_end - g.t_measure) / NS_PER_S;
		r->msgs = g.opened;
		r->bytes = (uint64_t)g.opened * o.size;
		r->conns_per_s = r->open_s > 0 ? g.opened / r->open_s : 0;
		r->msgs_per_s = r->conns_per_s;
		r->mb_per_s = r->conns_per_s * (double)o.size / 1e6;
	} else {
		r->window = (double)(g.m1.t - g.m0.t) / NS_PER_S;
		r->msgs = g.m1.msgs - g.m0.msgs;
		r->bytes = g.m1.bytes_rx - g.m0.bytes_rx;
		if (r->window > 0) {
			r->msgs_per_s = (double)r->msgs / r->window;
			r->mb_per_s = (double)r->bytes / r->window / 1e6;
			r->conns_per_s =
				(double)(g.m1.conns_done - g.m0.conns_done) / r->window;
			r->cpu = (g.m1.cpu - g.m0.cpu) / r->window;
		}
		if (o.mode == MODE_STREAM)
			r->msgs_per_s = 0, r->msgs = 0;
	}
	for (i = 0; i < 6; i++)
		r->lat[i] = (double)hist_percentile(&g.total, pct[i]) / 1e3;
	r->lat[6] = hist_mean(&g.total) / 1e3;
}

static void report_json(const struct result *r)
{
	printf("{\"tool\":\"" PROG "\",\"version\":");
	json_string(ECHOD_VERSION);
	printf(",\"mode\":\"%s\",\"target\":", mode_name[o.mode]);
	json_string(o.target);
	printf(",\"connections\":%u,\"pipeline\":%u,\"size\":%zu,\"warmup_s\":%.3f,"
	       "\"duration_s\":%.3f,\"opened\":%u,\"open_s\":%.3f,\"held\":%u,"
	       "\"messages\":%" PRIu64 ",\"msgs_per_s\":%.1f,\"bytes\":%" PRIu64
	       ",\"mb_per_s\":%.3f,\"conns_per_s\":%.1f,",
	       o.conns, o.pipeline, o.size, o.mode == MODE_IDLE ? 0.0 : o.warmup,
	       r->window, g.opened, r->open_s, g.held, r->msgs, r->msgs_per_s, r->bytes,
	       r->mb_per_s, r->conns_per_s);
	printf("\"latency_us\":{\"count\":%" PRIu64 ",\"min\":%.2f,\"p50\":%.2f,"
	       "\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"max\":%.2f,\"mean\":%.2f},",
	       g.total.count, r->lat[0], r->lat[1], r->lat[2], r->lat[3], r->lat[4],
	       r->lat[5], r->lat[6]);
	printf("\"errors\":%" PRIu64 ",\"mismatches\":%" PRIu64
	       ",\"conn_errors\":%" PRIu64 ",\"stalled\":%" PRIu64
	       ",\"not_opened\":%" PRIu64 ",\"addr_retries\":%" PRIu64
	       ",\"client_cpu\":%.3f,\"interrupted\":%s}\n",
	       total_errors(), g.mismatches, g.conn_errors, g.stalled, g.not_opened,
	       g.addr_retries, r->cpu, g.interrupted ? "true" : "false");
}

static void report_table(const struct result *r)
{
	char a[32], b[32];
	const char *unit = o.mode == MODE_CONNECT || o.mode == MODE_IDLE ? "conn" : "msg";

	printf(PROG " %s: %s to %s\n", ECHOD_VERSION, mode_name[o.mode], o.target);
	printf("  %-16s %s", "connections", fmt_count(a, sizeof(a), o.conns));
	if (o.mode == MODE_CONNECT)
		printf(" at once");
	else
		printf(" (%s opened in %.3f s)", fmt_count(b, sizeof(b), g.opened),
		       r->open_s);
	printf("\n");
	if (o.mode == MODE_PINGPONG)
		printf("  %-16s %u in flight per connection\n", "messages", o.pipeline);
	printf("  %-16s %zu bytes\n", o.mode == MODE_STREAM ? "write size" : "message size",
	       o.size);
	if (o.mode == MODE_IDLE) {
		printf("  %-16s %.3f s, %s still open at the end\n", "held",
		       r->window, fmt_count(a, sizeof(a), g.held));
		printf("  %-16s %s conn/s\n", "opening rate",
		       fmt_count(a, sizeof(a), (uint64_t)(r->conns_per_s + 0.5)));
	} else {
		printf("  %-16s %.3f s after %.3g s of warm-up\n", "measured", r->window,
		       o.warmup);
		if (o.mode == MODE_STREAM) {
			printf("  %-16s %.1f MB/s (%.3f MB echoed)\n", "throughput",
			       r->mb_per_s, (double)r->bytes / 1e6);
		} else {
			printf("  %-16s %s %s/s, %.2f MB/s\n", "throughput",
			       fmt_count(a, sizeof(a), (uint64_t)(r->msgs_per_s + 0.5)),
			       unit, r->mb_per_s);
			printf("  %-16s %s\n", o.mode == MODE_CONNECT ? "connections" : "messages",
			       fmt_count(a, sizeof(a), r->msgs));
		}
		printf("  %-16s %.2f cores\n", "own CPU", r->cpu);
	}
	if (g.total.count) {
		printf("  %-16s %9s %9s %9s %9s %9s %9s %9s\n",
		       o.mode == MODE_PINGPONG ? "latency (us)"
		       : o.mode == MODE_CONNECT ? "conn+echo (us)"
						: "open+echo (us)",
		       "min", "p50", "p90", "p99", "p99.9", "max", "mean");
		printf("  %-16s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", "",
		       r->lat[0], r->lat[1], r->lat[2], r->lat[3], r->lat[4], r->lat[5],
		       r->lat[6]);
	}
	printf("  %-16s %" PRIu64 " (mismatches %" PRIu64 ", stalled %" PRIu64
	       ", connection errors %" PRIu64 ", not opened %" PRIu64 ")%s\n",
	       "errors", total_errors(), g.mismatches, g.stalled, g.conn_errors,
	       g.not_opened, g.interrupted ? "  [interrupted]" : "");
	if (g.addr_retries)
		printf("  %-16s %" PRIu64 " connects retried for want of a local port\n",
		       "note", g.addr_retries);
}

/* --------------------------------------------------------------- main */

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void setup_process(void)
{
	struct rlimit rl;
	struct sigaction sa;
	rlim_t need = (rlim_t)o.conns + 16;
	double limit_s;

	/* As many descriptors as we may have (soft up to hard). */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < need)
		fatal("%u connections need %llu file descriptors, but the limit is "
		      "%llu (see ulimit -n)",
		      o.conns, (unsigned long long)need,
		      (unsigned long long)rl.rlim_cur);

	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND; /* a second signal ends us at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* Whatever happens, the run ends by itself. */
	limit_s = o.warmup + o.duration + 3 * o.stall + 30.0;
	if (o.mode != MODE_CONNECT)
		limit_s += o.open_timeout;
	alarm((unsigned)ceil(limit_s));
}

/*
 * The epoll_wait timeout: 0 if work is queued, else -1 with the next timed
 * event (tick, stall scan, phase deadline, connect retry) on the timerfd.
 * A finite epoll_wait timeout would arm and cancel a kernel timer on every
 * sleep, which costs more per message than anything else here (a VM exit
 * on virtual machines); the timerfd is reprogrammed only when the next
 * wake-up time changes, a few times a second.
 */
static int next_timeout(uint64_t now)
{
	uint64_t next = g.t_next_tick;

	if (g.runq_n > 0)
		return 0;
	if (g.t_next_scan < next)
		next = g.t_next_scan;
	if (g.t_deadline < next)
		next = g.t_deadline;
	if (g.retryq_n > 0 && g.t_last_retry + RETRY_NS < next)
		next = g.t_last_retry + RETRY_NS;
	if (next <= now)
		return 0;
	if (next != g.timer_at) {
		struct itimerspec its;

		memset(&its, 0, sizeof(its));
		its.it_value.tv_sec = (time_t)(next / NS_PER_S);
		its.it_value.tv_nsec = (long)(next % NS_PER_S);
		if (timerfd_settime(g.timer, TFD_TIMER_ABSTIME, &its, NULL) < 0)
			fatal("timerfd_settime: %s", strerror(errno));
		g.timer_at = next;
	}
	return -1;
}

static void run_queues(uint64_t now)
{
	unsigned i, n;
	uint32_t *q;

	if (g.runq_n > 0) {
		q = g.runq;
		n = g.runq_n;
		g.runq = g.runq_work;
		g.runq_work = q;
		g.runq_n = 0;
		for (i = 0; i < n; i++) {
			struct conn *c = &g.conns[q[i]];

			c->queued = 0;
			if (c->state == C_OPEN)
				conn_event(c, 0, now_ns());
		}
	}
	if (g.retryq_n > 0 && now >= g.t_last_retry + RETRY_NS) {
		q = g.retryq;
		n = g.retryq_n;
		g.retryq = g.retryq_work;
		g.retryq_work = q;
		g.retryq_n = 0;
		g.t_last_retry = now;
		for (i = 0; i < n; i++) {
			struct conn *c = &g.conns[q[i]];
			int again = g.phase == PH_OPEN ||
				    (o.mode == MODE_CONNECT && issuing());

			c->retrying = 0;
			if (c->state == C_RETRY && again)
				conn_start(c, now);
			else if (c->state == C_RETRY)
				conn_close(c, o.mode == MODE_CONNECT ? C_FREE : C_DEAD);
			else if (c->state == C_FREE && o.mode == MODE_CONNECT && again)
				conn_start(c, now);
		}
	}
}

static void run(void)
{
	uint64_t now = now_ns();
	unsigned i;

	g.t_begin = g.t_opened = now;
	g.t_next_tick = now + NS_PER_S;
	g.t_next_scan = now + STALL_SCAN_NS;
	snapshot(&g.tick, now);
	if (o.mode == MODE_CONNECT) {
		g.phase = PH_WARMUP;
		g.t_deadline = now + (uint64_t)(o.warmup * NS_PER_S);
		note("warming up for %.3g s", o.warmup);
		for (i = 0; i < o.conns; i++)
			conn_start(&g.conns[i], now);
		if (o.warmup <= 0.0)
			begin_measure(now);
	} else {
		g.phase = PH_OPEN;
		g.measuring = o.mode == MODE_IDLE;
		g.t_deadline = now + (uint64_t)(o.open_timeout * NS_PER_S);
		open_more(now);
	}

	while (g.phase != PH_DONE) {
		int n, k;

		now = now_ns();
		phase_step(now);
		if (g.phase == PH_DONE)
			break;
		if (now >= g.t_next_scan) {
			stall_scan(now);
			g.t_next_scan = now + STALL_SCAN_NS;
		}
		if (now >= g.t_next_tick) {
			tick(now);
			g.t_next_tick += NS_PER_S;
			if (g.t_next_tick <= now)
				g.t_next_tick = now + NS_PER_S;
		}
		n = epoll_wait(g.ep, events, MAX_EVENTS, next_timeout(now));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait: %s", strerror(errno));
		}
		for (k = 0; k < n; k++) {
			uint32_t idx;
			int fd;
			struct conn *c;

			if (events[k].data.u64 == TIMER_TAG) {
				uint64_t expirations;

				if (read(g.timer, &expirations, sizeof(expirations)) < 0 &&
				    errno != EAGAIN)
					fatal("timerfd: %s", strerror(errno));
				g.timer_at = 0;
				continue;
			}
			idx = (uint32_t)events[k].data.u64;
			fd = (int)(events[k].data.u64 >> 32);
			c = &g.conns[idx];

			if (c->fd != fd) /* stale: the slot moved on */
				continue;
			conn_event(c, events[k].events, now_ns());
		}
		now = now_ns();
		run_queues(now);
		if (g.phase == PH_OPEN)
			open_more(now);
	}
	progress_clear();
	for (i = 0; i < o.conns; i++)
		if (g.conns[i].fd >= 0)
			conn_close(&g.conns[i], C_FREE);
}

int main(int argc, char **argv)
{
	struct result r;
	unsigned i;

	parse_options(argc, argv);
	setup_process();

	g.progress = !o.quiet && isatty(STDOUT_FILENO);
	pattern_init(o.seed);
	hist_reset(&g.interval);
	hist_reset(&g.total);
	g.ep = epoll_create1(EPOLL_CLOEXEC);
	if (g.ep < 0)
		fatal("epoll_create1: %s", strerror(errno));
	g.timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (g.timer < 0)
		fatal("timerfd_create: %s", strerror(errno));
	{
		struct epoll_event ev;

		ev.events = EPOLLIN;
		ev.data.u64 = TIMER_TAG;
		if (epoll_ctl(g.ep, EPOLL_CTL_ADD, g.timer, &ev) < 0)
			fatal("epoll_ctl: %s", strerror(errno));
	}
	g.conns = calloc(o.conns, sizeof(*g.conns));
	g.runq = calloc(o.conns, sizeof(*g.runq));
	g.runq_work = calloc(o.conns, sizeof(*g.runq_work));
	g.retryq = calloc(o.conns, sizeof(*g.retryq));
	g.retryq_work = calloc(o.conns, sizeof(*g.retryq_work));
	if (!g.conns || !g.runq || !g.runq_work || !g.retryq || !g.retryq_work)
		fatal("out of memory");
	if (o.mode == MODE_PINGPONG) {
		uint64_t *ts = calloc((size_t)o.conns * o.pipeline, sizeof(*ts));

		if (!ts)
			fatal("out of memory");
		for (i = 0; i < o.conns; i++)
			g.conns[i].ts = ts + (size_t)i * o.pipeline;
	}
	for (i = 0; i < o.conns; i++) {
		g.conns[i].fd = -1;
		g.conns[i].state = C_FREE;
	}

	run();

	compute(&r);
	if (o.json)
		report_json(&r);
	else
		report_table(&r);
	fflush(stdout);

	if (o.mode == MODE_PINGPONG)
		free(g.conns[0].ts);
	free(g.conns);
	free(g.runq);
	free(g.runq_work);
	free(g.retryq);
	free(g.retryq_work);
	free(pattern);
	close(g.timer);
	close(g.ep);
	return total_errors() > 0 || g.interrupted ? EXIT_ERRORS : 0;
}
