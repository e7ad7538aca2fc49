/*
 * Admin operations on queues: peek, redrive, consumer listing. See
 * queue_admin.h. Peek reads paged-out messages back from the data log
 * the way queue_page_in does, but leaves them where they are.
 */
#include "broker/queue_admin.h"

#include <stdlib.h>
#include <string.h>

#include "amqp/ftable.h"
#include "amqp/props.h"
#include "base/log.h"
#include "broker/queue_int.h"
#include "store/batch.h"

/* ---- peek ---- */

static void peek_entry(const qentry_t *e, void (*fn)(void *, const queue_peek_msg_t *), void *ctx)
{
    qmsg_t *m = e->m;
    queue_peek_msg_t pm = {qmsg_exchange(m), qmsg_key(m), qmsg_props(m), qmsg_body(m), m->body_len,
                           e->redelivered, e->returns};
    fn(ctx, &pm);
}

/* Passes the paged records of [from, to) until *left runs out. Returns 0 or <0. */
static int peek_paged_range(queue_t *q, int64_t from, int64_t to, size_t *left, wbuf_t *buf,
                            void (*fn)(void *, const queue_peek_msg_t *), void *ctx)
{
    int64_t end = plog_end_offset(q->data->log); /* pending records are not readable yet */
    if (to > end) to = end;
    int64_t off = from;
    while (*left && off < to) {
        wbuf_reset(buf);
        int64_t n = plog_read(q->data->log, off, end, 1 << 20, buf);
        if (n <= 0) return n < 0 ? (int)n : -1;
        int64_t next = off;
        size_t pos = 0;
        while (pos < buf->len && *left) {
            batch_header_t bh;
            if (batch_header_parse(buf->p + pos, buf->len - pos, &bh) < 0) break;
            size_t blen = batch_size(&bh);
            batch_iter_t it;
            batch_rec_t rec;
            if (batch_iter_init(&it, buf->p + pos, blen) == 0)
                while (*left && batch_iter_next(&it, &rec) > 0) {
                    if (rec.offset < off) continue;
                    next = rec.offset + 1;
                    if (rec.offset >= to) break;
                    if (!queue_page_holds(q, rec.offset)) continue; /* taken back by its level */
                    qrec_hdrs_t h;
                    queue_rec_headers(&rec, &h);
                    queue_peek_msg_t pm = {h.ex,
                                           {rec.key, rec.key_len > 0 && rec.key_len <= 255 ? (uint32_t)rec.key_len : 0},
                                           h.props,
                                           rec.value,
                                           rec.value_len > 0 ? (uint64_t)rec.value_len : 0,
                                           rec.offset <= q->page_dmark,
                                           0};
                    fn(ctx, &pm);
                    (*left)--;
                }
            pos += blen;
        }
        if (next == off) return -1; /* nothing read: a gap the log does not hold */
        off = next;
    }
    return 0;
}

int queue_peek(queue_t *q, size_t limit, void (*fn)(void *ctx, const queue_peek_msg_t *m), void *ctx)
{
    size_t left = limit;
    for (uint32_t l = q->nlv; l-- > 0 && left;)
        for (const qentry_t *e = q->lv[l].head; e && left; e = e->next, left--) peek_entry(e, fn, ctx);
    int rc = 0;
    if (left && q->npaged && q->data) { /* paged records follow the ready lists, in arrival order */
        wbuf_t buf;
        wbuf_init(&buf);
        for (size_t i = 0; i < q->paged.n && left && rc == 0; i++)
            rc = peek_paged_range(q, q->paged.v[i].from, q->paged.v[i].to, &left, &buf, fn, ctx);
        wbuf_destroy(&buf);
        if (rc < 0) LOG_W("queue %s: peek could not read paged messages: %d", q->name, rc);
    }
    return rc < 0 ? rc : (int)(limit - left);
}

/* ---- redrive ---- */

int queue_death_queue(amqp_bytes_t props, amqp_bytes_t *out)
{
    amqp_props_t p;
    fvalue_t deaths, first;
    if (amqp_props_decode(props, &p) < 0 || !(p.flags & PROP_HEADERS)) return 0;
    if (ftable_get(p.headers, "x-death", &deaths) != 1 || deaths.type != FV_ARRAY) return 0;
    ftable_iter_t it = {deaths.v.array};
    if (!farray_next(&it, &first) || first.type != FV_TABLE) return 0; /* the newest event is first */
    return ftable_get_str(first.v.table, "queue", out) == 1 && out->len > 0;
}

size_t queue_redrive(queue_t *q, size_t max, amqp_bytes_t to, void (*done)(void *ctx, int result), void *ctx,
                     size_t *skipped)
{
    *skipped = 0;
    if (q->npaged && q->nready < max) queue_page_in(q, QUEUE_PAGE_BATCH);
    /* First take every chosen entry out of the ready list, so that a move
     * that ends at once (and may deliver, or put its entry back) cannot
     * touch the ones still to start. */
    qentry_t **sel = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t l = q->nlv; l-- > 0 && n < max;) {
        qentry_t *e = q->lv[l].head, *next;
        for (; e && n < max; e = next) {
            next = e->next;
            amqp_bytes_t target;
            if (!to.p && !queue_death_queue(qmsg_props(e->m), &target)) {
                (*skipped)++;
                continue;
            }
            if (n == cap) sel = realloc(sel, (cap = cap ? cap * 2 : 64) * sizeof *sel);
            if (!sel) abort();
            queue_unplace(q, e);
            e->state = QE_MOVING;
            e->prev = NULL;
            e->next = q->moving_head;
            if (q->moving_head) q->moving_head->prev = e;
            q->moving_head = e;
            q->nmoving++;
            sel[n++] = e;
        }
    }
    for (size_t i = 0; i < n; i++) {
        amqp_bytes_t target = to;
        if (!to.p) queue_death_queue(qmsg_props(sel[i]->m), &target); /* a view into the entry's message */
        deadletter_redrive(q, sel[i], target, done, ctx);
    }
    free(sel);
    return n;
}

/* ---- durability of the state log ---- */

int queue_wait_state(queue_t *q, pwaiter_t *w)
{
    if (!queue_is_stored(q) || !q->state) return 1;
    queue_flush_all(q->b); /* what this loop turn recorded, appended now */
    w->target = plog_end_offset(q->state->log);
    return partition_wait(q->state, w);
}

/* ---- consumers ---- */

void queue_foreach_consumer(queue_t *q, void (*fn)(void *ctx, const qconsumer_t *c), void *ctx)
{
    qconsumer_t *c = q->consumers;
    if (!c) return;
    do {
        fn(ctx, c);
        c = c->next;
    } while (c && c != q->consumers);
}
