/*
 * The admin API's queues (docs/http-api.md, "Queues"): list, show,
 * declare, delete, purge, peek, redrive; and the route table of the AMQP
 * entities (exchanges and bindings are in api_exchanges.c).
 *
 * Declare and delete go through the same rules and texts as queue.declare
 * and queue.delete (amqp/admin.h) and answer once the catalog is durable.
 * Redrive moves each message with deadletter_redrive, so a crash in the
 * middle leaves every message in exactly one of the two queues.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/admin.h"
#include "amqp/ftable.h"
#include "base/err.h"
#include "base/mem.h"
#include "broker/queue_admin.h"
#include "http/amqp_json.h"
#include "http/api_amqp.h"
#include "http/hjson.h"
#include "http/paging.h"
#include "http/router.h"
#include "http/stats.h"

#define NAME(b) (int)(b).len, (const char *)(b).p

/* ---- helpers shared with api_exchanges.c ---- */

vhost_t *api_vhost(http_req_t *r) { return broker_vhost(http_req_broker(r), amqp_cstr("/")); }

json_t *api_name_json(amqp_bytes_t name)
{
    if (hjson_utf8_valid(name.p, name.len)) return json_stringn(name.len ? (const char *)name.p : "", name.len);
    char buf[256];
    size_t n = name.len < sizeof buf ? name.len : sizeof buf - 1;
    for (size_t i = 0; i < n; i++) buf[i] = name.p[i] >= 0x20 && name.p[i] < 0x7f ? (char)name.p[i] : '?';
    return json_stringn(buf, n);
}

typedef struct {
    pwaiter_t w;
    http_req_t *r;
    int status;
    json_t *body;
} catwait_t;

static void catwait_answer(http_req_t *r, int status, json_t *body, int st)
{
    if (st < 0) {
        json_decref(body);
        http_reply_error(r, 507, "the change could not be made durable: %s", herald_strerror(st));
    } else if (body) {
        http_reply_json(r, status, body);
    } else {
        http_reply(r, status, "application/json", "", 0);
    }
}

static void catwait_done(pwaiter_t *w, int status)
{
    catwait_t *c = w->ctx;
    catwait_answer(c->r, c->status, c->body, status);
    free(c);
}

static void catwait_cancel(http_req_t *r, void *ctx)
{
    (void)r;
    catwait_t *c = ctx;
    pwaiter_cancel(&c->w);
    json_decref(c->body);
    free(c);
}

void api_reply_after_catalog(http_req_t *r, int status, json_t *body)
{
    catwait_t *c = xcalloc(1, sizeof *c);
    c->r = r;
    c->status = status;
    c->body = body;
    c->w.cb = catwait_done;
    c->w.ctx = c;
    int rc = broker_catalog_wait(http_req_broker(r), &c->w);
    if (rc == 0) {
        http_req_on_cancel(r, catwait_cancel, c);
        return;
    }
    catwait_answer(r, status, body, rc < 0 ? rc : 0);
    free(c);
}

int api_table_arg(http_req_t *r, const json_t *v, const char *field, wbuf_t *w)
{
    char err[160];
    if (!v || json_is_null(v)) return 0;
    if (amqp_json_to_table(v, w, err, sizeof err) < 0) {
        http_reply_error(r, 400, "%s: %s", field, err);
        return -1;
    }
    return 0;
}

