/*
 * `herald exchanges|bindings|connections ...` and `herald publish`: the
 * AMQP routing side of the admin API (docs/http-api.md, "Exchanges and
 * bindings", "Connections").
 */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "base/mem.h"
#include "cli/cli_int.h"
#include "http/hjson.h"

/* "/api/exchanges/<name><suffix>"; the default exchange "" is amq.default
 * in paths. Caller frees. */
static char *exchange_path(const char *name, const char *suffix)
{
    char *e = cli_escape(*name ? name : "amq.default");
    char *p = xasprintf("/api/exchanges/%s%s", e, suffix);
    free(e);
    return p;
}

static const char *exchange_label(const char *name)
{
    return *name ? name : "(default)";
}

static void show_exchanges(const json_t *v)
{
    static const char *const h[] = {"EXCHANGE", "TYPE", "DURABLE", "AUTO-DELETE", "INTERNAL", "ARGUMENTS", NULL};
    cli_table_t *t = cli_table_new(h, "llllll");
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
        cli_table_cell(t, exchange_label(cli_jstr(e, "name")));
        cli_table_cell(t, cli_jstr(e, "type"));
        cli_table_cell(t, cli_jyes(e, "durable"));
        cli_table_cell(t, cli_jyes(e, "auto_delete"));
        cli_table_cell(t, cli_jyes(e, "internal"));
        cli_table_cell_json(t, json_object_get(e, "arguments"));
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
}

static int exchanges_list(cli_t *c, int argc, char **argv)
{
    int rc = cli_parse(c, argc, argv, NULL, NULL, 0);
    return rc ? rc : cli_get_show(c, "/api/exchanges", show_exchanges);
}

