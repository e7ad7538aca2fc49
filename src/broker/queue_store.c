/*
 * The logs behind a durable queue (formats in queue.h): recovery, snapshots
 * of the delivery state, segment drops, and the dead-letter claims found
 * at start-up. The coalesced writes of each loop turn are in queue_flush.c.
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/slab.h"
#include "broker/queue_int.h"
#include "broker/stream.h"
#include "store/batch.h"
#include "store/deleter.h"

/* A snapshot is written once the state log has grown by this much since
 * the last one, or by twice the last one's size if that is more: a
 * snapshot costs in proportion to what is live (450,000 delayed messages
 * make ~7 MB of it and a walk over every entry), so with a large live set
 * a fixed threshold made snapshots the log's main traffic; with the
 * doubling, writing them costs at most half of what the acks and returns
 * do, and replay reads at most three snapshots' worth. */
#define QUEUE_SNAPSHOT_BYTES (8 << 20)

/* Queue logs roll smaller segments than topics: whole segments below the
 * live floor (data) or the last snapshot (state) are what gets freed. */
#define QUEUE_DATA_SEGMENT_BYTES (64 << 20)
#define QUEUE_SPILL_RETRY_MS 10000 /* after a spill log could not be opened */
#define QUEUE_STATE_SEGMENT_BYTES (8 << 20)

/* ---- removals, returns and publishes recorded ---- */

void queue_record_removed(queue_t *q, int64_t offset)
{
    if (offset < 0 || !queue_is_stored(q)) return;
    if (q->nacks == q->capacks) {
        q->capacks = q->capacks ? q->capacks * 2 : 64;
        q->acks = xrealloc(q->acks, q->capacks * sizeof *q->acks);
    }
    q->acks[q->nacks++] = offset;
    queue_mark_dirty(q);
}

static void push_return(queue_t *q, const qentry_t *e, int64_t flags)
{
    if (q->nrets == q->caprets) {
        q->caprets = q->caprets ? q->caprets * 2 : 16;
        q->rets = xrealloc(q->rets, q->caprets * sizeof *q->rets);
    }
    q->rets[q->nrets++] = (qret_t){e->offset, (int64_t)e->returns | flags, e->ready_at_ms};
    queue_mark_dirty(q);
}

void queue_record_removed_ranges(queue_t *q, const qranges_t *r)
{
    if (!queue_is_stored(q) || !r->n) return;
    uint8_t *v = xmalloc(r->n * 16);
    for (size_t i = 0; i < r->n; i++) {
        wbuf_put_be64(v + i * 16, (uint64_t)r->v[i].from);
        wbuf_put_be64(v + i * 16 + 8, (uint64_t)r->v[i].to);
    }
    queue_flush_all(q->b); /* ordered after the records they name */
    int64_t target;
    int rc = internal_append(q->b, q->state, "A", 1, v, (int32_t)(r->n * 16), &target);
    if (rc < 0) LOG_E("queue %s: cannot write delivery state: %s", q->name, herald_strerror(rc));
    free(v);
}

void queue_record_return(queue_t *q, const qentry_t *e)
{
    if (e->offset >= 0 && queue_is_stored(q)) push_return(q, e, 0);
}

/* The entry leaves the queue for good: if its record is still pending, the
 * pending slot forgets it (the record is still written, then acked). */
void queue_entry_release(qentry_t *e)
{
    queue_t *q = e->q;
    queue_record_removed(q, e->offset);
    if (q->dedup) queue_dedup_forget(q, qmsg_props(e->m));
    if (e->pend_slot) q->pend[e->pend_slot - 1].e = NULL;
    queue_entry_free(e);
}

/* A record of m to append with the loop turn's writes; the caller fills in
 * the rest. */
static qpend_t *pend_push(queue_t *q, qmsg_t *m)
{
    if (q->npend == q->cappend) {
        q->cappend = q->cappend ? q->cappend * 2 : 64;
        q->pend = xrealloc(q->pend, q->cappend * sizeof *q->pend);
    }
    qpend_t *p = &q->pend[q->npend++];
    *p = (qpend_t){.m = qmsg_ref(m)};
    queue_mark_dirty(q);
    return p;
}

