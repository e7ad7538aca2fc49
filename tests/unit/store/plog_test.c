/* Unit tests for store/plog: append/read across segments, the sparse index,
 * max_bytes, time lookup, rolling, retention, DeleteRecords, reopen, and
 * injected write/fdatasync failures. Each test runs in its own temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/err.h"
#include "store/plog.h"
#include "store_test.h"

typedef struct {
    char *dir;
    plog_config_t cfg;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    fx->dir = st_tmpdir();
    plog_config_default(&fx->cfg);
    fx->cfg.segment_bytes = 4096;
    fx->cfg.index_interval_bytes = 512;
    fx->cfg.retention_ms = -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    io_ops_reset();
    st_rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Appends a batch of n records (100-byte values, timestamps ts..ts+n-1,
 * value bytes seeded by seed). Returns plog_append's result. */
static int append(plog_t *log, int n, int64_t ts, int seed, int64_t *base)
{
    wbuf_t w;
    wbuf_init(&w);
    st_batch(&w, n, 100, ts, seed);
    int rc = plog_append(log, w.p, w.len, base);
    wbuf_destroy(&w);
    return rc;
}

/* Reads everything from `from`, checking each batch's CRC and that offsets
 * are contiguous. Returns the number of batches; *next gets the end. */
static int read_all(plog_t *log, int64_t from, size_t max_bytes, int64_t *next)
{
    wbuf_t w;
    wbuf_init(&w);
    int batches = 0;
    int64_t off = from;
    while (off < plog_end_offset(log)) {
        wbuf_reset(&w);
        int64_t n = plog_read(log, off, plog_end_offset(log), max_bytes, &w);
        assert_true(n > 0);
        assert_int_equal(n, (int64_t)w.len);
        size_t pos = 0;
        while (pos < w.len) {
            batch_header_t h;
            assert_int_equal(batch_header_parse(w.p + pos, w.len - pos, &h), 0);
            assert_int_equal(batch_verify_crc(w.p + pos, w.len - pos), 0);
            if (pos == 0)
                assert_true(h.base_offset <= off && off <= batch_last_offset(&h));
            else
                assert_int_equal(h.base_offset, off);
            off = batch_last_offset(&h) + 1;
            pos += batch_size(&h);
            batches++;
        }
    }
    wbuf_destroy(&w);
    *next = off;
    return batches;
}

static plog_t *open_log(fx_t *fx)
{
    plog_t *log = NULL;
    assert_int_equal(plog_open(fx->dir, &fx->cfg, &log), 0);
    return log;
}

static void test_empty(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    assert_int_equal(plog_start_offset(log), 0);
    assert_int_equal(plog_end_offset(log), 0);
    assert_int_equal(plog_segment_count(log), 1);
    wbuf_t w;
    wbuf_init(&w);
    assert_int_equal(plog_read(log, 0, 100, 1000, &w), 0);
    assert_int_equal(plog_read(log, 1, 100, 1000, &w), HE_OUT_OF_RANGE);
    assert_int_equal(plog_read(log, -1, 100, 1000, &w), HE_OUT_OF_RANGE);
    int64_t o, t;
    assert_int_equal(plog_offset_for_time(log, 0, &o, &t), HE_NOT_FOUND);
    wbuf_destroy(&w);
    plog_close(log);
}

static void test_roundtrip_segments(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    int64_t base;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(append(log, 10, 1000 + i * 10, i, &base), 0);
        assert_int_equal(base, i * 10);
    }
    assert_int_equal(plog_end_offset(log), 400);
    /* ~1.2 KiB per batch, 4 KiB segments: three batches per segment. */
    assert_true(plog_segment_count(log) >= 13);
    int64_t next;
    assert_int_equal(read_all(log, 0, 1 << 20, &next), 40);
    assert_int_equal(next, 400);
    /* Every offset, including mid-batch and mid-segment ones, through the index. */
    for (int64_t off = 0; off < 400; off += 7) {
        assert_true(read_all(log, off, 1 << 20, &next) > 0);
        assert_int_equal(next, 400);
    }
    /* Record contents survive. */
    wbuf_t w;
    wbuf_init(&w);
    assert_true(plog_read(log, 215, 400, 1, &w) > 0);
    batch_iter_t it;
    batch_rec_t r;
    assert_int_equal(batch_iter_init(&it, w.p, w.len), 0);
    assert_int_equal(it.h.base_offset, 210);
    assert_int_equal(batch_iter_next(&it, &r), 1);
    assert_int_equal(r.value_len, 100);
    assert_int_equal(r.value[0], 21);
    assert_int_equal(r.timestamp, 1210);
    wbuf_destroy(&w);
    plog_close(log);
}

