/*
 * Entries on a time (queue_int.h): the expiry heap of ready entries, and
 * the delay wheel of entries waiting for their due time.
 */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "broker/queue_int.h"

/* ---- the heap ---- */

static int64_t hkey(const qheap_t *h, const qentry_t *e) { return h->expiry ? e->expires_ms : e->ready_at_ms; }

/* Only the expiry heap records each entry's index (hidx): entries leave it
 * from the middle whenever they are delivered. The delay wheel's far heap
 * loses its top but at start-up, and writing hidx into every entry a sift
 * passed was a cache miss per level (heap_remove was 11 % of the broker's
 * CPU with 200,000 delayed messages in memory). */
static void heap_set(qheap_t *h, uint32_t i, qhslot_t x)
{
    h->v[i] = x;
    if (h->expiry) x.e->hidx = i + 1;
}

#define HEAP_PAD 3 /* slots before the root: children 4i+1..4i+4 start a line */

/* Returns where the slot at i came to rest. */
static uint32_t heap_up(qheap_t *h, uint32_t i)
{
    qhslot_t x = h->v[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 4;
        if (h->v[p].key <= x.key) break;
        heap_set(h, i, h->v[p]);
        i = p;
    }
    heap_set(h, i, x);
    return i;
}

static void heap_down(qheap_t *h, uint32_t i)
{
    qhslot_t x = h->v[i];
    for (;;) {
        uint32_t c = 4 * i + 1;
        if (c >= h->n) break;
        uint32_t end = c + 4 < h->n ? c + 4 : h->n, m = c;
        for (uint32_t k = c + 1; k < end; k++)
            if (h->v[k].key < h->v[m].key) m = k;
        if (x.key <= h->v[m].key) break;
        heap_set(h, i, h->v[m]);
        i = m;
    }
    heap_set(h, i, x);
}

static void heap_push_key(qheap_t *h, qentry_t *e, int64_t key)
{
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        qhslot_t *base = xaligned_alloc(64, (cap + HEAP_PAD + 1) * sizeof *h->v);
        if (h->n) memcpy(base + HEAP_PAD, h->v, h->n * sizeof *h->v);
        if (h->v) free(h->v - HEAP_PAD);
        h->v = base + HEAP_PAD;
        h->cap = cap;
    }
    h->v[h->n++] = (qhslot_t){key, e};
    h->bytes += queue_entry_mem(e);
    heap_up(h, h->n - 1);
}

void qheap_push(qheap_t *h, qentry_t *e) { heap_push_key(h, e, hkey(h, e)); }

void qheap_remove(qheap_t *h, qentry_t *e)
{
    uint32_t i = 0;
    if (h->expiry) i = e->hidx - 1;
    else
        while (h->v[i].e != e) i++; /* the far heap: its top, but for start-up drops */
    e->hidx = 0;
    h->bytes -= queue_entry_mem(e);
    qhslot_t last = h->v[--h->n];
    if (i == h->n) return;
    heap_set(h, i, last);
    heap_down(h, heap_up(h, i));
}

/* Pops the top (its bytes stay counted). */
static qentry_t *heap_pop(qheap_t *h)
{
    qentry_t *e = h->v[0].e;
    qhslot_t last = h->v[--h->n];
    if (h->n) {
        heap_set(h, 0, last);
        heap_down(h, 0);
    }
    return e;
}

void qheap_free(qheap_t *h)
{
    if (h->v) free(h->v - HEAP_PAD);
    h->v = NULL;
    h->n = h->cap = 0;
}

/* ---- expiry: the ring and the heap ---- */

#define QEXP_RING_KEEP 4096 /* slots an empty ring keeps (64 KiB) */

static uint32_t ring_slot(const qexpiry_t *x, uint32_t pos) { return pos & (x->cap - 1); }

static void ring_set(qexpiry_t *x, uint32_t pos, qhslot_t v)
{
    x->ring[ring_slot(x, pos)] = v;
    v.e->hidx = QEXP_RING | (pos & ~QEXP_RING);
}

/* Room for one more at the tail: the entries close up over the removed
 * ones when at least half the slots are removed ones (each entry moved
 * once per cap / 2 pushes), else the ring doubles (positions stay: no
 * entry is touched). */
