/*
 * Exchanges, bindings and routing (see exchange.h for the contract).
 *
 * Layout. The registry owns every exchange (a uthash by name plus a list in
 * declaration order). An exchange owns the bindings where it is the source
 * (a list in binding order plus a uthash by "signature", the bytes that
 * make a binding identical: destination, key and arguments) and one routing
 * index chosen by its type:
 *
 *   direct   uthash from binding key to the bindings with that key: O(1)
 *   fanout   none: every binding
 *   topic    a trie over the words of the binding keys; each node has its
 *            literal children (uthash by word), one "*" child and one "#"
 *            child; a binding hangs off the node its last word leads to
 *   headers  none: each binding's pre-parsed arguments are tried in turn
 *
 * Each binding is also on the list of its destination: a queue's list lives
 * in the registry (uthash by queue pointer, dropped when empty) so that a
 * queue deletion finds its bindings without a scan; an exchange's list of
 * incoming bindings lives in the exchange, for the same reason on delete.
 *
 * Routing is a walk over exchanges with an explicit stack; a registry-wide
 * generation counter, bumped per call, marks exchanges visited (cycles are
 * harmless) and memoises the topic walk. Queues are collected with
 * duplicates, then de-duplicated in place, keeping first-seen order.
 *
 * Topic matching cost: a "#" node reached at word i stands for every
 * position i..n, so a node records the smallest position it has been
 * explored from in this generation and never explores a position twice.
 * Every (node, position) pair is then visited at most once per message,
 * whatever the number of "#" in the keys ("#.#.#" cannot go exponential).
 */
#include "broker/exchange.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "amqp/ftable.h"
#include "base/err.h"
#include "base/mem.h"

#define XNAME_MAX 255 /* exchange names and binding keys are shortstrs */

typedef struct tnode tnode_t;
typedef struct dkey dkey_t;
typedef struct qent qent_t;

enum { TN_ROOT, TN_WORD, TN_STAR, TN_HASH };
enum { HM_ALL, HM_ANY, HM_ALL_X, HM_ANY_X };

/* A topic trie node. */
struct tnode {
    UT_hash_handle hh;    /* in parent->children (TN_WORD only), key = word */
    tnode_t *parent;      /* NULL for the root */
    tnode_t *children;    /* uthash of literal words */
    tnode_t *star, *hash; /* the "*" and "#" children, or NULL */
    xbinding_t *bindings; /* bindings whose key ends here (inext/iprev) */
    uint64_t gen;         /* route generation of min_pos (TN_HASH only) */
    uint32_t min_pos;     /* smallest word index explored in gen */
    uint8_t kind;         /* TN_* */
    uint32_t wlen;
    char word[];          /* wlen bytes + NUL (so "" has a valid pointer) */
};

/* A direct-exchange bucket: the bindings with one key. */
struct dkey {
    UT_hash_handle hh;    /* in ex->direct, key = key bytes */
    xbinding_t *bindings; /* inext/iprev */
    uint32_t len;
    uint8_t key[];        /* len bytes + NUL */
};

/* The bindings whose destination is one queue. */
struct qent {
    UT_hash_handle hh; /* in r->queues, key = the queue pointer */
    void *queue;
    xbinding_t *bindings; /* dnext/dprev; never empty (dropped when it would be) */
};

/* A pre-parsed headers-exchange binding argument (views into b->args). */
typedef struct {
    amqp_bytes_t name;
    fvalue_t v;
} hmatch_t;

struct xbinding {
    UT_hash_handle hh;         /* in src->by_sig, key = sig */
    exchange_t *src;
    xdest_t dest;
    qent_t *qe;                /* the destination queue's entry, NULL for exchanges */
    xbinding_t *prev, *next;   /* src's bindings, in binding order */
    xbinding_t *dprev, *dnext; /* the destination's incoming bindings */
    xbinding_t *iprev, *inext; /* the index bucket (dkey or tnode) */
    void *slot;                /* that dkey_t * or tnode_t *, NULL otherwise */
    amqp_bytes_t key, args;    /* views into sig */
    hmatch_t *hm;              /* headers only: nhm matchers (owned) */
    uint32_t nhm;
    uint8_t hmode;             /* HM_* */
    size_t sig_len;
    uint8_t sig[];             /* kind u8, pointer, key_len u32, key, args */
};

