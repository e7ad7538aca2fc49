/*
 * Deep backlogs live on disk. A durable queue keeps at most
 * QUEUE_PAGE_HIGH ready messages in memory; once it holds that many, new
 * publishes are only written to its data log (transient ones too, marked
 * "T" so that a restart drops them) and counted as *paged*: a list of
 * offset ranges behind the in-memory ready lists, in arrival order. When
 * the in-memory list runs low, the next records are read back from the log
 * (page cache speed) and become entries again. Recovery of a deep queue
 * pages the same way, so a restart does not load the backlog either.
 *
 * Priority queues page per level, strictly: a publish stays on disk once
 * the queue is full or its level already has records there (FIFO within a
 * level), and before a delivery the highest level with records on disk is
 * read back first once it is the top level in memory and runs low. Which
 * level each paged record has is one byte per offset (qpmap_t), so that
 * reading back one level skips the others without decoding them; a record
 * taken back from the middle is marked in that map, not cut out of the
 * ranges (that would split them into one range per message).
 *
 * A queue that is not stored (non-durable, exclusive) pages the same way
 * into a spill log (queue_store.c): its records are never synced, and an
 * entry read back from it is in memory only, as if just published.
 *
 * Not paged: delay queues (their messages wait on disk
 * by due time: queue_delay.c), queues with plugin-mode de-duplication
 * (their entries need to be in memory) and x-max-priority 255 (its top
 * level does not fit the map). Paged messages are expired (TTL)
 * when they are read back.
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

/* ---- the level map of a priority queue ---- */

static uint8_t pmap_get(const qpmap_t *m, int64_t off)
{
    if (off < m->base) return QPMAP_NONE;
    size_t c = (size_t)((off - m->base) / QPMAP_CHUNK);
    if (c >= m->n || !m->chunk[c]) return QPMAP_NONE;
    return m->chunk[c][(off - m->base) % QPMAP_CHUNK];
}

static void pmap_set(qpmap_t *m, int64_t off, uint8_t level)
{
    if (!m->n) m->base = off - off % QPMAP_CHUNK;
    if (off < m->base) {
        if (level == QPMAP_NONE) return; /* below the map everything is NONE */
        size_t k = (size_t)((m->base - off + QPMAP_CHUNK - 1) / QPMAP_CHUNK);
        m->chunk = xrealloc(m->chunk, (m->n + k) * sizeof *m->chunk);
        memmove(m->chunk + k, m->chunk, m->n * sizeof *m->chunk);
        for (size_t i = 0; i < k; i++) m->chunk[i] = NULL;
        m->n += k;
        m->base -= (int64_t)k * QPMAP_CHUNK;
    }
    size_t c = (size_t)((off - m->base) / QPMAP_CHUNK);
    if (c >= m->n) {
        if (level == QPMAP_NONE) return;
        m->chunk = xrealloc(m->chunk, (c + 1) * sizeof *m->chunk);
        for (size_t i = m->n; i <= c; i++) m->chunk[i] = NULL;
        m->n = c + 1;
    }
    if (!m->chunk[c]) {
        if (level == QPMAP_NONE) return;
        m->chunk[c] = xmalloc(QPMAP_CHUNK);
        memset(m->chunk[c], QPMAP_NONE, QPMAP_CHUNK);
    }
    m->chunk[c][(off - m->base) % QPMAP_CHUNK] = level;
}

/* Frees the chunks wholly below floor. */
static void pmap_trim(qpmap_t *m, int64_t floor)
{
    size_t k = 0;
    while (k < m->n && m->base + (int64_t)(k + 1) * QPMAP_CHUNK <= floor) free(m->chunk[k++]);
    if (!k) return;
    memmove(m->chunk, m->chunk + k, (m->n - k) * sizeof *m->chunk);
    m->n -= k;
    m->base += (int64_t)k * QPMAP_CHUNK;
    if (!m->n) {
        free(m->chunk);
        m->chunk = NULL;
    }
}

/* The first offset in [from, to) whose level is level, or -1. */
static int64_t pmap_find(const qpmap_t *m, uint8_t level, int64_t from, int64_t to)
{
    if (from < m->base) from = m->base;
    while (from < to) {
        size_t c = (size_t)((from - m->base) / QPMAP_CHUNK);
        if (c >= m->n) return -1;
        int64_t cstart = m->base + (int64_t)c * QPMAP_CHUNK, cend = cstart + QPMAP_CHUNK;
        int64_t stop = cend < to ? cend : to;
        if (m->chunk[c]) {
            const uint8_t *p = memchr(m->chunk[c] + (from - cstart), level, (size_t)(stop - from));
            if (p) return cstart + (p - m->chunk[c]);
        }
        from = stop;
    }
    return -1;
}

static void pmap_free(qpmap_t *m)
{
    for (size_t i = 0; i < m->n; i++) free(m->chunk[i]);
    free(m->chunk);
    memset(m, 0, sizeof *m);
}

/* ---- paging ---- */

