/* The value parsers and formatters, and the kinds of knob built on them:
 * each kind reads text into its own typed field and writes it back. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "util.h"

#define KIB 1024ULL
#define MIB (1024ULL * 1024ULL)
#define SECOND_MS 1000ULL
#define MINUTE_MS (60ULL * SECOND_MS)

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

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
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
	for (size_t i = 0; i < ARRAY_SIZE(transform_names); i++) {
		if (strcmp(s, transform_names[i]) == 0) {
			*out = (enum transform)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *transform_name(enum transform t)
{
	return (size_t)t < ARRAY_SIZE(transform_names) ? transform_names[t] : "?";
}

static const char *const level_names[] = {
	[LOG_LEVEL_ERR] = "err",
	[LOG_LEVEL_WARNING] = "warning",
	[LOG_LEVEL_NOTICE] = "notice",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

int parse_log_level(const char *s, enum log_level *out)
{
	for (int i = LOG_LEVEL_ERR; i <= LOG_LEVEL_DEBUG; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
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

/* ---- kinds of knob ---- */

static size_t count_one(const void *field)
{
	return 1;
}

/* A whole number in a uint32_t. */
static int uint32_parse(const struct knob *k, void *field, const char *value, char *why, size_t whylen)
{
	uint64_t v;
	int r = parse_uint(value, k->min, k->max, &v);

	if (r == 0)
		*(uint32_t *)field = (uint32_t)v;
	return r;
}

static void uint32_format(const struct knob *k, const void *field, size_t i, char *buf, size_t size)
{
	snprintf(buf, size, "%u", *(const uint32_t *)field);
}

static void uint32_describe(const struct knob *k, char *buf, size_t size)
{
	snprintf(buf, size, "a whole number from %llu to %llu", (unsigned long long)k->min,
		 (unsigned long long)k->max);
}

const struct knob_type knob_uint32 = {
	sizeof(uint32_t), uint32_parse, count_one, uint32_format, NULL, uint32_describe,
};

/* A size in bytes, in a uint32_t. */
static int size32_parse(const struct knob *k, void *field, const char *value, char *why, size_t whylen)
{
	uint64_t v;
	int r = parse_size(value, k->min, k->max, &v);

	if (r == 0)
		*(uint32_t *)field = (uint32_t)v;
	return r;
}

static void size32_format(const struct knob *k, const void *field, size_t i, char *buf, size_t size)
{
	format_size(*(const uint32_t *)field, buf, size);
}

static void size32_describe(const struct knob *k, char *buf, size_t size)
{
	char lo[32], hi[32];

	format_size(k->min, lo, sizeof(lo));
	format_size(k->max, hi, sizeof(hi));
	snprintf(buf, size, "a size in bytes, optionally with suffix K or M, from %s to %s", lo, hi);
}

const struct knob_type knob_size32 = {
	sizeof(uint32_t), size32_parse, count_one, size32_format, NULL, size32_describe,
};

/* A duration in milliseconds, in a uint64_t. */
static int duration_ms_parse(const struct knob *k, void *field, const char *value, char *why, size_t whylen)
{
	return parse_duration_ms(value, k->min, k->max, (uint64_t *)field);
}

static void duration_ms_format(const struct knob *k, const void *field, size_t i, char *buf, size_t size)
{
	format_duration_ms(*(const uint64_t *)field, buf, size);
}

static void duration_describe(const struct knob *k, char *buf, size_t size)
{
	char lo[32], hi[32];

	format_duration_ms(k->min, lo, sizeof(lo));
	format_duration_ms(k->max, hi, sizeof(hi));
	snprintf(buf, size, "seconds, or a number with suffix ms, s or min, from %s to %s", lo, hi);
}

const struct knob_type knob_duration_ms = {
	sizeof(uint64_t), duration_ms_parse, count_one, duration_ms_format, NULL, duration_describe,
};

static int bool_parse(const struct knob *k, void *field, const char *value, char *why, size_t whylen)
{
	return parse_bool(value, (bool *)field);
}

static void bool_format(const struct knob *k, const void *field, size_t i, char *buf, size_t size)
{
	snprintf(buf, size, "%s", *(const bool *)field ? "yes" : "no");
}

static void bool_describe(const struct knob *k, char *buf, size_t size)
{
	snprintf(buf, size, "yes, no, true, false, on, off, 1 or 0");
}

const struct knob_type knob_bool = {
	sizeof(bool), bool_parse, count_one, bool_format, NULL, bool_describe,
};

static int transform_parse(const struct knob *k, void *field, const char *value, char *why, size_t whylen)
{
	return parse_transform(value, (enum transform *)field);
}

