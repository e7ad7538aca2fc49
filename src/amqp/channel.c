/*
 * AMQP channels: lifecycle, consumers and deliveries, acks/nacks/rejects,
 * prefetch, and method dispatch. Publishing, confirms and transactions are
 * in publish.c.
 *
 * Delivery tags are channel-local and contiguous: the channel keeps a ring
 * of the entries it has handed out, indexed by tag - base, so an ack finds
 * its entry in O(1). A no-ack delivery takes a tag but leaves a hole.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/channel_int.h"
#include "amqp/ftable.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"

static void on_tick(broker_t *b);

amqp_channel_t *amqp_channel_new(amqp_conn_t *c, uint16_t id)
{
    amqp_channel_t *ch = xcalloc(1, sizeof *ch);
    ch->c = c;
    ch->id = id;
    ch->flow_active = 1;
    ch->ring_base = 1;
    broker_set_tick_hook(c->b, on_tick);
    return ch;
}

uint16_t amqp_channel_id(const amqp_channel_t *ch) { return ch->id; }
int amqp_channel_closing(const amqp_channel_t *ch) { return ch->closing; }
amqp_conn_t *amqp_channel_conn(const amqp_channel_t *ch) { return ch->c; }

void amqp_channel_set_last_queue(amqp_channel_t *ch, amqp_bytes_t name)
{
    ch->last_queue_len = (uint8_t)name.len;
    memcpy(ch->last_queue, name.p, name.len);
}

amqp_bytes_t amqp_channel_last_queue(const amqp_channel_t *ch)
{
    return (amqp_bytes_t){(const uint8_t *)ch->last_queue, ch->last_queue_len};
}

void amqp_ch_send(amqp_channel_t *ch, const amqp_method_t *m) { amqp_send_method(ch->c, ch->id, m); }

/* ---- the delivery ring ---- */

static slot_t *ring_at(amqp_channel_t *ch, size_t i) { return &ch->ring[(ch->ring_head + i) % ch->ring_cap]; }

void amqp_ring_push(amqp_channel_t *ch, qentry_t *e, amqp_consumer_t *c)
{
    uint64_t tag = ++ch->last_tag;
    if (!e && ch->ring_len == 0) { /* nothing outstanding: no hole needed */
        ch->ring_base = tag + 1;
        return;
    }
    if (ch->ring_len == ch->ring_cap) {
        size_t cap = ch->ring_cap ? ch->ring_cap * 2 : 64;
        slot_t *r = xmalloc(cap * sizeof *r);
        for (size_t i = 0; i < ch->ring_len; i++) r[i] = *ring_at(ch, i);
        free(ch->ring);
        ch->ring = r;
        ch->ring_cap = cap;
        ch->ring_head = 0;
    }
    /* The loop's time (monotonic ms, read when the loop last woke): a
     * clock reading per delivery was ~3 % of the broker's CPU, for a
     * timeout counted in minutes. */
    *ring_at(ch, ch->ring_len++) = (slot_t){e, c, (int64_t)uv_now(ch->c->tcp.loop)};
}

/* Drops holes at the head. */
static void ring_trim(amqp_channel_t *ch)
{
    while (ch->ring_len && !ring_at(ch, 0)->e) {
        ch->ring_head = (ch->ring_head + 1) % ch->ring_cap;
        ch->ring_len--;
        ch->ring_base++;
    }
    if (!ch->ring_len) ch->ring_base = ch->last_tag + 1;
}

/* The slot for tag, or NULL if the tag is not outstanding. */
static slot_t *ring_find(amqp_channel_t *ch, uint64_t tag)
{
    if (tag < ch->ring_base || tag - ch->ring_base >= ch->ring_len) return NULL;
    slot_t *s = ring_at(ch, (size_t)(tag - ch->ring_base));
    return s->e ? s : NULL;
}

/* Takes the entry out of its slot, returning the consumer's credit. */
static qentry_t *slot_take(amqp_channel_t *ch, slot_t *s)
{
    qentry_t *e = s->e;
    if (s->c) s->c->unacked--;
    ch->unacked--;
    s->e = NULL;
    s->c = NULL;
    return e;
}

/* ---- consumers ---- */

static amqp_consumer_t *consumer_of(qconsumer_t *qc) { return (amqp_consumer_t *)qc; }

