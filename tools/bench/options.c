/* Command line: options, their bounds and defaults, and the target address. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "build-config.h"
#include "bench.h"

static const struct bench_mode *const modes[] = {
	&mode_pingpong, &mode_stream, &mode_connect, &mode_idle,
};

static int digits_only(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static uint64_t parse_uint(const char *name, const char *s, uint64_t min,
			   uint64_t max)
{
	char *end;
	unsigned long long v;

	if (!(*s >= '0' && *s <= '9'))
		usage_error("invalid value for %s: '%s'", name, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end != '\0')
		usage_error("invalid value for %s: '%s'", name, s);
	if (v < min || v > max)
		usage_error("%s must be between %" PRIu64 " and %" PRIu64
			    ", not '%s'", name, min, max, s);
	return v;
}

/* BYTES, or with suffix K or M (x1024). */
static size_t parse_size(const char *name, const char *s, size_t min, size_t max)
{
	char *end;
	unsigned long long v;
	unsigned long long mult = 1;

	if (!(*s >= '0' && *s <= '9'))
		usage_error("invalid size for %s: '%s'", name, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		usage_error("invalid size for %s: '%s'", name, s);
	if (*end == 'K' || *end == 'k')
		mult = 1024, end++;
	else if (*end == 'M' || *end == 'm')
		mult = 1024 * 1024, end++;
	if (*end != '\0' || v > max / mult)
		usage_error("invalid size for %s: '%s' (at most %zu)", name, s, max);
	v *= mult;
	if (v < min || v > max)
		usage_error("%s must be between %zu and %zu bytes, not '%s'", name,
			    min, max, s);
	return (size_t)v;
}

/* SECONDS (decimals allowed), or with suffix ms, s or min. */
static double parse_duration(const char *name, const char *s, double min)
{
	char *end;
	double v;

	if (!((*s >= '0' && *s <= '9') || *s == '.'))
		usage_error("invalid duration for %s: '%s'", name, s);
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v))
		usage_error("invalid duration for %s: '%s'", name, s);
	if (strcmp(end, "ms") == 0)
		v /= 1000.0;
	else if (strcmp(end, "min") == 0)
		v *= 60.0;
	else if (*end != '\0' && strcmp(end, "s") != 0)
		usage_error("invalid duration for %s: '%s' (use a number of "
			    "seconds, or a suffix ms, s or min)", name, s);
	if (v < min || v > MAX_SECONDS)
		usage_error("%s must be between %g s and %g s, not '%s'", name, min,
			    MAX_SECONDS, s);
	return v;
}

static void parse_target(const char *s)
{
	char host[256];
	const char *port_s;
	uint16_t port;

	memset(&opt.addr, 0, sizeof(opt.addr));
	if (strncmp(s, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&opt.addr;
		size_t len = strlen(s + 5);

		if (len == 0 || len >= sizeof(un->sun_path))
			usage_error("invalid Unix socket path in '%s'", s);
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, s + 5, len + 1);
		opt.addrlen = (socklen_t)sizeof(*un);
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
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&opt.addr;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			usage_error("invalid IPv6 address in '%s'", s);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		opt.addrlen = (socklen_t)sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&opt.addr;

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
			memcpy(&opt.addr, res->ai_addr, res->ai_addrlen);
			opt.addrlen = res->ai_addrlen;
			freeaddrinfo(res);
			if (opt.addr.ss_family == AF_INET6)
				((struct sockaddr_in6 *)&opt.addr)->sin6_port = htons(port);
			else
				((struct sockaddr_in *)&opt.addr)->sin_port = htons(port);
			return;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		opt.addrlen = (socklen_t)sizeof(*sin);
	}
}

static int target_is_ipv4_loopback(void)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&opt.addr;

	return opt.addr.ss_family == AF_INET &&
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

void parse_options(int argc, char **argv)
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

	opt.mode = &mode_pingpong;
	opt.target = "127.0.0.1:7";
	opt.conns = 1;
	opt.pipeline = 1;
	opt.size = 64;
	opt.duration = 5.0;
	opt.warmup = 1.0;
	opt.open_timeout = 30.0;
	opt.stall = 2.0;
	opt.open_concurrency = 64;
	opt.seed = 1;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":m:c:P:s:d:w:jqvhV", longopts,
				 NULL)) != -1) {
		switch (ch) {
		case 'm': {
			unsigned i;

			for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
				if (strcmp(optarg, modes[i]->name) == 0)
					break;
			if (i == sizeof(modes) / sizeof(modes[0]))
				usage_error("unknown mode '%s' (pingpong, stream, "
					    "connect or idle)", optarg);
			opt.mode = modes[i];
			break;
		}
		case 'c':
			opt.conns = (unsigned)parse_uint("--connections", optarg, 1,
						       MAX_CONNS);
			break;
		case 'P':
			opt.pipeline = (unsigned)parse_uint("--pipeline", optarg, 1,
							  MAX_PIPELINE);
			pipeline_set = 1;
			break;
		case 's':
			opt.size = parse_size("--size", optarg, 1, MAX_SIZE);
			size_set = 1;
			break;
		case 'd':
			opt.duration = parse_duration("--duration", optarg, 0.001);
			break;
		case 'w':
			opt.warmup = parse_duration("--warmup", optarg, 0.0);
			break;
		case OPT_OPEN_TIMEOUT:
			opt.open_timeout = parse_duration("--open-timeout", optarg, 0.001);
			break;
		case OPT_OPEN_CONCURRENCY:
			opt.open_concurrency = (unsigned)parse_uint(
				"--open-concurrency", optarg, 1, MAX_CONNS);
			break;
		case OPT_STALL_TIMEOUT:
			opt.stall = parse_duration("--stall-timeout", optarg, 0.01);
			break;
		case OPT_SOURCE_ADDRS:
			opt.source_addrs = (unsigned)parse_uint("--source-addrs", optarg,
							      0, MAX_SOURCE_ADDRS);
			srcaddr_set = 1;
			break;
		case OPT_SEED:
			opt.seed = parse_uint("--seed", optarg, 0, UINT64_MAX);
			break;
		case OPT_RESET:
			opt.reset = 1;
			break;
		case 'j':
			opt.json = 1;
			break;
		case 'q':
			opt.quiet = 1;
			break;
		case 'v':
			opt.verbose = 1;
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
		opt.target = argv[optind++];
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	parse_target(opt.target);

	if (!size_set && opt.mode->default_size)
		opt.size = opt.mode->default_size;
	if (pipeline_set && opt.mode != &mode_pingpong && opt.pipeline != 1)
		usage_error("--pipeline applies to pingpong mode only");
	if (opt.mode == &mode_pingpong &&
	    (uint64_t)opt.conns * opt.pipeline > (UINT64_C(1) << 26))
		usage_error("--connections times --pipeline must be at most %llu",
			    1ull << 26);
	if (srcaddr_set && opt.source_addrs > 0 && !target_is_ipv4_loopback())
		usage_error("--source-addrs needs an IPv4 loopback (127.x.x.x) target");
	/* Spread many connections over several source addresses: a connect
	 * storm leaves ports in TIME_WAIT, and with most of the ephemeral range
	 * in use the kernel takes ever longer to find a free port. */
	if (!srcaddr_set && target_is_ipv4_loopback() &&
	    ((opt.mode->flags & BM_RECYCLES) || opt.conns > MANY_CONNS))
		opt.source_addrs = DEFAULT_SOURCE_ADDRS;
}

