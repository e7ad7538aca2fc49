/* The delay wheel and the entry heaps (queue_time.c), against a plain
 * sorted reference: every entry comes out once, in due order, FIFO
 * within a millisecond, whatever the mix of pushes, removals, late and
 * far entries and jumps of the clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/queue.h"
#include "broker/queue_int.h"

#define N 20000

static qmsg_t g_msg; /* shared: queue_entry_mem reads lengths only */
static qentry_t g_e[N];
static uint8_t g_late[N]; /* pushed when already due */

static qentry_t *entry(uint32_t i, int64_t at)
{
    qentry_t *e = &g_e[i];
    memset(e, 0, sizeof *e);
    e->m = &g_msg;
    e->seq = i;
    e->ready_at_ms = at;
    return e;
}

static uint64_t g_rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static void count_one(void *ctx, const qentry_t *e)
{
    (void)e;
    (*(uint32_t *)ctx)++;
}

/* Pops everything due at now, checking order: due times never go back
 * and, within one due time, pushes come out in order (seq ascends). */
static uint32_t pop_checked(qwheel_t *w, int64_t now, uint8_t *out, int64_t *last_at, uint64_t *last_seq)
{
    qentry_t *got[64];
    size_t k;
    uint32_t n = 0;
    while ((k = qwheel_pop_due(w, now, got, 64))) {
        for (size_t i = 0; i < k; i++) {
            qentry_t *e = got[i];
            w->bytes -= queue_entry_mem(e);
            assert_true(e->ready_at_ms <= now);
            uint32_t idx = (uint32_t)(e - g_e);
            if (!g_late[idx]) { /* (one pushed already due comes out with the next slot) */
                assert_true(e->ready_at_ms >= *last_at);
                if (e->ready_at_ms == *last_at) assert_true(e->seq > *last_seq);
                *last_at = e->ready_at_ms;
                *last_seq = e->seq;
            }
            assert_int_equal(out[idx], 0);
            out[idx] = 1;
            n++;
        }
    }
    return n;
}

/* spread: how far ahead (ms) the soon ones are due; a narrow one fills
 * slots past one block (QWBLOCK_N entries). */
static void wheel_vs_reference(int64_t spread, uint32_t max_burst, uint32_t removals)
{
    static uint8_t out[N], removed[N];
    memset(out, 0, sizeof out);
    memset(removed, 0, sizeof removed);
    qwheel_t w = {0};
    int64_t now = 1000000, last_at = 0;
    uint64_t last_seq = 0;
    uint32_t pushed = 0, popped = 0, nremoved = 0;
    while (pushed < N) {
        /* a burst of pushes: soon, in the past, or far (past the window) */
        uint32_t burst = 1 + (uint32_t)(rnd() % max_burst);
        for (uint32_t b = 0; b < burst && pushed < N; b++) {
            uint64_t r = rnd() % 100;
            int64_t at = r < 70 ? now + (int64_t)(rnd() % (uint64_t)spread) : r < 80 ? now - (int64_t)(rnd() % 50)
                         : now + QWHEEL_SLOTS + (int64_t)(rnd() % 20000);
            g_late[pushed] = at <= now;
            qwheel_push(&w, entry(pushed++, at), now);
        }
        /* a few removals from anywhere that is still waiting */
        for (uint32_t r = 0; r < removals; r++) {
            uint32_t i = (uint32_t)(rnd() % pushed);
            if (out[i] || removed[i]) continue;
            qwheel_remove(&w, &g_e[i]);
            removed[i] = 1;
            nremoved++;
        }
        uint32_t counted = 0;
        qwheel_each(&w, count_one, &counted);
        assert_int_equal(counted, w.n);
        /* the clock moves on, now and then by more than the window */
        now += rnd() % 10 == 0 ? (int64_t)(rnd() % 9000) : (int64_t)(rnd() % 40);
        int64_t next = qwheel_next(&w);
        popped += pop_checked(&w, now, out, &last_at, &last_seq);
        if (next && next > now) assert_true(!w.n || qwheel_next(&w) == next);
        assert_true(!w.n || qwheel_next(&w) > now);
        for (uint32_t i = 0; i < pushed; i++) /* none left behind: all due ones came out */
            assert_true(out[i] || removed[i] || g_e[i].ready_at_ms > now);
    }
    /* the rest, as the due timer would: at each next due time */
    int64_t t;
    while ((t = qwheel_next(&w))) {
        if (t > now) now = t;
        uint32_t k = pop_checked(&w, now, out, &last_at, &last_seq);
        assert_true(k > 0);
        popped += k;
    }
    assert_int_equal(w.n, 0);
    assert_int_equal(w.bytes, 0);
    assert_int_equal(popped + nremoved, N);
    for (uint32_t i = 0; i < N; i++) assert_int_equal(out[i] + removed[i], 1);
    qwheel_free(&w);
}

