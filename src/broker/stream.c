/*
 * Stream queues over topic partitions: the binding, publishing, confirms,
 * and readers (stream.h). The mapping of records is in stream_map.c.
 *
 * Streams are found by their queue pointer in one table: the loop owns
 * all of it, and a queue pointer names one queue for its lifetime.
 */
#include "broker/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "amqp/ftable.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/internal.h"
#include "broker/stream_map.h"
#include "broker/vhost.h"
#include "store/batch_unzip.h"

#define STREAM_READ_BYTES (256u << 10) /* batches a reader fetches from the log at once */

typedef struct stream stream_t;

typedef struct sreader {
    struct sreader *next;   /* in the stream's list */
    stream_t *s;
    qconsumer_t *qc;
    lcursor_t cur;          /* its position: the next record to deliver */
    pwaiter_t w;            /* linked while caught up with the high watermark */
    int pumping, dead;
} sreader_t;

struct stream {
    queue_t *q;             /* hash key (the pointer) */
    broker_t *b;
    topic_t *t;             /* NULL once Kafka deleted it */
    sreader_t *readers;
    uint64_t seq;           /* entry sequence numbers */
    /* AMQP publishes of this loop turn, appended as one batch by the
     * prepare handle, or before anything else appends to the partition
     * (stream_before_append), so that the offsets they were promised hold. */
    qmsg_t **pend;          /* one reference each */
    size_t npend, cappend;
    uint32_t epoch;         /* bumped by each failed append of pending messages */
    int64_t fail_at[16];    /* fail_at[e % 16]: first offset lost when epoch e failed */
    stream_t *dirty_next;   /* in g_dirty while npend > 0 */
    UT_hash_handle hh;
};

static stream_t *g_streams;
static stream_t *g_dirty;      /* streams with pending publishes */
static uv_prepare_t g_prep;    /* flushes them once per loop turn */
static int g_prep_on;

static stream_t *find(const queue_t *q)
{
    stream_t *s;
    HASH_FIND_PTR(g_streams, &q, s);
    return s;
}

static partition_t *spart(const stream_t *s) { return s && s->t ? topic_partition(s->t, 0) : NULL; }

static void flush(stream_t *s);

/* ---- intervals and arguments ---- */

int stream_parse_interval(amqp_bytes_t s, int64_t *ms)
{
    if (s.len < 2) return HE_INVALID;
    int64_t unit;
    switch (s.p[s.len - 1]) {
    case 'Y': unit = 365LL * 86400000; break;
    case 'M': unit = 30LL * 86400000; break;
    case 'D': unit = 86400000; break;
    case 'h': unit = 3600000; break;
    case 'm': unit = 60000; break;
    case 's': unit = 1000; break;
    default: return HE_INVALID;
    }
    int64_t v = 0;
    int sat = 0;
    for (uint32_t i = 0; i + 1 < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return HE_INVALID;
        if (v > (INT64_MAX - 9) / 10) sat = 1;
        else v = v * 10 + (s.p[i] - '0');
    }
    if (!sat && v == 0) return HE_INVALID;
    *ms = sat || v > INT64_MAX / unit ? INT64_MAX : v * unit;
    return 0;
}

int stream_arg_configs(amqp_bytes_t args, topic_kv_t *kv, char vals[3][24], const char **bad)
{
    int n = 0;
    fvalue_t v;
    if (ftable_get(args, "x-max-age", &v)) {
        int64_t ms;
        if (v.type != FV_LONGSTR || stream_parse_interval(v.v.str, &ms) < 0) goto bad_age;
        snprintf(vals[n], 24, "%lld", (long long)ms);
        kv[n] = (topic_kv_t){"retention.ms", vals[n]};
        n++;
    }
    static const struct {
        const char *arg, *key;
    } ints[] = {{"x-max-length-bytes", "retention.bytes"}, {"x-stream-max-segment-size-bytes", "segment.bytes"}};
    for (size_t i = 0; i < 2; i++) {
        int64_t x;
        int r = ftable_get_int(args, ints[i].arg, &x);
        if (r == 0) continue;
        if (r > 0 && i == 1 && x > 0 && x < 1024) x = 1024; /* Herald's smallest segment */
        snprintf(vals[n], 24, "%lld", (long long)x);
        if (r < 0 || x < 0 || broker_topic_config_valid(ints[i].key, vals[n]) < 0) {
            *bad = ints[i].arg;
            return HE_INVALID;
        }
        kv[n] = (topic_kv_t){ints[i].key, vals[n]};
        n++;
    }
    return n;
bad_age:
    *bad = "x-max-age";
    return HE_INVALID;
}

