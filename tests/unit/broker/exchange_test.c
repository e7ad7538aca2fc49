/* Exchanges, bindings and routing: topic matching (table driven and
 * against a reference matcher), direct, fanout, headers, exchange-to-
 * exchange bindings with cycles and de-duplication, idempotence, every
 * auto-delete path, declare/delete rules, the built-ins and iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "amqp/ftable.h"
#include "base/err.h"
#include "broker/exchange.h"

#define NQ 128
static int queues[NQ]; /* queue i is &queues[i]; only the address matters */
#define Q(i) ((void *)&queues[i])

static amqp_bytes_t B(const char *s) { return amqp_cstr(s); }
static const amqp_bytes_t NONE = {NULL, 0};

static xdest_t dq(int i) { return (xdest_t){XDEST_QUEUE, Q(i)}; }
static xdest_t dx(exchange_t *ex) { return (xdest_t){XDEST_EXCHANGE, ex}; }

/* Owner callbacks: the default exchange finds "q<i>"; auto-deletes are
 * recorded by name (the exchange must still be valid during the call). */
typedef struct {
    int deleted;
    char names[8][64];
} owner_t;

static void *lookup(void *ctx, amqp_bytes_t name)
{
    (void)ctx;
    if (name.len < 2 || name.len > 4 || name.p[0] != 'q') return NULL;
    int i = 0;
    for (uint32_t k = 1; k < name.len; k++) {
        if (name.p[k] < '0' || name.p[k] > '9') return NULL;
        i = i * 10 + (name.p[k] - '0');
    }
    return i < NQ ? Q(i) : NULL;
}

static void on_auto_delete(void *ctx, exchange_t *ex)
{
    owner_t *o = ctx;
    if (o->deleted < 8) snprintf(o->names[o->deleted], sizeof o->names[0], "%s", exchange_name_cstr(ex));
    o->deleted++;
}

static xregistry_t *new_registry(owner_t *o)
{
    memset(o, 0, sizeof *o);
    xregistry_ops_t ops = {o, lookup, on_auto_delete};
    xregistry_t *r = xregistry_new(&ops);
    assert_non_null(r);
    return r;
}

static exchange_t *declare(xregistry_t *r, const char *name, ex_type_t t, unsigned flags)
{
    exchange_t *ex = NULL;
    assert_int_equal(xregistry_declare(r, B(name), t, flags, NONE, &ex), 0);
    return ex;
}

/* Routes and returns the set of queue indices reached as a bitmask over
 * queues 0..63, asserting that no queue is returned twice. */
static uint64_t route_mask(xregistry_t *r, exchange_t *ex, const char *rk, amqp_bytes_t headers, xroute_t *out)
{
    xregistry_route(r, ex, B(rk), headers, out);
    uint64_t m = 0;
    for (size_t i = 0; i < out->n; i++) {
        size_t qi = (size_t)((int *)out->q[i] - queues);
        assert_true(qi < 64);
        assert_false(m & (1ull << qi));
        m |= 1ull << qi;
    }
    return m;
}

/* ---- topic ---- */

static const struct {
    const char *bkey, *rkey;
    int match;
} topic_cases[] = {
    {"#", "", 1},           {"#", "a", 1},           {"#", "a.b.c", 1},        {"#", ".", 1},
    {"*", "", 0},           {"*", "a", 1},           {"*", "a.b", 0},          {"*", ".", 0},
    {"*", "*", 1},          {"*.*", ".", 1},         {"a.#", "a", 1},          {"a.#", "a.b.c", 1},
    {"a.#", "b", 0},        {"a.#", "ab", 0},        {"#.a", "a", 1},          {"#.a", "x.y.a", 1},
    {"#.a", "a.x", 0},      {"a.#.b", "a.b", 1},     {"a.#.b", "a.x.y.b", 1},  {"a.#.b", "a.x.y", 0},
    {"#.#", "", 1},         {"#.#", "a.b", 1},       {"a.#.#.b", "a.b", 1},    {"#.b.#", "b", 1},
    {"#.b.#", "a.b.c", 1},  {"#.b.#", "a.c", 0},     {"a..b", "a..b", 1},      {"a.*.b", "a..b", 1},
    {"a..b", "a.b", 0},     {"a.b", "a..b", 0},      {"", "", 1},              {"", "a", 0},
    {"a", "", 0},           {"*.#", "", 0},          {"*.#", "a", 1},          {"#.*", "a.b", 1},
    {"#.*", "", 0},         {"a.*.#", "a", 0},       {"a.*.#", "a.b", 1},      {"a.b", "a.b.", 0},
    {"a.b.", "a.b.", 1},    {"a.b.*", "a.b.", 1},    {".", ".", 1},            {".", "", 0},
    {"a*", "ab", 0},        {"a*", "a*", 1},         {"a#", "a.b", 0},         {"a.b.c", "a.b.c", 1},
    {"#.#.#.#.#.#.#.#.#.#.x", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.y", 0},
    {"#.#.#.#.#.#.#.#.#.#.y", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.y", 1},
};

static void test_topic_table(void **state)
{
    (void)state;
    owner_t o;
    xroute_t out = {0};
    for (size_t i = 0; i < sizeof topic_cases / sizeof topic_cases[0]; i++) {
        xregistry_t *r = new_registry(&o);
        exchange_t *t = declare(r, "t", EX_TOPIC, 0);
        assert_int_equal(xregistry_bind(r, t, dq(0), B(topic_cases[i].bkey), NONE), 0);
        uint64_t m = route_mask(r, t, topic_cases[i].rkey, NONE, &out);
        if (m != (topic_cases[i].match ? 1u : 0u))
            fail_msg("binding \"%s\" vs key \"%s\": expected %d", topic_cases[i].bkey, topic_cases[i].rkey,
                     topic_cases[i].match);
        /* The same through amq.topic, then unbinding leaves nothing. */
        exchange_t *at = xregistry_find(r, B("amq.topic"));
        assert_int_equal(xregistry_bind(r, at, dq(1), B(topic_cases[i].bkey), NONE), 0);
        assert_int_equal(route_mask(r, at, topic_cases[i].rkey, NONE, &out), topic_cases[i].match ? 2u : 0u);
        assert_int_equal(xregistry_unbind(r, at, dq(1), B(topic_cases[i].bkey), NONE), 0);
        assert_int_equal(route_mask(r, at, topic_cases[i].rkey, NONE, &out), 0);
        xregistry_free(r);
    }
    xroute_destroy(&out);
}

/* Reference matcher over pre-split words, written the obvious way. */
static int ref_match(char **b, int bn, char **k, int kn)
{
    if (bn == 0) return kn == 0;
    if (strcmp(b[0], "#") == 0) {
        for (int j = 0; j <= kn; j++)
            if (ref_match(b + 1, bn - 1, k + j, kn - j)) return 1;
        return 0;
    }
    if (kn == 0) return 0;
    if (strcmp(b[0], "*") == 0 || strcmp(b[0], k[0]) == 0) return ref_match(b + 1, bn - 1, k + 1, kn - 1);
    return 0;
}

/* Splits s in place on '.' (an empty string has no words). */
static int split(char *s, char **w)
{
    if (!*s) return 0;
    int n = 0;
    w[n++] = s;
    for (; *s; s++) {
        if (*s == '.') {
            *s = '\0';
            w[n++] = s + 1;
        }
    }
    return n;
}

static void random_key(char *buf, const char *const *vocab, int nvocab, int maxwords, unsigned *seed)
{
    int n = rand_r(seed) % (maxwords + 1);
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i) strcat(buf, ".");
        strcat(buf, vocab[rand_r(seed) % nvocab]);
    }
}