static void test_wheel_matches_the_reference(void **state)
{
    (void)state;
    wheel_vs_reference(2000, 300, 3);
}

/* Hundreds due in the same milliseconds: slots of several blocks, popped
 * across block ends and removed from anywhere in them. */
static void test_crowded_wheel_matches_the_reference(void **state)
{
    (void)state;
    wheel_vs_reference(4, 1000, 40);
    qwheel_pool_release();
}

static void test_take_any_empties_the_wheel(void **state)
{
    (void)state;
    qwheel_t w = {0};
    for (uint32_t i = 0; i < 1000; i++) qwheel_push(&w, entry(i, 5000 + (int64_t)(i * 37 % 10000)), 4000);
    uint32_t n = 0;
    while (qwheel_take_any(&w)) n++;
    assert_int_equal(n, 1000);
    assert_int_equal(w.n, 0);
    assert_int_equal(w.bytes, 0);
    assert_int_equal(qwheel_next(&w), 0);
    assert_null(w.slot); /* an empty wheel gives its slots back */
    qwheel_free(&w);
}

/* Pushes due later than the opened buckets wait in their 64 ms bucket,
 * not in the slots; reading the wheel at a time opens only the buckets up
 * to it, and each opened one hands its entries to the slots in order. */
static void test_pushes_wait_in_buckets_until_read(void **state)
{
    (void)state;
    qwheel_t w = {0};
    int64_t now = 640000; /* a bucket's start */
    for (uint32_t i = 0; i < 3000; i++) qwheel_push(&w, entry(i, now + 1 + (int64_t)(i * 7 % 2000)), now);
    assert_int_equal(w.nc, 3000);
    assert_int_equal(w.nw, 0);
    assert_int_equal(qwheel_next(&w), now + 1); /* opens the first bucket only */
    assert_int_equal(w.opened, now + QWHEEL_GRAIN);
    assert_int_equal(w.nw + w.nc, 3000);
    assert_true(w.nw > 0 && w.nw < 200);
    uint8_t out[N] = {0};
    int64_t last_at = 0;
    uint64_t last_seq = 0;
    memset(g_late, 0, sizeof g_late);
    uint32_t due = 0;
    for (uint32_t i = 0; i < 3000; i++) due += g_e[i].ready_at_ms <= now + 100;
    assert_int_equal(pop_checked(&w, now + 100, out, &last_at, &last_seq), due);
    assert_int_equal(w.opened, now + 2 * QWHEEL_GRAIN);
    /* a push due before the opened end goes into its slot at once */
    qwheel_push(&w, entry(3000, now + 101), now + 100);
    assert_int_equal(qwheel_next(&w), now + 101);
    uint32_t rest = 0;
    int64_t t;
    while ((t = qwheel_next(&w))) rest += pop_checked(&w, t, out, &last_at, &last_seq);
    assert_int_equal(rest, 3001 - due);
    assert_null(w.slot);
    qwheel_free(&w);
}

