/*
 * `herald queues ...` and `herald redrive`: AMQP queues through the admin
 * API (docs/http-api.md, "Queues").
 */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/cli_int.h"

#define CLI_PEEK_PAYLOAD_CHARS 60

/* "/api/queues/<name><suffix>", the name %-encoded; caller frees. */
static char *queue_path(const char *name, const char *suffix)
{
    char *e = cli_escape(name);
    char *p = xasprintf("/api/queues/%s%s", e, suffix);
    free(e);
    return p;
}

static void show_queues(const json_t *v)
{
    static const char *const h[] = {"QUEUE", "TYPE", "READY", "UNACKED", "CONSUMERS", "PUB/S", "DLV/S", "READY SIZE",
                                    NULL};
    cli_table_t *t = cli_table_new(h, "llrrrrrr");
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
        cli_table_cell(t, cli_jstr(e, "name"));
        cli_table_cell(t, cli_jstr(e, "type"));
        cli_table_count(t, cli_jnum(e, "messages_ready"));
        cli_table_count(t, cli_jnum(e, "messages_unacked"));
        cli_table_cellf(t, "%.0f", cli_jnum(e, "consumers"));
        cli_table_rate(t, cli_jpnum(e, "rates.publish"));
        cli_table_rate(t, cli_jpnum(e, "rates.deliver"));
        cli_table_bytes(t, cli_jnum(e, "ready_bytes"));
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
}

static int queues_list(cli_t *c, int argc, char **argv)
{
    int rc = cli_parse(c, argc, argv, NULL, NULL, 0);
    return rc ? rc : cli_get_show(c, "/api/queues", show_queues);
}

/* "name value  name value ..." for every member of a JSON object of numbers. */
static void print_numbers(const char *title, const json_t *o, int rates)
{
    const char *k;
    const json_t *v;
    char b[32];
    printf("%s", title);
    json_object_foreach((json_t *)o, k, v) {
        double d = json_number_value(v);
        printf("  %s %s", k, rates ? cli_fmt_rate(b, sizeof b, d) : cli_fmt_count(b, sizeof b, d));
    }
    printf("\n");
}

static void show_consumers(const json_t *list)
{
    static const char *const h[] = {"CONSUMER TAG", "CONNECTION", "CHANNEL", "PREFETCH", "ACK", NULL};
    cli_table_t *t = cli_table_new(h, "llrrl");
    size_t i;
    const json_t *e;
    json_array_foreach(list, i, e) {
        cli_table_cell(t, cli_jstr(e, "consumer_tag"));
        cli_table_cell(t, cli_jstr(e, "connection"));
        cli_table_cellf(t, "%.0f", cli_jnum(e, "channel"));
        cli_table_cellf(t, "%.0f", cli_jnum(e, "prefetch"));
        cli_table_cell(t, cli_jyes(e, "ack"));
    }
    if (cli_table_rows(t)) cli_table_print(t, stdout);
    else printf("no consumers\n");
    cli_table_free(t);
}

static void show_queue(const json_t *v)
{
    char b[32];
    printf("queue %s  type %s  durable %s  exclusive %s  auto-delete %s\n", cli_safe(cli_jstr(v, "name")),
           cli_safe(cli_jstr(v, "type")),
           cli_jyes(v, "durable"), cli_jyes(v, "exclusive"), cli_jyes(v, "auto_delete"));
    printf("messages %.0f: ready %.0f (%s), unacked %.0f, delayed %.0f\n", cli_jnum(v, "messages"),
           cli_jnum(v, "messages_ready"), cli_fmt_bytes(b, sizeof b, cli_jnum(v, "ready_bytes")),
           cli_jnum(v, "messages_unacked"), cli_jnum(v, "messages_delayed"));
    const char *dlx = json_string_value(json_object_get(v, "dead_letter_exchange"));
    const char *dlk = json_string_value(json_object_get(v, "dead_letter_routing_key"));
    if (dlx)
        printf("dead letters go to exchange '%s' with %s%s%s\n", cli_safe(dlx),
               dlk ? "routing key '" : "their own routing key", dlk ? cli_safe(dlk) : "", dlk ? "'" : "");
    const char *k;
    const json_t *a;
    printf("arguments:");
    json_object_foreach(json_object_get(v, "arguments"), k, a) {
        char *s = cli_jshow(a);
        printf(" %s=%s", cli_safe(k), cli_safe(s));
        free(s);
    }
    printf("%s\n", json_object_size(json_object_get(v, "arguments")) ? "" : " none");
    print_numbers("totals:", json_object_get(v, "totals"), 0);
    print_numbers("rates/s:", json_object_get(v, "rates"), 1);
    printf("\n");
    show_consumers(json_object_get(v, "consumer_details"));
}