int queue_store_publish(queue_t *q, qentry_t *e, uint32_t *epoch, int64_t *target)
{
    qmsg_t *m = e->m;
    if (!m->persistent || !queue_is_stored(q)) return QP_DONE;
    if (q->data->failed) return HE_STORAGE;
    e->offset = plog_end_offset(q->data->log) + (int64_t)q->npend;
    pend_push(q, m)->e = e;
    e->pend_slot = (uint32_t)q->npend;
    *epoch = q->epoch;
    *target = e->offset + 1;
    return QP_WAIT;
}

int queue_store_publish_paged(queue_t *q, qmsg_t *m, int64_t expires_ms, int delayed, uint32_t *epoch,
                              int64_t *target, int64_t *offset)
{
    if (q->data->failed) return HE_STORAGE;
    *offset = plog_end_offset(q->data->log) + (int64_t)q->npend;
    qpend_t *p = pend_push(q, m);
    p->expires_ms = expires_ms;
    p->transient = !m->persistent;
    p->delayed = delayed != 0;
    if (!m->persistent || q->data->spill) return QP_DONE; /* on disk only to keep its place */
    *epoch = q->epoch;
    *target = *offset + 1;
    return QP_WAIT;
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
    qret_t *v;
    size_t n, cap;
} retvec_t;

static void retvec_push(retvec_t *a, qret_t r)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = xrealloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = r;
}

typedef struct {
    i64vec_t acked;
    qranges_t acked_ranges; /* "A" records (a purge of paged messages) */
    qranges_t live;         /* a snapshot's live offsets */
    retvec_t rets;          /* in log order; the last for an offset wins */
    int64_t snap_end;       /* -1: no snapshot */
    int64_t dmark;
    struct {
        int64_t offset, from;
        uint64_t stream_qid;
    } *intents;              /* "m" records, in log order */
    size_t nintents, capintents;
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
    case 'A': /* removed ranges: (from, to) pairs */
        for (size_t i = 0; i + 16 <= n; i += 16)
            qranges_add(&st->acked_ranges, (int64_t)buf_get_be64(v + i), (int64_t)buf_get_be64(v + i + 8));
        break;
    case 'r': /* (offset, returns | QRET_DELIVERED, ready_at) */
        for (size_t i = 0; i + 24 <= n; i += 24)
            retvec_push(&st->rets, (qret_t){(int64_t)buf_get_be64(v + i), (int64_t)buf_get_be64(v + i + 8),
                                            (int64_t)buf_get_be64(v + i + 16)});
        break;
    case 'm': /* a move into a stream: (offset, stream queue id, stream offset) triples */
        for (size_t i = 0; i + 24 <= n; i += 24) {
            if (st->nintents == st->capintents) {
                st->capintents = st->capintents ? st->capintents * 2 : 16;
                st->intents = xrealloc(st->intents, st->capintents * sizeof *st->intents);
            }
            st->intents[st->nintents].offset = (int64_t)buf_get_be64(v + i);
            st->intents[st->nintents].stream_qid = buf_get_be64(v + i + 8);
            st->intents[st->nintents].from = (int64_t)buf_get_be64(v + i + 16);
            st->nintents++;
        }
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
    case 's': /* end, dmark, live offsets */
    case 'S': /* end, dmark, count, live offsets, then (offset, returns, ready_at) triples */
    case 'Q': /* end, dmark, count, live (from, to) ranges, then the triples */
        if (n < 16) return;
        st->snap_end = (int64_t)buf_get_be64(v);
        st->dmark = (int64_t)buf_get_be64(v + 8);
        st->acked.n = 0;
        st->acked_ranges.n = 0;
        st->live.n = 0;
        st->rets.n = 0;
        size_t i = 16, end = n, step = rec->key[0] == 'Q' ? 16 : 8;
        if (rec->key[0] != 's') {
            if (n < 24) return;
            uint64_t cnt = buf_get_be64(v + 16);
            i = 24;
            end = cnt <= (n - 24) / step ? 24 + cnt * step : n;
        }
        for (; i + step <= end; i += step) {
            int64_t from = (int64_t)buf_get_be64(v + i);
            qranges_add(&st->live, from, step == 16 ? (int64_t)buf_get_be64(v + i + 8) : from + 1);
        }
        for (i = end; rec->key[0] != 's' && i + 24 <= n; i += 24)
            retvec_push(&st->rets, (qret_t){(int64_t)buf_get_be64(v + i), (int64_t)buf_get_be64(v + i + 8),
                                            (int64_t)buf_get_be64(v + i + 16)});
        break;
    default:
        break;
    }
}