static int consumer_can_take(qconsumer_t *qc)
{
    amqp_consumer_t *c = consumer_of(qc);
    amqp_channel_t *ch = c->ch;
    if (ch->closing || !ch->flow_active || ch->c->state != AC_RUNNING) return 0;
    if (amqp_conn_backlog(ch->c) >= AMQP_BACKLOG_MAX) return 0;
    if (c->no_ack) return 1;
    if (c->prefetch && c->unacked >= c->prefetch) return 0;
    if (ch->prefetch_global && ch->unacked >= ch->prefetch_global) return 0;
    return 1;
}

static void consumer_deliver(qconsumer_t *qc, qentry_t *e)
{
    amqp_consumer_t *c = consumer_of(qc);
    amqp_channel_t *ch = c->ch;
    qmsg_t *m = e->m;
    amqp_method_t d = {.id = AMQP_BASIC_DELIVER};
    d.m.basic_deliver.consumer_tag = (amqp_bytes_t){c->tag, c->tag_len};
    d.m.basic_deliver.delivery_tag = ch->last_tag + 1;
    d.m.basic_deliver.redelivered = e->redelivered;
    d.m.basic_deliver.exchange = qmsg_exchange(m);
    d.m.basic_deliver.routing_key = qmsg_key(m);
    wbuf_t pw;
    wbuf_init(&pw);
    amqp_send_content(ch->c, ch->id, &d, queue_entry_props(e, 0, &pw), qmsg_body(m), m->body_len);
    wbuf_destroy(&pw);
    if (c->no_ack) {
        amqp_ring_push(ch, NULL, NULL);
        queue_ack(e);
    } else {
        amqp_ring_push(ch, e, c);
        c->unacked++;
        ch->unacked++;
    }
}