static void test_expiry_heap_removes_from_the_middle(void **state)
{
    (void)state;
    qheap_t h = {.expiry = 1};
    for (uint32_t i = 0; i < 1000; i++) {
        qentry_t *e = entry(i, 0);
        e->expires_ms = (int64_t)(rnd() % 5000) + 1;
        qheap_push(&h, e);
    }
    for (uint32_t i = 0; i < 1000; i += 3) qheap_remove(&h, &g_e[i]);
    int64_t last = 0;
    uint32_t n = 0;
    qentry_t *e;
    while ((e = qheap_top(&h))) {
        assert_true(e->expires_ms >= last);
        assert_true(e->seq % 3 != 0);
        last = e->expires_ms;
        qheap_remove(&h, e);
        n++;
    }
    assert_int_equal(n, 1000 - 334);
    assert_int_equal(h.bytes, 0);
    qheap_free(&h);
}

/* The expiry ring and heap against a scan of what is in: mostly pushes
 * in expiry order (a queue TTL), some before the last (per-message
 * expirations, requeues), removals from anywhere (deliveries: the ring
 * closes up over them) and expiries from the top. */
static void test_expiry_matches_the_reference(void **state)
{
    (void)state;
    static uint8_t in[N];
    memset(in, 0, sizeof in);
    qexpiry_t x = {0};
    int64_t now = 1000;
    uint32_t pushed = 0, nin = 0, ring_seen = 0, heap_seen = 0;
    while (pushed < N || nin) {
        for (uint32_t b = (uint32_t)(rnd() % 200); b > 0 && pushed < N; b--) {
            qentry_t *e = entry(pushed, 0);
            e->expires_ms = rnd() % 10 ? now + 500 : now + 500 - (int64_t)(rnd() % 400);
            qexpiry_push(&x, e);
            if (e->hidx & QEXP_RING) ring_seen++;
            else heap_seen++;
            in[pushed++] = 1;
            nin++;
        }
        /* deliveries: now and then most of what is in, from anywhere */
        uint32_t removals = rnd() % 8 == 0 ? nin * 3 / 4 : (uint32_t)(rnd() % 50);
        for (uint32_t r = 0; r < removals && nin; r++) {
            uint32_t i = (uint32_t)(rnd() % pushed);
            if (!in[i]) continue;
            qexpiry_remove(&x, &g_e[i]);
            assert_int_equal(g_e[i].hidx, 0);
            in[i] = 0;
            nin--;
        }
        now += (int64_t)(rnd() % 30);
        if (pushed == N) now += 100;
        /* expiries: the top is always the soonest of those in */
        qentry_t *e;
        while ((e = qexpiry_top(&x)) && e->expires_ms <= now) {
            uint32_t idx = (uint32_t)(e - g_e);
            assert_int_equal(in[idx], 1);
            for (uint32_t i = 0; i < pushed; i++) assert_true(!in[i] || g_e[i].expires_ms >= e->expires_ms);
            qexpiry_remove(&x, e);
            in[idx] = 0;
            nin--;
        }
        if (e) assert_int_equal(in[e - g_e], 1);
        else assert_int_equal(nin, 0);
        for (uint32_t k = 0; k < 16; k++) { /* the look-ahead sees only entries still in */
            const qentry_t *a = qexpiry_ahead(&x, k);
            if (a) assert_int_equal(in[a - g_e], 1);
        }
    }
    assert_true(ring_seen > N / 2);
    assert_true(heap_seen > N / 50);
    assert_null(qexpiry_top(&x));
    assert_int_equal(x.nring, 0);
    assert_int_equal(x.heap.n, 0);
    qexpiry_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wheel_matches_the_reference),
        cmocka_unit_test(test_crowded_wheel_matches_the_reference),
        cmocka_unit_test(test_take_any_empties_the_wheel),
        cmocka_unit_test(test_pushes_wait_in_buckets_until_read),
        cmocka_unit_test(test_expiry_heap_removes_from_the_middle),
        cmocka_unit_test(test_expiry_matches_the_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
