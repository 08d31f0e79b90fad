/* Command line: options, their bounds and defaults, and the target address. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "bench.h"
#include "build-config.h"
#include "config.h"

static const struct bench_mode *const modes[] = {
	&mode_pingpong, &mode_stream, &mode_connect, &mode_idle, &mode_udp,
};

/* 24 hours, the longest of any duration option. */
#define MAX_DURATION_MS (86400ull * 1000)

static char target_text[ADDRESS_TEXT_MAX];
static enum listen_kind target_kind;

/*
 * The value parsers are echod's own (config.h), so a size or a duration
 * means the same on both command lines; these wrappers only turn their
 * -EINVAL and -ERANGE into usage errors that name the option.
 */
static uint64_t opt_uint(const char *name, const char *s, uint64_t min, uint64_t max)
{
	uint64_t v;
	int r = parse_uint(s, min, max, &v);

	if (r == -ERANGE)
		usage_error("%s must be between %" PRIu64 " and %" PRIu64 ", not '%s'",
			    name, min, max, s);
	if (r < 0)
		usage_error("invalid value for %s: '%s'", name, s);
	return v;
}

static size_t opt_size(const char *name, const char *s, size_t min, size_t max)
{
	char lo[32], hi[32];
	uint64_t v;
	int r = parse_size(s, min, max, &v);

	if (r == -ERANGE) {
		format_size(min, lo, sizeof(lo));
		format_size(max, hi, sizeof(hi));
		usage_error("%s must be between %s and %s bytes, not '%s'", name, lo,
			    hi, s);
	}
	if (r < 0)
		usage_error("invalid size for %s: '%s' (a number of bytes, or with "
			    "the suffix K or M)", name, s);
	return (size_t)v;
}

/*
 * Seconds. Beyond echod's syntax, a number of seconds may carry up to three
 * decimals ("0.2", "1.5s"), as scripts write them; it is spelled in
 * milliseconds for the shared parser, so the bounds and units stay its own.
 */
static double opt_duration(const char *name, const char *s, uint64_t min_ms)
{
	char buf[64], lo[32], hi[32];
	const char *text = s, *dot = strchr(s, '.');
	uint64_t ms;
	int r;

	if (dot) {
		const char *frac = dot + 1;
		size_t whole = (size_t)(dot - s), digits = strspn(frac, "0123456789");
		const char *unit = frac + digits;

		if (whole == 0 || whole > 15 || digits == 0 || digits > 3 ||
		    (*unit != '\0' && strcmp(unit, "s") != 0))
			usage_error("invalid duration for %s: '%s' (seconds with at "
				    "most three decimals, or a whole number with the "
				    "suffix ms, s or min)", name, s);
		snprintf(buf, sizeof(buf), "%.*s%.*s%.*sms", (int)whole, s, (int)digits,
			 frac, (int)(3 - digits), "000");
		text = buf;
	}
	r = parse_duration_ms(text, min_ms, MAX_DURATION_MS, &ms);
	if (r == -ERANGE) {
		format_duration_ms(min_ms, lo, sizeof(lo));
		format_duration_ms(MAX_DURATION_MS, hi, sizeof(hi));
		usage_error("%s must be between %s and %s, not '%s'", name, lo, hi, s);
	}
	if (r < 0)
		usage_error("invalid duration for %s: '%s' (a number of seconds, or "
			    "with the suffix ms, s or min)", name, s);
	return (double)ms / 1000.0;
}

/*
 * The target, in echod's `listen` syntax (address.h). A client cannot
 * connect to a wildcard, so a bare PORT (echod: every address) means the
 * loopback 127.0.0.1 here, as it always has for echod-bench.
 */
static void parse_target(const char *s)
{
	struct listen_addr la;
	char err[256];

	if (address_parse(s, &la, err, sizeof(err)) < 0)
		usage_error("invalid address '%s': %s", s, err);
	if (la.wildcard_v6) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&la.sa;
		in_port_t port = ((struct sockaddr_in6 *)&la.sa)->sin6_port;

		memset(&la.sa, 0, sizeof(la.sa));
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = port;
		la.len = sizeof(*sin);
	}
	if (la.kind != LISTEN_UNIX &&
	    ((struct sockaddr_in *)&la.sa)->sin_port == 0) /* same offset in sin6 */
		usage_error("invalid address '%s': port 0 cannot be connected to", s);
	memcpy(&opt.addr, &la.sa, sizeof(opt.addr));
	opt.addrlen = la.len;
	target_kind = la.kind;
	address_format((const struct sockaddr *)&opt.addr, opt.addrlen, target_text,
		       sizeof(target_text));
	opt.target = target_text;
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
"ADDRESS is written as for echod -l: IPV4:PORT, [IPV6]:PORT, unix:/PATH,\n"
"unix:@ABSTRACT, or PORT (here 127.0.0.1:PORT); host names are not\n"
"resolved. Default 127.0.0.1:7.\n"
"\n"
"  -m, --mode=MODE           pingpong (default), stream, connect, idle or udp\n"
"  -c, --connections=N       connections (connect: concurrent connectors); 1\n"
"  -P, --pipeline=N          messages in flight per connection (pingpong,\n"
"                            udp); 1\n"
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
"      --loss-timeout=DURATION  udp: a datagram not answered this long is\n"
"                            lost and replaced; 200ms\n"
"      --seed=N              seed of the byte streams; 1\n"
"      --reset               close connections with a reset (SO_LINGER 0)\n"
"  -j, --json                print the result as one JSON line\n"
"  -q, --quiet               no progress line\n"
"  -v, --verbose             report phases and errors on stderr\n"
"  -h, --help                display this help and exit\n"
"  -V, --version             output version information and exit\n"
"\n"
"SIZE and DURATION are written as in echod.conf: 64, 16K, 1M; 5, 250ms,\n"
"5s, 2min; a number of seconds may also have up to three decimals (0.5).\n"
"Exit status: 0 if every byte came back right and nothing stalled or\n"
"failed, 1 otherwise, 2 on a usage error.\n");
}

