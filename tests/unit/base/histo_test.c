/* Unit tests for base/histo: bucket edges (a bound is inclusive, as
 * Prometheus' "le"), negative and huge durations, the bounds' text, and
 * the keyed map (sorted, capped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/histo.h"

static void test_bucket_edges(void **state)
{
    (void)state;
    static const struct { int64_t ns; int bucket; } vec[] = {
        {-5, 0},                 /* a clock step backwards counts as 0 */
        {0, 0},
        {100000, 0},             /* exactly 0.0001 s: le="0.0001" */
        {100001, 1},
        {250000, 1},
        {999999, 3},
        {1000000, 3},            /* 1 ms */
        {10000000000, 15},       /* 10 s: the last bound */
        {10000000001, 16},       /* above it: only +Inf */
        {INT64_MAX, 16},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        histo_t h;
        memset(&h, 0, sizeof h);
        histo_observe(&h, vec[i].ns);
        assert_int_equal(h.count, 1);
        for (int b = 0; b <= HISTO_NBOUNDS; b++) assert_int_equal(h.buckets[b], b == vec[i].bucket);
        assert_int_equal(h.sum_ns, vec[i].ns < 0 ? 0 : (uint64_t)vec[i].ns);
    }
}

static void test_bounds_ascending_and_text_matches(void **state)
{
    (void)state;
    for (int i = 0; i < HISTO_NBOUNDS; i++) {
        if (i) assert_true(histo_bounds_ns[i] > histo_bounds_ns[i - 1]);
        /* the text is what Prometheus parses as the bound, in seconds */
        double s = strtod(histo_bounds_text[i], NULL);
        int64_t ns = (int64_t)(s * 1e9 + 0.5);
        assert_int_equal(ns, histo_bounds_ns[i]);
    }
}

static void test_map_sorted_and_capped(void **state)
{
    (void)state;
    histo_map_t m;
    histo_map_init(&m);
    static const uint32_t keys[] = {60 << 16 | 40, 18, 0, 65535, 3, 18, 0};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) histo_map_observe(&m, keys[i], 1000);
    assert_int_equal(m.n, 5);
    for (size_t i = 1; i < m.n; i++) assert_true(m.e[i].key > m.e[i - 1].key);
    assert_int_equal(histo_map_get(&m, 18)->count, 2);
    assert_int_equal(histo_map_get(&m, 0)->count, 2);
    /* peers choose Kafka API keys: the map stops growing at its cap */
    for (uint32_t k = 100000; k < 100000 + 2 * HISTO_MAP_MAX; k++) histo_map_observe(&m, k, 1);
    assert_int_equal(m.n, HISTO_MAP_MAX);
    assert_null(histo_map_get(&m, 999999));
    histo_map_observe(&m, 999999, 1); /* dropped, no crash */
    assert_int_equal(histo_map_get(&m, 18)->count, 2); /* known keys still recorded */
    histo_map_observe(&m, 18, 5);
    assert_int_equal(histo_map_get(&m, 18)->count, 3);
    histo_map_destroy(&m);
    histo_map_destroy(&m); /* idempotent */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_edges),
        cmocka_unit_test(test_bounds_ascending_and_text_matches),
        cmocka_unit_test(test_map_sorted_and_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