int api_bool_field(http_req_t *r, const json_t *obj, const char *field, int def, int *out)
{
    json_t *v = json_object_get(obj, field);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) {
        http_reply_error(r, 400, "%s must be true or false", field);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* ---- queue JSON ---- */

static json_t *str_arg(amqp_bytes_t args, const char *name)
{
    amqp_bytes_t s;
    return ftable_get_str(args, name, &s) == 1 ? api_name_json(s) : json_null();
}

static void add_consumer(void *ctx, const qconsumer_t *qc)
{
    amqp_consumer_info_t i;
    amqp_admin_consumer(qc, &i);
    json_array_append_new(ctx, json_pack("{s:o, s:s, s:i, s:I, s:b}", "consumer_tag", api_name_json(i.tag),
                                         "connection", i.conn_peer, "channel", (int)i.channel, "prefetch",
                                         (json_int_t)i.prefetch, "ack", i.ack));
}

static json_t *queue_json(http_req_t *r, queue_t *q, int detail)
{
    unsigned f = queue_flags(q);
    amqp_bytes_t args = queue_args(q);
    uint32_t ready = queue_ready_count(q), unacked = queue_unacked_count(q);
    const queue_counters_t *c = queue_counters(q);
    queue_rates_t rt;
    http_stats_queue_rates(http_stats(r), q, &rt);
    json_t *j = json_pack("{s:o, s:s, s:s, s:b, s:b, s:b, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
                          "name", api_name_json(queue_name(q)), "vhost", "/", "type",
                          (f & QF_STREAM) ? "stream" : queue_is_quorum(q) ? "quorum" : "classic",
                          "durable", (f & QF_DURABLE) != 0, "exclusive", (f & QF_EXCLUSIVE) != 0,
                          "auto_delete", (f & QF_AUTO_DELETE) != 0, "arguments", amqp_json_from_table(args),
                          "messages", (json_int_t)ready + unacked, "messages_ready", (json_int_t)ready,
                          "messages_unacked", (json_int_t)unacked, "messages_delayed",
                          (json_int_t)queue_delayed_count(q), "ready_bytes", (json_int_t)queue_ready_bytes(q),
                          "consumers", (json_int_t)queue_consumer_count(q), "dead_letter_exchange",
                          str_arg(args, "x-dead-letter-exchange"), "dead_letter_routing_key",
                          str_arg(args, "x-dead-letter-routing-key"));
    json_object_set_new(j, "totals",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "published",
                                  (json_int_t)c->published, "delivered", (json_int_t)c->delivered, "redelivered",
                                  (json_int_t)c->redelivered, "acked", (json_int_t)c->acked, "returned",
                                  (json_int_t)c->returned, "dead_lettered", (json_int_t)c->dead_lettered,
                                  "expired", (json_int_t)c->expired, "dropped", (json_int_t)c->dropped,
                                  "refused", (json_int_t)c->refused, "duplicates", (json_int_t)c->duplicates));
    json_object_set_new(j, "rates",
                        json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "publish", rt.publish, "deliver",
                                  rt.deliver, "redeliver", rt.redeliver, "ack", rt.ack, "return", rt.ret,
                                  "dead_letter", rt.dead_letter, "expire", rt.expire));
    if (detail) {
        json_t *cons = json_array();
        queue_foreach_consumer(q, add_consumer, cons);
        json_object_set_new(j, "consumer_details", cons);
        json_object_set_new(j, "history", http_stats_queue_history(http_stats(r), q));
    }
    return j;
}

/* The queue named by the path, or NULL after answering 404. */
static queue_t *path_queue(http_req_t *r)
{
    const char *name = http_req_param(r, 0);
    if (!hjson_utf8_valid(name, strlen(name))) {
        http_reply_error(r, 400, "names in paths must be UTF-8");
        return NULL;
    }
    queue_t *q = vhost_queue_find(api_vhost(r), amqp_cstr(name));
    if (!q || queue_is_deleted(q)) http_reply_error(r, 404, "no queue called %s", name);
    return q && !queue_is_deleted(q) ? q : NULL;
}

static void h_list(http_req_t *r)
{
    vhost_t *v = api_vhost(r);
    paging_t pg;
    if (paging_parse(r, &pg) < 0) return;
    json_t *a = json_array();
    if (!pg.on) {
        for (queue_t *q = vhost_queue_first(v); q; q = vhost_queue_next(v, q))
            json_array_append_new(a, queue_json(r, q, 0));
        http_reply_json(r, 200, a);
        return;
    }
    /* Only the page's queues are built: sorting names is cheap, the JSON
     * of a thousand queues is not. */
    size_t n = 0, cap = 64;
    paging_item_t *items = xmalloc(cap * sizeof *items);
    for (queue_t *q = vhost_queue_first(v); q; q = vhost_queue_next(v, q)) {
        if (n == cap) items = xrealloc(items, (cap *= 2) * sizeof *items);
        items[n++] = (paging_item_t){queue_name_cstr(q), q};
    }
    size_t kept, first, count;
    if (paging_select(&pg, items, n, &kept, &first, &count) < 0) {
        http_reply_error(r, 400, "page %lld is past the last page", (long long)pg.page);
        json_decref(a);
    } else {
        for (size_t i = first; i < first + count; i++) json_array_append_new(a, queue_json(r, items[i].item, 0));
        http_reply_json(r, 200, paging_envelope(&pg, n, kept, a));
    }
    free(items);
}