struct exchange {
    UT_hash_handle hh;        /* in r->by_name, key = name */
    exchange_t *prev, *next;  /* declaration order (utlist: head->prev = tail) */
    ex_type_t type;
    unsigned flags;           /* EXF_* */
    uint8_t builtin;          /* "" and amq.* */
    uint8_t is_default;       /* "" */
    uint8_t dying;            /* being destroyed: never auto-deleted again */
    size_t nbind;             /* bindings where this is the source */
    xbinding_t *bindings;     /* prev/next, binding order */
    xbinding_t *by_sig;       /* the same bindings, uthash by sig */
    xbinding_t *inbound;      /* bindings whose destination is this (dprev/dnext) */
    dkey_t *direct;           /* EX_DIRECT index */
    dkey_t *last_dk;          /* the bucket the last direct route found (cleared when it is freed) */
    tnode_t *trie;            /* EX_TOPIC index root (always present for topic) */
    uint64_t visit_gen;       /* route generation that last visited this */
    uint8_t *args;            /* declare arguments, table content (owned) */
    uint32_t args_len;
    void *ext;                /* the owner's (exchange_ext) */
    uint32_t name_len;
    char name[];              /* name_len bytes + NUL */
};

struct xregistry {
    xregistry_ops_t ops;
    exchange_t *by_name; /* uthash */
    exchange_t *list;    /* declaration order */
    qent_t *queues;      /* uthash by queue pointer */
    uint64_t gen;        /* bumped per route call */
    exchange_t *last_found; /* xregistry_find's last answer (cleared when it is freed) */
    /* Scratch reused across route calls (one loop thread owns the registry). */
    exchange_t **stack;
    size_t stack_cap;
    amqp_bytes_t *words;
    size_t words_cap;
    void **set;
    size_t set_cap;
};

/* A pointer uthash and memcmp accept for a possibly empty view. */
static const void *nz(const uint8_t *p) { return p ? (const void *)p : (const void *)""; }


/* ---- types and accessors ---- */

static const char *const type_names[] = {"direct", "fanout", "topic", "headers"};

int ex_type_parse(amqp_bytes_t name, ex_type_t *out)
{
    for (int t = EX_DIRECT; t <= EX_HEADERS; t++) {
        if (amqp_bytes_eq(name, type_names[t])) {
            *out = (ex_type_t)t;
            return 0;
        }
    }
    return HE_NOT_FOUND;
}

const char *ex_type_name(ex_type_t t) { return (unsigned)t <= EX_HEADERS ? type_names[t] : "unknown"; }

amqp_bytes_t exchange_name(const exchange_t *ex) { return (amqp_bytes_t){(const uint8_t *)ex->name, ex->name_len}; }
const char *exchange_name_cstr(const exchange_t *ex) { return ex->name; }
ex_type_t exchange_type(const exchange_t *ex) { return ex->type; }
unsigned exchange_flags(const exchange_t *ex) { return ex->flags; }
amqp_bytes_t exchange_args(const exchange_t *ex) { return (amqp_bytes_t){ex->args, ex->args_len}; }
int exchange_is_builtin(const exchange_t *ex) { return ex->builtin; }
void *exchange_ext(const exchange_t *ex) { return ex->ext; }
void exchange_set_ext(exchange_t *ex, void *ext) { ex->ext = ext; }

exchange_t *xregistry_first(xregistry_t *r) { return r->list; }
exchange_t *exchange_next(exchange_t *ex) { return ex->next; }
xbinding_t *exchange_bindings(exchange_t *ex) { return ex->bindings; }
xbinding_t *xbinding_next(xbinding_t *b) { return b->next; }
xdest_t xbinding_dest(const xbinding_t *b) { return b->dest; }
amqp_bytes_t xbinding_key(const xbinding_t *b) { return b->key; }
amqp_bytes_t xbinding_args(const xbinding_t *b) { return b->args; }

exchange_t *xregistry_find(xregistry_t *r, amqp_bytes_t name)
{
    /* A publisher sends to the same exchange over and over (twice per
     * message: at the method, and when the body is complete): the last
     * answer is checked first (a compare, not a hash). */
    exchange_t *ex = r->last_found;
    if (ex && ex->name_len == name.len && (!name.len || !memcmp(ex->name, name.p, name.len))) return ex;
    HASH_FIND(hh, r->by_name, nz(name.p), name.len, ex);
    if (ex) r->last_found = ex;
    return ex;
}

/* ---- topic trie ---- */