static void test_max_bytes_and_limit(void **state)
{
    fx_t *fx = *state;
    fx->cfg.segment_bytes = 1 << 20;
    plog_t *log = open_log(fx);
    int64_t base;
    for (int i = 0; i < 10; i++) assert_int_equal(append(log, 10, 1000, i, &base), 0);
    wbuf_t w;
    wbuf_init(&w);
    /* The first batch comes whole even when larger than max_bytes. */
    int64_t n = plog_read(log, 5, 100, 10, &w);
    batch_header_t h;
    assert_int_equal(batch_header_parse(w.p, w.len, &h), 0);
    assert_int_equal(n, (int64_t)batch_size(&h));
    size_t one = batch_size(&h);
    /* Exactly two batches fit, never a partial third. */
    wbuf_reset(&w);
    assert_int_equal(plog_read(log, 0, 100, 2 * one + one / 2, &w), (int64_t)(2 * one));
    /* limit stops before the batch containing it. */
    wbuf_reset(&w);
    assert_int_equal(plog_read(log, 0, 30, 1 << 20, &w), (int64_t)(3 * one));
    wbuf_reset(&w);
    assert_int_equal(plog_read(log, 30, 30, 1 << 20, &w), 0);
    assert_int_equal(plog_read(log, 100, 200, 1 << 20, &w), 0);
    assert_int_equal(plog_read(log, 101, 200, 1 << 20, &w), HE_OUT_OF_RANGE);
    /* Appends to out, leaving what was there. */
    wbuf_reset(&w);
    wbuf_put(&w, "abc", 3);
    assert_int_equal(plog_read(log, 0, 100, 1, &w), (int64_t)one);
    assert_int_equal(w.len, 3 + one);
    assert_memory_equal(w.p, "abc", 3);
    wbuf_destroy(&w);
    plog_close(log);
}

static void test_offset_for_time(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    int64_t base;
    /* batch i: timestamps 10000 + 100*i .. +9 */
    for (int i = 0; i < 30; i++) assert_int_equal(append(log, 10, 10000 + 100 * i, i, &base), 0);
    int64_t off, ts;
    assert_int_equal(plog_offset_for_time(log, 0, &off, &ts), 0);
    assert_int_equal(off, 0);
    assert_int_equal(ts, 10009);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(plog_offset_for_time(log, 10000 + 100 * i + 5, &off, &ts), 0);
        assert_int_equal(off, i * 10);
        assert_int_equal(ts, 10000 + 100 * i + 9);
        assert_int_equal(plog_offset_for_time(log, 10000 + 100 * i + 10, &off, &ts), i < 29 ? 0 : HE_NOT_FOUND);
        if (i < 29) assert_int_equal(off, (i + 1) * 10);
    }
    assert_int_equal(plog_max_timestamp(log), 12909);
    plog_close(log);
}

static void test_roll_by_size(void **state)
{
    fx_t *fx = *state;
    fx->cfg.segment_bytes = 8192;
    plog_t *log = open_log(fx);
    int64_t base;
    wbuf_t w;
    wbuf_init(&w);
    st_batch(&w, 10, 100, 0, 0);
    size_t one = w.len;
    wbuf_destroy(&w);
    size_t per = 8192 / one;
    for (size_t i = 0; i < per; i++) assert_int_equal(append(log, 10, 0, 0, &base), 0);
    assert_int_equal(plog_segment_count(log), 1);
    assert_int_equal(append(log, 10, 0, 0, &base), 0);
    assert_int_equal(plog_segment_count(log), 2);
    char name[64];
    snprintf(name, sizeof name, "%020lld.log", (long long)base);
    assert_int_equal(st_file_size(fx->dir, name), (off_t)one);
    assert_int_equal(st_file_size(fx->dir, "00000000000000000000.log"), (off_t)(per * one));
    assert_int_equal(plog_size_bytes(log), (int64_t)((per + 1) * one));
    plog_close(log);
}