void parse_options(int argc, char **argv)
{
	enum {
		OPT_OPEN_TIMEOUT = 256,
		OPT_OPEN_CONCURRENCY,
		OPT_STALL_TIMEOUT,
		OPT_SOURCE_ADDRS,
		OPT_LOSS_TIMEOUT,
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
		{ "loss-timeout", required_argument, NULL, OPT_LOSS_TIMEOUT },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "reset", no_argument, NULL, OPT_RESET },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *target = "127.0.0.1:7";
	int ch, size_set = 0, srcaddr_set = 0, pipeline_set = 0, loss_set = 0;

	opt.mode = &mode_pingpong;
	opt.conns = 1;
	opt.pipeline = 1;
	opt.size = 64;
	opt.duration = 5.0;
	opt.warmup = 1.0;
	opt.open_timeout = 30.0;
	opt.stall = 2.0;
	opt.loss_timeout = 0.2;
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
					    "connect, idle or udp)", optarg);
			opt.mode = modes[i];
			break;
		}
		case 'c':
			opt.conns = (unsigned)opt_uint("--connections", optarg, 1,
						       MAX_CONNS);
			break;
		case 'P':
			opt.pipeline = (unsigned)opt_uint("--pipeline", optarg, 1,
							  MAX_PIPELINE);
			pipeline_set = 1;
			break;
		case 's':
			opt.size = opt_size("--size", optarg, 1, MAX_SIZE);
			size_set = 1;
			break;
		case 'd':
			opt.duration = opt_duration("--duration", optarg, 1);
			break;
		case 'w':
			opt.warmup = opt_duration("--warmup", optarg, 0);
			break;
		case OPT_OPEN_TIMEOUT:
			opt.open_timeout = opt_duration("--open-timeout", optarg, 1);
			break;
		case OPT_OPEN_CONCURRENCY:
			opt.open_concurrency = (unsigned)opt_uint(
				"--open-concurrency", optarg, 1, MAX_CONNS);
			break;
		case OPT_STALL_TIMEOUT:
			opt.stall = opt_duration("--stall-timeout", optarg, 10);
			break;
		case OPT_SOURCE_ADDRS:
			opt.source_addrs = (unsigned)opt_uint("--source-addrs", optarg,
							      0, MAX_SOURCE_ADDRS);
			srcaddr_set = 1;
			break;
		case OPT_LOSS_TIMEOUT:
			opt.loss_timeout = opt_duration("--loss-timeout", optarg, 1);
			loss_set = 1;
			break;
		case OPT_SEED:
			opt.seed = opt_uint("--seed", optarg, 0, UINT64_MAX);
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
		target = argv[optind++];
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	parse_target(target);
	if (opt.mode->flags & BM_DGRAM) {
		if (target_kind == LISTEN_UNIX)
			usage_error("the %s mode needs an IP address, not '%s'",
				    opt.mode->name, target);
		if (opt.size < UDP_HEADER_SIZE || opt.size > UDP_MAX_SIZE)
			usage_error("--size must be between %u and %u bytes in %s mode",
				    UDP_HEADER_SIZE, UDP_MAX_SIZE, opt.mode->name);
		if (opt.reset || srcaddr_set)
			usage_error("--reset and --source-addrs apply to TCP only");
		if (opt.loss_timeout >= opt.stall)
			usage_error("--loss-timeout must be shorter than --stall-timeout");
	} else {
		if (target_kind == LISTEN_UDP)
			usage_error("'%s' is a UDP address; the %s mode speaks TCP",
				    target, opt.mode->name);
		if (loss_set)
			usage_error("--loss-timeout applies to udp mode only");
	}

	if (!size_set && opt.mode->default_size)
		opt.size = opt.mode->default_size;
	if (pipeline_set && !(opt.mode->flags & BM_WINDOW) && opt.pipeline != 1)
		usage_error("--pipeline applies to pingpong and udp mode only");
	if ((opt.mode->flags & BM_WINDOW) &&
	    (uint64_t)opt.conns * opt.pipeline > (UINT64_C(1) << 26))
		usage_error("--connections times --pipeline must be at most %llu",
			    1ull << 26);
	if (srcaddr_set && opt.source_addrs > 0 && !target_is_ipv4_loopback())
		usage_error("--source-addrs needs an IPv4 loopback (127.x.x.x) target");
	/* Spread many connections over several source addresses: a connect
	 * storm leaves ports in TIME_WAIT, and with most of the ephemeral range
	 * in use the kernel takes ever longer to find a free port. */
	if (!srcaddr_set && target_is_ipv4_loopback() && !(opt.mode->flags & BM_DGRAM) &&
	    ((opt.mode->flags & BM_RECYCLES) || opt.conns > MANY_CONNS))
		opt.source_addrs = DEFAULT_SOURCE_ADDRS;
}