static tnode_t *tnode_new(tnode_t *parent, int kind, const uint8_t *w, uint32_t wlen)
{
    tnode_t *n = xcalloc(1, sizeof *n + wlen + 1);
    n->parent = parent;
    n->kind = (uint8_t)kind;
    n->wlen = wlen;
    if (wlen) memcpy(n->word, w, wlen);
    return n;
}

/* The child of n for one binding-key word, created if absent. */
static tnode_t *tnode_child(tnode_t *n, const uint8_t *w, uint32_t wlen)
{
    if (wlen == 1 && (w[0] == '*' || w[0] == '#')) {
        tnode_t **slot = w[0] == '*' ? &n->star : &n->hash;
        if (!*slot) *slot = tnode_new(n, w[0] == '*' ? TN_STAR : TN_HASH, w, 1);
        return *slot;
    }
    tnode_t *c = NULL;
    HASH_FIND(hh, n->children, nz(w), wlen, c);
    if (!c) {
        c = tnode_new(n, TN_WORD, w, wlen);
        HASH_ADD_KEYPTR(hh, n->children, c->word, c->wlen, c);
    }
    return c;
}

/* The node a binding key leads to (created). An empty key has zero words
 * and ends at the root; otherwise '.' separates words, empty ones included. */
static tnode_t *trie_insert(tnode_t *root, amqp_bytes_t key)
{
    tnode_t *n = root;
    if (key.len == 0) return n;
    uint32_t start = 0;
    for (uint32_t i = 0; i <= key.len; i++) {
        if (i == key.len || key.p[i] == '.') {
            n = tnode_child(n, key.p + start, i - start);
            start = i + 1;
        }
    }
    return n;
}

/* Frees n and its now-empty ancestors, up to (not including) the root. */
static void trie_prune(tnode_t *n)
{
    while (n->parent && !n->bindings && !n->children && !n->star && !n->hash) {
        tnode_t *p = n->parent;
        if (n->kind == TN_STAR)
            p->star = NULL;
        else if (n->kind == TN_HASH)
            p->hash = NULL;
        else
            HASH_DELETE(hh, p->children, n);
        free(n);
        n = p;
    }
}

/* Frees a whole (sub)trie; bindings are not touched. */
static void trie_free(tnode_t *n)
{
    if (!n) return;
    tnode_t *c, *tmp;
    HASH_ITER(hh, n->children, c, tmp) {
        HASH_DELETE(hh, n->children, c);
        trie_free(c);
    }
    trie_free(n->star);
    trie_free(n->hash);
    free(n);
}

/* ---- routing ---- */

typedef struct {
    xregistry_t *r;
    xroute_t *out;
    size_t sp; /* entries on r->stack */
    uint64_t gen;
    const amqp_bytes_t *words;
    uint32_t nwords;
} route_ctx_t;

static void out_push(xroute_t *out, void *q)
{
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 16;
        out->q = xrealloc(out->q, out->cap * sizeof *out->q);
    }
    out->q[out->n++] = q;
}

/* A matching binding: a queue goes to the output, an exchange not yet
 * visited in this call onto the stack. */
static void emit(route_ctx_t *c, const xbinding_t *b)
{
    if (b->dest.kind == XDEST_QUEUE) {
        out_push(c->out, b->dest.ptr);
        return;
    }
    exchange_t *ex = b->dest.ptr;
    if (ex->visit_gen == c->gen) return;
    ex->visit_gen = c->gen;
    xregistry_t *r = c->r;
    if (c->sp == r->stack_cap) {
        r->stack_cap = r->stack_cap ? r->stack_cap * 2 : 16;
        r->stack = xrealloc(r->stack, r->stack_cap * sizeof *r->stack);
    }
    r->stack[c->sp++] = ex;
}

static void emit_list(route_ctx_t *c, const xbinding_t *b)
{
    for (; b; b = b->inext) emit(c, b);
}

static void trie_walk(route_ctx_t *c, const tnode_t *n, uint32_t i);

/* At "#" node h having consumed words up to i: h also stands for having
 * consumed i+1..n, so explore each position not explored yet this call. */
static void trie_hash(route_ctx_t *c, tnode_t *h, uint32_t i)
{
    uint32_t end = c->nwords;
    if (h->gen == c->gen) {
        if (h->min_pos <= i) return;
        end = h->min_pos - 1;
    }
    h->gen = c->gen;
    h->min_pos = i;
    for (uint32_t j = i; j <= end; j++) trie_walk(c, h, j);
}

