/*
 * The client's entry point: one table of commands (joined from the
 * modules' tables) drives dispatch, usage lines and `herald --help`; the
 * option parser every command uses. See cli.h and cli_int.h.
 */
#include "cli/cli.h"

#include "cli/curl_load.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/cli_int.h"

#define CLI_DEFAULT_SERVER "http://127.0.0.1:8080"

static const cli_cmd_t *const tables[] = {cli_topic_cmds, cli_queue_cmds, cli_amqp_cmds, cli_record_cmds,
                                          cli_top_cmds};
#define NTABLES (sizeof tables / sizeof tables[0])

/* 1 if a is a client option that may also stand before the command. */
static int is_global(const char *a)
{
    return !strcmp(a, "--server") || !strncmp(a, "--server=", 9) || !strcmp(a, "--json");
}

int cli_is_command(const char *name)
{
    if (is_global(name)) return 1;
    for (size_t t = 0; t < NTABLES; t++)
        for (const cli_cmd_t *c = tables[t]; c->group; c++)
            if (!strcmp(c->group, name)) return 1;
    return 0;
}

static void print_cmd(FILE *out, const cli_cmd_t *c)
{
    char words[64];
    snprintf(words, sizeof words, "%s%s%s", c->group, c->sub ? " " : "", c->sub ? c->sub : "");
    fprintf(out, "  herald %s%s%s\n", words, *c->args ? " " : "", c->args);
    fprintf(out, "      %s\n", c->help);
}

void cli_print_help(FILE *out)
{
    fprintf(out, "\nclient commands (talk to a running broker's HTTP API; docs/cli.md):\n");
    for (size_t t = 0; t < NTABLES; t++)
        for (const cli_cmd_t *c = tables[t]; c->group; c++) print_cmd(out, c);
    fprintf(out,
            "\nclient options, for every command:\n"
            "  --server URL   the broker's HTTP API (default $HERALD_SERVER, else %s)\n"
            "  --json         print the API's JSON instead of tables\n",
            CLI_DEFAULT_SERVER);
}

/* The usage of the running command, or of every command of its group. */
static void print_usage(cli_t *c, const char *group, FILE *out)
{
    if (c->cmd) {
        fprintf(out, "usage:\n");
        print_cmd(out, c->cmd);
        return;
    }
    fprintf(out, "usage:\n");
    for (size_t t = 0; t < NTABLES; t++)
        for (const cli_cmd_t *e = tables[t]; e->group; e++)
            if (!strcmp(e->group, group)) print_cmd(out, e);
    fprintf(out, "options: --server URL (default $HERALD_SERVER, else %s), --json\n", CLI_DEFAULT_SERVER);
}

int cli_usage_error(cli_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "herald: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    print_usage(c, c->cmd ? c->cmd->group : "", stderr);
    return CLI_EUSAGE;
}

int cli_split_kv(cli_t *c, const char *opt, const char *s, char **k, const char **v)
{
    const char *eq = strchr(s, '=');
    if (!eq || eq == s) return cli_usage_error(c, "%s wants KEY=VALUE, not '%s'", opt, s), -1;
    *k = xstrndup(s, (size_t)(eq - s));
    *v = eq + 1;
    return 0;
}

json_t *cli_kv_object(cli_t *c, const char *opt, const cli_list_t *l, int typed)
{
    json_t *o = json_object();
    for (int i = 0; i < l->n; i++) {
        char *k;
        const char *v;
        if (cli_split_kv(c, opt, l->v[i], &k, &v) < 0) {
            json_decref(o);
            return NULL;
        }
        json_t *jv = typed ? json_loads(v, JSON_DECODE_ANY, NULL) : NULL;
        json_object_set_new(o, k, jv ? jv : json_string(v));
        free(k);
    }
    return o;
}

static int set_server(cli_t *c, const char *url)
{
    size_t n = strlen(url);
    while (n && url[n - 1] == '/') n--;
    if (!n || n >= sizeof c->server) return cli_usage_error(c, "bad --server '%s'", url);
    memcpy(c->server, url, n);
    c->server[n] = '\0';
    return 0;
}

static int parse_int(cli_t *c, const char *name, const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0) return cli_usage_error(c, "%s wants a number >= 0, not '%s'", name, s);
    *out = v;
    return 0;
}

/* Stores value into o; returns 0 or CLI_EUSAGE. */
static int set_opt(cli_t *c, const cli_opt_t *o, const char *value)
{
    switch (o->kind) {
    case CLI_OPT_FLAG: *(int *)o->dst = o->val; return 0;
    case CLI_OPT_STR: *(const char **)o->dst = value; return 0;
    case CLI_OPT_INT: return parse_int(c, o->name, value, o->dst);
    case CLI_OPT_LIST: {
        cli_list_t *l = o->dst;
        if (l->n == CLI_LIST_MAX) return cli_usage_error(c, "more than %d %s options", CLI_LIST_MAX, o->name);
        l->v[l->n++] = value;
        return 0;
    }
    }
    return CLI_EUSAGE;
}

static const cli_opt_t *find_opt(const cli_opt_t *opts, const char *name, size_t len)
{
    for (const cli_opt_t *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len)) return o;
    return NULL;
}

