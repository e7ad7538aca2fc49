/*
 * `herald produce` and `herald consume`: Kafka records through the HTTP
 * API (docs/http-api.md, POST and GET /api/topics/{name}/records, POST
 * /api/groups/{id}/offsets).
 *
 * produce: each stdin line is one record (the newline stripped), sent in
 * batches of CLI_PRODUCE_BATCH lines (fewer when they pass
 * CLI_PRODUCE_BATCH_BYTES, to stay under the API's body limit).
 *
 * consume: reads each partition (or --partition) from its start position
 * to the end it had when consume began, printing values one per line;
 * --follow keeps going and long-polls when every partition is caught up.
 * Start position: the group's committed offset (--group), else the start
 * (--from-beginning), else the end. With --group each printed batch is
 * committed as a simple consumer would.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "base/mem.h"
#include "cli/cli_int.h"
#include "http/hjson.h"

#define CLI_PRODUCE_BATCH 500
#define CLI_PRODUCE_BATCH_BYTES (4u << 20)
#define CLI_FETCH_LIMIT 1000   /* records per GET */
#define CLI_FOLLOW_WAIT_MS 2000 /* long poll, split over the partitions */

/* ---- produce ---- */

typedef struct {
    char *path;
    const char *key;
    int64_t partition; /* -1: the broker picks */
    json_t *records;   /* the batch being filled */
    size_t bytes;      /* payload bytes in it */
} produce_t;

static int produce_flush(cli_t *c, produce_t *p)
{
    if (!json_array_size(p->records)) return CLI_OK;
    json_t *body = json_pack("{s:O}", "records", p->records), *v = NULL;
    int rc = cli_call(c, "POST", p->path, body, &v);
    if (!rc && c->json) {
        json_dumpf(v, stdout, JSON_COMPACT);
        putchar('\n');
    }
    json_decref(v);
    json_decref(body);
    json_array_clear(p->records);
    p->bytes = 0;
    return rc;
}

static int produce_add(cli_t *c, void *arg, const char *value, size_t n)
{
    produce_t *p = arg;
    json_t *r = json_object();
    hjson_set_bytes(r, "value", "value_encoding", value, n);
    if (p->key) json_object_set_new(r, "key", json_string(p->key));
    if (p->partition >= 0) json_object_set_new(r, "partition", json_integer(p->partition));
    json_array_append_new(p->records, r);
    p->bytes += n;
    if (json_array_size(p->records) >= CLI_PRODUCE_BATCH || p->bytes >= CLI_PRODUCE_BATCH_BYTES)
        return produce_flush(c, p);
    return CLI_OK;
}

