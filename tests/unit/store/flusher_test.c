/* Unit tests for store/flusher on a real libuv loop: group commit of several
 * dirty logs in one round (synced at once), back-to-back rounds, interval and never modes,
 * fdatasync failure, forgetting a log and freeing the flusher while a round
 * is in flight. Every test ends with uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <time.h>
#include <uv.h>

#include "base/err.h"
#include "store/flusher.h"
#include "store_test.h"

#define NLOGS 3

typedef struct {
    char *dir;
    uv_loop_t loop;
    plog_t *logs[NLOGS];
    flusher_t *f;
    int calls[NLOGS];      /* cb calls per log */
    int last_status[NLOGS];
    int reappend;          /* cb appends to log 0 again this many times */
    int early;             /* callbacks that ran while the gate held a sync (gated_fdatasync) */
    uv_timer_t timer;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    fx->dir = st_tmpdir();
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    plog_config_t c;
    plog_config_default(&c);
    for (int i = 0; i < NLOGS; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/log-%d", fx->dir, i);
        assert_int_equal(plog_open(p, &c, &fx->logs[i]), 0);
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    io_ops_reset();
    for (int i = 0; i < NLOGS; i++) plog_close(fx->logs[i]);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    st_rmdir(fx->dir);
    free(fx);
    return 0;
}

static int index_of(fx_t *fx, plog_t *log)
{
    for (int i = 0; i < NLOGS; i++)
        if (fx->logs[i] == log) return i;
    fail();
    return -1;
}

static void append(plog_t *log)
{
    wbuf_t w;
    int64_t base;
    wbuf_init(&w);
    st_batch(&w, 5, 100, 1000, 0);
    assert_int_equal(plog_append(log, w.p, w.len, &base), 0);
    wbuf_destroy(&w);
}

static void on_synced(void *ctx, plog_t *log, int status)
{
    fx_t *fx = ctx;
    int i = index_of(fx, log);
    if (i < 0 || i >= NLOGS) {
        fail_msg("callback for a log the test does not know");
        return;
    }
    fx->calls[i]++;
    fx->last_status[i] = status;
    if (i == 0 && fx->reappend > 0) {
        fx->reappend--;
        append(log);
        flusher_mark_dirty(fx->f, log);
    }
}

/* Frees the flusher and drains the loop. */
static void finish(fx_t *fx)
{
    flusher_free(fx->f);
    fx->f = NULL;
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
}

