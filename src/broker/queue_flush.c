/*
 * The coalesced writes of a durable queue: the messages published in a
 * loop turn are appended together (in batches of at most QUEUE_FLUSH_RECORDS
 * records and about QUEUE_FLUSH_BYTES), then its acks, returns and
 * delivered mark as state records. Formats in queue.h.
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/queue_int.h"
#include "store/batch.h"

/* Scratch arrays for building a batch, kept across flushes (the loop is
 * single-threaded): zeroing fresh ones per flush was a visible cost. */
#define QUEUE_REC_HEADERS 6 /* x, p, e, t, o, T */
#define QUEUE_FLUSH_KEEP_BYTES (16 << 20) /* a batch buffer larger than this is not kept */
#define QUEUE_FLUSH_RECORDS 4096          /* records per batch of a flush */
#define QUEUE_FLUSH_BYTES (1 << 20)       /* about this many bytes per batch of a flush */
typedef struct {
    batch_record_t *recs;
    batch_header_kv_t *hdrs;
    uint8_t *vals; /* 32 bytes per record: e (8), t (8), o (16) */
    uint32_t *rpos; /* cap + 1: where each record starts in the batch */
    size_t cap;
    wbuf_t batch;  /* the batch being built: a fresh buffer per flush grew by
                    * copying and faulted its pages in every time */
    wbuf_t val;    /* the values of a turn's state records */
} flush_scratch_t;

static flush_scratch_t g_scratch;

/* The delayed messages of pend[a, b), just written as one batch at (base,
 * pos), wait on disk: each is remembered with where its record is, so that
 * it is read back alone when due. */
static void push_delayed(queue_t *q, size_t a, size_t b, int64_t base, int64_t pos)
{
    for (size_t i = a; i < b; i++) {
        if (!q->pend[i].delayed) continue;
        const uint32_t *rp = g_scratch.rpos + (i - a);
        int64_t at = q->pend[i].wait_at ? q->pend[i].wait_at : q->pend[i].m->ready_at_ms, at_pos = pos + rp[0];
        uint32_t len = rp[1] - rp[0];
        int known = pos >= 0 && at_pos + len < (int64_t)QDELAY_NOPOS;
        queue_delay_push(q, at, base + (int64_t)(i - a), known ? (uint32_t)at_pos : QDELAY_NOPOS, len,
                         q->pend[i].returns);
        queue_wake_at(q, at);
    }
}

/* The end of the batch that starts at pend[a]: at most QUEUE_FLUSH_RECORDS
 * records and about QUEUE_FLUSH_BYTES. One batch per flush grew to 64 MiB
 * when a burst of expiries moved 65,536 copies at once: a fresh mapping
 * faulted in every time and a peak RSS of 160 MB in ttl-expire. */
static size_t chunk_end(const queue_t *q, size_t a)
{
    size_t b = a, bytes = 0;
    while (b < q->npend && b - a < QUEUE_FLUSH_RECORDS && bytes < QUEUE_FLUSH_BYTES) {
        const qmsg_t *m = q->pend[b++].m;
        bytes += m->body_len + m->props_len + m->key_len + m->exchange_len + 64;
    }
    return b;
}