static void h_get(http_req_t *r)
{
    queue_t *q = path_queue(r);
    if (q) http_reply_json(r, 200, queue_json(r, q, 1));
}

/* ---- declare ---- */

static int is_reserved(amqp_bytes_t n) { return n.len >= 4 && !memcmp(n.p, "amq.", 4); }

static void h_put(http_req_t *r)
{
    static const char *const allowed[] = {"durable", "auto_delete", "arguments", NULL};
    json_t *body = http_body_object(r, allowed);
    if (!body) return;
    amqp_bytes_t name = amqp_cstr(http_req_param(r, 0));
    vhost_t *v = api_vhost(r);
    wbuf_t args;
    wbuf_init(&args);
    int durable, auto_delete;
    char err[512];
    if (api_bool_field(r, body, "durable", 1, &durable) < 0 || api_bool_field(r, body, "auto_delete", 0, &auto_delete) < 0 ||
        api_table_arg(r, json_object_get(body, "arguments"), "arguments", &args) < 0)
        goto out;
    amqp_bytes_t a = {args.p, (uint32_t)args.len};
    unsigned flags = (durable ? QF_DURABLE : 0) | (auto_delete ? QF_AUTO_DELETE : 0);
    if (name.len > 255 || !hjson_utf8_valid(name.p, name.len)) {
        http_reply_error(r, 400, "a queue name is at most 255 bytes of UTF-8");
        goto out;
    }
    amqp_bytes_t type;
    queue_t *q = vhost_queue_find(v, name);
    if ((ftable_get_str(a, "x-queue-type", &type) == 1 && amqp_bytes_eq(type, "stream")) ||
        (q && (queue_flags(q) & QF_STREAM))) {
        http_reply_error(r, 422, "stream queues are declared over AMQP (queue.declare) or as Kafka topics");
        goto out;
    }
    int code = amqp_qargs_source_topic(http_req_broker(r), name, a, err, sizeof err);
    if (code) {
        http_reply_error(r, code == AMQP_NOT_FOUND ? 404 : 422, "%s", err);
        goto out;
    }
    if (!q && is_reserved(name)) {
        http_reply_error(r, 403, "ACCESS_REFUSED - queue name '%.*s' contains reserved prefix 'amq.*'", NAME(name));
        goto out;
    }
    if (amqp_qargs_validate(name, flags, a, err, sizeof err) < 0) {
        http_reply_error(r, 422, "%s", err);
        goto out;
    }
    if (q) {
        unsigned diff = queue_flags(q) ^ flags;
        if (queue_flags(q) & QF_EXCLUSIVE) {
            http_reply_error(r, 409,
                             "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'",
                             queue_name_cstr(q));
        } else if (diff & (QF_DURABLE | QF_AUTO_DELETE)) {
            const char *what = diff & QF_DURABLE ? "durable" : "auto_delete";
            int cur = (queue_flags(q) & (diff & QF_DURABLE ? QF_DURABLE : QF_AUTO_DELETE)) != 0;
            http_reply_error(r, 409,
                             "PRECONDITION_FAILED - inequivalent arg '%s' for queue '%.*s' in vhost '/': received "
                             "'%s' but current is '%s'",
                             what, NAME(name), cur ? "false" : "true", cur ? "true" : "false");
        } else if (!amqp_qargs_compare(q, a, err, sizeof err)) {
            http_reply_error(r, 409, "%s", err);
        } else {
            queue_touch(q);
            http_reply(r, 204, "application/json", "", 0);
        }
        goto out;
    }
    int rc = vhost_queue_create(v, name, flags, a, NULL, &q);
    if (rc < 0) {
        http_reply_error(r, 507, "cannot create queue: %s", herald_strerror(rc));
        goto out;
    }
    api_reply_after_catalog(r, 201, queue_json(r, q, 1));
out:
    wbuf_destroy(&args);
    json_decref(body);
}