static void transform_format(const struct knob *k, const void *field, size_t i, char *buf, size_t size)
{
	snprintf(buf, size, "%s", transform_name(*(const enum transform *)field));
}

static void transform_describe(const struct knob *k, char *buf, size_t size)
{
	snprintf(buf, size, "none or upper");
}

const struct knob_type knob_transform = {
	sizeof(enum transform), transform_parse, count_one, transform_format, NULL, transform_describe,
};

static int log_level_parse(const struct knob *k, void *field, const char *value, char *why, size_t whylen)
{
	return parse_log_level(value, (enum log_level *)field);
}

static void log_level_format(const struct knob *k, const void *field, size_t i, char *buf, size_t size)
{
	snprintf(buf, size, "%s", log_level_name(*(const enum log_level *)field));
}

static void log_level_describe(const struct knob *k, char *buf, size_t size)
{
	snprintf(buf, size, "err, warning, notice, info or debug");
}

const struct knob_type knob_log_level = {
	sizeof(enum log_level), log_level_parse, count_one, log_level_format, NULL, log_level_describe,
};

/* `listen`: the addresses as given (the listener code parses them again
 * when it opens them), each checked here. The field is n_listen, followed
 * by the array, as struct config lays them out. */
struct listen_field {
	size_t n;
	char text[CONFIG_MAX_LISTEN][CONFIG_LISTEN_TEXT_MAX];
};

_Static_assert(offsetof(struct config, listen) - offsetof(struct config, n_listen) ==
		       offsetof(struct listen_field, text),
	       "struct listen_field is n_listen and listen of struct config");

static int listen_parse(const struct knob *k, void *field, const char *value, char *why, size_t whylen)
{
	struct listen_field *f = field;
	struct listen_addr addr;

	if (f->n >= CONFIG_MAX_LISTEN) {
		snprintf(why, whylen, "too many '%s' addresses (at most %d)", k->name, CONFIG_MAX_LISTEN);
		return -ENOSPC;
	}
	if (strlen(value) >= CONFIG_LISTEN_TEXT_MAX) {
		snprintf(why, whylen, "address longer than %d characters", CONFIG_LISTEN_TEXT_MAX - 1);
		return -EINVAL;
	}
	if (address_parse(value, &addr, why, whylen) < 0)
		return -EINVAL;
	strcpy(f->text[f->n++], value);
	return 0;
}

static size_t listen_count(const void *field)
{
	return ((const struct listen_field *)field)->n;
}

static void listen_format(const struct knob *k, const void *field, size_t i, char *buf, size_t size)
{
	snprintf(buf, size, "%s", ((const struct listen_field *)field)->text[i]);
}

static void listen_clear(void *field)
{
	memset(field, 0, sizeof(struct listen_field));
}

static void listen_describe(const struct knob *k, char *buf, size_t size)
{
	snprintf(buf, size, "PORT, HOST:PORT, [IPV6]:PORT or unix:/PATH, optionally prefixed by udp: or proxy:");
}

const struct knob_type knob_listen = {
	sizeof(struct listen_field), listen_parse, listen_count, listen_format, listen_clear, listen_describe,
};

/* `allow`, `deny`, `proxy_trusted`. */
static int cidr_list_parse(const struct knob *k, void *field, const char *value, char *why, size_t whylen)
{
	struct cidr c;
	int r = cidr_parse(value, &c, why, whylen);

	if (r < 0)
		return r;
	if (cidr_list_add(field, &c) < 0) {
		snprintf(why, whylen, "too many '%s' entries (at most %d)", k->name, CIDR_LIST_MAX);
		return -ENOSPC;
	}
	return 0;
}

static size_t cidr_list_count(const void *field)
{
	return ((const struct cidr_list *)field)->n;
}

static void cidr_list_format(const struct knob *k, const void *field, size_t i, char *buf, size_t size)
{
	cidr_format(&((const struct cidr_list *)field)->entries[i], buf, size);
}

static void cidr_list_clear(void *field)
{
	memset(field, 0, sizeof(struct cidr_list));
}

static void cidr_list_describe(const struct knob *k, char *buf, size_t size)
{
	snprintf(buf, size, "an IPv4 or IPv6 address, optionally /PREFIXLEN");
}

const struct knob_type knob_cidr_list = {
	sizeof(struct cidr_list), cidr_list_parse, cidr_list_count, cidr_list_format, cidr_list_clear,
	cidr_list_describe,
};

/* A duration for a socket option that counts whole seconds
 * (TCP_DEFER_ACCEPT, TCP_KEEPIDLE), in a uint32_t. A fraction is rounded
 * up, so that a value that is not 0 never turns the option off; `echod -t`
 * prints the rounded value, the one in effect. The bounds are in ms. */