/* Random bindings from a small vocabulary (with wildcards and empty words)
 * against random keys: the trie must agree with the reference matcher,
 * and the removal of half the bindings must leave the trie consistent. */
static void test_topic_vs_reference(void **state)
{
    (void)state;
    static const char *const bvocab[] = {"a", "b", "*", "#", ""};
    static const char *const kvocab[] = {"a", "b", "c", ""};
    enum { NB = 60, NK = 2000 };
    char bkeys[NB][32];
    unsigned seed = 12345;
    owner_t o;
    xroute_t out = {0};
    xregistry_t *r = new_registry(&o);
    exchange_t *t = declare(r, "t", EX_TOPIC, 0);
    for (int i = 0; i < NB; i++) {
        random_key(bkeys[i], bvocab, 5, 4, &seed);
        int rc = xregistry_bind(r, t, dq(i), B(bkeys[i]), NONE);
        assert_true(rc == 0);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < NK; k++) {
            char key[64], kcopy[64];
            random_key(key, kvocab, 4, 6, &seed);
            memcpy(kcopy, key, sizeof key);
            char *kw[16];
            int kn = split(kcopy, kw);
            uint64_t want = 0;
            for (int i = 0; i < NB; i++) {
                if (pass == 1 && i % 2) continue; /* unbound below */
                char bcopy[32];
                char *bw[16];
                memcpy(bcopy, bkeys[i], sizeof bcopy);
                int bn = split(bcopy, bw);
                if (ref_match(bw, bn, kw, kn)) want |= 1ull << i;
            }
            uint64_t got = route_mask(r, t, key, NONE, &out);
            if (got != want) fail_msg("key \"%s\" pass %d: got %llx want %llx", key, pass, (unsigned long long)got,
                                      (unsigned long long)want);
        }
        if (pass == 0)
            for (int i = 1; i < NB; i += 2) assert_int_equal(xregistry_unbind(r, t, dq(i), B(bkeys[i]), NONE), 0);
    }
    xroute_destroy(&out);
    xregistry_free(r);
}

/* 10k literal bindings plus wildcard ones; 100k messages with an expected
 * set computed arithmetically. Correctness only, no timing. */
