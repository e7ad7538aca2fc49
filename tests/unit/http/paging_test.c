/* Paging of list answers (http/paging.c): the name filter (case-insensitive
 * substring), bytewise sort, the page slice at the edges, pages past the
 * end, an empty list, and the envelope's counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/paging.h"

static size_t fill(paging_item_t *v, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) v[i] = (paging_item_t){names[i], (void *)names[i]};
    return n;
}

static void test_filter_sort_slice(void **state)
{
    (void)state;
    static const char *const names[] = {"jobs-b", "zeta", "JOBS-a", "jobs-c", "other", "ajobs"};
    paging_item_t v[6];
    size_t n = fill(v, names, 6), kept, first, count;
    paging_t p = {1, 1, 2, "jobs"};
    assert_int_equal(paging_select(&p, v, n, &kept, &first, &count), 0);
    assert_int_equal(kept, 4); /* JOBS-a, ajobs, jobs-b, jobs-c */
    assert_string_equal(v[0].name, "JOBS-a");
    assert_string_equal(v[1].name, "ajobs");
    assert_string_equal(v[2].name, "jobs-b");
    assert_string_equal(v[3].name, "jobs-c");
    assert_int_equal(first, 0);
    assert_int_equal(count, 2);
    p.page = 2;
    n = fill(v, names, 6);
    assert_int_equal(paging_select(&p, v, n, &kept, &first, &count), 0);
    assert_int_equal(first, 2);
    assert_int_equal(count, 2);
    p.page = 3; /* past the last page */
    n = fill(v, names, 6);
    assert_int_equal(paging_select(&p, v, n, &kept, &first, &count), -1);
}

static void test_no_filter_short_last_page(void **state)
{
    (void)state;
    static const char *const names[] = {"c", "a", "b"};
    paging_item_t v[3];
    size_t n = fill(v, names, 3), kept, first, count;
    paging_t p = {1, 2, 2, NULL};
    assert_int_equal(paging_select(&p, v, n, &kept, &first, &count), 0);
    assert_int_equal(kept, 3);
    assert_int_equal(first, 2);
    assert_int_equal(count, 1);
    assert_string_equal(v[first].name, "c");
    json_t *env = paging_envelope(&p, 3, kept, json_pack("[s]", "c"));
    assert_int_equal(json_integer_value(json_object_get(env, "page_count")), 2);
    assert_int_equal(json_integer_value(json_object_get(env, "item_count")), 1);
    assert_int_equal(json_integer_value(json_object_get(env, "filtered_count")), 3);
    assert_int_equal(json_integer_value(json_object_get(env, "total_count")), 3);
    assert_int_equal(json_integer_value(json_object_get(env, "page_size")), 2);
    json_decref(env);
}

static void test_empty(void **state)
{
    (void)state;
    paging_item_t v[1];
    size_t kept, first, count;
    paging_t p = {1, 1, 100, "x"};
    assert_int_equal(paging_select(&p, v, 0, &kept, &first, &count), 0); /* page 1 of nothing */
    assert_int_equal(kept, 0);
    assert_int_equal(count, 0);
    p.page = 2;
    assert_int_equal(paging_select(&p, v, 0, &kept, &first, &count), -1);
    static const char *const names[] = {"abc"};
    size_t n = fill(v, names, 1);
    p = (paging_t){1, 1, 100, "zz"}; /* nothing matches */
    assert_int_equal(paging_select(&p, v, n, &kept, &first, &count), 0);
    assert_int_equal(kept, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_sort_slice),
        cmocka_unit_test(test_no_filter_short_last_page),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