static int cmp_ret(const void *a, const void *b)
{
    const qret_t *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    /* Returns of one offset only grow: the latest record has the most. */
    return x->returns < y->returns ? -1 : x->returns > y->returns;
}

/* What opening the queues collects for the vhost to take afterwards: the
 * dead-letter claims met (queue_take_claims) and the intents of moves into
 * streams whose originals are live (queue_take_intents). */
typedef struct {
    void *v;
    size_t n, cap;
} found_t;
static found_t g_claims, g_intents;

/* Room for one more element of size bytes at the end of f. */
static void *found_add(found_t *f, size_t size)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->v = xrealloc(f->v, f->cap * size);
    }
    return (char *)f->v + f->n++ * size;
}

/* Hands f's elements over (the caller frees them); f starts empty again. */
static void *found_take(found_t *f, size_t *n)
{
    void *v = f->v;
    *n = f->n;
    *f = (found_t){0};
    return v;
}

size_t queue_take_intents(qintent_t **out)
{
    size_t n;
    *out = found_take(&g_intents, &n);
    return n;
}

size_t queue_take_claims(qclaim_t **out)
{
    size_t n;
    *out = found_take(&g_claims, &n);
    return n;
}

typedef struct {
    queue_t *q;
    qstate_t *st;
    uint32_t recovered;
    int64_t now;
    size_t ret_pos; /* st->rets is sorted by offset and walked along */
} data_ctx_t;

void queue_rec_headers(const batch_rec_t *rec, qrec_hdrs_t *h)
{
    memset(h, 0, sizeof *h);
    batch_rec_t r = *rec;
    batch_header_kv_t kv;
    while (batch_rec_next_header(&r, &kv) > 0) {
        if (kv.key_len != 1 || kv.value_len < 0) continue;
        char k = *(const char *)kv.key;
        if (k == 'x' && kv.value_len <= 255) h->ex = (amqp_bytes_t){kv.value, (uint32_t)kv.value_len};
        else if (k == 'p') h->props = (amqp_bytes_t){kv.value, (uint32_t)kv.value_len};
        else if (k == 'e' && kv.value_len == 8) h->expires = (int64_t)buf_get_be64(kv.value);
        else if (k == 't' && kv.value_len == 8) h->ready_at = (int64_t)buf_get_be64(kv.value);
        else if (k == 'T') h->transient = 1;
        else if (k == 'o' && kv.value_len == 16) {
            h->claim = 1;
            h->claim_qid = buf_get_be64(kv.value);
            h->claim_off = (int64_t)buf_get_be64(kv.value + 8);
        }
    }
}

qentry_t *queue_entry_from_record(queue_t *q, const batch_rec_t *rec, const qrec_hdrs_t *h)
{
    amqp_bytes_t key = {rec->key, rec->key_len > 0 && rec->key_len <= 255 ? (uint32_t)rec->key_len : 0};
    uint64_t blen = rec->value_len > 0 ? (uint64_t)rec->value_len : 0;
    qmsg_t *m = qmsg_new_room(h->ex, key, h->props, blen, blen, rec->timestamp);
    if (blen) memcpy(qmsg_body(m), rec->value, blen);
    m->persistent = !h->transient;
    qentry_t *e = queue_entry_alloc();
    e->q = q;
    e->m = m;
    e->seq = q->next_seq++;
    e->offset = rec->offset;
    e->expires_ms = h->expires;
    e->ready_at_ms = h->ready_at;
    e->prio = queue_prio_of(q, m);
    return e;
}

