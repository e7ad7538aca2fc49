/*
 * Dead-lettering: a message leaving a queue (rejected, expired, dropped by
 * a length limit, past its delivery limit) is republished to the queue's
 * dead-letter exchange with RabbitMQ's x-death header.
 *
 * A move is atomic with respect to crashes. When the original is stored,
 * the copy is published only once the original's record is durable, and
 * carries a claim (record header "o" = source queue id, offset); the
 * source records the removal only after every copy is durable. If a crash
 * comes between the two, the claim found at start-up removes the original
 * (queue_drop_claimed), so the message is in exactly one place. A stream
 * (a Kafka topic) is not replayed at start-up, so a copy into one waits
 * for an intent in the source's state log ("m", queue.h) to be durable;
 * the intents of originals still live at start-up say where in which
 * stream to look for claims (stream_scan_claims).
 *
 * Deaths that consumers cause (a reject or nack without requeue, a return
 * past the delivery limit) come in a trickle while the queue is busy. Each
 * copy published at once dirtied the dead-letter queue's log in every
 * group-commit round: one more fdatasync per round for 1 % of the messages
 * (rejecting 1 % cost 30 % more broker CPU per message in the benchmark,
 * docs/benchmarks.md). Their copies are published together, at most
 * DEADLETTER_BATCH_MS after the first of them was ready (or once
 * DEADLETTER_BATCH_MAX wait): one append and one sync for the lot. The
 * original stays in its queue, not deliverable, until its copies are
 * durable, as before.
 *
 * x-death (RabbitMQ 3.10): an array of tables, the latest event first, one
 * per (queue, reason): count, exchange, original-expiration (when the
 * message had one; the expiration property itself is removed), queue,
 * reason, routing-keys, time (seconds). A repeated (queue, reason) event
 * increments its table's count and moves it to the front. The first event
 * also sets x-first-death-exchange, -queue and -reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/ftable.h"
#include "amqp/props.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/slab.h"
#include "broker/deadletter.h"
#include "broker/queue_int.h"
#include "broker/stream.h"
#include "broker/vhost.h"

/* ---- property rewriting ---- */

/* The raw bytes of the table entry ftable_next just read. */
static amqp_bytes_t entry_span(amqp_bytes_t before, amqp_bytes_t after)
{
    return (amqp_bytes_t){before.p, (uint32_t)(after.p - before.p)};
}

static void put_raw_bytes(wbuf_t *w, amqp_bytes_t b)
{
    if (b.len) wbuf_put(w, b.p, b.len);
}

/* Re-encodes props with headers replaced by `headers` (table content) and
 * the given flags cleared, into w. Returns the view of w's bytes from mark. */
static amqp_bytes_t props_replace(amqp_props_t *p, const wbuf_t *headers, uint16_t clear, wbuf_t *w)
{
    p->headers = (amqp_bytes_t){headers->p, (uint32_t)headers->len};
    p->flags = (uint16_t)((p->flags | PROP_HEADERS) & ~clear);
    size_t mark = w->len;
    amqp_props_encode(w, p);
    return (amqp_bytes_t){w->p + mark, (uint32_t)(w->len - mark)};
}

amqp_bytes_t deadletter_props_with_count(amqp_bytes_t props, uint32_t count, wbuf_t *w)
{
    amqp_props_t p;
    if (amqp_props_decode(props, &p) < 0) return props;
    wbuf_t h;
    wbuf_init(&h);
    ftable_iter_t it = {(p.flags & PROP_HEADERS) ? p.headers : (amqp_bytes_t){NULL, 0}};
    amqp_bytes_t name, before = it.rest;
    fvalue_t v;
    while (ftable_next(&it, &name, &v)) {
        if (!amqp_bytes_eq(name, "x-delivery-count")) put_raw_bytes(&h, entry_span(before, it.rest));
        before = it.rest;
    }
    ftable_put_name(&h, "x-delivery-count");
    ftable_put_i64(&h, count);
    wbuf_reset(w);
    amqp_bytes_t out = props_replace(&p, &h, 0, w);
    wbuf_destroy(&h);
    return out;
}