/* ---- binding ---- */

int stream_open(broker_t *b, queue_t *q, int declare)
{
    amqp_bytes_t name = queue_name(q);
    if (broker_topic_name_valid((const char *)name.p, name.len) < 0) return HE_INVALID;
    topic_kv_t kv[3];
    char vals[3][24];
    const char *bad = NULL;
    int nkv = declare ? stream_arg_configs(queue_args(q), kv, vals, &bad) : 0;
    if (nkv < 0) return nkv;
    topic_t *t = broker_topic_find(b, (const char *)name.p, name.len);
    int rc = 0;
    if (t && topic_partition_count(t) != 1 && declare) return HE_INVALID;
    if (!t) {
        rc = broker_topic_create(b, (const char *)name.p, name.len, 1, kv, (size_t)nkv, &t, NULL);
        if (rc == 0 && !declare) LOG_W("stream %s: its topic was missing; created it empty", queue_name_cstr(q));
    } else if (nkv) {
        rc = broker_topic_set_configs(b, t, kv, (size_t)nkv, 0, NULL);
    }
    if (rc < 0) return rc;
    if (topic_partition_count(t) != 1)
        LOG_W("stream %s: topic has %d partitions; AMQP uses partition 0", queue_name_cstr(q),
              topic_partition_count(t));
    stream_t *s = find(q);
    if (!s) {
        s = xcalloc(1, sizeof *s);
        s->q = q;
        HASH_ADD_PTR(g_streams, q, s);
    }
    s->b = b;
    s->t = t;
    return 0;
}

queue_t *stream_queue_of_topic(broker_t *b, const topic_t *t)
{
    for (stream_t *s = g_streams; s; s = s->hh.next)
        if (s->b == b && s->t == t) return s->q;
    return NULL;
}

static void reader_free(sreader_t *r)
{
    pwaiter_cancel(&r->w);
    lcursor_destroy(&r->cur);
    free(r);
}

