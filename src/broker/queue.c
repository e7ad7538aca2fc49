/*
 * AMQP queues in memory: entries, priorities, delivery, acks and returns,
 * delays, expiry, length limits and the hand-off to dead-lettering. The
 * logs behind durable queues are in queue_store.c; see queue.h for the
 * model and docs/queues.md for the features.
 */
#include <stdlib.h>
#include <string.h>

#include "amqp/ftable.h"
#include "amqp/props.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/slab.h"
#include "broker/queue_int.h"
#include "broker/feed.h"
#include "broker/stream.h"
#include "broker/vhost.h"

/* ---- messages ---- */

/* Bytes of the messages alive (header, names, properties, body length). */
static uint64_t g_msg_bytes;

/* Past QUEUE_SLAB_FROM bytes of live messages, messages and entries of up
 * to SLAB_MAX_SIZE bytes come from base/slab's huge-page chunks: messages
 * that wait (delayed, behind a slow consumer) are touched and freed in
 * another order than they were allocated. From glibc's heap, with 300,000
 * alive, free merged each with its cold neighbours, malloc sorted them back
 * into bins, and the 4 KiB pages cost a fault each when the heap grew and
 * a TLB miss on most touches (delayed benchmark: 15 % less broker CPU on
 * huge pages). Messages read back from disk and freed once dead-lettered
 * (a TTL queue's expiry) churn the same way with only a few MiB alive: from
 * 1 MiB on, not 8, the ttl-expire benchmark took 16 % less CPU. Below it,
 * malloc's per-thread cache serves a queue that keeps up, and an idle
 * broker holds no chunk. The price: each size class in use holds at least
 * one 2 MiB chunk, so messages of many sizes can hold up to 64 MiB more
 * than their bytes. */
#define QUEUE_SLAB_FROM (1u << 20)
static uint64_t g_slab_from = QUEUE_SLAB_FROM;

void queue_slab_from(uint64_t bytes) { g_slab_from = bytes; }

/* Where a message's room for an entry starts: after its bytes. */
static size_t entry_room_at(const qmsg_t *m) { return (qmsg_size(m) + 7) & ~(size_t)7; }

/* A message from the slab has room for one queue entry after its bytes
 * (when it fits in the largest class): the entry of its first queue
 * (entry_new) sits there instead of in an allocation of its own. A
 * message and its entry are then read and written together, on one page:
 * the delayed benchmark holds some 450,000 of them, touched in an order
 * unrelated to their allocation three times each, and two allocations
 * meant two cold pages each time. */
static qmsg_t *msg_alloc(size_t size)
{
    qmsg_t *m;
    uint8_t c = 0;
    size_t with_room = ((size + 7) & ~(size_t)7) + sizeof(qentry_t);
    if (g_msg_bytes >= g_slab_from) /* (past SLAB_MAX_SIZE: malloc, class 0) */
        m = slab_alloc(with_room <= SLAB_MAX_SIZE ? with_room : size, &c);
    else m = xmalloc(size);
    m->pool_class = c;
    m->entry_used = 0;
    return m;
}

/* The room for an entry in m, if it has one free. */
static qentry_t *entry_room_take(qmsg_t *m)
{
    if (!m->pool_class || m->entry_used || entry_room_at(m) + sizeof(qentry_t) > (size_t)m->pool_class * SLAB_UNIT)
        return NULL;
    m->entry_used = 1;
    return (qentry_t *)(void *)((uint8_t *)m + entry_room_at(m));
}

static void msg_free(qmsg_t *m)
{
    if (m->pool_class) slab_free(m);
    else free(m);
}

qmsg_t *qmsg_grow(qmsg_t *m, uint64_t body_cap)
{
    size_t size = sizeof *m + qmsg_names_size(m) + m->props_len + body_cap;
    size_t have = (size_t)m->pool_class * SLAB_UNIT;
    if (!m->pool_class) return xrealloc(m, size); /* (from malloc: stays there) */
    if (size <= have) return m;
    qmsg_t *g = msg_alloc(size);
    uint8_t c = g->pool_class;
    memcpy(g, m, have); /* the whole old chunk: everything it holds (a names reference moves) */
    g->pool_class = c;
    g->entry_used = 0; /* (not routed yet: no entry) */
    msg_free(m);
    return g;
}

/* ---- shared names ----
 *
 * A message keeps its exchange and routing key: a delivery carries them and
 * its record stores them. Publishers mostly send a few pairs over and over,
 * and inline they were 90 of the ~290 bytes each of the delayed benchmark's
 * 400,000 waiting messages held (an exchange and queue named after the run).
 * A pair seen twice in a row at its place in a small table of recent pairs
 * is shared from then on: the message holds a pointer (8 bytes) to one
 * refcounted copy. A pair seen once (a routing key per message) stays
 * inline and costs a hash, nothing allocated; pairs no longer than the
 * pointer always stay inline. */
#define NAMES_SLOTS 64 /* a power of two */
typedef struct {
    uint32_t hash; /* of the last pair seen here */
    uint8_t seen;  /* that pair was seen once and is not shared yet */
    qnames_t *n;   /* the pair shared from here (one reference), or NULL */
} names_slot_t;
static names_slot_t g_names[NAMES_SLOTS];
static qnames_t *g_names_last; /* the slot's pair the last message took */

static void names_unref(qnames_t *n)
{
    if (n && --n->refs == 0) free(n);
}

static int names_is(const qnames_t *n, amqp_bytes_t exchange, amqp_bytes_t key)
{
    return n->exchange_len == exchange.len && n->key_len == key.len &&
           (!exchange.len || !memcmp(n->data, exchange.p, exchange.len)) &&
           (!key.len || !memcmp(n->data + exchange.len, key.p, key.len));
}

/* The shared copy of (exchange, key) with one more reference, or NULL if
 * it stays inline. */