static void test_retention_bytes(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    int64_t base;
    for (int i = 0; i < 30; i++) assert_int_equal(append(log, 10, 1000, i, &base), 0);
    int segs = plog_segment_count(log);
    int64_t size = plog_size_bytes(log);
    plog_config_t c = fx->cfg;
    c.retention_bytes = size / 2;
    plog_set_config(log, &c);
    int deleted = plog_maintain(log, 2000);
    assert_true(deleted > 0);
    assert_int_equal(plog_segment_count(log), segs - deleted);
    assert_true(plog_size_bytes(log) >= size / 2);
    assert_true(plog_size_bytes(log) < size / 2 + 4096 + 2000);
    /* The start moved to a segment boundary; reads below it are out of range. */
    int64_t start = plog_start_offset(log);
    assert_true(start > 0 && start % 10 == 0);
    char name[64];
    snprintf(name, sizeof name, "%020lld.log", (long long)start);
    assert_true(st_file_size(fx->dir, name) > 0);
    assert_int_equal(st_file_size(fx->dir, "00000000000000000000.log"), -1);
    assert_int_equal(st_file_size(fx->dir, "00000000000000000000.index"), -1);
    wbuf_t w;
    wbuf_init(&w);
    assert_int_equal(plog_read(log, start - 1, 300, 1 << 20, &w), HE_OUT_OF_RANGE);
    wbuf_destroy(&w);
    int64_t next;
    assert_int_equal(read_all(log, start, 1 << 20, &next), (300 - start) / 10);
    /* retention 0 deletes all but the active segment */
    c.retention_bytes = 0;
    plog_set_config(log, &c);
    plog_maintain(log, 2000);
    assert_int_equal(plog_segment_count(log), 1);
    assert_int_equal(plog_end_offset(log), 300);
    plog_close(log);
}

static void test_retention_time(void **state)
{
    fx_t *fx = *state;
    fx->cfg.segment_ms = -1;
    plog_t *log = open_log(fx);
    int64_t base;
    /* batches 0..8 old (t=1000), 9.. new (t=100000) */
    for (int i = 0; i < 18; i++) assert_int_equal(append(log, 10, i < 9 ? 1000 : 100000, i, &base), 0);
    plog_config_t c = fx->cfg;
    c.retention_ms = 50000;
    plog_set_config(log, &c);
    int deleted = plog_maintain(log, 100000);
    /* Only whole segments wholly older than 50000: those made of batches 0..8 only. */
    assert_true(deleted >= 1);
    assert_true(plog_start_offset(log) <= 90);
    int64_t off, ts;
    assert_int_equal(plog_offset_for_time(log, 0, &off, &ts), 0);
    assert_int_equal(off, plog_start_offset(log));
    /* Nothing more is deleted later at the same time. */
    assert_int_equal(plog_maintain(log, 100000), 0);
    /* Far in the future everything but the active segment goes. */
    plog_maintain(log, 1000000);
    assert_int_equal(plog_segment_count(log), 1);
    plog_close(log);
}

static void test_roll_by_time(void **state)
{
    fx_t *fx = *state;
    fx->cfg.segment_bytes = 1 << 20;
    fx->cfg.segment_ms = 1000;
    plog_t *log = open_log(fx);
    int64_t base;
    assert_int_equal(plog_maintain(log, INT64_MAX / 2), 0); /* empty: no roll */
    assert_int_equal(plog_segment_count(log), 1);
    assert_int_equal(append(log, 1, 0, 0, &base), 0);
    plog_maintain(log, INT64_MAX / 2);
    assert_int_equal(plog_segment_count(log), 2);
    assert_int_equal(append(log, 1, 0, 0, &base), 0);
    assert_int_equal(base, 1);
    plog_close(log);
}

