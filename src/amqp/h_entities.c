/*
 * exchange.* and queue.* methods: declare, delete, bind, unbind, purge.
 * Error replies follow RabbitMQ's codes and texts, since clients and
 * people match on them. A reply to a change that reached the catalog is
 * sent once the catalog is durable (the connection's output and input wait
 * for it; it takes one group-commit round).
 */
#include <stdio.h>
#include <string.h>

#include "amqp/ftable.h"
#include "amqp/internal.h"
#include "amqp/qargs.h"
#include "base/err.h"
#include "base/log.h"

#define NAME(b) (int)(b).len, (const char *)(b).p

/* Holds the connection's output until the catalog is durable. */
static void after_catalog(amqp_conn_t *c)
{
    if (c->waiting) return; /* already holding: one wait at a time */
    c->wait.cb = NULL;
    if (broker_catalog_wait(c->b, &c->wait) == 0) amqp_conn_hold(c, NULL);
}

static int is_reserved(amqp_bytes_t name) { return name.len >= 4 && !memcmp(name.p, "amq.", 4); }

/* ---- exchanges ---- */

static exchange_t *find_exchange(amqp_channel_t *ch, amqp_bytes_t name, uint32_t method)
{
    exchange_t *ex = xregistry_find(vhost_exchanges(amqp_channel_conn(ch)->vh), name);
    if (!ex) amqp_channel_error(ch, AMQP_NOT_FOUND, method, "NOT_FOUND - no exchange '%.*s' in vhost '/'", NAME(name));
    return ex;
}

static int refuse_default(amqp_channel_t *ch, amqp_bytes_t name, uint32_t method)
{
    if (name.len) return 0;
    amqp_channel_error(ch, AMQP_ACCESS_REFUSED, method, "ACCESS_REFUSED - operation not permitted on the default exchange");
    return -1;
}

static int exchange_declare(amqp_channel_t *ch, const amqp_exchange_declare_t *a)
{
    amqp_conn_t *c = amqp_channel_conn(ch);
    uint32_t id = AMQP_EXCHANGE_DECLARE;
    if (refuse_default(ch, a->exchange, id)) return -1;
    if (a->passive) {
        if (!find_exchange(ch, a->exchange, id)) return -1;
        goto ok;
    }
    /* New amq.* names are reserved; the existing ones redeclare as usual. */
    if (is_reserved(a->exchange) && !xregistry_find(vhost_exchanges(c->vh), a->exchange)) {
        amqp_channel_error(ch, AMQP_ACCESS_REFUSED, id,
                           "ACCESS_REFUSED - exchange name '%.*s' contains reserved prefix 'amq.*'", NAME(a->exchange));
        return -1;
    }
    ex_type_t type;
    unsigned delayed = 0;
    if (amqp_bytes_eq(a->type, "x-delayed-message")) {
        /* The delayed-message plugin's exchange: routes as x-delayed-type. */
        amqp_bytes_t dt;
        if (ftable_get_str(a->arguments, "x-delayed-type", &dt) != 1 || ex_type_parse(dt, &type) < 0) {
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, id,
                               "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange "
                               "type");
            return -1;
        }
        delayed = EXF_DELAYED;
    } else if (ex_type_parse(a->type, &type) < 0) {
        amqp_conn_error(c, AMQP_COMMAND_INVALID, id, "COMMAND_INVALID - unknown exchange type '%.*s'", NAME(a->type));
        return -1;
    }
    unsigned flags = (a->durable ? EXF_DURABLE : 0) | (a->auto_delete ? EXF_AUTO_DELETE : 0) |
                     (a->internal ? EXF_INTERNAL : 0) | delayed;
    exchange_t *ex;
    int rc = vhost_exchange_declare(c->vh, a->exchange, type, flags, a->arguments, &ex);
    if (rc == HE_EXISTS) {
        const char *what = exchange_type(ex) != type || ((exchange_flags(ex) ^ flags) & EXF_DELAYED) ? "type"
                           : (exchange_flags(ex) ^ flags) & EXF_DURABLE     ? "durable"
                           : (exchange_flags(ex) ^ flags) & EXF_AUTO_DELETE ? "auto_delete"
                                                                            : "internal";
        if (!strcmp(what, "type"))
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, id,
                               "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%.*s' in vhost '/': "
                               "received '%.*s' but current is '%s'",
                               NAME(a->exchange), NAME(a->type),
                               (exchange_flags(ex) & EXF_DELAYED) ? "x-delayed-message" : ex_type_name(exchange_type(ex)));
        else
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, id,
                               "PRECONDITION_FAILED - inequivalent arg '%s' for exchange '%.*s' in vhost '/': "
                               "received '%s' but current is '%s'",
                               what, NAME(a->exchange), (exchange_flags(ex) & flags) ? "true" : "false",
                               (exchange_flags(ex) & flags) ? "false" : "true");
        return -1;
    }
    if (rc < 0) {
        amqp_channel_error(ch, AMQP_INTERNAL_ERROR, id, "INTERNAL_ERROR - %s", herald_strerror(rc));
        return -1;
    }
    if (rc == 0 && (flags & EXF_DURABLE)) after_catalog(c);
