/*
 * Topics and partitions: the objects, topic configs, appends with
 * idempotent-producer checks, and high-watermark waiters.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/internal.h"
#include "broker/stream.h"
#include "store/batch.h"

/* ---- topic configs ---- */

const char *const topic_config_keys[] = {
    "cleanup.policy",      "compression.type",        "max.message.bytes", "message.timestamp.type",
    "min.insync.replicas", "retention.bytes",         "retention.ms",      "segment.bytes",
    "segment.ms",          "unclean.leader.election.enable", NULL,
};

static int parse_i64_strict(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end) return HE_INVALID;
    *v = x;
    return 0;
}

int broker_topic_config_valid(const char *key, const char *value)
{
    int64_t v;
    if (!strcmp(key, "cleanup.policy")) return strcmp(value, "delete") == 0 ? 0 : HE_UNSUPPORTED;
    if (!strcmp(key, "compression.type"))
        return !strcmp(value, "producer") || !strcmp(value, "uncompressed") ? 0 : HE_UNSUPPORTED;
    if (!strcmp(key, "message.timestamp.type"))
        return !strcmp(value, "CreateTime") ? 0 : HE_UNSUPPORTED;
    if (!strcmp(key, "unclean.leader.election.enable"))
        return !strcmp(value, "true") || !strcmp(value, "false") ? 0 : HE_INVALID;
    if (parse_i64_strict(value, &v)) return HE_INVALID;
    if (!strcmp(key, "retention.ms") || !strcmp(key, "retention.bytes") || !strcmp(key, "segment.ms"))
        return v >= -1 ? 0 : HE_INVALID;
    if (!strcmp(key, "segment.bytes")) return v >= 1024 ? 0 : HE_INVALID;
    if (!strcmp(key, "max.message.bytes")) return v >= 0 ? 0 : HE_INVALID;
    if (!strcmp(key, "min.insync.replicas")) return v == 1 ? 0 : HE_INVALID;
    return HE_NOT_FOUND;
}

void topic_set_config_raw(topic_t *t, const char *key, const char *value)
{
    topic_cfg_entry_t **pp = &t->configs;
    for (; *pp; pp = &(*pp)->next) {
        if (!strcmp((*pp)->key, key)) {
            free((*pp)->value);
            (*pp)->value = xstrdup(value);
            return;
        }
    }
    topic_cfg_entry_t *e = xcalloc(1, sizeof *e);
    e->key = xstrdup(key);
    e->value = xstrdup(value);
    *pp = e;
}

static const char *topic_override(const topic_t *t, const char *key)
{
    for (const topic_cfg_entry_t *e = t ? t->configs : NULL; e; e = e->next)
        if (!strcmp(e->key, key)) return e->value;
    return NULL;
}

const char *topic_config_get(const topic_t *t, const broker_t *b, const char *key, char *buf, size_t buflen,
                             int *is_default)
{
    const char *v = topic_override(t, key);
    *is_default = v == NULL;
    if (v) return v;
    const config_t *c = &b->cfg;
    if (!strcmp(key, "cleanup.policy")) return "delete";
    if (!strcmp(key, "compression.type")) return "producer";
    if (!strcmp(key, "message.timestamp.type")) return "CreateTime";
    if (!strcmp(key, "min.insync.replicas")) return "1";
    if (!strcmp(key, "unclean.leader.election.enable")) return "false";
    if (!strcmp(key, "max.message.bytes")) snprintf(buf, buflen, "%lld", (long long)c->max_request_bytes);
    else if (!strcmp(key, "retention.ms")) snprintf(buf, buflen, "%lld", (long long)c->retention_ms);
    else if (!strcmp(key, "retention.bytes")) snprintf(buf, buflen, "%lld", (long long)c->retention_bytes);
    else if (!strcmp(key, "segment.bytes")) snprintf(buf, buflen, "%lld", (long long)c->segment_bytes);
    else if (!strcmp(key, "segment.ms")) snprintf(buf, buflen, "%lld", (long long)c->segment_ms);
    else return NULL;
    return buf;
}

static int64_t cfg_i64(const topic_t *t, const char *key, int64_t def)
{
    const char *v = topic_override(t, key);
    int64_t x;
    if (v && parse_i64_strict(v, &x) == 0) return x;
    return def;
}