static void test_topic_scale(void **state)
{
    (void)state;
    owner_t o;
    xroute_t out = {0};
    xregistry_t *r = new_registry(&o);
    exchange_t *t = declare(r, "t", EX_TOPIC, 0);
    char key[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "a%d.b%d", i / 100, i % 100);
        assert_int_equal(xregistry_bind(r, t, dq(i % 64), B(key), NONE), 0);
    }
    for (int a = 0; a < 100; a++) {
        snprintf(key, sizeof key, "a%d.*", a);
        assert_int_equal(xregistry_bind(r, t, dq(64 + a % 8), B(key), NONE), 0);
        snprintf(key, sizeof key, "#.b%d", a);
        assert_int_equal(xregistry_bind(r, t, dq(100 + a % 10), B(key), NONE), 0);
    }
    assert_int_equal(xregistry_bind(r, t, dq(127), B("#"), NONE), 0);
    for (int m = 0; m < 100000; m++) {
        int a = m % 131, b = (m / 131) % 103, extra = m % 7 == 0;
        snprintf(key, sizeof key, "a%d.b%d%s", a, b, extra ? ".c" : "");
        char want[NQ] = {0}, got[NQ] = {0};
        want[127] = 1;
        if (!extra && a < 100 && b < 100) want[(a * 100 + b) % 64] = 1;
        if (!extra && a < 100) want[64 + a % 8] = 1;
        if (!extra && b < 100) want[100 + b % 10] = 1;
        xregistry_route(r, t, B(key), NONE, &out);
        size_t nwant = 0;
        for (int q = 0; q < NQ; q++) nwant += (size_t)want[q];
        assert_int_equal(out.n, nwant);
        for (size_t i = 0; i < out.n; i++) {
            ptrdiff_t q = (int *)out.q[i] - queues;
            assert_true(q >= 0 && q < NQ && want[q] && !got[q]);
            got[q] = 1;
        }
    }
    xroute_destroy(&out);
    xregistry_free(r);
}

/* ---- direct, fanout, default ---- */

static void test_direct_fanout(void **state)
{
    (void)state;
    owner_t o;
    xroute_t out = {0};
    xregistry_t *r = new_registry(&o);
    exchange_t *d = declare(r, "d", EX_DIRECT, 0);
    assert_int_equal(xregistry_bind(r, d, dq(0), B("k"), NONE), 0);
    assert_int_equal(xregistry_bind(r, d, dq(1), B("k"), NONE), 0);
    assert_int_equal(xregistry_bind(r, d, dq(2), B("other"), NONE), 0);
    assert_int_equal(xregistry_bind(r, d, dq(3), B(""), NONE), 0);
    assert_int_equal(route_mask(r, d, "k", NONE, &out), 0x3);
    assert_int_equal(route_mask(r, d, "other", NONE, &out), 0x4);
    assert_int_equal(route_mask(r, d, "", NONE, &out), 0x8);
    assert_int_equal(route_mask(r, d, "K", NONE, &out), 0);
    assert_int_equal(route_mask(r, d, "k.", NONE, &out), 0);
    /* The same queue under two keys, and twice under one key with other args. */
    assert_int_equal(xregistry_bind(r, d, dq(0), B("other"), NONE), 0);
    assert_int_equal(route_mask(r, d, "other", NONE, &out), 0x5);
    assert_int_equal(xregistry_unbind(r, d, dq(0), B("k"), NONE), 0);
    assert_int_equal(route_mask(r, d, "k", NONE, &out), 0x2);
    assert_int_equal(xregistry_unbind(r, d, dq(1), B("k"), NONE), 0);
    assert_int_equal(route_mask(r, d, "k", NONE, &out), 0); /* its bucket is gone, not remembered */
    assert_int_equal(xregistry_bind(r, d, dq(5), B("k"), NONE), 0);
    assert_int_equal(route_mask(r, d, "k", NONE, &out), 0x20);
    assert_int_equal(route_mask(r, d, "other", NONE, &out), 0x5);
    assert_int_equal(route_mask(r, d, "k", NONE, &out), 0x20);

    exchange_t *f = xregistry_find(r, B("amq.fanout"));
    assert_non_null(f);
    assert_int_equal(route_mask(r, f, "x", NONE, &out), 0);
    for (int i = 0; i < 40; i++) assert_int_equal(xregistry_bind(r, f, dq(i), B(i % 2 ? "a" : "b"), NONE), 0);
    /* Many bindings to one queue: returned once (the large de-dup path). */
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "dup%d", i);
        assert_int_equal(xregistry_bind(r, f, dq(7), B(k), NONE), 0);
    }
    assert_int_equal(route_mask(r, f, "anything", NONE, &out), (1ull << 40) - 1);
    assert_int_equal(out.n, 40);
    /* First-seen order is kept. */
    for (size_t i = 0; i < out.n; i++) assert_ptr_equal(out.q[i], Q(i));
    xroute_destroy(&out);
    xregistry_free(r);
}

static void test_default_exchange(void **state)
{
    (void)state;
    owner_t o;
    xroute_t out = {0};
    xregistry_t *r = new_registry(&o);
    exchange_t *def = xregistry_find(r, B(""));
    assert_non_null(def);
    assert_int_equal(exchange_type(def), EX_DIRECT);
    assert_int_equal(exchange_flags(def), EXF_DURABLE);
    assert_true(exchange_is_builtin(def));
    assert_int_equal(route_mask(r, def, "q5", NONE, &out), 1u << 5);
    assert_int_equal(route_mask(r, def, "nope", NONE, &out), 0);
    assert_int_equal(route_mask(r, def, "", NONE, &out), 0);
    exchange_t *d = declare(r, "d", EX_DIRECT, 0);
    assert_int_equal(xregistry_bind(r, def, dq(1), B("q1"), NONE), HE_DENIED);
    assert_int_equal(xregistry_bind(r, d, dx(def), B("k"), NONE), HE_DENIED);
    assert_int_equal(xregistry_unbind(r, def, dq(1), B("q1"), NONE), HE_DENIED);
    assert_int_equal(xregistry_delete(r, def, 0), HE_DENIED);
    exchange_t *ex = NULL;
    assert_int_equal(xregistry_declare(r, B(""), EX_DIRECT, EXF_DURABLE, NONE, &ex), 1);
    assert_ptr_equal(ex, def);
    assert_int_equal(xregistry_declare(r, B(""), EX_FANOUT, EXF_DURABLE, NONE, &ex), HE_DENIED);
    assert_int_equal(xregistry_declare(r, B(""), EX_DIRECT, 0, NONE, &ex), HE_DENIED);
    /* No queue lookup callback: routes nowhere. */
    xregistry_t *bare = xregistry_new(NULL);
    assert_int_equal(route_mask(bare, xregistry_find(bare, B("")), "q1", NONE, &out), 0);
    xregistry_free(bare);
    xroute_destroy(&out);
    xregistry_free(r);
}

