/* Queues fed from a Kafka topic: see feed.h for the model and formats. */
#include "broker/feed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "amqp/ftable.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/internal.h"
#include "broker/stream_map.h"
#include "store/deleter.h"

#define FEED_TICK_MS 500        /* positions are written, paused feeds retried */
#define FEED_LOG_SEGMENT (1 << 20)

typedef struct feed feed_t;

typedef struct {
    feed_t *f;
    int32_t index;
    lcursor_t cur;          /* next source record to feed */
    pwaiter_t w;            /* linked while caught up */
    int64_t durable_next;   /* every source offset below is fed and durable in the queue */
    int64_t last_next;      /* source offset after the last fed message awaiting durability, -1 none */
    uint32_t last_epoch;
    int64_t last_target;
    /* The `last` of a previous tick, still waiting: under steady feeding the
     * newest message is rarely durable at a tick, an older one is. */
    int64_t snap_next;      /* -1 none */
    uint32_t snap_epoch;
    int64_t snap_target;
} fpart_t;

struct feed {
    queue_t *q;             /* hash key (the pointer) */
    broker_t *b;
    char *topic;            /* owned */
    uint64_t qid;
    int32_t nparts;
    fpart_t **parts;        /* nparts, owned */
    partition_t *poslog;    /* durable queues: the position log */
    char *poslog_dir;       /* owned */
    int64_t *written;       /* positions last written to poslog (nparts) */
    int64_t *claimed;       /* start-up: from the data log's claims, -1 none */
    uint32_t max_ready;
    int pumping, started;
    UT_hash_handle hh;
};

static feed_t *g_feeds;
static uv_timer_t g_timer;
static int g_timer_on;

static feed_t *find(const queue_t *q)
{
    feed_t *f;
    HASH_FIND_PTR(g_feeds, &q, f);
    return f;
}

/* The claim id of (queue, partition): never a real queue id in practice
 * (those are random 64-bit values; this is one more). */
static uint64_t source_id(uint64_t qid, int32_t partition)
{
    uint64_t x = qid ^ (0x9e3779b97f4a7c15ull * ((uint64_t)partition + 1));
    x ^= x >> 31;
    return x * 0xbf58476d1ce4e5b9ull | 1;
}

int feed_wanted(amqp_bytes_t args)
{
    amqp_bytes_t t;
    return ftable_get_str(args, "x-source-topic", &t) == 1;
}

static topic_t *ftopic(const feed_t *f) { return broker_topic_find(f->b, f->topic, strlen(f->topic)); }

static void pump(feed_t *f);

static void on_data(pwaiter_t *w, int status)
{
    fpart_t *fp = w->ctx;
    if (status == 0) pump(fp->f);
}

static fpart_t *part_new(feed_t *f, int32_t i, int64_t from)
{
    fpart_t *fp = xcalloc(1, sizeof *fp);
    fp->f = f;
    fp->index = i;
    lcursor_init(&fp->cur, from);
    fp->durable_next = from;
    fp->last_next = -1;
    fp->snap_next = -1;
    fp->w.cb = on_data;
    fp->w.ctx = fp;
    return fp;
}

/* Grows the partition array to the topic's count (CreatePartitions);
 * new partitions are fed from their start. */
static void sync_parts(feed_t *f, topic_t *t)
{
    int32_t n = t ? topic_partition_count(t) : 0;
    if (n <= f->nparts) return;
    f->parts = xrealloc(f->parts, (size_t)n * sizeof *f->parts);
    f->written = xrealloc(f->written, (size_t)n * sizeof *f->written);
    f->claimed = xrealloc(f->claimed, (size_t)n * sizeof *f->claimed);
    for (int32_t i = f->nparts; i < n; i++) {
        partition_t *p = topic_partition(t, i);
        f->parts[i] = part_new(f, i, f->started && p ? partition_start_offset(p) : 0);
        f->written[i] = -1;
        f->claimed[i] = -1;
    }
    f->nparts = n;
}

/* ---- the position log ---- */

typedef struct {
    int64_t *v;
    uint32_t n;
} pos_t;

static void pos_record(void *ctx, const batch_rec_t *rec)
{
    pos_t *ps = ctx;
    if (rec->key_len != 1 || rec->key[0] != 'f' || rec->value_len < 4) return;
    rbuf_t r;
    rbuf_init(&r, rec->value, (size_t)rec->value_len);
    uint32_t n = rbuf_u32(&r);
    if (n > 100000 || rbuf_remaining(&r) != (size_t)n * 8) return;
    ps->v = xrealloc(ps->v, (n ? n : 1) * sizeof *ps->v);
    for (uint32_t i = 0; i < n; i++) ps->v[i] = rbuf_i64(&r);
    ps->n = n;
}

static int open_poslog(feed_t *f, pos_t *ps)
{
    int err = 0;
    f->poslog = partition_open(f->b, NULL, 0, xstrdup(f->poslog_dir), &err);
    if (!f->poslog) return err ? err : HE_STORAGE;
    plog_config_t pc;
    plog_config_default(&pc);
    pc.segment_bytes = FEED_LOG_SEGMENT;
    pc.segment_ms = -1;
    pc.retention_ms = -1;
    pc.retention_bytes = -1;
    plog_set_config(f->poslog->log, &pc);
    return ps ? partition_scan(f->poslog, pos_record, ps) : 0;
}

