/*
 * Publishing on a channel: content assembly (basic.publish, the content
 * header, body frames), routing into queues, direct reply-to, publisher
 * confirms and transactions.
 *
 * Publisher confirms: each publish in confirm mode gets the next sequence
 * number and an entry in a FIFO with the queue logs it must reach. The
 * FIFO's head is confirmed when all of them are durable; runs of confirmed
 * publishes are acked with multiple=true, a failed one is nacked in its
 * place, so a multiple ack never covers a nacked tag.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/channel_int.h"
#include "amqp/ftable.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"

static xroute_t g_route; /* scratch for routing (the loop is single-threaded) */

/* ---- confirms ---- */

confirm_t *amqp_cf_at(amqp_channel_t *ch, size_t i) { return &ch->cf[(ch->cf_head + i) % ch->cf_cap]; }

static confirm_t *cf_push(amqp_channel_t *ch)
{
    if (ch->cf_len == ch->cf_cap) {
        size_t cap = ch->cf_cap ? ch->cf_cap * 2 : 64;
        confirm_t *r = xmalloc(cap * sizeof *r);
        for (size_t i = 0; i < ch->cf_len; i++) r[i] = *amqp_cf_at(ch, i);
        free(ch->cf);
        ch->cf = r;
        ch->cf_cap = cap;
        ch->cf_head = 0;
    }
    confirm_t *cf = amqp_cf_at(ch, ch->cf_len++);
    memset(cf, 0, sizeof *cf);
    cf->seq = ++ch->pub_seq;
    return cf;
}

static void cf_add_part(confirm_t *cf, queue_t *q, uint32_t epoch, int64_t target)
{
    queue_pin(q);
    cpart_t p = {q, epoch, target};
    if (cf->nparts == 0) {
        cf->one = p;
    } else {
        if (cf->nparts == 1) {
            cf->parts = xmalloc(4 * sizeof *cf->parts);
            cf->parts[0] = cf->one;
        } else if ((cf->nparts & (cf->nparts - 1)) == 0 && cf->nparts >= 4) {
            cf->parts = xrealloc(cf->parts, 2 * cf->nparts * sizeof *cf->parts);
        }
        cf->parts[cf->nparts] = p;
    }
    cf->nparts++;
}

static cpart_t *cf_part(confirm_t *cf, uint32_t i) { return cf->nparts == 1 ? &cf->one : &cf->parts[i]; }

void amqp_cf_release(confirm_t *cf)
{
    for (uint32_t i = cf->done; i < cf->nparts; i++) queue_unpin(cf_part(cf, i)->q);
    if (cf->nparts > 1) free(cf->parts);
    cf->nparts = cf->done = 0;
}

static void send_confirm(amqp_channel_t *ch, uint32_t id, uint64_t tag, int multiple)
{
    amqp_method_t m = {.id = id};
    if (id == AMQP_BASIC_ACK) {
        m.m.basic_ack.delivery_tag = tag;
        m.m.basic_ack.multiple = (uint8_t)multiple;
    } else {
        m.m.basic_nack.delivery_tag = tag;
        m.m.basic_nack.multiple = (uint8_t)multiple;
        m.m.basic_nack.requeue = 0;
    }
    amqp_ch_send(ch, &m);
}

static void on_cf_wait(pwaiter_t *w, int status);