typedef struct {
    const char *reason;
    amqp_bytes_t queue, exchange, key, expiration;
    amqp_bytes_t cc; /* CC header array content, or empty */
    int64_t now_s;
} death_t;

static void put_str(wbuf_t *w, const char *name, amqp_bytes_t s)
{
    ftable_put_name(w, name);
    ftable_put_longstr(w, s.p, s.len);
}

/* A new x-death table for d (fields in name order, as RabbitMQ sorts them). */
static void put_new_death(wbuf_t *w, const death_t *d)
{
    size_t t = ftable_put_table_begin(w);
    ftable_put_name(w, "count");
    ftable_put_i64(w, 1);
    put_str(w, "exchange", d->exchange);
    if (d->expiration.p) put_str(w, "original-expiration", d->expiration);
    put_str(w, "queue", d->queue);
    put_str(w, "reason", amqp_cstr(d->reason));
    ftable_put_name(w, "routing-keys");
    size_t a = ftable_put_array_begin(w);
    ftable_put_longstr(w, d->key.p, d->key.len);
    ftable_iter_t it = {d->cc};
    fvalue_t v;
    while (farray_next(&it, &v))
        if (v.type == FV_LONGSTR) ftable_put_longstr(w, v.v.str.p, v.v.str.len);
    ftable_end(w, a);
    ftable_put_name(w, "time");
    ftable_put_timestamp(w, (uint64_t)d->now_s);
    ftable_end(w, t);
}

/* An existing x-death table with its count incremented. */
static void put_counted_death(wbuf_t *w, amqp_bytes_t table)
{
    size_t t = ftable_put_table_begin(w);
    ftable_iter_t it = {table};
    amqp_bytes_t name, before = it.rest;
    fvalue_t v;
    while (ftable_next(&it, &name, &v)) {
        if (amqp_bytes_eq(name, "count")) {
            ftable_put_name(w, "count");
            ftable_put_i64(w, (v.type == FV_I64 || v.type == FV_I32 || v.type == FV_U32) ? v.v.i + 1 : 1);
        } else {
            put_raw_bytes(w, entry_span(before, it.rest));
        }
        before = it.rest;
    }
    ftable_end(w, t);
}

static int death_matches(amqp_bytes_t table, const death_t *d)
{
    amqp_bytes_t q, r;
    return ftable_get_str(table, "queue", &q) == 1 && ftable_get_str(table, "reason", &r) == 1 &&
           q.len == d->queue.len && (!q.len || !memcmp(q.p, d->queue.p, q.len)) && amqp_bytes_eq(r, d->reason);
}

/* Builds the dead-letter copy's headers table content into h (drop_cc:
 * a dead-letter routing key replaces the CC keys). */
static void build_headers(wbuf_t *h, amqp_bytes_t headers, const death_t *d, int drop_cc)
{
    ftable_iter_t it = {headers};
    amqp_bytes_t name, before = it.rest, deaths = {NULL, 0};
    fvalue_t v;
    int have_first = 0;
    while (ftable_next(&it, &name, &v)) {
        if (amqp_bytes_eq(name, "x-death") && v.type == FV_ARRAY) deaths = v.v.array;
        else if (!(drop_cc && amqp_bytes_eq(name, "CC"))) put_raw_bytes(h, entry_span(before, it.rest));
        if (amqp_bytes_eq(name, "x-first-death-reason")) have_first = 1;
        before = it.rest;
    }
    if (!have_first && !deaths.p) {
        put_str(h, "x-first-death-exchange", d->exchange);
        put_str(h, "x-first-death-queue", d->queue);
        put_str(h, "x-first-death-reason", amqp_cstr(d->reason));
    }
    ftable_put_name(h, "x-death");
    size_t a = ftable_put_array_begin(h);
    /* The matching event first (counted), or a new one; then the others. */
    int found = 0;
    ftable_iter_t ai = {deaths};
    while (!found && farray_next(&ai, &v))
        if (v.type == FV_TABLE && death_matches(v.v.table, d)) {
            put_counted_death(h, v.v.table);
            found = 1;
        }
    if (!found) put_new_death(h, d);
    /* The others follow in reverse order: RabbitMQ 3.10 regroups them that
     * way, and clients comparing whole headers see its order. */
    amqp_bytes_t *spans = NULL; /* as many as the array holds: none is dropped */
    size_t ns = 0, cap = 0;
    ai = (ftable_iter_t){deaths};
    amqp_bytes_t vb = ai.rest;
    int skipped = 0;
    while (farray_next(&ai, &v)) {
        if (found && !skipped && v.type == FV_TABLE && death_matches(v.v.table, d)) {
            skipped = 1;
        } else {
            if (ns == cap) spans = xrealloc(spans, (cap = cap ? cap * 2 : 16) * sizeof *spans);
            spans[ns++] = entry_span(vb, ai.rest);
        }
        vb = ai.rest;
    }
    while (ns) put_raw_bytes(h, spans[--ns]);
    free(spans);
    ftable_end(h, a);
}

