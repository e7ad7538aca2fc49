/* Unit tests for plog recovery: a child process appends and dies without
 * closing (a process crash: unsynced data is still in the page cache), then
 * the test damages files as a power loss could — torn tail, corrupt byte,
 * damaged index files, missing checkpoint — and reopens. Also checks that
 * recovery reads only from the checkpoint, not the whole log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/wait.h>

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
    fx->cfg.index_interval_bytes = 1024;
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

static int append(plog_t *log, int n, int64_t ts, int seed)
{
    wbuf_t w;
    int64_t base;
    wbuf_init(&w);
    st_batch(&w, n, 100, ts, seed);
    int rc = plog_append(log, w.p, w.len, &base);
    wbuf_destroy(&w);
    return rc;
}

static void sync_round(plog_t *log)
{
    plog_sync_t s;
    /* A round syncs a bounded number of rolled segments: repeat, as the flusher does. */
    while (plog_sync_begin(log, &s) == 1) {
        plog_sync_run(&s);
        plog_sync_end(log, &s);
    }
}

/* In a child: open, append `synced` batches of 10 records and sync them,
 * append `unsynced` more, and die without closing. Batch i has timestamps
 * 1000 + 10 * i... */
static void crash_child(fx_t *fx, int synced, int unsynced)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        plog_t *log;
        if (plog_open(fx->dir, &fx->cfg, &log)) _exit(2);
        int64_t end = plog_end_offset(log);
        int i0 = (int)(end / 10);
        for (int i = 0; i < synced; i++)
            if (append(log, 10, 1000 + 10 * (i0 + i), i0 + i)) _exit(3);
        sync_round(log);
        for (int i = 0; i < unsynced; i++)
            if (append(log, 10, 1000 + 10 * (i0 + synced + i), i0 + synced + i)) _exit(4);
        _exit(0); /* no plog_close: a crash */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Reads everything, checking CRCs, contiguity and the value seeds
 * (record values of batch i are bytes i, i+1, ...). Returns batches. */
static int verify_all(plog_t *log)
{
    wbuf_t w;
    wbuf_init(&w);
    int batches = 0;
    int64_t off = plog_start_offset(log);
    while (off < plog_end_offset(log)) {
        wbuf_reset(&w);
        int64_t n = plog_read(log, off, plog_end_offset(log), 1 << 20, &w);
        assert_true(n > 0);
        size_t pos = 0;
        while (pos < w.len) {
            batch_header_t h;
            assert_int_equal(batch_verify_crc(w.p + pos, w.len - pos), 0);
            assert_int_equal(batch_header_parse(w.p + pos, w.len - pos, &h), 0);
            assert_int_equal(h.base_offset, off);
            batch_iter_t it;
            batch_rec_t r;
            assert_int_equal(batch_iter_init(&it, w.p + pos, batch_size(&h)), 0);
            assert_int_equal(batch_iter_next(&it, &r), 1);
            assert_int_equal(r.value[0], (uint8_t)(off / 10));
            off = batch_last_offset(&h) + 1;
            pos += batch_size(&h);
            batches++;
        }
    }
    wbuf_destroy(&w);
    return batches;
}

static plog_t *open_log(fx_t *fx)
{
    plog_t *log = NULL;
    assert_int_equal(plog_open(fx->dir, &fx->cfg, &log), 0);
    return log;
}

static char *seg_name(char *buf, int64_t base, const char *ext)
{
    sprintf(buf, "%020lld%s", (long long)base, ext);
    return buf;
}

/* Base offset of the active (last) segment after a reopen. */
static int64_t last_seg_base(fx_t *fx)
{
    int64_t best = -1;
    char name[64];
    for (int64_t b = 0; b <= 10000; b += 10)
        if (st_file_size(fx->dir, seg_name(name, b, ".log")) >= 0) best = b;
    return best;
}

static void test_process_crash_keeps_page_cache_data(void **state)
{
    fx_t *fx = *state;
    crash_child(fx, 5, 3);
    plog_t *log = open_log(fx);
    assert_int_equal(plog_end_offset(log), 80);
    assert_int_equal(plog_durable_offset(log), 80); /* synced at open */
    assert_int_equal(verify_all(log), 8);
    plog_close(log);
}

static void test_torn_tail(void **state)
{
    fx_t *fx = *state;
    crash_child(fx, 4, 6);
    int64_t b = last_seg_base(fx);
    char name[64];
    seg_name(name, b, ".log");
    off_t size = st_file_size(fx->dir, name);
    /* cut the last batch in half: it is dropped, the rest survives */
    st_truncate(fx->dir, name, size - 300);
    plog_t *log = open_log(fx);
    assert_int_equal(plog_end_offset(log), 90);
    assert_int_equal(verify_all(log), 9);
    /* appends continue right after the last whole batch */
    assert_int_equal(append(log, 10, 2000, 9), 0);
    assert_int_equal(plog_end_offset(log), 100);
    assert_int_equal(verify_all(log), 10);
    plog_close(log);
    log = open_log(fx);
    assert_int_equal(verify_all(log), 10);
    plog_close(log);
}