static void consumer_unlink(amqp_channel_t *ch, amqp_consumer_t *c)
{
    for (amqp_consumer_t **pp = &ch->consumers; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    /* Its outstanding deliveries no longer count against it. */
    for (size_t i = 0; i < ch->ring_len; i++) {
        slot_t *s = ring_at(ch, i);
        if (s->c == c) s->c = NULL;
    }
}

static void consumer_cancelled(qconsumer_t *qc)
{
    amqp_consumer_t *c = consumer_of(qc);
    amqp_channel_t *ch = c->ch;
    if (ch->c->caps & CAP_CANCEL_NOTIFY) {
        amqp_method_t m = {.id = AMQP_BASIC_CANCEL};
        m.m.basic_cancel.consumer_tag = (amqp_bytes_t){c->tag, c->tag_len};
        m.m.basic_cancel.no_wait = 1;
        amqp_ch_send(ch, &m);
        amqp_conn_flush(ch->c);
    }
    consumer_unlink(ch, c);
    free(c);
}

static amqp_consumer_t *consumer_find(amqp_channel_t *ch, amqp_bytes_t tag)
{
    for (amqp_consumer_t *c = ch->consumers; c; c = c->next)
        if (c->tag_len == tag.len && !memcmp(c->tag, tag.p, tag.len)) return c;
    return NULL;
}

/* Detaches and frees c; an auto-delete queue left without consumers goes. */
static void consumer_cancel(amqp_channel_t *ch, amqp_consumer_t *c)
{
    queue_t *q = c->q;
    consumer_unlink(ch, c);
    queue_consumer_remove(q, &c->qc);
    free(c);
    amqp_queue_maybe_autodelete(ch->c, q);
}

void amqp_channel_kick(amqp_channel_t *ch)
{
    if (ch->closing) return;
    /* A queue may be deleted by a kick of another (auto-delete): walk
     * carefully, one consumer at a time. */
    for (amqp_consumer_t *c = ch->consumers; c; c = c->next) queue_kick(c->q);
}

/* ---- errors and lifecycle ---- */

static void release_all(amqp_channel_t *ch)
{
    /* Consumers first, so that requeued messages go to others. */
    while (ch->consumers) consumer_cancel(ch, ch->consumers);
    if (ch->ring_len) {
        qentry_t **es = xmalloc(ch->ring_len * sizeof *es);
        size_t n = 0;
        for (size_t i = 0; i < ch->ring_len; i++) {
            slot_t *s = ring_at(ch, i);
            if (s->e) es[n++] = slot_take(ch, s);
        }
        ch->ring_len = 0;
        queue_requeue(es, n);
        free(es);
    }
    if (ch->cf_waiting) {
        pwaiter_cancel(&ch->cf_wait);
        ch->cf_waiting = 0;
    }
    while (ch->cf_len) {
        amqp_cf_release(amqp_cf_at(ch, 0));
        ch->cf_head = (ch->cf_head + 1) % ch->cf_cap;
        ch->cf_len--;
    }
    while (ch->tx_head) {
        txop_t *op = ch->tx_head;
        ch->tx_head = op->next;
        qmsg_unref(op->m);
        free(op);
    }
    ch->tx_tail = NULL;
    qmsg_unref(ch->msg);
    ch->msg = NULL;
    ch->content = 0;
}

void amqp_channel_free(amqp_channel_t *ch)
{
    release_all(ch);
    free(ch->ring);
    free(ch->taken);
    free(ch->cf);
    free(ch);
}

void amqp_channel_error(amqp_channel_t *ch, uint16_t code, uint32_t method_id, const char *fmt, ...)
{
    if (ch->closing) return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    LOG_D("amqp %s: closing channel %u: %u %s", ch->c->peer, ch->id, code, text);
    amqp_method_t m = {.id = AMQP_CHANNEL_CLOSE};
    m.m.channel_close.reply_code = code;
    m.m.channel_close.reply_text = amqp_cstr(text);
    m.m.channel_close.class_id = (uint16_t)(method_id >> 16);
    m.m.channel_close.method_id = (uint16_t)method_id;
    amqp_ch_send(ch, &m);
    release_all(ch);
    ch->closing = 1;
}

void amqp_channel_after_input(amqp_channel_t *ch)
{
    if (!ch->closing && ch->confirm_mode) amqp_confirms_advance(ch);
}

/* ---- consume, get, cancel, qos ---- */

static int consume_reply(amqp_channel_t *ch, const amqp_basic_consume_t *a)
{
    if (!a->no_ack) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_CONSUME,
                           "PRECONDITION_FAILED - reply consumer cannot acknowledge");
        return -1;
    }
    if (ch->reply_consuming) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_CONSUME,
                           "PRECONDITION_FAILED - reply consumer already set");
        return -1;
    }
    amqp_bytes_t tag = a->consumer_tag.len ? a->consumer_tag : amqp_cstr(REPLY_QUEUE);
    memcpy(ch->reply_tag, tag.p, tag.len);
    ch->reply_tag_len = (uint8_t)tag.len;
    ch->reply_consuming = 1;
    if (!a->no_wait) {
        amqp_method_t ok = {.id = AMQP_BASIC_CONSUME_OK};
        ok.m.basic_consume_ok.consumer_tag = tag;
        amqp_ch_send(ch, &ok);
    }
    return 0;
}

static int handle_consume(amqp_channel_t *ch, const amqp_basic_consume_t *a)
{
    if (amqp_bytes_eq(a->queue, REPLY_QUEUE)) return consume_reply(ch, a);
    queue_t *q = amqp_queue_for(ch, a->queue, AMQP_BASIC_CONSUME);
    if (!q) return -1;
    amqp_bytes_t tag = a->consumer_tag;
    char gen[64];
    if (!tag.len) {
        uint8_t rnd[12];
        uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL);
        int n = snprintf(gen, sizeof gen, "amq.ctag-");
        for (size_t i = 0; i < sizeof rnd; i++) n += snprintf(gen + n, sizeof gen - (size_t)n, "%02x", rnd[i]);
        tag = amqp_cstr(gen);
    } else if (consumer_find(ch, tag)) {
        amqp_conn_error(ch->c, AMQP_NOT_ALLOWED, AMQP_BASIC_CONSUME, "NOT_ALLOWED - attempt to reuse consumer tag '%.*s'",
                        (int)tag.len, (const char *)tag.p);
        return -1;
    }
    /* (RabbitMQ 3.10.8 ignores exclusive on a stream: each reader has its own position.) */
    if (!(queue_flags(q) & QF_STREAM) && queue_consumer_count(q) &&
        (a->exclusive || queue_has_exclusive_consumer(q))) {
        amqp_channel_error(ch, AMQP_ACCESS_REFUSED, AMQP_BASIC_CONSUME,
                           "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use", queue_name_cstr(q));
        return -1;
    }
    if ((queue_flags(q) & QF_STREAM) && amqp_stream_consume_check(ch, a, q) < 0) return -1;
    amqp_consumer_t *c = xcalloc(1, sizeof *c);
    c->ch = ch;
    c->q = q;
    memcpy(c->tag, tag.p, tag.len);
    c->tag_len = (uint8_t)tag.len;
    c->no_ack = a->no_ack;
    c->prefetch = ch->prefetch_next;
    c->qc.can_take = consumer_can_take;
    c->qc.deliver = consumer_deliver;
    c->qc.cancelled = consumer_cancelled;
    c->qc.exclusive = a->exclusive;
    c->next = ch->consumers;
    ch->consumers = c;
    if (!a->no_wait) {
        amqp_method_t ok = {.id = AMQP_BASIC_CONSUME_OK};
        ok.m.basic_consume_ok.consumer_tag = tag;
        amqp_ch_send(ch, &ok);
    }
    queue_consumer_add(q, &c->qc); /* delivers at once what fits */
    if (queue_flags(q) & QF_STREAM) amqp_stream_consume_start(ch, q, &c->qc, a->arguments);
    return 0;
}

