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
 * Not paged: non-durable queues, priority queues, delay queues (their
 * messages wait on disk by due time: queue_delay.c) and queues
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

void queue_each_record(const uint8_t *p, size_t len, void (*fn)(void *ctx, const batch_rec_t *rec), void *ctx)
{
    size_t pos = 0;
    while (pos < len) {
        batch_header_t bh;
        if (batch_header_parse(p + pos, len - pos, &bh) < 0) break;
        size_t blen = batch_size(&bh);
        batch_iter_t it;
        batch_rec_t rec;
        if (batch_iter_init(&it, p + pos, blen) == 0)
            while (batch_iter_next(&it, &rec) > 0) fn(ctx, &rec);
        pos += blen;
    }
}

typedef struct {
    queue_t *q;
    size_t got, max;
    int64_t next;     /* the first offset not looked at yet */
} page_ctx_t;

static void page_record(void *ctx, const batch_rec_t *rec)
{
    page_ctx_t *pc = ctx;
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
        queue_each_record(buf.p, buf.len, page_record, &pc);
        if (q->paged.n && q->paged.v[0].from == off) { /* nothing moved: a gap the log does not hold */
            LOG_E("queue %s: paged offset %lld is missing from the log", q->name, (long long)off);
            break;
        }
    }
    wbuf_destroy(&buf);
    return pc.got;
}