int queue_pageable(const queue_t *q)
{
    /* Level 255 would be the map's QPMAP_NONE: x-max-priority 255 keeps
     * everything in memory. */
    return (queue_is_stored(q) || queue_is_spilling(q)) && !q->fwd.p && q->opt.max_prio < QPMAP_NONE;
}

int queue_page_out(const queue_t *q, uint8_t prio)
{
    if (!queue_pageable(q)) return 0;
    if (q->nlv == 1) return q->npaged || q->nready >= QUEUE_PAGE_HIGH;
    return q->lv[prio].npaged || q->nready >= QUEUE_PAGE_HIGH;
}

/* Adds offset (not in r) to the sorted ranges r, wherever it falls. */
static void ranges_insert(qranges_t *r, int64_t offset)
{
    if (!r->n || offset >= r->v[r->n - 1].to) {
        qranges_add(r, offset, offset + 1);
        return;
    }
    size_t lo = 0, hi = r->n; /* the first range starting past offset */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->v[mid].from > offset) hi = mid;
        else lo = mid + 1;
    }
    qrange_t *prev = lo ? &r->v[lo - 1] : NULL, *next = &r->v[lo];
    if (prev && prev->to == offset) {
        prev->to = offset + 1;
        if (prev->to == next->from) { /* it closed the gap */
            prev->to = next->to;
            memmove(next, next + 1, (r->n - lo - 1) * sizeof *next);
            r->n--;
        }
    } else if (next->from == offset + 1) {
        next->from = offset;
    } else {
        ranges_grow(r);
        memmove(&r->v[lo + 1], &r->v[lo], (r->n - lo) * sizeof *r->v);
        r->v[lo] = (qrange_t){offset, offset + 1};
        r->n++;
    }
}

void queue_page_add(queue_t *q, int64_t offset, uint8_t prio, uint64_t body_len)
{
    ranges_insert(&q->paged, offset);
    q->npaged++;
    q->paged_bytes += body_len;
    if (q->opt.ttl_ms >= 0) queue_arm(q); /* read back to expire (queue_run_due) */
    if (q->nlv == 1) return;
    pmap_set(&q->pmap, offset, prio);
    if (!q->lv[prio].npaged++ || offset < q->lv[prio].scan) q->lv[prio].scan = offset;
    if (prio > q->ptop) q->ptop = prio;
}

int queue_page_holds(const queue_t *q, int64_t offset)
{
    return q->nlv == 1 ? qranges_has(&q->paged, offset) : pmap_get(&q->pmap, offset) != QPMAP_NONE;
}

/* The record at offset (on disk, of level l) was taken back or removed. */
static void pmap_take(queue_t *q, int64_t offset, uint8_t l)
{
    pmap_set(&q->pmap, offset, QPMAP_NONE);
    q->lv[l].npaged--;
}

/* Drops the front of the ranges that no longer holds records on disk. */
static void trim_front(queue_t *q)
{
    while (q->paged.n) {
        qrange_t *g = &q->paged.v[0];
        while (g->from < g->to && pmap_get(&q->pmap, g->from) == QPMAP_NONE) g->from++;
        if (g->from < g->to) break;
        memmove(&q->paged.v[0], &q->paged.v[1], (q->paged.n - 1) * sizeof *q->paged.v);
        q->paged.n--;
    }
    pmap_trim(&q->pmap, q->paged.n ? q->paged.v[0].from : INT64_MAX);
}

int queue_page_remove(queue_t *q, int64_t offset, uint64_t body_len)
{
    uint8_t l = q->nlv > 1 ? pmap_get(&q->pmap, offset) : 0;
    if (l == QPMAP_NONE || !qranges_remove(&q->paged, offset)) return 0;
    if (q->nlv > 1) pmap_take(q, offset, l);
    q->npaged--;
    q->paged_bytes -= body_len;
    if (q->nlv > 1) trim_front(q);
    return 1;
}

void queue_page_live(const queue_t *q, qranges_t *out)
{
    for (size_t i = 0; i < q->paged.n; i++) {
        const qrange_t *g = &q->paged.v[i];
        if (q->nlv == 1) {
            qranges_add(out, g->from, g->to);
            continue;
        }
        for (int64_t o = g->from; o < g->to; o++) /* runs of records still on disk */
            if (pmap_get(&q->pmap, o) != QPMAP_NONE) qranges_add(out, o, o + 1);
    }
}

void queue_page_free(queue_t *q)
{
    qranges_free(&q->paged);
    pmap_free(&q->pmap);
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
    int level;        /* take only records of this level (priority queues), -1 any */
} page_ctx_t;

/* The record becomes an entry again. */
static void take_back(page_ctx_t *pc, const batch_rec_t *rec)
{
    queue_t *q = pc->q;
    qrec_hdrs_t h;
    queue_rec_headers(rec, &h);
    uint64_t blen = rec->value_len > 0 ? (uint64_t)rec->value_len : 0;
    q->npaged--;
    q->paged_bytes -= blen;
    qentry_t *e = queue_entry_from_record(q, rec, &h);
    if (q->data->spill) e->offset = -1; /* in memory only from now on, as it was published */
    e->redelivered = rec->offset <= q->page_dmark;
    e->ready_at_ms = 0; /* (one from a delayed exchange was due when it went to disk) */
    queue_place(q, e, 0);
    pc->got++;
}

