/* The command line: the input split into arguments on NUL bytes, after
 * argv[0]. options_parse must hold no state across calls and never exit;
 * what it accepts, options_load_config must accept too (values are
 * checked when parsed), unless the config file itself is at fault. The
 * config file is never read here: -c is pointed at an empty file, so that
 * the fuzzer cannot make the harness read the machine's files. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "options.h"

#define MAX_ARGS 128

static char empty_conf[] = "/tmp/echod-fuzz-options-XXXXXX";
static FILE *devnull;

static void remove_conf(void)
{
	unlink(empty_conf);
}

static void setup(void)
{
	int fd;

	if (devnull)
		return;
	devnull = fopen("/dev/null", "w");
	fd = mkstemp(empty_conf);
	FUZZ_ASSERT(devnull && fd >= 0);
	close(fd);
	atexit(remove_conf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct options o;
	static struct config cfg;
	char *argv[MAX_ARGS + 4];
	char err[CONFIG_ERROR_MAX + 64];
	char *buf;
	int argc = 0, r;

	setup();
	if (size > 4096)
		return 0;
	buf = malloc(size + 1);
	FUZZ_ASSERT(buf);
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = (char *)"echod";
	for (size_t i = 0; i <= size && argc < MAX_ARGS;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	argv[argc] = NULL;

	r = options_parse_to(argc, argv, &o, devnull, devnull);
	if (r == OPTIONS_RUN) {
		o.config_path = empty_conf;
		o.config_given = true;
		FUZZ_ASSERT(options_load_config(&o, &cfg, err, sizeof(err)) == 0);
	} else {
		FUZZ_ASSERT(r == OPTIONS_EXIT_OK || r == OPTIONS_USAGE);
	}
	free(buf);
	return 0;
}