/* ---- delete, purge ---- */

static void h_delete(http_req_t *r)
{
    int if_empty, if_unused;
    if (http_query_bool(r, "if_empty", 0, &if_empty) < 0 || http_query_bool(r, "if_unused", 0, &if_unused) < 0) return;
    queue_t *q = path_queue(r);
    if (!q) return;
    if (if_unused && queue_consumer_count(q)) {
        http_reply_error(r, 409, "PRECONDITION_FAILED - queue '%s' in vhost '/' in use", queue_name_cstr(q));
        return;
    }
    if (if_empty && queue_ready_count(q)) {
        http_reply_error(r, 409, "PRECONDITION_FAILED - queue '%s' in vhost '/' is not empty", queue_name_cstr(q));
        return;
    }
    vhost_queue_delete(api_vhost(r), q);
    api_reply_after_catalog(r, 204, NULL);
}

static int refuse_stream(http_req_t *r, queue_t *q)
{
    if (!(queue_flags(q) & QF_STREAM)) return 0;
    http_reply_error(r, 422, "queue %s is a stream: read it with GET /api/topics/{name}/records", queue_name_cstr(q));
    return 1;
}

typedef struct {
    pwaiter_t w;
    http_req_t *r;
    uint32_t n;
} purge_wait_t;

static void purge_answer(http_req_t *r, uint32_t n, int status)
{
    if (status < 0) http_reply_error(r, 507, "the purge could not be made durable: %s", herald_strerror(status));
    else http_reply_json(r, 200, json_pack("{s:I}", "purged", (json_int_t)n));
}

static void purge_done(pwaiter_t *w, int status)
{
    purge_wait_t *p = w->ctx;
    purge_answer(p->r, p->n, status);
    free(p);
}

static void purge_cancel(http_req_t *r, void *ctx)
{
    (void)r;
    purge_wait_t *p = ctx;
    pwaiter_cancel(&p->w);
    free(p);
}

static void h_purge(http_req_t *r)
{
    queue_t *q = path_queue(r);
    if (!q || refuse_stream(r, q)) return;
    /* The removals go to the state log: answered once they are durable
     * (queue.purge answers at once; a crash before the sync brings the
     * messages back there). */
    purge_wait_t *p = xcalloc(1, sizeof *p);
    p->r = r;
    p->n = queue_purge(q);
    p->w.cb = purge_done;
    p->w.ctx = p;
    if (queue_wait_state(q, &p->w) == 0) {
        http_req_on_cancel(r, purge_cancel, p);
        return;
    }
    purge_answer(r, p->n, 0);
    free(p);
}

/* ---- peek ---- */

typedef struct {
    json_t *a;
} peek_ctx_t;

static void peek_one(void *ctx, const queue_peek_msg_t *m)
{
    peek_ctx_t *pc = ctx;
    json_t *o = json_pack("{s:I, s:o, s:o, s:b, s:I}", "position", (json_int_t)json_array_size(pc->a), "exchange",
                          api_name_json(m->exchange), "routing_key", api_name_json(m->key), "redelivered",
                          m->redelivered, "delivery_count", (json_int_t)m->returns);
    hjson_set_bytes(o, "payload", "payload_encoding", m->body ? (const void *)m->body : "", m->body_len);
    json_object_set_new(o, "payload_bytes", json_integer((json_int_t)m->body_len));
    json_object_set_new(o, "properties", amqp_json_from_props(m->props));
    json_array_append_new(pc->a, o);
}

static void h_messages(http_req_t *r)
{
    int64_t limit;
    if (http_query_i64(r, "limit", 1, 1000, 10, &limit) < 0) return;
    queue_t *q = path_queue(r);
    if (!q || refuse_stream(r, q)) return;
    peek_ctx_t pc = {json_array()};
    int rc = queue_peek(q, (size_t)limit, peek_one, &pc);
    if (rc < 0 && json_array_size(pc.a) == 0) {
        json_decref(pc.a);
        http_reply_error(r, 500, "cannot read the queue's messages: %s", herald_strerror(rc));
        return;
    }
    http_reply_json(r, 200, pc.a);
}

/* ---- redrive ---- */

