/* Topics over HTTP: list, describe, create, delete, produce, consume
 * (docs/http-api.md, "Topics"). */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "broker/group.h"
#include "broker/records.h"
#include "http/hjson.h"
#include "http/hwait.h"
#include "http/router.h"
#include "http/stats.h"

#define PRODUCE_MAX_RECORDS 10000
#define CONSUME_MAX_LIMIT 10000
#define CONSUME_MAX_WAIT_MS 30000

static json_t *rates_json(const partition_rates_t *pr)
{
    return json_pack("{s:f, s:f, s:f, s:f}", "in", pr->in, "in_bytes", pr->in_bytes, "out", pr->out, "out_bytes",
                     pr->out_bytes);
}

static topic_t *find_topic(http_req_t *r, const char *name)
{
    topic_t *t = broker_topic_find(http_req_broker(r), name, strlen(name));
    if (!t) http_reply_error(r, 404, "no topic called %s", name);
    return t;
}

static void get_topics(http_req_t *r)
{
    broker_t *b = http_req_broker(r);
    json_t *arr = json_array();
    for (topic_t *t = broker_topic_first(b); t; t = topic_next(t)) {
        int64_t msgs = 0, size = 0, start = 0, end = 0;
        partition_rates_t sum = {0};
        for (int32_t i = 0; i < topic_partition_count(t); i++) {
            partition_t *p = topic_partition(t, i);
            if (!p) continue; /* its log could not be opened (yet) */
            msgs += partition_end_offset(p) - partition_start_offset(p);
            size += partition_size_bytes(p);
            start += partition_start_offset(p);
            end += partition_end_offset(p);
            partition_rates_t pr;
            http_stats_partition_rates(http_stats(r), p, &pr);
            sum.in += pr.in;
            sum.in_bytes += pr.in_bytes;
            sum.out += pr.out;
            sum.out_bytes += pr.out_bytes;
        }
        json_array_append_new(arr, json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:o}", "name", topic_name(t),
                                             "partitions", topic_partition_count(t), "messages", (json_int_t)msgs,
                                             "size_bytes", (json_int_t)size, "start_offsets", (json_int_t)start,
                                             "end_offsets", (json_int_t)end, "rates", rates_json(&sum)));
    }
    http_reply_json(r, 200, arr);
}

typedef struct {
    const char *topic;
    json_t *groups;
} topic_groups_ctx_t;

static void note_group(void *ctx, const char *topic, int32_t partition, int64_t offset, int32_t leader_epoch,
                       group_str_t meta)
{
    topic_groups_ctx_t *c = ctx;
    if (strcmp(topic, c->topic)) return;
    c->groups = c->groups ? c->groups : json_true(); /* marks "this group has one" */
}

static json_t *topic_json(http_req_t *r, topic_t *t)
{
    broker_t *b = http_req_broker(r);
    char idhex[33];
    for (int i = 0; i < 16; i++) snprintf(idhex + 2 * i, 3, "%02x", topic_id(t)[i]);
    json_t *parts = json_array();
    for (int32_t i = 0; i < topic_partition_count(t); i++) {
        partition_t *p = topic_partition(t, i);
        if (!p) { /* its log could not be opened (yet) */
            json_array_append_new(parts, json_pack("{s:i, s:s}", "partition", i, "error", "unavailable"));
            continue;
        }
        const partition_counters_t *c = partition_counters(p);
        partition_rates_t pr;
        http_stats_partition_rates(http_stats(r), p, &pr);
        json_array_append_new(
            parts, json_pack("{s:i, s:I, s:I, s:I, s:I, s:i, s:I, s:I, s:I, s:I, s:o}", "partition", i,
                             "start_offset", (json_int_t)partition_start_offset(p), "end_offset",
                             (json_int_t)partition_end_offset(p), "high_watermark",
                             (json_int_t)partition_high_watermark(p), "size_bytes",
                             (json_int_t)partition_size_bytes(p), "segments", partition_segment_count(p),
                             "messages_in", (json_int_t)c->msgs_in, "bytes_in", (json_int_t)c->bytes_in,
                             "messages_out", (json_int_t)c->msgs_out, "bytes_out", (json_int_t)c->bytes_out,
                             "rates", rates_json(&pr)));
    }
    json_t *cfg = json_object();
    for (int i = 0; topic_config_keys[i]; i++) {
        char buf[64];
        int is_default = 0;
        const char *v = topic_config_get(t, b, topic_config_keys[i], buf, sizeof buf, &is_default);
        if (v) json_object_set_new(cfg, topic_config_keys[i], json_pack("{s:s, s:b}", "value", v, "default", is_default));
    }
    json_t *groups = json_array();
    for (group_t *g = group_first(broker_groups(b)); g; g = group_next(g)) {
        topic_groups_ctx_t gc = {topic_name(t), NULL};
        group_str_t gid = {group_id(g), (int32_t)strlen(group_id(g))};
        group_offsets_each(broker_groups(b), gid, note_group, &gc);
        if (gc.groups) {
            json_decref(gc.groups);
            json_array_append_new(groups, json_string(group_id(g)));
        }
    }
    return json_pack("{s:s, s:s, s:b, s:o, s:o, s:o}", "name", topic_name(t), "id", idhex, "internal", 0,
                     "partitions", parts, "configs", cfg, "groups", groups);
}

