#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "address.h"
#include "log.h"

#define KIB 1024ULL
#define MIB (1024ULL * 1024ULL)
#define SECOND_MS 1000ULL
#define MINUTE_MS (60ULL * SECOND_MS)
#define DAY_MS (24ULL * 60ULL * MINUTE_MS)

#define FIELD(f) offsetof(struct config, f)

/* Every knob, its bounds, default and meaning: the one place to add one.
 * The man page and `echod -t` follow this order. */
const struct knob config_knobs[] = {
	{ "listen", KNOB_LISTEN, 0, 0, 0, "[::]:7",
	  "address to listen on; may repeat" },
	{ "backlog", KNOB_UINT, FIELD(backlog), 1, 65535, "4096",
	  "listen(2) backlog" },
	{ "buffer_size", KNOB_SIZE, FIELD(buffer_size), 64, 64 * MIB, "16K",
	  "most unsent bytes a connection may hold" },
	{ "max_connections", KNOB_UINT, FIELD(max_connections), 0, 10000000, "0",
	  "concurrent connections; 0 = only the fd limit" },
	{ "idle_timeout", KNOB_DURATION, FIELD(idle_timeout_ms), 0, 30 * DAY_MS, "0",
	  "close connections idle this long; 0 = never" },
	{ "shutdown_timeout", KNOB_DURATION, FIELD(shutdown_timeout_ms), 0, 60 * MINUTE_MS, "5s",
	  "how long SIGTERM waits for pending echoes" },
	{ "transform", KNOB_TRANSFORM, FIELD(transform), 0, 0, "none",
	  "none, or upper: a-z sent back as A-Z" },
	{ "reuse_port", KNOB_BOOL, FIELD(reuse_port), 0, 1, "no",
	  "SO_REUSEPORT on sockets echod opens itself" },
	{ "log_level", KNOB_LOG_LEVEL, FIELD(log_level), 0, 0, "info",
	  "err, warning, notice, info or debug" },
};
const size_t config_n_knobs = sizeof(config_knobs) / sizeof(config_knobs[0]);

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

static uint64_t *field(struct config *cfg, const struct knob *k)
{
	return (uint64_t *)((char *)cfg + k->offset);
}

static uint64_t field_value(const struct config *cfg, const struct knob *k)
{
	return *(const uint64_t *)((const char *)cfg + k->offset);
}

/* ---- value parsers ---- */

/* Strict decimal: digits only, no sign, no white space, no overflow. */
static int parse_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*sp = s;
	*out = v;
	return 0;
}

static int scaled(uint64_t v, uint64_t unit, uint64_t min, uint64_t max, uint64_t *out)
{
	if (unit && v > UINT64_MAX / unit)
		return -ERANGE;
	v *= unit;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	int r = parse_digits(&s, &v);

	if (r < 0)
		return r;
	if (*s != '\0')
		return -EINVAL;
	return scaled(v, 1, min, max, out);
}

int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v, unit = 1;
	int r = parse_digits(&s, &v);

	if (r < 0)
		return r;
	if (*s == 'K' || *s == 'k')
		unit = KIB, s++;
	else if (*s == 'M' || *s == 'm')
		unit = MIB, s++;
	if (*s != '\0')
		return -EINVAL;
	return scaled(v, unit, min, max, out);
}

int parse_duration_ms(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v, unit;
	int r = parse_digits(&s, &v);

	if (r < 0)
		return r;
	if (*s == '\0' || strcmp(s, "s") == 0)
		unit = SECOND_MS;
	else if (strcmp(s, "ms") == 0)
		unit = 1;
	else if (strcmp(s, "min") == 0)
		unit = MINUTE_MS;
	else
		return -EINVAL;
	return scaled(v, unit, min, max, out);
}

int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static const char *const transform_names[] = {
	[TRANSFORM_NONE] = "none",
	[TRANSFORM_UPPER] = "upper",
};