ok:
    if (!a->no_wait) {
        amqp_method_t ok = {.id = AMQP_EXCHANGE_DECLARE_OK};
        amqp_send_method(c, amqp_channel_id(ch), &ok);
    }
    return 0;
}

static int exchange_delete(amqp_channel_t *ch, const amqp_exchange_delete_t *a)
{
    amqp_conn_t *c = amqp_channel_conn(ch);
    uint32_t id = AMQP_EXCHANGE_DELETE;
    if (refuse_default(ch, a->exchange, id)) return -1;
    exchange_t *ex = xregistry_find(vhost_exchanges(c->vh), a->exchange);
    if (ex && exchange_is_builtin(ex)) {
        amqp_channel_error(ch, AMQP_ACCESS_REFUSED, id,
                           "ACCESS_REFUSED - deletion of system exchange '%.*s' in vhost '/' not allowed",
                           NAME(a->exchange));
        return -1;
    }
    if (ex) {
        int durable = exchange_flags(ex) & EXF_DURABLE;
        int rc = vhost_exchange_delete(c->vh, ex, a->if_unused);
        if (rc == HE_BUSY) {
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, id,
                               "PRECONDITION_FAILED - exchange '%.*s' in vhost '/' in use", NAME(a->exchange));
            return -1;
        }
        if (durable) after_catalog(c);
    }
    if (!a->no_wait) {
        amqp_method_t ok = {.id = AMQP_EXCHANGE_DELETE_OK};
        amqp_send_method(c, amqp_channel_id(ch), &ok);
    }
    return 0;
}

/* exchange.bind/unbind share their fields. */
static int exchange_bind(amqp_channel_t *ch, const amqp_exchange_bind_t *a, int unbind)
{
    amqp_conn_t *c = amqp_channel_conn(ch);
    uint32_t id = unbind ? AMQP_EXCHANGE_UNBIND : AMQP_EXCHANGE_BIND;
    if (refuse_default(ch, a->source, id) || refuse_default(ch, a->destination, id)) return -1;
    exchange_t *src = find_exchange(ch, a->source, id);
    if (!src) return -1;
    exchange_t *dst = find_exchange(ch, a->destination, id);
    if (!dst) return -1;
    xdest_t d = {XDEST_EXCHANGE, dst};
    int rc = unbind ? vhost_unbind(c->vh, src, d, a->routing_key, a->arguments)
                    : vhost_bind(c->vh, src, d, a->routing_key, a->arguments);
    if (rc == 0 && (exchange_flags(src) & EXF_DURABLE) && (exchange_flags(dst) & EXF_DURABLE)) after_catalog(c);
    if (!a->no_wait) {
        amqp_method_t ok = {.id = unbind ? AMQP_EXCHANGE_UNBIND_OK : AMQP_EXCHANGE_BIND_OK};
        amqp_send_method(c, amqp_channel_id(ch), &ok);
    }
    return 0;
}

/* ---- queues ---- */

static int locked_by_other(amqp_conn_t *c, queue_t *q)
{
    return (queue_flags(q) & QF_EXCLUSIVE) && queue_owner(q) != c;
}

static void resource_locked(amqp_channel_t *ch, uint32_t method, queue_t *q)
{
    amqp_channel_error(ch, AMQP_RESOURCE_LOCKED, method,
                       "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'. It "
                       "could be originally declared on another connection or the exclusive property value does "
                       "not match that of the original declaration.",
                       queue_name_cstr(q));
}

queue_t *amqp_queue_for(amqp_channel_t *ch, amqp_bytes_t name, uint32_t method_id)
{
    amqp_conn_t *c = amqp_channel_conn(ch);
    if (!name.len) name = amqp_channel_last_queue(ch);
    queue_t *q = vhost_queue_find(c->vh, name);
    if (!q) {
        amqp_channel_error(ch, AMQP_NOT_FOUND, method_id, "NOT_FOUND - no queue '%.*s' in vhost '/'", NAME(name));
        return NULL;
    }
    if (locked_by_other(c, q)) {
        resource_locked(ch, method_id, q);
        return NULL;
    }
    return q;
}

void amqp_queue_maybe_autodelete(amqp_conn_t *c, queue_t *q)
{
    if ((queue_flags(q) & QF_AUTO_DELETE) && queue_had_consumer(q) && !queue_consumer_count(q) &&
        !queue_is_deleted(q)) {
        int durable = (queue_flags(q) & QF_DURABLE) != 0;
        vhost_queue_delete(c->vh, q);
        if (durable && c->state == AC_RUNNING) after_catalog(c);
    }
}

