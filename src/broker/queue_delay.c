/*
 * Delayed messages on disk. A delay queue (x-delayed-message) keeps a
 * stored message past its memory budget (delay.memory.bytes) only as (due
 * time, offset, where its record is) in a heap: 32 bytes each, the record
 * is read back when it is due, or sooner, soonest due first, once the
 * budget has room again (queue_run_due asks for that). A queue with retry
 * backoff keeps its returned messages waiting for their next attempt the
 * same way past the same budget, with their delivery counts. A queue that
 * is not stored keeps its delayed messages past the budget in its spill log
 * the same way.
 *
 * Reading back is the cost of this path, so the messages due in one run
 * are read together: sorted by offset, each record is read alone by its
 * position (one pread of ~200 bytes, not of its batch plus a scan of the
 * batch), and neighbours in a segment (a fixed x-delay makes whole runs of
 * consecutive records due together) share one pread. A record whose
 * position is unknown (recovered after a restart) or does not parse is
 * found by reading the batches from its offset on, one pass for all of
 * them. Then the messages are handed on in due order: the due ones to be
 * routed, the others to wait in memory.
 */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "broker/queue_int.h"
#include "store/batch.h"

#define DELAY_SPAN_GAP 4096         /* bytes between two records still read in one pread */
#define DELAY_SPAN_MAX (256u << 10) /* bytes per pread */

/* ---- the heap, by (due time, offset) ---- */

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

void queue_delay_push(queue_t *q, int64_t at, int64_t offset, uint32_t pos, uint32_t len, uint32_t returns)
{
    qdheap_t *h = &q->dpaged;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = xrealloc(h->v, h->cap * sizeof *h->v);
    }
    h->v[h->n++] = (qdelay_t){at, offset, pos, len, returns};
    dheap_up(h, h->n - 1);
    queue_arm(q);
}

static void dheap_pop(qdheap_t *h)
{
    h->v[0] = h->v[--h->n];
    if (h->n) dheap_down(h, 0);
}

/* ---- reading a run back ---- */

typedef struct {
    qdelay_t d;
    qentry_t *e; /* read back, NULL not (yet) */
} qdue_t;

/* Scratch of queue_delay_run, kept across runs (the loop is single-threaded). */
static wbuf_t g_buf;    /* bytes read */
static qdue_t *g_due;   /* the run, in due order */
static qdue_t **g_sorted; /* the same, by offset */
static size_t g_cap;
static int g_running;

void queue_delay_scratch_free(void)
{
    wbuf_destroy(&g_buf);
    free(g_due);
    free(g_sorted);
    g_due = NULL;
    g_sorted = NULL;
    g_cap = 0;
}

static qentry_t *entry_of(queue_t *q, const batch_rec_t *rec)
{
    qrec_hdrs_t h;
    queue_rec_headers(rec, &h);
    qentry_t *e = queue_entry_from_record(q, rec, &h);
    if (q->data->spill) e->offset = -1; /* in memory only from now on */
    return e;
}

static int cmp_due_offset(const void *a, const void *b)
{
    const qdue_t *x = *(qdue_t *const *)a, *y = *(qdue_t *const *)b;
    return x->d.offset < y->d.offset ? -1 : x->d.offset > y->d.offset;
}

/* Whether b's record can be read with the span [from, to) of seg. */
static int joins(const plog_t *log, const qdue_t *b, int64_t seg, int64_t from, int64_t to)
{
    int64_t pos = b->d.pos;
    return b->d.pos != QDELAY_NOPOS && pos >= to && pos - to <= DELAY_SPAN_GAP &&
           pos + (int64_t)b->d.len - from <= DELAY_SPAN_MAX && plog_segment_base(log, b->d.offset) == seg;
}

/* Reads the records of known position (s sorted by offset), neighbours
 * in one pread, and makes their entries. */
static void read_spans(queue_t *q, qdue_t **s, size_t n)
{
    plog_t *log = q->data->log;
    size_t i = 0;
    while (i < n) {
        qdue_t *a = s[i];
        if (a->d.pos == QDELAY_NOPOS) {
            i++;
            continue;
        }
        int64_t seg = plog_segment_base(log, a->d.offset), from = a->d.pos, to = from + (int64_t)a->d.len;
        size_t j = i + 1;
        for (; j < n && joins(log, s[j], seg, from, to); j++) to = (int64_t)s[j]->d.pos + s[j]->d.len;
        wbuf_reset(&g_buf);
        uint8_t *p = wbuf_tail(&g_buf, (size_t)(to - from));
        if (plog_pread(log, a->d.offset, from, (size_t)(to - from), p) == 0) {
            for (size_t k = i; k < j; k++) {
                batch_rec_t rec;
                if (batch_record_parse(p + ((int64_t)s[k]->d.pos - from), s[k]->d.len, &rec) < 0) continue;
                rec.offset = s[k]->d.offset;
                /* The batch's time is not at hand: unknown (0). A forward takes
                 * its own; a queue checks a delayed message's route when due. */
                rec.timestamp = 0;
                s[k]->e = entry_of(q, &rec);
            }
        }
        i = j;
    }
}

