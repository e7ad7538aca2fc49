/*
 * What the client's modules share: the session (server URL, output mode,
 * one libcurl handle), the option parser, HTTP calls, aligned tables and
 * human units, and the command table type each module exports.
 *
 * Exit statuses everywhere: 0 success, 1 the broker answered with an error,
 * 2 bad usage or the broker cannot be reached (CLI_OK, CLI_EAPI, CLI_EUSAGE).
 */
#ifndef HERALD_CLI_CLI_INT_H
#define HERALD_CLI_CLI_INT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

enum { CLI_OK = 0, CLI_EAPI = 1, CLI_EUSAGE = 2 };

typedef struct cli_cmd cli_cmd_t;

typedef struct {
    char server[512];     /* base URL, no trailing '/' */
    int json;             /* --json: print the API's JSON */
    int help;             /* --help/-h was given */
    const cli_cmd_t *cmd; /* the command running, for its usage line */
    void *curl;           /* CURL *, reused so requests share a connection */
    long status;          /* HTTP status of the last call, 0 if none came */
    char err[1024];       /* the last call's error, as printed */
} cli_t;

/* One command: `herald GROUP SUB ARGS` (sub NULL: `herald GROUP ARGS`).
 * fn gets the arguments after the command words. */
struct cli_cmd {
    const char *group;
    const char *sub;
    int (*fn)(cli_t *c, int argc, char **argv);
    const char *args; /* usage after the command words */
    const char *help; /* one line */
};

/* The command tables of the modules, each ended by a NULL group. */
extern const cli_cmd_t cli_topic_cmds[];
extern const cli_cmd_t cli_queue_cmds[];
extern const cli_cmd_t cli_amqp_cmds[];
extern const cli_cmd_t cli_record_cmds[];
extern const cli_cmd_t cli_top_cmds[];

/* ---- options (cli.c) ---- */

typedef enum { CLI_OPT_FLAG, CLI_OPT_STR, CLI_OPT_INT, CLI_OPT_LIST } cli_optkind_t;

#define CLI_LIST_MAX 64

typedef struct {
    const char *v[CLI_LIST_MAX]; /* views into argv */
    int n;
} cli_list_t;

typedef struct {
    const char *name;    /* "--partitions"; NULL ends a table */
    cli_optkind_t kind;
    void *dst;           /* FLAG: int * (set to val); STR: const char **; INT: int64_t *; LIST: cli_list_t * */
    int val;             /* FLAG: the value stored */
} cli_opt_t;

/* Parses argv[0..argc) against opts and the global options (--server URL,
 * --json, --help). Positionals go to pos[0..npos) in order; exactly npos
 * are required, the rest is an error. "--opt=value" works for every option
 * taking a value. Returns 0, or CLI_EUSAGE after printing the problem and
 * the command's usage; with --help it prints the usage and returns -1 (the
 * caller returns CLI_OK). */
int cli_parse(cli_t *c, int argc, char **argv, const cli_opt_t *opts, const char **pos, int npos);

/* Prints "herald: <msg>" and the running command's usage to stderr;
 * returns CLI_EUSAGE. */
