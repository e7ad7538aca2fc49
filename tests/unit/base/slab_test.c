/* Unit tests for base/slab: class sizes at their edges, objects that never
 * overlap and keep their bytes across other objects' reuse, a freed object
 * handed out next, chunks that fill and get room again, empty chunks kept
 * as spares up to SLAB_SPARES and given back by slab_release, malloc when a
 * chunk cannot be mapped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/slab.h"

static void release_all(void)
{
    slab_release();
    slab_stats_t st;
    slab_stats(&st);
    assert_int_equal(st.live, 0);
    assert_int_equal(st.chunks, 0);
}

static void test_classes_at_their_edges(void **state)
{
    (void)state;
    static const struct { size_t size; uint8_t cls; } vec[] = {
        {1, 1}, {31, 1}, {32, 1}, {33, 2}, {96, 3}, {97, 4}, {1000, 32}, {1024, 32},
    };
    void *p[sizeof vec / sizeof vec[0]];
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        uint8_t cls = 0;
        p[i] = slab_alloc(vec[i].size, &cls);
        assert_non_null(p[i]);
        assert_int_equal(cls, vec[i].cls);
        assert_int_equal((uintptr_t)p[i] % 32, 0); /* aligned for any field */
        memset(p[i], 0xa5, (size_t)cls * SLAB_UNIT); /* the whole class size is usable */
    }
    slab_stats_t st;
    slab_stats(&st);
    assert_int_equal(st.live, sizeof vec / sizeof vec[0]);
    assert_int_equal(st.chunks, 5); /* classes 1, 2, 3, 4 and 32: one chunk each */
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) slab_free(p[i]);
    slab_stats(&st);
    assert_int_equal(st.live, 0);
    assert_int_equal(st.spares, SLAB_SPARES); /* the rest were unmapped when they emptied */
    assert_int_equal(st.chunks, SLAB_SPARES);
    release_all();
}

static void test_freed_object_is_handed_out_next(void **state)
{
    (void)state;
    uint8_t cls;
    void *a = slab_alloc(200, &cls), *b = slab_alloc(200, &cls), *c = slab_alloc(200, &cls);
    slab_free(b);
    void *d = slab_alloc(200, &cls);
    assert_ptr_equal(d, b); /* the one most likely still in cache */
    void *e = slab_alloc(200, &cls);
    assert_true(e != a && e != c && e != d);
    slab_free(a);
    slab_free(c);
    slab_free(d);
    slab_free(e);
    release_all();
}

/* Three chunks' worth of objects, each stamped with its index: none
 * overlaps another, freeing every other one and filling the holes again
 * keeps the others' bytes, and the chunks come back when all are freed. */
static void test_many_objects_over_chunks(void **state)
{
    (void)state;
    const size_t size = 256, per_chunk = (SLAB_CHUNK - 64) / size, n = 3 * per_chunk;
    uint8_t **v = calloc(n, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        uint8_t cls;
        v[i] = slab_alloc(size, &cls);
        assert_int_equal(cls, size / SLAB_UNIT);
        memset(v[i], (int)(i & 0xff), size);
    }
    slab_stats_t st;
    slab_stats(&st);
    assert_int_equal(st.chunks, 3); /* exactly full: no fourth */
    assert_int_equal(st.live, n);
    for (size_t i = 0; i < n; i += 2) slab_free(v[i]);
    for (size_t i = 0; i < n; i += 2) {
        uint8_t cls;
        v[i] = slab_alloc(size, &cls);
        memset(v[i], (int)(i & 0xff), size);
    }
    slab_stats(&st);
    assert_int_equal(st.chunks, 3); /* the holes were filled, nothing new mapped */
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < size; k++)
            if (v[i][k] != (uint8_t)(i & 0xff)) fail_msg("object %zu byte %zu overwritten", i, k);
        slab_free(v[i]);
    }
    slab_stats(&st);
    assert_int_equal(st.live, 0);
    assert_int_equal(st.chunks, 2); /* two spares; the third was given back */
    free(v);
    release_all();
}

/* A spare chunk serves any class next. */
static void test_spare_serves_another_class(void **state)
{
    (void)state;
    uint8_t cls;
    void *a = slab_alloc(64, &cls);
    slab_free(a);
    slab_stats_t st;
    slab_stats(&st);
    assert_int_equal(st.spares, 1);
    void *b = slab_alloc(512, &cls);
    assert_int_equal(cls, 16);
    slab_stats(&st);
    assert_int_equal(st.spares, 0);
    assert_int_equal(st.chunks, 1);
    slab_free(b);
    release_all();
}

/* A chunk that cannot be mapped: the object comes from malloc (class 0,
 * freed with free), and the next allocation maps a chunk again. */
static void test_unmappable_chunk_falls_back_to_malloc(void **state)
{
    (void)state;
    uint8_t cls = 9;
    slab_fail_maps(1);
    uint8_t *p = slab_alloc(100, &cls);
    assert_non_null(p);
    assert_int_equal(cls, 0);
    memset(p, 0x5a, 100);
    slab_stats_t st;
    slab_stats(&st);
    assert_int_equal(st.chunks, 0);
    assert_int_equal(st.live, 0);
    void *q = slab_alloc(100, &cls);
    assert_int_equal(cls, 4);
    slab_stats(&st);
    assert_int_equal(st.chunks, 1);
    assert_int_equal(st.live, 1);
    free(p);
    slab_free(q);
    release_all();
}

/* An object over SLAB_MAX_SIZE comes from malloc (class 0) instead of
 * indexing past the classes. */
static void test_oversized_object_comes_from_malloc(void **state)
{
    (void)state;
    uint8_t cls = 9;
    uint8_t *p = slab_alloc(SLAB_MAX_SIZE + 1, &cls);
    assert_int_equal(cls, 0);
    memset(p, 0x5a, SLAB_MAX_SIZE + 1);
    free(p);
    release_all();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes_at_their_edges),
        cmocka_unit_test(test_freed_object_is_handed_out_next),
        cmocka_unit_test(test_many_objects_over_chunks),
        cmocka_unit_test(test_spare_serves_another_class),
        cmocka_unit_test(test_unmappable_chunk_falls_back_to_malloc),
        cmocka_unit_test(test_oversized_object_comes_from_malloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