static int handle_cancel(amqp_channel_t *ch, const amqp_basic_cancel_t *a)
{
    amqp_consumer_t *c = consumer_find(ch, a->consumer_tag);
    if (c) consumer_cancel(ch, c);
    else if (ch->reply_consuming && ch->reply_tag_len == a->consumer_tag.len &&
             !memcmp(ch->reply_tag, a->consumer_tag.p, a->consumer_tag.len))
        ch->reply_consuming = 0;
    if (!a->no_wait) {
        amqp_method_t ok = {.id = AMQP_BASIC_CANCEL_OK};
        ok.m.basic_cancel_ok.consumer_tag = a->consumer_tag;
        amqp_ch_send(ch, &ok);
    }
    return 0;
}

static int handle_get(amqp_channel_t *ch, const amqp_basic_get_t *a)
{
    queue_t *q = amqp_queue_for(ch, a->queue, AMQP_BASIC_GET);
    if (!q || amqp_stream_refuse(ch, q, AMQP_BASIC_GET)) return -1;
    qentry_t *e = queue_get(q);
    if (!e) {
        amqp_method_t m = {.id = AMQP_BASIC_GET_EMPTY};
        amqp_ch_send(ch, &m);
        return 0;
    }
    qmsg_t *m = e->m;
    amqp_method_t g = {.id = AMQP_BASIC_GET_OK};
    g.m.basic_get_ok.delivery_tag = ch->last_tag + 1;
    g.m.basic_get_ok.redelivered = e->redelivered;
    g.m.basic_get_ok.exchange = qmsg_exchange(m);
    g.m.basic_get_ok.routing_key = qmsg_key(m);
    g.m.basic_get_ok.message_count = queue_ready_count(q);
    wbuf_t pw;
    wbuf_init(&pw);
    amqp_send_content(ch->c, ch->id, &g, queue_entry_props(e, 1, &pw), qmsg_body(m), m->body_len);
    wbuf_destroy(&pw);
    if (a->no_ack) {
        amqp_ring_push(ch, NULL, NULL);
        queue_ack(e);
    } else {
        amqp_ring_push(ch, e, NULL);
        ch->unacked++;
    }
    return 0;
}

static int handle_qos(amqp_channel_t *ch, const amqp_basic_qos_t *a)
{
    if (a->prefetch_size) {
        amqp_conn_error(ch->c, AMQP_NOT_IMPLEMENTED, AMQP_BASIC_QOS, "NOT_IMPLEMENTED - prefetch_size!=0 (%u)",
                        a->prefetch_size);
        return -1;
    }
    if (a->global) ch->prefetch_global = a->prefetch_count;
    else ch->prefetch_next = a->prefetch_count;
    /* A per-consumer change applies to this channel's existing consumers
     * too, as RabbitMQ does when it is issued again at run time. */
    if (!a->global)
        for (amqp_consumer_t *c = ch->consumers; c; c = c->next) c->prefetch = a->prefetch_count;
    amqp_method_t ok = {.id = AMQP_BASIC_QOS_OK};
    amqp_ch_send(ch, &ok);
    amqp_channel_kick(ch);
    return 0;
}