/* Scratch for a copy's headers and properties, kept across copies (the
 * copy owns what was built in them once qmsg_new returned; growing fresh
 * buffers for each copy was a visible share of malloc in ttl-expire). */
static wbuf_t g_hbuf, g_pbuf;

/* What making a copy found out that routing it needs, so that route_copy
 * does not look it up again in the copy's headers (ttl-expire: 5 % of the
 * broker's CPU went to those lookups). */
typedef struct {
    amqp_bytes_t cc;  /* the CC keys it is also routed by, {NULL, 0} none */
    int first_death;  /* it had no x-death: the copy's one death is in q, for
                       * reason (a cycle is a target that is q, unless
                       * rejected) */
    int rejected;
} copy_info_t;

/* The dead-letter copy of m leaving q for reason; *ci for route_copy. */
static qmsg_t *make_copy(queue_t *q, const qmsg_t *m, const char *reason, amqp_bytes_t *headers_out,
                         copy_info_t *ci)
{
    amqp_props_t p;
    if (amqp_props_decode(qmsg_props(m), &p) < 0) memset(&p, 0, sizeof p);
    int64_t now_ms = clock_wall_ms(); /* one reading for the x-death time and the arrival (2.7 % of the CPU as two) */
    death_t d = {.reason = reason, .queue = queue_name(q), .exchange = qmsg_exchange(m), .key = qmsg_key(m),
                 .now_s = now_ms / 1000};
    if (p.flags & PROP_EXPIRATION) d.expiration = p.expiration;
    amqp_bytes_t old_headers = (p.flags & PROP_HEADERS) ? p.headers : (amqp_bytes_t){NULL, 0};
    fvalue_t cc;
    if (old_headers.p && ftable_get(old_headers, "CC", &cc) == 1 && cc.type == FV_ARRAY) d.cc = cc.v.array;
    ci->cc = q->opt.dlrk.p ? (amqp_bytes_t){NULL, 0} : d.cc; /* (a routing key replaces them) */
    ci->first_death = !old_headers.p || ftable_get(old_headers, "x-death", &cc) != 1;
    ci->rejected = !strcmp(reason, "rejected");
    wbuf_reset(&g_hbuf);
    wbuf_reset(&g_pbuf);
    build_headers(&g_hbuf, old_headers, &d, q->opt.dlrk.p != NULL);
    amqp_bytes_t props = props_replace(&p, &g_hbuf, PROP_EXPIRATION, &g_pbuf);
    amqp_bytes_t key = q->opt.dlrk.p ? q->opt.dlrk : qmsg_key(m);
    qmsg_t *c = qmsg_new_room(q->opt.dlx, key, props, m->body_len, m->body_len, now_ms);
    if (m->body_len) memcpy(qmsg_body(c), qmsg_body((qmsg_t *)m), m->body_len);
    c->persistent = m->persistent;
    /* The headers for routing (a headers exchange as DLX) are in c. */
    if (amqp_props_headers(qmsg_props(c), headers_out) < 0) *headers_out = (amqp_bytes_t){NULL, 0};
    return c;
}

/* RabbitMQ's cycle rule: a copy is not delivered to a queue it already
 * died in unless a rejection happened along the way (an automatic loop of
 * expiries or overflows would spin forever). */