static qnames_t *names_share(amqp_bytes_t exchange, amqp_bytes_t key)
{
    if ((size_t)exchange.len + key.len <= sizeof(qnames_t *)) return NULL;
    qnames_t *n = g_names_last;
    if (n && names_is(n, exchange, key)) return n->refs++, n;
    uint32_t h = crc32c(crc32c(exchange.len, exchange.p, exchange.len), key.p, key.len);
    names_slot_t *s = &g_names[h & (NAMES_SLOTS - 1)];
    if (s->n && s->n->hash == h && names_is(s->n, exchange, key)) return g_names_last = s->n, s->n->refs++, s->n;
    if (!s->seen || s->hash != h) { /* first sighting here: remembered, not shared */
        s->hash = h;
        s->seen = 1;
        return NULL;
    }
    /* The second in a row: shared from now on, in place of the slot's pair. */
    if (s->n == g_names_last) g_names_last = NULL;
    names_unref(s->n);
    n = xmalloc(sizeof *n + exchange.len + key.len);
    n->refs = 2; /* the slot's and the message's */
    n->hash = h;
    n->exchange_len = (uint8_t)exchange.len;
    n->key_len = (uint8_t)key.len;
    if (exchange.len) memcpy(n->data, exchange.p, exchange.len);
    if (key.len) memcpy(n->data + exchange.len, key.p, key.len);
    s->n = g_names_last = n;
    s->seen = 0;
    return n;
}

void qmsg_names_release(void)
{
    for (size_t i = 0; i < NAMES_SLOTS; i++) {
        names_unref(g_names[i].n);
        g_names[i] = (names_slot_t){0};
    }
    g_names_last = NULL;
}

qmsg_t *qmsg_new(amqp_bytes_t exchange, amqp_bytes_t key, amqp_bytes_t props, uint64_t body_len)
{
    return qmsg_new_room(exchange, key, props, body_len, body_len, clock_wall_ms());
}

qmsg_t *qmsg_new_room(amqp_bytes_t exchange, amqp_bytes_t key, amqp_bytes_t props, uint64_t body_len,
                      uint64_t body_cap, int64_t ts_ms)
{
    qnames_t *shared = names_share(exchange, key);
    size_t names = shared ? sizeof shared : (size_t)exchange.len + key.len;
    qmsg_t *m = msg_alloc(sizeof *m + names + props.len + body_cap);
    m->refs = 1;
    g_msg_bytes += sizeof *m + names + props.len + body_len;
    m->persistent = 0;
    m->exchange_len = (uint8_t)exchange.len;
    m->key_len = (uint8_t)key.len;
    m->shared_names = shared != NULL;
    m->props_len = props.len;
    m->body_len = body_len;
    m->ts_ms = ts_ms;
    m->expiration_ms = -1;
    m->ready_at_ms = 0;
    m->origin_qid = 0;
    m->origin_off = -1;
    uint8_t *p = m->data;
    if (shared) {
        memcpy(p, &shared, sizeof shared);
    } else {
        if (exchange.len) memcpy(p, exchange.p, exchange.len);
        if (key.len) memcpy(p + exchange.len, key.p, key.len);
    }
    p += names;
    if (props.len) memcpy(p, props.p, props.len);
    return m;
}

void qmsg_unref(qmsg_t *m)
{
    if (m && --m->refs == 0) {
        g_msg_bytes -= qmsg_size(m);
        if (m->shared_names) {
            qnames_t *n;
            memcpy(&n, m->data, sizeof n);
            names_unref(n);
        }
        msg_free(m);
    }
}

uint64_t queue_msg_bytes(void) { return g_msg_bytes; }

/* Entries the due passes handed on or expired (from memory), in all. */
static uint64_t g_due_work;

uint64_t queue_due_work(void) { return g_due_work; }

static uint64_t g_due_visits;

uint64_t queue_due_visits(void) { return g_due_visits; }

/* ---- arguments ---- */

int queue_parse_backoff(amqp_bytes_t s, int64_t *out, int max)
{
    int n = 0;
    uint32_t i = 0;
    while (i < s.len) {
        while (i < s.len && s.p[i] == ' ') i++;
        int64_t v = 0;
        uint32_t digits = 0;
        while (i < s.len && s.p[i] >= '0' && s.p[i] <= '9' && digits < 12) {
            v = v * 10 + (s.p[i++] - '0');
            digits++;
        }
        if (!digits) return -1;
        int64_t mult = 1;
        if (i + 1 < s.len && s.p[i] == 'm' && s.p[i + 1] == 's') i += 2;
        else if (i < s.len && s.p[i] == 's') mult = 1000, i++;
        else if (i < s.len && s.p[i] == 'm') mult = 60000, i++;
        else if (i < s.len && s.p[i] == 'h') mult = 3600000, i++;
        while (i < s.len && s.p[i] == ' ') i++;
        if (n == max) return -1;
        out[n++] = v * mult;
        if (i < s.len && s.p[i] != ',') return -1;
        if (i < s.len) {
            i++;
            if (i == s.len) return -1; /* a trailing comma */
        }
    }
    return n ? n : -1;
}

static int64_t arg_int(amqp_bytes_t args, const char *name, int64_t dflt)
{
    int64_t v;
    return ftable_get_int(args, name, &v) == 1 ? v : dflt;
}

static void parse_opts(queue_t *q)
{
    amqp_bytes_t a = {q->args, q->args_len};
    qopts_t *o = &q->opt;
    o->ttl_ms = arg_int(a, "x-message-ttl", -1);
    o->expires_ms = arg_int(a, "x-expires", -1);
    o->max_len = arg_int(a, "x-max-length", -1);
    o->max_bytes = arg_int(a, "x-max-length-bytes", -1);
    o->delivery_limit = arg_int(a, "x-delivery-limit", -1);
    amqp_bytes_t ls;
    if (ftable_get_str(a, "x-delivery-limit", &ls) == 1) { /* quorum queues take "3" too */
        int64_t v = 0;
        uint32_t i = ls.len && ls.p[0] == '-';
        for (; i < ls.len && i < 12 && ls.p[i] >= '0' && ls.p[i] <= '9'; i++) v = v * 10 + (ls.p[i] - '0');
        o->delivery_limit = ls.len && ls.p[0] == '-' ? -1 : v;
    }
    if (o->delivery_limit < 0) o->delivery_limit = -1;
    o->consumer_timeout_ms = arg_int(a, "x-consumer-timeout", -1);
    o->jitter_pct = arg_int(a, "x-retry-jitter", 0);
    int64_t prio = arg_int(a, "x-max-priority", 0);
    o->max_prio = prio > 0 && prio <= 255 ? (uint32_t)prio : 0;
    fvalue_t v;
    o->sac = ftable_get(a, "x-single-active-consumer", &v) == 1 && v.type == FV_BOOL && v.v.i;
    amqp_bytes_t s;
    o->quorum = ftable_get_str(a, "x-queue-type", &s) == 1 && amqp_bytes_eq(s, "quorum");
    o->overflow = QO_DROP_HEAD;
    if (ftable_get_str(a, "x-overflow", &s) == 1) {
        if (amqp_bytes_eq(s, "reject-publish")) o->overflow = QO_REJECT_PUBLISH;
        else if (amqp_bytes_eq(s, "reject-publish-dlx")) o->overflow = QO_REJECT_PUBLISH_DLX;
    }
    if (ftable_get_str(a, "x-retry-backoff", &s) == 1) {
        int n = queue_parse_backoff(s, o->backoff, QUEUE_BACKOFF_MAX);
        o->nbackoff = n > 0 ? n : 0;
    }
    o->has_dlx = ftable_get_str(a, "x-dead-letter-exchange", &o->dlx) == 1;
    if (ftable_get_str(a, "x-dead-letter-routing-key", &o->dlrk) != 1) o->dlrk = (amqp_bytes_t){NULL, 0};
}