/* ---- headers ---- */

/* A table under construction; content() is its bytes after the length. */
typedef struct {
    wbuf_t w;
    size_t mark;
} tbl_t;

static void tbl_begin(tbl_t *t)
{
    wbuf_init(&t->w);
    t->mark = ftable_begin(&t->w);
}

static amqp_bytes_t tbl_end(tbl_t *t)
{
    ftable_end(&t->w, t->mark);
    return (amqp_bytes_t){t->w.p + 4, (uint32_t)(t->w.len - 4)};
}

static void put_str(tbl_t *t, const char *name, const char *v)
{
    ftable_put_name(&t->w, name);
    ftable_put_longstr(&t->w, v, strlen(v));
}

static void put_int(tbl_t *t, const char *name, int32_t v)
{
    ftable_put_name(&t->w, name);
    ftable_put_i32(&t->w, v);
}

static void put_i64(tbl_t *t, const char *name, int64_t v)
{
    ftable_put_name(&t->w, name);
    ftable_put_i64(&t->w, v);
}

static void put_void(tbl_t *t, const char *name)
{
    ftable_put_name(&t->w, name);
    ftable_put_raw(&t->w, "V", 1);
}

static void test_headers(void **state)
{
    (void)state;
    owner_t o;
    xroute_t out = {0};
    xregistry_t *r = new_registry(&o);
    exchange_t *h = xregistry_find(r, B("amq.match"));
    assert_int_equal(exchange_type(h), EX_HEADERS);
    tbl_t b[8], m[10];

    tbl_begin(&b[0]); /* q0: all (explicit) a=1, b="x" */
    put_str(&b[0], "x-match", "all"), put_int(&b[0], "a", 1), put_str(&b[0], "b", "x");
    tbl_begin(&b[1]); /* q1: any a=1, b="x" */
    put_str(&b[1], "x-match", "any"), put_int(&b[1], "a", 1), put_str(&b[1], "b", "x");
    tbl_begin(&b[2]); /* q2: all (default) x-foo="y" (ignored: matches everything) */
    put_str(&b[2], "x-foo", "y");
    tbl_begin(&b[3]); /* q3: all-with-x x-foo="y" */
    put_str(&b[3], "x-match", "all-with-x"), put_str(&b[3], "x-foo", "y");
    tbl_begin(&b[4]); /* q4: any-with-x x-foo="y", c=2 */
    put_str(&b[4], "x-match", "any-with-x"), put_str(&b[4], "x-foo", "y"), put_int(&b[4], "c", 2);
    tbl_begin(&b[5]); /* q5: all, c void (presence) */
    put_void(&b[5], "c");
    tbl_begin(&b[6]); /* q6: any with only x- entries: never */
    put_str(&b[6], "x-match", "any"), put_str(&b[6], "x-foo", "y");
    amqp_bytes_t bt[7];
    for (int i = 0; i < 7; i++) {
        bt[i] = tbl_end(&b[i]);
        assert_int_equal(xregistry_bind(r, h, dq(i), B("ignored"), bt[i]), 0);
    }

    tbl_begin(&m[0]); /* a=1 (as int64: widths compare by value), b="x" */
    put_i64(&m[0], "a", 1), put_str(&m[0], "b", "x");
    tbl_begin(&m[1]); /* b="x" */
    put_str(&m[1], "b", "x");
    tbl_begin(&m[2]); /* a=2 b="y" */
    put_int(&m[2], "a", 2), put_str(&m[2], "b", "y");
    tbl_begin(&m[3]); /* x-foo="y" */
    put_str(&m[3], "x-foo", "y");
    tbl_begin(&m[4]); /* c="anything" */
    put_str(&m[4], "c", "anything");
    tbl_begin(&m[5]); /* a="1" (string vs int: no) b="x" */
    put_str(&m[5], "a", "1"), put_str(&m[5], "b", "x");
    tbl_begin(&m[6]); /* c=2 */
    put_int(&m[6], "c", 2);
    amqp_bytes_t mt[7];
    for (int i = 0; i < 7; i++) mt[i] = tbl_end(&m[i]);

    static const uint64_t want[] = {
        /* m0 */ 0x01 | 0x02 | 0x04,
        /* m1 */ 0x02 | 0x04,
        /* m2 */ 0x04,
        /* m3 */ 0x04 | 0x08 | 0x10,
        /* m4 */ 0x04 | 0x20,
        /* m5 */ 0x02 | 0x04,
        /* m6 */ 0x04 | 0x10 | 0x20,
    };
    for (int i = 0; i < 7; i++) {
        uint64_t got = route_mask(r, h, "", mt[i], &out);
        if (got != want[i]) fail_msg("message %d: got %llx want %llx", i, (unsigned long long)got,
                                     (unsigned long long)want[i]);
    }
    assert_int_equal(route_mask(r, h, "", NONE, &out), 0x04); /* no headers */

    /* A bad x-match, a malformed table: refused, nothing bound. */
    tbl_t bad;
    tbl_begin(&bad);
    put_str(&bad, "x-match", "some");
    amqp_bytes_t badt = tbl_end(&bad);
    assert_int_equal(xregistry_bind(r, h, dq(9), B(""), badt), HE_INVALID);
    tbl_t bad2;
    tbl_begin(&bad2);
    put_int(&bad2, "x-match", 1);
    assert_int_equal(xregistry_bind(r, h, dq(9), B(""), tbl_end(&bad2)), HE_INVALID);
    static const uint8_t garbage[] = {3, 'a', 'b'};
    assert_int_equal(xregistry_bind(r, h, dq(9), B(""), (amqp_bytes_t){garbage, sizeof garbage}), HE_INVALID);
    assert_int_equal(route_mask(r, h, "", mt[3], &out), 0x1c);
    /* Identity includes the arguments. */
    assert_int_equal(xregistry_bind(r, h, dq(0), B("ignored"), bt[0]), 1);
    assert_int_equal(xregistry_unbind(r, h, dq(0), B("ignored"), bt[1]), HE_NOT_FOUND);
    assert_int_equal(xregistry_unbind(r, h, dq(0), B("ignored"), bt[0]), 0);
    assert_int_equal(route_mask(r, h, "", mt[0], &out), 0x06);

    wbuf_destroy(&bad.w);
    wbuf_destroy(&bad2.w);
    for (int i = 0; i < 7; i++) wbuf_destroy(&b[i].w), wbuf_destroy(&m[i].w);
    xroute_destroy(&out);
    xregistry_free(r);
}