static void reader_unlink(sreader_t *r)
{
    for (sreader_t **pp = &r->s->readers; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    pwaiter_cancel(&r->w);
    if (r->pumping) r->dead = 1; /* freed when its pump returns */
    else reader_free(r);
}

static void prep_stop(void)
{
    if (!g_prep_on || g_streams) return;
    uv_close((uv_handle_t *)&g_prep, NULL);
    g_prep_on = 0;
}

/* Drops s from the dirty list (its pending messages are flushed or dropped). */
static void undirty(stream_t *s)
{
    for (stream_t **pp = &g_dirty; *pp; pp = &(*pp)->dirty_next)
        if (*pp == s) {
            *pp = s->dirty_next;
            break;
        }
    s->dirty_next = NULL;
}

void stream_queue_gone(queue_t *q, int remove)
{
    stream_t *s = find(q);
    if (!s) return;
    if (!remove) flush(s); /* a clean stop stores what was published */
    partition_t *p = spart(s);
    if (p) p->stream_pending = 0;
    for (size_t i = 0; i < s->npend; i++) qmsg_unref(s->pend[i]);
    s->npend = 0;
    undirty(s);
    free(s->pend);
    while (s->readers) reader_unlink(s->readers);
    HASH_DEL(g_streams, s);
    if (remove && s->t) {
        int rc = broker_topic_delete(s->b, s->t);
        if (rc < 0) LOG_W("stream %s: cannot delete its topic: %s", queue_name_cstr(q), herald_strerror(rc));
    }
    free(s);
    prep_stop();
}

void stream_topic_deleting(broker_t *b, topic_t *t)
{
    queue_t *q = stream_queue_of_topic(b, t);
    if (!q) return;
    stream_t *s = find(q);
    s->t = NULL; /* the topic is going already: the queue must not delete it again */
    LOG_I("stream %s: its topic is being deleted; deleting the queue", queue_name_cstr(q));
    vhost_queue_delete(b->vhost, q);
}

/* ---- publishing and confirms ---- */

static void flush(stream_t *s)
{
    if (!s->npend) return;
    partition_t *p = spart(s);
    size_t n = s->npend;
    s->npend = 0;
    undirty(s);
    if (p) {
        p->stream_pending = 0; /* before appending: the append hook must not come back here */
        wbuf_t w;
        wbuf_init(&w);
        stream_map_batch(&w, s->pend, n);
        int64_t expect = partition_end_offset(p);
        append_result_t res;
        int rc = partition_append_built(s->b, p, w.p, w.len, &res);
        wbuf_destroy(&w);
        if (rc < 0) {
            LOG_E("stream %s: cannot store %zu message(s): %s", queue_name_cstr(s->q), n, herald_strerror(rc));
            s->fail_at[s->epoch % 16] = expect;
            s->epoch++;
            /* The confirms of messages whose append failed (no one else can
             * wait for offsets that were never assigned; a Kafka fetch
             * waiting there just answers early). */
            partition_fire_waiters(p, expect, expect + (int64_t)n, rc);
        }
    }
    for (size_t i = 0; i < n; i++) qmsg_unref(s->pend[i]);
}

static void on_prepare(uv_prepare_t *h)
{
    (void)h;
    while (g_dirty) flush(g_dirty);
}

void stream_before_append(partition_t *p)
{
    for (stream_t *s = g_dirty; s; s = s->dirty_next)
        if (spart(s) == p) {
            flush(s);
            return;
        }
    p->stream_pending = 0;
}

int stream_publish(queue_t *q, qmsg_t *m, uint32_t *epoch, int64_t *target)
{
    stream_t *s = find(q);
    partition_t *p = spart(s);
    if (!p || p->failed) return HE_STORAGE;
    if (s->npend == s->cappend) {
        s->cappend = s->cappend ? s->cappend * 2 : 64;
        s->pend = xrealloc(s->pend, s->cappend * sizeof *s->pend);
    }
    s->pend[s->npend++] = qmsg_ref(m);
    if (s->npend == 1) {
        s->dirty_next = g_dirty;
        g_dirty = s;
    }
    p->stream_pending = 1;
    if (!g_prep_on) {
        uv_prepare_init(broker_loop(s->b), &g_prep);
        uv_prepare_start(&g_prep, on_prepare);
        uv_unref((uv_handle_t *)&g_prep);
        g_prep_on = 1;
    }
    *epoch = s->epoch;
    *target = partition_end_offset(p) + (int64_t)s->npend; /* the offset after its record */
    return 1;
}

int stream_publish_state(queue_t *q, uint32_t epoch, int64_t target)
{
    stream_t *s = find(q);
    partition_t *p = spart(s);
    if (!p) return 1; /* deleted since: nothing left to wait for */
    if (epoch != s->epoch && (s->epoch - epoch > 16 || target > s->fail_at[epoch % 16])) return HE_STORAGE;
    if (partition_high_watermark(p) >= target) return 1;
    return p->failed ? HE_STORAGE : 0;
}

int stream_wait(queue_t *q, pwaiter_t *w, int64_t target)
{
    partition_t *p = spart(find(q));
    if (!p) return 1;
    w->target = target;
    return partition_wait(p, w);
}

int64_t stream_next_offset(const queue_t *q)
{
    stream_t *s = find(q);
    partition_t *p = spart(s);
    return p ? partition_end_offset(p) + (int64_t)s->npend : 0;
}

/* The intent among in[0, nin) that the claim (qid, off) in the record at
 * rec_off answers, or NULL. */
static const qintent_t *expected(const qintent_t *in, size_t nin, uint64_t qid, int64_t off, int64_t rec_off)
{
    for (size_t i = 0; i < nin; i++)
        if (in[i].qid == qid && in[i].offset == off && rec_off >= in[i].from) return &in[i];
    return NULL;
}

size_t stream_scan_claims(queue_t *q, const qintent_t *in, size_t nin, qclaim_t **v, size_t *n, size_t *cap)
{
    partition_t *p = spart(find(q));
    if (!p || !nin) return 0;
    int64_t from = in[0].from;
    for (size_t i = 1; i < nin; i++)
        if (in[i].from < from) from = in[i].from;
    size_t found = 0, name_len = strlen(STREAM_HDR_CLAIM);
    lcursor_t c;
    lcursor_init(&c, from);
    batch_rec_t rec;
    while (lcursor_next(&c, p, &rec, "stream claims") > 0) {
        batch_rec_t r = rec;
        batch_header_kv_t kv;
        while (batch_rec_next_header(&r, &kv) > 0) {
            if ((size_t)kv.key_len != name_len || memcmp(kv.key, STREAM_HDR_CLAIM, name_len) || kv.value_len != 16)
                continue;
            uint64_t qid = buf_get_be64(kv.value);
            int64_t off = (int64_t)buf_get_be64(kv.value + 8);
            if (!expected(in, nin, qid, off, rec.offset)) continue;
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 64;
                *v = xrealloc(*v, *cap * sizeof **v);
            }
            (*v)[(*n)++] = (qclaim_t){qid, off};
            found++;
        }
    }
    lcursor_destroy(&c);
    return found;
}