static int cmd_produce(cli_t *c, int argc, char **argv)
{
    const char *topic, *value = NULL;
    produce_t p = {.partition = -1};
    const cli_opt_t opts[] = {
        {"--key", CLI_OPT_STR, &p.key, 0},
        {"--partition", CLI_OPT_INT, &p.partition, 0},
        {"--value", CLI_OPT_STR, &value, 0},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_parse(c, argc, argv, opts, &topic, 1);
    if (rc) return rc;
    char *e = cli_escape(topic);
    p.path = xasprintf("/api/topics/%s/records", e);
    p.records = json_array();
    rc = value ? produce_add(c, &p, value, strlen(value)) : cli_each_line(c, &p, produce_add);
    if (!rc) rc = produce_flush(c, &p);
    json_decref(p.records);
    free(p.path);
    free(e);
    return rc;
}

/* ---- consume ---- */

typedef struct {
    int32_t partition;
    int64_t next; /* next offset to read */
    int64_t end;  /* end offset when consume began: without --follow, stop there */
} cpart_t;

typedef struct {
    const char *topic, *group;
    char *etopic, *egroup; /* %-encoded */
    int from_beginning, follow;
    int64_t only;          /* --partition, -1 all */
    int64_t left;          /* records still to print, -1 unlimited */
    cpart_t *parts;
    size_t nparts;
} consume_t;

/* The group's committed offset for (topic, partition), or -1. */
static int64_t committed_offset(const json_t *group, const char *topic, int64_t partition)
{
    size_t i;
    const json_t *o;
    json_array_foreach(json_object_get(group, "offsets"), i, o)
        if (!strcmp(cli_jstr(o, "topic"), topic) && (int64_t)cli_jnum(o, "partition") == partition)
            return (int64_t)cli_jnum(o, "committed");
    return -1;
}

/* GET the group, NULL in *out when it does not exist yet. */
static int load_group(cli_t *c, consume_t *s, json_t **out)
{
    *out = NULL;
    if (!s->group) return CLI_OK;
    char *path = xasprintf("/api/groups/%s", s->egroup);
    int rc = cli_http(c, "GET", path, NULL, out, 0);
    free(path);
    if (rc == CLI_EAPI && c->status == 404) return CLI_OK;
    if (rc) fprintf(stderr, "herald: %s\n", c->err);
    /* The broker takes commits from outside only while the group is empty:
     * say so before printing anything rather than fail the first commit. */
    if (!rc && json_array_size(json_object_get(*out, "members"))) {
        fprintf(stderr, "herald: group %s has active members (%zu); only they may consume and commit for it\n",
                s->group, json_array_size(json_object_get(*out, "members")));
        rc = CLI_EAPI;
    }
    return rc;
}

/* Fills s->parts from the topic's partitions and the starting rules. */
static int consume_plan(cli_t *c, consume_t *s)
{
    json_t *topic = NULL, *group = NULL;
    char *path = xasprintf("/api/topics/%s", s->etopic);
    int rc = cli_call(c, "GET", path, NULL, &topic);
    if (!rc) rc = load_group(c, s, &group);
    if (rc) goto fail;
    const json_t *parts = json_object_get(topic, "partitions");
    s->parts = xcalloc(json_array_size(parts) + 1, sizeof *s->parts);
    size_t i;
    const json_t *p;
    json_array_foreach(parts, i, p) {
        cpart_t *cp = &s->parts[s->nparts];
        cp->partition = (int32_t)cli_jnum(p, "partition");
        if (s->only >= 0 && cp->partition != s->only) continue;
        /* Consumers see up to the high watermark (the durable end). */
        const json_t *hw = json_object_get(p, "high_watermark");
        cp->end = (int64_t)(hw ? json_number_value(hw) : cli_jnum(p, "end_offset"));
        int64_t committed = committed_offset(group, s->topic, cp->partition);
        cp->next = committed >= 0 ? committed : s->from_beginning ? (int64_t)cli_jnum(p, "start_offset") : cp->end;
        s->nparts++;
    }
    if (!s->nparts) {
        fprintf(stderr, "herald: topic %s has no partition %lld\n", s->topic, (long long)s->only);
        rc = CLI_EAPI;
    }
fail:
    json_decref(group);
    json_decref(topic);
    free(path);
    return rc;
}

static void print_record(const consume_t *s, json_t *rec, int32_t partition, int json)
{
    if (json) {
        json_object_set_new(rec, "topic", json_string(s->topic));
        json_object_set_new(rec, "partition", json_integer(partition));
        json_dumpf(rec, stdout, JSON_COMPACT);
    } else {
        uint8_t *bytes = NULL;
        size_t n = 0;
        const char *enc = json_string_value(json_object_get(rec, "value_encoding"));
        if (hjson_get_bytes(json_object_get(rec, "value"), enc, &bytes, &n) == 0) fwrite(bytes, 1, n, stdout);
        free(bytes);
    }
    putchar('\n');
}

static int commit(cli_t *c, const consume_t *s, const cpart_t *p)
{
    json_t *body = json_pack("{s:[{s:s, s:i, s:I}]}", "offsets", "topic", s->topic, "partition", (int)p->partition,
                             "offset", (json_int_t)p->next);
    char *path = xasprintf("/api/groups/%s/offsets", s->egroup);
    int rc = cli_call(c, "POST", path, body, NULL);
    free(path);
    json_decref(body);
    return rc;
}

/* One GET of partition p; prints what came and commits it. Sets *got to
 * the number of records printed. */
static int fetch_once(cli_t *c, consume_t *s, cpart_t *p, long wait_ms, size_t *got)
{
    int64_t limit = s->left >= 0 && s->left < CLI_FETCH_LIMIT ? s->left : CLI_FETCH_LIMIT;
    char *path = xasprintf("/api/topics/%s/records?partition=%d&offset=%lld&limit=%lld&wait_ms=%ld", s->etopic,
                           (int)p->partition, (long long)p->next, (long long)limit, wait_ms);
    json_t *v = NULL;
    int rc = cli_http(c, "GET", path, NULL, &v, wait_ms + 30000);
    free(path);
    *got = 0;
    if (rc) {
        fprintf(stderr, "herald: %s\n", c->err);
        return rc;
    }
    json_t *recs = json_object_get(v, "records");
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) print_record(s, r, p->partition, c->json);
    *got = json_array_size(recs);
    if (s->left > 0) s->left -= (int64_t)*got;
    int64_t next = (int64_t)cli_jnum(v, "next_offset");
    json_decref(v);
    /* next_offset may move with no record printed (past transaction
     * markers): take it, or the same read would come back forever. */
    if (next <= p->next) return CLI_OK;
    p->next = next;
    if (fflush(stdout) != 0) return CLI_EAPI;
    return s->group ? commit(c, s, p) : CLI_OK;
}