static void declare_ok(amqp_channel_t *ch, queue_t *q, int no_wait)
{
    amqp_channel_set_last_queue(ch, queue_name(q));
    if (no_wait) return;
    amqp_method_t ok = {.id = AMQP_QUEUE_DECLARE_OK};
    ok.m.queue_declare_ok.queue = queue_name(q);
    ok.m.queue_declare_ok.message_count = queue_ready_count(q);
    ok.m.queue_declare_ok.consumer_count = queue_consumer_count(q);
    amqp_send_method(amqp_channel_conn(ch), amqp_channel_id(ch), &ok);
}

static int h_queue_declare(amqp_channel_t *ch, const amqp_queue_declare_t *a)
{
    amqp_conn_t *c = amqp_channel_conn(ch);
    uint32_t id = AMQP_QUEUE_DECLARE;
    amqp_bytes_t name = a->queue;
    char gen[64];
    if (a->passive && amqp_bytes_eq(name, "amq.rabbitmq.reply-to")) { /* the direct reply-to pseudo queue */
        if (!a->no_wait) {
            amqp_method_t ok = {.id = AMQP_QUEUE_DECLARE_OK};
            ok.m.queue_declare_ok.queue = name;
            amqp_send_method(c, amqp_channel_id(ch), &ok);
        }
        return 0;
    }
    if (a->passive) {
        queue_t *q = amqp_queue_for(ch, name, id);
        if (!q) return -1;
        queue_touch(q);
        declare_ok(ch, q, a->no_wait);
        return 0;
    }
    int sr = amqp_stream_declare(ch, a);
    if (sr <= 0) return sr;
    if (!name.len) {
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        uint8_t rnd[22];
        uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL);
        int n = snprintf(gen, sizeof gen, "amq.gen-");
        for (size_t i = 0; i < sizeof rnd; i++) gen[n++] = b64[rnd[i] & 63];
        gen[n] = '\0';
        name = amqp_cstr(gen);
    } else if (is_reserved(name)) {
        amqp_channel_error(ch, AMQP_ACCESS_REFUSED, id,
                           "ACCESS_REFUSED - queue name '%.*s' contains reserved prefix 'amq.*'", NAME(name));
        return -1;
    }
    unsigned flags = (a->durable ? QF_DURABLE : 0) | (a->exclusive ? QF_EXCLUSIVE : 0) |
                     (a->auto_delete ? QF_AUTO_DELETE : 0);
    if (amqp_qargs_check(ch, name, flags, a->arguments) < 0) return -1;
    queue_t *q = vhost_queue_find(c->vh, name);
    if (q) {
        if (locked_by_other(c, q) || ((queue_flags(q) ^ flags) & QF_EXCLUSIVE)) {
            resource_locked(ch, id, q);
            return -1;
        }
        unsigned diff = queue_flags(q) ^ flags;
        if (diff & (QF_DURABLE | QF_AUTO_DELETE)) {
            const char *what = diff & QF_DURABLE ? "durable" : "auto_delete";
            int cur = (queue_flags(q) & (diff & QF_DURABLE ? QF_DURABLE : QF_AUTO_DELETE)) != 0;
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, id,
                               "PRECONDITION_FAILED - inequivalent arg '%s' for queue '%.*s' in vhost '/': received "
                               "'%s' but current is '%s'",
                               what, NAME(name), cur ? "false" : "true", cur ? "true" : "false");
            return -1;
        }
        if (!amqp_qargs_equivalent(ch, q, a->arguments)) return -1;
        queue_touch(q);
        declare_ok(ch, q, a->no_wait);
        return 0;
    }
    int rc = vhost_queue_create(c->vh, name, flags, a->arguments, c, &q);
    if (rc < 0) {
        amqp_channel_error(ch, AMQP_INTERNAL_ERROR, id, "INTERNAL_ERROR - cannot create queue: %s",
                           herald_strerror(rc));
        return -1;
    }
    if ((flags & QF_DURABLE) && !(flags & QF_EXCLUSIVE)) after_catalog(c);
    declare_ok(ch, q, a->no_wait);
    return 0;
}