/* ---- exchange-to-exchange ---- */

static void test_e2e(void **state)
{
    (void)state;
    owner_t o;
    xroute_t out = {0};
    xregistry_t *r = new_registry(&o);
    exchange_t *t = declare(r, "t", EX_TOPIC, 0);
    exchange_t *f = declare(r, "f", EX_FANOUT, 0);
    exchange_t *in = declare(r, "in", EX_DIRECT, EXF_INTERNAL);
    assert_int_equal(xregistry_bind(r, t, dx(f), B("a.*"), NONE), 0);
    assert_int_equal(xregistry_bind(r, f, dq(1), B(""), NONE), 0);
    assert_int_equal(xregistry_bind(r, f, dq(2), B(""), NONE), 0);
    assert_int_equal(xregistry_bind(r, t, dq(1), B("a.b"), NONE), 0); /* q1 reached twice */
    assert_int_equal(route_mask(r, t, "a.b", NONE, &out), 0x6);
    assert_int_equal(out.n, 2);
    assert_int_equal(route_mask(r, t, "a.c", NONE, &out), 0x6);
    assert_int_equal(route_mask(r, t, "b", NONE, &out), 0);
    /* The destination keeps using the message's routing key. */
    assert_int_equal(xregistry_bind(r, f, dx(in), B(""), NONE), 0);
    assert_int_equal(xregistry_bind(r, in, dq(3), B("a.c"), NONE), 0);
    assert_int_equal(route_mask(r, t, "a.c", NONE, &out), 0xe);
    assert_int_equal(route_mask(r, t, "a.b", NONE, &out), 0x6);
    /* A cycle t -> f -> in -> t, and a self-binding: each visited once. */
    assert_int_equal(xregistry_bind(r, in, dx(t), B("a.c"), NONE), 0);
    assert_int_equal(xregistry_bind(r, f, dx(f), B(""), NONE), 0);
    assert_int_equal(route_mask(r, t, "a.c", NONE, &out), 0xe);
    assert_int_equal(route_mask(r, f, "a.c", NONE, &out), 0xe);
    assert_int_equal(route_mask(r, in, "a.c", NONE, &out), 0xe);
    /* Deleting f drops its bindings both ways. */
    assert_int_equal(xregistry_delete(r, f, 0), 0);
    assert_null(xregistry_find(r, B("f")));
    assert_int_equal(route_mask(r, t, "a.c", NONE, &out), 0);
    assert_int_equal(route_mask(r, t, "a.b", NONE, &out), 0x2);
    assert_non_null(exchange_bindings(t));
    assert_null(xbinding_next(exchange_bindings(t)));
    assert_int_equal(route_mask(r, in, "a.c", NONE, &out), 0x8);

    /* Headers reach a headers exchange behind a fanout one. */
    exchange_t *hf = declare(r, "hf", EX_FANOUT, 0);
    exchange_t *hh = xregistry_find(r, B("amq.headers"));
    tbl_t bt, mt;
    tbl_begin(&bt);
    put_str(&bt, "k", "v");
    tbl_begin(&mt);
    put_str(&mt, "k", "v");
    assert_int_equal(xregistry_bind(r, hf, dx(hh), B(""), NONE), 0);
    assert_int_equal(xregistry_bind(r, hh, dq(4), B(""), tbl_end(&bt)), 0);
    assert_int_equal(route_mask(r, hf, "", tbl_end(&mt), &out), 0x10);
    assert_int_equal(route_mask(r, hf, "", NONE, &out), 0);
    /* An unbound exchange binding is gone from the destination too. */
    assert_int_equal(xregistry_unbind(r, hf, dx(hh), B(""), NONE), 0);
    assert_int_equal(xregistry_bind(r, hf, dx(in), B(""), NONE), 0);
    assert_int_equal(xregistry_unbind(r, hf, dx(in), B(""), NONE), 0);
    assert_int_equal(xregistry_delete(r, in, 0), 0);
    assert_null(exchange_bindings(hf));
    assert_int_equal(route_mask(r, t, "a.c", NONE, &out), 0);
    wbuf_destroy(&bt.w);
    wbuf_destroy(&mt.w);
    xroute_destroy(&out);
    xregistry_free(r);
}