static void get_topic(http_req_t *r)
{
    topic_t *t = find_topic(r, http_req_param(r, 0));
    if (t) http_reply_json(r, 200, topic_json(r, t));
}

/* ---- create and delete: answered once the catalog is durable ---- */

static void answer_after_catalog(http_req_t *r, hwait_done_fn done, void *ctx, void (*ctx_free)(void *))
{
    hwait_t *w = hwait_new(r, 1, done, ctx, ctx_free);
    if (broker_catalog_wait(http_req_broker(r), hwait_slot(w, 0)) == 1) hwait_fired(w, 0, 0);
    hwait_arm(w);
}

static void topic_created(http_req_t *r, int status, void *ctx)
{
    char *name = ctx;
    if (status < 0) {
        http_reply_error(r, 507, "the catalog could not be stored: %s", herald_strerror(status));
        return;
    }
    topic_t *t = broker_topic_find(http_req_broker(r), name, strlen(name));
    if (!t) http_reply_error(r, 409, "topic %s was deleted meanwhile", name);
    else http_reply_json(r, 201, topic_json(r, t));
}

static void post_topics(http_req_t *r)
{
    static const char *const allowed[] = {"name", "partitions", "configs", NULL};
    broker_t *b = http_req_broker(r);
    json_t *body = http_body_object(r, allowed);
    if (!body) return;
    json_t *jn = json_object_get(body, "name"), *jp = json_object_get(body, "partitions"),
           *jc = json_object_get(body, "configs");
    int32_t parts = broker_config(b)->num_partitions;
    if (!json_is_string(jn)) {
        http_reply_error(r, 400, "\"name\" must be a string");
        goto out;
    }
    if (jp && (!json_is_integer(jp) || json_integer_value(jp) < 1 || json_integer_value(jp) > 100000)) {
        http_reply_error(r, 400, "\"partitions\" must be an integer from 1 to 100000");
        goto out;
    }
    if (jp) parts = (int32_t)json_integer_value(jp);
    if (jc && !json_is_object(jc)) {
        http_reply_error(r, 400, "\"configs\" must be an object of strings");
        goto out;
    }
    size_t nc = jc ? json_object_size(jc) : 0, i = 0;
    topic_kv_t *kv = xcalloc(nc ? nc : 1, sizeof *kv);
    const char *k;
    json_t *v;
    if (jc) {
        json_object_foreach(jc, k, v) {
            if (!json_is_string(v)) {
                http_reply_error(r, 400, "config %s must be a string", k);
                free(kv);
                goto out;
            }
            kv[i++] = (topic_kv_t){k, json_string_value(v)};
        }
    }
    const char *name = json_string_value(jn), *bad = NULL;
    topic_t *t;
    int rc = broker_topic_create(b, name, strlen(name), parts, kv, nc, &t, &bad);
    free(kv);
    if (rc == HE_EXISTS) http_reply_error(r, 409, "topic %s already exists", name);
    else if (rc == HE_NOT_FOUND && bad) http_reply_error(r, 400, "unknown config %s", bad);
    else if (bad) http_reply_error(r, 400, "invalid value for config %s", bad);
    else if (rc == HE_INVALID) http_reply_error(r, 400, "invalid topic name %s", name);
    else if (rc == HE_OUT_OF_RANGE) http_reply_error(r, 400, "invalid partition count");
    else if (rc < 0) http_reply_error(r, 507, "cannot create topic %s: %s", name, herald_strerror(rc));
    else answer_after_catalog(r, topic_created, xstrdup(name), free);
out:
    json_decref(body);
}