static void page_record(void *ctx, const batch_rec_t *rec)
{
    page_ctx_t *pc = ctx;
    queue_t *q = pc->q;
    if (!q->paged.n || rec->offset < q->paged.v[0].from) return;
    pc->next = rec->offset + 1;
    if (rec->offset >= q->paged.v[0].to) return; /* between ranges: not ours */
    q->paged.v[0].from = rec->offset + 1;
    if (q->paged.v[0].from == q->paged.v[0].to) {
        memmove(&q->paged.v[0], &q->paged.v[1], (q->paged.n - 1) * sizeof *q->paged.v);
        q->paged.n--;
    }
    if (q->nlv > 1) {
        uint8_t l = pmap_get(&q->pmap, rec->offset);
        if (l == QPMAP_NONE) return; /* taken back before, by its level */
        pmap_take(q, rec->offset, l);
    }
    take_back(pc, rec);
}

/* Priority queues: takes back the records of one level. */
static void level_record(void *ctx, const batch_rec_t *rec)
{
    page_ctx_t *pc = ctx;
    queue_t *q = pc->q;
    if (rec->offset < pc->next || pc->got >= pc->max) return;
    pc->next = rec->offset + 1;
    if (pmap_get(&q->pmap, rec->offset) != (uint8_t)pc->level) return;
    pmap_take(q, rec->offset, (uint8_t)pc->level);
    take_back(pc, rec);
}

/* Reads the whole batches from offset off on (up to 1 MiB, before end)
 * into buf. Returns 1, or 0 after logging why not. */
static int read_paged(queue_t *q, int64_t off, int64_t end, wbuf_t *buf)
{
    wbuf_reset(buf);
    int64_t n = plog_read(q->data->log, off, end, 1 << 20, buf);
    if (n > 0) return 1;
    LOG_E("queue %s: cannot read paged messages at offset %lld (%lld); they stay on disk", q->name, (long long)off,
          (long long)n);
    return 0;
}

size_t queue_page_in(queue_t *q, size_t max)
{
    if (!q->npaged || !q->data) return 0;
    page_ctx_t pc = {q, 0, max, 0, -1};
    wbuf_t buf;
    wbuf_init(&buf);
    int64_t end = plog_end_offset(q->data->log); /* pending records are not readable yet */
    while (pc.got < pc.max && q->paged.n && q->paged.v[0].from < end) {
        int64_t off = q->paged.v[0].from;
        if (!read_paged(q, off, end, &buf)) break;
        queue_each_record(buf.p, buf.len, page_record, &pc);
        if (q->paged.n && q->paged.v[0].from == off) { /* nothing moved: a gap the log does not hold */
            LOG_E("queue %s: paged offset %lld is missing from the log", q->name, (long long)off);
            break;
        }
    }
    wbuf_destroy(&buf);
    if (q->nlv > 1) trim_front(q);
    return pc.got;
}

/* Priority queues: reads back up to max records of level l, oldest first. */
static size_t page_in_level(queue_t *q, uint8_t l, size_t max)
{
    qlevel_t *lv = &q->lv[l];
    page_ctx_t pc = {q, 0, max, 0, l};
    wbuf_t buf;
    wbuf_init(&buf);
    int64_t end = plog_end_offset(q->data->log); /* pending records are not readable yet */
    while (pc.got < max && lv->npaged) {
        int64_t off = pmap_find(&q->pmap, l, lv->scan, end);
        if (off < 0) { /* none readable yet: the rest are still being appended */
            if (lv->scan < end) lv->scan = end;
            break;
        }
        lv->scan = off;
        if (!read_paged(q, off, end, &buf)) break;
        pc.next = off;
        queue_each_record(buf.p, buf.len, level_record, &pc);
        if (pmap_get(&q->pmap, off) == l) { /* nothing moved: a gap the log does not hold */
            LOG_E("queue %s: paged offset %lld is missing from the log", q->name, (long long)off);
            break;
        }
        lv->scan = pc.next;
    }
    wbuf_destroy(&buf);
    trim_front(q);
    return pc.got;
}

void queue_page_refill(queue_t *q)
{
    if (!q->npaged || !q->data) return;
    if (q->nlv == 1) {
        if (q->nready < QUEUE_PAGE_LOW) queue_page_in(q, QUEUE_PAGE_BATCH);
        return;
    }
    /* A batch per level small enough that every level refilled at once
     * stays near one FIFO batch in memory. */
    size_t batch = QUEUE_PAGE_BATCH / q->nlv;
    if (batch < 256) batch = 256;
    while (q->ptop && !q->lv[q->ptop].npaged) q->ptop--;
    uint8_t p = (uint8_t)q->ptop;
    if (!q->lv[p].npaged) return;
    uint32_t top = q->top; /* the highest level in memory */
    while (top && !q->lv[top].head) top--;
    if (p >= top && q->lv[p].n < batch) page_in_level(q, p, batch);
}
