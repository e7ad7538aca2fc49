/*
 * The AMQP virtual host "/" and its catalog records.
 *
 * Catalog records (in the broker catalog log, next to the topics; integers
 * big-endian; the last record for a key wins, a null value deletes):
 *
 *   key "x:<exchange name>"  value: version u8 (=1), type u8 (ex_type_t),
 *                            flags u8 (EXF_*), arguments: u32 length + table content
 *   key "q:<queue name>"     value: version u8 (=1), id u64 (names the log
 *                            directories queues/<id as 16 hex>-log and -state),
 *                            flags u8 (QF_*), arguments: u32 length + table content
 *   key "b:" + source (u8 length + bytes) + destination kind u8 (0 queue,
 *       1 exchange) + destination (u8 length + bytes) + routing key (u8
 *       length + bytes) + arguments table content (the rest)
 *                            value: version u8 (=1)
 *
 * Only durable exchanges, durable non-exclusive queues, and bindings whose
 * source and destination are both persisted, are written. Replay builds
 * the objects in memory; vhost_open() then opens the queue logs and removes
 * queue directories no record names (a delete interrupted by a crash).
 */
#include "broker/vhost.h"

#include <dirent.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "amqp/ftable.h"
#include "amqp/props.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/slab.h"
#include "broker/deadletter.h"
#include "broker/feed.h"
#include "broker/internal.h"
#include "broker/stream.h"
#include "store/deleter.h"

#define VHOST_TICK_MS 1000
#define VHOST_TRIM_BYTES (16u << 20) /* a drop of live message bytes that triggers a malloc_trim */
#define VHOST_SLAB_IDLE (1u << 20)   /* live message bytes below which the slab's spares go */
#define VHOST_DUE_BUSY 64            /* entries a due pass takes that space the next by due.pass.gap.ms */

typedef struct qnode {
    queue_t *q;
    UT_hash_handle hh; /* by name bytes */
} qnode_t;

/* The delay queue of an x-delayed-message exchange: not in the queue
 * namespace (nobody can bind, consume or declare it); its log directory
 * id is a hash of the exchange name, so no record of its own is needed. */
typedef struct dnode {
    queue_t *q;
    exchange_t *ex;
    struct dnode *next;
} dnode_t;

struct vhost {
    broker_t *b;
    xregistry_t *ex;
    qnode_t *queues;
    qnode_t *last_found; /* vhost_queue_find's last answer (cleared when its node goes) */
    dnode_t *delays; /* delay queues of x-delayed-message exchanges */
    char *qdir; /* <data>/queues */
    uv_prepare_t flush;
    uv_timer_t tick;
    uv_timer_t due;  /* queue_run_due passes: delays, expiries */
    uv_idle_t more;  /* a pass that left due work: the next one after the loop's I/O */
    int64_t due_at;  /* wall ms the next pass is set for (timer or idle), 0 none */
    int64_t due_busy; /* wall ms of the last pass that took VHOST_DUE_BUSY entries or more */
    int replaying;
    uint64_t msg_peak; /* most live message bytes seen since the last malloc_trim */
    uint64_t msg_prev; /* live message bytes at the last tick */
    int closing;     /* vhost_free: handles whose close is pending */
    int64_t routes_changed_ms; /* wall ms of the last binding or exchange change (start-up counts) */
    xroute_t recheck;          /* vhost_still_routes scratch */
};

static void *lookup_cb(void *ctx, amqp_bytes_t name)
{
    return vhost_queue_find(ctx, name);
}

static int ex_persisted(const exchange_t *ex)
{
    return (exchange_flags(ex) & EXF_DURABLE) && !exchange_is_builtin(ex);
}

static int q_persisted(const queue_t *q)
{
    return (queue_flags(q) & QF_DURABLE) && !(queue_flags(q) & QF_EXCLUSIVE);
}

static void cat_put(vhost_t *v, const wbuf_t *key, const wbuf_t *val)
{
    if (v->replaying) return;
    int64_t target;
    int rc = internal_append(v->b, v->b->catalog, key->p, (int32_t)key->len, val ? val->p : NULL,
                             val ? (int32_t)val->len : -1, &target);
    if (rc < 0) LOG_E("catalog write failed: %s", herald_strerror(rc));
}