static int forms_cycle(amqp_bytes_t headers, queue_t *target)
{
    fvalue_t v;
    if (ftable_get(headers, "x-death", &v) != 1 || v.type != FV_ARRAY) return 0;
    ftable_iter_t it = {v.v.array};
    int seen = 0;
    amqp_bytes_t tname = queue_name(target);
    while (farray_next(&it, &v)) {
        if (v.type != FV_TABLE) continue;
        amqp_bytes_t qn, r;
        if (ftable_get_str(v.v.table, "reason", &r) == 1 && amqp_bytes_eq(r, "rejected")) return 0;
        if (ftable_get_str(v.v.table, "queue", &qn) == 1 && qn.len == tname.len && !memcmp(qn.p, tname.p, qn.len))
            seen = 1;
    }
    return seen;
}

/* ---- moves ---- */

typedef struct {
    queue_t *q; /* pinned */
    uint32_t epoch;
    int64_t target;
} dlpart_t;

typedef struct dlmove {
    struct dlmove *prev, *next; /* in g_moves */
    queue_t *src;
    qentry_t *e;         /* the original (QE_MOVING in src) */
    char reason[16];     /* "": a delay queue's forward, no x-death */
    int stage;           /* 0: waiting for the original's record, 1: for the copies, 2: for the intent */
    dlpart_t *parts;     /* &part0 for a single copy */
    dlpart_t part0;
    uint32_t nparts, done;
    int failed;
    pwaiter_t w;
    /* A redrive (deadletter_redrive): straight into the queue called to. */
    uint8_t *to;         /* owned; NULL for other moves */
    uint32_t to_len;
    int refused;         /* the target is gone or refused the copy: nothing was stored */
    void (*on_end)(void *ctx, int result);
    void *end_ctx;
    struct dlmove *held_next; /* in g_held: copies to publish with the next batch */
    /* Copies into streams, published once the intent is durable. */
    queue_t **streams;   /* pinned until published */
    uint32_t nstreams;
    qmsg_t *copy;        /* one reference while they wait */
    uint8_t *intent;     /* the intent record's value (owned), kept for snapshots; NULL none */
    uint32_t intent_len;
    uint8_t cls;         /* base/slab class of its allocation, 0 malloc */
} dlmove_t;

static dlmove_t *g_moves;
static xroute_t g_route;
static int g_depth; /* nesting: a copy that overflows its target dead-letters again */

/* Ended moves kept for the next ones (linked by next): expiries and
 * delayed messages start one per message, and allocating each was a
 * visible share of the broker's CPU. Beyond the pool they come from the
 * slab: a burst of expiries starts tens of thousands at once, and growing
 * the heap for them page by page was a quarter of the broker's page
 * faults in the ttl-expire benchmark. */
#define DL_POOL_MAX 4096
static dlmove_t *g_pool;
static uint32_t g_npool;

static dlmove_t *move_new(queue_t *q, qentry_t *e)
{
    dlmove_t *mv = g_pool;
    uint8_t cls;
    if (mv) {
        mem_unpoison(mv, sizeof *mv);
        g_pool = mv->next;
        g_npool--;
        cls = mv->cls;
    } else {
        mv = slab_alloc(sizeof *mv, &cls);
    }
    memset(mv, 0, sizeof *mv);
    mv->cls = cls;
    mv->src = q;
    mv->e = e;
    return mv;
}

static void dlmove_drop(dlmove_t *mv)
{
    if (mv->cls) slab_free(mv);
    else free(mv);
}

static void move_free(dlmove_t *mv)
{
    if (mv->prev) mv->prev->next = mv->next;
    else g_moves = mv->next;
    if (mv->next) mv->next->prev = mv->prev;
    for (uint32_t i = mv->done; i < mv->nparts; i++) queue_unpin(mv->parts[i].q);
    if (mv->parts != &mv->part0) free(mv->parts);
    for (uint32_t i = 0; i < mv->nstreams; i++) queue_unpin(mv->streams[i]);
    free(mv->streams);
    if (mv->copy) qmsg_unref(mv->copy);
    free(mv->intent);
    free(mv->to);
    if (g_npool < DL_POOL_MAX) {
        mv->next = g_pool;
        g_pool = mv;
        g_npool++;
        mem_poison(mv, sizeof *mv);
        mem_unpoison(&mv->next, sizeof mv->next);
        mem_unpoison(&mv->cls, sizeof mv->cls);
    } else {
        dlmove_drop(mv);
    }
}