static void ring_make_room(qexpiry_t *x)
{
    if (x->cap && x->nring <= x->cap / 2) {
        uint32_t to = x->head;
        for (uint32_t pos = x->head; pos != x->tail; pos++) {
            qhslot_t v = x->ring[ring_slot(x, pos)];
            if (v.e) ring_set(x, to++, v);
        }
        x->tail = to;
        return;
    }
    uint32_t cap = x->cap ? x->cap * 2 : 64;
    if (cap > QEXP_RING / 2) abort(); /* (a billion entries: positions would no longer tell slots apart) */
    qhslot_t *ring = xmalloc(cap * sizeof *ring);
    for (uint32_t pos = x->head; pos != x->tail; pos++) ring[pos & (cap - 1)] = x->ring[ring_slot(x, pos)];
    free(x->ring);
    x->ring = ring;
    x->cap = cap;
}

void qexpiry_push(qexpiry_t *x, qentry_t *e)
{
    if (x->nring && e->expires_ms < x->ring[ring_slot(x, x->tail - 1)].key) {
        x->heap.expiry = 1;
        qheap_push(&x->heap, e);
        return;
    }
    if (!x->nring) x->head = x->tail; /* (only removed ones were left) */
    if (x->tail - x->head == x->cap) ring_make_room(x);
    ring_set(x, x->tail++, (qhslot_t){e->expires_ms, e});
    x->nring++;
}

void qexpiry_remove(qexpiry_t *x, qentry_t *e)
{
    if (!(e->hidx & QEXP_RING)) {
        qheap_remove(&x->heap, e);
        return;
    }
    x->ring[ring_slot(x, e->hidx)].e = NULL; /* (cap <= QEXP_RING / 2: the bits kept tell the slot) */
    e->hidx = 0;
    if (--x->nring) {
        while (!x->ring[ring_slot(x, x->head)].e) x->head++;
    } else if (x->cap > QEXP_RING_KEEP) { /* empty: a burst's ring is not kept */
        free(x->ring);
        x->ring = NULL;
        x->cap = x->head = x->tail = 0;
    }
}

qentry_t *qexpiry_top(const qexpiry_t *x)
{
    const qhslot_t *r = x->nring ? &x->ring[ring_slot(x, x->head)] : NULL;
    if (!x->heap.n) return r ? r->e : NULL;
    if (!r || x->heap.v[0].key <= r->key) return x->heap.v[0].e; /* (a tie: the heap holds requeued, older ones) */
    return r->e;
}

void qexpiry_free(qexpiry_t *x)
{
    free(x->ring);
    qheap_free(&x->heap);
    memset(x, 0, sizeof *x);
}

/* ---- the wheel ---- */

/* The far heap's key: the due time, then the order of pushes (so that
 * those due in the same millisecond keep it, as in the slots). */
#define FAR_SHIFT 16
static int64_t far_time(const qwheel_t *w) { return w->far.v[0].key >> FAR_SHIFT; }

static qwslot_t *slot_of(qwheel_t *w, int64_t t) { return &w->slot[(uint64_t)t % QWHEEL_SLOTS]; }
static qwslot_t *bucket_of(qwheel_t *w, int64_t t) { return &w->bucket[(uint64_t)t / QWHEEL_GRAIN % QWHEEL_BUCKETS]; }

/* The pool of free blocks (one loop: no locking), at most QWBLOCK_POOL of
 * them: a burst's blocks serve the next one. */
#define QWBLOCK_POOL 8192 /* 4 MiB */
_Static_assert(sizeof(qwblock_t) == 512, "a block is 512 bytes");
static qwblock_t *g_blocks;
static uint32_t g_nblocks;

static qwblock_t *block_new(void)
{
    qwblock_t *b = g_blocks;
    if (b) {
        g_blocks = b->next;
        g_nblocks--;
    } else {
        b = xmalloc(sizeof *b);
    }
    b->next = NULL;
    return b;
}

static void block_free(qwblock_t *b)
{
    if (g_nblocks >= QWBLOCK_POOL) {
        free(b);
        return;
    }
    b->next = g_blocks;
    g_blocks = b;
    g_nblocks++;
}

void qwheel_pool_release(void)
{
    while (g_blocks) {
        qwblock_t *b = g_blocks;
        g_blocks = b->next;
        free(b);
    }
    g_nblocks = 0;
}

/* ---- FIFOs of blocks: the slots and the buckets ---- */

/* Appends e (dt: its millisecond in a bucket) to s. */
static void fifo_add(qwslot_t *s, qentry_t *e, uint8_t dt)
{
    qwblock_t *tail = s->tail;
    if (!tail) {
        s->head = s->tail = tail = block_new();
        s->hpos = s->tpos = 0;
    } else if (s->tpos == QWBLOCK_N) {
        tail = tail->next = block_new();
        s->tail = tail;
        s->tpos = 0;
    }
    tail->v[s->tpos] = e;
    tail->dt[s->tpos++] = dt;
}