static void topic_deleted(http_req_t *r, int status, void *ctx)
{
    (void)ctx;
    if (status < 0) http_reply_error(r, 507, "the catalog could not be stored: %s", herald_strerror(status));
    else http_reply(r, 204, "application/json", "", 0);
}

static void delete_topic(http_req_t *r)
{
    topic_t *t = find_topic(r, http_req_param(r, 0));
    if (!t) return;
    int rc = broker_topic_delete(http_req_broker(r), t);
    if (rc < 0) http_reply_error(r, 507, "cannot delete the topic: %s", herald_strerror(rc));
    else answer_after_catalog(r, topic_deleted, NULL, NULL);
}

/* ---- produce ---- */

typedef struct {
    size_t n;
    int32_t *part;     /* per record */
    int64_t *offset;   /* per record */
} produced_t;

static void produced_free(void *ctx)
{
    produced_t *pr = ctx;
    free(pr->part);
    free(pr->offset);
    free(pr);
}

static void produced(http_req_t *r, int status, void *ctx)
{
    produced_t *pr = ctx;
    if (status < 0) {
        http_reply_error(r, 507, "the records could not be stored: %s", herald_strerror(status));
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < pr->n; i++)
        json_array_append_new(arr, json_pack("{s:i, s:I}", "partition", pr->part[i], "offset",
                                             (json_int_t)pr->offset[i]));
    http_reply_json(r, 200, json_pack("{s:o}", "offsets", arr));
}

/* One record of the body: fills rec with buffers appended to owned
 * (freed by the caller). Returns 0 or -1 (answered). */