static void data_record(void *ctx, const batch_rec_t *rec)
{
    data_ctx_t *dc = ctx;
    queue_t *q = dc->q;
    qstate_t *st = dc->st;
    int64_t o = rec->offset;
    qrec_hdrs_t h;
    queue_rec_headers(rec, &h);
    if (h.claim) {
        /* A dead-letter copy: its source must not keep the original,
         * whether or not this copy is still live here. */
        *(qclaim_t *)found_add(&g_claims, sizeof(qclaim_t)) = (qclaim_t){h.claim_qid, h.claim_off};
    }
    /* A de-duplication window remembers consumed messages too. */
    if (q->dedup && queue_dedup_window(q) && !h.transient) queue_dedup_add(q, h.props, o, rec->timestamp);
    if (h.transient) return; /* written only to keep its place while paging: gone with the restart */
    if (st->snap_end >= 0 && o < st->snap_end && !qranges_has(&st->live, o)) return;
    if (i64vec_has(&st->acked, o) || qranges_has(&st->acked_ranges, o)) return;
    if (q->dedup && !queue_dedup_window(q)) queue_dedup_add(q, h.props, o, rec->timestamp);
    /* The latest return record for this offset (offsets ascend here). */
    while (dc->ret_pos < st->rets.n && st->rets.v[dc->ret_pos].offset < o) dc->ret_pos++;
    int has_ret = dc->ret_pos < st->rets.n && st->rets.v[dc->ret_pos].offset == o;
    dc->recovered++;
    if (q->fwd.p && h.ready_at && !has_ret) { /* a delayed message keeps waiting on disk */
        queue_delay_push(q, h.ready_at, o, QDELAY_NOPOS, 0, 0);
        return;
    }
    if (has_ret && !q->fwd.p && q->delayed.bytes >= (uint64_t)broker_config(q->b)->delay_memory_bytes) {
        /* Past the budget, a message waiting for its retry waits on disk
         * again (as before the restart: queue.c, retry_waits_on_disk). */
        size_t i = dc->ret_pos;
        while (i + 1 < st->rets.n && st->rets.v[i + 1].offset == o) i++;
        uint32_t returns = (uint32_t)(st->rets.v[i].returns & 0xffffffff);
        if (st->rets.v[i].ready_at_ms > dc->now && returns) {
            queue_delay_push(q, st->rets.v[i].ready_at_ms, o, QDELAY_NOPOS, 0, returns);
            return;
        }
    }
    if (!has_ret && h.ready_at > dc->now && !q->fwd.p &&
        q->delayed.bytes >= (uint64_t)broker_config(q->b)->delay_memory_bytes) {
        /* From a delayed exchange and not due yet: past the budget it
         * waits on disk again, as it did before the restart. */
        queue_delay_push(q, h.ready_at, o, QDELAY_NOPOS, 0, 0);
        return;
    }
    uint8_t prio = queue_prio_of_props(q, h.props);
    if (!has_ret && h.ready_at <= dc->now && queue_page_out(q, prio)) { /* (also one that fell due) */ /* a deep backlog stays on disk */
        queue_page_add(q, o, prio, rec->value_len > 0 ? (uint64_t)rec->value_len : 0);
        return;
    }
    qentry_t *e = queue_entry_from_record(q, rec, &h);
    e->redelivered = o <= st->dmark;
    for (size_t i = dc->ret_pos; i < st->rets.n && st->rets.v[i].offset == o; i++) {
        int64_t r = st->rets.v[i].returns;
        e->returns = (uint32_t)(r & 0xffffffff);
        e->ready_at_ms = st->rets.v[i].ready_at_ms;
        /* A return, or QRET_DELIVERED written at a clean stop; an older
         * snapshot may also list a message from a delayed exchange by its
         * due time alone (not delivered yet). */
        if (e->returns || (r & QRET_DELIVERED)) e->redelivered = 1;
    }
    queue_place(q, e, dc->now);
}