/* At node n with words [0, i) consumed. */
static void trie_walk(route_ctx_t *c, const tnode_t *n, uint32_t i)
{
    if (i == c->nwords) {
        emit_list(c, n->bindings);
    } else {
        tnode_t *child = NULL;
        HASH_FIND(hh, n->children, c->words[i].p, c->words[i].len, child);
        if (child) trie_walk(c, child, i + 1);
        if (n->star) trie_walk(c, n->star, i + 1);
    }
    if (n->hash) trie_hash(c, n->hash, i);
}

static void route_topic(route_ctx_t *c, exchange_t *ex, amqp_bytes_t rk)
{
    xregistry_t *r = c->r;
    uint32_t n = 0;
    if (rk.len) {
        n = 1;
        for (uint32_t i = 0; i < rk.len; i++) n += rk.p[i] == '.';
    }
    if (n > r->words_cap) {
        r->words_cap = n < 64 ? 64 : n;
        r->words = xrealloc(r->words, r->words_cap * sizeof *r->words);
    }
    uint32_t w = 0, start = 0;
    for (uint32_t i = 0; rk.len && i <= rk.len; i++) {
        if (i == rk.len || rk.p[i] == '.') {
            r->words[w++] = (amqp_bytes_t){rk.p + start, i - start};
            start = i + 1;
        }
    }
    c->words = r->words;
    c->nwords = n;
    trie_walk(c, ex->trie, 0);
}

/* The first entry called name in a validated table. */
static int table_find(amqp_bytes_t table, amqp_bytes_t name, fvalue_t *v)
{
    ftable_iter_t it = {table};
    amqp_bytes_t n;
    while (ftable_next(&it, &n, v))
        if (n.len == name.len && (n.len == 0 || memcmp(n.p, name.p, n.len) == 0)) return 1;
    return 0;
}

static int headers_match(const xbinding_t *b, amqp_bytes_t headers)
{
    int all = b->hmode == HM_ALL || b->hmode == HM_ALL_X;
    for (uint32_t k = 0; k < b->nhm; k++) {
        fvalue_t hv;
        int m = table_find(headers, b->hm[k].name, &hv) &&
                (b->hm[k].v.type == FV_VOID || fvalue_equal(&b->hm[k].v, &hv));
        if (all && !m) return 0;
        if (!all && m) return 1;
    }
    return all; /* no matchers: all is vacuously true, any false (RabbitMQ) */
}

static void route_one(route_ctx_t *c, exchange_t *ex, amqp_bytes_t rk, amqp_bytes_t headers)
{
    if (ex->is_default) {
        void *q = c->r->ops.queue_lookup ? c->r->ops.queue_lookup(c->r->ops.ctx, rk) : NULL;
        if (q) out_push(c->out, q);
        return;
    }
    switch (ex->type) {
    case EX_DIRECT: {
        /* A publisher sends with the same key over and over: the last
         * bucket found is checked first (a compare, not a hash). */
        dkey_t *dk = ex->last_dk;
        if (!dk || dk->len != rk.len || (rk.len && memcmp(dk->key, rk.p, rk.len))) {
            HASH_FIND(hh, ex->direct, nz(rk.p), rk.len, dk);
            if (dk) ex->last_dk = dk;
        }
        if (dk) emit_list(c, dk->bindings);
        break;
    }
    case EX_FANOUT:
        for (const xbinding_t *b = ex->bindings; b; b = b->next) emit(c, b);
        break;
    case EX_TOPIC:
        route_topic(c, ex, rk);
        break;
    case EX_HEADERS:
        for (const xbinding_t *b = ex->bindings; b; b = b->next)
            if (headers_match(b, headers)) emit(c, b);
        break;
    }
}

/* Removes repeated queues from out, keeping first-seen order. Small outputs
 * compare pairwise; larger ones go through an open-addressing pointer set
 * (registry scratch, at most half full). */