static int parse_record(http_req_t *r, size_t idx, json_t *jr, int32_t npart, records_rec_t *rec, int32_t *part,
                        void **owned, size_t *nowned)
{
    static const char *const fields[] = {"key",       "key_encoding", "value", "value_encoding", "partition",
                                         "headers",   "timestamp",    NULL};
    if (!json_is_object(jr)) {
        http_reply_error(r, 400, "records[%zu] must be an object", idx);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(jr, k, v) {
        int ok = 0;
        for (int i = 0; fields[i]; i++) ok |= !strcmp(fields[i], k);
        if (!ok) {
            http_reply_error(r, 400, "records[%zu]: unknown field \"%s\"", idx, k);
            return -1;
        }
    }
    json_t *jv = json_object_get(jr, "value"), *jk = json_object_get(jr, "key"), *jp = json_object_get(jr, "partition"),
           *jt = json_object_get(jr, "timestamp");
    if (!jv) {
        http_reply_error(r, 400, "records[%zu]: \"value\" is required (null for a tombstone)", idx);
        return -1;
    }
    uint8_t *buf;
    size_t n;
    int rc = hjson_get_bytes(jv, json_string_value(json_object_get(jr, "value_encoding")), &buf, &n);
    if (rc < 0) {
        http_reply_error(r, 400, "records[%zu]: \"value\" must be a string (or null) in its value_encoding", idx);
        return -1;
    }
    if (buf) owned[(*nowned)++] = buf;
    rec->value = (records_bytes_t){buf, buf ? (int32_t)n : -1};
    rec->key = (records_bytes_t){NULL, -1};
    if (jk) {
        rc = hjson_get_bytes(jk, json_string_value(json_object_get(jr, "key_encoding")), &buf, &n);
        if (rc < 0) {
            http_reply_error(r, 400, "records[%zu]: \"key\" must be a string (or null) in its key_encoding", idx);
            return -1;
        }
        if (buf) owned[(*nowned)++] = buf;
        rec->key = (records_bytes_t){buf, buf ? (int32_t)n : -1};
    }
    if (jt && !json_is_integer(jt)) {
        http_reply_error(r, 400, "records[%zu]: \"timestamp\" must be ms since the epoch", idx);
        return -1;
    }
    rec->timestamp = jt ? json_integer_value(jt) : 0;
    if (jp) {
        if (!json_is_integer(jp) || json_integer_value(jp) < 0 || json_integer_value(jp) >= npart) {
            http_reply_error(r, 404, "records[%zu]: topic %s has no such partition (it has %d)", idx,
                             http_req_param(r, 0), npart);
            return -1;
        }
        *part = (int32_t)json_integer_value(jp);
    } else if (rec->key.p) {
        *part = records_partition_for_key(rec->key.p, (size_t)rec->key.len, npart);
    } else {
        *part = -1; /* chosen per request below */
    }
    json_t *jh = json_object_get(jr, "headers");
    if (jh && !json_is_object(jh)) {
        http_reply_error(r, 400, "records[%zu]: \"headers\" must be an object of strings", idx);
        return -1;
    }
    size_t nh = jh ? json_object_size(jh) : 0, i = 0;
    records_header_t *hs = xcalloc(nh ? nh : 1, sizeof *hs);
    owned[(*nowned)++] = hs;
    if (jh) {
        json_object_foreach(jh, k, v) {
            if (!json_is_string(v) && !json_is_null(v)) {
                http_reply_error(r, 400, "records[%zu]: header %s must be a string or null", idx, k);
                return -1;
            }
            hs[i].key = k;
            hs[i].key_len = (int32_t)strlen(k);
            hs[i].value = json_is_null(v) ? (records_bytes_t){NULL, -1}
                                          : (records_bytes_t){json_string_value(v), (int32_t)json_string_length(v)};
            i++;
        }
    }
    rec->headers = hs;
    rec->nheaders = nh;
    return 0;
}

static void post_records(http_req_t *r)
{
    static const char *const allowed[] = {"records", NULL};
    static uint32_t round_robin;
    broker_t *b = http_req_broker(r);
    const char *name = http_req_param(r, 0);
    topic_t *t = broker_topic_find(b, name, strlen(name));
    int created = 0;
    json_t *body = http_body_object(r, allowed);
    if (!body) return;
    json_t *jrecs = json_object_get(body, "records");
    size_t n = json_array_size(jrecs);
    if (!json_is_array(jrecs) || n == 0 || n > PRODUCE_MAX_RECORDS) {
        http_reply_error(r, 400, "\"records\" must be an array of 1 to %d records", PRODUCE_MAX_RECORDS);
        json_decref(body);
        return;
    }
    if (!t && broker_config(b)->auto_create_topics) {
        const char *bad = NULL;
        int rc = broker_topic_create(b, name, strlen(name), broker_config(b)->num_partitions, NULL, 0, &t, &bad);
        if (rc < 0) t = NULL;
        else created = 1;
    }
    if (!t) {
        http_reply_error(r, 404, "no topic called %s", name);
        json_decref(body);
        return;
    }
    int32_t npart = topic_partition_count(t);
    records_rec_t *recs = xcalloc(n, sizeof *recs);
    void **owned = xcalloc(3 * n, sizeof *owned);
    size_t nowned = 0;
    produced_t *pr = xcalloc(1, sizeof *pr);
    pr->n = n;
    pr->part = xcalloc(n, sizeof *pr->part);
    pr->offset = xcalloc(n, sizeof *pr->offset);
    int32_t rr = (int32_t)(round_robin++ % (uint32_t)npart);
    for (size_t i = 0; i < n; i++) {
        if (parse_record(r, i, json_array_get(jrecs, i), npart, &recs[i], &pr->part[i], owned, &nowned) < 0) {
            produced_free(pr);
            goto out;
        }
        if (pr->part[i] < 0) pr->part[i] = rr;
    }
    /* One batch per partition, records in request order within it. */
    int nslots = created, used = 0;
    uint8_t *touched = xcalloc((size_t)npart, 1);
    for (size_t i = 0; i < n; i++)
        if (!touched[pr->part[i]]) touched[pr->part[i]] = 1, nslots++;
    hwait_t *w = hwait_new(r, nslots, produced, pr, produced_free);
    records_rec_t *sub = xcalloc(n, sizeof *sub);
    for (int32_t p = 0; p < npart; p++) {
        if (!touched[p]) continue;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (pr->part[i] == p) sub[k++] = recs[i];
        int64_t base = 0, target = 0;
        partition_t *part = topic_partition(t, p);
        int rc = part ? records_append(b, part, sub, k, &base, &target) : HE_STORAGE;
        for (size_t i = 0, j = 0; i < n; i++)
            if (pr->part[i] == p) pr->offset[i] = base + (int64_t)j++;
        pwaiter_t *pw = hwait_slot(w, used);
        pw->target = target;
        if (rc < 0) hwait_fired(w, used, rc);
        else if (partition_wait(part, pw) == 1) hwait_fired(w, used, 0);
        used++;
    }
    if (created && broker_catalog_wait(b, hwait_slot(w, used)) == 1) hwait_fired(w, used, 0);
    free(sub);
    free(touched);
    hwait_arm(w);
out:
    for (size_t i = 0; i < nowned; i++) free(owned[i]);
    free(owned);
    free(recs);
    json_decref(body);
}

/* ---- consume ---- */

typedef struct {
    http_req_t *r;
    partition_t *p;
    int64_t offset;
    int limit;
    size_t max_bytes;
    pwaiter_t w;
    uv_timer_t timer;
    int answered;
} poll_t;

static json_t *header_value(const records_bytes_t *v)
{
    if (!v->p) return json_null();
    if (hjson_utf8_valid(v->p, (size_t)v->len)) return json_stringn(v->p, (size_t)v->len);
    char *s = hjson_b64_encode(v->p, (size_t)v->len);
    json_t *j = json_pack("{s:s}", "base64", s);
    free(s);
    return j;
}

static void add_record(void *ctx, const records_rec_t *rec)
{
    json_t *arr = ctx, *o = json_object();
    json_object_set_new(o, "offset", json_integer(rec->offset));
    json_object_set_new(o, "timestamp", json_integer(rec->timestamp));
    hjson_set_bytes(o, "key", "key_encoding", rec->key.p, rec->key.p ? (size_t)rec->key.len : 0);
    hjson_set_bytes(o, "value", "value_encoding", rec->value.p, rec->value.p ? (size_t)rec->value.len : 0);
    json_t *h = json_object();
    for (size_t i = 0; i < rec->nheaders; i++) {
        char key[256];
        size_t kl = (size_t)rec->headers[i].key_len < sizeof key - 1 ? (size_t)rec->headers[i].key_len : sizeof key - 1;
        memcpy(key, rec->headers[i].key, kl);
        key[kl] = '\0';
        json_object_set_new(h, key, header_value(&rec->headers[i].value));
    }
    json_object_set_new(o, "headers", h);
    json_array_append_new(arr, o);
}

/* Reads and answers. */
static void answer_records(http_req_t *r, partition_t *p, int64_t offset, int limit, size_t max_bytes)
{
    json_t *arr = json_array();
    int64_t next = offset;
    if (offset < partition_start_offset(p)) offset = next = partition_start_offset(p); /* retention moved it */
    int rc = records_read(p, offset, limit, max_bytes, add_record, arr, &next);
    if (rc < 0) {
        json_decref(arr);
        http_reply_error(r, 507, "cannot read the partition: %s", herald_strerror(rc));
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s, s:i, s:I, s:I, s:I, s:o}", "topic", topic_name(partition_topic(p)),
                                      "partition", partition_index(p), "start_offset",
                                      (json_int_t)partition_start_offset(p), "high_watermark",
                                      (json_int_t)partition_high_watermark(p), "next_offset", (json_int_t)next,
                                      "records", arr));
}