int cli_usage_error(cli_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Splits "k=v" at the first '='; returns -1 (after a usage error) when
 * there is none or k is empty. *k is a malloc'd copy, *v points into s. */
int cli_split_kv(cli_t *c, const char *opt, const char *s, char **k, const char **v);

/* Calls fn(c, ctx, line, length) for each line of standard input (without
 * its newline) until fn returns nonzero. Returns that, or CLI_OK. */
int cli_each_line(cli_t *c, void *ctx, int (*fn)(cli_t *c, void *ctx, const char *line, size_t n));

/* {"k": v, ...} from the KEY=VALUE options in l; typed: a VALUE that
 * parses as JSON (1000, true, "7", {...}) is that JSON, else (and always
 * when not typed) the text as a string. NULL after a usage error. */
json_t *cli_kv_object(cli_t *c, const char *opt, const cli_list_t *l, int typed);

/* ---- HTTP (http_client.c) ---- */

/* Sends METHOD server+path; body (not stolen) as JSON when not NULL. On
 * 2xx returns CLI_OK with the parsed answer in *out (NULL for an empty
 * body; caller decrefs; out may be NULL). Otherwise fills c->err and
 * c->status and returns CLI_EUSAGE (unreachable) or CLI_EAPI; prints
 * nothing. timeout_ms 0 is the default (60 s). */
int cli_http(cli_t *c, const char *method, const char *path, json_t *body, json_t **out, long timeout_ms);

/* cli_http, and on failure prints "herald: <c->err>" to stderr. */
int cli_call(cli_t *c, const char *method, const char *path, json_t *body, json_t **out);

/* GETs path; prints the answer as JSON with --json, else through show().
 * Returns as cli_call. */
int cli_get_show(cli_t *c, const char *path, void (*show)(const json_t *v));

/* Sends a write (body not stolen); prints its answer with --json (if it
 * has one), else the line done. Returns as cli_call. */
int cli_write_say(cli_t *c, const char *method, const char *path, json_t *body, const char *done);

/* PUT path (a declare); prints "created <what> <name>" (201) or "... exists
 * with the same settings" (204), or with --json the answer. */
int cli_declare(cli_t *c, const char *path, json_t *body, const char *what, const char *name);

/* The whole of `herald KIND delete NAME`: DELETE /api/<kind>/<NAME>, then
 * "deleted <what> NAME". */
int cli_delete_named(cli_t *c, int argc, char **argv, const char *kind, const char *what);

/* %-encodes s as one path segment or query value; malloc'd, caller frees. */
char *cli_escape(const char *s);

/* ---- output (table.c) ---- */

typedef struct cli_table cli_table_t;

/* headers: NULL-terminated; align: one 'l' or 'r' per column. */
cli_table_t *cli_table_new(const char *const *headers, const char *align);
void cli_table_free(cli_table_t *t);
/* Appends a cell to the current row (a new row after the last column).
 * Control characters are shown as '?'. */
void cli_table_cell(cli_table_t *t, const char *s);
void cli_table_cellf(cli_table_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_table_count(cli_table_t *t, double v);   /* 1.2k */
void cli_table_bytes(cli_table_t *t, double v);   /* 3.4 MiB */
void cli_table_rate(cli_table_t *t, double v);    /* 9.8, 1.0k */
size_t cli_table_rows(const cli_table_t *t);
/* Prints the table, column widths from the content (in characters). */
void cli_table_print(const cli_table_t *t, FILE *out);

/* s with control characters shown as '?', for printing text that came
 * from the broker outside a table. Returns one of CLI_SAFE_SLOTS static
 * buffers (so up to that many may be used in one printf), cut at
 * CLI_SAFE_MAX - 1 bytes; not thread-safe (the client is one thread). */
#define CLI_SAFE_SLOTS 8
#define CLI_SAFE_MAX 1024
const char *cli_safe(const char *s);
/* The same, in place. */
void cli_safe_inplace(char *s);

/* Human units into buf (at least 32 bytes); each returns buf. */
char *cli_fmt_count(char *buf, size_t n, double v);
char *cli_fmt_bytes(char *buf, size_t n, double v);
char *cli_fmt_rate(char *buf, size_t n, double v);
char *cli_fmt_duration(char *buf, size_t n, double ms);

/* Prints v indented (for --json); returns CLI_OK. */
int cli_print_json(const json_t *v);

/* Field access that tolerates missing fields: "" / 0 / NULL. jpath takes
 * "a.b.c". */
const char *cli_jstr(const json_t *o, const char *key);
double cli_jnum(const json_t *o, const char *key);
const json_t *cli_jpath(const json_t *o, const char *path);
double cli_jpnum(const json_t *o, const char *path);

/* "yes"/"no" for a JSON boolean field. */
const char *cli_jyes(const json_t *o, const char *key);

/* A JSON value shown in one cell: strings bare, others compact JSON
 * (malloc'd, caller frees). */
char *cli_jshow(const json_t *v);
/* A cell holding cli_jshow(v); an empty object or array shows as nothing. */
void cli_table_cell_json(cli_table_t *t, const json_t *v);

#endif