/* ---- lifecycle ---- */

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
    parse_opts(q);
    queue_dedup_init(q);
    q->nlv = 1 + q->opt.max_prio;
    q->lv = xcalloc(q->nlv, sizeof *q->lv);
    q->dir = dir;
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
uint32_t queue_ready_count(const queue_t *q)
{
    return q->flags & QF_STREAM ? stream_message_count(q) : q->nready + (uint32_t)q->npaged;
}
uint32_t queue_unacked_count(const queue_t *q) { return q->nheld; }
uint32_t queue_consumer_count(const queue_t *q) { return q->nconsumers; }
uint32_t queue_delayed_count(const queue_t *q) { return q->delayed.n + q->dpaged.n; }
uint64_t queue_ready_bytes(const queue_t *q) { return q->ready_bytes + q->paged_bytes; }
int queue_is_quorum(const queue_t *q) { return q->opt.quorum; }
int64_t queue_consumer_timeout_ms(const queue_t *q) { return q->opt.consumer_timeout_ms; }
int queue_is_deleted(const queue_t *q) { return q->deleted; }
void *queue_owner(const queue_t *q) { return q->owner; }
void queue_set_owner(queue_t *q, void *owner) { q->owner = owner; }

void queue_set_spill_dir(queue_t *q, char *dir)
{
    free(q->spill_dir);
    q->spill_dir = dir;
}

int64_t queue_last_used_ms(const queue_t *q) { return q->last_used_ms; }
void queue_touch(queue_t *q) { q->last_used_ms = clock_mono_ms(); }
int64_t queue_expires_ms(const queue_t *q) { return q->opt.expires_ms; }
int queue_had_consumer(const queue_t *q) { return q->had_consumer; }
int queue_is_stored(const queue_t *q) { return (q->flags & QF_DURABLE) && q->data && !q->deleted; }

/* A queue that counts deliveries durably and shows x-delivery-count. */
static int counts_returns(const queue_t *q)
{
    return q->opt.quorum || q->opt.delivery_limit >= 0 || q->opt.nbackoff > 0;
}

int queue_has_exclusive_consumer(const queue_t *q)
{
    const qconsumer_t *c = q->consumers;
    for (uint32_t i = 0; i < q->nconsumers; i++, c = c->next)
        if (c->exclusive) return 1;
    return 0;
}

void queue_mark_dirty(queue_t *q)
{
    if (q->dirty) return;
    q->dirty = 1;
    q->dirty_next = q->b->dirty_queues;
    q->b->dirty_queues = q;
}

uint8_t queue_prio_of_props(const queue_t *q, amqp_bytes_t props)
{
    if (!q->opt.max_prio) return 0;
    amqp_props_t p;
    if (amqp_props_decode(props, &p) < 0 || !(p.flags & PROP_PRIORITY)) return 0;
    return (uint8_t)(p.priority > q->opt.max_prio ? q->opt.max_prio : p.priority);
}

uint8_t queue_prio_of(const queue_t *q, const qmsg_t *m) { return queue_prio_of_props(q, qmsg_props(m)); }

/* ---- where entries are ---- */

/* The time the vhost should call queue_run_due next (0: none). */
static int64_t next_due(queue_t *q)
{
    const qentry_t *x = qexpiry_top(&q->expiring);
    int64_t t = qwheel_next(&q->delayed);
    if (x && (!t || x->expires_ms < t)) t = x->expires_ms;
    return t;
}

/* ---- the queues with timed work ----
 *
 * A due pass visits only the queues that may have something due: a queue
 * joins b->due_queues when it gets an expiry, a delay or a paged TTL (also
 * one recovered at start-up) and leaves when a pass finds nothing more in
 * it. A pass over every queue of the vhost, with a dispatch each, took 18 %
 * more of the broker's CPU in the delayed benchmark with 5,000 idle
 * queues beside its own. */
void queue_arm(queue_t *q)
{
    broker_t *b = q->b;
    if (q->due_slot || q->deleted) return;
    if (b->ndue == b->capdue) {
        b->capdue = b->capdue ? 2 * b->capdue : 16;
        b->due_queues = xrealloc(b->due_queues, b->capdue * sizeof *b->due_queues);
    }
    b->due_queues[b->ndue++] = q;
    q->due_slot = b->ndue;
}

static void disarm(queue_t *q)
{
    broker_t *b = q->b;
    if (!q->due_slot) return;
    queue_t *last = b->due_queues[--b->ndue];
    b->due_queues[q->due_slot - 1] = last;
    last->due_slot = q->due_slot;
    q->due_slot = 0;
}

static queue_t **g_due_round; /* queue_run_all_due's copy of the list */
static size_t g_due_round_cap;

void queue_due_round_free(void)
{
    free(g_due_round);
    g_due_round = NULL;
    g_due_round_cap = 0;
}

int64_t queue_run_all_due(broker_t *b, int64_t now_ms)
{
    /* A copy, each queue pinned: a pass may add queues to the list (a
     * dead-letter target's expiries) or end one's life. */
    size_t n = b->ndue;
    if (n > g_due_round_cap) {
        g_due_round_cap = n;
        g_due_round = xrealloc(g_due_round, n * sizeof *g_due_round);
    }
    if (n) memcpy(g_due_round, b->due_queues, n * sizeof *g_due_round);
    for (size_t i = 0; i < n; i++) queue_pin(g_due_round[i]);
    int64_t next = 0;
    for (size_t i = 0; i < n; i++) {
        queue_t *q = g_due_round[i];
        int64_t t = queue_run_due(q, now_ms);
        if (!t) disarm(q);
        else if (!next || t < next) next = t;
    }
    for (size_t i = 0; i < n; i++) queue_unpin(g_due_round[i]);
    return next;
}