/* ---- bind / unbind identity ---- */

static void test_bind_identity(void **state)
{
    (void)state;
    owner_t o;
    xregistry_t *r = new_registry(&o);
    exchange_t *d = declare(r, "d", EX_DIRECT, 0);
    exchange_t *e = declare(r, "e", EX_FANOUT, 0);
    static const uint8_t args1[] = {1, 'k', 'S', 0, 0, 0, 1, 'v'};
    amqp_bytes_t a1 = {args1, sizeof args1};
    assert_int_equal(xregistry_bind(r, d, dq(0), B("k1"), NONE), 0);
    assert_int_equal(xregistry_bind(r, d, dq(0), B("k1"), NONE), 1);
    assert_int_equal(xregistry_bind(r, d, dq(0), B("k1"), a1), 0);
    assert_int_equal(xregistry_bind(r, d, dq(0), B("k1"), a1), 1);
    assert_int_equal(xregistry_bind(r, d, dq(1), B("k1"), NONE), 0);
    assert_int_equal(xregistry_bind(r, d, dx(e), B("k1"), NONE), 0);
    assert_int_equal(xregistry_bind(r, d, dx(e), B("k1"), NONE), 1);
    assert_int_equal(xregistry_bind(r, d, dq(0), B("k2"), NONE), 0);
    char longkey[257];
    memset(longkey, 'k', 256);
    longkey[256] = '\0';
    assert_int_equal(xregistry_bind(r, d, dq(0), B(longkey), NONE), HE_INVALID);
    longkey[255] = '\0';
    assert_int_equal(xregistry_bind(r, d, dq(0), B(longkey), NONE), 0);
    assert_int_equal(xregistry_bind(r, d, (xdest_t){XDEST_QUEUE, NULL}, B("k"), NONE), HE_INVALID);

    /* Binding order and accessors. */
    static const struct {
        int q;
        const char *key;
        int args;
    } order[] = {{0, "k1", 0}, {0, "k1", 1}, {1, "k1", 0}, {-1, "k1", 0}, {0, "k2", 0}};
    xbinding_t *b = exchange_bindings(d);
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++, b = xbinding_next(b)) {
        assert_non_null(b);
        xdest_t dest = xbinding_dest(b);
        if (order[i].q < 0) {
            assert_int_equal(dest.kind, XDEST_EXCHANGE);
            assert_ptr_equal(dest.ptr, e);
        } else {
            assert_int_equal(dest.kind, XDEST_QUEUE);
            assert_ptr_equal(dest.ptr, Q(order[i].q));
        }
        assert_true(amqp_bytes_eq(xbinding_key(b), order[i].key));
        assert_int_equal(xbinding_args(b).len, order[i].args ? sizeof args1 : 0);
        if (order[i].args) assert_memory_equal(xbinding_args(b).p, args1, sizeof args1);
    }
    assert_non_null(b); /* the 255-byte key */
    assert_int_equal(xbinding_key(b).len, 255);
    assert_null(xbinding_next(b));

    assert_int_equal(xregistry_unbind(r, d, dq(0), B("k3"), NONE), HE_NOT_FOUND);
    assert_int_equal(xregistry_unbind(r, d, dq(2), B("k1"), NONE), HE_NOT_FOUND);
    assert_int_equal(xregistry_unbind(r, d, dx(e), B("k1"), a1), HE_NOT_FOUND);
    assert_int_equal(xregistry_unbind(r, d, dq(0), B("k1"), a1), 0);
    assert_int_equal(xregistry_unbind(r, d, dq(0), B("k1"), a1), HE_NOT_FOUND);
    assert_int_equal(xregistry_unbind(r, d, dx(e), B("k1"), NONE), 0);
    /* The queue's other bindings are all dropped at once. */
    xregistry_unbind_queue(r, Q(0));
    xregistry_unbind_queue(r, Q(0));
    xregistry_unbind_queue(r, Q(42)); /* never bound */
    b = exchange_bindings(d);
    assert_non_null(b);
    assert_ptr_equal(xbinding_dest(b).ptr, Q(1));
    assert_null(xbinding_next(b));
    assert_int_equal(o.deleted, 0); /* not auto-delete */
    xregistry_free(r);
}

/* ---- auto-delete ---- */