/* Records the durable positions that moved since the last write. */
static void write_positions(feed_t *f)
{
    if (!f->poslog) return;
    /* Each record is a whole snapshot: segments wholly before the last
     * durable one are not needed any more. */
    int64_t d = plog_durable_offset(f->poslog->log);
    if (d > 1) partition_drop_segments_before(f->poslog, d - 1);
    int moved = 0;
    for (int32_t i = 0; i < f->nparts; i++) {
        fpart_t *fp = f->parts[i];
        if (fp->snap_next >= 0 && queue_publish_state(f->q, fp->snap_epoch, fp->snap_target) == 1) {
            fp->durable_next = fp->snap_next;
            fp->snap_next = -1;
        }
        if (fp->last_next >= 0 && queue_publish_state(f->q, fp->last_epoch, fp->last_target) == 1) {
            fp->durable_next = fp->last_next;
            fp->last_next = fp->snap_next = -1;
        } else if (fp->last_next >= 0 && fp->snap_next < 0) {
            fp->snap_next = fp->last_next;
            fp->snap_epoch = fp->last_epoch;
            fp->snap_target = fp->last_target;
        }
        moved |= fp->durable_next != f->written[i];
    }
    if (!moved) return;
    wbuf_t v;
    wbuf_init(&v);
    wbuf_u32(&v, (uint32_t)f->nparts);
    for (int32_t i = 0; i < f->nparts; i++) wbuf_i64(&v, f->parts[i]->durable_next);
    int64_t target;
    int rc = internal_append(f->b, f->poslog, "f", 1, v.p, (int32_t)v.len, &target);
    (void)target;
    wbuf_destroy(&v);
    if (rc < 0) {
        LOG_W("queue %s: cannot record its feed positions: %s", queue_name_cstr(f->q), herald_strerror(rc));
        return;
    }
    for (int32_t i = 0; i < f->nparts; i++) f->written[i] = f->parts[i]->durable_next;
}

/* ---- feeding ---- */

/* Feeds one record of fp. Returns 1 if one was fed, 0 if none is there or
 * the queue is full, <0 on error. */
static int feed_one(feed_t *f, fpart_t *fp, partition_t *p)
{
    batch_rec_t rec;
    int64_t at = fp->cur.next_off;
    int rc = lcursor_next(&fp->cur, p, &rec, f->topic);
    if (rc <= 0) return rc;
    qmsg_t *m = stream_map_message(&rec, fp->index);
    m->persistent = (queue_flags(f->q) & QF_DURABLE) != 0; /* stored, so that the claim survives */
    m->origin_qid = source_id(f->qid, fp->index);
    m->origin_off = rec.offset;
    uint32_t epoch = 0;
    int64_t target = 0;
    int pr = queue_publish(f->q, m, &epoch, &target);
    qmsg_unref(m);
    if (pr == QP_REJECTED) { /* x-overflow reject-publish: try again when there is room */
        lcursor_seek(&fp->cur, at < rec.offset ? rec.offset : at);
        return 0;
    }
    if (pr == QP_WAIT) {
        fp->last_next = rec.offset + 1;
        fp->last_epoch = epoch;
        fp->last_target = target;
    } else if (pr == QP_DONE && fp->last_next < 0) {
        fp->durable_next = rec.offset + 1;
    }
    return 1;
}

static void pump(feed_t *f)
{
    if (f->pumping || !f->started || queue_is_deleted(f->q)) return;
    f->pumping = 1;
    topic_t *t = ftopic(f);
    sync_parts(f, t);
    for (int progress = 1; progress && queue_ready_count(f->q) < f->max_ready;) {
        progress = 0;
        for (int32_t i = 0; i < f->nparts && queue_ready_count(f->q) < f->max_ready; i++) {
            fpart_t *fp = f->parts[i];
            partition_t *p = t ? topic_partition(t, i) : NULL;
            int rc = feed_one(f, fp, p);
            if (rc > 0) {
                progress = 1;
                continue;
            }
            if (rc < 0) LOG_W("queue %s: feed from %s-%d: %s", queue_name_cstr(f->q), f->topic, i, herald_strerror(rc));
            if (p && !fp->w.part && queue_ready_count(f->q) < f->max_ready) {
                fp->w.target = fp->cur.next_off + 1;
                partition_wait(p, &fp->w); /* 1: visible already (the next round reads it) or failed */
            }
        }
        if (queue_is_deleted(f->q)) break;
    }
    f->pumping = 0;
}

static void on_tick(uv_timer_t *h)
{
    (void)h;
    for (feed_t *f = g_feeds, *n; f; f = n) {
        n = f->hh.next;
        write_positions(f);
        pump(f);
    }
}

