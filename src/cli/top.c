/*
 * `herald top`: a live view for the question "why are messages piling
 * up?". Every interval it reads the overview, queues, groups and topics
 * and prints one frame: an overview line, queues by depth, consumer groups
 * by lag, topics by produce rate. Each queue and group row carries a trend
 * arrow (against the previous frame; on the first, from the rates) and a
 * plain-words hint when something looks wrong (no consumers, consumers
 * slower than publishers, unacked and nothing acked, dead-lettering).
 * The frame is built in memory and written after one ANSI clear, so it
 * does not flicker; --once prints a single frame without the clear.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "cli/cli_int.h"

#define TOP_DEFAULT_ROWS 10

typedef struct {
    json_t *prev_depth; /* queue name -> ready + unacked, last frame; NULL on the first */
    json_t *prev_lag;   /* group id -> lag, last frame */
    int64_t rows;       /* rows per table */
} top_t;

typedef struct {
    const json_t *e;
    double key;
} row_t;

static int by_key_desc(const void *a, const void *b)
{
    double x = ((const row_t *)a)->key, y = ((const row_t *)b)->key;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The array's entries sorted by key(e), largest first; caller frees. */
static row_t *sorted(const json_t *arr, double (*key)(const json_t *e), size_t *n)
{
    *n = json_array_size(arr);
    row_t *rows = xcalloc(*n + 1, sizeof *rows);
    for (size_t i = 0; i < *n; i++) {
        rows[i].e = json_array_get(arr, i);
        rows[i].key = key(rows[i].e);
    }
    qsort(rows, *n, sizeof *rows, by_key_desc);
    return rows;
}

static const char *arrow(double now, double before)
{
    return now > before ? "↑" : now < before ? "↓" : "=";
}

static void overview(FILE *out, const json_t *o)
{
    char b[6][32];
    double in = cli_jpnum(o, "rates.kafka_in") + cli_jpnum(o, "rates.amqp_publish");
    double outr = cli_jpnum(o, "rates.kafka_out") + cli_jpnum(o, "rates.amqp_deliver");
    double kc = cli_jpnum(o, "connections.kafka"), ac = cli_jpnum(o, "connections.amqp");
    /* Disk figures come a moment after the broker starts (measured off the loop). */
    const json_t *free_bytes = cli_jpath(o, "disk.free_bytes");
    fprintf(out, "herald %s  up %s  in %s/s  out %s/s  connections %.0f (kafka %.0f, amqp %.0f)  disk free %s\n",
            cli_safe(cli_jstr(o, "version")), cli_fmt_duration(b[0], sizeof b[0], cli_jnum(o, "uptime_ms")),
            cli_fmt_rate(b[1], sizeof b[1], in), cli_fmt_rate(b[2], sizeof b[2], outr), kc + ac, kc, ac,
            free_bytes ? cli_fmt_bytes(b[3], sizeof b[3], json_number_value(free_bytes)) : "?");
    fprintf(out, "messages %s ready, %s unacked in %.0f queues  consumer lag %s in %.0f groups  %.0f topics\n",
            cli_fmt_count(b[4], sizeof b[4], cli_jpnum(o, "messages.ready")),
            cli_fmt_count(b[5], sizeof b[5], cli_jpnum(o, "messages.unacked")), cli_jnum(o, "queues"),
            cli_fmt_count(b[0], sizeof b[0], cli_jnum(o, "consumer_lag")), cli_jnum(o, "groups"),
            cli_jnum(o, "topics"));
    int mem = json_is_true(cli_jpath(o, "alarms.memory")), disk = json_is_true(cli_jpath(o, "alarms.disk"));
    if (mem || disk)
        fprintf(out, "ALARM: %s%s%s: AMQP publishers are blocked\n", mem ? "memory high" : "",
                mem && disk ? ", " : "", disk ? "disk free low" : "");
}

static double queue_depth(const json_t *q)
{
    return cli_jnum(q, "messages_ready") + cli_jnum(q, "messages_unacked");
}

/* Why this queue may be growing, in plain words; "" when nothing stands out. */
static void queue_hint(const json_t *q, char *buf, size_t n)
{
    double ready = cli_jnum(q, "messages_ready"), unacked = cli_jnum(q, "messages_unacked");
    double cons = cli_jnum(q, "consumers"), pub = cli_jpnum(q, "rates.publish"), dlv = cli_jpnum(q, "rates.deliver");
    double ack = cli_jpnum(q, "rates.ack"), dl = cli_jpnum(q, "rates.dead_letter");
    double redlv = cli_jpnum(q, "rates.redeliver");
    char r[32];
    buf[0] = '\0';
    if (ready > 0 && cons == 0) snprintf(buf, n, "no consumers");
    else if (unacked > 0 && ack == 0)
        snprintf(buf, n, "consumers hold %.0f unacked and ack none: stuck or slow?", unacked);
    else if (ready > 0 && pub > dlv * 1.1 + 0.1)
        snprintf(buf, n, "publishers outpace consumers by %s/s", cli_fmt_rate(r, sizeof r, pub - dlv));
    else if (dl > 0) snprintf(buf, n, "dead-lettering %s/s", cli_fmt_rate(r, sizeof r, dl));
    else if (redlv > 0)
        snprintf(buf, n, "redelivering %s/s: consumers reject or crash?", cli_fmt_rate(r, sizeof r, redlv));
    else if (ready > 0 && dlv == 0) snprintf(buf, n, "consumers take nothing: prefetch full?");
}

static void queues_table(FILE *out, top_t *t, const json_t *queues, json_t *depths)
{
    static const char *const h[] = {"QUEUE", "READY", "UNACKED", "CONSUMERS", "PUB/S", "DLV/S", "ACK/S", "", "WHY",
                                    NULL};
    cli_table_t *tb = cli_table_new(h, "lrrrrrrll");
    size_t n;
    row_t *rows = sorted(queues, queue_depth, &n);
    for (size_t i = 0; i < n; i++) {
        const json_t *q = rows[i].e;
        const char *name = cli_jstr(q, "name");
        json_object_set_new(depths, name, json_real(rows[i].key));
        if ((int64_t)i >= t->rows) continue;
        const json_t *prev = t->prev_depth ? json_object_get(t->prev_depth, name) : NULL;
        double pub = cli_jpnum(q, "rates.publish"), dlv = cli_jpnum(q, "rates.deliver");
        char hint[128];
        queue_hint(q, hint, sizeof hint);
        cli_table_cell(tb, name);
        cli_table_count(tb, cli_jnum(q, "messages_ready"));
        cli_table_count(tb, cli_jnum(q, "messages_unacked"));
        cli_table_cellf(tb, "%.0f", cli_jnum(q, "consumers"));
        cli_table_rate(tb, pub);
        cli_table_rate(tb, dlv);
        cli_table_rate(tb, cli_jpnum(q, "rates.ack"));
        cli_table_cell(tb, prev ? arrow(rows[i].key, json_number_value(prev)) : arrow(pub, dlv));
        cli_table_cell(tb, hint);
    }
    fprintf(out, "\nQUEUES by depth (ready + unacked)\n");
    if (n) cli_table_print(tb, out);
    else fprintf(out, "no queues\n");
    if ((int64_t)n > t->rows) fprintf(out, "... %lld more (herald queues list)\n", (long long)n - (long long)t->rows);
    cli_table_free(tb);
    free(rows);
}

static double group_lag(const json_t *g)
{
    return cli_jnum(g, "lag");
}

static void groups_table(FILE *out, top_t *t, const json_t *groups, json_t *lags)
{
    static const char *const h[] = {"GROUP", "LAG", "", "MEMBERS", "STATE", "WHY", NULL};
    cli_table_t *tb = cli_table_new(h, "lrlrll");
    size_t n;
    row_t *rows = sorted(groups, group_lag, &n);
    for (size_t i = 0; i < n; i++) {
        const json_t *g = rows[i].e;
        const char *id = cli_jstr(g, "group_id");
        json_object_set_new(lags, id, json_real(rows[i].key));
        if ((int64_t)i >= t->rows) continue;
        const json_t *prev = t->prev_lag ? json_object_get(t->prev_lag, id) : NULL;
        double members = cli_jnum(g, "members");
        const char *hint = "";
        if (rows[i].key > 0 && members == 0) hint = "no members: nobody is consuming";
        else if (prev && rows[i].key > json_number_value(prev)) hint = "falling behind";
        cli_table_cell(tb, id);
        cli_table_count(tb, rows[i].key);
        cli_table_cell(tb, prev ? arrow(rows[i].key, json_number_value(prev)) : "");
        cli_table_cellf(tb, "%.0f", members);
        cli_table_cell(tb, cli_jstr(g, "state"));
        cli_table_cell(tb, hint);
    }
    fprintf(out, "\nCONSUMER GROUPS by lag\n");
    if (n) cli_table_print(tb, out);
    else fprintf(out, "no consumer groups\n");
    if ((int64_t)n > t->rows) fprintf(out, "... %lld more (herald groups list)\n", (long long)n - (long long)t->rows);
    cli_table_free(tb);
    free(rows);
}

static double topic_in(const json_t *tp)
{
    return cli_jpnum(tp, "rates.in");
}

static void topics_table(FILE *out, top_t *t, const json_t *topics)
{
    static const char *const h[] = {"TOPIC", "PARTITIONS", "IN/S", "OUT/S", "MESSAGES", "SIZE", NULL};
    cli_table_t *tb = cli_table_new(h, "lrrrrr");
    size_t n;
    row_t *rows = sorted(topics, topic_in, &n);
    for (size_t i = 0; i < n && (int64_t)i < t->rows; i++) {
        const json_t *tp = rows[i].e;
        cli_table_cell(tb, cli_jstr(tp, "name"));
        cli_table_cellf(tb, "%.0f", cli_jnum(tp, "partitions"));
        cli_table_rate(tb, rows[i].key);
        cli_table_rate(tb, cli_jpnum(tp, "rates.out"));
        cli_table_count(tb, cli_jnum(tp, "messages"));
        cli_table_bytes(tb, cli_jnum(tp, "size_bytes"));
    }
    fprintf(out, "\nTOPICS by produce rate\n");
    if (n) cli_table_print(tb, out);
    else fprintf(out, "no topics\n");
    if ((int64_t)n > t->rows) fprintf(out, "... %lld more (herald topics list)\n", (long long)n - (long long)t->rows);
    cli_table_free(tb);
    free(rows);
}

/* GET path into *v; on failure writes the reason into the frame. */
static int fetch(cli_t *c, FILE *out, const char *path, json_t **v)
{
    int rc = cli_http(c, "GET", path, NULL, v, 10000);
    if (rc) fprintf(out, "\n%s: %s\n", path, c->err);
    return rc;
}

/* Builds one frame into out. Returns CLI_EUSAGE when the broker cannot be
 * reached, else CLI_OK (sections that failed say so in the frame). */
static int frame(cli_t *c, top_t *t, FILE *out)
{
    json_t *o = NULL, *q = NULL, *g = NULL, *tp = NULL;
    json_t *depths = json_object(), *lags = json_object();
    int rc = fetch(c, out, "/api/overview", &o);
    if (rc == CLI_EUSAGE) goto fail;
    if (!rc) overview(out, o);
    if (!fetch(c, out, "/api/queues", &q)) queues_table(out, t, q, depths);
    if (!fetch(c, out, "/api/groups", &g)) groups_table(out, t, g, lags);
    if (!fetch(c, out, "/api/topics", &tp)) topics_table(out, t, tp);
    json_decref(t->prev_depth);
    json_decref(t->prev_lag);
    t->prev_depth = json_incref(depths);
    t->prev_lag = json_incref(lags);
    rc = CLI_OK;
fail:
    json_decref(depths);
    json_decref(lags);
    json_decref(o);
    json_decref(q);
    json_decref(g);
    json_decref(tp);
    return rc;
}

/* --json: the four answers as one object per frame, one line each. */
static int frame_json(cli_t *c)
{
    static const char *const parts[][2] = {
        {"overview", "/api/overview"}, {"queues", "/api/queues"}, {"groups", "/api/groups"}, {"topics", "/api/topics"}};
    json_t *all = json_object();
    int rc = CLI_OK;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && !rc; i++) {
        json_t *v = NULL;
        rc = cli_call(c, "GET", parts[i][1], NULL, &v);
        json_object_set_new(all, parts[i][0], v ? v : json_null());
    }
    if (!rc) {
        json_dumpf(all, stdout, JSON_COMPACT);
        putchar('\n');
    }
    json_decref(all);
    return rc;
}

