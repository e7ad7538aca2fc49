/*
 * The admin API's exchanges and bindings (docs/http-api.md, "Exchanges and
 * bindings"), with the rules and texts of exchange.declare/delete and
 * queue.bind (h_entities.c), and publishing through an exchange as
 * basic.publish does, answered once every stored copy is durable (as a
 * publisher confirm). The default exchange is "amq.default" in paths.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/ftable.h"
#include "amqp/props.h"
#include "base/err.h"
#include "base/mem.h"
#include "http/amqp_json.h"
#include "http/api_amqp.h"
#include "http/hjson.h"
#include "server/config.h"

#define NAME(b) (int)(b).len, (const char *)(b).p

static amqp_bytes_t ex_path_name(const char *s) { return strcmp(s, "amq.default") ? amqp_cstr(s) : amqp_cstr(""); }

static exchange_t *find_ex(http_req_t *r, const char *name)
{
    if (!hjson_utf8_valid(name, strlen(name))) {
        http_reply_error(r, 400, "names must be UTF-8");
        return NULL;
    }
    exchange_t *ex = xregistry_find(vhost_exchanges(api_vhost(r)), ex_path_name(name));
    if (!ex) http_reply_error(r, 404, "no exchange called %s", name);
    return ex;
}

static const char *type_name(const exchange_t *ex)
{
    return (exchange_flags(ex) & EXF_DELAYED) ? "x-delayed-message" : ex_type_name(exchange_type(ex));
}

static json_t *exchange_json(const exchange_t *ex)
{
    unsigned f = exchange_flags(ex);
    return json_pack("{s:o, s:s, s:s, s:b, s:b, s:b, s:o}", "name", api_name_json(exchange_name(ex)), "vhost", "/",
                     "type", type_name(ex), "durable", (f & EXF_DURABLE) != 0, "auto_delete",
                     (f & EXF_AUTO_DELETE) != 0, "internal", (f & EXF_INTERNAL) != 0, "arguments",
                     amqp_json_from_table(exchange_args(ex)));
}

void api_exchanges_list(http_req_t *r)
{
    json_t *a = json_array();
    for (exchange_t *ex = xregistry_first(vhost_exchanges(api_vhost(r))); ex; ex = exchange_next(ex))
        json_array_append_new(a, exchange_json(ex));
    http_reply_json(r, 200, a);
}

void api_exchange_get(http_req_t *r)
{
    exchange_t *ex = find_ex(r, http_req_param(r, 0));
    if (ex) http_reply_json(r, 200, exchange_json(ex));
}

void api_exchange_put(http_req_t *r)
{
    static const char *const allowed[] = {"type", "durable", "auto_delete", "internal", "arguments", NULL};
    json_t *body = http_body_object(r, allowed);
    if (!body) return;
    vhost_t *v = api_vhost(r);
    const char *pname = http_req_param(r, 0);
    amqp_bytes_t name = ex_path_name(pname);
    wbuf_t args;
    wbuf_init(&args);
    int durable, auto_delete, internal;
    json_t *jt = json_object_get(body, "type");
    if (api_bool_field(r, body, "durable", 1, &durable) < 0 || api_bool_field(r, body, "auto_delete", 0, &auto_delete) < 0 ||
        api_bool_field(r, body, "internal", 0, &internal) < 0 ||
        api_table_arg(r, json_object_get(body, "arguments"), "arguments", &args) < 0)
        goto out;
    if (!name.len) {
        http_reply_error(r, 403, "ACCESS_REFUSED - operation not permitted on the default exchange");
        goto out;
    }
    if (name.len > 255 || !hjson_utf8_valid(name.p, name.len)) {
        http_reply_error(r, 400, "an exchange name is at most 255 bytes of UTF-8");
        goto out;
    }
    if (jt && !json_is_string(jt)) {
        http_reply_error(r, 400, "type must be a string");
        goto out;
    }
    amqp_bytes_t a = {args.p, (uint32_t)args.len};
    amqp_bytes_t tname = amqp_cstr(jt ? json_string_value(jt) : "direct");
    if (name.len >= 4 && !memcmp(name.p, "amq.", 4) && !xregistry_find(vhost_exchanges(v), name)) {
        http_reply_error(r, 403, "ACCESS_REFUSED - exchange name '%.*s' contains reserved prefix 'amq.*'", NAME(name));
        goto out;
    }
    ex_type_t type;
    unsigned delayed = 0;
    if (amqp_bytes_eq(tname, "x-delayed-message")) {
        amqp_bytes_t dt;
        if (ftable_get_str(a, "x-delayed-type", &dt) != 1 || ex_type_parse(dt, &type) < 0) {
            http_reply_error(r, 422,
                             "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange "
                             "type");
            goto out;
        }
        delayed = EXF_DELAYED;
    } else if (ex_type_parse(tname, &type) < 0) {
        http_reply_error(r, 400, "COMMAND_INVALID - unknown exchange type '%.*s'", NAME(tname));
        goto out;
    }
    unsigned flags = (durable ? EXF_DURABLE : 0) | (auto_delete ? EXF_AUTO_DELETE : 0) |
                     (internal ? EXF_INTERNAL : 0) | delayed;
    exchange_t *ex;
    int rc = vhost_exchange_declare(v, name, type, flags, a, &ex);
    if (rc == HE_EXISTS) {
        unsigned d = exchange_flags(ex) ^ flags;
        const char *what = exchange_type(ex) != type || (d & EXF_DELAYED) ? "type"
                           : d & EXF_DURABLE                              ? "durable"
                           : d & EXF_AUTO_DELETE                          ? "auto_delete"
                                                                          : "internal";
        if (!strcmp(what, "type"))
            http_reply_error(r, 409,
                             "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%.*s' in vhost '/': "
                             "received '%.*s' but current is '%s'",
                             NAME(name), NAME(tname), type_name(ex));
        else
            http_reply_error(r, 409,
                             "PRECONDITION_FAILED - inequivalent arg '%s' for exchange '%.*s' in vhost '/': "
                             "received '%s' but current is '%s'",
                             what, NAME(name), (exchange_flags(ex) & d) ? "false" : "true",
                             (exchange_flags(ex) & d) ? "true" : "false");
    } else if (rc < 0) {
        http_reply_error(r, 507, "cannot create exchange: %s", herald_strerror(rc));
    } else if (rc == 1) {
        http_reply(r, 204, "application/json", "", 0);
    } else {
        api_reply_after_catalog(r, 201, exchange_json(ex));
    }
out:
    wbuf_destroy(&args);
    json_decref(body);
}

void api_exchange_delete(http_req_t *r)
{
    int if_unused;
    if (http_query_bool(r, "if_unused", 0, &if_unused) < 0) return;
    exchange_t *ex = find_ex(r, http_req_param(r, 0));
    if (!ex) return;
    if (exchange_is_builtin(ex)) {
        http_reply_error(r, 403, "ACCESS_REFUSED - deletion of system exchange '%s' in vhost '/' not allowed",
                         http_req_param(r, 0));
        return;
    }
    int rc = vhost_exchange_delete(api_vhost(r), ex, if_unused);
    if (rc == HE_BUSY)
        http_reply_error(r, 409, "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use", http_req_param(r, 0));
    else if (rc < 0)
        http_reply_error(r, 500, "cannot delete exchange: %s", herald_strerror(rc));
    else
        api_reply_after_catalog(r, 204, NULL);
}

/* ---- publish ---- */

