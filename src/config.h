/* The configuration: one table of knobs, the file and value parsers.
 * Pure functions over text: no sockets, no event loop. */
#ifndef ECHOD_CONFIG_H
#define ECHOD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cidr.h"
#include "log.h"

#define CONFIG_MAX_LISTEN 64
#define CONFIG_LISTEN_TEXT_MAX 128
#define CONFIG_GROUP_TEXT_MAX 33 /* a group name of 32, as useradd allows */
#define CONFIG_ERROR_MAX 512
/* Bounds on what a config file may make echod read and hold. */
#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_FILE_MAX_TEXT "1M"
#define CONFIG_LINE_MAX 4096

enum transform {
	TRANSFORM_NONE,
	TRANSFORM_UPPER,
};

/* Plain data, so that it can be copied and compared as a whole. Each
 * field is set by one row of config_knobs[]. */
struct config {
	size_t n_listen;
	char listen[CONFIG_MAX_LISTEN][CONFIG_LISTEN_TEXT_MAX];
	uint32_t backlog;
	uint32_t buffer_size;
	uint32_t max_connections;
	uint64_t idle_timeout_ms;
	uint64_t shutdown_timeout_ms;
	enum transform transform;
	bool reuse_port;
	enum log_level log_level;
	/* contract v2: abuse resistance, PROXY protocol, metrics, operator
	 * settings. */
	struct cidr_list allow;
	struct cidr_list deny;
	uint32_t max_connections_per_source;
	uint64_t max_connection_time_ms;
	uint32_t udp_rate_per_source;
	struct cidr_list proxy_trusted;
	char metrics[CONFIG_LISTEN_TEXT_MAX];      /* "" = off */
	uint32_t defer_accept_s;                   /* rounded up to whole seconds */
	uint32_t tcp_keepalive_s;                  /* rounded up to whole seconds */
	bool free_bind;
	uint32_t unix_mode;                        /* permission bits, <= 0777 */
	char unix_group[CONFIG_GROUP_TEXT_MAX];    /* name or number, "" = none */
	bool log_connections;
};

struct knob;

/* How the values of one kind of knob are read and written. */
struct knob_type {
	/* sizeof the struct config field it sets, checked by the tests. */
	size_t field_size;
	/* Sets the field from value (no control characters, no white space
	 * around it). Returns 0 or -errno: -ERANGE out of [min, max], -EINVAL
	 * malformed, -ENOSPC a full list. A specific message may go to why;
	 * left empty, the caller says what a valid value looks like. */
	int (*parse)(const struct knob *k, void *field, const char *value, char *why, size_t whylen);
	/* How many values the field holds: 1 for a plain value, 0 for an unset
	 * optional one, the length of a list. */
	size_t (*count)(const void *field);
	/* Value i of the field, in config-file syntax. */
	void (*format)(const struct knob *k, const void *field, size_t i, char *buf, size_t size);
	/* For a repeatable knob (a list): empties it, before a file or the
	 * command line gives its own list. NULL for a plain value, which may be
	 * set only once in a file. */
	void (*clear)(void *field);
	/* What a valid value looks like, for messages. */
	void (*describe)(const struct knob *k, char *buf, size_t size);
};

struct knob {
	const char *name;
	const struct knob_type *type;
	size_t offset, size;
	uint64_t min, max;
	/* The default in config-file syntax; for a list, its entries separated
	 * by a space; NULL for none. */
	const char *def;
	const char *doc;
};

/* More than there are, for arrays indexed by knob. */
#define CONFIG_MAX_KNOBS 64
extern const struct knob config_knobs[];
extern const size_t config_n_knobs;

/* The kinds of knob, in config_values.c. */
extern const struct knob_type knob_listen, knob_uint32, knob_size32, knob_duration_ms, knob_bool,
	knob_transform, knob_log_level, knob_cidr_list, knob_duration_s, knob_stream_address,
	knob_mode, knob_group;

const struct knob *config_find_knob(const char *name);

/* The knob whose name is nearest to name (a typo: at most
 * CONFIG_SUGGEST_DISTANCE edits away), or NULL. */
#define CONFIG_SUGGEST_DISTANCE 2
const struct knob *config_nearest_knob(const char *name);

/* Fills cfg with the built-in defaults. */
void config_defaults(struct config *cfg);

/* Sets one knob from text. A list knob appends; config_clear() it first
 * to replace. Returns 0, or -errno with a one-line message in err. */
int config_set(struct config *cfg, const struct knob *k, const char *value, char *err, size_t errlen);

/* Empties a list knob; nothing for a plain one. */
void config_clear(struct config *cfg, const struct knob *k);

/* Parses config-file text (len bytes, not NUL-terminated) over cfg; name
 * is the file name used in messages. All or nothing: on error cfg is
 * untouched. Returns 0, or -errno with err holding "NAME:LINE: message". */
int config_parse_buffer(struct config *cfg, const char *name, const char *data, size_t len,
			char *err, size_t errlen);

/* Reads a config file over cfg: a regular file of at most
 * CONFIG_FILE_MAX bytes, read whole, then config_parse_buffer(). A
 * missing file is an error unless missing_ok. Returns 0, or -errno with
 * err holding "FILE:LINE: message" (or "FILE: message" for I/O errors). */
int config_load_file(struct config *cfg, const char *path, bool missing_ok, char *err, size_t errlen);

/* Copies at most max bytes of s to buf for a message, with control
 * characters escaped as \xNN. */
void config_quote(char *buf, size_t size, const char *s, size_t max);

/* Writes the effective configuration, one `key = value` a line, every
 * key in table order; a key with no value as a comment, `# allow =`. */
void config_print(const struct config *cfg, FILE *out);

/* Value parsers: 0, or -EINVAL (malformed) / -ERANGE (out of [min, max]). */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int parse_duration_ms(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int parse_bool(const char *s, bool *out);
int parse_transform(const char *s, enum transform *out);
int parse_log_level(const char *s, enum log_level *out);
const char *transform_name(enum transform t);
const char *log_level_name(enum log_level level);

void format_size(uint64_t bytes, char *buf, size_t size);
void format_duration_ms(uint64_t ms, char *buf, size_t size);

#endif
