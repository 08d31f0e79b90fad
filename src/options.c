#include "options.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"
#include "util.h"

enum {
	OPT_LOG_LEVEL = 0x100,
	OPT_ALLOW,
	OPT_DENY,
};

static const struct option long_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "listen", required_argument, NULL, 'l' },
	{ "backlog", required_argument, NULL, 'b' },
	{ "buffer-size", required_argument, NULL, 'B' },
	{ "max-connections", required_argument, NULL, 'm' },
	{ "idle-timeout", required_argument, NULL, 'i' },
	{ "transform", required_argument, NULL, 'T' },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "allow", required_argument, NULL, OPT_ALLOW },
	{ "deny", required_argument, NULL, OPT_DENY },
	{ "check-config", no_argument, NULL, 't' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* Which knob each value option sets. */
static const struct {
	int opt;
	const char *knob;
} option_knobs[] = {
	{ 'l', "listen" },
	{ 'b', "backlog" },
	{ 'B', "buffer_size" },
	{ 'm', "max_connections" },
	{ 'i', "idle_timeout" },
	{ 'T', "transform" },
	{ OPT_LOG_LEVEL, "log_level" },
	{ OPT_ALLOW, "allow" },
	{ OPT_DENY, "deny" },
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: echod [OPTION]...\n"
		"TCP echo daemon (RFC 862): every byte a client sends comes back.\n"
		"\n"
		"  -c, --config=FILE            config file (default %s)\n"
		"  -l, --listen=ADDR            listen address, repeatable; replaces the file's:\n"
		"                               PORT, HOST:PORT, [IPV6]:PORT, unix:/PATH, udp:...\n"
		"  -b, --backlog=N              listen(2) backlog (1..65535)\n"
		"  -B, --buffer-size=SIZE       per-connection buffer limit (64..64M, K/M suffix)\n"
		"  -m, --max-connections=N      concurrent connections, 0 = only the fd limit\n"
		"  -i, --idle-timeout=DURATION  close idle connections (e.g. 30s, 500ms, 5min), 0 = never\n"
		"  -T, --transform=none|upper   upper: send ASCII a-z back as A-Z\n"
		"      --log-level=LEVEL        err, warning, notice, info or debug\n"
		"      --allow=CIDR             admit only these peers, repeatable; replaces the file's\n"
		"      --deny=CIDR              refuse these peers, repeatable; replaces the file's\n"
		"  -t, --check-config           print the effective configuration and exit\n"
		"  -q, --quiet                  with -t: print nothing on success\n"
		"  -h, --help                   show this help and exit\n"
		"  -V, --version                show the version and build features and exit\n"
		"\n"
		"See echod(8) and echod.conf(5).\n",
		ECHOD_CONFIG_PATH);
}

static const struct knob *knob_for(int opt)
{
	for (size_t i = 0; i < ARRAY_SIZE(option_knobs); i++)
		if (option_knobs[i].opt == opt)
			return config_find_knob(option_knobs[i].knob);
	return NULL;
}

static const char *option_name(int opt)
{
	for (const struct option *lo = long_options; lo->name; lo++)
		if (lo->val == opt)
			return lo->name;
	return "?";
}

/* The long option that `--NAME=VALUE` (or an unambiguous prefix of NAME)
 * names, if it takes no value; NULL otherwise. */
static const struct option *valueless_long(const char *arg)
{
	const struct option *found = NULL;
	const char *eq;
	size_t n;

	if (strncmp(arg, "--", 2) != 0 || !(eq = strchr(arg, '=')))
		return NULL;
	arg += 2;
	n = (size_t)(eq - arg);
	for (const struct option *lo = long_options; lo->name; lo++) {
		if (strncmp(lo->name, arg, n) != 0)
			continue;
		if (lo->name[n] == '\0')
			return lo->has_arg == no_argument ? lo : NULL;
		if (found)
			return NULL; /* ambiguous */
		found = lo;
	}
	return found && found->has_arg == no_argument ? found : NULL;
}

/* getopt's optopt says little: for `--help=x` it is 'h'. Name what was
 * typed, quoted so that control characters never reach the terminal. */