uint32_t stream_message_count(const queue_t *q)
{
    partition_t *p = spart(find(q));
    if (!p) return 0;
    int64_t n = partition_high_watermark(p) - partition_start_offset(p);
    return n < 0 ? 0 : n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* ---- delivered copies ---- */

int stream_entry_is(const qentry_t *e) { return (queue_flags(e->q) & QF_STREAM) != 0; }

void stream_entry_free(qentry_t *e)
{
    queue_t *q = e->q;
    qmsg_unref(e->m);
    free(e);
    queue_unpin(q);
}

size_t stream_drop_entries(qentry_t **es, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (stream_entry_is(es[i])) stream_entry_free(es[i]);
        else es[k++] = es[i];
    }
    return k;
}

/* ---- readers ---- */

static void pump(sreader_t *r);

static void on_data(pwaiter_t *w, int status)
{
    (void)status; /* < 0: a failed stream append (partition_fire_waiters): look again */
    pump(w->ctx);
}

/* ---- cursors over a partition (stream_map.h) ---- */

void lcursor_init(lcursor_t *c, int64_t offset)
{
    memset(c, 0, sizeof *c);
    c->next_off = offset;
    wbuf_init(&c->buf);
    wbuf_init(&c->unz);
}

void lcursor_destroy(lcursor_t *c)
{
    wbuf_destroy(&c->buf);
    wbuf_destroy(&c->unz);
}

void lcursor_seek(lcursor_t *c, int64_t offset)
{
    c->next_off = offset;
    c->pos = c->buf.len = 0;
    c->cur_len = 0;
}

int lcursor_next(lcursor_t *c, partition_t *p, batch_rec_t *rec, const char *what)
{
    for (int refills = 0;;) {
        if (c->cur_len) {
            int rc = batch_iter_next(&c->it, rec);
            if (rc > 0) {
                if (rec->offset < c->next_off) continue; /* the start lies inside the batch */
                c->next_off = rec->offset + 1;
                return 1;
            }
            if (batch_last_offset(&c->it.h) + 1 > c->next_off) c->next_off = batch_last_offset(&c->it.h) + 1;
            c->pos += c->cur_len;
            c->cur_len = 0;
            continue;
        }
        if (c->pos < c->buf.len) {
            batch_header_t h;
            if (batch_header_parse(c->buf.p + c->pos, c->buf.len - c->pos, &h) < 0) {
                c->pos = c->buf.len; /* cannot happen for what plog_read returns: refill */
                continue;
            }
            size_t len = batch_size(&h);
            int skip = batch_last_offset(&h) < c->next_off || (h.attributes & BATCH_ATTR_CONTROL);
            const uint8_t *bp = c->buf.p + c->pos;
            size_t blen = len;
            if (!skip && (h.attributes & BATCH_ATTR_COMPRESSION_MASK)) {
                wbuf_reset(&c->unz);
                int urc = batch_unzip(bp, len, &c->unz);
                if (urc < 0) {
                    if (!c->warned_bad)
                        LOG_W("%s: batch at offset %lld cannot be decompressed (%s): skipped for AMQP consumers",
                              what, (long long)h.base_offset, herald_strerror(urc));
                    c->warned_bad = 1;
                    skip = 1;
                }
                bp = c->unz.p;
                blen = c->unz.len;
            }
            if (skip || batch_iter_init(&c->it, bp, blen) < 0) {
                if (batch_last_offset(&h) + 1 > c->next_off) c->next_off = batch_last_offset(&h) + 1;
                c->pos += len;
                continue;
            }
            c->cur_len = len;
            continue;
        }
        if (!p || refills++ > 64) return 0;
        wbuf_reset(&c->buf);
        c->pos = 0;
        if (c->next_off < partition_start_offset(p)) c->next_off = partition_start_offset(p); /* retention */
        if (c->next_off >= partition_high_watermark(p)) return 0;
        int64_t got = partition_read(p, c->next_off, STREAM_READ_BYTES, &c->buf);
        if (got == HE_OUT_OF_RANGE) continue; /* the start moved meanwhile */
        if (got <= 0) return (int)got;
    }
}