/* ---- acks ---- */

static void unknown_tag(amqp_channel_t *ch, uint32_t method, uint64_t tag)
{
    amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, method, "PRECONDITION_FAILED - unknown delivery tag %llu",
                       (unsigned long long)tag);
}

/* Room for n in ch->taken. */
static qentry_t **taken_room(amqp_channel_t *ch, size_t n)
{
    if (n > ch->taken_cap) {
        size_t cap = ch->taken_cap ? ch->taken_cap : 64;
        while (cap < n) cap *= 2;
        free(ch->taken);
        ch->taken = xmalloc(cap * sizeof *ch->taken);
        ch->taken_cap = cap;
    }
    return ch->taken;
}

/* Collects the entries an ack/nack/reject covers. Returns the count, or -1
 * after raising unknown delivery tag. *out is ch->taken (valid until the
 * next call). */
static ssize_t take_tags(amqp_channel_t *ch, uint32_t method, uint64_t tag, int multiple, qentry_t ***out)
{
    *out = NULL;
    if (multiple) {
        if (tag > ch->last_tag) {
            unknown_tag(ch, method, tag);
            return -1;
        }
        uint64_t upto = tag == 0 ? ch->last_tag : tag;
        qentry_t **es = taken_room(ch, ch->ring_len ? ch->ring_len : 1);
        size_t n = 0;
        for (size_t i = 0; i < ch->ring_len && ch->ring_base + i <= upto; i++) {
            slot_t *s = ring_at(ch, i);
            if (s->e) es[n++] = slot_take(ch, s);
        }
        ring_trim(ch);
        *out = es;
        return (ssize_t)n;
    }
    slot_t *s = ring_find(ch, tag);
    if (!s) {
        unknown_tag(ch, method, tag);
        return -1;
    }
    qentry_t **es = taken_room(ch, 1);
    es[0] = slot_take(ch, s);
    ring_trim(ch);
    *out = es;
    return 1;
}

int amqp_do_ack(amqp_channel_t *ch, uint32_t method, uint64_t tag, int multiple, int ack, int requeue)
{
    qentry_t **es;
    ssize_t n = take_tags(ch, method, tag, multiple, &es);
    if (n < 0) return -1;
    if (!ack && amqp_stream_settle_refused(ch, method, es, (size_t)n)) return -1;
    if (ack) {
        /* Acked a window after their delivery, entries and messages are
         * seldom still in a cache: the entries of each 64 are asked
         * for at once, then their messages, so that the misses overlap. */
        for (ssize_t a = 0; a < n; a += 64) {
            ssize_t b = n - a < 64 ? n : a + 64;
            for (ssize_t i = a; i < b; i++) __builtin_prefetch(es[i], 1);
            for (ssize_t i = a; i < b; i++) __builtin_prefetch(es[i]->m, 1);
            for (ssize_t i = a; i < b; i++) queue_ack(es[i]);
        }
    }
    else if (!requeue)
        for (ssize_t i = 0; i < n; i++) queue_reject(es[i]); /* dead-lettered where configured */
    else
        queue_requeue(es, (size_t)n);
    amqp_channel_kick(ch);
    return 0;
}

static int tx_hold_ack(amqp_channel_t *ch, uint32_t method, uint64_t tag, int multiple, int kind, int requeue)
{
    /* Validate now (RabbitMQ checks tags when the method arrives). */
    if (!(multiple && tag == 0) && (tag > ch->last_tag || (!multiple && !ring_find(ch, tag)))) {
        unknown_tag(ch, method, tag);
        return -1;
    }
    txop_t *op = xcalloc(1, sizeof *op);
    op->kind = kind;
    op->tag = tag;
    op->multiple = (uint8_t)multiple;
    op->requeue = (uint8_t)requeue;
    if (ch->tx_tail) ch->tx_tail->next = op;
    else ch->tx_head = op;
    ch->tx_tail = op;
    return 0;
}