static void test_delete_before(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    int64_t base;
    for (int i = 0; i < 20; i++) assert_int_equal(append(log, 10, 1000, i, &base), 0);
    int segs = plog_segment_count(log);
    assert_int_equal(plog_delete_before(log, 201), HE_OUT_OF_RANGE);
    assert_int_equal(plog_delete_before(log, 75), 0);
    assert_int_equal(plog_start_offset(log), 75);
    assert_true(plog_segment_count(log) < segs);
    wbuf_t w;
    wbuf_init(&w);
    assert_int_equal(plog_read(log, 74, 200, 1 << 20, &w), HE_OUT_OF_RANGE);
    assert_true(plog_read(log, 75, 200, 1 << 20, &w) > 0);
    assert_int_equal(plog_delete_before(log, 10), 0); /* lower: no-op */
    assert_int_equal(plog_start_offset(log), 75);
    int64_t off, ts;
    assert_int_equal(plog_offset_for_time(log, 0, &off, &ts), 0);
    assert_int_equal(off, 75);
    plog_close(log);
    /* persisted */
    log = open_log(fx);
    assert_int_equal(plog_start_offset(log), 75);
    assert_int_equal(plog_end_offset(log), 200);
    /* up to the end: everything goes, appends continue at 200 */
    assert_int_equal(plog_delete_before(log, 200), 0);
    assert_int_equal(plog_segment_count(log), 1);
    assert_int_equal(plog_size_bytes(log), 0);
    assert_int_equal(plog_read(log, 200, 300, 100, &w), 0);
    assert_int_equal(append(log, 1, 1000, 0, &base), 0);
    assert_int_equal(base, 200);
    plog_close(log);
    log = open_log(fx);
    assert_int_equal(plog_start_offset(log), 200);
    assert_int_equal(plog_end_offset(log), 201);
    wbuf_destroy(&w);
    plog_close(log);
}

static void test_drop_segments_before(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    int64_t base;
    for (int i = 0; i < 20; i++) assert_int_equal(append(log, 10, 1000, i, &base), 0);
    int segs = plog_segment_count(log);
    assert_true(segs > 3);
    /* Below the second segment's base: nothing can go. */
    assert_int_equal(plog_drop_segments_before(log, 1), 0);
    assert_int_equal(plog_start_offset(log), 0);
    /* Only whole segments go; the start is the first kept segment's base,
     * at or below the offset asked for; the active segment stays. */
    int n = plog_drop_segments_before(log, 75);
    assert_true(n > 0);
    assert_int_equal(plog_segment_count(log), segs - n);
    assert_true(plog_start_offset(log) > 0 && plog_start_offset(log) <= 75);
    wbuf_t w;
    wbuf_init(&w);
    assert_true(plog_read(log, 75, 200, 1 << 20, &w) > 0);
    assert_true(plog_drop_segments_before(log, 1000) > 0);
    assert_int_equal(plog_segment_count(log), 1);
    assert_int_equal(plog_end_offset(log), 200);
    assert_int_equal(append(log, 1, 1000, 0, &base), 0);
    assert_int_equal(base, 200);
    wbuf_destroy(&w);
    plog_close(log);
}

static void test_reopen_clean(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    int64_t base;
    for (int i = 0; i < 25; i++) assert_int_equal(append(log, 10, 1000 + i, i, &base), 0);
    int segs = plog_segment_count(log);
    int64_t size = plog_size_bytes(log);
    plog_close(log);
    assert_true(st_file_size(fx->dir, "clean-shutdown") == 0);
    log = open_log(fx);
    assert_int_equal(st_file_size(fx->dir, "clean-shutdown"), -1);
    assert_int_equal(plog_end_offset(log), 250);
    assert_int_equal(plog_durable_offset(log), 250);
    assert_int_equal(plog_segment_count(log), segs);
    assert_int_equal(plog_size_bytes(log), size);
    int64_t next;
    assert_int_equal(read_all(log, 0, 1 << 20, &next), 25);
    for (int64_t off = 3; off < 250; off += 11) assert_true(read_all(log, off, 5000, &next) > 0);
    int64_t off, ts;
    assert_int_equal(plog_offset_for_time(log, 1013, &off, &ts), 0);
    assert_int_equal(off, 40); /* batch i holds 1000+i .. 1009+i */
    assert_int_equal(append(log, 10, 0, 0, &base), 0);
    assert_int_equal(base, 250);
    plog_close(log);
}

