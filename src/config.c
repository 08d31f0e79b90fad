/* The knob table, setting knobs from text, printing them, and reading
 * the config file. The kinds of value are in config_values.c. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define MIB (1024ULL * 1024ULL)
#define SECOND_MS 1000ULL
#define MINUTE_MS (60ULL * SECOND_MS)
#define DAY_MS (24ULL * 60ULL * MINUTE_MS)

#define KNOB(name, type, f, min, max, def, doc) \
	{ name, &type, offsetof(struct config, f), sizeof(((struct config *)0)->f), min, max, def, doc }

/* `listen` is n_listen and the array after it, read as one field. */
#define LISTEN_SIZE (offsetof(struct config, listen) + sizeof(((struct config *)0)->listen) - \
		     offsetof(struct config, n_listen))

/* Every knob, its bounds, default and meaning: the one place to add one
 * (with its field in struct config). The man page and `echod -t` follow
 * this order. */
const struct knob config_knobs[] = {
	{ "listen", &knob_listen, offsetof(struct config, n_listen), LISTEN_SIZE, 0, 0, "[::]:7",
	  "address to listen on; may repeat" },
	KNOB("backlog", knob_uint32, backlog, 1, 65535, "4096",
	     "listen(2) backlog"),
	KNOB("buffer_size", knob_size32, buffer_size, 64, 64 * MIB, "64K",
	     "most unsent bytes a connection may hold"),
	KNOB("max_connections", knob_uint32, max_connections, 0, 10000000, "0",
	     "concurrent connections; 0 = only the fd limit"),
	KNOB("idle_timeout", knob_duration_ms, idle_timeout_ms, 0, 30 * DAY_MS, "0",
	     "close connections idle this long; 0 = never"),
	KNOB("shutdown_timeout", knob_duration_ms, shutdown_timeout_ms, 0, 60 * MINUTE_MS, "5s",
	     "how long SIGTERM waits for pending echoes"),
	KNOB("transform", knob_transform, transform, 0, 0, "none",
	     "none, or upper: a-z sent back as A-Z"),
	KNOB("reuse_port", knob_bool, reuse_port, 0, 1, "no",
	     "SO_REUSEPORT on sockets echod opens itself"),
	KNOB("log_level", knob_log_level, log_level, 0, 0, "info",
	     "err, warning, notice, info or debug"),
	KNOB("allow", knob_cidr_list, allow, 0, 0, NULL,
	     "peers admitted, when any is given; may repeat"),
	KNOB("deny", knob_cidr_list, deny, 0, 0, NULL,
	     "peers refused; may repeat"),
	KNOB("max_connections_per_source", knob_uint32, max_connections_per_source, 0, 10000000, "0",
	     "concurrent TCP connections from one source; 0 = no cap"),
	KNOB("max_connection_time", knob_duration_ms, max_connection_time_ms, 0, 30 * DAY_MS, "0",
	     "close TCP connections open this long; 0 = never"),
	KNOB("udp_rate_per_source", knob_uint32, udp_rate_per_source, 0, 10000000, "0",
	     "UDP datagrams per second from one source; 0 = no limit"),
	KNOB("proxy_trusted", knob_cidr_list, proxy_trusted, 0, 0, "127.0.0.0/8 ::1",
	     "peers allowed to send PROXY protocol headers; may repeat"),
	KNOB("metrics", knob_stream_address, metrics, 0, 0, NULL,
	     "TCP or unix: address serving GET /metrics"),
	KNOB("defer_accept", knob_duration_s, defer_accept_s, 0, 10 * MINUTE_MS, "1s",
	     "TCP_DEFER_ACCEPT on TCP listeners; 0 = off"),
	KNOB("tcp_keepalive", knob_duration_s, tcp_keepalive_s, 0, 32767 * SECOND_MS, "60s",
	     "first keepalive probe after this much silence; 0 = off"),
	KNOB("free_bind", knob_bool, free_bind, 0, 1, "no",
	     "IP_FREEBIND on sockets echod opens"),
	KNOB("unix_mode", knob_mode, unix_mode, 0, 0777, "0666",
	     "permission bits of unix socket files echod creates"),
	KNOB("unix_group", knob_group, unix_group, 0, 0, NULL,
	     "group of unix socket files echod creates"),
	KNOB("log_connections", knob_bool, log_connections, 0, 1, "no",
	     "one info line per TCP connection when it closes"),
};
const size_t config_n_knobs = ARRAY_SIZE(config_knobs);
_Static_assert(ARRAY_SIZE(config_knobs) <= CONFIG_MAX_KNOBS, "raise CONFIG_MAX_KNOBS");

const struct knob *config_find_knob(const char *name)
{
	for (size_t i = 0; i < config_n_knobs; i++)
		if (strcmp(config_knobs[i].name, name) == 0)
			return &config_knobs[i];
	return NULL;
}

/* Levenshtein distance of a and b, giving up (returning limit + 1) once
 * it exceeds limit; b is a knob name, short by construction. */