/* Drops the head block of s (its entries were taken). */
static void fifo_pop_block(qwslot_t *s)
{
    qwblock_t *b = s->head;
    if (b == s->tail) {
        s->head = s->tail = NULL;
        s->hpos = s->tpos = 0;
    } else {
        s->head = b->next;
        s->hpos = 0;
    }
    block_free(b);
}

/* Entries waiting in s, up to the end of its head block. */
static uint32_t head_run(const qwslot_t *s) { return (s->head == s->tail ? s->tpos : QWBLOCK_N) - s->hpos; }

/* Takes e out of s: found, then every later one moves back by one (the
 * FIFO keeps its order). */
static void fifo_remove(qwslot_t *s, const qentry_t *e)
{
    qwblock_t *b = s->head;
    uint32_t i = s->hpos;
    while (b->v[i] != e)
        if (++i == QWBLOCK_N) b = b->next, i = 0;
    for (;;) {
        qwblock_t *nb = b;
        uint32_t ni = i + 1;
        if (ni == QWBLOCK_N) nb = b->next, ni = 0;
        if (!nb || (nb == s->tail && ni == s->tpos)) break;
        b->v[i] = nb->v[ni];
        b->dt[i] = nb->dt[ni];
        b = nb;
        i = ni;
    }
    /* b->v[i] is now the last one: the tail shrinks by one. */
    if (s->head == s->tail && s->tpos - 1 == s->hpos) {
        fifo_pop_block(s);
    } else if (s->tpos == 1) { /* the tail block empties: its predecessor ends the FIFO */
        qwblock_t *p = s->head;
        while (p->next != s->tail) p = p->next;
        block_free(s->tail);
        p->next = NULL;
        s->tail = p;
        s->tpos = QWBLOCK_N;
    } else {
        s->tpos--;
    }
}

static void fifo_each(const qwslot_t *s, void (*fn)(void *ctx, const qentry_t *e), void *ctx)
{
    for (const qwblock_t *b = s->head; b; b = b->next)
        for (uint32_t k = b == s->head ? s->hpos : 0; k < (b == s->tail ? s->tpos : QWBLOCK_N); k++) fn(ctx, b->v[k]);
}

static void slot_add(qwheel_t *w, int64_t t, qentry_t *e)
{
    fifo_add(slot_of(w, t), e, 0);
    w->nw++;
    if (t < w->lo) w->lo = t;
}

/* Opens the bucket that holds w->opened: its entries move into their
 * slots in the order they came (the slots past w->opened hold none yet,
 * so each keeps its FIFO order), and due times up to the bucket's end go
 * into slots from now on. The block is read in order and its times are
 * in it: no entry is touched. */
static void bucket_open(qwheel_t *w)
{
    int64_t start = w->opened & ~(int64_t)(QWHEEL_GRAIN - 1);
    qwslot_t *s = bucket_of(w, w->opened);
    w->opened = start + QWHEEL_GRAIN;
    while (s->head) {
        qwblock_t *b = s->head;
        uint32_t end = b == s->tail ? s->tpos : QWBLOCK_N;
        for (uint32_t i = s->hpos; i < end; i++) slot_add(w, start + b->dt[i], b->v[i]);
        w->nc -= end - s->hpos;
        fifo_pop_block(s);
    }
}

/* ---- the wheel: slots, buckets and the far heap ---- */

/* e, due at t within the window, goes into its slot or its bucket (one
 * already due: with the first slot). */
static void place(qwheel_t *w, int64_t t, qentry_t *e)
{
    if (t < w->base) t = w->base;
    if (t < w->opened) {
        slot_add(w, t, e);
    } else {
        fifo_add(bucket_of(w, t), e, (uint8_t)(t & (QWHEEL_GRAIN - 1)));
        w->nc++;
    }
}

/* The far entries that the window [base, base + QWHEEL_SLOTS) now covers
 * move into it. */
static void pull_far(qwheel_t *w)
{
    while (w->far.n && far_time(w) < w->base + QWHEEL_SLOTS) {
        int64_t t = far_time(w);
        place(w, t, heap_pop(&w->far));
    }
}

/* An empty wheel gives its slots back: a queue that waits now and then
 * (retries) does not keep ~100 KB for it. */