/* Builds pend[a, b) into one batch in w and appends it. Returns 0 or <0. */
static int append_chunk(queue_t *q, wbuf_t *w, size_t a, size_t b)
{
    batch_record_t *recs = g_scratch.recs;
    int64_t base_ts = q->pend[a].m->ts_ms;
    for (size_t i = a; i < b; i++) {
        qmsg_t *m = q->pend[i].m;
        qentry_t *e = q->pend[i].e;
        batch_header_kv_t *h = g_scratch.hdrs + (i - a) * QUEUE_REC_HEADERS;
        uint8_t *val = g_scratch.vals + (i - a) * 32;
        size_t nh = 0;
        amqp_bytes_t ex = qmsg_exchange(m), props = qmsg_props(m);
        h[nh++] = (batch_header_kv_t){"x", 1, ex.p, (int32_t)ex.len};
        h[nh++] = (batch_header_kv_t){"p", 1, props.p, (int32_t)props.len};
        int64_t exp = e ? e->expires_ms : q->pend[i].expires_ms;
        if (exp) {
            wbuf_put_be64(val, (uint64_t)exp);
            h[nh++] = (batch_header_kv_t){"e", 1, val, 8};
        }
        if (q->pend[i].transient) h[nh++] = (batch_header_kv_t){"T", 1, "", 0};
        if (m->ready_at_ms) {
            wbuf_put_be64(val + 8, (uint64_t)m->ready_at_ms);
            h[nh++] = (batch_header_kv_t){"t", 1, val + 8, 8};
        }
        if (m->origin_off >= 0) {
            wbuf_put_be64(val + 16, m->origin_qid);
            wbuf_put_be64(val + 24, (uint64_t)m->origin_off);
            h[nh++] = (batch_header_kv_t){"o", 1, val + 16, 16};
        }
        amqp_bytes_t key = qmsg_key(m);
        batch_record_t *r = &recs[i - a];
        r->key = key.p;
        r->key_len = (int32_t)key.len;
        r->value = qmsg_body(m);
        r->value_len = (int32_t)m->body_len;
        r->timestamp_delta = m->ts_ms > base_ts ? m->ts_ms - base_ts : 0;
        r->headers = h;
        r->header_count = nh;
    }
    wbuf_reset(w);
    batch_build_spans(w, base_ts, recs, b - a, g_scratch.rpos);
    append_result_t res;
    int rc = partition_append_built(q->b, q->data, w->p, w->len, &res);
    if (rc == 0) push_delayed(q, a, b, res.base_offset, plog_last_batch_pos(q->data->log));
    return rc;
}

/* Appending pend[a] and what follows failed with rc. */
static void fail_pending(queue_t *q, size_t a, int rc)
{
    size_t n = q->npend;
    int64_t expect = plog_end_offset(q->data->log); /* pend[a]'s offset */
    LOG_E("queue %s: cannot store %zu message(s): %s", q->name, n - a, herald_strerror(rc));
    /* Those messages stay in memory, not durable; acks and returns
     * recorded for their offsets must not reach the state log (the
     * offsets will be reused). Their publishers' confirms fail through
     * the waiters (a transient one's, or a spill log's, was given). One
     * that was to wait on disk stays in memory (queue_keep_in_memory). */
    size_t kept = 0;
    for (size_t i = a; i < n; i++)
        if (q->pend[i].e) q->pend[i].e->offset = -1;
        else if (q->pend[i].delayed) {
            queue_keep_in_memory(q, &q->pend[i]);
            kept++;
        } else if (queue_page_remove(q, expect + (int64_t)(i - a), q->pend[i].m->body_len)) {
            queue_dedup_forget_offset(q, expect + (int64_t)(i - a));
            queue_keep_in_memory(q, &q->pend[i]);
            kept++;
        }
    if (kept) {
        LOG_W("queue %s: %zu message(s) that were to wait on disk stay in memory", q->name, kept);
        queue_kick(q);
    }
    q->fail_at[q->epoch % 16] = expect;
    q->epoch++;
    size_t k = 0;
    for (size_t i = 0; i < q->nacks; i++)
        if (q->acks[i] < expect) q->acks[k++] = q->acks[i];
    q->nacks = k;
    k = 0;
    for (size_t i = 0; i < q->nrets; i++)
        if (q->rets[i].offset < expect) q->rets[k++] = q->rets[i];
    q->nrets = k;
    partition_hw_advanced(q->data, rc);
}