/* Confirms what is durable at the head of the FIFO; waits for the rest. */
void amqp_confirms_advance(amqp_channel_t *ch)
{
    if (ch->cf_waiting) return;
    uint64_t run_last = 0;
    size_t run = 0;
    while (ch->cf_len) {
        confirm_t *cf = amqp_cf_at(ch, 0);
        while (cf->done < cf->nparts && !cf->failed) {
            cpart_t *p = cf_part(cf, cf->done);
            int st = queue_publish_state(p->q, p->epoch, p->target);
            if (st == 0) {
                ch->cf_wait.cb = on_cf_wait;
                ch->cf_wait.ctx = ch;
                if (queue_wait(p->q, &ch->cf_wait, p->target) == 0) {
                    ch->cf_waiting = 1;
                    goto out;
                }
                st = queue_publish_state(p->q, p->epoch, p->target);
                if (st == 0) st = HE_STORAGE; /* the log failed: partition_wait gave up */
            }
            if (st < 0) cf->failed = 1;
            queue_unpin(p->q);
            cf->done++;
        }
        if (cf->failed) {
            if (run) send_confirm(ch, AMQP_BASIC_ACK, run_last, run > 1);
            run = 0;
            send_confirm(ch, AMQP_BASIC_NACK, cf->seq, 0);
        } else {
            run_last = cf->seq;
            run++;
        }
        amqp_cf_release(cf);
        ch->cf_head = (ch->cf_head + 1) % ch->cf_cap;
        ch->cf_len--;
    }
out:
    if (run) send_confirm(ch, AMQP_BASIC_ACK, run_last, run > 1);
}

static void on_cf_wait(pwaiter_t *w, int status)
{
    (void)status;
    amqp_channel_t *ch = w->ctx;
    ch->cf_waiting = 0;
    amqp_confirms_advance(ch);
    amqp_conn_flush(ch->c);
}

/* ---- publishing ---- */

static void send_return(amqp_channel_t *ch, qmsg_t *m)
{
    amqp_method_t r = {.id = AMQP_BASIC_RETURN};
    r.m.basic_return.reply_code = AMQP_NO_ROUTE;
    r.m.basic_return.reply_text = amqp_cstr("NO_ROUTE");
    r.m.basic_return.exchange = qmsg_exchange(m);
    r.m.basic_return.routing_key = qmsg_key(m);
    amqp_send_content(ch->c, ch->id, &r, qmsg_props(m), qmsg_body(m), m->body_len);
}

/* A reply to a direct reply-to address "amq.rabbitmq.reply-to.<conn
 * id hex>.<channel>": handed straight to that channel's reply consumer,
 * never stored (as RabbitMQ: at most once). Returns 1 if delivered. */
static int deliver_reply(qmsg_t *m)
{
    amqp_bytes_t key = qmsg_key(m);
    size_t pl = sizeof REPLY_PREFIX - 1;
    char buf[64];
    if (key.len <= pl || key.len - pl >= sizeof buf) return 0;
    memcpy(buf, key.p + pl, key.len - pl);
    buf[key.len - pl] = '\0';
    unsigned long long id;
    unsigned chan;
    char tail;
    if (sscanf(buf, "%16llx.%u%c", &id, &chan, &tail) != 2) return 0;
    amqp_conn_t *c = amqp_conn_by_id(id);
    amqp_channel_t *to = c && chan ? amqp_conn_channel(c, chan) : NULL;
    if (!to) return 0;
    if (!to->reply_consuming || to->closing) return 0;
    amqp_method_t d = {.id = AMQP_BASIC_DELIVER};
    d.m.basic_deliver.consumer_tag = (amqp_bytes_t){to->reply_tag, to->reply_tag_len};
    d.m.basic_deliver.delivery_tag = to->last_tag + 1;
    d.m.basic_deliver.exchange = qmsg_exchange(m);
    d.m.basic_deliver.routing_key = key;
    amqp_send_content(c, to->id, &d, qmsg_props(m), qmsg_body(m), m->body_len);
    amqp_ring_push(to, NULL, NULL);
    amqp_conn_flush(c);
    return 1;
}