static int handle_recover(amqp_channel_t *ch, int reply, int requeue)
{
    if (!requeue) { /* as RabbitMQ: redelivery to the same consumer is not offered */
        amqp_conn_error(ch->c, AMQP_NOT_IMPLEMENTED, reply ? AMQP_BASIC_RECOVER : AMQP_BASIC_RECOVER_ASYNC,
                        "NOT_IMPLEMENTED - requeue=false");
        return -1;
    }
    qentry_t **es;
    ssize_t n = take_tags(ch, AMQP_BASIC_RECOVER, 0, 1, &es);
    if (n > 0 && amqp_stream_settle_refused(ch, AMQP_BASIC_RECOVER, es, (size_t)n)) return -1;
    if (n > 0) queue_requeue(es, (size_t)n);
    if (reply) {
        amqp_method_t ok = {.id = AMQP_BASIC_RECOVER_OK};
        amqp_ch_send(ch, &ok);
    }
    return 0;
}

/* ---- the consumer acknowledgement timeout ---- */

/* The oldest outstanding delivery (the ring's head after trimming) past
 * its queue's x-consumer-timeout (or amqp.consumer.timeout) closes the
 * channel with PRECONDITION_FAILED, as RabbitMQ does; closing it gives
 * its deliveries back (so a retry backoff applies). */
static void check_timeout(amqp_channel_t *ch, int64_t now)
{
    if (ch->closing || !ch->ring_len || !ring_at(ch, 0)->e) return;
    slot_t *s = ring_at(ch, 0);
    int64_t t = queue_consumer_timeout_ms(s->e->q);
    if (t < 0) t = broker_config(ch->c->b)->amqp_consumer_timeout_ms;
    if (t <= 0 || now - s->at_ms < t) return;
    amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, 0,
                       "PRECONDITION_FAILED - delivery acknowledgement on channel %u timed out. Timeout value used: "
                       "%lld ms. This timeout value can be configured, see consumers doc guide to learn more",
                       ch->id, (long long)t);
}

static void on_tick(broker_t *b)
{
    (void)b;
    int64_t now = clock_mono_ms();
    for (amqp_conn_t *c = amqp_conn_next(NULL); c; c = amqp_conn_next(c)) {
        if (c->state != AC_RUNNING) continue;
        for (uint32_t i = 1; i < c->chan_cap; i++)
            if (c->channels[i]) check_timeout(c->channels[i], now);
    }
}

/* ---- dispatch ---- */

