/*
 * Deep backlogs live on disk. A durable FIFO queue keeps at most
 * QUEUE_PAGE_HIGH ready messages in memory; once it holds that many, new
 * publishes are only written to its data log (transient ones too, marked
 * "T" so that a restart drops them) and counted as *paged*: a list of live
 * offset ranges behind the in-memory ready list, in arrival order. When
 * the in-memory list runs low, the next records are read back from the log
 * (page cache speed) and become entries again. Recovery of a deep queue
 * pages the same way, so a restart does not load the backlog either.
 *
 * Not paged: non-durable queues, priority queues, delay queues and queues
 * with plugin-mode de-duplication (their entries need to be in memory).
 * Paged messages are expired (TTL) when they are read back.
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/queue_int.h"
#include "store/batch.h"

/* ---- offset ranges ---- */

static void ranges_grow(qranges_t *r)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->v = xrealloc(r->v, r->cap * sizeof *r->v);
    }
}

void qranges_add(qranges_t *r, int64_t from, int64_t to)
{
    if (r->n && r->v[r->n - 1].to == from) {
        r->v[r->n - 1].to = to;
        return;
    }
    ranges_grow(r);
    r->v[r->n++] = (qrange_t){from, to};
}

static int cmp_range(const void *a, const void *b)
{
    const qrange_t *x = a, *y = b;
    return x->from < y->from ? -1 : x->from > y->from;
}

void qranges_normalize(qranges_t *r)
{
    if (r->n < 2) return;
    qsort(r->v, r->n, sizeof *r->v, cmp_range);
    size_t k = 0;
    for (size_t i = 1; i < r->n; i++) {
        if (r->v[i].from <= r->v[k].to) {
            if (r->v[i].to > r->v[k].to) r->v[k].to = r->v[i].to;
        } else {
            r->v[++k] = r->v[i];
        }
    }
    r->n = k + 1;
}

/* Index of the range holding x in a normalized list, or -1. */
static ssize_t ranges_find(const qranges_t *r, int64_t x)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->v[mid].to <= x) lo = mid + 1;
        else if (r->v[mid].from > x) hi = mid;
        else return (ssize_t)mid;
    }
    return -1;
}

int qranges_has(const qranges_t *r, int64_t x) { return ranges_find(r, x) >= 0; }

int qranges_remove(qranges_t *r, int64_t x)
{
    ssize_t i = ranges_find(r, x);
    if (i < 0) return 0;
    qrange_t *g = &r->v[i];
    if (g->from == x) {
        g->from++;
    } else if (g->to == x + 1) {
        g->to--;
    } else { /* split */
        ranges_grow(r);
        g = &r->v[i];
        memmove(&r->v[i + 2], &r->v[i + 1], (r->n - (size_t)i - 1) * sizeof *r->v);
        r->v[i + 1] = (qrange_t){x + 1, g->to};
        g->to = x;
        r->n++;
    }
    if (g->from == g->to) {
        memmove(&r->v[i], &r->v[i + 1], (r->n - (size_t)i - 1) * sizeof *r->v);
        r->n--;
    }
    return 1;
}

