/* The running daemon: listeners, signals, reload, shutdown, reporting. */
#ifndef ECHOD_SERVER_H
#define ECHOD_SERVER_H

#include "config.h"
#include "options.h"

/* Runs until SIGTERM/SIGINT. Returns the exit status (0 or 1). */
int server_run(const struct options *opts, const struct config *cfg);

#endif
