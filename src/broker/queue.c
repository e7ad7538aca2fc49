/* AMQP queues over the store: see queue.h for the model and log formats. */
#include "broker/queue.h"

#include <stdlib.h>
#include <string.h>

#include "amqp/ftable.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/internal.h"
#include "store/batch.h"
#include "store/deleter.h"

#define QUEUE_DMARK_AHEAD 256             /* delivered-mark records cover this many offsets ahead */
#define QUEUE_SNAPSHOT_BYTES (8 << 20)    /* state log bytes after which a snapshot is written */

/* A stored message whose record is not appended yet (coalesced per loop turn). */
typedef struct {
    qentry_t *e; /* NULL once the entry was freed before the flush */
    qmsg_t *m;   /* one reference, kept until the record is written */
} qpend_t;

struct queue {
    broker_t *b;
    char *name;              /* owned, NUL-terminated (may contain other bytes: len below) */
    uint32_t name_len;
    uint64_t id;
    unsigned flags;          /* QF_* */
    uint8_t *args;           /* arguments table content, owned */
    uint32_t args_len;
    char *dir;               /* "<data>/queues/<id>", owned; NULL for non-durable */
    partition_t *data, *state; /* durable queues: the two logs */
    void *owner;             /* exclusive owner */
    int64_t ttl_ms;          /* x-message-ttl, -1 none */
    int64_t expires_ms;      /* x-expires, -1 none */
    int64_t last_used_ms;

    qentry_t *ready_head, *ready_tail; /* sorted by seq */
    qentry_t *held_head;     /* handed to consumers, not yet acked/requeued; unordered */
    uint32_t nready, nheld;
    uint64_t next_seq;
    qconsumer_t *consumers;  /* ring (circular doubly linked); the next to serve */
    uint32_t nconsumers;
    int had_consumer;
    int dispatching;
    int deleted;

    /* pending writes */
    qpend_t *pend;
    size_t npend, cappend;
    int64_t *acks;
    size_t nacks, capacks;
    int64_t dmark;           /* delivered mark recorded (or pending), ahead of the deliveries */
    int64_t delivered_max;   /* highest stored offset handed out, -1 none (exact) */
    int dmark_dirty;
    int64_t snap_offset;     /* state log offset of the last snapshot written, -1 none */
    int64_t snap_size;       /* state log bytes (partition_size_bytes) after the last snapshot, 0 none */
    queue_t *dirty_next;     /* in b->dirty_queues */
    uint32_t pins;           /* publisher confirms waiting on this queue */
    uint32_t epoch;          /* bumped by each failed append of pending messages */
    int64_t fail_at[16];     /* fail_at[e % 16]: first offset lost when epoch e failed */
    int dirty;
};

static int is_stored_queue(const queue_t *q) { return (q->flags & QF_DURABLE) && q->data && !q->deleted; }

/* ---- messages ---- */

qmsg_t *qmsg_grow(qmsg_t *m, uint64_t body_cap)
{
    size_t n = (size_t)m->exchange_len + m->key_len + m->props_len + body_cap;
    return xrealloc(m, sizeof *m + n);
}

qmsg_t *qmsg_new(amqp_bytes_t exchange, amqp_bytes_t key, amqp_bytes_t props, uint64_t body_len)
{
    return qmsg_new_room(exchange, key, props, body_len, body_len);
}

qmsg_t *qmsg_new_room(amqp_bytes_t exchange, amqp_bytes_t key, amqp_bytes_t props, uint64_t body_len,
                      uint64_t body_cap)
{
    size_t n = (size_t)exchange.len + key.len + props.len + body_cap;
    qmsg_t *m = xmalloc(sizeof *m + n);
    m->refs = 1;
    m->persistent = 0;
    m->exchange_len = (uint8_t)exchange.len;
    m->key_len = (uint8_t)key.len;
    m->props_len = props.len;
    m->body_len = body_len;
    m->ts_ms = clock_wall_ms();
    m->expiration_ms = -1;
    uint8_t *p = m->data;
    if (exchange.len) memcpy(p, exchange.p, exchange.len);
    p += exchange.len;
    if (key.len) memcpy(p, key.p, key.len);
    p += key.len;
    if (props.len) memcpy(p, props.p, props.len);
    return m;
}

/* Bytes of messages freed since queue_take_freed_bytes() last read it. */
static uint64_t g_freed_bytes;