static void flush_data(queue_t *q, wbuf_t *w)
{
    size_t n = q->npend;
    if (!g_scratch.cap) {
        size_t cap = QUEUE_FLUSH_RECORDS;
        g_scratch.recs = xmalloc(cap * sizeof *g_scratch.recs);
        g_scratch.hdrs = xmalloc(cap * QUEUE_REC_HEADERS * sizeof *g_scratch.hdrs);
        g_scratch.vals = xmalloc(cap * 32);
        g_scratch.rpos = xmalloc((cap + 1) * sizeof *g_scratch.rpos);
        g_scratch.cap = cap;
    }
    for (size_t a = 0, b; a < n; a = b) {
        b = chunk_end(q, a);
        int rc = append_chunk(q, w, a, b);
        if (rc < 0) {
            fail_pending(q, a, rc);
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (q->pend[i].e) q->pend[i].e->pend_slot = 0;
        qmsg_unref(q->pend[i].m);
    }
    q->npend = 0;
}

void queue_state_append(queue_t *q, const char *key, const void *val, size_t len)
{
    int64_t target;
    int rc = internal_append(q->b, q->state, key, 1, val, (int32_t)len, &target);
    if (rc < 0) LOG_E("queue %s: cannot write delivery state: %s", q->name, herald_strerror(rc));
}

/* Appends the turn's delivery-state records (acks "a", returns "r", the
 * delivered mark "d") as one batch: one write instead of one per kind (a
 * queue whose consumers nack has all three in most turns). vals holds the
 * values, w the batch; both are the caller's scratch. */
static void flush_state(queue_t *q, wbuf_t *vals, wbuf_t *w)
{
    static const char keys[3] = {'a', 'r', 'd'};
    size_t at[4] = {0};
    wbuf_reset(vals);
    for (size_t i = 0; i < q->nacks; i++) wbuf_i64(vals, q->acks[i]);
    at[1] = vals->len;
    for (size_t i = 0; i < q->nrets; i++) {
        wbuf_i64(vals, q->rets[i].offset);
        wbuf_i64(vals, q->rets[i].returns);
        wbuf_i64(vals, q->rets[i].ready_at_ms);
    }
    at[2] = vals->len;
    if (q->dmark_dirty) wbuf_i64(vals, q->dmark);
    at[3] = vals->len;
    q->nacks = q->nrets = 0;
    q->dmark_dirty = 0;
    batch_record_t recs[3];
    size_t n = 0;
    for (int k = 0; k < 3; k++) {
        if (at[k + 1] == at[k]) continue;
        recs[n++] = (batch_record_t){&keys[k], 1, vals->p + at[k], (int32_t)(at[k + 1] - at[k]), 0, NULL, 0};
    }
    if (!n) return;
    wbuf_reset(w);
    batch_build(w, clock_wall_ms(), recs, n);
    append_result_t res;
    int rc = partition_append_built(q->b, q->state, w->p, w->len, &res);
    if (rc < 0) LOG_E("queue %s: cannot write delivery state: %s", q->name, herald_strerror(rc));
}

void queue_flush_all(broker_t *b)
{
    wbuf_t *w = &g_scratch.batch, *vals = &g_scratch.val;
    while (b->dirty_queues) {
        queue_t *q = b->dirty_queues;
        b->dirty_queues = q->dirty_next;
        q->dirty = 0;
        q->dirty_next = NULL;
        int stored = queue_is_stored(q);
        if (!stored && !queue_is_spilling(q)) {
            q->npend = q->nacks = q->nrets = 0;
            continue;
        }
        int paged = q->npaged != 0;
        if (q->npend) flush_data(q, w);
        if (stored) flush_state(q, vals, w);
        /* Paged records just became readable: consumers waiting on an
         * empty in-memory list can be served now. */
        if (paged && q->nconsumers && q->nready < QUEUE_PAGE_LOW) queue_kick(q);
    }
    if (w->cap > QUEUE_FLUSH_KEEP_BYTES) wbuf_destroy(w); /* after an unusually large batch */
    if (vals->cap > QUEUE_FLUSH_KEEP_BYTES) wbuf_destroy(vals);
}

void queue_flush_scratch_free(void)
{
    free(g_scratch.recs);
    free(g_scratch.hdrs);
    free(g_scratch.vals);
    free(g_scratch.rpos);
    wbuf_destroy(&g_scratch.batch);
    wbuf_destroy(&g_scratch.val);
    memset(&g_scratch, 0, sizeof g_scratch);
}