/* A stored copy in t to wait for (t pinned until the move is past it). */
static void add_part(dlmove_t *mv, queue_t *t, uint32_t epoch, int64_t target)
{
    queue_pin(t);
    if (!mv->nparts) {
        mv->parts = &mv->part0;
    } else if (mv->parts == &mv->part0) {
        mv->parts = xmalloc(2 * sizeof *mv->parts);
        mv->parts[0] = mv->part0;
    } else {
        mv->parts = xrealloc(mv->parts, (mv->nparts + 1) * sizeof *mv->parts);
    }
    mv->parts[mv->nparts++] = (dlpart_t){t, epoch, target};
}

/* Routes c through exchange xname into its targets; mv (if not NULL) gets
 * the stored copies to wait for. */
static void route_copy(queue_t *q, amqp_bytes_t xname, qmsg_t *c, amqp_bytes_t headers, dlmove_t *mv,
                       const copy_info_t *ci)
{
    vhost_t *v = q->b->vhost;
    exchange_t *ex = v ? xregistry_find(vhost_exchanges(v), xname) : NULL;
    if (!ex || g_depth > 8) return; /* a missing exchange drops the message, as RabbitMQ */
    /* Routed by its key and, as RabbitMQ does, by the keys of a CC header
     * (kept only when no dead-letter routing key replaced them). */
    queue_t *first[8], **targets = first; /* on the heap only past 8 */
    size_t n = 0, cap = 8;
    fvalue_t cc;
    ftable_iter_t cci = {{NULL, 0}};
    if (ci) cci.rest = ci->cc;
    else if (ftable_get(headers, "CC", &cc) == 1 && cc.type == FV_ARRAY) cci.rest = cc.v.array;
    amqp_bytes_t key = qmsg_key(c);
    for (;;) {
        g_route.n = 0;
        xregistry_route(vhost_exchanges(v), ex, key, headers, &g_route);
        for (size_t i = 0; i < g_route.n; i++) { /* routing scratch is reused by nested moves: copy */
            size_t k = 0;
            while (k < n && targets[k] != g_route.q[i]) k++;
            if (k < n) continue;
            if (n == cap) {
                queue_t **more = xmalloc((cap *= 2) * sizeof *targets);
                memcpy(more, targets, n * sizeof *targets);
                if (targets != first) free(targets);
                targets = more;
            }
            targets[n++] = g_route.q[i];
        }
        fvalue_t kv;
        do {
            if (!farray_next(&cci, &kv)) goto routed;
        } while (kv.type != FV_LONGSTR);
        key = kv.v.str;
    }
routed:
    if (!n) {
        if (targets != first) free(targets);
        return;
    }
    g_depth++;
    for (size_t i = 0; i < n; i++) {
        queue_t *t = targets[i];
        int forwarded = mv && !mv->reason[0]; /* from a delay queue: no death, no cycle */
        if (!forwarded && (ci && ci->first_death ? !ci->rejected && t == q : forms_cycle(headers, t))) continue;
        if (mv && c->origin_off >= 0 && (queue_flags(t) & QF_STREAM)) { /* after the intent */
            queue_pin(t);
            mv->streams = xrealloc(mv->streams, (mv->nstreams + 1) * sizeof *mv->streams);
            mv->streams[mv->nstreams++] = t;
            continue;
        }
        uint32_t epoch = 0;
        int64_t target = 0;
        int rc = queue_publish(t, c, &epoch, &target);
        if (rc == QP_WAIT && mv) {
            add_part(mv, t, epoch, target);
        } else if (rc < 0 && mv) {
            mv->failed = 1;
        }
    }
    g_depth--;
    if (targets != first) free(targets);
}