void qmsg_unref(qmsg_t *m)
{
    if (m && --m->refs == 0) {
        g_freed_bytes += sizeof *m + m->exchange_len + m->key_len + m->props_len + m->body_len;
        free(m);
    }
}

uint64_t queue_take_freed_bytes(void)
{
    uint64_t n = g_freed_bytes;
    g_freed_bytes = 0;
    return n;
}

/* ---- lifecycle ---- */

static int64_t arg_int(const uint8_t *args, uint32_t len, const char *name)
{
    int64_t v;
    if (ftable_get_int((amqp_bytes_t){args, len}, name, &v) == 1) return v;
    return -1;
}

queue_t *queue_new(broker_t *b, amqp_bytes_t name, uint64_t id, unsigned flags, amqp_bytes_t args, char *dir)
{
    queue_t *q = xcalloc(1, sizeof *q);
    q->b = b;
    q->name = xmalloc(name.len + 1);
    memcpy(q->name, name.p, name.len);
    q->name[name.len] = '\0';
    q->name_len = name.len;
    q->id = id;
    q->flags = flags;
    q->args = xmalloc(args.len ? args.len : 1);
    if (args.len) memcpy(q->args, args.p, args.len);
    q->args_len = args.len;
    q->dir = dir;
    q->ttl_ms = arg_int(q->args, q->args_len, "x-message-ttl");
    q->expires_ms = arg_int(q->args, q->args_len, "x-expires");
    q->last_used_ms = clock_mono_ms();
    q->dmark = -1;
    q->delivered_max = -1;
    q->snap_offset = -1;
    return q;
}

amqp_bytes_t queue_name(const queue_t *q) { return (amqp_bytes_t){(const uint8_t *)q->name, q->name_len}; }
const char *queue_name_cstr(const queue_t *q) { return q->name; }
uint64_t queue_id(const queue_t *q) { return q->id; }
unsigned queue_flags(const queue_t *q) { return q->flags; }
amqp_bytes_t queue_args(const queue_t *q) { return (amqp_bytes_t){q->args, q->args_len}; }
uint32_t queue_ready_count(const queue_t *q) { return q->nready; }
uint32_t queue_unacked_count(const queue_t *q) { return q->nheld; }
uint32_t queue_consumer_count(const queue_t *q) { return q->nconsumers; }
int queue_is_deleted(const queue_t *q) { return q->deleted; }
void *queue_owner(const queue_t *q) { return q->owner; }
void queue_set_owner(queue_t *q, void *owner) { q->owner = owner; }
int64_t queue_last_used_ms(const queue_t *q) { return q->last_used_ms; }
void queue_touch(queue_t *q) { q->last_used_ms = clock_mono_ms(); }
int64_t queue_expires_ms(const queue_t *q) { return q->expires_ms; }
int queue_had_consumer(const queue_t *q) { return q->had_consumer; }

int queue_has_exclusive_consumer(const queue_t *q)
{
    const qconsumer_t *c = q->consumers;
    for (uint32_t i = 0; i < q->nconsumers; i++, c = c->next)
        if (c->exclusive) return 1;
    return 0;
}

static void mark_dirty(queue_t *q)
{
    if (q->dirty) return;
    q->dirty = 1;
    q->dirty_next = q->b->dirty_queues;
    q->b->dirty_queues = q;
}

static void ready_append(queue_t *q, qentry_t *e)
{
    e->next = NULL;
    e->prev = q->ready_tail;
    if (q->ready_tail) q->ready_tail->next = e;
    else q->ready_head = e;
    q->ready_tail = e;
    e->ready = 1;
    q->nready++;
}

static void ready_unlink(queue_t *q, qentry_t *e)
{
    if (e->prev) e->prev->next = e->next;
    else q->ready_head = e->next;
    if (e->next) e->next->prev = e->prev;
    else q->ready_tail = e->prev;
    e->prev = e->next = NULL;
    e->ready = 0;
    q->nready--;
}

static void held_link(queue_t *q, qentry_t *e)
{
    e->prev = NULL;
    e->next = q->held_head;
    if (q->held_head) q->held_head->prev = e;
    q->held_head = e;
    q->nheld++;
}