static void test_torn_header(void **state)
{
    fx_t *fx = *state;
    crash_child(fx, 2, 2);
    int64_t b = last_seg_base(fx);
    char name[64];
    seg_name(name, b, ".log");
    off_t size = st_file_size(fx->dir, name);
    wbuf_t w;
    wbuf_init(&w);
    st_batch(&w, 10, 100, 0, 0);
    /* leave 20 bytes of the last batch: not even a header */
    st_truncate(fx->dir, name, size - (off_t)w.len + 20);
    wbuf_destroy(&w);
    plog_t *log = open_log(fx);
    assert_int_equal(plog_end_offset(log), 30);
    assert_int_equal(verify_all(log), 3);
    plog_close(log);
}

static void test_corrupt_last_batch(void **state)
{
    fx_t *fx = *state;
    crash_child(fx, 3, 3);
    int64_t b = last_seg_base(fx);
    char name[64];
    seg_name(name, b, ".log");
    off_t size = st_file_size(fx->dir, name);
    st_flip(fx->dir, name, size - 7); /* inside the last batch's records */
    plog_t *log = open_log(fx);
    assert_int_equal(plog_end_offset(log), 50);
    assert_int_equal(verify_all(log), 5);
    assert_true(st_file_size(fx->dir, name) < size - 1000);
    assert_int_equal(append(log, 10, 2000, 5), 0);
    assert_int_equal(verify_all(log), 6);
    plog_close(log);
}

static void test_garbage_after_tail(void **state)
{
    fx_t *fx = *state;
    crash_child(fx, 3, 0);
    int64_t b = last_seg_base(fx);
    char name[64], p[4096];
    seg_name(name, b, ".log");
    off_t size = st_file_size(fx->dir, name);
    /* zeros appended (a file size that reached disk before the data) */
    snprintf(p, sizeof p, "%s/%s", fx->dir, name);
    assert_int_equal(truncate(p, size + 5000), 0);
    plog_t *log = open_log(fx);
    assert_int_equal(plog_end_offset(log), 30);
    assert_int_equal(st_file_size(fx->dir, name), size);
    assert_int_equal(verify_all(log), 3);
    plog_close(log);
}