void topic_plog_config(const broker_t *b, const topic_t *t, plog_config_t *pc)
{
    plog_config_default(pc);
    pc->segment_bytes = cfg_i64(t, "segment.bytes", b->cfg.segment_bytes);
    pc->segment_ms = cfg_i64(t, "segment.ms", b->cfg.segment_ms);
    pc->retention_ms = cfg_i64(t, "retention.ms", b->cfg.retention_ms);
    pc->retention_bytes = cfg_i64(t, "retention.bytes", b->cfg.retention_bytes);
}

/* ---- topic objects ---- */

topic_t *topic_alloc(const char *name, size_t len, const uint8_t id[16], int32_t npart)
{
    topic_t *t = xcalloc(1, sizeof *t);
    t->name = xstrndup(name, len);
    memcpy(t->id, id, 16);
    t->npart = npart;
    t->parts = xcalloc((size_t)(npart > 0 ? npart : 1), sizeof *t->parts);
    return t;
}

void topic_configs_clear(topic_t *t)
{
    while (t->configs) {
        topic_cfg_entry_t *e = t->configs;
        t->configs = e->next;
        free(e->key);
        free(e->value);
        free(e);
    }
}

void topic_free(broker_t *b, topic_t *t)
{
    HASH_DEL(b->topics, t);
    if (t->prev) t->prev->next = t->next;
    else b->first = t->next;
    if (t->next) t->next->prev = t->prev;
    else b->last = t->prev;
    b->ntopics--;
    for (int32_t i = 0; i < t->npart; i++)
        if (t->parts[i]) partition_close(b, t->parts[i]);
    topic_configs_clear(t);
    free(t->parts);
    free(t->name);
    free(t);
}

int topic_open_partitions(broker_t *b, topic_t *t, int32_t from)
{
    for (int32_t i = from; i < t->npart; i++) {
        if (t->parts[i]) continue;
        int err = 0;
        char *dir = xasprintf("%s/topics/%s-%d", b->cfg.data_dir, t->name, i);
        t->parts[i] = partition_open(b, t, i, dir, &err);
        if (!t->parts[i]) return err ? err : HE_STORAGE;
    }
    return 0;
}

const char *topic_name(const topic_t *t) { return t->name; }
const uint8_t *topic_id(const topic_t *t) { return t->id; }
int32_t topic_partition_count(const topic_t *t) { return t->npart; }
topic_t *topic_next(topic_t *t) { return t->next; }

partition_t *topic_partition(topic_t *t, int32_t index)
{
    if (index < 0 || index >= t->npart) return NULL;
    return t->parts[index];
}

/* ---- partitions ---- */

static void producer_record(partition_t *p, producer_state_t *ps, const batch_header_t *h, int64_t base);

/* Rebuilds idempotent-producer state from the tail of the log, so a producer
 * retrying across a broker restart is still de-duplicated. Only the last
 * REBUILD_OFFSETS offsets are read (a producer needs its last 5 batches), and
 * at most REBUILD_BYTES: a producer whose batches lie further back gets
 * UNKNOWN_PRODUCER_ID and re-initialises, as with Kafka after its state
 * expired. */
#define REBUILD_OFFSETS 5000
#define REBUILD_BYTES (4 << 20)

static void producer_state_rebuild(partition_t *p)
{
    int64_t end = plog_end_offset(p->log), off = plog_start_offset(p->log);
    if (end - off > REBUILD_OFFSETS) off = end - REBUILD_OFFSETS;
    wbuf_t buf;
    wbuf_init(&buf);
    size_t total = 0;
    while (off < end && total < REBUILD_BYTES) {
        wbuf_reset(&buf);
        int64_t n = plog_read(p->log, off, end, 1 << 20, &buf);
        if (n <= 0) break;
        total += (size_t)n;
        size_t pos = 0;
        int64_t next = off;
        while (pos < buf.len) {
            batch_header_t h;
            if (batch_header_parse(buf.p + pos, buf.len - pos, &h) < 0) break;
            if (h.producer_id >= 0 && h.base_sequence >= 0) {
                producer_state_t *ps;
                HASH_FIND(hh, p->producers, &h.producer_id, sizeof h.producer_id, ps);
                if (!ps || h.producer_epoch >= ps->epoch) producer_record(p, ps, &h, h.base_offset);
            }
            next = h.base_offset + h.last_offset_delta + 1;
            pos += 12 + (size_t)h.batch_length;
        }
        if (next <= off) break;
        off = next;
    }
    wbuf_destroy(&buf);
}