static int cmd_top(cli_t *c, int argc, char **argv)
{
    int once = 0;
    int64_t interval = 2;
    top_t t = {.rows = TOP_DEFAULT_ROWS};
    const cli_opt_t opts[] = {
        {"--once", CLI_OPT_FLAG, &once, 1},
        {"--interval", CLI_OPT_INT, &interval, 0},
        {"--rows", CLI_OPT_INT, &t.rows, 0},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_parse(c, argc, argv, opts, NULL, 0);
    if (rc) return rc;
    if (interval < 1) return cli_usage_error(c, "--interval is at least 1 (seconds)");
    for (; c->json;) {
        rc = frame_json(c);
        fflush(stdout);
        if (rc || once) return rc;
        sleep((unsigned)interval);
    }
    for (;;) {
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        if (!mem) return CLI_EAPI;
        rc = frame(c, &t, mem);
        fclose(mem);
        if (rc && once) fprintf(stderr, "herald: %s\n", c->err);
        else if (!once) printf("\033[H\033[2J%s%s", rc ? c->err : text, rc ? "\n" : "");
        else fputs(text, stdout);
        free(text);
        fflush(stdout);
        if (once) break;
        sleep((unsigned)interval);
    }
    json_decref(t.prev_depth);
    json_decref(t.prev_lag);
    return rc;
}

const cli_cmd_t cli_top_cmds[] = {
    {"top", NULL, cmd_top, "[--once] [--interval SECONDS] [--rows N]",
     "live view: queues by depth, groups by lag, topics by rate, with hints (every 2 s; --once: one frame)"},
    {NULL, NULL, NULL, NULL, NULL},
};