/* Asks the vhost for a call at the next due time when it moved earlier. */
static void wake_at(queue_t *q, int64_t t)
{
    if (!t) return;
    queue_arm(q);
    if ((q->wake_at && q->wake_at <= t) || !q->b->vhost) return;
    q->wake_at = t;
    vhost_wake_at(q->b->vhost, t);
}

static void schedule(queue_t *q) { wake_at(q, next_due(q)); }

void queue_wake_at(queue_t *q, int64_t t) { wake_at(q, t); }

static void list_link(qentry_t **head, qentry_t *e)
{
    e->prev = NULL;
    e->next = *head;
    if (*head) (*head)->prev = e;
    *head = e;
}

static void list_unlink(qentry_t **head, qentry_t *e)
{
    if (e->prev) e->prev->next = e->next;
    else *head = e->next;
    if (e->next) e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

/* Inserts e into its level's ready list by seq, scanning from *pos (or the
 * head): requeued entries are old, so they belong near the head. */
static void level_insert(queue_t *q, qentry_t *e, qentry_t **pos)
{
    qlevel_t *l = &q->lv[e->prio];
    qentry_t *p = pos && *pos ? *pos : l->head;
    if (l->tail && l->tail->seq < e->seq) p = NULL; /* newest: append */
    while (p && p->seq < e->seq) p = p->next;
    e->next = p;
    if (p) {
        e->prev = p->prev;
        if (p->prev) p->prev->next = e;
        else l->head = e;
        p->prev = e;
    } else {
        e->prev = l->tail;
        if (l->tail) l->tail->next = e;
        else l->head = e;
        l->tail = e;
    }
    l->n++;
    if (pos) *pos = e;
}

static void ready_add(queue_t *q, qentry_t *e, qentry_t **pos)
{
    level_insert(q, e, pos);
    if (e->prio > q->top) q->top = e->prio;
    e->state = QE_READY;
    q->nready++;
    q->ready_bytes += e->m->body_len;
    if (e->expires_ms) {
        qexpiry_push(&q->expiring, e);
        queue_arm(q);
    }
}

static void ready_remove(queue_t *q, qentry_t *e)
{
    qlevel_t *l = &q->lv[e->prio];
    if (e->prev) e->prev->next = e->next;
    else l->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else l->tail = e->prev;
    l->n--;
    e->prev = e->next = NULL;
    if (e->hidx) qexpiry_remove(&q->expiring, e);
    e->state = 0;
    q->nready--;
    q->ready_bytes -= e->m->body_len;
}

static qentry_t *ready_first(queue_t *q)
{
    queue_page_refill(q); /* read back from disk what comes next */
    for (;;) {
        if (q->lv[q->top].head) return q->lv[q->top].head;
        if (q->top == 0) return NULL;
        q->top--;
    }
}

void queue_set_forward(queue_t *q, amqp_bytes_t exchange)
{
    free((void *)q->fwd.p);
    uint8_t *p = xmalloc(exchange.len + 1);
    if (exchange.len) memcpy(p, exchange.p, exchange.len);
    q->fwd = (amqp_bytes_t){p, exchange.len};
}

void queue_place(queue_t *q, qentry_t *e, int64_t now_ms)
{
    /* A delay queue routes its messages from queue_run_due only, also the
     * ones already due at start-up (every queue is open by then). */
    if (e->ready_at_ms > now_ms || q->fwd.p) {
        if (!e->ready_at_ms) e->ready_at_ms = 1;
        e->state = QE_DELAYED;
        qwheel_push(&q->delayed, e, now_ms ? now_ms : clock_wall_ms());
        queue_arm(q);
    } else {
        e->ready_at_ms = 0;
        ready_add(q, e, NULL);
    }
}

void queue_unplace(queue_t *q, qentry_t *e)
{
    switch (e->state) {
    case QE_READY:
        ready_remove(q, e);
        break;
    case QE_DELAYED:
        qwheel_remove(&q->delayed, e);
        break;
    case QE_HELD:
        list_unlink(&q->held_head, e);
        q->nheld--;
        break;
    case QE_MOVING:
        list_unlink(&q->moving_head, e);
        q->nmoving--;
        break;
    default:
        break;
    }
    e->state = 0;
}

/* Freed entries from malloc kept for the next ones (linked by next);
 * past QUEUE_SLAB_FROM they come from the slab, like the messages. */
#define QUEUE_ENTRY_POOL_MAX 16384
static qentry_t *g_entry_pool;
static uint32_t g_entry_npool;

qentry_t *queue_entry_alloc(void)
{
    qentry_t *e = g_entry_pool;
    uint8_t c = 0;
    if (e) {
        mem_unpoison(e, sizeof *e);
        g_entry_pool = e->next;
        g_entry_npool--;
    } else if (g_msg_bytes >= g_slab_from) {
        e = slab_alloc(sizeof *e, &c);
    } else {
        e = xmalloc(sizeof *e);
    }
    memset(e, 0, sizeof *e);
    e->slab = c ? QE_FROM_SLAB : QE_FROM_MALLOC;
    return e;
}

void queue_entry_free(qentry_t *e)
{
    if (e->slab == QE_FROM_MSG) { /* freed with its message */
        qmsg_t *m = e->m;
        m->entry_used = 0;
        qmsg_unref(m); /* (e is not touched after: it may be gone with m) */
        return;
    }
    qmsg_unref(e->m);
    if (e->slab == QE_FROM_SLAB) {
        slab_free(e);
    } else if (g_entry_npool >= QUEUE_ENTRY_POOL_MAX) {
        free(e);
    } else {
        e->next = g_entry_pool;
        g_entry_pool = e;
        g_entry_npool++;
        mem_poison(e, sizeof *e);
        mem_unpoison(&e->next, sizeof e->next);
    }
}

void queue_entry_pool_free(void)
{
    while (g_entry_pool) {
        qentry_t *e = g_entry_pool;
        g_entry_pool = e->next;
        mem_unpoison(e, sizeof *e);
        free(e);
    }
    g_entry_npool = 0;
}

/* Dead-letters e (taken out of every list) with reason, or drops it when
 * the queue has no dead-letter exchange. */
static void dead_letter(queue_t *q, qentry_t *e, const char *reason)
{
    if (!strcmp(reason, "expired")) q->counters.expired++;
    if (!q->opt.has_dlx || q->deleted) {
        q->counters.dropped++;
        queue_entry_release(e);
        return;
    }
    q->counters.dead_lettered++;
    e->state = QE_MOVING;
    list_link(&q->moving_head, e);
    q->nmoving++;
    deadletter_move(q, e, reason);
}

/* A delay queue's message is due: route it on. */
static void forward(queue_t *q, qentry_t *e)
{
    e->q = q;
    e->state = QE_MOVING;
    list_link(&q->moving_head, e);
    q->nmoving++;
    deadletter_forward(q, e);
}

void queue_moved(qentry_t *e, int ok)
{
    queue_t *q = e->q;
    if (q->deleted) {
        list_unlink(&q->moving_head, e);
        q->nmoving--;
        queue_entry_free(e);
        queue_maybe_free(q);
    } else if (ok > 0) {
        queue_unplace(q, e);
        queue_entry_release(e);
    } else { /* -1 (shutdown) too: no removal may be recorded */
        /* Kept (not acked): a restart brings it back; nothing else may
         * deliver it now, or a retry loop would spin on a full disk. */
        e->parked = 1;
        if (ok == 0) LOG_W("queue %s: a message could not be dead-lettered; it stays until a restart", q->name);
    }
}

static int64_t expiry_of(const queue_t *q, const qmsg_t *m)
{
    int64_t ttl = q->opt.ttl_ms;
    if (m->expiration_ms >= 0 && (ttl < 0 || m->expiration_ms < ttl)) ttl = m->expiration_ms;
    if (ttl < 0) return 0;
    /* A delayed message's TTL counts from its due time, when the plugin
     * would route it into the queue. */
    int64_t from = m->ready_at_ms > m->ts_ms ? m->ready_at_ms : m->ts_ms;
    return from + ttl > 0 ? from + ttl : 1;
}

/* An entry for m (one reference) at priority level prio (queue_prio_of). */
static qentry_t *entry_new(queue_t *q, qmsg_t *m, uint8_t prio)
{
    qentry_t *e = entry_room_take(m);
    if (e) {
        memset(e, 0, sizeof *e);
        e->slab = QE_FROM_MSG;
    } else {
        e = queue_entry_alloc();
    }
    e->q = q;
    e->m = m;
    e->seq = q->next_seq++;
    e->offset = -1;
    e->prio = prio;
    e->ready_at_ms = m->ready_at_ms;
    e->expires_ms = expiry_of(q, m);
    return e;
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
    if (q->flags & QF_STREAM) stream_reader_remove(q, c);
    if (c->next == c) {
        q->consumers = NULL;
    } else {
        c->prev->next = c->next;
        c->next->prev = c->prev;
        /* With a single active consumer the ring keeps attach order, so
         * the next one in it is the longest waiting. */
        if (q->consumers == c) {
            q->consumers = c->next;
            if (q->opt.sac && q->nheld) q->sac_wait = 1;
        }
    }
    c->prev = c->next = NULL;
    c->q = NULL;
    q->nconsumers--;
    queue_touch(q);
}

void queue_kick(queue_t *q)
{
    if ((q->flags & QF_STREAM) && !q->deleted) stream_kick(q);
    feed_kick(q);
    if (!q->deleted) dispatch(q);
}

static int expired(const qentry_t *e, int64_t *now)
{
    /* A TTL of 0 still reaches a consumer that can take it at once (as
     * RabbitMQ); otherwise the expiry heap dead-letters it next turn. */
    if (!e->expires_ms || e->expires_ms <= e->m->ts_ms) return 0;
    if (!*now) *now = clock_wall_ms();
    return e->expires_ms <= *now;
}

static void hand_out(queue_t *q, qentry_t *e)
{
    ready_remove(q, e);
    e->state = QE_HELD;
    list_link(&q->held_head, e);
    q->nheld++;
    q->counters.delivered++;
    if (e->redelivered || e->deliveries) q->counters.redelivered++;
    e->deliveries++;
    if (e->offset > q->delivered_max) q->delivered_max = e->offset;
    if (e->offset >= 0 && e->offset > q->dmark && queue_is_stored(q)) {
        q->dmark = e->offset + 256; /* marks are written this far ahead of deliveries */
        q->dmark_dirty = 1;
        queue_mark_dirty(q);
    }
}

static void dispatch(queue_t *q)
{
    if (q->dispatching || q->deleted) return;
    q->dispatching = 1;
    int64_t now = 0;
    qentry_t *e;
    while (q->consumers && (e = ready_first(q))) {
        if (expired(e, &now)) {
            ready_remove(q, e);
            dead_letter(q, e, "expired");
            continue;
        }
        if (q->opt.sac && q->sac_wait) {
            /* A new active consumer waits until its predecessor's
             * deliveries are settled, so it gets them back first. */
            if (q->nheld) goto done;
            q->sac_wait = 0;
        }
        qconsumer_t *c = q->consumers, *start = c;
        while (!c->can_take(c)) {
            if (q->opt.sac) goto done; /* only the active consumer may take it */
            c = c->next;
            if (c == start) goto done;
        }
        if (!q->opt.sac) q->consumers = c->next; /* round robin: the next one is served next */
        /* The next ones are asked for while this one goes out: behind a
         * consumer's window, ready entries wait long enough to leave the
         * caches (the entry two ahead, the message one ahead). */
        const qentry_t *n = e->next;
        if (n) {
            __builtin_prefetch(n->next);
            for (int off = 0; off < 256; off += 64) __builtin_prefetch((const char *)n->m + off);
        }
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
    int64_t now = 0;
    qentry_t *e;
    while ((e = ready_first(q))) {
        if (expired(e, &now)) {
            ready_remove(q, e);
            dead_letter(q, e, "expired");
            continue;
        }
        hand_out(q, e);
        return e;
    }
    return NULL;
}

void queue_ack(qentry_t *e)
{
    if (stream_entry_is(e)) {
        stream_entry_free(e);
        return;
    }
    queue_t *q = e->q;
    if (q->deleted) {
        q->nheld--;
        queue_entry_free(e);
        queue_maybe_free(q);
        return;
    }
    queue_unplace(q, e);
    q->counters.acked++;
    queue_entry_release(e);
    if (q->sac_wait && !q->nheld) dispatch(q); /* the new active consumer may start */
}

void queue_reject(qentry_t *e)
{
    queue_t *q = e->q;
    if (q->deleted) {
        queue_ack(e);
        return;
    }
    queue_unplace(q, e);
    dead_letter(q, e, "rejected");
    if (q->sac_wait && !q->nheld) dispatch(q);
}

static int cmp_entry(const void *a, const void *b)
{
    const qentry_t *x = *(qentry_t *const *)a, *y = *(qentry_t *const *)b;
    if (x->q != y->q) return (uintptr_t)x->q < (uintptr_t)y->q ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static uint64_t g_rand = 0x9e3779b97f4a7c15ull;

/* The delay before attempt `returns` (1-based) with jitter, ms. */
static int64_t backoff_delay(const queue_t *q, uint32_t returns)
{
    int64_t d = q->opt.backoff[returns - 1];
    if (q->opt.jitter_pct > 0 && d > 0) {
        g_rand ^= g_rand << 13, g_rand ^= g_rand >> 7, g_rand ^= g_rand << 17; /* xorshift64 */
        int64_t span = d * q->opt.jitter_pct / 100;
        if (span > 0) d += (int64_t)(g_rand % (uint64_t)(2 * span + 1)) - span;
        if (d < 0) d = 0;
    }
    return d;
}

/* Past delay.memory.bytes of messages waiting for a retry, a stored one
 * whose record is written waits on disk (queue_delay.c) instead of in
 * memory: an outage that nacks everything must not hold the backlog in
 * memory. */
static int retry_waits_on_disk(const queue_t *q, const qentry_t *e)
{
    return queue_is_stored(q) && !q->fwd.p && e->offset >= 0 && e->m->persistent && !e->pend_slot &&
           q->delayed.bytes >= (uint64_t)broker_config(q->b)->delay_memory_bytes;
}

/* One return of e (taken out of the held list). Returns 1 if it goes back
 * to the ready list, 0 if it was dead-lettered or delayed. */
static int give_back(queue_t *q, qentry_t *e, int64_t now)
{
    e->redelivered = 1;
    e->returns++;
    if (!counts_returns(q)) return 1;
    if ((q->opt.delivery_limit >= 0 && e->returns > q->opt.delivery_limit) ||
        (q->opt.nbackoff && e->returns > (uint32_t)q->opt.nbackoff)) {
        dead_letter(q, e, "delivery_limit");
        return 0;
    }
    if (!q->opt.nbackoff) {
        queue_record_return(q, e);
        return 1;
    }
    e->ready_at_ms = now + backoff_delay(q, e->returns);
    if (e->ready_at_ms <= 0) e->ready_at_ms = 1;
    queue_record_return(q, e); /* the return record holds the count and the time */
    if (retry_waits_on_disk(q, e)) {
        queue_delay_push(q, e->ready_at_ms, e->offset, QDELAY_NOPOS, 0, e->returns);
        wake_at(q, e->ready_at_ms);
        queue_entry_free(e);
        return 0;
    }
    /* A queue that is not stored writes it to its spill log (once
     * written, it waits there as above). */
    if (!q->fwd.p && q->delayed.bytes >= (uint64_t)broker_config(q->b)->delay_memory_bytes &&
        queue_spill_wait(q, e)) {
        queue_entry_free(e);
        return 0;
    }
    e->state = QE_DELAYED;
    qwheel_push(&q->delayed, e, now);
    return 0;
}

static void enforce_limit(queue_t *q);

void queue_requeue(qentry_t **es, size_t n)
{
    n = stream_drop_entries(es, n); /* a stream's log still holds them */
    if (!n) return;
    qsort(es, n, sizeof *es, cmp_entry);
    int64_t now = clock_wall_ms();
    size_t i = 0;
    while (i < n) {
        queue_t *q = es[i]->q;
        qentry_t *pos[256] = {0}; /* per level: where the previous insertion went */
        size_t j = i;
        for (; j < n && es[j]->q == q; j++) {
            qentry_t *e = es[j];
            if (q->deleted) {
                q->nheld--;
                queue_entry_free(e);
                continue;
            }
            queue_unplace(q, e);
            q->counters.returned++;
            if (give_back(q, e, now)) ready_add(q, e, &pos[e->prio]);
        }
        i = j;
        if (q->deleted) {
            queue_maybe_free(q);
        } else {
            schedule(q);
            dispatch(q);
            enforce_limit(q); /* given back past a drop-head limit: dropped from the head */
        }
    }
}

amqp_bytes_t queue_entry_props(const qentry_t *e, int get, wbuf_t *w)
{
    amqp_bytes_t props = qmsg_props(e->m);
    /* Quorum queues show the count on every basic.get, 0 included (as
     * RabbitMQ), and on consumer deliveries once it is above 0. */
    if (!counts_returns(e->q) || (!e->returns && !(get && e->q->opt.quorum))) return props;
    return deadletter_props_with_count(props, e->returns, w);
}

/* ---- publishing and limits ---- */

static int over_limit(const queue_t *q)
{
    return (q->opt.max_len >= 0 && q->nready + q->npaged > (uint64_t)q->opt.max_len) ||
           (q->opt.max_bytes >= 0 && q->ready_bytes + q->paged_bytes > (uint64_t)q->opt.max_bytes);
}

/* reject-publish: the queue is full for m (RabbitMQ's test: the limit
 * reached before adding it). */
static int full_for(const queue_t *q, const qmsg_t *m)
{
    (void)m;
    return (q->opt.max_len >= 0 && q->nready + q->npaged >= (uint64_t)q->opt.max_len) ||
           (q->opt.max_bytes >= 0 && q->ready_bytes + q->paged_bytes >= (uint64_t)q->opt.max_bytes);
}

static void enforce_limit(queue_t *q)
{
    if (q->opt.overflow != QO_DROP_HEAD) return;
    qentry_t *h;
    while (over_limit(q) && (h = ready_first(q))) {
        ready_remove(q, h);
        dead_letter(q, h, "maxlen");
    }
}


int queue_publish(queue_t *q, qmsg_t *m, uint32_t *epoch, int64_t *target)
{
    if (q->flags & QF_STREAM) return stream_publish(q, m, epoch, target);
    if (q->dedup && queue_dedup_seen(q, qmsg_props(m), clock_wall_ms())) {
        q->counters.duplicates++;
        return QP_DONE; /* a duplicate: confirmed, not enqueued */
    }
    if (q->opt.overflow != QO_DROP_HEAD && !m->ready_at_ms && full_for(q, m)) { /* delayed: when due */
        q->counters.refused++;
        if (q->opt.overflow == QO_REJECT_PUBLISH_DLX && q->opt.has_dlx) deadletter_copy(q, m, "maxlen");
        return QP_REJECTED;
    }
    q->counters.published++;
    if (m->ready_at_ms && q->delayed.bytes >= (uint64_t)broker_config(q->b)->delay_memory_bytes &&
        (queue_is_stored(q) || queue_spill_open(q))) {
        /* Past the memory budget of delayed messages (a delay queue's, or
         * a queue's from a delayed exchange), one waits on disk: 32 bytes
         * of it stay in memory (pushed once its record is written, with
         * where it is), the record is read back when due, or sooner once
         * the budget has room (queue_run_due). A transient one too (its
         * record is flagged: a restart drops it), and in a queue that is
         * not stored, in its spill log. */
        int64_t offset;
        int wait = queue_store_publish_paged(q, m, q->fwd.p ? 0 : expiry_of(q, m), 1, epoch, target, &offset);
        if (wait >= 0) {
            if (q->dedup) queue_dedup_add(q, qmsg_props(m), offset, m->ts_ms);
            return wait;
        }
    }
    uint8_t prio = queue_prio_of(q, m);
    if (!q->data && q->nready >= QUEUE_PAGE_HIGH) queue_spill_open(q); /* not stored: a deep backlog pages */
    if (!m->ready_at_ms && queue_page_out(q, prio)) { /* a deep backlog: the message stays on disk */
        int64_t offset;
        int wait = queue_store_publish_paged(q, m, expiry_of(q, m), 0, epoch, target, &offset);
        if (wait >= 0) {
            if (q->dedup) queue_dedup_add(q, qmsg_props(m), offset, m->ts_ms);
            queue_page_add(q, offset, prio, m->body_len);
            enforce_limit(q);
            wake_at(q, expiry_of(q, m)); /* read back to expire when its time comes */
            return wait;
        }
    }
    qentry_t *e = entry_new(q, qmsg_ref(m), prio); /* (its properties decoded once) */
    int wait = queue_store_publish(q, e, epoch, target);
    if (q->dedup) queue_dedup_add(q, qmsg_props(m), e->offset, m->ts_ms);
    queue_place(q, e, e->ready_at_ms ? e->m->ts_ms : 0); /* (one due since it arrived waits for the next pass) */
    dispatch(q);
    enforce_limit(q);
    schedule(q);
    return wait;
}

void queue_keep_in_memory(queue_t *q, const qpend_t *p)
{
    qmsg_t *m = p->m;
    qentry_t *e = entry_new(q, qmsg_ref(m), queue_prio_of(q, m));
    if (q->dedup) queue_dedup_add(q, qmsg_props(m), -1, m->ts_ms);
    if (p->delayed && p->wait_at) { /* a retry wait, with its delivery count */
        e->ready_at_ms = p->wait_at;
        e->returns = p->returns;
        e->redelivered = 1;
    }
    if (e->ready_at_ms) { /* one that was to wait on disk waits here */
        queue_place(q, e, 0);
        wake_at(q, e->ready_at_ms);
    } else {
        ready_add(q, e, NULL);
    }
}

/* A message read back from disk before it is due (a delay queue's, or a
 * retry wait's): it waits in memory. */
static void delay_back(queue_t *q, qentry_t *e) { queue_place(q, e, 0); }
/* The wait of e is over in a queue that is not a delay queue: a retry
 * wait's message is ready again in its place; one from a delayed exchange
 * (no returns yet) at the tail, unless the exchange no longer routes it here (unbound or
 * deleted while it waited): then it is dropped, as a message the plugin's
 * exchange routes nowhere. Also for waits read back from disk. */
static void wait_over(queue_t *q, qentry_t *e)
{
    if (e->returns) {
        ready_add(q, e, NULL);
        return;
    }
    if (q->b->vhost && !vhost_still_routes(q->b->vhost, q, e->m)) {
        q->counters.dropped++;
        queue_entry_release(e);
        return;
    }
    /* It arrives now, behind what is ready, and the length limits apply
     * now (not when it was published: it did not count while waiting). */
    if (q->opt.overflow != QO_DROP_HEAD && full_for(q, e->m)) {
        q->counters.refused++;
        if (q->opt.overflow == QO_REJECT_PUBLISH_DLX) dead_letter(q, e, "maxlen");
        else {
            q->counters.dropped++;
            queue_entry_release(e);
        }
        return;
    }
    e->seq = q->next_seq++;
    if (e->offset >= 0 && !e->pend_slot && e->m->persistent && queue_page_out(q, e->prio)) {
        /* A deep backlog: it joins the others on disk, by its place in
         * the log (its record is written). */
        queue_page_add(q, e->offset, e->prio, e->m->body_len);
        wake_at(q, e->expires_ms); /* read back to expire when its time comes */
        queue_entry_free(e);
    } else {
        ready_add(q, e, NULL);
    }
    enforce_limit(q);
}

/* Asks for a message's lines past the first (names, properties, body),
 * up to 512 bytes: a delivery or a dead-letter copy reads all of them. */
static void prefetch_rest(const qmsg_t *m)
{
    size_t len = qmsg_size(m);
    if (len > 512) len = 512;
    for (size_t off = 64; off < len; off += 64) __builtin_prefetch((const char *)m + off);
}

int64_t queue_run_due(queue_t *q, int64_t now_ms)
{
    g_due_visits++;
    q->wake_at = 0;
    if (q->deleted) return 0;
    /* The due ones in batches. With 200,000 waiting, hardly any entry or
     * message is still in a cache, and one miss after the other was 15 %
     * of the broker's CPU in the delayed benchmark: a batch's entries are
     * asked for all at once, then their messages (every line of them goes
     * into the delivery), so that the misses overlap; a batch of 256 of
     * the benchmark's is about 75 KB, well within the L2 cache. */
    enum { DUE_BATCH = 256 };
    qentry_t *due[DUE_BATCH], *e;
    size_t n, left = QUEUE_DUE_RUN;
    int more;
    while (left && (n = qwheel_pop_due(&q->delayed, now_ms, due, left < DUE_BATCH ? left : DUE_BATCH))) {
        left -= n;
        for (size_t i = 0; i < n; i++) __builtin_prefetch(due[i], 1);
        for (size_t i = 0; i < n; i++) __builtin_prefetch(due[i]->m);
        for (size_t i = 0; i < n; i++) prefetch_rest(due[i]->m);
        for (size_t i = 0; i < n; i++) {
            e = due[i];
            q->delayed.bytes -= queue_entry_mem(e);
            e->ready_at_ms = 0;
            if (q->fwd.p) forward(q, e);
            else wait_over(q, e);
        }
    }
    more = !left;
    g_due_work += QUEUE_DUE_RUN - left;
    /* The expired ones, each entry (and then its message) fetched a few
     * ahead of its turn: they are taken one at a time from the ring or the
     * heap (dead-lettering copies each message). */
    enum { DUE_AHEAD = 8 };
    left = QUEUE_DUE_RUN;
    while (left && (e = qexpiry_top(&q->expiring)) && e->expires_ms <= now_ms) {
        left--;
        const qentry_t *a = qexpiry_ahead(&q->expiring, DUE_AHEAD);
        if (a) __builtin_prefetch(a);
        if ((a = qexpiry_ahead(&q->expiring, DUE_AHEAD / 2))) __builtin_prefetch(a->m);
        if ((a = qexpiry_ahead(&q->expiring, DUE_AHEAD / 4))) prefetch_rest(a->m);
        ready_remove(q, e);
        dead_letter(q, e, "expired");
    }
    more |= !left;
    g_due_work += QUEUE_DUE_RUN - left;
    /* Delayed messages on disk: the due ones are routed and, while the
     * memory budget is less than half used, the soonest due up to the
     * budget come back to memory; the next time may be the next turn when
     * a due record is still being appended. */
    int64_t d = 0;
    if (q->dpaged.n) {
        uint64_t budget = (uint64_t)broker_config(q->b)->delay_memory_bytes;
        uint64_t ahead = q->delayed.bytes < budget / QUEUE_DELAY_LOW_DIV ? budget - q->delayed.bytes : 0;
        d = queue_delay_run(q, now_ms, ahead, q->fwd.p ? forward : wait_over, delay_back);
    }
    /* A TTL queue with messages on disk reads them back to expire them,
     * with a bounded number of dead-letter moves in flight (each holds its
     * message until its copy is durable). */
    int paging_ttl = q->npaged && q->opt.ttl_ms >= 0 && q->nready < QUEUE_PAGE_LOW;
    if (paging_ttl && q->nmoving < QUEUE_PAGE_BATCH) queue_page_in(q, QUEUE_PAGE_BATCH);
    dispatch(q);
    int64_t t = next_due(q);
    if (d && (!t || d < t)) t = d;
    if (paging_ttl && q->npaged && (!t || t > now_ms + 20))
        t = now_ms + 20; /* records not readable yet, or moves to finish: look again soon */
    if (more || (t && t < now_ms)) t = now_ms; /* more due than one pass takes: the next turn */
    q->wake_at = t;
    return t;
}

const queue_counters_t *queue_counters(const queue_t *q) { return &q->counters; }

uint32_t queue_purge(queue_t *q)
{
    uint32_t n = 0;
    qentry_t *e;
    /* The lists as they are: ready_first would read the backlog on disk
     * back into memory (every record decoded) only to drop it; that part
     * goes by ranges below. */
    for (uint32_t l = 0; l < q->nlv; l++)
        while ((e = q->lv[l].head)) {
            ready_remove(q, e);
            queue_entry_release(e);
            n++;
        }
    while ((e = qwheel_take_any(&q->delayed))) {
        queue_entry_release(e);
        n++;
    }
    for (uint32_t i = 0; i < q->dpaged.n; i++) /* retry waits on disk */
        queue_record_removed(q, q->dpaged.v[i].offset);
    n += q->dpaged.n;
    q->dpaged.n = 0;
    if (q->npaged) { /* the backlog on disk goes by ranges */
        qranges_t live = {0};
        queue_page_live(q, &live);
        queue_record_removed_ranges(q, &live);
        queue_dedup_forget_ranges(q, &live);
        qranges_free(&live);
        n += (uint32_t)q->npaged;
        queue_page_free(q);
        for (uint32_t l = 0; l < q->nlv; l++) q->lv[l].npaged = 0;
        q->npaged = q->paged_bytes = 0;
    }
    q->counters.dropped += n;
    return n;
}

/* ---- deletion ---- */

void queue_pin(queue_t *q) { q->pins++; }

void queue_unpin(queue_t *q)
{
    q->pins--;
    queue_maybe_free(q);
}

void queue_maybe_free(queue_t *q)
{
    if (!q->deleted || q->nheld || q->pins || q->nmoving) return;
    free(q->name);
    free(q->args);
    free(q->dir);
    free(q->spill_dir);
    free(q->lv);
    queue_dedup_free(q);
    free((void *)q->fwd.p);
    free(q->dpaged.v);
    qwheel_free(&q->delayed);
    qexpiry_free(&q->expiring);
    queue_store_free(q);
    free(q);
}

/* Frees every entry the queue itself holds (not those held by consumers
 * or in a move). */
static void drop_all(queue_t *q)
{
    qentry_t *e;
    /* The ready lists as they are: through ready_first, a close or a
     * delete read a deep backlog back from disk only to free it. */
    for (uint32_t l = 0; l < q->nlv; l++)
        while ((e = q->lv[l].head)) {
            ready_remove(q, e);
            queue_entry_free(e);
        }
    while ((e = qwheel_take_any(&q->delayed))) {
        queue_entry_free(e);
    }
    /* Parked entries (failed moves) belong to the queue; in-flight moves
     * free theirs through queue_moved. */
    for (qentry_t *p = q->moving_head, *n; p; p = n) {
        n = p->next;
        if (p->parked) {
            list_unlink(&q->moving_head, p);
            q->nmoving--;
            queue_entry_free(p);
        }
    }
}

void queue_delete(queue_t *q)
{
    if (q->flags & QF_STREAM) stream_queue_gone(q, 1);
    if (q->nmoving) deadletter_publish_held(); /* rejected just before: dead-lettered, not lost */
    feed_close(q, 1);
    while (q->consumers) {
        qconsumer_t *c = q->consumers;
        queue_consumer_remove(q, c);
        if (c->cancelled) c->cancelled(c);
    }
    drop_all(q);
    /* Closing the logs fires their waiters: a move ending there may be the
     * last thing holding q, which must outlive the close. */
    queue_pin(q);
    queue_store_delete(q); /* sets deleted */
    disarm(q);
    queue_unpin(q);
}

void queue_close(queue_t *q)
{
    if (q->flags & QF_STREAM) stream_queue_gone(q, 0);
    feed_close(q, 0);
    queue_store_close_begin(q);
    while (q->consumers) queue_consumer_remove(q, q->consumers);
    drop_all(q);
    queue_pin(q); /* as in queue_delete */
    queue_store_close_end(q); /* sets deleted */
    disarm(q);
    queue_unpin(q);
}