static partition_t *open_partition(broker_t *b, topic_t *t, int32_t index, char *dir, int spill, int64_t base,
                                   int *err)
{
    plog_config_t pc;
    topic_plog_config(b, t, &pc);
    plog_t *log = NULL;
    int rc = spill ? plog_open_scratch(dir, &pc, base, &log) : plog_open(dir, &pc, &log);
    if (rc < 0) {
        LOG_E("cannot open log %s: %s", dir, herald_strerror(rc));
        free(dir);
        *err = rc;
        return NULL;
    }
    partition_t *p = xcalloc(1, sizeof *p);
    p->topic = t;
    p->index = index;
    p->log = log;
    p->dir = dir;
    p->spill = spill;
    HASH_ADD(hh_log, b->by_log, log, sizeof(plog_t *), p);
    if (t) producer_state_rebuild(p);
    return p;
}

partition_t *partition_open(broker_t *b, topic_t *t, int32_t index, char *dir, int *err)
{
    return open_partition(b, t, index, dir, 0, 0, err);
}

partition_t *partition_open_spill(broker_t *b, char *dir, int64_t base, int *err)
{
    return open_partition(b, NULL, 0, dir, 1, base, err);
}

void partition_close(broker_t *b, partition_t *p)
{
    partition_hw_advanced(p, HE_CLOSED); /* fails every waiter */
    flusher_forget(b->flusher, p->log);
    HASH_DELETE(hh_log, b->by_log, p);
    plog_close(p->log);
    producer_state_t *ps, *tmp;
    HASH_ITER(hh, p->producers, ps, tmp)
    {
        HASH_DEL(p->producers, ps);
        free(ps);
    }
    free(p->dir);
    free(p);
}

int32_t partition_index(const partition_t *p) { return p->index; }
topic_t *partition_topic(const partition_t *p) { return p->topic; }
int64_t partition_start_offset(const partition_t *p) { return plog_start_offset(p->log); }
int64_t partition_end_offset(const partition_t *p) { return plog_end_offset(p->log); }
int64_t partition_high_watermark(const partition_t *p) { return plog_durable_offset(p->log); }
int64_t partition_size_bytes(const partition_t *p) { return plog_size_bytes(p->log); }

int64_t partition_read_quiet(partition_t *p, int64_t offset, size_t max_bytes, wbuf_t *out)
{
    return plog_read(p->log, offset, plog_durable_offset(p->log), max_bytes, out);
}

int64_t partition_read(partition_t *p, int64_t offset, size_t max_bytes, wbuf_t *out)
{
    size_t from = out->len;
    int64_t n = partition_read_quiet(p, offset, max_bytes, out);
    if (n <= 0) return n;
    p->io.bytes_out += (uint64_t)n;
    /* Records: each batch's count, skipping those below offset. */
    const uint8_t *at = out->p + from, *end = out->p + from + (size_t)n;
    while (end - at >= BATCH_HEADER_SIZE) {
        batch_header_t h;
        if (batch_header_parse(at, (size_t)(end - at), &h) < 0) break;
        int64_t first = h.base_offset, last = h.base_offset + h.last_offset_delta;
        if (last >= offset) p->io.msgs_out += (uint64_t)(last - (first > offset ? first : offset) + 1);
        if ((size_t)(end - at) < (size_t)h.batch_length + 12) break;
        at += (size_t)h.batch_length + 12;
    }
    return n;
}

const partition_counters_t *partition_counters(const partition_t *p) { return &p->io; }

int partition_segment_count(const partition_t *p) { return plog_segment_count(p->log); }

int partition_offset_for_time(partition_t *p, int64_t ts, int64_t *offset, int64_t *batch_ts)
{
    int rc = plog_offset_for_time(p->log, ts, offset, batch_ts);
    if (rc == 0 && *offset >= plog_durable_offset(p->log)) return HE_NOT_FOUND;
    return rc;
}

int partition_max_timestamp(partition_t *p, int64_t *offset, int64_t *ts)
{
    if (plog_durable_offset(p->log) <= plog_start_offset(p->log)) return HE_NOT_FOUND;
    return partition_offset_for_time(p, plog_max_timestamp(p->log), offset, ts);
}