static void test_enospc_on_write(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    int64_t base;
    for (int i = 0; i < 5; i++) assert_int_equal(append(log, 10, 1000, i, &base), 0);
    int64_t size = plog_size_bytes(log);
    io_ops.pwrite = st_fail_pwrite;
    st_fail(ENOSPC, 0, 1);
    assert_int_equal(append(log, 10, 1000, 9, &base), -ENOSPC);
    io_ops_reset();
    assert_int_equal(plog_end_offset(log), 50);
    assert_int_equal(plog_size_bytes(log), size);
    assert_false(plog_failed(log));
    /* A short write followed by ENOSPC: the partial batch is cut away. */
    io_ops.pwrite = st_short_pwrite;
    st_fail(ENOSPC, 0, 1);
    assert_int_equal(append(log, 10, 1000, 9, &base), -ENOSPC);
    io_ops_reset();
    assert_int_equal(plog_size_bytes(log), size);
    /* The log stays usable and consistent, also across a reopen. */
    assert_int_equal(append(log, 10, 1000, 5, &base), 0);
    assert_int_equal(base, 50);
    int64_t next;
    assert_int_equal(read_all(log, 0, 1 << 20, &next), 6);
    plog_close(log);
    log = open_log(fx);
    assert_int_equal(read_all(log, 0, 1 << 20, &next), 6);
    assert_int_equal(next, 60);
    plog_close(log);
}

static void test_eio_on_fdatasync(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    int64_t base;
    for (int i = 0; i < 5; i++) assert_int_equal(append(log, 10, 1000, i, &base), 0);
    plog_sync_t s;
    assert_int_equal(plog_sync_begin(log, &s), 1);
    plog_sync_run(&s);
    assert_int_equal(plog_sync_end(log, &s), 0);
    assert_int_equal(plog_durable_offset(log), 50);
    assert_int_equal(plog_sync_begin(log, &s), 0); /* nothing new */
    assert_int_equal(append(log, 10, 1000, 5, &base), 0);
    assert_int_equal(plog_sync_begin(log, &s), 1);
    io_ops.fdatasync = st_fail_fdatasync;
    st_fail(EIO, 0, 1);
    plog_sync_run(&s);
    io_ops_reset();
    assert_int_equal(plog_sync_end(log, &s), -EIO);
    assert_true(plog_failed(log));
    assert_int_equal(plog_durable_offset(log), 50);
    /* read-only: appends refused, no retry of the sync, reads still work */
    assert_int_equal(append(log, 10, 1000, 6, &base), HE_STORAGE);
    assert_int_equal(plog_sync_begin(log, &s), HE_STORAGE);
    assert_int_equal(plog_delete_before(log, 10), HE_STORAGE);
    int64_t next;
    assert_int_equal(read_all(log, 0, 1 << 20, &next), 6);
    plog_close(log);
    /* no clean marker after a failure: the next open recovers */
    assert_int_equal(st_file_size(fx->dir, "clean-shutdown"), -1);
    log = open_log(fx);
    assert_false(plog_failed(log));
    assert_int_equal(plog_end_offset(log), 60);
    plog_close(log);
}

static int st_fail_renameat(int od, const char *op, int nd, const char *np)
{
    if (st_should_fail()) return -1;
    return renameat(od, op, nd, np);
}