static int channel_method(amqp_channel_t *ch, const amqp_method_t *m)
{
    switch (m->id) {
    case AMQP_CHANNEL_OPEN:
        if (ch->opened) {
            amqp_conn_error(ch->c, AMQP_CHANNEL_ERROR, m->id, "CHANNEL_ERROR - second 'channel.open' seen");
            return -1;
        }
        {
            amqp_method_t ok = {.id = AMQP_CHANNEL_OPEN_OK};
            amqp_ch_send(ch, &ok);
            ch->opened = 1;
        }
        return 0;
    case AMQP_CHANNEL_FLOW: {
        if (!m->m.channel_flow.active) { /* as RabbitMQ: clients pause by not reading */
            amqp_conn_error(ch->c, AMQP_NOT_IMPLEMENTED, m->id, "NOT_IMPLEMENTED - active=false");
            return -1;
        }
        ch->flow_active = m->m.channel_flow.active;
        amqp_method_t ok = {.id = AMQP_CHANNEL_FLOW_OK};
        ok.m.channel_flow_ok.active = m->m.channel_flow.active;
        amqp_ch_send(ch, &ok);
        if (ch->flow_active) amqp_channel_kick(ch);
        return 0;
    }
    case AMQP_CHANNEL_FLOW_OK: return 0;
    case AMQP_CHANNEL_CLOSE: {
        amqp_method_t ok = {.id = AMQP_CHANNEL_CLOSE_OK};
        amqp_ch_send(ch, &ok);
        amqp_conn_t *c = ch->c;
        amqp_conn_drop_channel(c, ch->id);
        amqp_channel_free(ch);
        return 1; /* the channel is gone */
    }
    case AMQP_CHANNEL_CLOSE_OK: return 0;
    case AMQP_BASIC_QOS: return handle_qos(ch, &m->m.basic_qos);
    case AMQP_BASIC_CONSUME: return handle_consume(ch, &m->m.basic_consume);
    case AMQP_BASIC_CANCEL: return handle_cancel(ch, &m->m.basic_cancel);
    case AMQP_BASIC_PUBLISH: return amqp_publish_method(ch, &m->m.basic_publish);
    case AMQP_BASIC_GET: return handle_get(ch, &m->m.basic_get);
    case AMQP_BASIC_ACK:
        if (ch->tx_mode) return tx_hold_ack(ch, m->id, m->m.basic_ack.delivery_tag, m->m.basic_ack.multiple, 1, 0);
        return amqp_do_ack(ch, m->id, m->m.basic_ack.delivery_tag, m->m.basic_ack.multiple, 1, 0);
    case AMQP_BASIC_NACK:
        if (ch->tx_mode)
            return tx_hold_ack(ch, m->id, m->m.basic_nack.delivery_tag, m->m.basic_nack.multiple, 2,
                               m->m.basic_nack.requeue);
        return amqp_do_ack(ch, m->id, m->m.basic_nack.delivery_tag, m->m.basic_nack.multiple, 0, m->m.basic_nack.requeue);
    case AMQP_BASIC_REJECT:
        if (ch->tx_mode)
            return tx_hold_ack(ch, m->id, m->m.basic_reject.delivery_tag, 0, 2, m->m.basic_reject.requeue);
        return amqp_do_ack(ch, m->id, m->m.basic_reject.delivery_tag, 0, 0, m->m.basic_reject.requeue);
    case AMQP_BASIC_RECOVER: return handle_recover(ch, 1, m->m.basic_recover.requeue);
    case AMQP_BASIC_RECOVER_ASYNC: return handle_recover(ch, 0, m->m.basic_recover_async.requeue);
    case AMQP_CONFIRM_SELECT:
        if (ch->tx_mode) {
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, m->id,
                               "PRECONDITION_FAILED - cannot switch from tx to confirm mode");
            return -1;
        }
        ch->confirm_mode = 1;
        if (!m->m.confirm_select.nowait) {
            amqp_method_t ok = {.id = AMQP_CONFIRM_SELECT_OK};
            amqp_ch_send(ch, &ok);
        }
        return 0;
    case AMQP_TX_SELECT:
        if (ch->confirm_mode) {
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, m->id,
                               "PRECONDITION_FAILED - cannot switch from confirm to tx mode");
            return -1;
        }
        ch->tx_mode = 1;
        {
            amqp_method_t ok = {.id = AMQP_TX_SELECT_OK};
            amqp_ch_send(ch, &ok);
        }
        return 0;
    case AMQP_TX_COMMIT: return amqp_tx_commit(ch);
    case AMQP_TX_ROLLBACK: return amqp_tx_rollback(ch);
    default:
        if ((m->id >> 16) == AMQP_CLASS_EXCHANGE || (m->id >> 16) == AMQP_CLASS_QUEUE)
            return amqp_handle_entity(ch, m);
        amqp_conn_error(ch->c, AMQP_COMMAND_INVALID, m->id, "COMMAND_INVALID - %s not expected from a client",
                        amqp_method_name(m->id));
        return -1;
    }
}

/* basic.publish is timed from its method frame to the frame that completes
 * the message (where it is routed and stored), with two clock readings:
 * when all its frames are handled in one parse pass, as nearly all are,
 * that is the broker's handling time. A message whose frames arrive in
 * several reads would count the time between them too (the network's), so
 * for it only the completing frame's handling is counted.
 *
 * The reading that ends one timed method is also the start of the next
 * method frame of the same connection and pass: nothing runs between them
 * but its decoding, and back-to-back publishes take one reading each
 * instead of two (27 ns each on the VMs measured). */
static struct {
    uint64_t conn, pass; /* whose pass it ended (amqp_conn.id, parse_passes) */
    int64_t ns;
} g_mark;

static int64_t method_start(const amqp_conn_t *c)
{
    return g_mark.conn == c->id && g_mark.pass == c->parse_passes ? g_mark.ns : clock_mono_ns();
}

static void method_end(broker_t *b, uint32_t id, int64_t t0, uint64_t conn, uint64_t pass)
{
    int64_t now = clock_mono_ns();
    broker_observe_amqp_method(b, id, now - t0);
    g_mark.conn = conn;
    g_mark.pass = pass;
    g_mark.ns = now;
}