static void report_unknown(FILE *err, const char *arg)
{
	const struct option *lo = valueless_long(arg);
	char text[64 * 4 + 1];

	if (lo) {
		fprintf(err, "echod: option '--%s' takes no value\n", lo->name);
		return;
	}
	if (strncmp(arg, "--", 2) == 0) {
		config_quote(text, sizeof(text), arg, 64);
		fprintf(err, "echod: unknown option '%s'\n", text);
	} else if (optopt > 0x20 && optopt < 0x7f) {
		fprintf(err, "echod: unknown option '-%c'\n", optopt);
	} else {
		fprintf(err, "echod: unknown option '-\\x%02x'\n", (unsigned char)optopt);
	}
}

int options_parse_to(int argc, char **argv, struct options *o, FILE *out, FILE *err)
{
	struct config scratch;
	char msg[CONFIG_ERROR_MAX], text[64 * 4 + 1];
	int c;

	memset(o, 0, sizeof(*o));
	o->config_path = ECHOD_CONFIG_PATH;
	/* Values are checked against a scratch configuration whose lists
	 * start empty, as they will when the overrides replace the file's. */
	config_defaults(&scratch);
	for (size_t i = 0; i < config_n_knobs; i++)
		config_clear(&scratch, &config_knobs[i]);
	opterr = 0;
	/* 0, not 1: glibc then also forgets where it was inside a group of
	 * short options (-tZ) when a previous call stopped there. */
	optind = 0;
	while ((c = getopt_long(argc, argv, ":c:l:b:B:m:i:T:tqhV", long_options, NULL)) != -1) {
		const struct knob *k;

		switch (c) {
		case 'c':
			o->config_path = optarg;
			o->config_given = true;
			continue;
		case 't':
			o->check = true;
			continue;
		case 'q':
			o->quiet = true;
			continue;
		case 'h':
			usage(out);
			return OPTIONS_EXIT_OK;
		case 'V':
			fprintf(out, "echod %s\nfeatures: %csystemd\n", ECHOD_VERSION, HAVE_SYSTEMD ? '+' : '-');
			return OPTIONS_EXIT_OK;
		case ':':
			config_quote(text, sizeof(text), argv[optind - 1], 64);
			fprintf(err, "echod: option '%s' needs a value\n", text);
			goto usage_error;
		case '?':
			report_unknown(err, argv[optind - 1]);
			goto usage_error;
		}
		k = knob_for(c);
		if (!k)
			goto usage_error;
		/* Check the value now: a bad one is a usage error (exit 2),
		 * reported before any file is read. */
		if (config_set(&scratch, k, optarg, msg, sizeof(msg)) < 0) {
			fprintf(err, "echod: --%s: %s\n", option_name(c), msg);
			goto usage_error;
		}
		if (o->n_overrides == OPTIONS_MAX_OVERRIDES) {
			fprintf(err, "echod: too many options\n");
			goto usage_error;
		}
		o->overrides[o->n_overrides].knob = k;
		o->overrides[o->n_overrides].value = optarg;
		o->n_overrides++;
	}
	if (optind < argc) {
		config_quote(text, sizeof(text), argv[optind], 64);
		fprintf(err, "echod: unexpected argument '%s'\n", text);
		goto usage_error;
	}
	return OPTIONS_RUN;

usage_error:
	fprintf(err, "Try 'echod --help' for more information.\n");
	return OPTIONS_USAGE;
}

int options_parse(int argc, char **argv, struct options *o)
{
	return options_parse_to(argc, argv, o, stdout, stderr);
}

int options_load_config(const struct options *o, struct config *cfg, char *err, size_t errlen)
{
	bool given[CONFIG_MAX_KNOBS] = { false };
	int r;

	config_defaults(cfg);
	r = config_load_file(cfg, o->config_path, !o->config_given, err, errlen);
	if (r < 0)
		return r;
	for (size_t i = 0; i < o->n_overrides; i++) {
		const struct knob *k = o->overrides[i].knob;
		size_t idx = (size_t)(k - config_knobs);
		if (!given[idx]) {
			/* -l replaces the file's list, it does not add to it. */
			config_clear(cfg, k);
			given[idx] = true;
		}
		/* Validated by options_parse(); cannot fail here. */
		r = config_set(cfg, k, o->overrides[i].value, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}