static int exchanges_create(cli_t *c, int argc, char **argv)
{
    const char *name, *type = NULL;
    int durable = 1, auto_delete = 0, internal = 0;
    cli_list_t args = {0};
    const cli_opt_t opts[] = {
        {"--type", CLI_OPT_STR, &type, 0},
        {"--durable", CLI_OPT_FLAG, &durable, 1},
        {"--transient", CLI_OPT_FLAG, &durable, 0},
        {"--auto-delete", CLI_OPT_FLAG, &auto_delete, 1},
        {"--internal", CLI_OPT_FLAG, &internal, 1},
        {"--arg", CLI_OPT_LIST, &args, 0},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_parse(c, argc, argv, opts, &name, 1);
    if (rc) return rc;
    if (!type) return cli_usage_error(c, "--type is required (direct, fanout, topic, headers, ...)");
    json_t *arguments = cli_kv_object(c, "--arg", &args, 1);
    if (!arguments) return CLI_EUSAGE;
    json_t *body = json_pack("{s:s, s:b, s:b, s:b, s:o}", "type", type, "durable", durable, "auto_delete",
                             auto_delete, "internal", internal, "arguments", arguments);
    char *path = exchange_path(name, "");
    rc = cli_declare(c, path, body, "exchange", name);
    free(path);
    json_decref(body);
    return rc;
}

static int exchanges_delete(cli_t *c, int argc, char **argv)
{
    const char *name;
    int if_unused = 0;
    const cli_opt_t opts[] = {
        {"--if-unused", CLI_OPT_FLAG, &if_unused, 1},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_parse(c, argc, argv, opts, &name, 1);
    if (rc) return rc;
    char *path = exchange_path(name, if_unused ? "?if_unused=true" : "");
    char *done = xasprintf("deleted exchange %s", name);
    rc = cli_write_say(c, "DELETE", path, NULL, done);
    free(done);
    free(path);
    return rc;
}

static void show_bindings(const json_t *v)
{
    static const char *const h[] = {"SOURCE", "DESTINATION", "TYPE", "ROUTING KEY", "ARGUMENTS", NULL};
    cli_table_t *t = cli_table_new(h, "lllll");
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
        cli_table_cell(t, exchange_label(cli_jstr(e, "source")));
        cli_table_cell(t, cli_jstr(e, "destination"));
        cli_table_cell(t, cli_jstr(e, "destination_type"));
        cli_table_cell(t, cli_jstr(e, "routing_key"));
        cli_table_cell_json(t, json_object_get(e, "arguments"));
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
}

static int bindings_list(cli_t *c, int argc, char **argv)
{
    int rc = cli_parse(c, argc, argv, NULL, NULL, 0);
    return rc ? rc : cli_get_show(c, "/api/bindings", show_bindings);
}

/* `bindings create|delete SOURCE DESTINATION [--key K] [--to-exchange]`. */
static int binding_write(cli_t *c, int argc, char **argv, int create)
{
    const char *pos[2], *key = "";
    int to_exchange = 0;
    cli_list_t args = {0};
    const cli_opt_t opts[] = {
        {"--key", CLI_OPT_STR, &key, 0},
        {"--to-exchange", CLI_OPT_FLAG, &to_exchange, 1},
        {"--arg", CLI_OPT_LIST, &args, 0},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_parse(c, argc, argv, opts, pos, 2);
    if (rc) return rc;
    const char *dtype = to_exchange ? "exchange" : "queue";
    char *done = xasprintf("%s binding %s -> %s %s (key '%s')", create ? "created" : "deleted",
                           exchange_label(pos[0]), dtype, pos[1], key);
    if (create) {
        json_t *arguments = cli_kv_object(c, "--arg", &args, 1);
        if (!arguments) rc = CLI_EUSAGE;
        json_t *body = arguments ? json_pack("{s:s, s:s, s:s, s:s, s:o}", "source", pos[0], "destination", pos[1],
                                             "destination_type", dtype, "routing_key", key, "arguments", arguments)
                                 : NULL;
        if (body) rc = cli_write_say(c, "POST", "/api/bindings", body, done);
        json_decref(body);
    } else {
        char *s = cli_escape(pos[0]), *d = cli_escape(pos[1]), *k = cli_escape(key);
        char *path = xasprintf("/api/bindings?source=%s&destination=%s&destination_type=%s&routing_key=%s", s, d,
                               dtype, k);
        rc = cli_write_say(c, "DELETE", path, NULL, done);
        free(path);
        free(s);
        free(d);
        free(k);
    }
    free(done);
    return rc;
}

static int bindings_create(cli_t *c, int argc, char **argv)
{
    return binding_write(c, argc, argv, 1);
}

static int bindings_delete(cli_t *c, int argc, char **argv)
{
    return binding_write(c, argc, argv, 0);
}

static void show_connections(const json_t *v)
{
    static const char *const h[] = {"CONNECTION", "PROTOCOL", "CLIENT", "NAME", "USER", "CHANNELS", "AGE", "IN",
                                    "OUT", NULL};
    cli_table_t *t = cli_table_new(h, "lllllrrrr");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now_ms = (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
        char age[32];
        double at = cli_jnum(e, "connected_at_ms");
        cli_table_cell(t, cli_jstr(e, "name"));
        cli_table_cell(t, cli_jstr(e, "protocol"));
        cli_table_cell(t, cli_jstr(e, "client"));
        cli_table_cell(t, cli_jstr(e, "connection_name"));
        cli_table_cell(t, cli_jstr(e, "user"));
        cli_table_cellf(t, "%.0f", cli_jnum(e, "channels"));
        cli_table_cell(t, at > 0 && now_ms > at ? cli_fmt_duration(age, sizeof age, now_ms - at) : "");
        cli_table_bytes(t, cli_jnum(e, "bytes_in"));
        cli_table_bytes(t, cli_jnum(e, "bytes_out"));
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
}

static int connections_list(cli_t *c, int argc, char **argv)
{
    int rc = cli_parse(c, argc, argv, NULL, NULL, 0);
    return rc ? rc : cli_get_show(c, "/api/connections", show_connections);
}

typedef struct {
    const char *path;
    const char *key;
    json_t *props;    /* properties shared by every message */
    long unrouted;    /* messages the broker routed nowhere */
} publish_t;

/* Publishes one payload; returns an exit status. */
static int publish_one(cli_t *c, void *arg, const char *payload, size_t n)
{
    publish_t *p = arg;
    json_t *body = json_pack("{s:s, s:O}", "routing_key", p->key, "properties", p->props), *v = NULL;
    hjson_set_bytes(body, "payload", "payload_encoding", payload, n);
    int rc = cli_call(c, "POST", p->path, body, &v);
    if (!rc && c->json) {
        json_dumpf(v, stdout, JSON_COMPACT);
        putchar('\n');
    }
    if (!rc && !json_is_true(json_object_get(v, "routed"))) p->unrouted++;
    json_decref(v);
    json_decref(body);
    return rc;
}

static int cmd_publish(cli_t *c, int argc, char **argv)
{
    const char *pos[2], *body = NULL, *ctype = NULL;
    int persistent = 0;
    cli_list_t headers = {0};
    const cli_opt_t opts[] = {
        {"--body", CLI_OPT_STR, &body, 0},
        {"--header", CLI_OPT_LIST, &headers, 0},
        {"--persistent", CLI_OPT_FLAG, &persistent, 1},
        {"--content-type", CLI_OPT_STR, &ctype, 0},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_parse(c, argc, argv, opts, pos, 2);
    if (rc) return rc;
    json_t *h = cli_kv_object(c, "--header", &headers, 1);
    if (!h) return CLI_EUSAGE;
    publish_t p = {.path = exchange_path(pos[0], "/publish"), .key = pos[1], .props = json_object()};
    if (headers.n) json_object_set(p.props, "headers", h);
    if (persistent) json_object_set_new(p.props, "delivery_mode", json_integer(2));
    if (ctype) json_object_set_new(p.props, "content_type", json_string(ctype));
    rc = body ? publish_one(c, &p, body, strlen(body)) : cli_each_line(c, &p, publish_one);
    if (p.unrouted)
        fprintf(stderr, "herald: %ld message%s published but routed to no queue (exchange %s, key '%s')\n",
                p.unrouted, p.unrouted == 1 ? "" : "s", exchange_label(pos[0]), pos[1]);
    json_decref(h);
    json_decref(p.props);
    free((char *)p.path);
    return rc;
}

const cli_cmd_t cli_amqp_cmds[] = {
    {"exchanges", "list", exchanges_list, "", "exchanges with type and flags"},
    {"exchanges", "create", exchanges_create,
     "NAME --type TYPE [--durable|--transient] [--auto-delete] [--internal] [--arg KEY=VALUE ...]",
     "declare an exchange"},
    {"exchanges", "delete", exchanges_delete, "NAME [--if-unused]", "delete an exchange"},
    {"bindings", "list", bindings_list, "", "bindings from exchanges to queues and exchanges"},
    {"bindings", "create", bindings_create, "EXCHANGE QUEUE [--key K] [--to-exchange] [--arg KEY=VALUE ...]",
     "bind a queue (or with --to-exchange an exchange) to an exchange"},
    {"bindings", "delete", bindings_delete, "EXCHANGE QUEUE [--key K] [--to-exchange]", "remove a binding"},
    {"connections", "list", connections_list, "", "Kafka and AMQP client connections"},
    {"publish", NULL, cmd_publish,
     "EXCHANGE ROUTING_KEY [--body B] [--header KEY=VALUE ...] [--persistent] [--content-type T]",
     "publish --body, or each line of stdin as one message (exchange \"\" is the default)"},
    {NULL, NULL, NULL, NULL, NULL},
};