int parse_transform(const char *s, enum transform *out)
{
	for (size_t i = 0; i < sizeof(transform_names) / sizeof(transform_names[0]); i++) {
		if (strcmp(s, transform_names[i]) == 0) {
			*out = (enum transform)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *transform_name(enum transform t)
{
	return t <= TRANSFORM_UPPER ? transform_names[t] : "?";
}

static const char *const level_names[] = {
	[LOG_LEVEL_ERR] = "err",
	[LOG_LEVEL_WARNING] = "warning",
	[LOG_LEVEL_NOTICE] = "notice",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

int parse_log_level(const char *s, int *out)
{
	for (int i = LOG_LEVEL_ERR; i <= LOG_LEVEL_DEBUG; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(int level)
{
	return level >= LOG_LEVEL_ERR && level <= LOG_LEVEL_DEBUG ? level_names[level] : "?";
}

void format_size(uint64_t bytes, char *buf, size_t size)
{
	if (bytes && bytes % MIB == 0)
		snprintf(buf, size, "%lluM", (unsigned long long)(bytes / MIB));
	else if (bytes && bytes % KIB == 0)
		snprintf(buf, size, "%lluK", (unsigned long long)(bytes / KIB));
	else
		snprintf(buf, size, "%llu", (unsigned long long)bytes);
}

void format_duration_ms(uint64_t ms, char *buf, size_t size)
{
	if (ms == 0)
		snprintf(buf, size, "0");
	else if (ms % MINUTE_MS == 0)
		snprintf(buf, size, "%llumin", (unsigned long long)(ms / MINUTE_MS));
	else if (ms % SECOND_MS == 0)
		snprintf(buf, size, "%llus", (unsigned long long)(ms / SECOND_MS));
	else
		snprintf(buf, size, "%llums", (unsigned long long)ms);
}

/* ---- knobs ---- */

/* What a valid value looks like, for error messages. */
static void describe(const struct knob *k, char *buf, size_t size)
{
	char lo[32], hi[32];

	switch (k->type) {
	case KNOB_LISTEN:
		snprintf(buf, size, "PORT, HOST:PORT, [IPV6]:PORT or unix:/PATH, optionally prefixed by udp:");
		return;
	case KNOB_UINT:
		snprintf(buf, size, "a whole number from %llu to %llu",
			 (unsigned long long)k->min, (unsigned long long)k->max);
		return;
	case KNOB_SIZE:
		format_size(k->min, lo, sizeof(lo));
		format_size(k->max, hi, sizeof(hi));
		snprintf(buf, size, "a size in bytes, optionally with suffix K or M, from %s to %s", lo, hi);
		return;
	case KNOB_DURATION:
		format_duration_ms(k->min, lo, sizeof(lo));
		format_duration_ms(k->max, hi, sizeof(hi));
		snprintf(buf, size, "seconds, or a number with suffix ms, s or min, from %s to %s", lo, hi);
		return;
	case KNOB_BOOL:
		snprintf(buf, size, "yes, no, true, false, on, off, 1 or 0");
		return;
	case KNOB_TRANSFORM:
		snprintf(buf, size, "none or upper");
		return;
	case KNOB_LOG_LEVEL:
		snprintf(buf, size, "err, warning, notice, info or debug");
		return;
	}
}

static int set_listen(struct config *cfg, const char *value, char *err, size_t errlen)
{
	struct listen_addr addr;
	char why[CONFIG_ERROR_MAX / 2];

	if (cfg->n_listen >= CONFIG_MAX_LISTEN) {
		snprintf(err, errlen, "too many 'listen' addresses (at most %d)", CONFIG_MAX_LISTEN);
		return -1;
	}
	if (strlen(value) >= CONFIG_LISTEN_TEXT_MAX) {
		snprintf(err, errlen, "invalid value for 'listen': address longer than %d characters",
			 CONFIG_LISTEN_TEXT_MAX - 1);
		return -1;
	}
	if (address_parse(value, &addr, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "invalid value for 'listen': %s", why);
		return -1;
	}
	strcpy(cfg->listen[cfg->n_listen++], value);
	return 0;
}

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

/* Copies at most max bytes of s to buf for a message, control characters
 * escaped as \xNN, so that an error never carries raw control bytes. */
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
	uint64_t v = 0;
	int r = -EINVAL;
	int c = control_char(value);

	if (c) {
		snprintf(err, errlen, "invalid value for '%s': control character 0x%02x", k->name, c);
		return -1;
	}
	/* The file trims values; one from the command line must read back
	 * the same from `echod -t` output. */
	if (*value && (isspace((unsigned char)value[0]) || isspace((unsigned char)value[strlen(value) - 1]))) {
		snprintf(err, errlen, "invalid value for '%s': '%s' (white space around the value)", k->name,
			 value);
		return -1;
	}
	if (inline_comment(value)) {
		snprintf(err, errlen,
			 "invalid value for '%s': '%s' (inline comments are not allowed: a comment must be on a line of its own)",
			 k->name, value);
		return -1;
	}
	switch (k->type) {
	case KNOB_LISTEN:
		return set_listen(cfg, value, err, errlen);
	case KNOB_UINT:
		r = parse_uint(value, k->min, k->max, &v);
		break;
	case KNOB_SIZE:
		r = parse_size(value, k->min, k->max, &v);
		break;
	case KNOB_DURATION:
		r = parse_duration_ms(value, k->min, k->max, &v);
		break;
	case KNOB_BOOL: {
		bool b = false;
		r = parse_bool(value, &b);
		v = b;
		break;
	}
	case KNOB_TRANSFORM: {
		enum transform t = TRANSFORM_NONE;
		r = parse_transform(value, &t);
		v = t;
		break;
	}
	case KNOB_LOG_LEVEL: {
		int l = 0;
		r = parse_log_level(value, &l);
		v = (uint64_t)l;
		break;
	}
	}
	if (r < 0) {
		char what[160];
		describe(k, what, sizeof(what));
		snprintf(err, errlen, "%s for '%s': '%s' (expected %s)",
			 r == -ERANGE ? "value out of range" : "invalid value", k->name, value, what);
		return -1;
	}
	*field(cfg, k) = v;
	return 0;
}

void config_defaults(struct config *cfg)
{
	char err[CONFIG_ERROR_MAX];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < config_n_knobs; i++) {
		/* The defaults are in the table as text; they parse by construction. */
		if (config_set(cfg, &config_knobs[i], config_knobs[i].def, err, sizeof(err)) < 0)
			abort();
	}
}

/* One knob's value in config-file syntax (`listen` is printed apart). */
static void format_value(const struct config *cfg, const struct knob *k, char *buf, size_t size)
{
	uint64_t v = field_value(cfg, k);

	switch (k->type) {
	case KNOB_LISTEN:
		snprintf(buf, size, "%s", cfg->n_listen ? cfg->listen[0] : "");
		return;
	case KNOB_UINT:
		snprintf(buf, size, "%llu", (unsigned long long)v);
		return;
	case KNOB_SIZE:
		format_size(v, buf, size);
		return;
	case KNOB_DURATION:
		format_duration_ms(v, buf, size);
		return;
	case KNOB_BOOL:
		snprintf(buf, size, "%s", v ? "yes" : "no");
		return;
	case KNOB_TRANSFORM:
		snprintf(buf, size, "%s", transform_name((enum transform)v));
		return;
	case KNOB_LOG_LEVEL:
		snprintf(buf, size, "%s", log_level_name((int)v));
		return;
	}
}

void config_print(const struct config *cfg, FILE *out)
{
	char value[CONFIG_LISTEN_TEXT_MAX];

	for (size_t i = 0; i < config_n_knobs; i++) {
		const struct knob *k = &config_knobs[i];
		if (k->type == KNOB_LISTEN) {
			for (size_t j = 0; j < cfg->n_listen; j++)
				fprintf(out, "%s = %s\n", k->name, cfg->listen[j]);
			continue;
		}
		format_value(cfg, k, value, sizeof(value));
		fprintf(out, "%s = %s\n", k->name, value);
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

static int parse_line(struct config *cfg, char *line, unsigned *seen, bool *listen_seen,
		      unsigned lineno, char *err, size_t errlen)
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
		return -1;
	}
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	if (*key == '\0') {
		snprintf(err, errlen, "missing key before '='");
		return -1;
	}
	k = config_find_knob(key);
	if (!k) {
		const struct knob *near = config_nearest_knob(key);
		config_quote(text, sizeof(text), key, 64);
		if (near)
			snprintf(err, errlen, "unknown key '%s' (did you mean '%s'?)", text, near->name);
		else
			snprintf(err, errlen, "unknown key '%s'", text);
		return -1;
	}
	if (*value == '\0') {
		snprintf(err, errlen, "missing value for '%s'", k->name);
		return -1;
	}
	size_t idx = (size_t)(k - config_knobs);
	if (k->type == KNOB_LISTEN) {
		/* The file's list replaces the default one. */
		if (!*listen_seen)
			cfg->n_listen = 0;
		*listen_seen = true;
	} else if (seen[idx]) {
		snprintf(err, errlen, "'%s' is already set on line %u", k->name, seen[idx]);
		return -1;
	}
	seen[idx] = lineno;
	return config_set(cfg, k, value, err, errlen);
}

int config_parse_buffer(struct config *cfg, const char *name, const char *data, size_t len,
			char *err, size_t errlen)
{
	unsigned seen[sizeof(config_knobs) / sizeof(config_knobs[0])] = { 0 };
	bool listen_seen = false;
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
		if (parse_line(tmp, line, seen, &listen_seen, lineno, msg, sizeof(msg)) < 0) {
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