/* Opens the log in dir (owned by it from here); spill: a spill log. */
static int open_log(queue_t *q, char *dir, int64_t segment_bytes, int spill, partition_t **out)
{
    int err = 0;
    *out = spill ? partition_open_spill(q->b, dir, q->spill_base, &err) : partition_open(q->b, NULL, 0, dir, &err);
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

/* The intents whose original the replay left live go to g_intents. */
static void keep_live_intents(const queue_t *q, const qstate_t *st)
{
    for (size_t i = 0; i < st->nintents; i++) {
        int64_t o = st->intents[i].offset;
        if (st->snap_end >= 0 && o < st->snap_end && !qranges_has(&st->live, o)) continue;
        if (i64vec_has(&st->acked, o) || qranges_has(&st->acked_ranges, o)) continue;
        *(qintent_t *)found_add(&g_intents, sizeof(qintent_t)) =
            (qintent_t){st->intents[i].stream_qid, st->intents[i].from, queue_id(q), o};
    }
}

int queue_open(queue_t *q)
{
    int rc;
    if ((rc = open_log(q, xasprintf("%s-state", q->dir), QUEUE_STATE_SEGMENT_BYTES, 0, &q->state)) < 0) return rc;
    if ((rc = open_log(q, xasprintf("%s-log", q->dir), QUEUE_DATA_SEGMENT_BYTES, 0, &q->data)) < 0) return rc;
    qstate_t st = {.snap_end = -1, .dmark = -1};
    rc = partition_scan(q->state, state_record, &st);
    if (rc == 0) {
        if (st.acked.n) qsort(st.acked.v, st.acked.n, sizeof(int64_t), cmp_i64);
        qranges_normalize(&st.live);
        qranges_normalize(&st.acked_ranges);
        if (st.rets.n) qsort(st.rets.v, st.rets.n, sizeof *st.rets.v, cmp_ret);
        data_ctx_t dc = {q, &st, 0, clock_wall_ms(), 0};
        rc = partition_scan(q->data, data_record, &dc);
        if (dc.recovered) LOG_I("queue %s: recovered %u message(s)", q->name, dc.recovered);
        keep_live_intents(q, &st);
    }
    free(st.intents);
    q->dmark = st.dmark;
    q->delivered_max = st.dmark;
    /* Records paged at recovery: the mark (written ahead) covers them, not
     * what this run appends after the recovered end. */
    q->page_dmark = st.dmark < plog_end_offset(q->data->log) ? st.dmark : plog_end_offset(q->data->log) - 1;
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
    qranges_free(&st.acked_ranges);
    qranges_free(&st.live);
    free(st.rets.v);
    if (rc < 0) LOG_E("queue %s: recovery failed: %s", q->name, herald_strerror(rc));
    return rc;
}

/* queue_drop_claimed's pass: the live entries whose offsets are claimed. */
typedef struct {
    const int64_t *offs; /* ascending */
    size_t n;
    uint8_t *hit;        /* hit[i]: offs[i] was found live */
    qentry_t **found;
    size_t nfound;
} claimed_t;

static void claimed_check(void *ctx, const qentry_t *e)
{
    claimed_t *c = ctx;
    const int64_t *p = bsearch(&e->offset, c->offs, c->n, sizeof *p, cmp_i64);
    if (!p || c->hit[p - c->offs]) return;
    c->hit[p - c->offs] = 1;
    c->found[c->nfound++] = (qentry_t *)e; /* (q's own entry) */
}

void queue_drop_claimed(queue_t *q, const int64_t *offsets, size_t n)
{
    /* Start-up only: every live entry is ready, delayed or paged. One pass
     * over the ready and the waiting entries, each looked up among the
     * claims (a walk of them per claim was O(claims x messages), and the
     * moves a crash cuts grow with the load). */
    size_t dropped = q->dpaged.n ? queue_delay_drop(q, offsets, n) : 0;
    claimed_t c = {offsets, n, xcalloc(n ? n : 1, 1), xmalloc((n ? n : 1) * sizeof(qentry_t *)), 0};
    for (uint32_t l = 0; l < q->nlv; l++)
        for (qentry_t *e = q->lv[l].head; e && c.nfound < n; e = e->next) claimed_check(&c, e);
    if (c.nfound < n && q->delayed.n) qwheel_each(&q->delayed, claimed_check, &c);
    for (size_t i = 0; i < c.nfound; i++) {
        queue_unplace(q, c.found[i]);
        queue_entry_release(c.found[i]);
        dropped++;
    }
    for (size_t i = 0; i < n; i++)
        if (!c.hit[i] && queue_page_remove(q, offsets[i], 0)) { /* (its body bytes stay counted) */
            queue_record_removed(q, offsets[i]);
            queue_dedup_forget_offset(q, offsets[i]);
            dropped++;
        }
    free(c.hit);
    free(c.found);
    if (dropped) LOG_I("queue %s: %zu message(s) were dead-lettered before a crash", q->name, dropped);
}

void queue_scratch_free(void)
{
    queue_flush_scratch_free();
    free(g_claims.v);
    g_claims = (found_t){0};
    free(g_intents.v);
    g_intents = (found_t){0};
    queue_delay_scratch_free();
    queue_due_round_free();
    queue_entry_pool_free();
    qwheel_pool_release();
    qmsg_names_release();
    slab_release();
}

/* ---- the spill log of a queue that is not stored ---- */

int queue_is_spilling(const queue_t *q) { return q->data && q->data->spill && !q->deleted; }

int queue_spill_open(queue_t *q)
{
    if (q->data) return q->data->spill;
    /* (A new spill log goes on from the offsets of the one before, which
     * a de-duplication queue may still hold for its values.) */
    if (!q->spill_dir || q->deleted || q->fwd.p) return 0;
    if (q->spill_retry_ms && clock_mono_ms() < q->spill_retry_ms) return 0;
    int rc = open_log(q, xstrdup(q->spill_dir), QUEUE_DATA_SEGMENT_BYTES, 1, &q->data);
    if (rc < 0) {
        /* (partition_open logged why) Not at every publish: once in a
         * while, as the disk may have room again. */
        LOG_W("queue %s: its backlog stays in memory for now: no spill log", q->name);
        q->spill_retry_ms = clock_mono_ms() + QUEUE_SPILL_RETRY_MS;
        return 0;
    }
    q->spill_retry_ms = 0;
    q->page_dmark = -1; /* nothing read back was handed out before */
    LOG_D("queue %s: backlog past %d messages pages to %s", q->name, QUEUE_PAGE_HIGH, q->spill_dir);
    return 1;
}

int queue_spill_wait(queue_t *q, const qentry_t *e)
{
    if (queue_is_stored(q) || !queue_spill_open(q) || q->data->failed) return 0;
    qpend_t *p = pend_push(q, e->m);
    p->expires_ms = e->expires_ms;
    p->transient = !e->m->persistent;
    p->delayed = 1;
    p->wait_at = e->ready_at_ms;
    p->returns = e->returns;
    return 1;
}

/* The spill log keeps what is still paged or waits there for its x-delay;
 * once nothing does, it goes (it is opened again by the next deep backlog). */
static void spill_maintain(queue_t *q)
{
    if (!q->npaged && !q->npend && !q->dpaged.n) {
        q->spill_base = plog_end_offset(q->data->log); /* the next one goes on from here */
        char *dir = xstrdup(q->data->dir);
        partition_close(q->b, q->data);
        q->data = NULL;
        int rc = store_remove_dir(dir);
        if (rc < 0) LOG_W("queue %s: cannot remove %s: %s", q->name, dir, herald_strerror(rc));
        free(dir);
        return;
    }
    int64_t floor = q->paged.n ? q->paged.v[0].from : plog_end_offset(q->data->log), df = queue_delay_floor(q);
    partition_drop_segments_before(q->data, df < floor ? df : floor);
}

/* ---- maintenance: snapshots of the state log, data log truncation ---- */

/* Calls fn for every live entry of q (ready, delayed, held, moving). */
static void each_live(const queue_t *q, void (*fn)(void *, const qentry_t *), void *ctx)
{
    for (uint32_t l = 0; l < q->nlv; l++)
        for (const qentry_t *e = q->lv[l].head; e; e = e->next) fn(ctx, e);
    qwheel_each(&q->delayed, fn, ctx);
    for (const qentry_t *e = q->held_head; e; e = e->next) fn(ctx, e);
    for (const qentry_t *e = q->moving_head; e; e = e->next) fn(ctx, e);
}

typedef struct {
    int64_t floor, stop;
} floor_ctx_t;

static void floor_of(void *ctx, const qentry_t *e)
{
    floor_ctx_t *c = ctx;
    if (c->floor < c->stop) return; /* settled: the rest is not touched */
    if (e->offset >= 0 && e->offset < c->floor) c->floor = e->offset;
}

/* The lowest stored offset still live, or the data log's end, starting
 * from floor; once it is below stop (where a segment could be dropped),
 * the exact value no longer matters and the entries left are not
 * touched. With hundreds of thousands of delayed messages waiting in an
 * order unrelated to their offsets, reading each one's offset was a walk
 * over that many cold entries every tick with no state pending (1.2 % of
 * the samples of a 3M-message delayed run, each walk one stall of the
 * loop); now a full walk happens when it lets a segment go. */
static int64_t live_floor(const queue_t *q, int64_t floor, int64_t stop)
{
    if (q->paged.n && q->paged.v[0].from < floor) floor = q->paged.v[0].from;
    int64_t df = queue_delay_floor(q);
    if (df < floor) floor = df;
    if (floor < stop) return floor;
    if (q->nlv == 1 && !q->delayed.n && !q->held_head && !q->moving_head) {
        /* One ready list in arrival order: stored offsets ascend. */
        for (const qentry_t *e = q->lv[0].head; e; e = e->next)
            if (e->offset >= 0) return e->offset < floor ? e->offset : floor;
        return floor;
    }
    floor_ctx_t c = {floor, stop};
    each_live(q, floor_of, &c);
    return c.floor;
}

typedef struct {
    wbuf_t *w;
    qranges_t *live;
} snap_ctx_t;

static void snap_put(void *ctx, const qentry_t *e)
{
    snap_ctx_t *sc = ctx;
    if (e->offset < 0) return;
    if (sc->live) {
        qranges_add(sc->live, e->offset, e->offset + 1);
    } else if (e->returns || e->redelivered || (e->ready_at_ms && e->ready_at_ms != e->m->ready_at_ms)) {
        /* (One that waits for its message's own due time, from a delayed
         * exchange, needs none: its record says when.) */
        wbuf_i64(sc->w, e->offset);
        wbuf_i64(sc->w, (int64_t)e->returns | (e->redelivered ? QRET_DELIVERED : 0));
        wbuf_i64(sc->w, e->ready_at_ms);
    }
}

static void write_snapshot(queue_t *q)
{
    wbuf_t v;
    wbuf_init(&v);
    wbuf_i64(&v, plog_end_offset(q->data->log));
    wbuf_i64(&v, q->dmark);
    /* The live set as ranges: in-memory entries plus the paged ranges (a
     * deep backlog is a few ranges, not millions of offsets). */
    qranges_t live = {0};
    snap_ctx_t sc = {&v, &live};
    each_live(q, snap_put, &sc);
    queue_page_live(q, &live);
    for (uint32_t i = 0; i < q->dpaged.n; i++) qranges_add(&live, q->dpaged.v[i].offset, q->dpaged.v[i].offset + 1);
    qranges_normalize(&live);
    wbuf_i64(&v, (int64_t)live.n);
    for (size_t i = 0; i < live.n; i++) {
        wbuf_i64(&v, live.v[i].from);
        wbuf_i64(&v, live.v[i].to);
    }
    qranges_free(&live);
    sc.live = NULL;
    each_live(q, snap_put, &sc);
    for (uint32_t i = 0; i < q->dpaged.n; i++) { /* retry waits on disk keep their count and time */
        const qdelay_t *d = &q->dpaged.v[i];
        if (!d->returns) continue;
        wbuf_i64(&v, d->offset);
        wbuf_i64(&v, (int64_t)d->returns | QRET_DELIVERED);
        wbuf_i64(&v, d->at);
    }
    int64_t target;
    int rc = internal_append(q->b, q->state, "Q", 1, v.p, (int32_t)v.len, &target);
    q->snap_len = (int64_t)v.len;
    wbuf_destroy(&v);
    if (rc < 0) {
        LOG_E("queue %s: cannot write a state snapshot: %s", q->name, herald_strerror(rc));
        return;
    }
    q->snap_offset = target - 1;
    deadletter_restate_intents(q); /* after the snapshot: it may let the older records go */
    q->snap_size = partition_size_bytes(q->state);
}

void queue_maintain(queue_t *q)
{
    if (queue_is_spilling(q)) {
        spill_maintain(q);
        return;
    }
    if (!queue_is_stored(q) || q->npend || q->nacks || q->nrets || q->dmark_dirty) return;
    /* Once a snapshot is durable, the state segments wholly before it go.
     * Nothing here blocks: replay ignores what a snapshot supersedes, so
     * no start-offset file needs to be written. */
    if (q->snap_offset >= 0 && plog_durable_offset(q->state->log) > q->snap_offset) {
        partition_drop_segments_before(q->state, q->snap_offset);
        q->snap_offset = -1;
    } else if (q->snap_offset < 0 &&
               plog_end_offset(q->state->log) - plog_start_offset(q->state->log) > 1 &&
               partition_size_bytes(q->state) - q->snap_size >
                   (2 * q->snap_len > QUEUE_SNAPSHOT_BYTES ? 2 * q->snap_len : QUEUE_SNAPSHOT_BYTES)) {
        write_snapshot(q);
    }
    /* Data segments wholly below the oldest live message go too. Their
     * records are dead by the state log (acked after the last snapshot, or
     * absent from its live list). */
    int64_t stop = plog_drop_boundary(q->data->log);
    if (stop < 0) return; /* one segment: none to drop */
    int64_t floor = plog_end_offset(q->data->log);
    if (q->dedup) {
        int64_t df = queue_dedup_floor(q, clock_wall_ms());
        if (df < floor) floor = df;
    }
    floor = live_floor(q, floor, stop);
    if (floor >= stop && floor <= plog_durable_offset(q->data->log)) partition_drop_segments_before(q->data, floor);
}

/* ---- durability of publishes ---- */

int queue_publish_state(queue_t *q, uint32_t epoch, int64_t target)
{
    if (q->flags & QF_STREAM) return stream_publish_state(q, epoch, target);
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
    if (q->flags & QF_STREAM) return stream_wait(q, w, target);
    if (q->deleted || !q->data) return 1;
    w->target = target;
    return partition_wait(q->data, w);
}

/* ---- deletion and close ---- */

void queue_store_free(queue_t *q)
{
    queue_page_free(q);
    free(q->pend);
    free(q->acks);
    free(q->rets);
}

static void close_logs(queue_t *q, int remove)
{
    for (int i = 0; i < 2; i++) {
        partition_t **pp = i ? &q->state : &q->data;
        if (!*pp) continue;
        char *dir = xstrdup((*pp)->dir);
        int spill = (*pp)->spill;
        partition_close(q->b, *pp);
        *pp = NULL;
        if (remove || spill) {
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

void queue_store_delete(queue_t *q)
{
    for (size_t i = 0; i < q->npend; i++) qmsg_unref(q->pend[i].m);
    q->npend = q->nacks = q->nrets = 0;
    unlink_dirty(q);
    q->deleted = 1; /* before the logs close: their waiters look at it */
    close_logs(q, 1);
}

static void mark_delivered(void *ctx, const qentry_t *e)
{
    /* (A message being dead-lettered was handed out if deliveries > 0.) */
    if (e->offset >= 0 && (e->redelivered || e->deliveries)) push_return(ctx, e, QRET_DELIVERED);
}

void queue_store_close_begin(queue_t *q)
{
    /* After a clean stop only what was really handed out comes back
     * redelivered (the marks written ahead cover a crash): the range mark
     * is cleared and each such message gets a flagged return record,
     * exact whatever the delivery order was (priorities, retries). */
    if (queue_is_stored(q) && q->dmark >= 0) {
        each_live(q, mark_delivered, q);
        queue_flush_all(q->b);
        uint8_t v[8];
        wbuf_put_be64(v, (uint64_t)-1);
        queue_state_append(q, "D", v, 8);
    }
    queue_flush_all(q->b);
}

void queue_store_close_end(queue_t *q)
{
    unlink_dirty(q);
    q->deleted = 1;
    close_logs(q, 0);
}
