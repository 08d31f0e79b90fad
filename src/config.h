/* The configuration: one table of knobs, the file and value parsers.
 * Pure functions over text: no sockets, no event loop. */
#ifndef ECHOD_CONFIG_H
#define ECHOD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_LISTEN 64
#define CONFIG_LISTEN_TEXT_MAX 128
#define CONFIG_ERROR_MAX 512
/* Bounds on what a config file may make echod read and hold. */
#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_FILE_MAX_TEXT "1M"
#define CONFIG_LINE_MAX 4096

enum transform {
	TRANSFORM_NONE,
	TRANSFORM_UPPER,
};

/* Plain data, so that it can be copied and compared as a whole. */
struct config {
	size_t n_listen;
	char listen[CONFIG_MAX_LISTEN][CONFIG_LISTEN_TEXT_MAX];
	uint64_t backlog;
	uint64_t buffer_size;
	uint64_t max_connections;
	uint64_t idle_timeout_ms;
	uint64_t shutdown_timeout_ms;
	uint64_t transform;  /* enum transform */
	uint64_t reuse_port; /* 0 or 1 */
	uint64_t log_level;  /* enum log_level */
};

enum knob_type {
	KNOB_LISTEN,
	KNOB_UINT,
	KNOB_SIZE,
	KNOB_DURATION,
	KNOB_BOOL,
	KNOB_TRANSFORM,
	KNOB_LOG_LEVEL,
};

struct knob {
	const char *name;
	enum knob_type type;
	size_t offset;
	uint64_t min, max;
	const char *def; /* the default, in config-file syntax */
	const char *doc;
};

extern const struct knob config_knobs[];
extern const size_t config_n_knobs;

const struct knob *config_find_knob(const char *name);

/* The knob whose name is nearest to name (a typo: at most
 * CONFIG_SUGGEST_DISTANCE edits away), or NULL. */
#define CONFIG_SUGGEST_DISTANCE 2
const struct knob *config_nearest_knob(const char *name);

/* Fills cfg with the built-in defaults. */
void config_defaults(struct config *cfg);

/* Sets one knob from text. For `listen`, appends; clear n_listen first to
 * replace. Returns 0, or -1 with a one-line message in err. */
int config_set(struct config *cfg, const struct knob *k, const char *value, char *err, size_t errlen);

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

/* Writes the effective configuration, one `key = value` a line. */
void config_print(const struct config *cfg, FILE *out);

/* Value parsers: 0, or -EINVAL (malformed) / -ERANGE (out of [min, max]). */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int parse_duration_ms(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int parse_bool(const char *s, bool *out);
int parse_transform(const char *s, enum transform *out);
int parse_log_level(const char *s, int *out);
const char *transform_name(enum transform t);
const char *log_level_name(int level);

void format_size(uint64_t bytes, char *buf, size_t size);
void format_duration_ms(uint64_t ms, char *buf, size_t size);

#endif