/* One "--x" argument at argv[*i]; advances *i past a separate value. */
static int parse_option(cli_t *c, int argc, char **argv, int *i, const cli_opt_t *opts)
{
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const char *server = NULL;
    const cli_opt_t globals[] = {
        {"--server", CLI_OPT_STR, &server, 0},
        {"--json", CLI_OPT_FLAG, &c->json, 1},
        {NULL, 0, NULL, 0},
    };
    if ((len == 6 && !strncmp(arg, "--help", 6)) || !strcmp(arg, "-h")) {
        c->help = 1;
        return 0;
    }
    const cli_opt_t *o = find_opt(opts, arg, len);
    if (!o) o = find_opt(globals, arg, len);
    if (!o) return cli_usage_error(c, "unknown option '%.*s'", (int)len, arg);
    const char *value = NULL;
    if (o->kind != CLI_OPT_FLAG) {
        if (eq) value = eq + 1;
        else if (*i + 1 < argc) value = argv[++*i];
        else return cli_usage_error(c, "%s needs a value", o->name);
    } else if (eq) {
        return cli_usage_error(c, "%s takes no value", o->name);
    }
    int rc = set_opt(c, o, value);
    if (!rc && server) rc = set_server(c, server);
    return rc;
}

/* "missing NAME": the n-th positional word of the command's usage. */
static int missing(cli_t *c, int n)
{
    const char *p = c->cmd->args;
    for (;;) {
        while (*p == ' ') p++;
        size_t len = strcspn(p, " ");
        if (!len || *p == '[') return cli_usage_error(c, "missing argument");
        if (n-- == 0) return cli_usage_error(c, "missing %.*s", (int)len, p);
        p += len;
    }
}

int cli_each_line(cli_t *c, void *ctx, int (*fn)(cli_t *c, void *ctx, const char *line, size_t n))
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = CLI_OK;
    while (!rc && (n = getline(&line, &cap, stdin)) >= 0) {
        if (n && line[n - 1] == '\n') n--;
        rc = fn(c, ctx, line, (size_t)n);
    }
    free(line);
    return rc;
}

int cli_parse(cli_t *c, int argc, char **argv, const cli_opt_t *opts, const char **pos, int npos)
{
    int got = 0, only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
        } else if (!only_pos && a[0] == '-' && a[1]) {
            int rc = parse_option(c, argc, argv, &i, opts);
            if (rc) return rc;
        } else if (got < npos) {
            pos[got++] = a;
        } else {
            return c->help ? (print_usage(c, c->cmd->group, stdout), -1)
                           : cli_usage_error(c, "unexpected argument '%s'", a);
        }
    }
    if (c->help) {
        print_usage(c, c->cmd->group, stdout);
        return -1;
    }
    if (got < npos) return missing(c, got);
    return 0;
}

static const cli_cmd_t *find_cmd(const char *group, const char *sub)
{
    for (size_t t = 0; t < NTABLES; t++)
        for (const cli_cmd_t *e = tables[t]; e->group; e++)
            if (!strcmp(e->group, group) && (!e->sub || (sub && !strcmp(e->sub, sub)))) return e;
    return NULL;
}

static int dispatch(cli_t *c, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    const cli_cmd_t *cmd = find_cmd(argv[0], sub);
    if (!cmd) {
        if (sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help"))) {
            print_usage(c, argv[0], stdout);
            return CLI_OK;
        }
        if (sub) fprintf(stderr, "herald: unknown command '%s %s'\n", argv[0], sub);
        else fprintf(stderr, "herald: '%s' needs a command\n", argv[0]);
        print_usage(c, argv[0], stderr);
        return CLI_EUSAGE;
    }
    c->cmd = cmd;
    int skip = cmd->sub ? 2 : 1;
    int rc = cmd->fn(c, argc - skip, argv + skip);
    return rc < 0 ? CLI_OK : rc; /* -1: --help was answered */
}

/* Moves client options standing before the command ("herald --server U
 * topics list") after it, where every command's parser reads them. Returns
 * a malloc'd argv of argc entries. */
static char **hoist_globals(int argc, char **argv)
{
    int k = 0;
    while (k < argc && is_global(argv[k])) k += !strcmp(argv[k], "--server") && k + 1 < argc ? 2 : 1;
    if (k > argc) k = argc;
    char **out = xcalloc((size_t)argc + 1, sizeof *out);
    memcpy(out, argv + k, (size_t)(argc - k) * sizeof *out);
    memcpy(out + (argc - k), argv, (size_t)k * sizeof *out);
    return out;
}

int cli_main(int argc, char **argv)
{
    cli_t c;
    memset(&c, 0, sizeof c);
    const char *env = getenv("HERALD_SERVER");
    if (set_server(&c, env && *env ? env : CLI_DEFAULT_SERVER)) return CLI_EUSAGE;
    char why[256];
    if (cli_curl_load(why, sizeof why) < 0) {
        fprintf(stderr, "herald: %s\n", why);
        return CLI_EUSAGE;
    }
    if (cli_curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "herald: cannot initialise libcurl\n");
        return CLI_EUSAGE;
    }
    c.curl = cli_curl.easy_init();
    int rc = CLI_EUSAGE;
    char **args = hoist_globals(argc, argv);
    if (!c.curl) fprintf(stderr, "herald: cannot initialise libcurl\n");
    else if (is_global(args[0])) fprintf(stderr, "herald: a command is missing (see herald --help)\n");
    else rc = dispatch(&c, argc, args);
    free(args);
    if (c.curl) cli_curl.easy_cleanup(c.curl);
    cli_curl.global_cleanup();
    if (fflush(stdout) != 0 && rc == CLI_OK) rc = CLI_EAPI;
    return rc;
}