int partition_delete_before(broker_t *b, partition_t *p, int64_t offset)
{
    (void)b;
    if (offset < 0 || offset > plog_durable_offset(p->log)) return HE_OUT_OF_RANGE;
    return plog_delete_before(p->log, offset);
}

int partition_scan(partition_t *p, partition_scan_fn fn, void *ctx)
{
    wbuf_t buf;
    wbuf_init(&buf);
    int rc = 0;
    int64_t off = plog_start_offset(p->log), end = plog_end_offset(p->log);
    while (off < end && !rc) {
        wbuf_reset(&buf);
        int64_t n = plog_read(p->log, off, end, 1 << 20, &buf);
        if (n <= 0) {
            rc = n < 0 ? (int)n : HE_CORRUPT;
            break;
        }
        size_t pos = 0;
        while (pos < buf.len && !rc) {
            batch_header_t h;
            if (batch_header_parse(buf.p + pos, buf.len - pos, &h) < 0) {
                rc = HE_CORRUPT;
                break;
            }
            size_t blen = batch_size(&h);
            batch_iter_t it;
            batch_rec_t rec;
            int r = batch_iter_init(&it, buf.p + pos, blen);
            if (r == 0)
                while ((r = batch_iter_next(&it, &rec)) > 0)
                    if (rec.offset >= off) fn(ctx, &rec); /* the start may lie inside a batch */
            if (r < 0) rc = r;
            off = batch_last_offset(&h) + 1;
            pos += blen;
        }
    }
    wbuf_destroy(&buf);
    return rc;
}

int partition_drop_segments_before(partition_t *p, int64_t offset)
{
    return plog_drop_segments_before(p->log, offset);
}

/* ---- waiters ---- */

int partition_wait(partition_t *p, pwaiter_t *w)
{
    if (p->failed) {
        w->part = NULL;
        return 1;
    }
    if (plog_durable_offset(p->log) >= w->target) return 1;
    w->part = p;
    w->prev = NULL;
    w->next = p->waiters;
    if (p->waiters) p->waiters->prev = w;
    p->waiters = w;
    return 0;
}

void pwaiter_cancel(pwaiter_t *w)
{
    partition_t *p = w->part;
    if (!p) return;
    if (w->prev) w->prev->next = w->next;
    else p->waiters = w->next;
    if (w->next) w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->part = NULL;
}

void partition_fire_waiters(partition_t *p, int64_t lo, int64_t hi, int status)
{
    /* Two passes: callbacks may link new waiters to this partition. */
    pwaiter_t *ready = NULL;
    for (pwaiter_t *w = p->waiters, *next; w; w = next) {
        next = w->next;
        if (w->target > lo && w->target <= hi) {
            pwaiter_cancel(w);
            w->next = ready;
            ready = w;
        }
    }
    /* The list is newest-first and each one was pushed onto ready, so
     * ready is oldest-first: the order the waits began (dead-letter and
     * redrive copies keep their queue's order). */
    while (ready) {
        pwaiter_t *n = ready->next;
        ready->next = NULL;
        ready->cb(ready, status);
        ready = n;
    }
}

void partition_hw_advanced(partition_t *p, int status)
{
    partition_fire_waiters(p, INT64_MIN, status < 0 ? INT64_MAX : plog_durable_offset(p->log), status);
}

/* ---- appends ---- */

static int seq_next(int32_t s) { return s == INT32_MAX ? 0 : s + 1; }

/* Checks an idempotent batch against the producer's state. Returns 0 (new,
 * in order), 1 (duplicate: *dup_base set) or a BROKER_E_* code. */
static int producer_check(partition_t *p, const batch_header_t *h, producer_state_t **out, int64_t *dup_base)
{
    producer_state_t *ps;
    HASH_FIND(hh, p->producers, &h->producer_id, sizeof h->producer_id, ps);
    *out = ps;
    int32_t last_seq = (int32_t)((h->base_sequence + (int64_t)h->last_offset_delta) % ((int64_t)INT32_MAX + 1));
    if (!ps) {
        /* A producer we have no state for (new, or state lost with the
         * segment it lived in) must start at sequence 0. */
        return h->base_sequence == 0 ? 0 : BROKER_E_UNKNOWN_PRODUCER_ID;
    }
    if (h->producer_epoch < ps->epoch) return BROKER_E_INVALID_PRODUCER_EPOCH;
    if (h->producer_epoch > ps->epoch) return h->base_sequence == 0 ? 0 : BROKER_E_OUT_OF_ORDER_SEQ;
    for (int i = 0; i < ps->n; i++) {
        const producer_batch_t *pb = &ps->ring[i];
        if (pb->first_seq == h->base_sequence && pb->last_seq == last_seq) {
            *dup_base = pb->base_offset;
            return 1;
        }
    }
    if (ps->n == 0) return 0;
    if (h->base_sequence != seq_next(ps->ring[ps->head].last_seq)) return BROKER_E_OUT_OF_ORDER_SEQ;
    return 0;
}