static void test_torn_middle_segment_drops_later(void **state)
{
    fx_t *fx = *state;
    crash_child(fx, 2, 0);  /* checkpoint in segment 0 */
    /* append about four more segments without syncing */
    pid_t pid = fork();
    if (pid == 0) {
        plog_t *log;
        if (plog_open(fx->dir, &fx->cfg, &log)) _exit(2);
        for (int i = 2; i < 14; i++)
            if (append(log, 10, 1000 + 10 * i, i)) _exit(3);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* The segment starting at 30 (the second) is torn: everything after it goes. */
    char name[64];
    assert_true(st_file_size(fx->dir, seg_name(name, 30, ".log")) > 0);
    int64_t last = last_seg_base(fx);
    assert_true(last > 30);
    st_truncate(fx->dir, seg_name(name, 30, ".log"), st_file_size(fx->dir, name) - 100);
    plog_t *log = open_log(fx);
    assert_true(plog_end_offset(log) >= 30 && plog_end_offset(log) < 60);
    assert_int_equal(st_file_size(fx->dir, seg_name(name, last, ".log")), -1);
    assert_int_equal(st_file_size(fx->dir, seg_name(name, last, ".index")), -1);
    verify_all(log);
    int64_t end = plog_end_offset(log);
    assert_int_equal(append(log, 10, 5000, (int)(end / 10)), 0);
    verify_all(log);
    plog_close(log);
}

static int64_t bytes_read;
static ssize_t counting_pread(int fd, void *p, size_t n, off_t off)
{
    ssize_t r = pread(fd, p, n, off);
    if (r > 0) bytes_read += r;
    return r;
}

static void test_recovery_reads_only_from_checkpoint(void **state)
{
    fx_t *fx = *state;
    /* 60 batches (about 20 segments) synced (a roll forces a checkpoint),
     * then 2 unsynced */
    crash_child(fx, 60, 2);
    bytes_read = 0;
    io_ops.pread = counting_pread;
    plog_t *log = open_log(fx);
    io_ops_reset();
    assert_int_equal(plog_end_offset(log), 620);
    int64_t total = plog_size_bytes(log);
    /* Index files of ~20 segments (a few dozen bytes each) plus the tail
     * past the checkpoint: far below the log's size. */
    assert_true(bytes_read < total / 4);
    assert_int_equal(verify_all(log), 62);
    plog_close(log);
    /* And after a clean close, reopening reads almost nothing. */
    bytes_read = 0;
    io_ops.pread = counting_pread;
    log = open_log(fx);
    io_ops_reset();
    assert_true(bytes_read < 4096);
    assert_int_equal(plog_end_offset(log), 620);
    plog_close(log);
}

static void test_recovered_segments_trusted_next_time(void **state)
{
    fx_t *fx = *state;
    /* sparse enough that no batch but the last gets a time index entry */
    fx->cfg.index_interval_bytes = 4096;
    /* checkpoint in segment 0, then several unsynced rolls */
    crash_child(fx, 2, 12);
    plog_t *log = open_log(fx);
    assert_int_equal(plog_end_offset(log), 140);
    plog_close(log);
    /* The segments recovered by scanning were sealed and synced: the next
     * open trusts them and reads (almost) nothing. */
    bytes_read = 0;
    io_ops.pread = counting_pread;
    log = open_log(fx);
    io_ops_reset();
    assert_true(bytes_read < 4096);
    assert_int_equal(verify_all(log), 14);
    plog_close(log);
}

static void test_missing_checkpoint_scans_all(void **state)
{
    fx_t *fx = *state;
    crash_child(fx, 20, 1);
    char p[4096];
    snprintf(p, sizeof p, "%s/recovery-checkpoint", fx->dir);
    assert_int_equal(unlink(p), 0);
    plog_t *log = open_log(fx);
    assert_int_equal(plog_end_offset(log), 210);
    assert_int_equal(verify_all(log), 21);
    int64_t off, ts;
    assert_int_equal(plog_offset_for_time(log, 1105, &off, &ts), 0);
    assert_int_equal(off, 100);
    plog_close(log);
}

static void test_corrupt_checkpoint_ignored(void **state)
{
    fx_t *fx = *state;
    crash_child(fx, 20, 1);
    st_flip(fx->dir, "recovery-checkpoint", 20);
    plog_t *log = open_log(fx);
    assert_int_equal(plog_end_offset(log), 210);
    assert_int_equal(verify_all(log), 21);
    plog_close(log);
}

static void test_damaged_old_index_rebuilt(void **state)
{
    fx_t *fx = *state;
    crash_child(fx, 20, 0);
    char name[64];
    /* segment 0: time index cut mid-entry, offset index garbage */
    st_truncate(fx->dir, seg_name(name, 0, ".timeindex"), 5);
    plog_t *log = open_log(fx);
    assert_int_equal(plog_end_offset(log), 200);
    int64_t off, ts;
    assert_int_equal(plog_offset_for_time(log, 1015, &off, &ts), 0);
    assert_int_equal(off, 10);
    assert_int_equal(ts, 1019);
    /* the rebuilt index is complete again: 12 bytes per entry */
    assert_int_equal(st_file_size(fx->dir, name) % 12, 0);
    assert_true(st_file_size(fx->dir, name) >= 12);
    assert_int_equal(verify_all(log), 20);
    plog_close(log);
    /* an index longer than it should be (garbage entries) */
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", fx->dir, seg_name(name, 0, ".index"));
    int fd = open(p, O_WRONLY | O_APPEND);
    uint8_t junk[16];
    memset(junk, 0xff, sizeof junk);
    assert_int_equal(write(fd, junk, sizeof junk), 16);
    close(fd);
    log = open_log(fx);
    for (int64_t o = 0; o < 200; o += 3) {
        wbuf_t w;
        wbuf_init(&w);
        assert_true(plog_read(log, o, 200, 1, &w) > 0);
        wbuf_destroy(&w);
    }
    assert_int_equal(verify_all(log), 20);
    plog_close(log);
}

static void test_clean_close_then_index_damage(void **state)
{
    fx_t *fx = *state;
    plog_t *log = open_log(fx);
    for (int i = 0; i < 2; i++) assert_int_equal(append(log, 10, 1000 + 10 * i, i), 0);
    plog_close(log);
    char name[64];
    st_truncate(fx->dir, seg_name(name, 0, ".index"), 0);
    st_truncate(fx->dir, seg_name(name, 0, ".timeindex"), 3);
    log = open_log(fx);
    assert_int_equal(plog_end_offset(log), 20);
    assert_int_equal(verify_all(log), 2);
    int64_t off, ts;
    assert_int_equal(plog_offset_for_time(log, 1015, &off, &ts), 0);
    assert_int_equal(off, 10);
    plog_close(log);
}

static void test_open_failure_cleans_up(void **state)
{
    fx_t *fx = *state;
    char p[4096];
    snprintf(p, sizeof p, "%s/file", fx->dir);
    int fd = open(p, O_CREAT | O_WRONLY, 0644);
    close(fd);
    plog_t *log = NULL;
    snprintf(p, sizeof p, "%s/file/sub", fx->dir);
    assert_true(plog_open(p, &fx->cfg, &log) < 0);
    assert_null(log);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_process_crash_keeps_page_cache_data),
        T(test_torn_tail),
        T(test_torn_header),
        T(test_corrupt_last_batch),
        T(test_garbage_after_tail),
        T(test_torn_middle_segment_drops_later),
        T(test_recovery_reads_only_from_checkpoint),
        T(test_recovered_segments_trusted_next_time),
        T(test_missing_checkpoint_scans_all),
        T(test_corrupt_checkpoint_ignored),
        T(test_damaged_old_index_rebuilt),
        T(test_clean_close_then_index_damage),
        T(test_open_failure_cleans_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