static int h_queue_bind(amqp_channel_t *ch, amqp_bytes_t qname, amqp_bytes_t xname, amqp_bytes_t key,
                      amqp_bytes_t args, int unbind, int no_wait)
{
    amqp_conn_t *c = amqp_channel_conn(ch);
    uint32_t id = unbind ? AMQP_QUEUE_UNBIND : AMQP_QUEUE_BIND;
    if (refuse_default(ch, xname, id)) return -1;
    queue_t *q = amqp_queue_for(ch, qname, id);
    if (!q) return -1;
    exchange_t *ex = find_exchange(ch, xname, id);
    if (!ex) return -1;
    /* An empty key with an empty queue name binds with the queue's name. */
    if (!key.len && !qname.len) key = queue_name(q);
    xdest_t d = {XDEST_QUEUE, q};
    int rc = unbind ? vhost_unbind(c->vh, ex, d, key, args) : vhost_bind(c->vh, ex, d, key, args);
    if (rc == 0 && (exchange_flags(ex) & EXF_DURABLE) && (queue_flags(q) & QF_DURABLE)) after_catalog(c);
    if (!no_wait) {
        amqp_method_t ok = {.id = unbind ? AMQP_QUEUE_UNBIND_OK : AMQP_QUEUE_BIND_OK};
        amqp_send_method(c, amqp_channel_id(ch), &ok);
    }
    return 0;
}

static int h_queue_purge(amqp_channel_t *ch, const amqp_queue_purge_t *a)
{
    queue_t *q = amqp_queue_for(ch, a->queue, AMQP_QUEUE_PURGE);
    if (!q || amqp_stream_refuse(ch, q, AMQP_QUEUE_PURGE)) return -1;
    uint32_t n = queue_purge(q);
    if (!a->no_wait) {
        amqp_method_t ok = {.id = AMQP_QUEUE_PURGE_OK};
        ok.m.queue_purge_ok.message_count = n;
        amqp_send_method(amqp_channel_conn(ch), amqp_channel_id(ch), &ok);
    }
    return 0;
}

static int queue_del(amqp_channel_t *ch, const amqp_queue_delete_t *a)
{
    amqp_conn_t *c = amqp_channel_conn(ch);
    uint32_t id = AMQP_QUEUE_DELETE;
    amqp_bytes_t name = a->queue.len ? a->queue : amqp_channel_last_queue(ch);
    queue_t *q = vhost_queue_find(c->vh, name);
    uint32_t n = 0;
    if (q) {
        if (locked_by_other(c, q)) {
            resource_locked(ch, id, q);
            return -1;
        }
        if (a->if_unused && queue_consumer_count(q)) {
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, id, "PRECONDITION_FAILED - queue '%s' in vhost '/' in use",
                               queue_name_cstr(q));
            return -1;
        }
        if (a->if_empty && queue_ready_count(q)) {
            amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, id,
                               "PRECONDITION_FAILED - queue '%s' in vhost '/' is not empty", queue_name_cstr(q));
            return -1;
        }
        int persisted = (queue_flags(q) & QF_DURABLE) && !(queue_flags(q) & QF_EXCLUSIVE);
        n = vhost_queue_delete(c->vh, q);
        if (persisted) after_catalog(c);
    }
    if (!a->no_wait) {
        amqp_method_t ok = {.id = AMQP_QUEUE_DELETE_OK};
        ok.m.queue_delete_ok.message_count = n;
        amqp_send_method(c, amqp_channel_id(ch), &ok);
    }
    return 0;
}

int amqp_handle_entity(amqp_channel_t *ch, const amqp_method_t *m)
{
    switch (m->id) {
    case AMQP_EXCHANGE_DECLARE: return exchange_declare(ch, &m->m.exchange_declare);
    case AMQP_EXCHANGE_DELETE: return exchange_delete(ch, &m->m.exchange_delete);
    case AMQP_EXCHANGE_BIND: return exchange_bind(ch, &m->m.exchange_bind, 0);
    case AMQP_EXCHANGE_UNBIND: {
        const amqp_exchange_unbind_t *u = &m->m.exchange_unbind;
        amqp_exchange_bind_t b = {u->reserved_1, u->destination, u->source, u->routing_key, u->no_wait, u->arguments};
        return exchange_bind(ch, &b, 1);
    }
    case AMQP_QUEUE_DECLARE: return h_queue_declare(ch, &m->m.queue_declare);
    case AMQP_QUEUE_BIND: {
        const amqp_queue_bind_t *a = &m->m.queue_bind;
        return h_queue_bind(ch, a->queue, a->exchange, a->routing_key, a->arguments, 0, a->no_wait);
    }
    case AMQP_QUEUE_UNBIND: {
        const amqp_queue_unbind_t *a = &m->m.queue_unbind;
        return h_queue_bind(ch, a->queue, a->exchange, a->routing_key, a->arguments, 1, 0);
    }
    case AMQP_QUEUE_PURGE: return h_queue_purge(ch, &m->m.queue_purge);
    case AMQP_QUEUE_DELETE: return queue_del(ch, &m->m.queue_delete);
    default:
        amqp_conn_error(amqp_channel_conn(ch), AMQP_COMMAND_INVALID, m->id,
                        "COMMAND_INVALID - %s not expected from a client", amqp_method_name(m->id));
        return -1;
    }
}