static int duration_s_parse(const struct knob *k, void *field, const char *value, char *why, size_t whylen)
{
	uint64_t ms;
	int r = parse_duration_ms(value, k->min, k->max, &ms);

	if (r == 0)
		*(uint32_t *)field = (uint32_t)((ms + SECOND_MS - 1) / SECOND_MS);
	return r;
}

static void duration_s_format(const struct knob *k, const void *field, size_t i, char *buf, size_t size)
{
	format_duration_ms((uint64_t)*(const uint32_t *)field * SECOND_MS, buf, size);
}

const struct knob_type knob_duration_s = {
	sizeof(uint32_t), duration_s_parse, count_one, duration_s_format, NULL, duration_describe,
};

/* `metrics`: one TCP or unix: address, or none (""). */
static int stream_address_parse(const struct knob *k, void *field, const char *value, char *why,
				size_t whylen)
{
	struct listen_addr addr;

	if (strlen(value) >= CONFIG_LISTEN_TEXT_MAX) {
		snprintf(why, whylen, "address longer than %d characters", CONFIG_LISTEN_TEXT_MAX - 1);
		return -EINVAL;
	}
	if (address_parse(value, &addr, why, whylen) < 0)
		return -EINVAL;
	if (addr.kind == LISTEN_UDP || addr.proxy) {
		snprintf(why, whylen, "'%s' (expected a TCP or unix: address, without udp: or proxy:)", value);
		return -EINVAL;
	}
	strcpy(field, value);
	return 0;
}

static size_t text_count(const void *field)
{
	return *(const char *)field != '\0';
}

static void text_format(const struct knob *k, const void *field, size_t i, char *buf, size_t size)
{
	snprintf(buf, size, "%s", (const char *)field);
}

static void stream_address_describe(const struct knob *k, char *buf, size_t size)
{
	snprintf(buf, size, "PORT, HOST:PORT, [IPV6]:PORT or unix:/PATH");
}

const struct knob_type knob_stream_address = {
	CONFIG_LISTEN_TEXT_MAX, stream_address_parse, text_count, text_format, NULL,
	stream_address_describe,
};

/* `unix_mode`: octal permission bits, in a uint32_t. */
static int mode_parse(const struct knob *k, void *field, const char *value, char *why, size_t whylen)
{
	uint64_t v = 0;

	if (*value == '\0' || strspn(value, "01234567") != strlen(value))
		return -EINVAL;
	for (const char *p = value; *p; p++) {
		v = v * 8 + (uint64_t)(*p - '0');
		if (v > k->max)
			return -ERANGE;
	}
	if (v < k->min)
		return -ERANGE;
	*(uint32_t *)field = (uint32_t)v;
	return 0;
}

static void mode_format(const struct knob *k, const void *field, size_t i, char *buf, size_t size)
{
	snprintf(buf, size, "%04o", *(const uint32_t *)field);
}

static void mode_describe(const struct knob *k, char *buf, size_t size)
{
	snprintf(buf, size, "an octal mode from %04llo to %04llo", (unsigned long long)k->min,
		 (unsigned long long)k->max);
}

const struct knob_type knob_mode = {
	sizeof(uint32_t), mode_parse, count_one, mode_format, NULL, mode_describe,
};

/* `unix_group`: a group number, or a name in the portable syntax of
 * useradd(8) (letters, digits, '_', '.', '-', not starting with '-' or a
 * digit, an optional final '$'). Only the syntax is checked here: the
 * group database is read when the socket is created. */
static int group_parse(const struct knob *k, void *field, const char *value, char *why, size_t whylen)
{
	size_t n = strlen(value);

	if (n == 0 || n >= CONFIG_GROUP_TEXT_MAX)
		return -EINVAL;
	if (strspn(value, "0123456789") == n) {
		uint64_t gid;
		/* (gid_t)-1 means "no change" to chown(2): not a group. */
		if (parse_uint(value, 0, UINT32_MAX - 1, &gid) < 0)
			return -ERANGE;
	} else {
		if (!isalpha((unsigned char)value[0]) && value[0] != '_')
			return -EINVAL;
		size_t body = strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
		if (body != n && !(body == n - 1 && value[n - 1] == '$'))
			return -EINVAL;
	}
	memcpy(field, value, n + 1);
	return 0;
}

static void group_describe(const struct knob *k, char *buf, size_t size)
{
	snprintf(buf, size, "a group name of at most %d characters, or a group number", CONFIG_GROUP_TEXT_MAX - 1);
}

const struct knob_type knob_group = {
	CONFIG_GROUP_TEXT_MAX, group_parse, text_count, text_format, NULL, group_describe,
};