static void held_unlink(queue_t *q, qentry_t *e)
{
    if (e->prev) e->prev->next = e->next;
    else q->held_head = e->next;
    if (e->next) e->next->prev = e->prev;
    e->prev = e->next = NULL;
    q->nheld--;
}

static void entry_free(qentry_t *e)
{
    qmsg_unref(e->m);
    free(e);
}

/* Records that the stored message at offset is gone (acked, dropped). */
static void record_removed(queue_t *q, int64_t offset)
{
    if (offset < 0 || !is_stored_queue(q)) return;
    if (q->nacks == q->capacks) {
        q->capacks = q->capacks ? q->capacks * 2 : 64;
        q->acks = xrealloc(q->acks, q->capacks * sizeof *q->acks);
    }
    q->acks[q->nacks++] = offset;
    mark_dirty(q);
}

/* The entry leaves the queue for good: if its record is still pending, the
 * pending slot forgets it (the record is still written, then acked). */
static void entry_release(qentry_t *e)
{
    queue_t *q = e->q;
    record_removed(q, e->offset);
    if (e->pend_slot) q->pend[e->pend_slot - 1].e = NULL;
    entry_free(e);
}

static qentry_t *entry_new(queue_t *q, qmsg_t *m)
{
    qentry_t *e = xcalloc(1, sizeof *e);
    e->q = q;
    e->m = m;
    e->seq = q->next_seq++;
    e->offset = -1;
    int64_t ttl = q->ttl_ms;
    if (m->expiration_ms >= 0 && (ttl < 0 || m->expiration_ms < ttl)) ttl = m->expiration_ms;
    if (ttl >= 0) e->expires_ms = m->ts_ms + ttl;
    return e;
}

/* ---- recovery ---- */

typedef struct {
    int64_t *v;
    size_t n, cap;
} i64vec_t;