static void producer_record(partition_t *p, producer_state_t *ps, const batch_header_t *h, int64_t base)
{
    if (!ps) {
        ps = xcalloc(1, sizeof *ps);
        ps->producer_id = h->producer_id;
        ps->head = -1;
        HASH_ADD(hh, p->producers, producer_id, sizeof ps->producer_id, ps);
    }
    if (h->producer_epoch != ps->epoch) {
        ps->epoch = h->producer_epoch;
        ps->n = 0;
        ps->head = -1;
    }
    ps->head = (ps->head + 1) % PRODUCER_BATCHES_KEPT;
    if (ps->n < PRODUCER_BATCHES_KEPT) ps->n++;
    ps->ring[ps->head].first_seq = h->base_sequence;
    ps->ring[ps->head].last_seq =
        (int32_t)((h->base_sequence + (int64_t)h->last_offset_delta) % ((int64_t)INT32_MAX + 1));
    ps->ring[ps->head].base_offset = base;
}

static int append_batch(broker_t *b, partition_t *p, uint8_t *batch, size_t len, append_result_t *res, int verify)
{
    batch_header_t h;
    int rc = batch_header_parse(batch, len, &h);
    if (rc < 0) return rc;
    if ((size_t)h.batch_length + 12 != len) return HE_MALFORMED;
    if (verify && batch_verify_crc(batch, len) < 0) return HE_CORRUPT;
    if (h.record_count != h.last_offset_delta + 1 && !(h.attributes & 0x20)) return BROKER_E_INVALID_RECORD;
    if (p->failed) return HE_STORAGE;
    if (p->stream_pending) stream_before_append(p); /* keeps the offsets its publishers were given */
    producer_state_t *ps = NULL;
    int idempotent = h.producer_id >= 0 && h.base_sequence >= 0;
    res->duplicate = 0;
    if (idempotent) {
        int64_t dup = 0;
        rc = producer_check(p, &h, &ps, &dup);
        if (rc == 1) {
            res->base_offset = dup;
            res->duplicate = 1;
            return 0;
        }
        if (rc < 0) return rc;
    }
    int64_t base;
    rc = plog_append(p->log, batch, len, &base);
    if (rc < 0) return rc;
    res->base_offset = base;
    p->io.msgs_in += (uint64_t)h.record_count;
    p->io.bytes_in += len;
    if (idempotent) producer_record(p, ps, &h, base);
    if (p->spill) return 0; /* nobody waits for it to be durable */
    flusher_mark_dirty(b->flusher, p->log);
    if (b->cfg.flush_mode != CONFIG_FLUSH_ALWAYS) partition_hw_advanced(p, 0);
    return 0;
}

int partition_append(broker_t *b, partition_t *p, uint8_t *batch, size_t len, append_result_t *res)
{
    return append_batch(b, p, batch, len, res, 1);
}

int partition_append_built(broker_t *b, partition_t *p, uint8_t *batch, size_t len, append_result_t *res)
{
    return append_batch(b, p, batch, len, res, 0);
}

int internal_append(broker_t *b, partition_t *p, const void *key, int32_t klen, const void *val, int32_t vlen,
                    int64_t *target)
{
    wbuf_t w;
    wbuf_init(&w);
    batch_record_t rec = {0};
    rec.key = key;
    rec.key_len = klen;
    rec.value = val;
    rec.value_len = vlen;
    batch_build(&w, clock_wall_ms(), &rec, 1);
    append_result_t res;
    int rc = partition_append_built(b, p, w.p, w.len, &res);
    wbuf_destroy(&w);
    if (rc == 0) *target = res.base_offset + 1;
    return rc;
}
