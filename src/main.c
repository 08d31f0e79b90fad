/* echod: a TCP echo daemon (RFC 862). Start-up order only: options,
 * configuration, then the server until it is told to stop. */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "log.h"
#include "options.h"
#include "server.h"

#define EXIT_USAGE 2
#define EXIT_CONFIG 78 /* EX_CONFIG */

int main(int argc, char **argv)
{
	static struct options opts;
	static struct config cfg;
	char err[CONFIG_ERROR_MAX + 64];

	log_init();
	switch (options_parse(argc, argv, &opts)) {
	case OPTIONS_EXIT_OK:
		return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
	case OPTIONS_USAGE:
		return EXIT_USAGE;
	}
	if (options_load_config(&opts, &cfg, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return EXIT_CONFIG;
	}
	if (opts.check) {
		if (!opts.quiet)
			config_print(&cfg, stdout);
		return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
	}
	log_set_level(cfg.log_level);
	return server_run(&opts, &cfg);
}