void qranges_free(qranges_t *r)
{
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* ---- paging ---- */

int queue_pageable(const queue_t *q)
{
    return queue_is_stored(q) && q->nlv == 1 && !q->fwd.p && !(q->dedup && !queue_dedup_window(q));
}

int queue_page_out(const queue_t *q)
{
    return queue_pageable(q) && (q->npaged || q->nready >= QUEUE_PAGE_HIGH);
}

void queue_page_add(queue_t *q, int64_t offset, uint64_t body_len)
{
    qranges_add(&q->paged, offset, offset + 1);
    q->npaged++;
    q->paged_bytes += body_len;
}

int queue_page_remove(queue_t *q, int64_t offset, uint64_t body_len)
{
    if (!qranges_remove(&q->paged, offset)) return 0;
    q->npaged--;
    q->paged_bytes -= body_len;
    return 1;
}

typedef struct {
    queue_t *q;
    size_t got, max;
    int64_t next;     /* the first offset not looked at yet */
} page_ctx_t;

static void page_record(page_ctx_t *pc, const batch_rec_t *rec)
{
    queue_t *q = pc->q;
    if (!q->paged.n || rec->offset < q->paged.v[0].from) return;
    pc->next = rec->offset + 1;
    if (rec->offset >= q->paged.v[0].to) return; /* between ranges: not ours */
    qrec_hdrs_t h;
    queue_rec_headers(rec, &h);
    q->paged.v[0].from = rec->offset + 1;
    if (q->paged.v[0].from == q->paged.v[0].to) {
        memmove(&q->paged.v[0], &q->paged.v[1], (q->paged.n - 1) * sizeof *q->paged.v);
        q->paged.n--;
    }
    uint64_t blen = rec->value_len > 0 ? (uint64_t)rec->value_len : 0;
    q->npaged--;
    q->paged_bytes -= blen;
    qentry_t *e = queue_entry_from_record(q, rec, &h);
    e->redelivered = rec->offset <= q->page_dmark;
    queue_place(q, e, 0);
    pc->got++;
}

size_t queue_page_in(queue_t *q, size_t max)
{
    if (!q->npaged || !q->data) return 0;
    page_ctx_t pc = {q, 0, max, 0};
    wbuf_t buf;
    wbuf_init(&buf);
    int64_t end = plog_end_offset(q->data->log); /* pending records are not readable yet */
    while (pc.got < pc.max && q->paged.n && q->paged.v[0].from < end) {
        int64_t off = q->paged.v[0].from;
        wbuf_reset(&buf);
        int64_t n = plog_read(q->data->log, off, end, 1 << 20, &buf);
        if (n <= 0) {
            LOG_E("queue %s: cannot read paged messages at offset %lld (%lld); they stay on disk", q->name,
                  (long long)off, (long long)n);
            break;
        }
        size_t pos = 0;
        while (pos < buf.len) {
            batch_header_t bh;
            if (batch_header_parse(buf.p + pos, buf.len - pos, &bh) < 0) break;
            size_t blen = batch_size(&bh);
            batch_iter_t it;
            batch_rec_t rec;
            if (batch_iter_init(&it, buf.p + pos, blen) == 0)
                while (batch_iter_next(&it, &rec) > 0) page_record(&pc, &rec);
            pos += blen;
        }
        if (q->paged.n && q->paged.v[0].from == off) { /* nothing moved: a gap the log does not hold */
            LOG_E("queue %s: paged offset %lld is missing from the log", q->name, (long long)off);
            break;
        }
    }
    wbuf_destroy(&buf);
    return pc.got;
}

/* ---- delayed messages on disk ----
 *
 * A delay queue (x-delayed-message) keeps a stored message only as its
 * (due time, offset) in a heap; the record is read back when it is due.
 * Millions of pending delayed messages cost 16 bytes each in memory. */

static int dless(const qdelay_t *a, const qdelay_t *b)
{
    return a->at < b->at || (a->at == b->at && a->offset < b->offset);
}

static void dheap_up(qdheap_t *h, uint32_t i)
{
    qdelay_t x = h->v[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!dless(&x, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
}

static void dheap_down(qdheap_t *h, uint32_t i)
{
    qdelay_t x = h->v[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && dless(&h->v[c + 1], &h->v[c])) c++;
        if (!dless(&h->v[c], &x)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    h->v[i] = x;
}

void queue_delay_push(queue_t *q, int64_t at, int64_t offset)
{
    qdheap_t *h = &q->dpaged;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = xrealloc(h->v, h->cap * sizeof *h->v);
    }
    h->v[h->n++] = (qdelay_t){at, offset};
    dheap_up(h, h->n - 1);
}

static void dheap_pop(qdheap_t *h)
{
    h->v[0] = h->v[--h->n];
    if (h->n) dheap_down(h, 0);
}

/* One batch read back and kept: messages due together were mostly
 * published together. */
static wbuf_t g_rbuf;
static const partition_t *g_rbuf_part;
static int64_t g_rbuf_first, g_rbuf_end; /* offsets the buffer holds, [first, end) */

void queue_page_forget(const partition_t *p)
{
    if (g_rbuf_part == p) g_rbuf_part = NULL;
}

void queue_page_scratch_free(void)
{
    wbuf_destroy(&g_rbuf);
    g_rbuf_part = NULL;
    g_rbuf_first = g_rbuf_end = 0;
}

/* Finds the record at offset in q's data log; calls fn with it. Returns 1,
 * 0 if it is not readable yet (pending), <0 if it cannot be read. */
static int with_record(queue_t *q, int64_t offset, void (*fn)(queue_t *, const batch_rec_t *, void *), void *ctx)
{
    int64_t end = plog_end_offset(q->data->log);
    if (offset >= end) return 0;
    if (g_rbuf_part != q->data || offset < g_rbuf_first || offset >= g_rbuf_end) {
        wbuf_reset(&g_rbuf);
        g_rbuf_part = NULL;
        int64_t n = plog_read(q->data->log, offset, end, 1 << 16, &g_rbuf);
        if (n <= 0) return n < 0 ? (int)n : -1;
        batch_header_t bh;
        if (batch_header_parse(g_rbuf.p, g_rbuf.len, &bh) < 0) return -1;
        g_rbuf_part = q->data;
        g_rbuf_first = bh.base_offset;
        g_rbuf_end = g_rbuf_first;
        size_t pos = 0;
        while (pos < g_rbuf.len && batch_header_parse(g_rbuf.p + pos, g_rbuf.len - pos, &bh) == 0) {
            g_rbuf_end = batch_last_offset(&bh) + 1;
            pos += batch_size(&bh);
        }
    }
    size_t pos = 0;
    batch_header_t bh;
    while (pos < g_rbuf.len && batch_header_parse(g_rbuf.p + pos, g_rbuf.len - pos, &bh) == 0) {
        size_t blen = batch_size(&bh);
        if (offset <= batch_last_offset(&bh)) {
            batch_iter_t it;
            batch_rec_t rec;
            if (batch_iter_init(&it, g_rbuf.p + pos, blen) == 0)
                while (batch_iter_next(&it, &rec) > 0)
                    if (rec.offset == offset) {
                        fn(q, &rec, ctx);
                        return 1;
                    }
            return -1;
        }
        pos += blen;
    }
    return -1;
}

static void take_due(queue_t *q, const batch_rec_t *rec, void *ctx)
{
    qrec_hdrs_t h;
    queue_rec_headers(rec, &h);
    *(qentry_t **)ctx = queue_entry_from_record(q, rec, &h);
}

int64_t queue_delay_run(queue_t *q, int64_t now_ms, void (*due)(queue_t *, qentry_t *))
{
    qdheap_t *h = &q->dpaged;
    while (h->n && h->v[0].at <= now_ms) {
        qentry_t *e = NULL;
        int rc = with_record(q, h->v[0].offset, take_due, &e);
        if (rc == 0) return now_ms + 1; /* still being appended: next turn */
        if (rc < 0) {
            LOG_E("queue %s: cannot read delayed message at offset %lld; it stays on disk", q->name,
                  (long long)h->v[0].offset);
            dheap_pop(h);
            continue;
        }
        dheap_pop(h);
        e->ready_at_ms = 0;
        due(q, e);
    }
    return h->n ? h->v[0].at : 0;
}

int64_t queue_delay_floor(const queue_t *q)
{
    int64_t f = INT64_MAX;
    for (uint32_t i = 0; i < q->dpaged.n; i++)
        if (q->dpaged.v[i].offset < f) f = q->dpaged.v[i].offset;
    return f;
}

static int cmp_i64p(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

size_t queue_delay_drop(queue_t *q, const int64_t *offsets, size_t n)
{
    /* Start-up: offsets ascend; the heap is filtered in one pass. */
    qdheap_t *h = &q->dpaged;
    size_t k = 0, dropped = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        if (bsearch(&h->v[i].offset, offsets, n, sizeof *offsets, cmp_i64p)) {
            queue_record_removed(q, h->v[i].offset);
            dropped++;
            continue;
        }
        h->v[k++] = h->v[i];
    }
    h->n = (uint32_t)k;
    for (uint32_t i = h->n / 2; i-- > 0;) dheap_down(h, i);
    return dropped;
}