typedef struct {
    queue_t *q; /* pinned */
    uint32_t epoch;
    int64_t target;
} ppart_t;

typedef struct {
    http_req_t *r;
    pwaiter_t w;
    ppart_t *parts;
    size_t n, done;
    int routed, failed;
    char refused[300]; /* the queue that refused it (x-overflow reject-publish), "" none */
} pubwait_t;

static void pub_free(pubwait_t *p)
{
    for (size_t i = p->done; i < p->n; i++) queue_unpin(p->parts[i].q);
    free(p->parts);
    free(p);
}

static void pub_wait_cb(pwaiter_t *w, int status);

/* Returns 1 while waiting for a copy, else answers, frees p and returns 0. */
static int pub_advance(pubwait_t *p)
{
    while (p->done < p->n) {
        ppart_t *x = &p->parts[p->done];
        int st = queue_publish_state(x->q, x->epoch, x->target);
        if (st == 0) {
            p->w.cb = pub_wait_cb;
            p->w.ctx = p;
            if (queue_wait(x->q, &p->w, x->target) == 0) return 1;
            st = queue_publish_state(x->q, x->epoch, x->target);
            if (st == 0) st = HE_STORAGE;
        }
        if (st < 0) p->failed = 1;
        queue_unpin(x->q);
        p->done++;
    }
    if (p->failed) http_reply_error(p->r, 507, "the message could not be stored");
    else if (p->refused[0]) http_reply_error(p->r, 422, "queue %s refused the message (x-overflow)", p->refused);
    else http_reply_json(p->r, 200, json_pack("{s:b}", "routed", p->routed));
    pub_free(p);
    return 0;
}