typedef struct {
    http_req_t *r;          /* NULL once the server stopped waiting */
    int starting;           /* inside queue_redrive: moves may end before it returns */
    size_t total, finished; /* moves started, ended */
    size_t moved, skipped, failed;
} redrive_t;

static void redrive_finish(redrive_t *rd)
{
    if (rd->r) {
        if (rd->failed)
            http_reply_error(rd->r, 507,
                             "%zu messages moved, %zu could not be stored in their target and stay in the queue "
                             "(parked until a restart)",
                             rd->moved, rd->failed);
        else
            http_reply_json(rd->r, 200, json_pack("{s:I, s:I}", "moved", (json_int_t)rd->moved, "skipped",
                                                 (json_int_t)rd->skipped));
    }
    free(rd);
}

static void redrive_done(void *ctx, int result)
{
    redrive_t *rd = ctx;
    rd->finished++;
    if (result == 1) rd->moved++;
    else if (result == 2) rd->skipped++;
    else rd->failed++;
    if (!rd->starting && rd->finished == rd->total) redrive_finish(rd);
}

static void redrive_cancel(http_req_t *r, void *ctx)
{
    (void)r;
    ((redrive_t *)ctx)->r = NULL; /* the moves go on; the last one frees rd */
}

static void h_redrive(http_req_t *r)
{
    static const char *const allowed[] = {"count", "to", NULL};
    json_t *body = http_body_object(r, allowed);
    if (!body) return;
    json_t *jc = json_object_get(body, "count"), *jt = json_object_get(body, "to");
    queue_t *q = NULL;
    if (jc && (!json_is_integer(jc) || json_integer_value(jc) < 1)) {
        http_reply_error(r, 400, "count must be a positive integer");
        goto out;
    }
    if (jt && (!json_is_string(jt) || !json_string_length(jt))) {
        http_reply_error(r, 400, "to must be a queue name");
        goto out;
    }
    if (!(q = path_queue(r)) || refuse_stream(r, q)) goto out;
    amqp_bytes_t to = {NULL, 0};
    if (jt) {
        to = (amqp_bytes_t){(const uint8_t *)json_string_value(jt), (uint32_t)json_string_length(jt)};
        queue_t *t = vhost_queue_find(api_vhost(r), to);
        if (!t || queue_is_deleted(t)) {
            http_reply_error(r, 404, "no queue called %s", json_string_value(jt));
            goto out;
        }
        if (t == q || (queue_flags(t) & QF_STREAM)) {
            http_reply_error(r, 422, "cannot redrive into %s", t == q ? "the queue itself" : "a stream");
            goto out;
        }
    }
    size_t max = jc ? (size_t)json_integer_value(jc) : SIZE_MAX;
    redrive_t *rd = xcalloc(1, sizeof *rd);
    rd->r = r;
    rd->starting = 1;
    size_t skipped = 0;
    rd->total = queue_redrive(q, max, to, redrive_done, rd, &skipped);
    rd->skipped += skipped;
    rd->starting = 0;
    if (rd->finished == rd->total) redrive_finish(rd);
    else http_req_on_cancel(r, redrive_cancel, rd);
out:
    json_decref(body);
}

const http_route_t api_queue_routes[] = {
    {"GET", "/api/queues", h_list},
    {"GET", "/api/queues/{}", h_get},
    {"PUT", "/api/queues/{}", h_put},
    {"DELETE", "/api/queues/{}", h_delete},
    {"POST", "/api/queues/{}/purge", h_purge},
    {"GET", "/api/queues/{}/messages", h_messages},
    {"POST", "/api/queues/{}/redrive", h_redrive},
    {"GET", "/api/exchanges", api_exchanges_list},
    {"GET", "/api/exchanges/{}", api_exchange_get},
    {"PUT", "/api/exchanges/{}", api_exchange_put},
    {"DELETE", "/api/exchanges/{}", api_exchange_delete},
    {"POST", "/api/exchanges/{}/publish", api_exchange_publish},
    {"GET", "/api/bindings", api_bindings_list},
    {"POST", "/api/bindings", api_binding_post},
    {"DELETE", "/api/bindings", api_binding_delete},
    {NULL, NULL, NULL},
};