static qentry_t *entry_for(stream_t *s, const batch_rec_t *rec)
{
    qentry_t *e = xcalloc(1, sizeof *e);
    e->q = s->q;
    e->m = stream_map_message(rec, -1);
    e->seq = s->seq++;
    e->offset = rec->offset;
    e->deliveries = 1;
    queue_pin(s->q); /* the queue outlives a deletion while copies are out */
    return e;
}

static void pump(sreader_t *r)
{
    if (r->pumping || r->dead) return;
    r->pumping = 1;
    stream_t *s = r->s;
    while (!r->dead && r->qc->can_take(r->qc)) {
        batch_rec_t rec;
        int rc = lcursor_next(&r->cur, spart(s), &rec, queue_name_cstr(s->q));
        if (rc < 0) {
            LOG_E("stream %s: read at offset %lld failed: %s", queue_name_cstr(s->q), (long long)r->cur.next_off,
                  herald_strerror(rc));
            break;
        }
        if (rc == 0) {
            partition_t *p = spart(s);
            if (!p || r->w.part) break;
            r->w.cb = on_data;
            r->w.ctx = r;
            r->w.target = r->cur.next_off + 1;
            if (partition_wait(p, &r->w) == 0 || partition_high_watermark(p) <= r->cur.next_off) break;
            continue; /* visible meanwhile */
        }
        qentry_t *e = entry_for(s, &rec);
        r->qc->deliver(r->qc, e);
    }
    r->pumping = 0;
    if (r->dead) reader_free(r);
}

static int64_t last_batch_start(partition_t *p)
{
    int64_t hw = partition_high_watermark(p), start = partition_start_offset(p);
    if (hw <= start) return hw;
    wbuf_t w;
    wbuf_init(&w);
    int64_t off = hw;
    if (partition_read_quiet(p, hw - 1, 1, &w) > 0) {
        batch_header_t h;
        if (batch_header_parse(w.p, w.len, &h) == 0) off = h.base_offset < start ? start : h.base_offset;
    }
    wbuf_destroy(&w);
    return off;
}

static int64_t resolve(partition_t *p, stream_start_t from)
{
    int64_t start = partition_start_offset(p), hw = partition_high_watermark(p), off = hw, bts;
    switch (from.kind) {
    case STREAM_FROM_FIRST: return start;
    case STREAM_FROM_LAST: return last_batch_start(p);
    case STREAM_FROM_NEXT: return hw;
    case STREAM_FROM_OFFSET: return from.value < start ? start : from.value > hw ? hw : from.value;
    case STREAM_FROM_TIME:
        if (partition_offset_for_time(p, from.value, &off, &bts) < 0) return hw;
        return off < start ? start : off;
    }
    return hw;
}

void stream_reader_add(queue_t *q, qconsumer_t *c, stream_start_t from)
{
    stream_t *s = find(q);
    if (!s) return;
    sreader_t *r = xcalloc(1, sizeof *r);
    r->s = s;
    r->qc = c;
    partition_t *p = spart(s);
    lcursor_init(&r->cur, p ? resolve(p, from) : 0);
    r->next = s->readers;
    s->readers = r;
    pump(r);
}

void stream_reader_remove(queue_t *q, qconsumer_t *c)
{
    stream_t *s = find(q);
    if (!s) return;
    for (sreader_t *r = s->readers; r; r = r->next)
        if (r->qc == c) {
            reader_unlink(r);
            return;
        }
}

void stream_kick(queue_t *q)
{
    stream_t *s = find(q);
    if (!s) return;
    /* A delivery cannot detach a reader (consumers are cancelled by
     * methods, not by writes), but walk by next pointers taken first. */
    for (sreader_t *r = s->readers, *n; r; r = n) {
        n = r->next;
        pump(r);
    }
}