static void on_move_wait(pwaiter_t *w, int status);
static void move_publish(dlmove_t *mv);

/* Waits for the copies; ends the move once all are durable (or failed). */
static void move_advance(dlmove_t *mv)
{
    while (mv->done < mv->nparts) {
        dlpart_t *p = &mv->parts[mv->done];
        int st = queue_publish_state(p->q, p->epoch, p->target);
        if (st == 0) {
            mv->w.cb = on_move_wait;
            mv->w.ctx = mv;
            if (queue_wait(p->q, &mv->w, p->target) == 0) return;
            st = queue_publish_state(p->q, p->epoch, p->target);
            if (st == 0) st = -1; /* the log failed */
        }
        if (st < 0) mv->failed = 1;
        queue_unpin(p->q);
        mv->done++;
    }
    qentry_t *e = mv->e;
    int ok = !mv->failed;
    int back = mv->refused && !mv->nparts && !mv->failed; /* no copy exists: e may go back */
    void (*on_end)(void *, int) = mv->on_end;
    void *end_ctx = mv->end_ctx;
    move_free(mv);
    if (back && !e->q->deleted) {
        queue_t *q = e->q;
        queue_unplace(q, e);
        queue_place(q, e, 0);
        queue_kick(q);
    } else {
        queue_moved(e, ok);
    }
    if (on_end) on_end(end_ctx, back ? 2 : ok);
}

/* A redrive's copy: the message as it is (x-death kept), published through
 * the default exchange straight into the target queue, claiming e. */
static void redrive_publish(dlmove_t *mv)
{
    queue_t *q = mv->src;
    qentry_t *e = mv->e;
    amqp_bytes_t to = {mv->to, mv->to_len};
    vhost_t *v = q->b->vhost;
    queue_t *t = v && !q->deleted ? vhost_queue_find(v, to) : NULL;
    if (!t || t == q || queue_is_deleted(t) || (queue_flags(t) & QF_STREAM)) {
        mv->refused = 1;
        move_advance(mv);
        return;
    }
    const qmsg_t *m = e->m;
    qmsg_t *c = qmsg_new((amqp_bytes_t){NULL, 0}, to, qmsg_props(m), m->body_len);
    if (m->body_len) memcpy(qmsg_body(c), qmsg_body((qmsg_t *)m), m->body_len);
    c->persistent = m->persistent;
    if (e->offset >= 0 && queue_is_stored(q)) {
        c->origin_qid = queue_id(q);
        c->origin_off = e->offset;
    }
    uint32_t epoch = 0;
    int64_t target = 0;
    int rc = queue_publish(t, c, &epoch, &target);
    if (rc == QP_WAIT) {
        add_part(mv, t, epoch, target);
    } else if (rc == QP_REJECTED) {
        mv->refused = 1;
    } else if (rc < 0) {
        mv->failed = 1;
    }
    qmsg_unref(c);
    move_advance(mv);
}

/* The intent is durable (ok) or cannot be: publish the copies into the
 * streams, or fail the move (the original stays; copies stored elsewhere
 * claim it back at the next start). */
static void publish_streams(dlmove_t *mv, int ok)
{
    mv->stage = 1;
    if (!ok) mv->failed = 1;
    for (uint32_t i = 0; i < mv->nstreams; i++) {
        queue_t *t = mv->streams[i];
        uint32_t epoch = 0;
        int64_t target = 0;
        int rc = ok && !queue_is_deleted(t) ? queue_publish(t, mv->copy, &epoch, &target) : QP_DONE;
        if (rc == QP_WAIT) add_part(mv, t, epoch, target);
        else if (rc < 0) mv->failed = 1;
        queue_unpin(t);
    }
    mv->nstreams = 0;
    qmsg_unref(mv->copy);
    mv->copy = NULL;
    move_advance(mv);
}

/* Records in the source's state log where the copies into streams will
 * be, then waits for that record to be durable. */
