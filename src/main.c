/*
 * herald entry point: parses the command line and dispatches
 *   herald serve [--config FILE] [--data DIR] [--kafka HOST:PORT]
 *                [--flush always|interval:MS|never] [--log-level LEVEL] [--KEY VALUE ...]
 *   herald --help | --version
 *   herald topics|groups|queues|... (the HTTP API client, src/cli/)
 * Every configuration key is also a flag: "--num-partitions 3" sets
 * num.partitions; "--key=value" works too. Flags override the config file.
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "server/config.h"
#include "server/server.h"

#ifndef HERALD_VERSION
#define HERALD_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "Herald %s - a message broker speaking the Kafka protocol on a durable log\n\n"
            "usage: herald serve [--config FILE] [--KEY VALUE ...]\n"
            "       herald COMMAND ...   (a client of a running broker; see below)\n"
            "       herald --help | --version\n\n"
            "serve options (each is also a config file key: dashes become dots):\n"
            "  --config FILE                        read key = value settings from FILE first\n",
            HERALD_VERSION);
    config_print_help(out);
    cli_print_help(out);
}

/* Turns "--log-level" into "log.level". */
static void flag_to_key(const char *flag, char *key, size_t n)
{
    snprintf(key, n, "%s", flag + 2);
    for (char *p = key; *p; p++)
        if (*p == '-') *p = '.';
}

static int cmd_serve(int argc, char **argv)
{
    config_t cfg;
    config_defaults(&cfg);
    char err[1024];
    /* The config file first, so flags override it wherever they stand. */
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "herald: --config needs a file name\n");
                return 2;
            }
            if (config_load_file(&cfg, argv[i + 1], err, sizeof err) < 0) {
                fprintf(stderr, "herald: %s\n", err);
                return 2;
            }
        }
    }
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--", 2) != 0) {
            fprintf(stderr, "herald: unexpected argument '%s' (see herald --help)\n", argv[i]);
            return 2;
        }
        char key[128];
        const char *value;
        const char *eq = strchr(argv[i], '=');
        if (eq) {
            char flag[128];
            snprintf(flag, sizeof flag, "%.*s", (int)(eq - argv[i]), argv[i]);
            flag_to_key(flag, key, sizeof key);
            value = eq + 1;
        } else {
            flag_to_key(argv[i], key, sizeof key);
            if (i + 1 >= argc) {
                fprintf(stderr, "herald: %s needs a value\n", argv[i]);
                return 2;
            }
            value = argv[++i];
        }
        if (config_set(&cfg, key, value, err, sizeof err) < 0) {
            fprintf(stderr, "herald: %s\n", err);
            return 2;
        }
    }
    return server_run(&cfg);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("herald %s\n", HERALD_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "serve")) {
        /* Request frames and fetch buffers of up to a few MiB come and go
         * all the time; served from the heap instead of fresh mmaps they
         * reuse warm pages (a first touch costs ~10 us per 4 KiB page on a
         * VM). Memory above the trim threshold is still given back. */
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 64 << 20);
        return cmd_serve(argc - 2, argv + 2);
    }
    if (!strcmp(argv[1], "config-reference")) {
        config_print_markdown(stdout);
        return 0;
    }
    if (cli_is_command(argv[1])) return cli_main(argc - 1, argv + 1);
    fprintf(stderr, "herald: unknown command '%s' (see herald --help)\n", argv[1]);
    return 2;
}
