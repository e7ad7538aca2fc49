/*
 * The broker process: one libuv loop, the broker core, the listeners, and
 * signal handling (SIGINT/SIGTERM: stop accepting, close connections, close
 * every log cleanly, exit 0).
 */
#ifndef HERALD_SERVER_SERVER_H
#define HERALD_SERVER_SERVER_H

#include "server/config.h"

/* Runs the broker until a signal stops it. Returns the process exit code. */
int server_run(const config_t *cfg);

#endif