/* Routes a complete message. Returns 0, or <0 after a channel error. */
static int route_message(amqp_channel_t *ch, qmsg_t *m, int mandatory)
{
    vhost_t *vh = ch->c->vh;
    if (m->exchange_len == 0 && m->key_len > sizeof REPLY_PREFIX - 1 &&
        !memcmp(qmsg_key(m).p, REPLY_PREFIX, sizeof REPLY_PREFIX - 1)) {
        if (ch->confirm_mode) cf_push(ch);
        if (!deliver_reply(m) && mandatory) send_return(ch, m);
        return 0;
    }
    exchange_t *ex = xregistry_find(vhost_exchanges(vh), qmsg_exchange(m));
    confirm_t *cf = ch->confirm_mode ? cf_push(ch) : NULL;
    amqp_bytes_t headers; /* routing needs only these of the properties */
    if (amqp_props_headers(qmsg_props(m), &headers) < 0) headers = (amqp_bytes_t){NULL, 0};
    g_route.n = 0;
    /* (a delayed message with no route yet goes to its exchange's delay
     * queue: the mandatory flag cannot be honoured, as with the plugin) */
    if (ex) vhost_route_publish(vh, ex, m, headers, &g_route);
    if (g_route.n == 0) {
        if (mandatory) send_return(ch, m);
        return 0;
    }
    for (size_t i = 0; i < g_route.n; i++) {
        queue_t *q = g_route.q[i];
        uint32_t epoch = 0;
        int64_t target = 0;
        int rc = queue_publish(q, m, &epoch, &target);
        if (cf && rc == QP_WAIT) cf_add_part(cf, q, epoch, target);
        else if (cf && (rc < 0 || rc == QP_REJECTED)) cf->failed = 1; /* nacked */
    }
    return 0;
}

/* The body is complete: route it now, or hold it for the transaction. */
static int publish_complete(amqp_channel_t *ch)
{
    qmsg_t *m = ch->msg;
    ch->msg = NULL;
    ch->content = 0;
    int rc = 0;
    if (ch->tx_mode) {
        txop_t *op = xcalloc(1, sizeof *op);
        op->kind = 0;
        op->m = m;
        op->mandatory = ch->pub_mandatory;
        if (ch->tx_tail) ch->tx_tail->next = op;
        else ch->tx_head = op;
        ch->tx_tail = op;
        return 0;
    }
    rc = route_message(ch, m, ch->pub_mandatory);
    qmsg_unref(m);
    return rc;
}

int amqp_publish_method(amqp_channel_t *ch, const amqp_basic_publish_t *p)
{
    exchange_t *ex = xregistry_find(vhost_exchanges(ch->c->vh), p->exchange);
    if (!ex) {
        amqp_channel_error(ch, AMQP_NOT_FOUND, AMQP_BASIC_PUBLISH, "NOT_FOUND - no exchange '%.*s' in vhost '/'",
                           (int)p->exchange.len, (const char *)p->exchange.p);
        return -1;
    }
    if (exchange_flags(ex) & EXF_INTERNAL) {
        amqp_channel_error(ch, AMQP_ACCESS_REFUSED, AMQP_BASIC_PUBLISH,
                           "ACCESS_REFUSED - cannot publish to internal exchange '%.*s' in vhost '/'",
                           (int)p->exchange.len, (const char *)p->exchange.p);
        return -1;
    }
    if (p->immediate) {
        amqp_conn_error(ch->c, AMQP_NOT_IMPLEMENTED, AMQP_BASIC_PUBLISH, "NOT_IMPLEMENTED - immediate=true");
        return -1;
    }
    /* Exchange and routing key are kept until the header says how big the
     * body is; the message is allocated then. */
    if (p->exchange.len > 255 || p->routing_key.len > 255) { /* shortstrs: cannot happen */
        amqp_conn_error(ch->c, AMQP_FRAME_ERROR, AMQP_BASIC_PUBLISH, "FRAME_ERROR - malformed basic.publish");
        return -1;
    }
    ch->pub_ex_len = (uint8_t)p->exchange.len;
    ch->pub_key_len = (uint8_t)p->routing_key.len;
    if (p->exchange.len) memcpy(ch->pub_names, p->exchange.p, p->exchange.len);
    if (p->routing_key.len) memcpy(ch->pub_names + p->exchange.len, p->routing_key.p, p->routing_key.len);
    ch->pub_mandatory = p->mandatory;
    ch->content = 1;
    ch->content_method = AMQP_BASIC_PUBLISH;
    return 0;
}