static int content_frame(amqp_channel_t *ch, uint8_t type, const uint8_t *payload, uint32_t len)
{
    broker_t *b = ch->c->b;
    uint64_t conn = ch->c->id, pass = ch->c->parse_passes;
    int same = pass == ch->content_pass;
    int64_t t0 = same ? ch->content_t0 : clock_mono_ns();
    int rc = type == AMQP_FRAME_HEADER ? amqp_publish_header(ch, payload, len) : amqp_publish_body(ch, payload, len);
    if (rc >= 0 && !ch->content && !ch->closing) method_end(b, AMQP_BASIC_PUBLISH, t0, conn, pass);
    return rc;
}

int amqp_channel_frame(amqp_channel_t *ch, uint8_t type, const uint8_t *payload, uint32_t len)
{
    if (ch->closing) {
        /* After our channel.close only close/close-ok matter. */
        if (type == AMQP_FRAME_METHOD && len >= 4) {
            uint32_t id = buf_get_be32(payload);
            amqp_conn_t *c = ch->c;
            if (id == AMQP_CHANNEL_CLOSE_OK || id == AMQP_CHANNEL_CLOSE) {
                if (id == AMQP_CHANNEL_CLOSE) {
                    amqp_method_t ok = {.id = AMQP_CHANNEL_CLOSE_OK};
                    amqp_ch_send(ch, &ok);
                }
                amqp_conn_drop_channel(c, ch->id);
                amqp_channel_free(ch);
            }
        }
        return 0;
    }
    if (type == AMQP_FRAME_HEADER) {
        if (ch->content != 1) {
            amqp_conn_error(ch->c, AMQP_UNEXPECTED_FRAME, 0,
                            "UNEXPECTED_FRAME - expected method frame, got non method frame instead");
            return -1;
        }
        return content_frame(ch, type, payload, len);
    }
    if (type == AMQP_FRAME_BODY) {
        if (ch->content != 2) {
            amqp_conn_error(ch->c, AMQP_UNEXPECTED_FRAME, 0,
                            "UNEXPECTED_FRAME - expected %s frame, got body frame instead",
                            ch->content == 1 ? "content header" : "method");
            return -1;
        }
        return content_frame(ch, type, payload, len);
    }
    amqp_method_t m;
    int rc = amqp_method_decode(payload, len, &m);
    if (ch->content) {
        amqp_conn_error(ch->c, AMQP_UNEXPECTED_FRAME, ch->content_method,
                        "UNEXPECTED_FRAME - expected content %s frame, got method frame instead",
                        ch->content == 1 ? "header" : "body");
        return -1;
    }
    if (rc == HE_NOT_FOUND) {
        amqp_conn_error(ch->c, AMQP_NOT_IMPLEMENTED, m.id, "NOT_IMPLEMENTED - unknown method %u.%u", m.id >> 16,
                        m.id & 0xffff);
        return -1;
    }
    if (rc < 0) {
        amqp_conn_error(ch->c, AMQP_FRAME_ERROR, len >= 4 ? m.id : 0, "FRAME_ERROR - cannot decode %s",
                        amqp_method_name(m.id) ? amqp_method_name(m.id) : "method frame");
        return -1;
    }
    if ((m.id >> 16) == AMQP_CLASS_CONNECTION) {
        amqp_conn_error(ch->c, AMQP_COMMAND_INVALID, m.id, "COMMAND_INVALID - %s on channel %u",
                        amqp_method_name(m.id), ch->id);
        return -1;
    }
    if (!ch->opened && m.id != AMQP_CHANNEL_OPEN) {
        amqp_conn_error(ch->c, AMQP_CHANNEL_ERROR, m.id, "CHANNEL_ERROR - expected 'channel.open'");
        return -1;
    }
    broker_t *b = ch->c->b; /* channel_method may free ch */
    uint64_t conn = ch->c->id, pass = ch->c->parse_passes;
    int64_t t0 = method_start(ch->c);
    if (m.id == AMQP_BASIC_PUBLISH) {
        rc = channel_method(ch, &m);
        if (rc >= 0) { /* timed when the content completes (content_frame) */
            ch->content_t0 = t0;
            ch->content_pass = pass;
        }
        return rc < 0 ? rc : 0;
    }
    rc = channel_method(ch, &m);
    method_end(b, m.id, t0, conn, pass);
    return rc < 0 ? rc : 0;
}
