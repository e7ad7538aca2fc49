/*
 * The command-line client: `herald topics|groups|queues|exchanges|bindings|
 * connections|produce|consume|publish|redrive|top ...`. It talks only to the
 * broker's HTTP API (docs/http-api.md) with libcurl, so it works against any
 * broker it can reach, local or not. docs/cli.md describes every command.
 */
#ifndef HERALD_CLI_CLI_H
#define HERALD_CLI_CLI_H

#include <stdio.h>

/* 1 if name (argv[1] of herald) starts a client command line: a command,
 * or a client option (--server, --json) standing before one. */
int cli_is_command(const char *name);

/* Runs the command argv[0] with its arguments argv[1..argc). Returns the
 * process exit status: 0 success, 1 the broker refused (its message was
 * printed), 2 bad usage or the broker cannot be reached. */
int cli_main(int argc, char **argv);

/* Prints one line per command, for `herald --help`. */
void cli_print_help(FILE *out);

#endif