static void i64vec_push(i64vec_t *a, int64_t x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 256;
        a->v = xrealloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = x;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int i64vec_has(const i64vec_t *a, int64_t x)
{
    return a->n && bsearch(&x, a->v, a->n, sizeof x, cmp_i64) != NULL;
}

typedef struct {
    i64vec_t acked, live;
    int64_t snap_end; /* -1: no snapshot */
    int64_t dmark;
} qstate_t;

static void state_record(void *ctx, const batch_rec_t *rec)
{
    qstate_t *st = ctx;
    if (rec->key_len != 1 || rec->value_len < 0) return;
    const uint8_t *v = rec->value;
    size_t n = (size_t)rec->value_len;
    switch (rec->key[0]) {
    case 'a':
        for (size_t i = 0; i + 8 <= n; i += 8) i64vec_push(&st->acked, (int64_t)buf_get_be64(v + i));
        break;
    case 'd':
        if (n == 8) {
            int64_t d = (int64_t)buf_get_be64(v);
            if (d > st->dmark) st->dmark = d;
        }
        break;
    case 'D': /* exact, written at a clean close: replaces the marks ahead */
        if (n == 8) st->dmark = (int64_t)buf_get_be64(v);
        break;
    case 's':
        if (n < 16) return;
        st->snap_end = (int64_t)buf_get_be64(v);
        st->dmark = (int64_t)buf_get_be64(v + 8);
        st->acked.n = 0;
        st->live.n = 0;
        for (size_t i = 16; i + 8 <= n; i += 8) i64vec_push(&st->live, (int64_t)buf_get_be64(v + i));
        break;
    default:
        break;
    }
}

typedef struct {
    queue_t *q;
    qstate_t *st;
    uint32_t recovered;
} data_ctx_t;

static void data_record(void *ctx, const batch_rec_t *rec)
{
    data_ctx_t *dc = ctx;
    queue_t *q = dc->q;
    qstate_t *st = dc->st;
    int64_t o = rec->offset;
    if (st->snap_end >= 0 && o < st->snap_end && !i64vec_has(&st->live, o)) return;
    if (i64vec_has(&st->acked, o)) return;
    amqp_bytes_t ex = {NULL, 0}, props = {NULL, 0};
    int64_t expires = 0;
    batch_rec_t r = *rec;
    batch_header_kv_t kv;
    while (batch_rec_next_header(&r, &kv) > 0) {
        if (kv.key_len != 1 || kv.value_len < 0) continue;
        char k = *(const char *)kv.key;
        if (k == 'x' && kv.value_len <= 255) ex = (amqp_bytes_t){kv.value, (uint32_t)kv.value_len};
        else if (k == 'p') props = (amqp_bytes_t){kv.value, (uint32_t)kv.value_len};
        else if (k == 'e' && kv.value_len == 8) expires = (int64_t)buf_get_be64(kv.value);
    }
    amqp_bytes_t key = {rec->key, rec->key_len > 0 && rec->key_len <= 255 ? (uint32_t)rec->key_len : 0};
    uint64_t blen = rec->value_len > 0 ? (uint64_t)rec->value_len : 0;
    qmsg_t *m = qmsg_new(ex, key, props, blen);
    if (blen) memcpy(qmsg_body(m), rec->value, blen);
    m->persistent = 1;
    m->ts_ms = rec->timestamp;
    qentry_t *e = xcalloc(1, sizeof *e);
    e->q = q;
    e->m = m;
    e->seq = q->next_seq++;
    e->offset = o;
    e->expires_ms = expires;
    e->redelivered = o <= st->dmark;
    ready_append(q, e);
    dc->recovered++;
}

/* Queue logs roll smaller segments than topics: whole segments below the
 * live floor (data) or the last snapshot (state) are what gets freed. */
#define QUEUE_DATA_SEGMENT_BYTES (64 << 20)
#define QUEUE_STATE_SEGMENT_BYTES (8 << 20)

static int open_log(queue_t *q, const char *suffix, int64_t segment_bytes, partition_t **out)
{
    int err = 0;
    *out = partition_open(q->b, NULL, 0, xasprintf("%s-%s", q->dir, suffix), &err);
    if (!*out) return err;
    plog_config_t pc;
    plog_config_default(&pc);
    pc.segment_bytes = segment_bytes;
    pc.segment_ms = -1;
    pc.retention_ms = -1;
    pc.retention_bytes = -1;
    plog_set_config((*out)->log, &pc);
    return 0;
}

static void write_snapshot(queue_t *q);

/* Syncs the state log now (blocking: start-up only, no round in flight). */
static int sync_state_now(queue_t *q)
{
    plog_sync_t s;
    int rc = 0;
    while (rc == 0 && plog_sync_begin(q->state->log, &s) == 1) {
        plog_sync_run(&s);
        rc = plog_sync_end(q->state->log, &s);
    }
    return rc;
}

int queue_open(queue_t *q)
{
    int rc;
    if ((rc = open_log(q, "state", QUEUE_STATE_SEGMENT_BYTES, &q->state)) < 0) return rc;
    if ((rc = open_log(q, "log", QUEUE_DATA_SEGMENT_BYTES, &q->data)) < 0) return rc;
    qstate_t st = {.snap_end = -1, .dmark = -1};
    rc = partition_scan(q->state, state_record, &st);
    if (rc == 0) {
        if (st.acked.n) qsort(st.acked.v, st.acked.n, sizeof(int64_t), cmp_i64);
        if (st.live.n) qsort(st.live.v, st.live.n, sizeof(int64_t), cmp_i64);
        data_ctx_t dc = {q, &st, 0};
        rc = partition_scan(q->data, data_record, &dc);
        if (dc.recovered) LOG_I("queue %s: recovered %u message(s)", q->name, dc.recovered);
    }
    q->dmark = st.dmark;
    q->delivered_max = st.dmark;
    /* Acks at or past the data log's end name records a power loss took
     * (a message can be acked before its record is durable, and the two
     * logs are synced independently); those offsets are about to be
     * reused. A snapshot hides them from every later recovery; it is
     * synced before any new record can take one of those offsets. */
    if (rc == 0 && st.acked.n && st.acked.v[st.acked.n - 1] >= plog_end_offset(q->data->log)) {
        write_snapshot(q);
        rc = sync_state_now(q);
    }
    free(st.acked.v);
    free(st.live.v);
    if (rc < 0) LOG_E("queue %s: recovery failed: %s", q->name, herald_strerror(rc));
    return rc;
}

/* ---- consumers and delivery ---- */

static void dispatch(queue_t *q);

void queue_consumer_add(queue_t *q, qconsumer_t *c)
{
    c->q = q;
    if (!q->consumers) {
        c->prev = c->next = c;
        q->consumers = c;
    } else { /* at the end of the ring: just before the next to serve */
        qconsumer_t *head = q->consumers;
        c->next = head;
        c->prev = head->prev;
        head->prev->next = c;
        head->prev = c;
    }
    q->nconsumers++;
    q->had_consumer = 1;
    queue_touch(q);
    dispatch(q);
}

void queue_consumer_remove(queue_t *q, qconsumer_t *c)
{
    if (c->q != q) return;
    if (c->next == c) {
        q->consumers = NULL;
    } else {
        c->prev->next = c->next;
        c->next->prev = c->prev;
        if (q->consumers == c) q->consumers = c->next;
    }
    c->prev = c->next = NULL;
    c->q = NULL;
    q->nconsumers--;
    queue_touch(q);
}

void queue_kick(queue_t *q)
{
    if (!q->deleted) dispatch(q);
}

/* Drops an expired ready entry, recording its removal. */
static void drop_entry(queue_t *q, qentry_t *e)
{
    ready_unlink(q, e);
    entry_release(e);
}

void queue_expire(queue_t *q, int64_t now_ms)
{
    /* TTLs are per queue (same for every message) or per message: the head
     * is checked, and the whole list for short queues so that per-message
     * expirations behind a longer-lived head go too. */
    if (q->nready <= 1024) {
        for (qentry_t *e = q->ready_head, *n; e; e = n) {
            n = e->next;
            if (e->expires_ms && e->expires_ms <= now_ms) drop_entry(q, e);
        }
        return;
    }
    while (q->ready_head && q->ready_head->expires_ms && q->ready_head->expires_ms <= now_ms)
        drop_entry(q, q->ready_head);
}

static void hand_out(queue_t *q, qentry_t *e)
{
    ready_unlink(q, e);
    held_link(q, e);
    e->deliveries++;
    if (e->offset > q->delivered_max) q->delivered_max = e->offset;
    if (e->offset >= 0 && e->offset > q->dmark && is_stored_queue(q)) {
        q->dmark = e->offset + QUEUE_DMARK_AHEAD;
        q->dmark_dirty = 1;
        mark_dirty(q);
    }
}

static void dispatch(queue_t *q)
{
    if (q->dispatching || q->deleted) return;
    q->dispatching = 1;
    int64_t now = 0;
    while (q->ready_head && q->consumers) {
        qentry_t *e = q->ready_head;
        if (e->expires_ms) {
            if (!now) now = clock_wall_ms();
            if (e->expires_ms <= now) {
                drop_entry(q, e);
                continue;
            }
        }
        qconsumer_t *c = q->consumers, *start = c;
        while (!c->can_take(c)) {
            c = c->next;
            if (c == start) goto done;
        }
        q->consumers = c->next; /* round robin: the next one is served next */
        hand_out(q, e);
        c->deliver(c, e);
        if (q->deleted) break;
    }
done:
    q->dispatching = 0;
}

qentry_t *queue_get(queue_t *q)
{
    queue_touch(q);
    int64_t now = clock_wall_ms();
    while (q->ready_head) {
        qentry_t *e = q->ready_head;
        if (e->expires_ms && e->expires_ms <= now) {
            drop_entry(q, e);
            continue;
        }
        hand_out(q, e);
        return e;
    }
    return NULL;
}

static void maybe_free(queue_t *q);

void queue_ack(qentry_t *e)
{
    queue_t *q = e->q;
    if (q->deleted) {
        q->nheld--;
        entry_free(e);
        maybe_free(q);
        return;
    }
    held_unlink(q, e);
    entry_release(e);
}

static int cmp_entry(const void *a, const void *b)
{
    const qentry_t *x = *(qentry_t *const *)a, *y = *(qentry_t *const *)b;
    if (x->q != y->q) return (uintptr_t)x->q < (uintptr_t)y->q ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void queue_requeue(qentry_t **es, size_t n)
{
    if (!n) return;
    qsort(es, n, sizeof *es, cmp_entry);
    size_t i = 0;
    while (i < n) {
        queue_t *q = es[i]->q;
        qentry_t *pos = q->ready_head; /* insertion point: first ready entry with a larger seq */
        size_t j = i;
        for (; j < n && es[j]->q == q; j++) {
            qentry_t *e = es[j];
            if (q->deleted) {
                q->nheld--;
                entry_free(e);
                continue;
            }
            held_unlink(q, e);
            e->redelivered = 1;
            while (pos && pos->seq < e->seq) pos = pos->next;
            e->ready = 1;
            q->nready++;
            e->next = pos;
            if (pos) {
                e->prev = pos->prev;
                if (pos->prev) pos->prev->next = e;
                else q->ready_head = e;
                pos->prev = e;
            } else {
                e->prev = q->ready_tail;
                if (q->ready_tail) q->ready_tail->next = e;
                else q->ready_head = e;
                q->ready_tail = e;
            }
        }
        i = j;
        if (q->deleted) maybe_free(q);
        else dispatch(q);
    }
}

uint32_t queue_purge(queue_t *q)
{
    uint32_t n = 0;
    while (q->ready_head) {
        drop_entry(q, q->ready_head);
        n++;
    }
    return n;
}

/* ---- publishing and the coalesced writes ---- */

int queue_publish(queue_t *q, qmsg_t *m, uint32_t *epoch, int64_t *target)
{
    qentry_t *e = entry_new(q, qmsg_ref(m));
    int wait = 0;
    if (m->persistent && is_stored_queue(q) && !q->data->failed) {
        e->offset = plog_end_offset(q->data->log) + (int64_t)q->npend;
        if (q->npend == q->cappend) {
            q->cappend = q->cappend ? q->cappend * 2 : 64;
            q->pend = xrealloc(q->pend, q->cappend * sizeof *q->pend);
        }
        q->pend[q->npend++] = (qpend_t){e, qmsg_ref(m)};
        e->pend_slot = (uint32_t)q->npend;
        mark_dirty(q);
        *epoch = q->epoch;
        *target = e->offset + 1;
        wait = 1;
    } else if (m->persistent && is_stored_queue(q)) {
        wait = HE_STORAGE;
    }
    ready_append(q, e);
    dispatch(q);
    return wait;
}

/* Scratch arrays for building a batch, kept across flushes (the loop is
 * single-threaded): zeroing fresh ones per flush was a visible cost. */
typedef struct {
    batch_record_t *recs;
    batch_header_kv_t *hdrs;
    uint8_t *exp;
    size_t cap;
} flush_scratch_t;

static flush_scratch_t g_scratch;

void queue_scratch_free(void)
{
    free(g_scratch.recs);
    free(g_scratch.hdrs);
    free(g_scratch.exp);
    memset(&g_scratch, 0, sizeof g_scratch);
}

static void flush_data(queue_t *q, wbuf_t *w)
{
    size_t n = q->npend;
    if (g_scratch.cap < n) {
        size_t cap = g_scratch.cap ? g_scratch.cap : 256;
        while (cap < n) cap *= 2;
        g_scratch.recs = xrealloc(g_scratch.recs, cap * sizeof *g_scratch.recs);
        g_scratch.hdrs = xrealloc(g_scratch.hdrs, cap * 3 * sizeof *g_scratch.hdrs);
        g_scratch.exp = xrealloc(g_scratch.exp, cap * 8);
        g_scratch.cap = cap;
    }
    batch_record_t *recs = g_scratch.recs;
    batch_header_kv_t *hdrs = g_scratch.hdrs;
    uint8_t *exp = g_scratch.exp;
    int64_t base_ts = q->pend[0].m->ts_ms;
    for (size_t i = 0; i < n; i++) {
        qmsg_t *m = q->pend[i].m;
        batch_header_kv_t *h = hdrs + i * 3;
        size_t nh = 0;
        amqp_bytes_t ex = qmsg_exchange(m), props = qmsg_props(m);
        h[nh++] = (batch_header_kv_t){"x", 1, ex.p, (int32_t)ex.len};
        h[nh++] = (batch_header_kv_t){"p", 1, props.p, (int32_t)props.len};
        int64_t ex_ms = q->pend[i].e ? q->pend[i].e->expires_ms : 0;
        if (ex_ms) {
            wbuf_put_be64(exp + i * 8, (uint64_t)ex_ms);
            h[nh++] = (batch_header_kv_t){"e", 1, exp + i * 8, 8};
        }
        amqp_bytes_t key = qmsg_key(m);
        recs[i].key = key.p;
        recs[i].key_len = (int32_t)key.len;
        recs[i].value = qmsg_body(m);
        recs[i].value_len = (int32_t)m->body_len;
        recs[i].timestamp_delta = m->ts_ms > base_ts ? m->ts_ms - base_ts : 0;
        recs[i].headers = h;
        recs[i].header_count = nh;
    }
    wbuf_reset(w);
    batch_build(w, base_ts, recs, n);
    append_result_t res;
    int64_t expect = plog_end_offset(q->data->log);
    int rc = partition_append(q->b, q->data, w->p, w->len, &res);
    if (rc < 0) {
        LOG_E("queue %s: cannot store %zu message(s): %s", q->name, n, herald_strerror(rc));
        /* Those messages stay in memory, not durable; acks recorded for
         * their offsets must not reach the state log (the offsets will be
         * reused). Their publishers' confirms fail through the waiters. */
        for (size_t i = 0; i < n; i++)
            if (q->pend[i].e) q->pend[i].e->offset = -1;
        q->fail_at[q->epoch % 16] = expect;
        q->epoch++;
        size_t k = 0;
        for (size_t i = 0; i < q->nacks; i++)
            if (q->acks[i] < expect) q->acks[k++] = q->acks[i];
        q->nacks = k;
        partition_hw_advanced(q->data, rc);
    }
    for (size_t i = 0; i < n; i++) {
        if (q->pend[i].e) q->pend[i].e->pend_slot = 0;
        qmsg_unref(q->pend[i].m);
    }
    q->npend = 0;
}

static void state_append(queue_t *q, const char *key, const void *val, size_t len)
{
    int64_t target;
    int rc = internal_append(q->b, q->state, key, 1, val, (int32_t)len, &target);
    if (rc < 0) LOG_E("queue %s: cannot write delivery state: %s", q->name, herald_strerror(rc));
}

static void flush_state(queue_t *q)
{
    if (q->nacks) {
        uint8_t *v = xmalloc(q->nacks * 8);
        for (size_t i = 0; i < q->nacks; i++) wbuf_put_be64(v + i * 8, (uint64_t)q->acks[i]);
        state_append(q, "a", v, q->nacks * 8);
        free(v);
        q->nacks = 0;
    }
    if (q->dmark_dirty) {
        uint8_t v[8];
        wbuf_put_be64(v, (uint64_t)q->dmark);
        state_append(q, "d", v, 8);
        q->dmark_dirty = 0;
    }
}

void queue_flush_all(broker_t *b)
{
    wbuf_t w;
    wbuf_init(&w);
    while (b->dirty_queues) {
        queue_t *q = b->dirty_queues;
        b->dirty_queues = q->dirty_next;
        q->dirty = 0;
        q->dirty_next = NULL;
        if (!is_stored_queue(q)) {
            q->npend = q->nacks = 0;
            continue;
        }
        if (q->npend) flush_data(q, &w);
        flush_state(q);
    }
    wbuf_destroy(&w);
}

/* ---- maintenance: snapshots of the state log, data log truncation ---- */

/* The lowest stored offset still live, or the data log's end. */
static int64_t live_floor(const queue_t *q)
{
    int64_t floor = plog_end_offset(q->data->log);
    for (const qentry_t *e = q->ready_head; e; e = e->next)
        if (e->offset >= 0) {
            if (e->offset < floor) floor = e->offset;
            break; /* the ready list is in arrival order: stored offsets ascend */
        }
    for (const qentry_t *e = q->held_head; e; e = e->next)
        if (e->offset >= 0 && e->offset < floor) floor = e->offset;
    return floor;
}

static void write_snapshot(queue_t *q)
{
    wbuf_t v;
    wbuf_init(&v);
    wbuf_i64(&v, plog_end_offset(q->data->log));
    wbuf_i64(&v, q->dmark);
    for (int pass = 0; pass < 2; pass++)
        for (const qentry_t *e = pass ? q->held_head : q->ready_head; e; e = e->next)
            if (e->offset >= 0) wbuf_i64(&v, e->offset);
    int64_t target;
    int rc = internal_append(q->b, q->state, "s", 1, v.p, (int32_t)v.len, &target);
    wbuf_destroy(&v);
    if (rc < 0) {
        LOG_E("queue %s: cannot write a state snapshot: %s", q->name, herald_strerror(rc));
        return;
    }
    q->snap_offset = target - 1;
    q->snap_size = partition_size_bytes(q->state);
}

void queue_maintain(queue_t *q)
{
    if (!is_stored_queue(q) || q->npend || q->nacks || q->dmark_dirty) return;
    /* Once a snapshot is durable, the state segments wholly before it go.
     * Nothing here blocks: replay ignores what a snapshot supersedes, so
     * no start-offset file needs to be written. */
    if (q->snap_offset >= 0 && plog_durable_offset(q->state->log) > q->snap_offset) {
        partition_drop_segments_before(q->state, q->snap_offset);
        q->snap_offset = -1;
    } else if (q->snap_offset < 0 &&
               plog_end_offset(q->state->log) - plog_start_offset(q->state->log) > 1 &&
               partition_size_bytes(q->state) - q->snap_size > QUEUE_SNAPSHOT_BYTES) {
        write_snapshot(q);
    }
    /* Data segments wholly below the oldest live message go too. Their
     * records are dead by the state log (acked after the last snapshot, or
     * absent from its live list). */
    int64_t floor = live_floor(q);
    if (floor <= plog_durable_offset(q->data->log)) partition_drop_segments_before(q->data, floor);
}

/* ---- deletion ---- */

void queue_pin(queue_t *q) { q->pins++; }

void queue_unpin(queue_t *q)
{
    q->pins--;
    maybe_free(q);
}

int queue_publish_state(queue_t *q, uint32_t epoch, int64_t target)
{
    if (q->deleted || !q->data) return 1;
    if (epoch != q->epoch) {
        /* Appends failed since: lost if at or past where its epoch failed. */
        if (q->epoch - epoch > 16 || target > q->fail_at[epoch % 16]) return HE_STORAGE;
    }
    if (plog_durable_offset(q->data->log) >= target) return 1;
    if (q->data->failed) return HE_STORAGE;
    return 0;
}

int queue_wait(queue_t *q, pwaiter_t *w, int64_t target)
{
    if (q->deleted || !q->data) return 1;
    w->target = target;
    return partition_wait(q->data, w);
}

static void maybe_free(queue_t *q)
{
    if (!q->deleted || q->nheld || q->pins) return;
    free(q->name);
    free(q->args);
    free(q->dir);
    free(q->pend);
    free(q->acks);
    free(q);
}

static void close_logs(queue_t *q, int remove)
{
    for (int i = 0; i < 2; i++) {
        partition_t **pp = i ? &q->state : &q->data;
        if (!*pp) continue;
        char *dir = xstrdup((*pp)->dir);
        partition_close(q->b, *pp);
        *pp = NULL;
        if (remove) {
            int rc = store_remove_dir(dir);
            if (rc < 0) LOG_W("queue %s: cannot remove %s: %s", q->name, dir, herald_strerror(rc));
        }
        free(dir);
    }
}

static void unlink_dirty(queue_t *q)
{
    if (!q->dirty) return;
    for (queue_t **pp = &q->b->dirty_queues; *pp; pp = &(*pp)->dirty_next)
        if (*pp == q) {
            *pp = q->dirty_next;
            break;
        }
    q->dirty = 0;
}

void queue_delete(queue_t *q)
{
    while (q->consumers) {
        qconsumer_t *c = q->consumers;
        queue_consumer_remove(q, c);
        if (c->cancelled) c->cancelled(c);
    }
    while (q->ready_head) {
        qentry_t *e = q->ready_head;
        ready_unlink(q, e);
        entry_free(e);
    }
    for (size_t i = 0; i < q->npend; i++) qmsg_unref(q->pend[i].m);
    q->npend = q->nacks = 0;
    unlink_dirty(q);
    q->deleted = 1; /* before the logs close: their waiters look at it */
    close_logs(q, 1);
    maybe_free(q);
}

void queue_close(queue_t *q)
{
    queue_flush_all(q->b);
    /* After a clean stop only what was really handed out comes back
     * redelivered (the marks written ahead cover a crash). */
    if (is_stored_queue(q) && q->dmark > q->delivered_max) {
        uint8_t v[8];
        wbuf_put_be64(v, (uint64_t)q->delivered_max);
        state_append(q, "D", v, 8);
    }
    while (q->consumers) queue_consumer_remove(q, q->consumers);
    while (q->ready_head) {
        qentry_t *e = q->ready_head;
        ready_unlink(q, e);
        entry_free(e);
    }
    unlink_dirty(q);
    q->deleted = 1;
    close_logs(q, 0);
    maybe_free(q);
}