static size_t edit_distance(const char *a, const char *b, size_t limit)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[64];

	if (lb >= sizeof(row) / sizeof(row[0]) || (la > lb ? la - lb : lb - la) > limit)
		return limit + 1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0], best;
		row[0] = i;
		best = row[0];
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t v = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < v)
				v = up + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			row[j] = v;
			diag = up;
			if (v < best)
				best = v;
		}
		if (best > limit)
			return limit + 1;
	}
	return row[lb];
}

const struct knob *config_nearest_knob(const char *name)
{
	const struct knob *best = NULL;
	size_t best_d = CONFIG_SUGGEST_DISTANCE + 1;

	for (size_t i = 0; i < config_n_knobs; i++) {
		size_t d = edit_distance(name, config_knobs[i].name, CONFIG_SUGGEST_DISTANCE);
		if (d < best_d) {
			best_d = d;
			best = &config_knobs[i];
		}
	}
	return best;
}

static void *field(struct config *cfg, const struct knob *k)
{
	return (char *)cfg + k->offset;
}

static const void *field_of(const struct config *cfg, const struct knob *k)
{
	return (const char *)cfg + k->offset;
}

/* ---- knobs ---- */

/* The first control character of s (a byte below 0x20 other than tab, or
 * 0x7f), or 0. None is valid in any value, and refusing them keeps every
 * value printable by `echod -t` on a line of its own. */
static int control_char(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return c;
	}
	return 0;
}

void config_quote(char *buf, size_t size, const char *s, size_t max)
{
	size_t o = 0;

	for (size_t i = 0; s[i] && i < max && o + 5 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
}

/* `value # comment`: white space then '#'. Read as part of the value it
 * would be wrong however it parsed, so it is refused everywhere. */
static bool inline_comment(const char *s)
{
	for (const char *p = strchr(s, '#'); p; p = strchr(p + 1, '#'))
		if (p > s && isspace((unsigned char)p[-1]))
			return true;
	return false;
}

int config_set(struct config *cfg, const struct knob *k, const char *value, char *err, size_t errlen)
{
	char why[CONFIG_ERROR_MAX / 2];
	int c = control_char(value);
	int r;

	if (c) {
		snprintf(err, errlen, "invalid value for '%s': control character 0x%02x", k->name, c);
		return -EINVAL;
	}
	/* The file trims values; one from the command line must read back
	 * the same from `echod -t` output. */
	if (*value && (isspace((unsigned char)value[0]) || isspace((unsigned char)value[strlen(value) - 1]))) {
		snprintf(err, errlen, "invalid value for '%s': '%s' (white space around the value)", k->name,
			 value);
		return -EINVAL;
	}
	if (inline_comment(value)) {
		snprintf(err, errlen,
			 "invalid value for '%s': '%s' (inline comments are not allowed: a comment must be on a line of its own)",
			 k->name, value);
		return -EINVAL;
	}
	why[0] = '\0';
	r = k->type->parse(k, field(cfg, k), value, why, sizeof(why));
	if (r == 0)
		return 0;
	if (r == -ENOSPC) {
		snprintf(err, errlen, "%s", why);
	} else if (why[0]) {
		snprintf(err, errlen, "invalid value for '%s': %s", k->name, why);
	} else {
		char what[160];
		k->type->describe(k, what, sizeof(what));
		snprintf(err, errlen, "%s for '%s': '%s' (expected %s)",
			 r == -ERANGE ? "value out of range" : "invalid value", k->name, value, what);
	}
	return r;
}

void config_clear(struct config *cfg, const struct knob *k)
{
	if (k->type->clear)
		k->type->clear(field(cfg, k));
}

void config_defaults(struct config *cfg)
{
	char err[CONFIG_ERROR_MAX], value[CONFIG_LISTEN_TEXT_MAX];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < config_n_knobs; i++) {
		const struct knob *k = &config_knobs[i];
		const char *p = k->def;
		/* The defaults are in the table as text; they parse by
		 * construction (the unit tests check it). A list's entries are
		 * separated by a space. */
		while (p && *p) {
			size_t n = strcspn(p, " ");
			if (n >= sizeof(value))
				abort();
			memcpy(value, p, n);
			value[n] = '\0';
			if (config_set(cfg, k, value, err, sizeof(err)) < 0)
				abort();
			p += n + (p[n] == ' ');
		}
	}
}

void config_print(const struct config *cfg, FILE *out)
{
	char value[CONFIG_LISTEN_TEXT_MAX];

	for (size_t i = 0; i < config_n_knobs; i++) {
		const struct knob *k = &config_knobs[i];
		const void *f = field_of(cfg, k);
		size_t n = k->type->count(f);

		if (n == 0)
			fprintf(out, "# %s =\n", k->name);
		for (size_t j = 0; j < n; j++) {
			k->type->format(k, f, j, value, sizeof(value));
			fprintf(out, "%s = %s\n", k->name, value);
		}
	}
}