static void route_dedupe(xregistry_t *r, xroute_t *out)
{
    size_t n = out->n, k = 0;
    if (n < 2) return;
    if (n <= 16) {
        for (size_t i = 0; i < n; i++) {
            size_t j = 0;
            while (j < k && out->q[j] != out->q[i]) j++;
            if (j == k) out->q[k++] = out->q[i];
        }
        out->n = k;
        return;
    }
    unsigned bits = 5;
    while (((size_t)1 << bits) < 2 * n) bits++;
    size_t cap = (size_t)1 << bits, mask = cap - 1;
    if (cap > r->set_cap) {
        free(r->set);
        r->set = xmalloc(cap * sizeof *r->set);
        r->set_cap = cap;
    }
    memset(r->set, 0, cap * sizeof *r->set);
    for (size_t i = 0; i < n; i++) {
        void *p = out->q[i];
        size_t h = (size_t)(((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) >> (64 - bits));
        while (r->set[h] && r->set[h] != p) h = (h + 1) & mask;
        if (r->set[h]) continue;
        r->set[h] = p;
        out->q[k++] = p;
    }
    out->n = k;
}

void xregistry_route(xregistry_t *r, exchange_t *ex, amqp_bytes_t routing_key, amqp_bytes_t headers, xroute_t *out)
{
    out->n = 0;
    if (!ex) return;
    route_ctx_t c = {.r = r, .out = out, .gen = ++r->gen};
    ex->visit_gen = c.gen;
    route_one(&c, ex, routing_key, headers);
    while (c.sp) route_one(&c, r->stack[--c.sp], routing_key, headers);
    route_dedupe(r, out);
}

void xroute_destroy(xroute_t *out)
{
    free(out->q);
    out->q = NULL;
    out->n = out->cap = 0;
}

/* ---- bindings ---- */

/* The identity of a binding: kind u8, destination pointer, key length u32,
 * key, args. Length-prefixing the key keeps key/args splits distinct. */
static size_t sig_size(amqp_bytes_t key, amqp_bytes_t args) { return 1 + sizeof(void *) + 4 + key.len + args.len; }

static void sig_write(uint8_t *s, xdest_t dest, amqp_bytes_t key, amqp_bytes_t args)
{
    s[0] = (uint8_t)dest.kind;
    memcpy(s + 1, &dest.ptr, sizeof(void *));
    uint8_t *p = s + 1 + sizeof(void *);
    memcpy(p, &key.len, 4);
    if (key.len) memcpy(p + 4, key.p, key.len);
    if (args.len) memcpy(p + 4 + key.len, args.p, args.len);
}

static xbinding_t *binding_find(exchange_t *src, xdest_t dest, amqp_bytes_t key, amqp_bytes_t args)
{
    size_t n = sig_size(key, args);
    uint8_t small[512];
    uint8_t *s = n <= sizeof small ? small : xmalloc(n);
    sig_write(s, dest, key, args);
    xbinding_t *b = NULL;
    HASH_FIND(hh, src->by_sig, s, n, b);
    if (s != small) free(s);
    return b;
}

/* Parses a headers binding's x-match and collects its matchers. Returns 0
 * or HE_INVALID (malformed table, x-match not one of the four strings). */
static int headers_parse(xbinding_t *b)
{
    if (ftable_validate(b->args) != 0) return HE_INVALID;
    static const char *const modes[] = {"all", "any", "all-with-x", "any-with-x"};
    fvalue_t v;
    b->hmode = HM_ALL;
    if (table_find(b->args, amqp_cstr("x-match"), &v)) {
        int m = -1;
        for (int i = 0; v.type == FV_LONGSTR && i < 4; i++)
            if (amqp_bytes_eq(v.v.str, modes[i])) m = i;
        if (m < 0) return HE_INVALID;
        b->hmode = (uint8_t)m;
    }
    int with_x = b->hmode == HM_ALL_X || b->hmode == HM_ANY_X;
    uint32_t cap = 0;
    ftable_iter_t it = {b->args};
    amqp_bytes_t name;
    while (ftable_next(&it, &name, &v)) {
        if (amqp_bytes_eq(name, "x-match")) continue;
        if (!with_x && name.len >= 2 && name.p[0] == 'x' && name.p[1] == '-') continue;
        if (b->nhm == cap) {
            cap = cap ? cap * 2 : 4;
            b->hm = xrealloc(b->hm, cap * sizeof *b->hm);
        }
        b->hm[b->nhm++] = (hmatch_t){name, v};
    }
    return 0;
}

static void exchange_destroy(xregistry_t *r, exchange_t *ex);

/* Unlinks b from every list and index and frees it. With cascade, an
 * auto-delete source left without bindings is deleted (callback first). */
static void binding_remove(xregistry_t *r, xbinding_t *b, int cascade)
{
    exchange_t *src = b->src;
    DL_DELETE2(src->bindings, b, prev, next);
    HASH_DELETE(hh, src->by_sig, b);
    src->nbind--;
    if (src->type == EX_DIRECT && b->slot) {
        dkey_t *dk = b->slot;
        DL_DELETE2(dk->bindings, b, iprev, inext);
        if (!dk->bindings) {
            HASH_DELETE(hh, src->direct, dk);
            if (src->last_dk == dk) src->last_dk = NULL;
            free(dk);
        }
    } else if (src->type == EX_TOPIC && b->slot) {
        tnode_t *n = b->slot;
        DL_DELETE2(n->bindings, b, iprev, inext);
        trie_prune(n);
    }
    if (b->qe) {
        qent_t *qe = b->qe;
        DL_DELETE2(qe->bindings, b, dprev, dnext);
        if (!qe->bindings) {
            HASH_DELETE(hh, r->queues, qe);
            free(qe);
        }
    } else {
        exchange_t *dex = b->dest.ptr;
        DL_DELETE2(dex->inbound, b, dprev, dnext);
    }
    free(b->hm);
    free(b);
    if (cascade && src->nbind == 0 && (src->flags & EXF_AUTO_DELETE) && !src->dying && !src->builtin) {
        if (r->ops.on_auto_delete) r->ops.on_auto_delete(r->ops.ctx, src);
        exchange_destroy(r, src);
    }
}

int xregistry_bind(xregistry_t *r, exchange_t *src, xdest_t dest, amqp_bytes_t key, amqp_bytes_t args)
{
    if (src->is_default) return HE_DENIED;
    if (!dest.ptr || key.len > XNAME_MAX) return HE_INVALID;
    if (dest.kind == XDEST_EXCHANGE && ((exchange_t *)dest.ptr)->is_default) return HE_DENIED;
    if (binding_find(src, dest, key, args)) return 1;

    size_t n = sig_size(key, args);
    xbinding_t *b = xcalloc(1, sizeof *b + n);
    b->src = src;
    b->dest = dest;
    b->sig_len = n;
    sig_write(b->sig, dest, key, args);
    uint8_t *kp = b->sig + 1 + sizeof(void *) + 4;
    b->key = (amqp_bytes_t){kp, key.len};
    b->args = (amqp_bytes_t){kp + key.len, args.len};
    if (src->type == EX_HEADERS) {
        int err = headers_parse(b);
        if (err) {
            free(b->hm);
            free(b);
            return err;
        }
    }

    HASH_ADD_KEYPTR(hh, src->by_sig, b->sig, b->sig_len, b);
    DL_APPEND2(src->bindings, b, prev, next);
    src->nbind++;
    if (src->type == EX_DIRECT) {
        dkey_t *dk = NULL;
        HASH_FIND(hh, src->direct, b->key.p, b->key.len, dk);
        if (!dk) {
            dk = xcalloc(1, sizeof *dk + key.len + 1);
            dk->len = key.len;
            if (key.len) memcpy(dk->key, key.p, key.len);
            HASH_ADD_KEYPTR(hh, src->direct, dk->key, dk->len, dk);
        }
        DL_APPEND2(dk->bindings, b, iprev, inext);
        b->slot = dk;
    } else if (src->type == EX_TOPIC) {
        tnode_t *tn = trie_insert(src->trie, b->key);
        DL_APPEND2(tn->bindings, b, iprev, inext);
        b->slot = tn;
    }
    if (dest.kind == XDEST_QUEUE) {
        qent_t *qe = NULL;
        HASH_FIND_PTR(r->queues, &dest.ptr, qe);
        if (!qe) {
            qe = xcalloc(1, sizeof *qe);
            qe->queue = dest.ptr;
            HASH_ADD_PTR(r->queues, queue, qe);
        }
        DL_APPEND2(qe->bindings, b, dprev, dnext);
        b->qe = qe;
    } else {
        exchange_t *dex = dest.ptr;
        DL_APPEND2(dex->inbound, b, dprev, dnext);
    }
    return 0;
}

int xregistry_unbind(xregistry_t *r, exchange_t *src, xdest_t dest, amqp_bytes_t key, amqp_bytes_t args)
{
    if (src->is_default) return HE_DENIED;
    xbinding_t *b = binding_find(src, dest, key, args);
    if (!b) return HE_NOT_FOUND;
    binding_remove(r, b, 1);
    return 0;
}

void xregistry_unbind_queue(xregistry_t *r, void *queue)
{
    /* Cascades only delete exchanges without source bindings and their
     * incoming exchange bindings, never this queue's entry: re-find it
     * each time because removing its last binding frees it. */
    qent_t *qe;
    for (;;) {
        qe = NULL;
        HASH_FIND_PTR(r->queues, &queue, qe);
        if (!qe) break;
        binding_remove(r, qe->bindings, 1);
    }
}

/* ---- exchanges ---- */

static exchange_t *exchange_new(xregistry_t *r, amqp_bytes_t name, ex_type_t type, unsigned flags, amqp_bytes_t args)
{
    exchange_t *ex = xcalloc(1, sizeof *ex + name.len + 1);
    ex->type = type;
    ex->flags = flags;
    ex->name_len = name.len;
    if (name.len) memcpy(ex->name, name.p, name.len);
    ex->args = xmalloc(args.len ? args.len : 1);
    ex->args_len = args.len;
    if (args.len) memcpy(ex->args, args.p, args.len);
    if (type == EX_TOPIC) ex->trie = tnode_new(NULL, TN_ROOT, NULL, 0);
    HASH_ADD_KEYPTR(hh, r->by_name, ex->name, ex->name_len, ex);
    DL_APPEND(r->list, ex);
    return ex;
}

/* Deletes every binding of ex, as source first (so that ex itself is never
 * auto-deleted twice) then as destination (which may auto-delete those
 * sources, recursively), and frees ex. No callback for ex itself. */
static void exchange_destroy(xregistry_t *r, exchange_t *ex)
{
    ex->dying = 1;
    while (ex->bindings) binding_remove(r, ex->bindings, 0);
    while (ex->inbound) binding_remove(r, ex->inbound, 1);
    HASH_DELETE(hh, r->by_name, ex);
    DL_DELETE(r->list, ex);
    if (r->last_found == ex) r->last_found = NULL;
    trie_free(ex->trie);
    free(ex->args);
    free(ex);
}

int xregistry_declare(xregistry_t *r, amqp_bytes_t name, ex_type_t type, unsigned flags, amqp_bytes_t args,
                      exchange_t **out)
{
    const unsigned mask = EXF_DURABLE | EXF_AUTO_DELETE | EXF_INTERNAL | EXF_DELAYED;
    if (name.len > XNAME_MAX || (unsigned)type > EX_HEADERS || (flags & ~mask)) return HE_INVALID;
    exchange_t *ex = xregistry_find(r, name);
    if (ex) {
        if (ex->type != type || ex->flags != flags) return ex->is_default ? HE_DENIED : HE_EXISTS;
        if (out) *out = ex;
        return 1;
    }
    if (name.len == 0) return HE_INVALID; /* unreachable: "" always exists */
    ex = exchange_new(r, name, type, flags, args);
    if (out) *out = ex;
    return 0;
}

int xregistry_delete(xregistry_t *r, exchange_t *ex, int if_unused)
{
    if (ex->builtin) return HE_DENIED;
    if (if_unused && ex->nbind) return HE_BUSY;
    exchange_destroy(r, ex);
    return 0;
}

xregistry_t *xregistry_new(const xregistry_ops_t *ops)
{
    static const struct {
        const char *name;
        ex_type_t type;
    } builtins[] = {
        {"", EX_DIRECT},           {"amq.direct", EX_DIRECT},   {"amq.fanout", EX_FANOUT},
        {"amq.topic", EX_TOPIC},   {"amq.headers", EX_HEADERS}, {"amq.match", EX_HEADERS},
    };
    xregistry_t *r = xcalloc(1, sizeof *r);
    if (ops) r->ops = *ops;
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        amqp_bytes_t none = {NULL, 0};
        exchange_t *ex = exchange_new(r, amqp_cstr(builtins[i].name), builtins[i].type, EXF_DURABLE, none);
        ex->builtin = 1;
        ex->is_default = i == 0;
    }
    return r;
}

void xregistry_free(xregistry_t *r)
{
    if (!r) return;
    /* Everything is dying: no auto-delete cascades, no callbacks. */
    for (exchange_t *ex = r->list; ex; ex = ex->next) ex->dying = 1;
    while (r->list) exchange_destroy(r, r->list);
    free(r->stack);
    free(r->words);
    free(r->set);
    free(r);
}