static void write_intent(dlmove_t *mv)
{
    queue_t *q = mv->src;
    mv->intent_len = 24 * mv->nstreams;
    mv->intent = xmalloc(mv->intent_len);
    for (uint32_t i = 0; i < mv->nstreams; i++) {
        wbuf_put_be64(mv->intent + 24 * i, (uint64_t)mv->e->offset);
        wbuf_put_be64(mv->intent + 24 * i + 8, queue_id(mv->streams[i]));
        wbuf_put_be64(mv->intent + 24 * i + 16, (uint64_t)stream_next_offset(mv->streams[i]));
    }
    queue_state_append(q, "m", mv->intent, mv->intent_len); /* appended now, not at the turn's flush */
    mv->stage = 2;
    mv->w.cb = on_move_wait;
    mv->w.ctx = mv;
    mv->w.target = partition_end_offset(q->state);
    if (!q->state->failed && partition_wait(q->state, &mv->w) == 0) return;
    publish_streams(mv, !q->state->failed);
}

void deadletter_restate_intents(queue_t *q)
{
    for (dlmove_t *mv = g_moves; mv; mv = mv->next)
        if (mv->src == q && mv->intent) queue_state_append(q, "m", mv->intent, mv->intent_len);
}

/* The original is durable (or will never be): publish the copies. */
static void move_publish_now(dlmove_t *mv)
{
    mv->stage = 1;
    if (mv->to) {
        redrive_publish(mv);
        return;
    }
    queue_t *q = mv->src;
    qentry_t *e = mv->e;
    amqp_bytes_t headers, xname = q->opt.dlx;
    copy_info_t info, *ci = NULL;
    qmsg_t *c;
    if (mv->reason[0]) {
        c = make_copy(q, e->m, mv->reason, &headers, &info);
        ci = &info;
    } else { /* a delay queue's message, routed as published */
        qmsg_t *m = e->m;
        if (m->refs == 1) {
            /* Only e holds it (its record is written): it becomes the copy
             * as a fresh one would be, without a second allocation and
             * copy of the body. e keeps its own due time. */
            c = qmsg_ref(m);
            c->ts_ms = clock_wall_ms();
            c->ready_at_ms = 0;
        } else {
            c = qmsg_new(qmsg_exchange(m), qmsg_key(m), qmsg_props(m), m->body_len);
            if (m->body_len) memcpy(qmsg_body(c), qmsg_body(m), m->body_len);
            c->persistent = m->persistent;
        }
        /* Its per-message TTL counts in the queues it is routed to, from
         * now (as the plugin's delayed messages): from the property, since
         * a message read back from disk has it only there. */
        c->expiration_ms = amqp_props_expiration_ms(qmsg_props(c));
        if (amqp_props_headers(qmsg_props(c), &headers) < 0) headers = (amqp_bytes_t){NULL, 0};
        xname = q->fwd;
    }
    if (e->offset >= 0 && queue_is_stored(q)) {
        c->origin_qid = queue_id(q);
        c->origin_off = e->offset;
    }
    if (!q->deleted) route_copy(q, xname, c, headers, mv, ci);
    if (mv->nstreams) {
        mv->copy = c;
        write_intent(mv);
        return;
    }
    qmsg_unref(c);
    move_advance(mv);
}

/* ---- batches of consumer-caused deaths ---- */

static struct {
    dlmove_t *head, *tail; /* FIFO: copies keep their order */
    uint32_t n;
    uv_timer_t timer;
    int timer_on; /* timer initialized (closed at shutdown) */
} g_held;

void deadletter_publish_held(void)
{
    dlmove_t *mv = g_held.head;
    g_held.head = g_held.tail = NULL;
    g_held.n = 0;
    if (g_held.timer_on) uv_timer_stop(&g_held.timer);
    while (mv) {
        dlmove_t *next = mv->held_next;
        mv->held_next = NULL;
        move_publish_now(mv);
        mv = next;
    }
}

static void on_batch_due(uv_timer_t *t)
{
    (void)t;
    deadletter_publish_held();
}

/* Publishes mv's copies now, or with the batch: consumer-caused deaths, and
 * any move while a batch waits (so that copies keep their order). */