static void test_rename_failures(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    int64_t base;
    for (int i = 0; i < 10; i++) assert_int_equal(append(log, 10, 1000, i, &base), 0);
    /* DeleteRecords whose start file cannot be replaced changes nothing. */
    io_ops.renameat = st_fail_renameat;
    st_fail(EIO, 0, 1);
    assert_int_equal(plog_delete_before(log, 50), -EIO);
    io_ops_reset();
    assert_int_equal(plog_start_offset(log), 0);
    assert_false(plog_failed(log));
    /* A checkpoint that cannot be written does not fail the data sync. */
    assert_int_equal(plog_delete_before(log, 50), 0);
    assert_int_equal(append(log, 10, 1000, 10, &base), 0);
    plog_sync_t s;
    assert_int_equal(plog_sync_begin(log, &s), 1);
    io_ops.renameat = st_fail_renameat;
    st_fail(ENOSPC, 0, -1);
    plog_sync_run(&s);
    io_ops_reset();
    assert_int_equal(s.ckpt_status, -ENOSPC);
    assert_int_equal(plog_sync_end(log, &s), 0);
    assert_false(plog_failed(log));
    assert_int_equal(plog_durable_offset(log), 110);
    plog_close(log);
    log = open_log(fx);
    assert_int_equal(plog_start_offset(log), 50);
    assert_int_equal(plog_end_offset(log), 110);
    plog_close(log);
}

static void test_index_write_failure_fails_log(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    int64_t base;
    for (int i = 0; i < 5; i++) assert_int_equal(append(log, 10, 1000, i, &base), 0);
    assert_int_equal(plog_segment_count(log), 2);
    /* the round's first pwrite writes the rolled segment's index entries */
    io_ops.pwrite = st_fail_pwrite;
    st_fail(ENOSPC, 0, 1);
    plog_sync_t s;
    assert_int_equal(plog_sync_begin(log, &s), -ENOSPC);
    io_ops_reset();
    assert_true(plog_failed(log));
    int64_t next;
    assert_int_equal(read_all(log, 0, 1 << 20, &next), 5);
    plog_close(log);
    log = open_log(fx);
    assert_int_equal(read_all(log, 0, 1 << 20, &next), 5);
    plog_close(log);
}

static void test_bad_append_args(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    wbuf_t w;
    wbuf_init(&w);
    st_batch(&w, 2, 10, 0, 0);
    int64_t base;
    wbuf_u8(&w, 0); /* one byte too many */
    assert_int_equal(plog_append(log, w.p, w.len, &base), HE_INVALID);
    assert_int_equal(plog_append(log, w.p, 30, &base), HE_TRUNCATED);
    assert_int_equal(plog_append(log, w.p, w.len - 1, &base), 0);
    assert_int_equal(plog_end_offset(log), 2);
    wbuf_destroy(&w);
    plog_close(log);
    plog_close(NULL);
}

static void test_destroy_dir(void **state)
{
    fx_t *fx = *state;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/topic-0", fx->dir);
    plog_t *log = NULL;
    assert_int_equal(plog_open(sub, &fx->cfg, &log), 0);
    int64_t base;
    for (int i = 0; i < 10; i++) assert_int_equal(append(log, 10, 1000, i, &base), 0);
    plog_close(log);
    assert_int_equal(plog_destroy_dir(sub), 0);
    struct stat sb;
    assert_int_equal(stat(sub, &sb), -1);
    assert_int_equal(plog_destroy_dir(sub), 0);
}

/* plog_last_batch_pos says where each batch went; plog_pread reads spans
 * of it back by position (the delay queue reads single records that way),
 * and refuses offsets and spans outside the segment. */