static void key_named(wbuf_t *k, const char *prefix, amqp_bytes_t name)
{
    wbuf_init(k);
    wbuf_put(k, prefix, 2);
    wbuf_put(k, name.p, name.len);
}

static void put_short(wbuf_t *w, amqp_bytes_t s)
{
    wbuf_u8(w, (uint8_t)s.len);
    wbuf_put(w, s.p, s.len);
}

static void cat_exchange(vhost_t *v, exchange_t *ex, int deleted)
{
    if (!ex_persisted(ex)) return;
    wbuf_t k, val;
    key_named(&k, "x:", exchange_name(ex));
    wbuf_init(&val);
    wbuf_u8(&val, 1);
    wbuf_u8(&val, (uint8_t)exchange_type(ex));
    wbuf_u8(&val, (uint8_t)exchange_flags(ex));
    amqp_bytes_t a = exchange_args(ex);
    wbuf_u32(&val, a.len);
    wbuf_put(&val, a.p, a.len);
    cat_put(v, &k, deleted ? NULL : &val);
    wbuf_destroy(&k);
    wbuf_destroy(&val);
}

static void cat_queue(vhost_t *v, queue_t *q, int deleted)
{
    if (!q_persisted(q)) return;
    wbuf_t k, val;
    key_named(&k, "q:", queue_name(q));
    wbuf_init(&val);
    wbuf_u8(&val, 1);
    wbuf_u64(&val, queue_id(q));
    wbuf_u8(&val, (uint8_t)queue_flags(q));
    amqp_bytes_t a = queue_args(q);
    wbuf_u32(&val, a.len);
    wbuf_put(&val, a.p, a.len);
    cat_put(v, &k, deleted ? NULL : &val);
    wbuf_destroy(&k);
    wbuf_destroy(&val);
}

/* A binding end that exists again after a restart: a persisted queue, a
 * persisted exchange, or a built-in one (pre-declared, durable). */
static int ex_durable(const exchange_t *ex) { return (exchange_flags(ex) & EXF_DURABLE) != 0; }

static int dest_persisted(xdest_t d)
{
    return d.kind == XDEST_QUEUE ? q_persisted(d.ptr) : ex_durable(d.ptr);
}

static void cat_binding(vhost_t *v, exchange_t *src, xdest_t dest, amqp_bytes_t key, amqp_bytes_t args,
                        int deleted)
{
    if (!ex_durable(src) || !dest_persisted(dest)) return;
    wbuf_t k, val;
    wbuf_init(&k);
    wbuf_put(&k, "b:", 2);
    put_short(&k, exchange_name(src));
    wbuf_u8(&k, dest.kind == XDEST_QUEUE ? 0 : 1);
    put_short(&k, dest.kind == XDEST_QUEUE ? queue_name(dest.ptr) : exchange_name(dest.ptr));
    put_short(&k, key);
    wbuf_put(&k, args.p, args.len);
    wbuf_init(&val);
    wbuf_u8(&val, 1);
    cat_put(v, &k, deleted ? NULL : &val);
    wbuf_destroy(&k);
    wbuf_destroy(&val);
}

/* Null records for ex and every binding from or to it (they go with it). */
static void cat_exchange_gone(vhost_t *v, exchange_t *ex)
{
    if (!ex_persisted(ex)) return;
    for (xbinding_t *bd = exchange_bindings(ex); bd; bd = xbinding_next(bd))
        cat_binding(v, ex, xbinding_dest(bd), xbinding_key(bd), xbinding_args(bd), 1);
    xdest_t self = {XDEST_EXCHANGE, ex};
    for (exchange_t *src = xregistry_first(v->ex); src; src = exchange_next(src))
        for (xbinding_t *bd = exchange_bindings(src); bd; bd = xbinding_next(bd)) {
            xdest_t d = xbinding_dest(bd);
            if (d.kind == XDEST_EXCHANGE && d.ptr == ex)
                cat_binding(v, src, self, xbinding_key(bd), xbinding_args(bd), 1);
        }
    cat_exchange(v, ex, 1);
}

static uint64_t delay_id(amqp_bytes_t name)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 of "delay:" + name */
    const char *pre = "delay:";
    for (const char *p = pre; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    for (uint32_t i = 0; i < name.len; i++) h = (h ^ name.p[i]) * 0x100000001b3ull;
    return h;
}