static void move_publish(dlmove_t *mv)
{
    int settled = !strcmp(mv->reason, "rejected") || !strcmp(mv->reason, "delivery_limit");
    if (!settled && !g_held.head) {
        move_publish_now(mv);
        return;
    }
    if (g_held.tail) g_held.tail->held_next = mv;
    else g_held.head = mv;
    g_held.tail = mv;
    if (++g_held.n >= DEADLETTER_BATCH_MAX) {
        deadletter_publish_held();
    } else if (g_held.n == 1) {
        if (!g_held.timer_on) {
            uv_timer_init(broker_loop(mv->src->b), &g_held.timer);
            g_held.timer_on = 1;
        }
        uv_timer_start(&g_held.timer, on_batch_due, DEADLETTER_BATCH_MS, 0);
    }
}

static void on_move_wait(pwaiter_t *w, int status)
{
    (void)status;
    dlmove_t *mv = w->ctx;
    if (mv->stage == 0) move_publish(mv);
    else if (mv->stage == 2) publish_streams(mv, status >= 0 && mv->src->state && !mv->src->state->failed);
    else move_advance(mv);
}

void deadletter_forward(queue_t *q, qentry_t *e) { deadletter_move(q, e, ""); }

static void move_start(dlmove_t *mv);

void deadletter_move(queue_t *q, qentry_t *e, const char *reason)
{
    dlmove_t *mv = move_new(q, e);
    size_t n = strlen(reason); /* (snprintf here was 2 % of the delayed benchmark's CPU) */
    if (n >= sizeof mv->reason) n = sizeof mv->reason - 1;
    memcpy(mv->reason, reason, n); /* move_new zeroed the rest */
    move_start(mv);
}

void deadletter_redrive(queue_t *q, qentry_t *e, amqp_bytes_t to, void (*done)(void *ctx, int result), void *ctx)
{
    dlmove_t *mv = move_new(q, e);
    mv->to = xmalloc(to.len + 1);
    if (to.len) memcpy(mv->to, to.p, to.len);
    mv->to_len = to.len;
    mv->on_end = done;
    mv->end_ctx = ctx;
    move_start(mv);
}

static void move_start(dlmove_t *mv)
{
    queue_t *q = mv->src;
    qentry_t *e = mv->e;
    mv->next = g_moves;
    if (g_moves) g_moves->prev = mv;
    g_moves = mv;
    /* A claim may only name a durable record: an offset a crash took
     * could be reused by another message. */
    if (e->offset >= 0 && queue_is_stored(q) && plog_durable_offset(q->data->log) <= e->offset) {
        mv->w.cb = on_move_wait;
        mv->w.ctx = mv;
        if (queue_wait(q, &mv->w, e->offset + 1) == 0) return;
    }
    move_publish(mv);
}

void deadletter_copy(queue_t *q, qmsg_t *m, const char *reason)
{
    amqp_bytes_t headers;
    copy_info_t ci;
    qmsg_t *c = make_copy(q, m, reason, &headers, &ci);
    route_copy(q, q->opt.dlx, c, headers, NULL, &ci);
    qmsg_unref(c);
}

void deadletter_shutdown(void)
{
    /* The originals stay in their queues' logs (not acked); any copy
     * already stored claims them back at the next start. Held moves are
     * in g_moves too: their copies were never published. */
    g_held.head = g_held.tail = NULL;
    g_held.n = 0;
    if (g_held.timer_on) {
        uv_close((uv_handle_t *)&g_held.timer, NULL);
        g_held.timer_on = 0;
    }
    while (g_moves) {
        dlmove_t *mv = g_moves;
        pwaiter_cancel(&mv->w);
        qentry_t *e = mv->e;
        void (*on_end)(void *, int) = mv->on_end;
        void *end_ctx = mv->end_ctx;
        move_free(mv);
        queue_moved(e, -1);
        if (on_end) on_end(end_ctx, -1);
    }
    xroute_destroy(&g_route);
    wbuf_destroy(&g_hbuf);
    wbuf_destroy(&g_pbuf);
    while (g_pool) {
        dlmove_t *mv = g_pool;
        g_pool = mv->next;
        mem_unpoison(mv, sizeof *mv);
        dlmove_drop(mv);
    }
    g_npool = 0;
}