/* ---- the file ---- */

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* One line; seen[i] is the line that set knob i, or 0. */
static int parse_line(struct config *cfg, char *line, unsigned *seen, unsigned lineno, char *err,
		      size_t errlen)
{
	char *eq, *key, *value;
	char text[64 * 4 + 1];
	const struct knob *k;

	line = trim(line);
	if (*line == '\0' || *line == '#' || *line == ';')
		return 0;
	eq = strchr(line, '=');
	if (!eq) {
		config_quote(text, sizeof(text), line, 64);
		snprintf(err, errlen, "expected 'key = value', got '%s'", text);
		return -EINVAL;
	}
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	if (*key == '\0') {
		snprintf(err, errlen, "missing key before '='");
		return -EINVAL;
	}
	k = config_find_knob(key);
	if (!k) {
		const struct knob *near = config_nearest_knob(key);
		config_quote(text, sizeof(text), key, 64);
		if (near)
			snprintf(err, errlen, "unknown key '%s' (did you mean '%s'?)", text, near->name);
		else
			snprintf(err, errlen, "unknown key '%s'", text);
		return -EINVAL;
	}
	if (*value == '\0') {
		snprintf(err, errlen, "missing value for '%s'", k->name);
		return -EINVAL;
	}
	size_t idx = (size_t)(k - config_knobs);
	if (k->type->clear) {
		/* The file's list replaces the default one. */
		if (!seen[idx])
			config_clear(cfg, k);
	} else if (seen[idx]) {
		snprintf(err, errlen, "'%s' is already set on line %u", k->name, seen[idx]);
		return -EINVAL;
	}
	seen[idx] = lineno;
	return config_set(cfg, k, value, err, errlen);
}

int config_parse_buffer(struct config *cfg, const char *name, const char *data, size_t len,
			char *err, size_t errlen)
{
	unsigned seen[ARRAY_SIZE(config_knobs)] = { 0 };
	char msg[CONFIG_ERROR_MAX];
	char line[CONFIG_LINE_MAX + 1];
	unsigned lineno = 0;
	size_t pos = 0;
	int r = 0;

	/* Work on a copy: a bad file must leave cfg untouched. */
	struct config *tmp = malloc(sizeof(*tmp));
	if (!tmp) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -ENOMEM;
	}
	*tmp = *cfg;
	/* A UTF-8 byte-order mark, as some editors write, is not part of the
	 * first key. */
	if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *start = data + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;

		pos += n + (nl != NULL);
		lineno++;
		if (n > CONFIG_LINE_MAX) {
			snprintf(err, errlen, "%s:%u: line too long (more than %d bytes)", name, lineno,
				 CONFIG_LINE_MAX);
			r = -EINVAL;
			break;
		}
		/* A C string would end at the NUL and silently drop the rest. */
		if (memchr(start, '\0', n)) {
			snprintf(err, errlen, "%s:%u: NUL byte in the line", name, lineno);
			r = -EINVAL;
			break;
		}
		memcpy(line, start, n);
		line[n] = '\0';
		if (parse_line(tmp, line, seen, lineno, msg, sizeof(msg)) < 0) {
			snprintf(err, errlen, "%s:%u: %s", name, lineno, msg);
			r = -EINVAL;
			break;
		}
	}
	if (r == 0)
		*cfg = *tmp;
	free(tmp);
	return r;
}

/* The whole file, from a regular file only: a FIFO or a device would
 * block `echod -t` or a reload, or never end. */
static int read_file(const char *path, bool missing_ok, char **data, size_t *len, char *err,
		     size_t errlen)
{
	struct stat st;
	size_t have = 0;
	char *buf;
	int fd, r;

	*data = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT && missing_ok)
			return 0;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(-r));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		r = -EFBIG;
		snprintf(err, errlen, "%s: larger than %s", path, CONFIG_FILE_MAX_TEXT);
		goto fail;
	}
	/* One byte more than the limit: a file that grew since fstat() is
	 * caught by the read that fills it. */
	buf = malloc(CONFIG_FILE_MAX + 1);
	if (!buf) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, buf + have, CONFIG_FILE_MAX + 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-r));
			free(buf);
			goto fail;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > CONFIG_FILE_MAX) {
			r = -EFBIG;
			snprintf(err, errlen, "%s: larger than %s", path, CONFIG_FILE_MAX_TEXT);
			free(buf);
			goto fail;
		}
	}
	close(fd);
	*data = buf;
	*len = have;
	return 0;

fail:
	close(fd);
	return r;
}

int config_load_file(struct config *cfg, const char *path, bool missing_ok, char *err, size_t errlen)
{
	char *data;
	size_t len;
	int r = read_file(path, missing_ok, &data, &len, err, errlen);

	if (r < 0 || !data)
		return r;
	r = config_parse_buffer(cfg, path, data, len, err, errlen);
	free(data);
	return r;
}