/* Creates ex's delay queue (an EXF_DELAYED exchange). Its logs are opened
 * here when the vhost is running, else by vhost_open. */
static int delay_attach(vhost_t *v, exchange_t *ex)
{
    amqp_bytes_t xn = exchange_name(ex);
    char *label = xasprintf("delay queue of exchange '%.*s'", (int)xn.len, (const char *)xn.p);
    int durable = (exchange_flags(ex) & EXF_DURABLE) != 0;
    uint64_t id = delay_id(xn);
    char *dir = durable ? xasprintf("%s/%016llx", v->qdir, (unsigned long long)id) : NULL;
    queue_t *q = queue_new(v->b, amqp_cstr(label), id, durable ? QF_DURABLE : 0, (amqp_bytes_t){NULL, 0}, dir);
    free(label);
    queue_set_forward(q, xn);
    dnode_t *d = xcalloc(1, sizeof *d);
    d->q = q;
    d->ex = ex;
    d->next = v->delays;
    v->delays = d;
    exchange_set_ext(ex, q);
    if (durable && !v->replaying) {
        int rc = queue_open(q);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Deletes ex's delay queue with the messages it holds. */
static void delay_detach(vhost_t *v, exchange_t *ex)
{
    for (dnode_t **pp = &v->delays; *pp; pp = &(*pp)->next)
        if ((*pp)->ex == ex) {
            dnode_t *d = *pp;
            *pp = d->next;
            exchange_set_ext(ex, NULL);
            queue_delete(d->q);
            free(d);
            return;
        }
}

static void on_auto_delete(void *ctx, exchange_t *ex)
{
    cat_exchange_gone(ctx, ex);
    delay_detach(ctx, ex);
}

vhost_t *broker_vhost(broker_t *b, amqp_bytes_t name)
{
    return amqp_bytes_eq(name, "/") ? b->vhost : NULL;
}

/* ---- queues ---- */

queue_t *vhost_queue_find(vhost_t *v, amqp_bytes_t name)
{
    /* A publisher through the default exchange names the same queue over
     * and over: the last answer is checked first (a compare, not a hash). */
    qnode_t *n = v->last_found;
    if (n) {
        amqp_bytes_t have = queue_name(n->q);
        if (have.len == name.len && (!name.len || !memcmp(have.p, name.p, name.len))) return n->q;
    }
    HASH_FIND(hh, v->queues, name.p, name.len, n);
    if (n) v->last_found = n;
    return n ? n->q : NULL;
}

queue_t *vhost_queue_first(vhost_t *v) { return v->queues ? v->queues->q : NULL; }

queue_t *vhost_queue_next(vhost_t *v, queue_t *q)
{
    amqp_bytes_t name = queue_name(q);
    qnode_t *n;
    HASH_FIND(hh, v->queues, name.p, name.len, n);
    n = n ? n->hh.next : NULL;
    return n ? n->q : NULL;
}

static void add_node(vhost_t *v, queue_t *q)
{
    qnode_t *n = xcalloc(1, sizeof *n);
    n->q = q;
    amqp_bytes_t name = queue_name(q);
    HASH_ADD_KEYPTR(hh, v->queues, queue_name_cstr(q), name.len, n);
}

static queue_t *make_queue(vhost_t *v, amqp_bytes_t name, uint64_t id, unsigned flags, amqp_bytes_t args)
{
    char *dir = NULL;
    /* An exclusive queue ends with its connection, so it never outlives a
     * restart: it is not stored even when declared durable. */
    if ((flags & QF_DURABLE) && !(flags & (QF_EXCLUSIVE | QF_STREAM))) /* a stream's log is its topic */
        dir = xasprintf("%s/%016llx", v->qdir, (unsigned long long)id);
    queue_t *q = queue_new(v->b, name, id, flags, args, dir);
    /* One that is not stored pages a deep backlog into a spill log there
     * (left by a crash, it is an orphan sweep_orphans removes). */
    if (!dir && !(flags & QF_STREAM))
        queue_set_spill_dir(q, xasprintf("%s/%016llx-spill", v->qdir, (unsigned long long)id));
    add_node(v, q);
    return q;
}

static uint64_t new_id(void)
{
    uint64_t id = 0;
    while (!id) uv_random(NULL, NULL, &id, sizeof id, 0, NULL);
    return id;
}

int vhost_queue_create(vhost_t *v, amqp_bytes_t name, unsigned flags, amqp_bytes_t args, void *owner,
                       queue_t **out)
{
    queue_t *q = make_queue(v, name, new_id(), flags, args);
    queue_set_owner(q, owner);
    if ((flags & QF_DURABLE) && !(flags & QF_EXCLUSIVE)) {
        int rc = flags & QF_STREAM ? stream_open(v->b, q, 1) : queue_open(q);
        if (rc < 0) {
            vhost_queue_delete(v, q);
            return rc;
        }
    }
    if (!(flags & QF_STREAM) && feed_wanted(args)) {
        int rc = feed_open(v->b, q, 1);
        if (rc < 0) {
            vhost_queue_delete(v, q);
            return rc;
        }
    }
    cat_queue(v, q, 0);
    *out = q;
    return 0;
}

static void unbind_queue_persisted(vhost_t *v, queue_t *q)
{
    for (exchange_t *ex = xregistry_first(v->ex); ex; ex = exchange_next(ex))
        for (xbinding_t *bd = exchange_bindings(ex); bd; bd = xbinding_next(bd)) {
            xdest_t d = xbinding_dest(bd);
            if (d.kind == XDEST_QUEUE && d.ptr == q)
                cat_binding(v, ex, d, xbinding_key(bd), xbinding_args(bd), 1);
        }
}

uint32_t vhost_queue_delete(vhost_t *v, queue_t *q)
{
    uint32_t n = queue_ready_count(q);
    unbind_queue_persisted(v, q);
    xregistry_unbind_queue(v->ex, q);
    cat_queue(v, q, 1);
    amqp_bytes_t name = queue_name(q);
    qnode_t *node;
    HASH_FIND(hh, v->queues, name.p, name.len, node);
    if (node) {
        if (v->last_found == node) v->last_found = NULL;
        HASH_DEL(v->queues, node);
        free(node);
    }
    queue_delete(q);
    return n;
}

void vhost_owner_gone(vhost_t *v, void *owner)
{
    qnode_t *n, *tmp;
    HASH_ITER(hh, v->queues, n, tmp)
    {
        if (queue_owner(n->q) == owner && (queue_flags(n->q) & QF_EXCLUSIVE)) vhost_queue_delete(v, n->q);
    }
}

/* ---- exchanges and bindings ---- */

xregistry_t *vhost_exchanges(vhost_t *v) { return v->ex; }

int vhost_exchange_declare(vhost_t *v, amqp_bytes_t name, ex_type_t type, unsigned flags, amqp_bytes_t args,
                           exchange_t **out)
{
    int rc = xregistry_declare(v->ex, name, type, flags, args, out);
    if (rc == 0) cat_exchange(v, *out, 0);
    if (rc == 0 && (flags & EXF_DELAYED)) {
        int orc = delay_attach(v, *out);
        if (orc < 0) {
            vhost_exchange_delete(v, *out, 0);
            return orc;
        }
    }
    return rc;
}

int vhost_exchange_delete(vhost_t *v, exchange_t *ex, int if_unused)
{
    if (if_unused && exchange_bindings(ex)) return HE_BUSY;
    if (exchange_is_builtin(ex)) return HE_DENIED;
    cat_exchange_gone(v, ex);
    delay_detach(v, ex);
    v->routes_changed_ms = clock_wall_ms();
    return xregistry_delete(v->ex, ex, if_unused);
}

int vhost_bind(vhost_t *v, exchange_t *src, xdest_t dest, amqp_bytes_t key, amqp_bytes_t args)
{
    int rc = xregistry_bind(v->ex, src, dest, key, args);
    if (rc == 0) cat_binding(v, src, dest, key, args, 0);
    v->routes_changed_ms = clock_wall_ms();
    return rc;
}

int vhost_unbind(vhost_t *v, exchange_t *src, xdest_t dest, amqp_bytes_t key, amqp_bytes_t args)
{
    /* Written before the registry may auto-delete src. */
    cat_binding(v, src, dest, key, args, 1);
    v->routes_changed_ms = clock_wall_ms();
    return xregistry_unbind(v->ex, src, dest, key, args);
}

int vhost_route_publish(vhost_t *v, exchange_t *ex, qmsg_t *m, amqp_bytes_t headers, xroute_t *out)
{
    out->n = 0;
    xregistry_route(v->ex, ex, qmsg_key(m), headers, out);
    int64_t delay;
    if (!(exchange_flags(ex) & EXF_DELAYED) || !exchange_ext(ex) || ftable_get_int(headers, "x-delay", &delay) != 1 ||
        delay <= 0)
        return 0;
    /* Stored once: the message waits in each queue it reached until due
     * (and is dropped there if its exchange no longer routes it then:
     * vhost_still_routes). With no queue now, or a stream among them, it
     * waits in the exchange's delay queue and is routed when due. */
    m->ready_at_ms = m->ts_ms + delay; /* from its arrival, as the plugin counts */
    int hold = out->n == 0;
    for (size_t i = 0; i < out->n && !hold; i++) hold = (queue_flags(out->q[i]) & QF_STREAM) != 0;
    if (!hold) return 0;
    out->n = 0;
    if (out->cap < 1) {
        out->q = xrealloc(out->q, sizeof *out->q);
        out->cap = 1;
    }
    out->q[out->n++] = exchange_ext(ex);
    return 1;
}

int vhost_still_routes(vhost_t *v, const queue_t *q, const qmsg_t *m)
{
    if (m->ts_ms > v->routes_changed_ms) return 1; /* nothing changed since it was routed */
    exchange_t *ex = xregistry_find(v->ex, qmsg_exchange(m));
    if (!ex || !(exchange_flags(ex) & EXF_DELAYED)) return 0;
    amqp_bytes_t headers;
    if (amqp_props_headers(qmsg_props(m), &headers) < 0) headers = (amqp_bytes_t){NULL, 0};
    v->recheck.n = 0;
    xregistry_route(v->ex, ex, qmsg_key(m), headers, &v->recheck);
    for (size_t i = 0; i < v->recheck.n; i++)
        if (v->recheck.q[i] == q) return 1;
    return 0;
}

/* ---- catalog replay ---- */

static int read_short(rbuf_t *r, amqp_bytes_t *out)
{
    uint8_t n = rbuf_u8(r);
    out->p = rbuf_view(r, n);
    out->len = n;
    return r->err ? -1 : 0;
}

static void replay_binding(vhost_t *v, const uint8_t *k, int32_t kl, int deleted)
{
    rbuf_t r;
    rbuf_init(&r, k, (size_t)kl);
    amqp_bytes_t src, dest, key;
    if (read_short(&r, &src)) return;
    uint8_t kind = rbuf_u8(&r);
    if (read_short(&r, &dest) || read_short(&r, &key)) return;
    size_t rest = rbuf_remaining(&r);
    amqp_bytes_t args = {rbuf_view(&r, rest), (uint32_t)rest};
    if (r.err) return;
    exchange_t *sx = xregistry_find(v->ex, src);
    xdest_t d = {kind ? XDEST_EXCHANGE : XDEST_QUEUE, NULL};
    d.ptr = kind ? (void *)xregistry_find(v->ex, dest) : (void *)vhost_queue_find(v, dest);
    if (!sx || !d.ptr) return;
    if (deleted) xregistry_unbind(v->ex, sx, d, key, args);
    else xregistry_bind(v->ex, sx, d, key, args);
}

void vhost_replay_record(broker_t *b, const uint8_t *key, int32_t klen, const uint8_t *val, int32_t vlen)
{
    vhost_t *v = b->vhost;
    if (!v || klen < 2) return;
    amqp_bytes_t name = {key + 2, (uint32_t)(klen - 2)};
    if (name.len > 255 && key[0] != 'b') return;
    rbuf_t r;
    rbuf_init(&r, val, vlen > 0 ? (size_t)vlen : 0);
    if (key[0] == 'x') {
        exchange_t *old = xregistry_find(v->ex, name);
        if (vlen < 0) {
            if (old) {
                delay_detach(v, old);
                xregistry_delete(v->ex, old, 0);
            }
            return;
        }
        uint8_t ver = rbuf_u8(&r), type = rbuf_u8(&r), flags = rbuf_u8(&r);
        uint32_t alen = rbuf_u32(&r);
        const uint8_t *a = rbuf_view(&r, alen);
        if (r.err || ver != 1 || type > EX_HEADERS) return;
        if (old) {
            delay_detach(v, old);
            xregistry_delete(v->ex, old, 0);
        }
        exchange_t *ex;
        if (xregistry_declare(v->ex, name, (ex_type_t)type, flags, (amqp_bytes_t){a, alen}, &ex) == 0 &&
            (flags & EXF_DELAYED))
            delay_attach(v, ex);
    } else if (key[0] == 'q') {
        queue_t *old = vhost_queue_find(v, name);
        if (old) vhost_queue_delete(v, old);
        if (vlen < 0) return;
        uint8_t ver = rbuf_u8(&r);
        uint64_t id = rbuf_u64(&r);
        uint8_t flags = rbuf_u8(&r);
        uint32_t alen = rbuf_u32(&r);
        const uint8_t *a = rbuf_view(&r, alen);
        if (r.err || ver != 1) return;
        make_queue(v, name, id, flags, (amqp_bytes_t){a, alen});
    } else if (key[0] == 'b') {
        replay_binding(v, key + 2, klen - 2, vlen < 0);
    }
}

/* ---- timers ---- */

static void on_prepare(uv_prepare_t *h)
{
    vhost_t *v = h->data;
    queue_flush_all(v->b);
}

static void on_tick(uv_timer_t *t)
{
    vhost_t *v = t->data;
    int64_t mono = clock_mono_ms();
    qnode_t *n, *tmp;
    HASH_ITER(hh, v->queues, n, tmp)
    {
        queue_t *q = n->q;
        int64_t exp = queue_expires_ms(q);
        if (exp >= 0 && queue_consumer_count(q) == 0 && mono - queue_last_used_ms(q) >= exp) {
            LOG_I("queue %s expired (x-expires %lld ms)", queue_name_cstr(q), (long long)exp);
            vhost_queue_delete(v, q);
            continue;
        }
        queue_maintain(q);
    }
    for (dnode_t *d = v->delays; d; d = d->next) queue_maintain(d->q);
    if (v->b->tick_hook) v->b->tick_hook(v->b);
    /* A drained deep queue leaves a million small free chunks in the heap:
     * they stay counted as RSS, and later mallocs sort through them (the
     * p99 of the next 30 s of traffic rose from 0.2 to 3-5 ms). Trimming
     * sorts and returns them at once (12 ms for 150 MiB; checked each
     * tick, so one drain costs at most a few such stalls). Only a drop of
     * the live message bytes counts: messages flowing through (delayed,
     * dead-lettered) free as much as they allocate, and trimming under
     * them only made the next turns fault the same pages back in (a first
     * touch costs ~10 us per 4 KiB page here: 8-10 % of the broker's CPU
     * in the delayed and ttl-expire benchmarks). */
    uint64_t live = queue_msg_bytes(), prev = v->msg_prev;
    v->msg_prev = live;
    if (live > v->msg_peak) v->msg_peak = live;
    /* Once the fall has stopped: trimming while a drain goes on returned
     * pages that the next second's allocations faulted back in, and
     * madvised the heap chunk by chunk each second (one call per free run
     * of pages, ~6,000 per trim: 9 % of the broker's CPU in the delayed
     * benchmark, whose pending messages drain at its end). */
    if (v->msg_peak - live >= VHOST_TRIM_BYTES && prev < live + VHOST_TRIM_BYTES / 4) {
        int64_t t0 = clock_mono_ns();
        slab_release();
        qwheel_pool_release();
        malloc_trim(0);
        LOG_D("malloc_trim after live messages fell by %llu MiB: %.1f ms",
              (unsigned long long)((v->msg_peak - live) >> 20), (double)(clock_mono_ns() - t0) / 1e6);
        v->msg_peak = live;
    }
    /* The slab's spare chunks (4 MiB) and the delay wheels' free blocks
     * are not kept by a broker whose messages have come from malloc again
     * for two ticks (queue.c). */
    if (live < VHOST_SLAB_IDLE && prev < VHOST_SLAB_IDLE) {
        slab_release();
        qwheel_pool_release();
    }
}

static void on_more(uv_idle_t *h);

/* One pass over the due work of the queues that have some (the delay
 * queues of delayed exchanges among them). A queue that had more due than
 * one pass takes (QUEUE_DUE_RUN) answers now or earlier: the next pass
 * comes in the next turn of the loop, after its sockets were served, not
 * from a timer (a timer started in a timer callback runs again before any
 * I/O). */
static void due_pass(vhost_t *v)
{
    int64_t now = clock_wall_ms();
    uint64_t work = queue_due_work();
    v->due_at = 0;
    int64_t next = queue_run_all_due(v->b, now);
    if (queue_due_work() - work >= VHOST_DUE_BUSY) v->due_busy = now;
    if (next && next <= now) {
        v->due_at = next;
        uv_idle_start(&v->more, on_more);
    } else if (next) {
        vhost_wake_at(v, next);
    }
}

static void on_due(uv_timer_t *t) { due_pass(t->data); }

static void on_more(uv_idle_t *h)
{
    uv_idle_stop(h);
    due_pass(h->data);
}

/* After a busy pass (VHOST_DUE_BUSY entries or more), the timer's next
 * one waits for due.pass.gap.ms: 440,000 delayed messages a second, due
 * each on its millisecond, took a pass, a write to the consumer and a
 * wake-up of each side every millisecond; passes 5 ms apart took 18 % less
 * of the broker's CPU per message (docs/benchmarks.md), for up to 5 ms of
 * lateness under such load. Fewer due at a time are handed on on time. */
void vhost_wake_at(vhost_t *v, int64_t wall_ms)
{
    int64_t gap = broker_config(v->b)->due_pass_gap_ms;
    if (gap > 0 && v->due_busy && wall_ms < v->due_busy + gap) wall_ms = v->due_busy + gap;
    if (!v->due.loop || (v->due_at && v->due_at <= wall_ms)) return;
    int64_t now = clock_wall_ms();
    v->due_at = wall_ms;
    uv_timer_start(&v->due, on_due, wall_ms > now ? (uint64_t)(wall_ms - now) : 0, 0);
}

vhost_t *vhost_new(broker_t *b)
{
    vhost_t *v = xcalloc(1, sizeof *v);
    v->b = b;
    xregistry_ops_t ops = {v, lookup_cb, on_auto_delete};
    v->ex = xregistry_new(&ops);
    v->qdir = xasprintf("%s/queues", broker_config(b)->data_dir);
    v->replaying = 1;
    return v;
}

/* Removes queue directories that no queue owns (crash during a delete). */
static void sweep_orphans(vhost_t *v)
{
    DIR *d = opendir(v->qdir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long long id;
        char suffix[8];
        if (sscanf(e->d_name, "%16llx-%7s", &id, suffix) != 2) continue;
        int found = 0;
        for (qnode_t *n = v->queues; n && !found; n = n->hh.next) found = queue_id(n->q) == id;
        for (dnode_t *dn = v->delays; dn && !found; dn = dn->next) found = queue_id(dn->q) == id;
        if (found) continue;
        char *path = xasprintf("%s/%s", v->qdir, e->d_name);
        LOG_I("removing %s: no queue owns it", path);
        store_remove_dir(path);
        free(path);
    }
    closedir(d);
}

static int cmp_claim(const void *a, const void *b)
{
    const qclaim_t *x = a, *y = b;
    if (x->qid != y->qid) return x->qid < y->qid ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_intent(const void *a, const void *b)
{
    const qintent_t *x = a, *y = b;
    return x->stream_qid < y->stream_qid ? -1 : x->stream_qid > y->stream_qid;
}

/* Dead-letter copies found in the data logs remove their originals that
 * a crash left in the source queues (deadletter.c). */
static void resolve_claims(vhost_t *v)
{
    qclaim_t *c;
    size_t n = queue_take_claims(&c), cap = n;
    feed_claims(v->b, c, n); /* queues fed from topics resume after their last stored message */
    /* Moves into streams that a crash may have cut: the claims in each
     * such stream that answer its intents (queue.h), by stream. */
    qintent_t *in;
    size_t nin = queue_take_intents(&in);
    if (nin) qsort(in, nin, sizeof *in, cmp_intent);
    for (size_t i = 0, j; i < nin; i = j) {
        for (j = i + 1; j < nin && in[j].stream_qid == in[i].stream_qid; j++) {}
        for (qnode_t *q = v->queues; q; q = q->hh.next)
            if (queue_id(q->q) == in[i].stream_qid && (queue_flags(q->q) & QF_STREAM)) {
                size_t k = stream_scan_claims(q->q, in + i, j - i, &c, &n, &cap);
                amqp_bytes_t name = queue_name(q->q);
                LOG_I("stream %.*s: %zu of %zu interrupted dead-letter move(s) found stored", (int)name.len,
                      (const char *)name.p, k, j - i);
            }
    }
    free(in);
    if (!n) return;
    qsort(c, n, sizeof *c, cmp_claim);
    int64_t *offs = xmalloc(n * sizeof *offs);
    for (size_t i = 0; i < n;) {
        size_t j = i, k = 0;
        for (; j < n && c[j].qid == c[i].qid; j++) offs[k++] = c[j].offset;
        for (qnode_t *q = v->queues; q; q = q->hh.next)
            if (queue_id(q->q) == c[i].qid) queue_drop_claimed(q->q, offs, k);
        for (dnode_t *d = v->delays; d; d = d->next)
            if (queue_id(d->q) == c[i].qid) queue_drop_claimed(d->q, offs, k);
        i = j;
    }
    free(offs);
    free(c);
}

int vhost_open(vhost_t *v)
{
    v->replaying = 0;
    /* Delayed messages published before the restart check their routes
     * when due: the bindings may have changed while the broker was down. */
    v->routes_changed_ms = clock_wall_ms();
    int rc = mkdir_p(v->qdir);
    if (rc < 0) return rc;
    store_sweep_deleting(v->qdir);
    sweep_orphans(v);
    uv_timer_init(broker_loop(v->b), &v->due);
    v->due.data = v;
    uv_unref((uv_handle_t *)&v->due);
    uv_idle_init(broker_loop(v->b), &v->more);
    v->more.data = v;
    uv_unref((uv_handle_t *)&v->more);
    for (qnode_t *n = v->queues; n; n = n->hh.next) {
        unsigned f = queue_flags(n->q);
        if (!(f & QF_DURABLE) || (f & QF_EXCLUSIVE)) continue;
        if ((rc = f & QF_STREAM ? stream_open(v->b, n->q, 0) : queue_open(n->q)) < 0) return rc;
        if (!(f & QF_STREAM) && feed_wanted(queue_args(n->q)) && (rc = feed_open(v->b, n->q, 0)) < 0) return rc;
    }
    for (dnode_t *d = v->delays; d; d = d->next)
        if ((queue_flags(d->q) & QF_DURABLE) && (rc = queue_open(d->q)) < 0) return rc;
    resolve_claims(v);
    vhost_wake_at(v, clock_wall_ms());
    uv_prepare_init(broker_loop(v->b), &v->flush);
    v->flush.data = v;
    uv_prepare_start(&v->flush, on_prepare);
    uv_timer_init(broker_loop(v->b), &v->tick);
    v->tick.data = v;
    uv_timer_start(&v->tick, on_tick, VHOST_TICK_MS, VHOST_TICK_MS);
    uv_unref((uv_handle_t *)&v->flush);
    uv_unref((uv_handle_t *)&v->tick);
    return 0;
}

/* The handles live in v: v is freed when the last of them has closed (the
 * order in which libuv runs close callbacks is not ours to rely on). */
static void on_handle_closed(uv_handle_t *h)
{
    vhost_t *v = h->data;
    if (--v->closing == 0) free(v);
}

void vhost_free(vhost_t *v)
{
    if (!v) return;
    deadletter_shutdown();
    queue_flush_all(v->b);
    qnode_t *n, *tmp;
    v->last_found = NULL;
    HASH_ITER(hh, v->queues, n, tmp)
    {
        HASH_DEL(v->queues, n);
        queue_close(n->q);
        free(n);
    }
    while (v->delays) {
        dnode_t *d = v->delays;
        v->delays = d->next;
        queue_close(d->q);
        free(d);
    }
    xregistry_free(v->ex);
    xroute_destroy(&v->recheck);
    queue_scratch_free();
    free(v->qdir);
    /* Every handle vhost_open set up is closed, also after it failed half
     * way (v is zeroed: a handle never set up has no loop). */
    uv_handle_t *hs[] = {(uv_handle_t *)&v->flush, (uv_handle_t *)&v->due, (uv_handle_t *)&v->more,
                         (uv_handle_t *)&v->tick};
    v->closing = 0;
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        if (hs[i]->loop) v->closing++;
    if (!v->closing) {
        free(v);
        return;
    }
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        if (hs[i]->loop) {
            hs[i]->data = v;
            uv_close(hs[i], on_handle_closed);
        }
}