static void pub_wait_cb(pwaiter_t *w, int status)
{
    (void)status;
    pub_advance(w->ctx);
}

static void pub_cancel(http_req_t *r, void *ctx)
{
    (void)r;
    pubwait_t *p = ctx;
    pwaiter_cancel(&p->w);
    pub_free(p);
}

static void pub_add(pubwait_t *p, queue_t *q, qmsg_t *m)
{
    uint32_t epoch = 0;
    int64_t target = 0;
    int rc = queue_publish(q, m, &epoch, &target);
    if (rc == QP_WAIT) {
        queue_pin(q);
        p->parts = xrealloc(p->parts, (p->n + 1) * sizeof *p->parts);
        p->parts[p->n++] = (ppart_t){q, epoch, target};
    } else if (rc == QP_REJECTED) {
        snprintf(p->refused, sizeof p->refused, "%s", queue_name_cstr(q));
    } else if (rc < 0) {
        p->failed = 1;
    }
}

void api_exchange_publish(http_req_t *r)
{
    static const char *const allowed[] = {"routing_key", "payload", "payload_encoding", "properties", NULL};
    json_t *body = http_body_object(r, allowed);
    if (!body) return;
    wbuf_t props;
    wbuf_init(&props);
    uint8_t *payload = NULL;
    size_t plen = 0;
    json_t *jk = json_object_get(body, "routing_key"), *jp = json_object_get(body, "payload"),
           *je = json_object_get(body, "payload_encoding"), *jprops = json_object_get(body, "properties");
    exchange_t *ex = find_ex(r, http_req_param(r, 0));
    if (!ex) goto out;
    if (exchange_flags(ex) & EXF_INTERNAL) {
        http_reply_error(r, 403, "ACCESS_REFUSED - cannot publish to internal exchange '%s' in vhost '/'",
                         http_req_param(r, 0));
        goto out;
    }
    if ((jk && (!json_is_string(jk) || json_string_length(jk) > 255)) || (je && !json_is_string(je))) {
        http_reply_error(r, 400, "routing_key and payload_encoding must be strings (a key at most 255 bytes)");
        goto out;
    }
    if (!jp || hjson_get_bytes(jp, je ? json_string_value(je) : NULL, &payload, &plen) != 0) {
        http_reply_error(r, 400, "payload must be a string in its payload_encoding (string or base64)");
        goto out;
    }
    char err[160];
    int mode;
    int64_t exp;
    json_t *pobj = jprops ? json_incref(jprops) : json_object();
    int prc = amqp_json_to_props(pobj, &props, &mode, &exp, err, sizeof err);
    json_decref(pobj);
    if (prc < 0) {
        http_reply_error(r, 400, "properties: %s", err);
        goto out;
    }
    if ((int64_t)plen > broker_config(http_req_broker(r))->amqp_max_message_bytes) {
        http_reply_error(r, 413, "message size %zu is larger than amqp.max.message.bytes", plen);
        goto out;
    }
    amqp_bytes_t key = jk ? (amqp_bytes_t){(const uint8_t *)json_string_value(jk), (uint32_t)json_string_length(jk)}
                          : amqp_cstr("");
    qmsg_t *m = qmsg_new(exchange_name(ex), key, (amqp_bytes_t){props.p, (uint32_t)props.len}, plen);
    if (plen) memcpy(qmsg_body(m), payload, plen);
    m->persistent = mode == 2;
    m->expiration_ms = exp;
    pubwait_t *p = xcalloc(1, sizeof *p);
    p->r = r;
    amqp_props_t dp;
    if (amqp_props_decode(qmsg_props(m), &dp) < 0) memset(&dp, 0, sizeof dp);
    xroute_t route = {0};
    vhost_route_publish(api_vhost(r), ex, m, dp.headers, &route); /* (x-delayed-message delays too) */
    p->routed = route.n > 0;
    for (size_t i = 0; i < route.n; i++) pub_add(p, route.q[i], m);
    xroute_destroy(&route);
    qmsg_unref(m);
    if (pub_advance(p)) http_req_on_cancel(r, pub_cancel, p);
out:
    free(payload);
    wbuf_destroy(&props);
    json_decref(body);
}

/* ---- bindings ---- */

static json_t *binding_json(const exchange_t *src, const xbinding_t *b)
{
    xdest_t d = xbinding_dest(b);
    int q = d.kind == XDEST_QUEUE;
    return json_pack("{s:o, s:s, s:o, s:s, s:o, s:o}", "source", api_name_json(exchange_name(src)), "vhost", "/",
                     "destination", api_name_json(q ? queue_name(d.ptr) : exchange_name(d.ptr)),
                     "destination_type", q ? "queue" : "exchange", "routing_key", api_name_json(xbinding_key(b)),
                     "arguments", amqp_json_from_table(xbinding_args(b)));
}