static void test_group_commit_one_round(void **state)
{
    fx_t *fx = *state;
    fx->f = flusher_new(&fx->loop, FLUSH_ALWAYS, 0, on_synced, fx);
    for (int i = 0; i < NLOGS; i++) {
        append(fx->logs[i]);
        append(fx->logs[i]);
        flusher_mark_dirty(fx->f, fx->logs[i]);
        flusher_mark_dirty(fx->f, fx->logs[i]); /* twice: still once in the set */
        assert_int_equal(plog_durable_offset(fx->logs[i]), 0);
    }
    assert_int_equal(flusher_sync_histo(fx->f)->count, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(flusher_rounds(fx->f), 1);
    /* one timed sync per log, counted back on the loop */
    const histo_t *h = flusher_sync_histo(fx->f);
    assert_int_equal(h->count, NLOGS);
    uint64_t in_buckets = 0;
    for (int b = 0; b <= HISTO_NBOUNDS; b++) in_buckets += h->buckets[b];
    assert_int_equal(in_buckets, NLOGS);
    assert_true(h->sum_ns > 0);
    for (int i = 0; i < NLOGS; i++) {
        assert_int_equal(fx->calls[i], 1);
        assert_int_equal(fx->last_status[i], 0);
        assert_int_equal(plog_durable_offset(fx->logs[i]), 10);
        assert_int_equal(plog_synced_offset(fx->logs[i]), 10);
    }
    finish(fx);
}

static void test_next_round_at_once(void **state)
{
    fx_t *fx = *state;
    fx->f = flusher_new(&fx->loop, FLUSH_ALWAYS, 0, on_synced, fx);
    fx->reappend = 2;
    append(fx->logs[0]);
    flusher_mark_dirty(fx->f, fx->logs[0]);
    append(fx->logs[1]);
    flusher_mark_dirty(fx->f, fx->logs[1]);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(flusher_rounds(fx->f), 3);
    assert_int_equal(fx->calls[0], 3);
    assert_int_equal(fx->calls[1], 1);
    assert_int_equal(plog_durable_offset(fx->logs[0]), 15);
    finish(fx);
}

/* With a gap, back-to-back rounds are spaced by it, and still each covers
 * everything marked meanwhile. */
static void test_round_gap(void **state)
{
    fx_t *fx = *state;
    fx->f = flusher_new(&fx->loop, FLUSH_ALWAYS, 0, on_synced, fx);
    flusher_set_round_gap(fx->f, 40000);
    fx->reappend = 2;
    uint64_t t0 = uv_hrtime();
    append(fx->logs[0]);
    flusher_mark_dirty(fx->f, fx->logs[0]);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    uint64_t elapsed_ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(flusher_rounds(fx->f), 3);
    assert_int_equal(fx->calls[0], 3);
    assert_int_equal(plog_durable_offset(fx->logs[0]), 15);
    assert_true(elapsed_ms >= 80); /* two gaps of 40 ms */
    finish(fx);
}

static void on_stop_timer(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
}

static void test_interval_mode(void **state)
{
    fx_t *fx = *state;
    fx->f = flusher_new(&fx->loop, FLUSH_INTERVAL, 10, on_synced, fx);
    append(fx->logs[0]);
    flusher_mark_dirty(fx->f, fx->logs[0]);
    /* acked at once ("written to the page cache"), synced later */
    assert_int_equal(plog_durable_offset(fx->logs[0]), 5);
    assert_int_equal(plog_synced_offset(fx->logs[0]), 0);
    uv_timer_init(&fx->loop, &fx->timer);
    uv_timer_start(&fx->timer, on_stop_timer, 100, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_true(flusher_rounds(fx->f) >= 1);
    assert_int_equal(fx->calls[0], 1);
    assert_int_equal(plog_synced_offset(fx->logs[0]), 5);
    finish(fx);
}

static void test_never_mode(void **state)
{
    fx_t *fx = *state;
    fx->f = flusher_new(&fx->loop, FLUSH_NEVER, 0, on_synced, fx);
    append(fx->logs[0]);
    flusher_mark_dirty(fx->f, fx->logs[0]);
    assert_int_equal(plog_durable_offset(fx->logs[0]), 5);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(flusher_rounds(fx->f), 0);
    assert_int_equal(fx->calls[0], 0);
    finish(fx);
}

static void test_sync_failure(void **state)
{
    fx_t *fx = *state;
    fx->f = flusher_new(&fx->loop, FLUSH_ALWAYS, 0, on_synced, fx);
    append(fx->logs[0]);
    flusher_mark_dirty(fx->f, fx->logs[0]);
    io_ops.fdatasync = st_fail_fdatasync;
    st_fail(EIO, 0, -1);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    io_ops_reset();
    assert_int_equal(fx->calls[0], 1);
    assert_int_equal(fx->last_status[0], -EIO);
    assert_true(plog_failed(fx->logs[0]));
    assert_int_equal(plog_durable_offset(fx->logs[0]), 0);
    /* marking a failed log again reports the failure, without a sync */
    flusher_mark_dirty(fx->f, fx->logs[0]);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->calls[0], 2);
    assert_int_equal(fx->last_status[0], HE_STORAGE);
    finish(fx);
}

/* fdatasync that takes a while, so a round is in flight when timers fire. */
static int slow_fdatasync(int fd)
{
    usleep(30000);
    return fdatasync(fd);
}

static void on_forget_timer(uv_timer_t *t)
{
    fx_t *fx = t->data;
    flusher_forget(fx->f, fx->logs[1]);
    plog_close(fx->logs[1]);
    fx->logs[1] = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

static void test_forget_in_flight(void **state)
{
    fx_t *fx = *state;
    fx->f = flusher_new(&fx->loop, FLUSH_ALWAYS, 0, on_synced, fx);
    io_ops.fdatasync = slow_fdatasync;
    for (int i = 0; i < 2; i++) {
        append(fx->logs[i]);
        flusher_mark_dirty(fx->f, fx->logs[i]);
    }
    uv_timer_init(&fx->loop, &fx->timer);
    fx->timer.data = fx;
    uv_timer_start(&fx->timer, on_forget_timer, 5, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    io_ops_reset();
    assert_int_equal(flusher_rounds(fx->f), 1);
    assert_int_equal(fx->calls[0], 1);
    assert_int_equal(fx->calls[1], 0); /* forgotten: no callback */
    finish(fx);
}

/* The first fdatasync waits at a gate until a callback opens it (or, as
 * a way out, 2 s pass: g_gate_timed_out); the others go through. */
static pthread_mutex_t g_gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_gate_cv = PTHREAD_COND_INITIALIZER;
static int g_gate_open, g_gate_taken, g_gate_timed_out;

static int gated_fdatasync(int fd)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    pthread_mutex_lock(&g_gate_mu);
    int first = !g_gate_taken;
    g_gate_taken = 1;
    while (first && !g_gate_open)
        if (pthread_cond_timedwait(&g_gate_cv, &g_gate_mu, &until) != 0) {
            g_gate_timed_out = 1;
            break;
        }
    pthread_mutex_unlock(&g_gate_mu);
    return fdatasync(fd);
}

static void on_synced_gate(void *ctx, plog_t *log, int status)
{
    fx_t *fx = ctx;
    on_synced(ctx, log, status);
    pthread_mutex_lock(&g_gate_mu);
    if (!g_gate_open) fx->early++;
    g_gate_open = 1;
    pthread_cond_broadcast(&g_gate_cv);
    pthread_mutex_unlock(&g_gate_mu);
}

/* The logs of a round sync at once, each on a worker: one whose sync is
 * held does not hold the other's callback (its waiters). */
static void test_logs_of_a_round_sync_at_once(void **state)
{
    fx_t *fx = *state;
    fx->f = flusher_new(&fx->loop, FLUSH_ALWAYS, 0, on_synced_gate, fx);
    g_gate_open = g_gate_taken = g_gate_timed_out = 0;
    io_ops.fdatasync = gated_fdatasync;
    for (int i = 0; i < 2; i++) {
        append(fx->logs[i]);
        flusher_mark_dirty(fx->f, fx->logs[i]);
    }
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    io_ops_reset();
    assert_int_equal(flusher_rounds(fx->f), 1);
    assert_int_equal(fx->calls[0], 1);
    assert_int_equal(fx->calls[1], 1);
    assert_int_equal(fx->early, 1);
    assert_false(g_gate_timed_out); /* the free one's callback opened the gate */
    for (int i = 0; i < 2; i++) assert_int_equal(plog_durable_offset(fx->logs[i]), 5);
    finish(fx);
}

static void on_free_timer(uv_timer_t *t)
{
    fx_t *fx = t->data;
    flusher_free(fx->f);
    fx->f = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

static void test_free_in_flight(void **state)
{
    fx_t *fx = *state;
    fx->f = flusher_new(&fx->loop, FLUSH_ALWAYS, 0, on_synced, fx);
    io_ops.fdatasync = slow_fdatasync;
    append(fx->logs[0]);
    flusher_mark_dirty(fx->f, fx->logs[0]);
    uv_timer_init(&fx->loop, &fx->timer);
    fx->timer.data = fx;
    uv_timer_start(&fx->timer, on_free_timer, 5, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* drains the round, then frees */
    io_ops_reset();
    assert_null(fx->f);
    assert_int_equal(fx->calls[0], 0); /* no callbacks after flusher_free */
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_group_commit_one_round), T(test_next_round_at_once), T(test_round_gap), T(test_interval_mode),
        T(test_never_mode),             T(test_sync_failure),       T(test_forget_in_flight),
        T(test_free_in_flight),         T(test_logs_of_a_round_sync_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