int amqp_publish_header(amqp_channel_t *ch, const uint8_t *p, uint32_t len)
{
    uint16_t class_id;
    uint64_t body_size;
    amqp_props_t props;
    amqp_bytes_t raw;
    if (amqp_header_decode(p, len, &class_id, &body_size, &props, &raw) < 0 || class_id != AMQP_CLASS_BASIC) {
        amqp_conn_error(ch->c, AMQP_FRAME_ERROR, ch->content_method, "FRAME_ERROR - malformed content header");
        return -1;
    }
    uint64_t max = (uint64_t)broker_config(ch->c->b)->amqp_max_message_bytes;
    if (body_size > max) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, ch->content_method,
                           "PRECONDITION_FAILED - message size %llu is larger than configured max size %llu",
                           (unsigned long long)body_size, (unsigned long long)max);
        return -1;
    }
    int64_t exp = -1;
    if (props.flags & PROP_EXPIRATION) {
        if (amqp_expiration_parse(props.expiration, &exp) < 0) {
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, ch->content_method,
                               "PRECONDITION_FAILED - invalid expiration '%.*s'", (int)props.expiration.len,
                               (const char *)props.expiration.p);
            return -1;
        }
    }
    if ((props.flags & PROP_USER_ID) && !amqp_bytes_eq(props.user_id, ch->c->user)) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, ch->content_method,
                           "PRECONDITION_FAILED - user_id property set to '%.*s' but authenticated user was '%s'",
                           (int)props.user_id.len, (const char *)props.user_id.p, ch->c->user);
        return -1;
    }
    wbuf_t rewritten;
    wbuf_init(&rewritten);
    if ((props.flags & PROP_REPLY_TO) && amqp_bytes_eq(props.reply_to, REPLY_QUEUE)) {
        if (!ch->reply_consuming) {
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, ch->content_method,
                               "PRECONDITION_FAILED - fast reply consumer does not exist");
            return -1;
        }
        char addr[80];
        snprintf(addr, sizeof addr, REPLY_PREFIX "%016llx.%u", (unsigned long long)ch->c->id, ch->id);
        props.reply_to = amqp_cstr(addr);
        amqp_props_encode(&rewritten, &props);
        raw = (amqp_bytes_t){rewritten.p, (uint32_t)rewritten.len};
    }
    uint64_t cap = body_size < AMQP_BODY_FIRST_ALLOC ? body_size : AMQP_BODY_FIRST_ALLOC;
    amqp_bytes_t exchange = {ch->pub_names, ch->pub_ex_len}, key = {ch->pub_names + ch->pub_ex_len, ch->pub_key_len};
    int64_t ts = ch->c->recv_wall_ms ? ch->c->recv_wall_ms : clock_wall_ms();
    qmsg_t *m = qmsg_new_room(exchange, key, raw, body_size, cap, ts);
    wbuf_destroy(&rewritten);
    m->persistent = (props.flags & PROP_DELIVERY_MODE) && props.delivery_mode == 2;
    m->expiration_ms = exp;
    ch->msg = m;
    ch->body_got = 0;
    ch->body_cap = cap;
    ch->content = 2;
    if (body_size == 0) return publish_complete(ch);
    return 0;
}