static void wheel_release(qwheel_t *w)
{
    if (!w->slot) return;
    for (uint32_t i = 0; i < QWHEEL_SLOTS; i++)
        while (w->slot[i].head) fifo_pop_block(&w->slot[i]);
    for (uint32_t i = 0; i < QWHEEL_BUCKETS; i++)
        while (w->bucket[i].head) fifo_pop_block(&w->bucket[i]);
    free(w->slot);
    free(w->bucket);
    w->slot = w->bucket = NULL;
    w->nw = w->nc = 0;
}

void qwheel_push(qwheel_t *w, qentry_t *e, int64_t now)
{
    int64_t t = e->ready_at_ms;
    if (!w->slot) {
        w->slot = xcalloc(QWHEEL_SLOTS, sizeof *w->slot);
        w->bucket = xcalloc(QWHEEL_BUCKETS, sizeof *w->bucket);
    }
    /* Empty: the window starts now (not at t, or one due sooner pushed
     * next would wait with t). */
    if (!w->n) w->base = w->lo = w->opened = t < now ? t : now;
    w->n++;
    w->bytes += queue_entry_mem(e);
    if (t >= w->base + QWHEEL_SLOTS) {
        heap_push_key(&w->far, e, (int64_t)((uint64_t)t << FAR_SHIFT | (w->far_pushes++ & 0xffff)));
        return;
    }
    place(w, t, e);
}

int64_t qwheel_next(qwheel_t *w)
{
    for (;;) {
        if (w->nw) { /* every slot time is before w->opened, and some slot in the window holds one */
            while (!slot_of(w, w->lo)->head) w->lo++;
            return w->lo;
        }
        if (!w->nc) break;
        bucket_open(w); /* (may be an empty one: the next is at most the window away) */
    }
    return w->far.n ? far_time(w) : 0;
}

size_t qwheel_pop_due(qwheel_t *w, int64_t now, qentry_t **out, size_t max)
{
    size_t k = 0;
    while (k < max && w->n) {
        if (!w->nw && !w->nc) { /* only far ones: the window jumps to the first */
            if (far_time(w) > now) break;
            w->base = w->lo = w->opened = far_time(w);
            pull_far(w);
            continue;
        }
        int64_t t = qwheel_next(w);
        if (t > now) break;
        qwslot_t *s = slot_of(w, t);
        size_t take = head_run(s);
        if (take > max - k) take = max - k;
        memcpy(out + k, s->head->v + s->hpos, take * sizeof *out);
        k += take;
        s->hpos += (uint32_t)take;
        w->nw -= (uint32_t)take;
        w->n -= (uint32_t)take;
        if (!head_run(s)) fifo_pop_block(s);
        if (s->head) { /* out is full, or the next block follows */
            if (k == max) break;
            continue;
        }
        w->base = w->lo = t; /* the window moves on (one pushed already due comes here) */
        pull_far(w);
    }
    if (!w->n) wheel_release(w);
    return k;
}

qentry_t *qwheel_take_any(qwheel_t *w)
{
    qentry_t *e;
    if (!qwheel_pop_due(w, INT64_MAX, &e, 1)) return NULL;
    w->bytes -= queue_entry_mem(e);
    return e;
}

void qwheel_remove(qwheel_t *w, qentry_t *e)
{
    int64_t t = e->ready_at_ms;
    w->n--;
    w->bytes -= queue_entry_mem(e);
    if (t >= w->base + QWHEEL_SLOTS) {
        qheap_remove(&w->far, e);
    } else {
        if (t < w->base) t = w->base;
        if (t < w->opened) {
            fifo_remove(slot_of(w, t), e);
            w->nw--;
        } else {
            fifo_remove(bucket_of(w, t), e);
            w->nc--;
        }
    }
    if (!w->n) wheel_release(w);
}

void qwheel_each(const qwheel_t *w, void (*fn)(void *ctx, const qentry_t *e), void *ctx)
{
    if (!w->n) return;
    for (uint32_t i = 0; w->slot && i < QWHEEL_SLOTS; i++) fifo_each(&w->slot[i], fn, ctx);
    for (uint32_t i = 0; w->bucket && i < QWHEEL_BUCKETS; i++) fifo_each(&w->bucket[i], fn, ctx);
    for (uint32_t i = 0; i < w->far.n; i++) fn(ctx, w->far.v[i].e);
}

void qwheel_free(qwheel_t *w)
{
    wheel_release(w);
    qheap_free(&w->far);
    memset(w, 0, sizeof *w);
}