void api_bindings_list(http_req_t *r)
{
    json_t *a = json_array();
    for (exchange_t *ex = xregistry_first(vhost_exchanges(api_vhost(r))); ex; ex = exchange_next(ex))
        for (xbinding_t *b = exchange_bindings(ex); b; b = xbinding_next(b)) json_array_append_new(a, binding_json(ex, b));
    http_reply_json(r, 200, a);
}

/* Resolves source and destination; answers and returns -1 on failure. */
static int binding_ends(http_req_t *r, const char *source, const char *dest, const char *dtype, exchange_t **src,
                        xdest_t *d)
{
    vhost_t *v = api_vhost(r);
    if (!source || !dest || (dtype && strcmp(dtype, "queue") && strcmp(dtype, "exchange"))) {
        http_reply_error(r, 400, "source and destination are required; destination_type is queue or exchange");
        return -1;
    }
    if (!*source || !strcmp(source, "amq.default") || (dtype && !strcmp(dtype, "exchange") &&
                                                      (!*dest || !strcmp(dest, "amq.default")))) {
        http_reply_error(r, 403, "ACCESS_REFUSED - operation not permitted on the default exchange");
        return -1;
    }
    if (!(*src = find_ex(r, source))) return -1;
    if (!dtype || !strcmp(dtype, "queue")) {
        queue_t *q = vhost_queue_find(v, amqp_cstr(dest));
        if (!q || queue_is_deleted(q)) {
            http_reply_error(r, 404, "no queue called %s", hjson_utf8_valid(dest, strlen(dest)) ? dest : "?");
            return -1;
        }
        *d = (xdest_t){XDEST_QUEUE, q};
    } else {
        exchange_t *dx = find_ex(r, dest);
        if (!dx) return -1;
        *d = (xdest_t){XDEST_EXCHANGE, dx};
    }
    return 0;
}

static const char *jstr(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

void api_binding_post(http_req_t *r)
{
    static const char *const allowed[] = {"source", "destination", "destination_type", "routing_key", "arguments",
                                          "vhost", NULL};
    json_t *body = http_body_object(r, allowed);
    if (!body) return;
    wbuf_t args;
    wbuf_init(&args);
    exchange_t *src;
    xdest_t d;
    const char *key = jstr(body, "routing_key");
    json_t *jk = json_object_get(body, "routing_key");
    if ((jk && (!key || strlen(key) > 255))) {
        http_reply_error(r, 400, "routing_key must be a string of at most 255 bytes");
        goto out;
    }
    if (api_table_arg(r, json_object_get(body, "arguments"), "arguments", &args) < 0 ||
        binding_ends(r, jstr(body, "source"), jstr(body, "destination"), jstr(body, "destination_type"), &src, &d) < 0)
        goto out;
    int rc = vhost_bind(api_vhost(r), src, d, amqp_cstr(key ? key : ""), (amqp_bytes_t){args.p, (uint32_t)args.len});
    if (rc < 0) {
        http_reply_error(r, rc == HE_DENIED ? 403 : 500, "cannot bind: %s", herald_strerror(rc));
        goto out;
    }
    api_reply_after_catalog(r, 201, NULL);
out:
    wbuf_destroy(&args);
    json_decref(body);
}

void api_binding_delete(http_req_t *r)
{
    exchange_t *src;
    xdest_t d;
    const char *key = http_req_query(r, "routing_key");
    if (binding_ends(r, http_req_query(r, "source"), http_req_query(r, "destination"),
                     http_req_query(r, "destination_type"), &src, &d) < 0)
        return;
    amqp_bytes_t k = amqp_cstr(key ? key : "");
    for (xbinding_t *b = exchange_bindings(src); b; b = xbinding_next(b)) {
        xdest_t bd = xbinding_dest(b);
        amqp_bytes_t bk = xbinding_key(b);
        if (bd.kind != d.kind || bd.ptr != d.ptr || bk.len != k.len || (k.len && memcmp(bk.p, k.p, k.len))) continue;
        wbuf_t args; /* the binding's bytes go with it */
        wbuf_init(&args);
        wbuf_put(&args, xbinding_args(b).p, xbinding_args(b).len);
        vhost_unbind(api_vhost(r), src, d, k, (amqp_bytes_t){args.p, (uint32_t)args.len});
        wbuf_destroy(&args);
        api_reply_after_catalog(r, 204, NULL);
        return;
    }
    http_reply_error(r, 404, "no such binding");
}