static int queues_describe(cli_t *c, int argc, char **argv)
{
    const char *name;
    int rc = cli_parse(c, argc, argv, NULL, &name, 1);
    if (rc) return rc;
    char *path = queue_path(name, "");
    rc = cli_get_show(c, path, show_queue);
    free(path);
    return rc;
}

static int queues_create(cli_t *c, int argc, char **argv)
{
    const char *name;
    int durable = 1, auto_delete = 0;
    cli_list_t args = {0};
    const cli_opt_t opts[] = {
        {"--durable", CLI_OPT_FLAG, &durable, 1},
        {"--transient", CLI_OPT_FLAG, &durable, 0},
        {"--auto-delete", CLI_OPT_FLAG, &auto_delete, 1},
        {"--arg", CLI_OPT_LIST, &args, 0},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_parse(c, argc, argv, opts, &name, 1);
    if (rc) return rc;
    json_t *arguments = cli_kv_object(c, "--arg", &args, 1);
    if (!arguments) return CLI_EUSAGE;
    json_t *body = json_pack("{s:b, s:b, s:o}", "durable", durable, "auto_delete", auto_delete, "arguments", arguments);
    char *path = queue_path(name, "");
    rc = cli_declare(c, path, body, "queue", name);
    free(path);
    json_decref(body);
    return rc;
}

static int queues_delete(cli_t *c, int argc, char **argv)
{
    const char *name;
    int if_empty = 0, if_unused = 0;
    const cli_opt_t opts[] = {
        {"--if-empty", CLI_OPT_FLAG, &if_empty, 1},
        {"--if-unused", CLI_OPT_FLAG, &if_unused, 1},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_parse(c, argc, argv, opts, &name, 1);
    if (rc) return rc;
    char query[64];
    snprintf(query, sizeof query, "%s%s%s", if_empty || if_unused ? "?" : "", if_empty ? "if_empty=true" : "",
             if_unused ? (if_empty ? "&if_unused=true" : "if_unused=true") : "");
    char *path = queue_path(name, query);
    char *done = xasprintf("deleted queue %s", name);
    rc = cli_write_say(c, "DELETE", path, NULL, done);
    free(done);
    free(path);
    return rc;
}

static int queues_purge(cli_t *c, int argc, char **argv)
{
    const char *name;
    int rc = cli_parse(c, argc, argv, NULL, &name, 1);
    if (rc) return rc;
    json_t *v = NULL;
    char *path = queue_path(name, "/purge");
    rc = cli_call(c, "POST", path, NULL, &v);
    if (!rc) {
        if (c->json) cli_print_json(v);
        else printf("purged %.0f messages from %s\n", cli_jnum(v, "purged"), name);
    }
    json_decref(v);
    free(path);
    return rc;
}

/* The newest x-death entry, "3x rejected in work", or "". */
static void death_summary(const json_t *msg, char *buf, size_t n)
{
    const json_t *deaths = cli_jpath(msg, "properties.headers.x-death");
    const json_t *d = json_array_get(deaths, 0);
    if (!d) {
        snprintf(buf, n, "%s", "");
        return;
    }
    snprintf(buf, n, "%.0fx %s in %s", cli_jnum(d, "count"), cli_jstr(d, "reason"), cli_jstr(d, "queue"));
}

/* The payload's start for one cell: text as is, base64 marked. */
static void payload_preview(const json_t *msg, char *buf, size_t n)
{
    const char *p = cli_jstr(msg, "payload");
    int b64 = !strcmp(cli_jstr(msg, "payload_encoding"), "base64");
    size_t chars = 0, i = 0;
    /* Cut at a character boundary. */
    while (p[i] && chars < CLI_PEEK_PAYLOAD_CHARS) {
        i++;
        while (((unsigned char)p[i] & 0xC0) == 0x80) i++;
        chars++;
    }
    snprintf(buf, n, "%s%.*s%s", b64 ? "base64:" : "", (int)i, p, p[i] ? "..." : "");
}

static void show_messages(const json_t *v)
{
    static const char *const h[] = {"POS", "DELIVERIES", "EXCHANGE", "ROUTING KEY", "SIZE", "DIED", "PAYLOAD", NULL};
    cli_table_t *t = cli_table_new(h, "rrllrll");
    size_t i;
    const json_t *m;
    json_array_foreach(v, i, m) {
        char died[256], payload[4 * CLI_PEEK_PAYLOAD_CHARS + 16];
        death_summary(m, died, sizeof died);
        payload_preview(m, payload, sizeof payload);
        cli_table_cellf(t, "%.0f", cli_jnum(m, "position"));
        cli_table_cellf(t, "%.0f", cli_jnum(m, "delivery_count"));
        cli_table_cell(t, *cli_jstr(m, "exchange") ? cli_jstr(m, "exchange") : "(default)");
        cli_table_cell(t, cli_jstr(m, "routing_key"));
        cli_table_bytes(t, cli_jnum(m, "payload_bytes"));
        cli_table_cell(t, died);
        cli_table_cell(t, payload);
    }
    if (cli_table_rows(t)) cli_table_print(t, stdout);
    else printf("no ready messages\n");
    cli_table_free(t);
}

static int queues_peek(cli_t *c, int argc, char **argv)
{
    const char *name;
    int64_t count = 10;
    const cli_opt_t opts[] = {
        {"--count", CLI_OPT_INT, &count, 0},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_parse(c, argc, argv, opts, &name, 1);
    if (rc) return rc;
    char query[48];
    snprintf(query, sizeof query, "/messages?limit=%lld", (long long)count);
    char *path = queue_path(name, query);
    rc = cli_get_show(c, path, show_messages);
    free(path);
    return rc;
}

/* One redrive call of at most count messages; adds to *moved, sets
 * *skipped. */
static int redrive_once(cli_t *c, const char *path, int64_t count, const char *to, int64_t *moved,
                        int64_t *skipped)
{
    json_t *body = json_object(), *v = NULL;
    json_object_set_new(body, "count", json_integer(count));
    if (to) json_object_set_new(body, "to", json_string(to));
    int rc = cli_call(c, "POST", path, body, &v);
    *moved += (int64_t)cli_jnum(v, "moved");
    *skipped = (int64_t)cli_jnum(v, "skipped");
    json_decref(v);
    json_decref(body);
    return rc;
}

/* The broker moves at most one page (16384) of a paged-out queue per call:
 * call again while messages move, up to --count, by default up to the
 * ready messages there were at the start (messages that die straight
 * back into the queue must not keep it going forever). */
static int cmd_redrive(cli_t *c, int argc, char **argv)
{
    const char *name, *to = NULL;
    int64_t count = -1, moved = 0, skipped = 0, before = -1;
    const cli_opt_t opts[] = {
        {"--count", CLI_OPT_INT, &count, 0},
        {"--to", CLI_OPT_STR, &to, 0},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_parse(c, argc, argv, opts, &name, 1);
    if (rc) return rc;
    char *path = queue_path(name, "");
    json_t *q = NULL;
    if (count < 0 && !(rc = cli_call(c, "GET", path, NULL, &q))) count = (int64_t)cli_jnum(q, "messages_ready");
    json_decref(q);
    free(path);
    path = queue_path(name, "/redrive");
    while (!rc && moved > before && moved < count) {
        before = moved;
        rc = redrive_once(c, path, count - moved, to, &moved, &skipped);
    }
    free(path);
    if (rc) return rc;
    if (c->json) {
        printf("{\"moved\": %lld, \"skipped\": %lld}\n", (long long)moved, (long long)skipped);
        return CLI_OK;
    }
    printf("moved %lld messages from %s", (long long)moved, name);
    if (skipped)
        printf("; %lld stayed (no x-death, or the queue they died in is gone or refuses them: --to QUEUE "
               "moves them)",
               (long long)skipped);
    printf("\n");
    return CLI_OK;
}

const cli_cmd_t cli_queue_cmds[] = {
    {"queues", "list", queues_list, "", "queues with ready/unacked counts, consumers and rates"},
    {"queues", "describe", queues_describe, "NAME", "settings, counts, totals, rates and consumers"},
    {"queues", "create", queues_create, "NAME [--durable|--transient] [--auto-delete] [--arg KEY=VALUE ...]",
     "declare a queue (VALUE is JSON when it parses: --arg x-max-length=1000)"},
    {"queues", "delete", queues_delete, "NAME [--if-empty] [--if-unused]", "delete a queue and its messages"},
    {"queues", "purge", queues_purge, "NAME", "drop a queue's ready messages"},
    {"queues", "peek", queues_peek, "NAME [--count N]", "show ready messages without consuming them (default 10)"},
    {"redrive", NULL, cmd_redrive, "QUEUE [--count N] [--to QUEUE]",
     "move dead-lettered messages back to the queue they died in (or --to)"},
    {NULL, NULL, NULL, NULL, NULL},
};