static void test_auto_delete(void **state)
{
    (void)state;
    owner_t o;
    xregistry_t *r = new_registry(&o);
    unsigned ad = EXF_AUTO_DELETE;

    /* Declared without bindings: stays. */
    exchange_t *lonely = declare(r, "lonely", EX_FANOUT, ad);
    exchange_t *x = declare(r, "x", EX_TOPIC, ad);
    assert_int_equal(xregistry_bind(r, x, dq(0), B("a"), NONE), 0);
    assert_int_equal(xregistry_bind(r, x, dq(1), B("b"), NONE), 0);
    assert_int_equal(xregistry_unbind(r, x, dq(0), B("a"), NONE), 0);
    assert_int_equal(o.deleted, 0);
    /* Path 1: unbind of the last binding. */
    assert_int_equal(xregistry_unbind(r, x, dq(1), B("b"), NONE), 0);
    assert_int_equal(o.deleted, 1);
    assert_string_equal(o.names[0], "x");
    assert_null(xregistry_find(r, B("x")));
    assert_ptr_equal(xregistry_find(r, B("lonely")), lonely);

    /* Path 2: the queue goes away. */
    x = declare(r, "x2", EX_DIRECT, ad);
    assert_int_equal(xregistry_bind(r, x, dq(0), B("a"), NONE), 0);
    assert_int_equal(xregistry_bind(r, x, dq(1), B("a"), NONE), 0);
    assert_int_equal(xregistry_bind(r, x, dq(0), B("b"), NONE), 0);
    xregistry_unbind_queue(r, Q(0));
    assert_int_equal(o.deleted, 1);
    xregistry_unbind_queue(r, Q(1));
    assert_int_equal(o.deleted, 2);
    assert_string_equal(o.names[1], "x2");
    assert_null(xregistry_find(r, B("x2")));

    /* Path 3: the destination exchange is deleted. */
    x = declare(r, "x3", EX_FANOUT, ad);
    exchange_t *dst = declare(r, "dst", EX_FANOUT, 0);
    assert_int_equal(xregistry_bind(r, x, dx(dst), B(""), NONE), 0);
    assert_int_equal(xregistry_delete(r, dst, 0), 0);
    assert_int_equal(o.deleted, 3);
    assert_string_equal(o.names[2], "x3");
    assert_null(xregistry_find(r, B("x3")));

    /* A cascade: a -> b -> q5; the queue goes, b goes, then a goes. An
     * auto-delete exchange bound to itself and to a queue: deleted once. */
    exchange_t *a = declare(r, "a", EX_FANOUT, ad);
    exchange_t *bx = declare(r, "b", EX_FANOUT, ad);
    assert_int_equal(xregistry_bind(r, a, dx(bx), B(""), NONE), 0);
    assert_int_equal(xregistry_bind(r, bx, dq(5), B(""), NONE), 0);
    xregistry_unbind_queue(r, Q(5));
    assert_int_equal(o.deleted, 5);
    assert_string_equal(o.names[3], "b");
    assert_string_equal(o.names[4], "a");
    assert_null(xregistry_find(r, B("a")));
    assert_null(xregistry_find(r, B("b")));
    exchange_t *self = declare(r, "self", EX_FANOUT, ad);
    assert_int_equal(xregistry_bind(r, self, dx(self), B(""), NONE), 0);
    assert_int_equal(xregistry_bind(r, self, dq(6), B(""), NONE), 0);
    xregistry_unbind_queue(r, Q(6));
    assert_int_equal(o.deleted, 5);
    assert_int_equal(xregistry_unbind(r, self, dx(self), B(""), NONE), 0);
    assert_int_equal(o.deleted, 6);

    /* An explicit delete of an auto-delete exchange: no callback. */
    x = declare(r, "x4", EX_FANOUT, ad);
    assert_int_equal(xregistry_bind(r, x, dq(0), B(""), NONE), 0);
    assert_int_equal(xregistry_delete(r, x, 0), 0);
    assert_int_equal(o.deleted, 6);
    /* Built-ins never auto-delete (they are not auto-delete anyway). */
    exchange_t *amqd = xregistry_find(r, B("amq.direct"));
    assert_int_equal(xregistry_bind(r, amqd, dq(0), B(""), NONE), 0);
    xregistry_unbind_queue(r, Q(0));
    assert_ptr_equal(xregistry_find(r, B("amq.direct")), amqd);
    assert_int_equal(o.deleted, 6);
    xregistry_free(r);
}

/* ---- declare, delete, built-ins, iteration ---- */

