/* The config file parser: any bytes. Invariant: what parses prints as a
 * file that parses back to the same configuration (`echod -t` output is
 * round-trippable), and a file that fails leaves the configuration as it
 * was. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config before, cfg, again;
	char err[CONFIG_ERROR_MAX];
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (size > CONFIG_FILE_MAX)
		return 0;
	config_defaults(&cfg);
	before = cfg;
	if (config_parse_buffer(&cfg, "fuzz", (const char *)data, size, err, sizeof(err)) < 0) {
		FUZZ_ASSERT(err[0] != '\0');
		FUZZ_ASSERT(memcmp(&before, &cfg, sizeof(cfg)) == 0);
		return 0;
	}
	f = open_memstream(&text, &len);
	FUZZ_ASSERT(f);
	config_print(&cfg, f);
	FUZZ_ASSERT(fclose(f) == 0);
	config_defaults(&again);
	FUZZ_ASSERT(config_parse_buffer(&again, "printed", text, len, err, sizeof(err)) == 0);
	FUZZ_ASSERT(memcmp(&cfg, &again, sizeof(cfg)) == 0);
	free(text);
	return 0;
}