typedef struct {
    queue_t *q;
    qdue_t **s;
    size_t k, n;
} scan_ctx_t;

static void scan_record(void *ctx, const batch_rec_t *rec)
{
    scan_ctx_t *sc = ctx;
    while (sc->k < sc->n && (sc->s[sc->k]->e || sc->s[sc->k]->d.offset < rec->offset)) sc->k++;
    if (sc->k < sc->n && sc->s[sc->k]->d.offset == rec->offset) sc->s[sc->k++]->e = entry_of(sc->q, rec);
}

/* Finds the records still not read (s sorted by offset) by reading whole
 * batches from the first of them on: one pass slices out every one that
 * the bytes read cover. */
static void read_scanned(queue_t *q, qdue_t **s, size_t n)
{
    plog_t *log = q->data->log;
    int64_t end = plog_end_offset(log);
    size_t i = 0;
    for (;;) {
        while (i < n && s[i]->e) i++;
        if (i == n) return;
        wbuf_reset(&g_buf);
        int64_t got = plog_read(log, s[i]->d.offset, end, 1 << 20, &g_buf);
        if (got <= 0) {
            i++; /* stays NULL: reported by the caller */
            continue;
        }
        scan_ctx_t sc = {q, s, i, n};
        queue_each_record(g_buf.p, g_buf.len, scan_record, &sc);
        /* Everything below the bytes read that was not found is missing. */
        batch_header_t bh;
        int64_t last = s[i]->d.offset;
        for (size_t pos = 0; pos < g_buf.len && batch_header_parse(g_buf.p + pos, g_buf.len - pos, &bh) == 0;
             pos += batch_size(&bh))
            last = batch_last_offset(&bh);
        while (i < n && (s[i]->e || s[i]->d.offset <= last)) i++;
    }
}

int64_t queue_delay_run(queue_t *q, int64_t now_ms, uint64_t ahead, void (*due)(queue_t *, qentry_t *),
                        void (*back)(queue_t *, qentry_t *))
{
    qdheap_t *h = &q->dpaged;
    if (g_running) return now_ms; /* (cannot happen: due() does not run queues) the next turn */
    size_t m = 0;
    uint64_t took = 0; /* estimated memory of the not-yet-due ones taken */
    while (m < QUEUE_DELAY_RUN && h->n && (h->v[0].at <= now_ms || took < ahead)) { /* due order */
        if (h->v[0].at > now_ms) took += (h->v[0].len ? h->v[0].len : 256) + sizeof(qentry_t) + sizeof(qmsg_t);
        if (m == g_cap) {
            g_cap = g_cap ? g_cap * 2 : 256;
            g_due = xrealloc(g_due, g_cap * sizeof *g_due);
            g_sorted = xrealloc(g_sorted, g_cap * sizeof *g_sorted);
        }
        g_due[m++] = (qdue_t){h->v[0], NULL};
        dheap_pop(h);
    }
    if (!m) return h->n ? h->v[0].at : 0;
    g_running = 1;
    for (size_t i = 0; i < m; i++) g_sorted[i] = &g_due[i];
    qsort(g_sorted, m, sizeof *g_sorted, cmp_due_offset);
    read_spans(q, g_sorted, m);
    read_scanned(q, g_sorted, m);
    for (size_t i = 0; i < m; i++) {
        qentry_t *e = g_due[i].e;
        if (!e) {
            LOG_E("queue %s: cannot read delayed message at offset %lld; it stays on disk", q->name,
                  (long long)g_due[i].d.offset);
            continue;
        }
        if (g_due[i].d.returns) { /* a retry wait: its delivery count comes back with it */
            e->returns = g_due[i].d.returns;
            e->redelivered = 1;
        }
        if (g_due[i].d.at <= now_ms) {
            e->ready_at_ms = 0;
            due(q, e);
        } else {
            e->ready_at_ms = g_due[i].d.at;
            back(q, e);
        }
    }
    g_running = 0;
    if (h->n && h->v[0].at <= now_ms) return now_ms; /* more are due: the next turn */
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