static void test_declare_delete(void **state)
{
    (void)state;
    owner_t o;
    xregistry_t *r = new_registry(&o);
    static const uint8_t args[] = {1, 'k', 't', 1};
    exchange_t *ex = NULL, *again = NULL;
    assert_int_equal(xregistry_declare(r, B("e"), EX_TOPIC, EXF_DURABLE, (amqp_bytes_t){args, sizeof args}, &ex), 0);
    assert_non_null(ex);
    assert_string_equal(exchange_name_cstr(ex), "e");
    assert_true(amqp_bytes_eq(exchange_name(ex), "e"));
    assert_int_equal(exchange_type(ex), EX_TOPIC);
    assert_int_equal(exchange_flags(ex), EXF_DURABLE);
    assert_false(exchange_is_builtin(ex));
    assert_int_equal(exchange_args(ex).len, sizeof args);
    assert_memory_equal(exchange_args(ex).p, args, sizeof args);
    /* Same type and flags: 1, args not compared. */
    assert_int_equal(xregistry_declare(r, B("e"), EX_TOPIC, EXF_DURABLE, NONE, &again), 1);
    assert_ptr_equal(again, ex);
    assert_int_equal(xregistry_declare(r, B("e"), EX_DIRECT, EXF_DURABLE, NONE, &again), HE_EXISTS);
    assert_int_equal(xregistry_declare(r, B("e"), EX_TOPIC, 0, NONE, &again), HE_EXISTS);
    assert_int_equal(xregistry_declare(r, B("e"), EX_TOPIC, EXF_DURABLE | EXF_AUTO_DELETE, NONE, &again),
                     HE_EXISTS);
    assert_int_equal(xregistry_declare(r, B("e"), EX_TOPIC, EXF_DURABLE | EXF_INTERNAL, NONE, &again), HE_EXISTS);
    char name[257];
    memset(name, 'n', 256);
    name[256] = '\0';
    assert_int_equal(xregistry_declare(r, B(name), EX_FANOUT, 0, NONE, &again), HE_INVALID);
    name[255] = '\0';
    assert_int_equal(xregistry_declare(r, B(name), EX_FANOUT, 0, NONE, &again), 0);
    assert_int_equal(xregistry_declare(r, B("amq.direct"), EX_DIRECT, EXF_DURABLE, NONE, &again), 1);
    assert_int_equal(xregistry_declare(r, B("amq.direct"), EX_DIRECT, 0, NONE, &again), HE_EXISTS);
    assert_int_equal(xregistry_declare(r, B("amq.direct"), EX_FANOUT, EXF_DURABLE, NONE, &again), HE_EXISTS);

    /* if_unused. */
    assert_int_equal(xregistry_bind(r, ex, dq(0), B("#"), NONE), 0);
    assert_int_equal(xregistry_delete(r, ex, 1), HE_BUSY);
    assert_ptr_equal(xregistry_find(r, B("e")), ex);
    assert_int_equal(xregistry_unbind(r, ex, dq(0), B("#"), NONE), 0);
    assert_int_equal(xregistry_delete(r, ex, 1), 0);
    assert_null(xregistry_find(r, B("e")));
    exchange_t *u = declare(r, "u", EX_FANOUT, 0);
    exchange_t *v = declare(r, "v", EX_FANOUT, 0);
    assert_int_equal(xregistry_bind(r, u, dx(v), B(""), NONE), 0);
    assert_int_equal(xregistry_delete(r, v, 1), 0); /* a destination only is unused */
    assert_null(exchange_bindings(u));
    assert_int_equal(xregistry_bind(r, u, dq(0), B(""), NONE), 0);
    assert_int_equal(xregistry_delete(r, u, 0), 0);
    xregistry_unbind_queue(r, Q(0)); /* nothing left to drop */

    /* Built-ins. */
    static const struct {
        const char *name;
        ex_type_t type;
    } builtins[] = {{"", EX_DIRECT},          {"amq.direct", EX_DIRECT}, {"amq.fanout", EX_FANOUT},
                    {"amq.topic", EX_TOPIC}, {"amq.headers", EX_HEADERS}, {"amq.match", EX_HEADERS}};
    exchange_t *it = xregistry_first(r);
    for (size_t i = 0; i < 6; i++, it = exchange_next(it)) {
        assert_non_null(it);
        assert_string_equal(exchange_name_cstr(it), builtins[i].name);
        assert_int_equal(exchange_type(it), builtins[i].type);
        assert_int_equal(exchange_flags(it), EXF_DURABLE);
        assert_true(exchange_is_builtin(it));
        assert_int_equal(xregistry_delete(r, it, 0), HE_DENIED);
        assert_int_equal(xregistry_delete(r, it, 1), HE_DENIED);
    }
    /* Then declaration order, deletions closing the gap. */
    assert_non_null(it);
    assert_int_equal(exchange_name(it).len, 255);
    exchange_t *e1 = declare(r, "e1", EX_DIRECT, 0);
    exchange_t *e2 = declare(r, "e2", EX_DIRECT, 0);
    exchange_t *e3 = declare(r, "e3", EX_DIRECT, 0);
    assert_ptr_equal(exchange_next(it), e1);
    assert_ptr_equal(exchange_next(e1), e2);
    assert_int_equal(xregistry_delete(r, e2, 0), 0);
    assert_ptr_equal(exchange_next(e1), e3);
    assert_null(exchange_next(e3));
    exchange_t *e4 = declare(r, "e2", EX_DIRECT, 0);
    assert_ptr_equal(exchange_next(e3), e4);
    xregistry_free(r);
    xregistry_free(NULL);
}

static void test_type_names(void **state)
{
    (void)state;
    static const char *const names[] = {"direct", "fanout", "topic", "headers"};
    for (int t = 0; t < 4; t++) {
        ex_type_t out = EX_DIRECT;
        assert_int_equal(ex_type_parse(B(names[t]), &out), 0);
        assert_int_equal(out, t);
        assert_string_equal(ex_type_name((ex_type_t)t), names[t]);
    }
    ex_type_t out;
    assert_int_equal(ex_type_parse(B("x-delayed-message"), &out), HE_NOT_FOUND);
    assert_int_equal(ex_type_parse(B("Direct"), &out), HE_NOT_FOUND);
    assert_int_equal(ex_type_parse(B(""), &out), HE_NOT_FOUND);
    assert_int_equal(ex_type_parse(B("directx"), &out), HE_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_table),    cmocka_unit_test(test_topic_vs_reference),
        cmocka_unit_test(test_topic_scale),    cmocka_unit_test(test_direct_fanout),
        cmocka_unit_test(test_default_exchange), cmocka_unit_test(test_headers),
        cmocka_unit_test(test_e2e),            cmocka_unit_test(test_bind_identity),
        cmocka_unit_test(test_auto_delete),    cmocka_unit_test(test_declare_delete),
        cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