/* Reads every partition once (up to its end unless following). Sets *got
 * to the records printed in the round, *open to the partitions not done. */
static int consume_round(cli_t *c, consume_t *s, long wait_ms, size_t *got, size_t *open)
{
    *got = 0;
    *open = 0;
    for (size_t i = 0; i < s->nparts && s->left != 0; i++) {
        cpart_t *p = &s->parts[i];
        if (!s->follow && p->next >= p->end) continue;
        size_t n;
        int64_t before = p->next;
        int rc = fetch_once(c, s, p, wait_ms, &n);
        if (rc) return rc;
        *got += n;
        /* A read below the end that did not move: nothing more will come
         * from there without --follow. */
        if (!s->follow && p->next == before) p->end = p->next;
        if (s->follow || p->next < p->end) (*open)++;
    }
    return CLI_OK;
}

static int consume_loop(cli_t *c, consume_t *s)
{
    long wait_ms = 0;
    for (;;) {
        size_t got, open;
        int rc = consume_round(c, s, wait_ms, &got, &open);
        if (rc || s->left == 0 || !open) return rc;
        /* Caught up everywhere: long-poll, the wait split over the partitions. */
        wait_ms = got ? 0 : CLI_FOLLOW_WAIT_MS / (long)s->nparts;
        if (wait_ms && wait_ms < 100) wait_ms = 100;
    }
}

static int cmd_consume(cli_t *c, int argc, char **argv)
{
    const char *topic;
    consume_t s = {.only = -1, .left = -1};
    const cli_opt_t opts[] = {
        {"--group", CLI_OPT_STR, &s.group, 0},
        {"--from-beginning", CLI_OPT_FLAG, &s.from_beginning, 1},
        {"--partition", CLI_OPT_INT, &s.only, 0},
        {"--count", CLI_OPT_INT, &s.left, 0},
        {"--follow", CLI_OPT_FLAG, &s.follow, 1},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_parse(c, argc, argv, opts, &topic, 1);
    if (rc) return rc;
    s.topic = topic;
    s.etopic = cli_escape(topic);
    s.egroup = s.group ? cli_escape(s.group) : NULL;
    rc = consume_plan(c, &s);
    if (!rc && s.left != 0) rc = consume_loop(c, &s);
    free(s.parts);
    free(s.etopic);
    free(s.egroup);
    return rc;
}

const cli_cmd_t cli_record_cmds[] = {
    {"produce", NULL, cmd_produce, "TOPIC [--key K] [--partition P] [--value V]",
     "produce --value, or each line of stdin as one record"},
    {"consume", NULL, cmd_consume,
     "TOPIC [--group G] [--from-beginning] [--partition P] [--count N] [--follow]",
     "print record values, one per line (--json: whole records); --group commits what was printed"},
    {NULL, NULL, NULL, NULL, NULL},
};