int amqp_publish_body(amqp_channel_t *ch, const uint8_t *p, uint32_t len)
{
    qmsg_t *m = ch->msg;
    if (ch->body_got + len > m->body_len) {
        amqp_conn_error(ch->c, AMQP_FRAME_ERROR, ch->content_method,
                        "FRAME_ERROR - body frames exceed the declared size %llu", (unsigned long long)m->body_len);
        return -1;
    }
    if (ch->body_got + len > ch->body_cap) { /* grow with what arrives, doubling */
        uint64_t cap = ch->body_cap * 2;
        if (cap < ch->body_got + len) cap = ch->body_got + len;
        if (cap > m->body_len) cap = m->body_len;
        m = ch->msg = qmsg_grow(m, cap);
        ch->body_cap = cap;
    }
    memcpy(qmsg_body(m) + ch->body_got, p, len);
    ch->body_got += len;
    if (ch->body_got == m->body_len) return publish_complete(ch);
    return 0;
}

/* ---- transactions ---- */

static amqp_channel_t *tx_pending_channel(amqp_conn_t *c)
{
    for (uint32_t i = 1; i < c->chan_cap; i++)
        if (c->channels[i] && c->channels[i]->tx_committing) return c->channels[i];
    return NULL;
}

/* Drops the commit's durable publishes from the FIFO (a transactional
 * channel is never in confirm mode, so the FIFO is the commit's own).
 * Returns 1 after linking c->wait to the first that is not durable yet. */
static int tx_wait_next(amqp_channel_t *ch)
{
    while (ch->cf_len) {
        confirm_t *cf = amqp_cf_at(ch, 0);
        while (cf->done < cf->nparts) {
            cpart_t *p = cf_part(cf, cf->done);
            if (queue_publish_state(p->q, p->epoch, p->target) == 0 && queue_wait(p->q, &ch->c->wait, p->target) == 0)
                return 1;
            queue_unpin(p->q);
            cf->done++;
        }
        amqp_cf_release(cf);
        ch->cf_head = (ch->cf_head + 1) % ch->cf_cap;
        ch->cf_len--;
    }
    return 0;
}

static void tx_commit_done(amqp_conn_t *c, int status)
{
    (void)status;
    amqp_channel_t *ch = tx_pending_channel(c);
    if (!ch) return;
    if (tx_wait_next(ch)) {
        amqp_conn_hold(c, tx_commit_done);
        return;
    }
    ch->tx_committing = 0;
    amqp_method_t ok = {.id = AMQP_TX_COMMIT_OK};
    amqp_ch_send(ch, &ok);
}

int amqp_tx_commit(amqp_channel_t *ch)
{
    if (!ch->tx_mode) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_TX_COMMIT,
                           "PRECONDITION_FAILED - channel is not transactional");
        return -1;
    }
    /* Apply in order; the publishes are tracked through the confirm FIFO
     * so that commit-ok waits until they are durable. */
    ch->confirm_mode = 1;
    int64_t now = clock_wall_ms();
    while (ch->tx_head) {
        txop_t *op = ch->tx_head;
        ch->tx_head = op->next;
        if (op->kind == 0) {
            op->m->ts_ms = now; /* it arrives in its queues now: TTL and x-delay count from here */
            route_message(ch, op->m, op->mandatory);
            qmsg_unref(op->m);
        } else {
            amqp_do_ack(ch, AMQP_TX_COMMIT, op->tag, op->multiple, op->kind == 1, op->requeue);
        }
        free(op);
    }
    ch->tx_tail = NULL;
    ch->confirm_mode = 0;
    ch->tx_committing = 1;
    tx_commit_done(ch->c, 0);
    return 0;
}

int amqp_tx_rollback(amqp_channel_t *ch)
{
    if (!ch->tx_mode) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_TX_ROLLBACK,
                           "PRECONDITION_FAILED - channel is not transactional");
        return -1;
    }
    while (ch->tx_head) {
        txop_t *op = ch->tx_head;
        ch->tx_head = op->next;
        qmsg_unref(op->m);
        free(op);
    }
    ch->tx_tail = NULL;
    amqp_method_t ok = {.id = AMQP_TX_ROLLBACK_OK};
    amqp_ch_send(ch, &ok);
    return 0;
}

