/* Unit tests for store/index: the validity rule applied by index_load
 * (table driven over damaged files), lookups, lazy flushing, truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/index.h"
#include "store_test.h"

typedef struct {
    const char *name;
    uint32_t ent[4][2]; /* offset index entries: rel, pos */
    int n;
    int extra_bytes;    /* a torn trailing entry */
    size_t kept;        /* entries index_load keeps */
    int complete;
} ocase_t;

static void write_entries(const char *path, const uint32_t (*ent)[2], int n, int extra)
{
    uint8_t b[64];
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        wbuf_put_be32(b + len, ent[i][0]);
        wbuf_put_be32(b + len + 4, ent[i][1]);
        len += 8;
    }
    memset(b + len, 0x11, (size_t)extra);
    len += (size_t)extra;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
}

static void test_load_validity(void **state)
{
    (void)state;
    /* max_rel 100, max_pos 5000 */
    static const ocase_t cases[] = {
        {"empty", {{0}}, 0, 0, 0, 1},
        {"good", {{10, 1000}, {20, 2000}, {30, 3000}}, 3, 0, 3, 1},
        {"torn tail", {{10, 1000}, {20, 2000}}, 2, 5, 2, 0},
        {"rel not increasing", {{10, 1000}, {10, 2000}, {30, 3000}}, 3, 0, 1, 0},
        {"pos not increasing", {{10, 1000}, {20, 900}}, 2, 0, 1, 0},
        {"pos past the log", {{10, 1000}, {20, 5000}}, 2, 0, 1, 0},
        {"rel past the segment", {{10, 1000}, {101, 2000}}, 2, 0, 1, 0},
        {"zeros", {{0, 0}, {0, 0}}, 2, 0, 1, 0},
    };
    char *dir = st_tmpdir();
    char op[4096], tp[4096];
    snprintf(op, sizeof op, "%s/x.index", dir);
    snprintf(tp, sizeof tp, "%s/x.timeindex", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ocase_t *c = &cases[i];
        write_entries(op, c->ent, c->n, c->extra_bytes);
        write_entries(tp, NULL, 0, 0); /* empty time index */
        index_t ix;
        index_init(&ix);
        assert_int_equal(index_open(&ix, op, tp), 0);
        int complete;
        assert_int_equal(index_load(&ix, 100, 5000, &complete), 0);
        if (ix.on != c->kept || complete != c->complete) print_error("case %s\n", c->name);
        assert_int_equal(ix.on, c->kept);
        assert_int_equal(complete, c->complete);
        index_destroy(&ix);
        unlink(op);
    }
    st_rmdir(dir);
}

static void test_lookup_flush_truncate(void **state)
{
    (void)state;
    char *dir = st_tmpdir();
    char op[4096], tp[4096];
    snprintf(op, sizeof op, "%s/x.index", dir);
    snprintf(tp, sizeof tp, "%s/x.timeindex", dir);
    index_t ix;
    index_init(&ix);
    assert_int_equal(index_open(&ix, op, tp), 0);
    assert_int_equal(index_lookup(&ix, 5), 0);
    assert_int_equal(index_lookup_time(&ix, 5), 0);
    for (uint32_t i = 1; i <= 200; i++) {
        index_add(&ix, i * 10, i * 1000);
        index_add_time(&ix, 100 + i, i * 10 + 9); /* ts of batch i: 100 + i */
    }
    assert_int_equal(index_lookup(&ix, 9), 0);
    assert_int_equal(index_lookup(&ix, 10), 1000);
    assert_int_equal(index_lookup(&ix, 15), 1000);
    assert_int_equal(index_lookup(&ix, 2000), 200000);
    assert_int_equal(index_lookup(&ix, UINT32_MAX), 200000);
    assert_int_equal(index_lookup_time(&ix, 0), 0);
    assert_int_equal(index_lookup_time(&ix, 101), 0);
    assert_int_equal(index_lookup_time(&ix, 102), 20); /* batch 1 (ends at 19) is older */
    assert_int_equal(index_lookup_time(&ix, 1000), 2010);
    /* nothing written until flushed */
    assert_int_equal(st_file_size(dir, "x.index"), 0);
    assert_int_equal(index_flush(&ix), 0);
    assert_int_equal(st_file_size(dir, "x.index"), 200 * 8);
    assert_int_equal(st_file_size(dir, "x.timeindex"), 200 * 12);
    assert_int_equal(index_truncate(&ix, 50, 40), 0);
    assert_int_equal(st_file_size(dir, "x.index"), 50 * 8);
    assert_int_equal(st_file_size(dir, "x.timeindex"), 40 * 12);
    int complete;
    assert_int_equal(index_load(&ix, UINT32_MAX, INT64_MAX, &complete), 0);
    assert_int_equal(complete, 1);
    assert_int_equal(ix.on, 50);
    assert_int_equal(ix.tn, 40);
    assert_int_equal(ix.te[39].ts, 140);
    /* a failed flush cuts the file back to what was written */
    index_add(&ix, 10000, 900000);
    io_ops.pwrite = st_fail_pwrite;
    st_fail(ENOSPC, 0, 1);
    assert_int_equal(index_flush(&ix), -ENOSPC);
    io_ops_reset();
    assert_int_equal(st_file_size(dir, "x.index"), 50 * 8);
    assert_int_equal(index_flush(&ix), 0);
    assert_int_equal(st_file_size(dir, "x.index"), 51 * 8);
    index_destroy(&ix);
    st_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_validity),
        cmocka_unit_test(test_lookup_flush_truncate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