static void timer_start(broker_t *b)
{
    if (g_timer_on) return;
    uv_timer_init(broker_loop(b), &g_timer);
    uv_timer_start(&g_timer, on_tick, FEED_TICK_MS, FEED_TICK_MS);
    uv_unref((uv_handle_t *)&g_timer);
    g_timer_on = 1;
}

static void timer_stop(void)
{
    if (!g_timer_on || g_feeds) return;
    uv_close((uv_handle_t *)&g_timer, NULL);
    g_timer_on = 0;
}

/* ---- lifecycle ---- */

int feed_open(broker_t *b, queue_t *q, int declare)
{
    amqp_bytes_t tn;
    if (ftable_get_str(queue_args(q), "x-source-topic", &tn) != 1) return 0;
    feed_t *f = xcalloc(1, sizeof *f);
    f->q = q;
    f->b = b;
    f->topic = xstrndup((const char *)tn.p, tn.len);
    f->qid = queue_id(q);
    int64_t mr = -1;
    f->max_ready = ftable_get_int(queue_args(q), "x-source-max-ready", &mr) == 1 && mr > 0 && mr <= UINT32_MAX
                       ? (uint32_t)mr
                       : FEED_MAX_READY_DEFAULT;
    topic_t *t = ftopic(f);
    if (declare && !t) {
        free(f->topic);
        free(f);
        return HE_NOT_FOUND;
    }
    int32_t n = t ? topic_partition_count(t) : 0;
    f->nparts = n;
    f->parts = xcalloc((size_t)(n ? n : 1), sizeof *f->parts);
    f->written = xcalloc((size_t)(n ? n : 1), sizeof *f->written);
    f->claimed = xcalloc((size_t)(n ? n : 1), sizeof *f->claimed);
    pos_t ps = {NULL, 0};
    int rc = 0;
    if ((queue_flags(q) & QF_DURABLE) && !(queue_flags(q) & QF_EXCLUSIVE)) {
        f->poslog_dir = xasprintf("%s/queues/%016llx-feed", broker_config(b)->data_dir, (unsigned long long)f->qid);
        rc = open_poslog(f, declare ? NULL : &ps);
    }
    for (int32_t i = 0; i < n; i++) {
        partition_t *p = topic_partition(t, i);
        int64_t from = declare ? (p ? partition_high_watermark(p) : 0) : (i < (int32_t)ps.n ? ps.v[i] : 0);
        f->parts[i] = part_new(f, i, from);
        f->written[i] = declare ? -1 : from;
        f->claimed[i] = -1;
    }
    free(ps.v);
    HASH_ADD_PTR(g_feeds, q, f);
    timer_start(b);
    if (declare) {
        f->started = 1;
        write_positions(f);
        /* The starting positions are durable before the declare is
         * answered (blocking, once): without them a restart could not tell
         * where "new records" began. */
        plog_sync_t s;
        while (f->poslog && rc == 0 && plog_sync_begin(f->poslog->log, &s) == 1) {
            plog_sync_run(&s);
            rc = plog_sync_end(f->poslog->log, &s);
        }
        pump(f);
    }
    if (rc < 0) LOG_E("queue %s: cannot open its feed position log: %s", queue_name_cstr(q), herald_strerror(rc));
    return rc < 0 ? rc : 0;
}

void feed_claims(broker_t *b, const qclaim_t *c, size_t n)
{
    for (feed_t *f = g_feeds; f; f = f->hh.next) {
        if (f->b != b || f->started) continue;
        for (size_t k = 0; k < n; k++)
            for (int32_t i = 0; i < f->nparts; i++)
                if (c[k].qid == source_id(f->qid, i) && c[k].offset >= f->claimed[i]) f->claimed[i] = c[k].offset;
        for (int32_t i = 0; i < f->nparts; i++) {
            fpart_t *fp = f->parts[i];
            if (f->claimed[i] >= 0 && f->claimed[i] + 1 > fp->cur.next_off) {
                lcursor_seek(&fp->cur, f->claimed[i] + 1);
                fp->durable_next = f->claimed[i] + 1;
            }
            LOG_I("queue %s: feeding from %s-%d at offset %lld", queue_name_cstr(f->q), f->topic, i,
                  (long long)fp->cur.next_off);
        }
        f->started = 1;
        pump(f);
    }
}

void feed_close(queue_t *q, int remove)
{
    feed_t *f = find(q);
    if (!f) return;
    HASH_DEL(g_feeds, f);
    if (!remove) write_positions(f);
    for (int32_t i = 0; i < f->nparts; i++) {
        pwaiter_cancel(&f->parts[i]->w);
        lcursor_destroy(&f->parts[i]->cur);
        free(f->parts[i]);
    }
    if (f->poslog) partition_close(f->b, f->poslog);
    if (remove && f->poslog_dir) {
        int rc = store_remove_dir(f->poslog_dir);
        if (rc < 0) LOG_W("cannot remove %s: %s", f->poslog_dir, herald_strerror(rc));
    }
    free(f->poslog_dir);
    free(f->parts);
    free(f->written);
    free(f->claimed);
    free(f->topic);
    free(f);
    timer_stop();
}

void feed_kick(queue_t *q)
{
    feed_t *f = find(q);
    if (f) pump(f);
}