static void test_pread_by_position(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    assert_int_equal(plog_last_batch_pos(log), -1);
    int64_t base, pos[40];
    for (int i = 0; i < 40; i++) {
        assert_int_equal(append(log, 10, 1000 + i * 10, i, &base), 0);
        pos[i] = plog_last_batch_pos(log);
        assert_true(pos[i] >= 0);
        /* a new segment starts at position 0 with this batch's offset */
        if (pos[i] == 0) assert_int_equal(plog_segment_base(log, base + 9), base);
        else assert_true(plog_segment_base(log, base) < base);
    }
    wbuf_t w;
    wbuf_init(&w);
    for (int i = 0; i < 40; i++) {
        wbuf_reset(&w);
        assert_true(plog_read(log, i * 10, plog_end_offset(log), 1, &w) > 0); /* the batch alone */
        uint8_t *b = malloc(w.len);
        /* any offset of the batch names its segment */
        assert_int_equal(plog_pread(log, i * 10 + i % 10, pos[i], w.len, b), 0);
        assert_memory_equal(b, w.p, w.len);
        assert_int_equal(plog_pread(log, i * 10, pos[i] + 61, 100, b), 0); /* a span inside */
        assert_memory_equal(b, w.p + 61, 100);
        free(b);
    }
    uint8_t b[64];
    assert_int_equal(plog_pread(log, 400, 0, 8, b), HE_OUT_OF_RANGE); /* the end */
    assert_int_equal(plog_pread(log, -1, 0, 8, b), HE_OUT_OF_RANGE);
    assert_int_equal(plog_pread(log, 0, -1, 8, b), HE_OUT_OF_RANGE);
    assert_int_equal(plog_pread(log, 0, 4096, 8, b), HE_OUT_OF_RANGE); /* past the segment */
    assert_int_equal(plog_pread(log, 0, 0, 0, b), 0);
    wbuf_destroy(&w);
    plog_close(log);
}

static int g_syncs;
static int counting_fdatasync(int fd)
{
    g_syncs++;
    return fdatasync(fd);
}

/* A scratch log (a queue's spill log) is written and read as any log but
 * never synced: not on open, not at close (no clean-shutdown marker). */
static void test_scratch_log_never_syncs(void **state)
{
    fx_t *fx = *state;
    g_syncs = 0;
    io_ops.fdatasync = counting_fdatasync;
    plog_t *log = NULL;
    assert_int_equal(plog_open_scratch(fx->dir, &fx->cfg, 0, &log), 0);
    int64_t base, next;
    for (int i = 0; i < 25; i++) assert_int_equal(append(log, 10, 1000 + i, i, &base), 0);
    assert_int_equal(read_all(log, 0, 1 << 20, &next), 25);
    assert_int_equal(next, 250);
    plog_close(log);
    assert_int_equal(g_syncs, 0);
    assert_int_equal(st_file_size(fx->dir, "clean-shutdown"), -1);
    log = open_log(fx); /* (the counter sees a plain log's syncs) */
    plog_close(log);
    assert_true(g_syncs > 0);
}

/* A scratch log created in an empty directory starts at the base it is
 * given (a queue's next spill log goes on from the last one's offsets);
 * one reopened keeps the offsets its segments hold. */
static void test_scratch_log_starts_at_base(void **state)
{
    fx_t *fx = *state;
    plog_t *log = NULL;
    assert_int_equal(plog_open_scratch(fx->dir, &fx->cfg, 70000, &log), 0);
    assert_int_equal(plog_start_offset(log), 70000);
    assert_int_equal(plog_end_offset(log), 70000);
    int64_t base, next;
    assert_int_equal(append(log, 10, 1000, 0, &base), 0);
    assert_int_equal(base, 70000);
    assert_int_equal(read_all(log, 70000, 1 << 20, &next), 1); /* one batch of 10 */
    assert_int_equal(next, 70010);
    plog_close(log);
    assert_int_equal(plog_open_scratch(fx->dir, &fx->cfg, 5, &log), 0);
    assert_int_equal(plog_start_offset(log), 70000);
    assert_int_equal(plog_end_offset(log), 70010);
    plog_close(log);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_empty),          T(test_roundtrip_segments), T(test_max_bytes_and_limit),
        T(test_offset_for_time), T(test_roll_by_size),      T(test_retention_bytes),
        T(test_retention_time), T(test_roll_by_time),       T(test_delete_before), T(test_drop_segments_before),
        T(test_reopen_clean),   T(test_enospc_on_write),    T(test_eio_on_fdatasync),
        T(test_bad_append_args), T(test_destroy_dir),      T(test_rename_failures),
        T(test_index_write_failure_fails_log), T(test_pread_by_position), T(test_scratch_log_never_syncs),
        T(test_scratch_log_starts_at_base),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