static void poll_closed(uv_handle_t *h) { free(h->data); }

static void poll_finish(poll_t *pl, int answer)
{
    pwaiter_cancel(&pl->w);
    uv_timer_stop(&pl->timer);
    if (answer) {
        http_req_on_cancel(pl->r, NULL, NULL);
        answer_records(pl->r, pl->p, pl->offset, pl->limit, pl->max_bytes);
    }
    uv_close((uv_handle_t *)&pl->timer, poll_closed);
}

static void poll_fired(pwaiter_t *w, int status)
{
    poll_t *pl = w->ctx;
    if (status < 0) {
        /* The partition went away (topic deleted): answer from what is known. */
        http_req_on_cancel(pl->r, NULL, NULL);
        http_reply_error(pl->r, 404, "the partition was deleted");
        poll_finish(pl, 0);
        return;
    }
    poll_finish(pl, 1);
}

static void poll_timeout(uv_timer_t *t) { poll_finish(t->data, 1); }

static void poll_cancel(http_req_t *r, void *ctx)
{
    (void)r;
    poll_finish(ctx, 0);
}

static void get_records(http_req_t *r)
{
    broker_t *b = http_req_broker(r);
    topic_t *t = find_topic(r, http_req_param(r, 0));
    if (!t) return;
    int64_t part, offset, limit, max_bytes, wait_ms;
    if (http_query_i64(r, "partition", 0, INT32_MAX, 0, &part) < 0 ||
        http_query_i64(r, "limit", 1, CONSUME_MAX_LIMIT, 100, &limit) < 0 ||
        http_query_i64(r, "max_bytes", 1, 64 << 20, 1 << 20, &max_bytes) < 0 ||
        http_query_i64(r, "wait_ms", 0, CONSUME_MAX_WAIT_MS, 0, &wait_ms) < 0)
        return;
    partition_t *p = topic_partition(t, (int32_t)part);
    if (!p) {
        http_reply_error(r, 404, "topic %s has no partition %lld", topic_name(t), (long long)part);
        return;
    }
    int64_t start = partition_start_offset(p), hw = partition_high_watermark(p);
    if (http_query_i64(r, "offset", INT64_MIN / 2, INT64_MAX / 2, start, &offset) < 0) return;
    const char *group = http_req_query(r, "group");
    if (group && !http_req_query(r, "offset")) {
        int64_t committed;
        int32_t epoch;
        group_str_t meta, gid = {group, (int32_t)strlen(group)}, tn = {topic_name(t), (int32_t)strlen(topic_name(t))};
        if (group_offset_get(broker_groups(b), gid, tn, (int32_t)part, &committed, &epoch, &meta)) offset = committed;
    }
    if (offset < 0) offset = hw + offset > start ? hw + offset : start;
    if (offset < hw || wait_ms == 0) {
        answer_records(r, p, offset, (int)limit, (size_t)max_bytes);
        return;
    }
    poll_t *pl = xcalloc(1, sizeof *pl);
    pl->r = r;
    pl->p = p;
    pl->offset = offset;
    pl->limit = (int)limit;
    pl->max_bytes = (size_t)max_bytes;
    pl->w.cb = poll_fired;
    pl->w.ctx = pl;
    pl->w.target = offset + 1;
    uv_timer_init(broker_loop(b), &pl->timer);
    pl->timer.data = pl;
    if (partition_wait(p, &pl->w) == 1) {
        poll_finish(pl, 1);
        return;
    }
    http_req_on_cancel(r, poll_cancel, pl);
    uv_timer_start(&pl->timer, poll_timeout, (uint64_t)wait_ms, 0);
}

const http_route_t api_topic_routes[] = {
    {"GET", "/api/topics", get_topics},
    {"POST", "/api/topics", post_topics},
    {"GET", "/api/topics/{}", get_topic},
    {"DELETE", "/api/topics/{}", delete_topic},
    {"POST", "/api/topics/{}/records", post_records},
    {"GET", "/api/topics/{}/records", get_records},
    {NULL, NULL, NULL},
};
