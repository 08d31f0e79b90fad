/* The command line: options, their validation, and how they combine with
 * the config file (command line > file > built-in defaults). */
#ifndef ECHOD_OPTIONS_H
#define ECHOD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"

/* Every list full, and room for the plain options given several times. */
#define OPTIONS_MAX_OVERRIDES (CONFIG_MAX_LISTEN + 2 * CIDR_LIST_MAX + 16)

struct options {
	const char *config_path;
	bool config_given; /* a named file must exist; the default may not */
	bool check;
	bool quiet; /* with check: print nothing on success */
	size_t n_overrides;
	struct {
		const struct knob *knob;
		const char *value;
	} overrides[OPTIONS_MAX_OVERRIDES];
};

enum {
	OPTIONS_RUN = 0,
	OPTIONS_EXIT_OK = 1, /* --help or --version done */
	OPTIONS_USAGE = -1,  /* error printed */
};

/* Parses argv into o. No state survives between calls (getopt is reset),
 * nothing exits: it may be called again, on any input. */
int options_parse(int argc, char **argv, struct options *o);

/* The same, writing --help and --version to out and messages to err. */
int options_parse_to(int argc, char **argv, struct options *o, FILE *out, FILE *err);

/* Defaults, then the file, then the command line. 0, or -1 with err
 * holding "FILE:LINE: message". */
int options_load_config(const struct options *o, struct config *cfg, char *err, size_t errlen);

#endif
