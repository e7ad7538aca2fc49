/* Queue features over a real broker (queue.c, queue_store.c, queue_page.c,
 * deadletter.c): offset ranges, durable delivery counts and retry times,
 * exact redelivered flags after a clean stop, priorities across restarts,
 * paging of a deep backlog, dead-letter claims at
 * start-up, the de-duplication window, and delayed messages read back from
 * disk (queue_delay.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../store/store_test.h"
#include "amqp/ftable.h"
#include "amqp/props.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/queue_admin.h"
#include "broker/queue_int.h"
#include "vhost_fixture.h"

/* ---- helpers ---- */

/* A table content with integer, string or bool arguments: "name", 'l' | 'S' | 't', value. */
static amqp_bytes_t args_of(wbuf_t *w, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    wbuf_reset(w);
    for (int i = 0; i < n; i++) {
        const char *name = va_arg(ap, const char *);
        int type = va_arg(ap, int);
        ftable_put_name(w, name);
        if (type == 'l') ftable_put_i64(w, va_arg(ap, int64_t));
        else if (type == 't') ftable_put_bool(w, va_arg(ap, int));
        else {
            const char *s = va_arg(ap, const char *);
            ftable_put_longstr(w, s, strlen(s));
        }
    }
    va_end(ap);
    return (amqp_bytes_t){w->p, (uint32_t)w->len};
}

static queue_t *mkq(fx_t *fx, const char *name, amqp_bytes_t args) { return fx_queue(fx, name, QF_DURABLE, args, NULL); }

/* A queue "dst" and a queue "src" that dead-letters into it (through the
 * default exchange), with x-delivery-limit when limit >= 0. Returns src. */
static queue_t *mk_src_dst(fx_t *fx, int64_t limit, queue_t **dst)
{
    wbuf_t w;
    wbuf_init(&w);
    queue_t *d = mkq(fx, "dst", none);
    if (dst) *dst = d;
    amqp_bytes_t args = limit >= 0 ? args_of(&w, 3, "x-dead-letter-exchange", 'S', "", "x-dead-letter-routing-key",
                                             'S', "dst", "x-delivery-limit", 'l', limit)
                                   : args_of(&w, 2, "x-dead-letter-exchange", 'S', "", "x-dead-letter-routing-key",
                                             'S', "dst");
    queue_t *src = mkq(fx, "src", args);
    wbuf_destroy(&w);
    return src;
}

/* Message i (fx_msg), with priority prio (-1 none) and an
 * x-deduplication-header when dedup is not NULL. */
static qmsg_t *msg(int i, int prio, const char *dedup)
{
    wbuf_t h;
    wbuf_init(&h);
    if (dedup) {
        ftable_put_name(&h, "x-deduplication-header");
        ftable_put_longstr(&h, dedup, strlen(dedup));
    }
    qmsg_t *m = fx_msg(i, prio, (amqp_bytes_t){h.p, (uint32_t)h.len}, NULL, 0);
    wbuf_destroy(&h);
    return m;
}

static int idx(const qentry_t *e) { return fx_key_idx(qmsg_key(e->m)); }

/* Takes q's next ready message, checks it is message i, acks it. */
static void ack_next(queue_t *q, int i)
{
    qentry_t *e = queue_get(q);
    assert_non_null(e);
    assert_int_equal(idx(e), i);
    queue_ack(e);
}

/* The index of a dead-letter copy's original: its x-death routing key. */
static int dead_idx(const qentry_t *e)
{
    amqp_props_t p;
    fvalue_t v;
    assert_int_equal(amqp_props_decode(qmsg_props(e->m), &p), 0);
    assert_int_equal(ftable_get(p.headers, "x-death", &v), 1);
    ftable_iter_t it = {v.v.array};
    assert_true(farray_next(&it, &v) && v.type == FV_TABLE);
    assert_int_equal(ftable_get(v.v.table, "routing-keys", &v), 1);
    it = (ftable_iter_t){v.v.array};
    assert_true(farray_next(&it, &v) && v.type == FV_LONGSTR);
    return fx_key_idx((amqp_bytes_t){v.v.str.p, v.v.str.len});
}

static int publish(queue_t *q, qmsg_t *m)
{
    uint32_t epoch;
    int64_t target;
    int rc = queue_publish(q, m, &epoch, &target);
    qmsg_unref(m);
    return rc;
}

/* Runs the loop until q holds n ready messages (dead-letter copies of
 * rejected messages are published in batches, by a loop timer). */
static void wait_ready(fx_t *fx, queue_t *q, uint32_t n)
{
    int64_t deadline = clock_mono_ms() + 5000;
    while (queue_ready_count(q) < n && clock_mono_ms() < deadline) uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(queue_ready_count(q), n);
}

/* ---- offset ranges ---- */

static void test_ranges(void **state)
{
    (void)state;
    qranges_t r = {0};
    qranges_add(&r, 10, 11);
    qranges_add(&r, 11, 12); /* merges with the last */
    qranges_add(&r, 20, 25);
    qranges_add(&r, 0, 3); /* out of order: normalize sorts */
    qranges_add(&r, 2, 5); /* overlaps */
    qranges_normalize(&r);
    assert_int_equal(r.n, 3);
    assert_true(r.v[0].from == 0 && r.v[0].to == 5);
    assert_true(r.v[1].from == 10 && r.v[1].to == 12);
    assert_true(qranges_has(&r, 4) && !qranges_has(&r, 5) && qranges_has(&r, 24) && !qranges_has(&r, 25));
    assert_int_equal(qranges_remove(&r, 22), 1); /* a split */
    assert_int_equal(r.n, 4);
    assert_false(qranges_has(&r, 22));
    assert_true(qranges_has(&r, 21) && qranges_has(&r, 23));
    assert_int_equal(qranges_remove(&r, 22), 0);
    assert_int_equal(qranges_remove(&r, 10), 1);
    assert_int_equal(qranges_remove(&r, 11), 1); /* the range empties and goes */
    assert_int_equal(r.n, 3);
    assert_false(qranges_has(&r, 11));
    qranges_free(&r);
}

/* ---- delivery counts and retry times are durable ---- */

static void test_returns_and_retry_times_survive_a_restart(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    wbuf_t w;
    wbuf_init(&w);
    queue_t *q = mkq(fx, "retry", args_of(&w, 2, "x-retry-backoff", 'S', "1ms,1h", "x-delivery-limit", 'l',
                                          (int64_t)9));
    wbuf_destroy(&w);
    publish(q, msg(1, -1, NULL));
    publish(q, msg(2, -1, NULL));
    qentry_t *e = queue_get(q);
    queue_requeue(&e, 1); /* first return: waits 1 ms */
    assert_int_equal(queue_ready_count(q), 1);
    assert_int_equal(queue_delayed_count(q), 1);
    while (queue_delayed_count(q)) (void)queue_run_due(q, clock_wall_ms() + 5);
    e = queue_get(q);
    assert_int_equal(idx(e), 1); /* back at its place, ahead of 2 */
    assert_int_equal(e->returns, 1);
    queue_requeue(&e, 1); /* second return: waits an hour */
    assert_int_equal(queue_delayed_count(q), 1);
    sync_all(fx);
    restart(fx); /* (SIGKILL in the middle of retries: 24_amqp_retry_delay_test.py) */
    q = fx_findq(fx, "retry");
    assert_int_equal(queue_delayed_count(q), 1); /* still waiting its hour */
    assert_int_equal(queue_ready_count(q), 1);
    e = queue_get(q);
    assert_int_equal(idx(e), 2);
    queue_ack(e);
    (void)queue_run_due(q, clock_wall_ms() + 3600 * 1000 + 1000);
    e = queue_get(q);
    assert_non_null(e);
    assert_int_equal(idx(e), 1);
    assert_int_equal(e->returns, 2);
    assert_true(e->redelivered);
    wbuf_t pw;
    wbuf_init(&pw);
    amqp_props_t p;
    assert_int_equal(amqp_props_decode(queue_entry_props(e, 0, &pw), &p), 0);
    int64_t dc = 0;
    assert_int_equal(ftable_get_int(p.headers, "x-delivery-count", &dc), 1);
    assert_int_equal(dc, 2);
    wbuf_destroy(&pw);
    queue_ack(e);
    close_broker(fx);
}

/* A turn's acks, returns and delivered mark reach the state log as one
 * batch: one write, three records, replayed as before. */
static int g_pwrites;
static ssize_t counting_pwrite(int fd, const void *p, size_t n, off_t off)
{
    g_pwrites++;
    return pwrite(fd, p, n, off);
}

static void test_state_records_of_a_turn_are_one_write(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    wbuf_t w;
    wbuf_init(&w);
    queue_t *q = mkq(fx, "st", args_of(&w, 1, "x-delivery-limit", 'l', (int64_t)5));
    wbuf_destroy(&w);
    for (int i = 0; i < 3; i++) publish(q, msg(i, -1, NULL));
    sync_all(fx);
    qentry_t *e0 = queue_get(q), *e1 = queue_get(q);
    queue_ack(e0);
    queue_requeue(&e1, 1);
    int64_t end = plog_end_offset(q->state->log);
    g_pwrites = 0;
    io_ops.pwrite = counting_pwrite;
    queue_flush_all(fx->b);
    io_ops_reset();
    assert_int_equal(g_pwrites, 1);
    assert_int_equal(plog_end_offset(q->state->log), end + 3); /* "a", "r", "d" */
    sync_all(fx);
    restart(fx);
    q = fx_findq(fx, "st");
    assert_int_equal(queue_ready_count(q), 2);
    qentry_t *e = queue_get(q);
    assert_int_equal(idx(e), 1);
    assert_int_equal(e->returns, 1);
    assert_true(e->redelivered);
    queue_ack(e);
    e = queue_get(q);
    assert_int_equal(idx(e), 2);
    queue_ack(e);
    close_broker(fx);
}

/* ---- priorities and exact redelivered flags after a clean stop ---- */

static void test_priorities_and_redelivered_after_clean_stop(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    wbuf_t w;
    wbuf_init(&w);
    queue_t *q = mkq(fx, "prio", args_of(&w, 1, "x-max-priority", 'l', (int64_t)5));
    wbuf_destroy(&w);
    int prios[] = {1, 9, 3, 3, 0, 5};
    for (int i = 0; i < 6; i++) publish(q, msg(i, prios[i], NULL));
    qentry_t *e = queue_get(q); /* 9 counts as 5, then 5: FIFO within the level */
    assert_int_equal(idx(e), 1);
    queue_requeue(&e, 1);
    sync_all(fx);
    restart(fx); /* clean: only message 1 was handed out */
    q = fx_findq(fx, "prio");
    int want[] = {1, 5, 2, 3, 0, 4};
    for (int i = 0; i < 6; i++) {
        e = queue_get(q);
        assert_non_null(e);
        assert_int_equal(idx(e), want[i]);
        assert_int_equal(e->redelivered, i == 0);
        queue_ack(e);
    }
    close_broker(fx);
}

/* ---- a deep backlog is paged, also across a crash ---- */

static void test_deep_backlog_pages(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *q = mkq(fx, "deep", none);
    int n = QUEUE_PAGE_HIGH + 5000;
    for (int i = 0; i < n; i++) {
        publish(q, msg(i, -1, NULL));
        if (i % 4096 == 0) queue_flush_all(fx->b);
    }
    assert_int_equal(queue_ready_count(q), n);
    assert_true(q->npaged >= 5000); /* the rest stays on disk */
    assert_true(q->nready <= QUEUE_PAGE_HIGH);
    sync_all(fx);
    restart(fx);
    q = fx_findq(fx, "deep");
    assert_int_equal(queue_ready_count(q), n);
    assert_true(q->nready <= QUEUE_PAGE_HIGH); /* recovery pages too */
    for (int i = 0; i < n; i++) {
        ack_next(q, i);
        if (i == n / 2) {
            sync_all(fx);
            restart(fx); /* half drained, part of it paged */
            q = fx_findq(fx, "deep");
            assert_int_equal(queue_ready_count(q), n - i - 1);
        }
    }
    assert_null(queue_get(q));
    close_broker(fx);
}

/* ---- a queue that is not stored spills its deep backlog to disk ---- */

static void test_transient_queue_spills(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *q = fx_queue(fx, "nd", 0, none, NULL); /* non-durable */
    int n = QUEUE_PAGE_HIGH + 5000;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < n; i++) {
            assert_int_equal(publish(q, msg(i, -1, NULL)), QP_DONE); /* nothing waits for a sync */
            if (i % 4096 == 0) queue_flush_all(fx->b);
        }
        queue_flush_all(fx->b);
        assert_int_equal(queue_ready_count(q), n);
        assert_true(q->npaged >= 5000); /* the rest is in the spill log */
        assert_true(q->nready <= QUEUE_PAGE_HIGH);
        assert_true(path_exists(q->spill_dir));
        for (int i = 0; i < n; i++) {
            qentry_t *e = queue_get(q);
            assert_non_null(e);
            assert_int_equal(idx(e), i);
            assert_int_equal(e->offset, -1); /* read back: in memory only */
            assert_false(e->redelivered);
            assert_true(e->m->persistent);
            queue_ack(e);
        }
        assert_null(queue_get(q));
        queue_maintain(q); /* drained: the spill log goes, and comes back with the next backlog */
        assert_null(q->data);
        assert_false(path_exists(q->spill_dir));
    }
    /* A backlog left at a stop goes with the queue. */
    for (int i = 0; i < n; i++) publish(q, msg(i, -1, NULL));
    queue_flush_all(fx->b);
    char *dir = xstrdup(q->spill_dir);
    assert_true(path_exists(dir));
    /* ... and one left by a crash at the next start. */
    char *orphan = xasprintf("%s/queues/00000000000000ab-spill", fx->dir);
    assert_int_equal(mkdir_p(orphan), 0);
    restart(fx);
    assert_null(fx_findq(fx, "nd"));
    assert_false(path_exists(dir));
    assert_false(path_exists(orphan));
    free(orphan);
    free(dir);
    close_broker(fx);
}

/* A spill log that cannot be opened keeps the backlog in memory, and is
 * tried again a while later. */
static void test_spill_log_open_fails_then_works(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *q = fx_queue(fx, "nd", 0, none, NULL);
    char *good = xstrdup(q->spill_dir), *file = xasprintf("%s/a-file", fx->dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    queue_set_spill_dir(q, xasprintf("%s/spill", file)); /* under a file: cannot be made */
    int n = QUEUE_PAGE_HIGH + 100;
    for (int i = 0; i < n; i++) assert_int_equal(publish(q, msg(i, -1, NULL)), QP_DONE);
    assert_int_equal(q->npaged, 0); /* all in memory */
    assert_null(q->data);
    assert_true(q->spill_retry_ms > 0);
    queue_set_spill_dir(q, good);
    publish(q, msg(n, -1, NULL));
    assert_null(q->data); /* not before the retry time */
    q->spill_retry_ms = 1;  /* (as if it had come) */
    for (int i = n + 1; i < n + 100; i++) publish(q, msg(i, -1, NULL));
    queue_flush_all(fx->b);
    assert_true(q->npaged > 0);
    for (int i = 0; i < n + 100; i++) ack_next(q, i);
    free(file);
    close_broker(fx);
}

/* A spill write that fails keeps the messages in memory, in order. */
static void test_transient_spill_write_fails(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *q = fx_queue(fx, "nd", 0, none, NULL);
    int n = QUEUE_PAGE_HIGH + 3000;
    for (int i = 0; i < QUEUE_PAGE_HIGH; i++) publish(q, msg(i, -1, NULL));
    queue_flush_all(fx->b);
    for (int i = QUEUE_PAGE_HIGH; i < n; i++) publish(q, msg(i, -1, NULL));
    assert_int_equal(q->npaged, 3000);
    st_fail(ENOSPC, 0, 1);
    io_ops.pwrite = st_fail_pwrite;
    queue_flush_all(fx->b);
    io_ops_reset();
    assert_int_equal(q->npaged, 0);
    assert_int_equal(queue_ready_count(q), n);
    for (int i = 0; i < n; i++) ack_next(q, i);
    assert_null(queue_get(q));
    close_broker(fx);
}

/* ---- a priority queue pages per level, strictly ---- */

#define PRIO_N (QUEUE_PAGE_HIGH + 30000)
static void count_peek(void *ctx, const queue_peek_msg_t *m)
{
    (void)m;
    (*(size_t *)ctx)++;
}
static int prio_of_i(int i) { return (i * 7 + i / 3) % 10; }

/* Index order of delivery: priority 9 first, FIFO within a level. */
static int *prio_order(int n)
{
    int *v = test_malloc((size_t)n * sizeof *v), k = 0;
    for (int p = 9; p >= 0; p--)
        for (int i = 0; i < n; i++)
            if (prio_of_i(i) == p) v[k++] = i;
    return v;
}

/* A broker with "pdeep" (x-max-priority 9) holding PRIO_N messages of
 * every level, all appended. */
static queue_t *prio_backlog(fx_t *fx)
{
    open_broker(fx);
    wbuf_t w;
    wbuf_init(&w);
    queue_t *q = mkq(fx, "pdeep", args_of(&w, 1, "x-max-priority", 'l', (int64_t)9));
    wbuf_destroy(&w);
    for (int i = 0; i < PRIO_N; i++) {
        publish(q, msg(i, prio_of_i(i), NULL));
        if (i % 4096 == 0) queue_flush_all(fx->b);
    }
    /* Records still being appended cannot be read back: a level on disk
     * counts from the end of the loop turn that appends it. */
    queue_flush_all(fx->b);
    return q;
}

static void test_priority_backlog_pages(void **state)
{
    fx_t *fx = *state;
    queue_t *q = prio_backlog(fx);
    assert_int_equal(queue_ready_count(q), PRIO_N);
    assert_true(q->npaged >= 30000); /* the rest stays on disk, every level */
    assert_true(q->nready <= QUEUE_PAGE_HIGH);
    for (int p = 0; p < 10; p++) assert_true(q->lv[p].npaged > 0);
    sync_all(fx);
    restart(fx);
    q = fx_findq(fx, "pdeep");
    assert_int_equal(queue_ready_count(q), PRIO_N);
    assert_true(q->nready <= QUEUE_PAGE_HIGH); /* recovery pages per level too */

    int *want = prio_order(PRIO_N);
    /* Every level 9 message first: most come back from the middle of the
     * paged ranges; memory stays bounded. */
    int k = 0, n9 = 0;
    for (int i = 0; i < PRIO_N; i++) n9 += prio_of_i(i) == 9;
    for (; k < n9; k++) {
        qentry_t *e = queue_get(q);
        assert_non_null(e);
        assert_int_equal(idx(e), want[k]);
        queue_ack(e);
        assert_true(q->nready <= QUEUE_PAGE_HIGH + QUEUE_PAGE_BATCH);
    }
    /* A new level 9 message waits behind nothing of a lower level; a new
     * level 0 one goes behind every level 0 message on disk. */
    publish(q, msg(PRIO_N, 9, NULL));
    publish(q, msg(PRIO_N + 1, 0, NULL));
    queue_flush_all(fx->b);
    qentry_t *e = queue_get(q);
    assert_int_equal(idx(e), PRIO_N);
    queue_ack(e);
    /* Peek lists each message once, taken back or not. */
    size_t peeked = 0;
    assert_int_equal(queue_peek(q, 2 * PRIO_N, count_peek, &peeked), (int)queue_ready_count(q));
    assert_int_equal(peeked, queue_ready_count(q));
    /* A snapshot now must not bring back the acked level 9 messages. */
    sync_all(fx);
    q->snap_size = INT64_MIN / 2;
    queue_maintain(q);
    sync_all(fx);
    restart(fx);
    q = fx_findq(fx, "pdeep");
    assert_int_equal(queue_ready_count(q), PRIO_N + 1 - n9);
    /* Held (unacked) messages survive a purge of the rest. */
    qentry_t *held[3];
    for (int j = 0; j < 3; j++) {
        held[j] = queue_get(q);
        assert_int_equal(idx(held[j]), want[k + j]);
    }
    assert_int_equal(queue_purge(q), PRIO_N + 1 - n9 - 3);
    queue_requeue(held, 3);
    sync_all(fx);
    restart(fx); /* the held ones are still there (the purge did not record them gone) */
    q = fx_findq(fx, "pdeep");
    assert_int_equal(queue_ready_count(q), 3);
    for (int j = 0; j < 3; j++) {
        e = queue_get(q);
        assert_int_equal(idx(e), want[k + j]);
        assert_true(e->redelivered);
        queue_ack(e);
    }
    assert_null(queue_get(q));
    test_free(want);
    close_broker(fx);
}

/* The rest of the levels in order, across a restart in the middle. */
static void test_priority_backlog_drains_in_order(void **state)
{
    fx_t *fx = *state;
    queue_t *q = prio_backlog(fx);
    int *want = prio_order(PRIO_N);
    for (int k = 0; k < PRIO_N; k++) {
        qentry_t *e = queue_get(q);
        assert_non_null(e);
        assert_int_equal(idx(e), want[k]);
        queue_ack(e);
        if (k == PRIO_N / 2) {
            sync_all(fx);
            restart(fx);
            q = fx_findq(fx, "pdeep");
            assert_int_equal(queue_ready_count(q), PRIO_N - k - 1);
        }
    }
    assert_null(queue_get(q));
    assert_int_equal(q->npaged, 0);
    test_free(want);
    close_broker(fx);
}

/* ---- a dead-letter copy's claim removes its original at start-up ---- */

static void test_claim_removes_original(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *src = mkq(fx, "src", none);
    queue_t *dst = mkq(fx, "dst", none);
    for (int i = 0; i < 3; i++) publish(src, msg(i, -1, NULL));
    sync_all(fx);
    /* As if a crash came after the copy of message 1 was stored and before
     * its source recorded the removal. */
    qmsg_t *c = msg(1, -1, NULL);
    c->origin_qid = queue_id(src);
    c->origin_off = 1;
    publish(dst, c);
    sync_all(fx);
    restart(fx);
    src = fx_findq(fx, "src");
    dst = fx_findq(fx, "dst");
    assert_int_equal(queue_ready_count(src), 2);
    assert_int_equal(queue_ready_count(dst), 1);
    ack_next(src, 0);
    ack_next(src, 2);
    sync_all(fx);
    restart(fx); /* the claim stays harmless once its original is gone */
    assert_int_equal(queue_ready_count(fx_findq(fx, "src")), 0);
    assert_int_equal(queue_ready_count(fx_findq(fx, "dst")), 1);
    close_broker(fx);
}

static void waiting_bit(void *ctx, const qentry_t *e) { *(int *)ctx |= 1 << idx(e); }

/* Claims on a ready message, on a waiting (delayed) one, and the same
 * original claimed by copies in two targets (a fan-out): each original
 * goes once, the others stay. */
static void test_claims_on_ready_and_waiting(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *src = mkq(fx, "src", none);
    queue_t *d1 = mkq(fx, "d1", none);
    queue_t *d2 = mkq(fx, "d2", none);
    int64_t due = clock_wall_ms() + 3600 * 1000;
    for (int i = 0; i < 6; i++) {
        qmsg_t *m = msg(i, -1, NULL);
        if (i >= 3) m->ready_at_ms = due; /* 3, 4, 5 wait */
        publish(src, m);
    }
    sync_all(fx);
    const struct { int off; queue_t *to; } claims[] = {{1, d1}, {1, d2}, {4, d1}};
    for (size_t k = 0; k < sizeof claims / sizeof claims[0]; k++) {
        qmsg_t *c = msg(claims[k].off, -1, NULL);
        c->origin_qid = queue_id(src);
        c->origin_off = claims[k].off;
        publish(claims[k].to, c);
    }
    sync_all(fx);
    restart(fx);
    src = fx_findq(fx, "src");
    assert_int_equal(queue_ready_count(src), 2);
    assert_int_equal(queue_delayed_count(src), 2);
    assert_int_equal(queue_ready_count(fx_findq(fx, "d1")), 2);
    assert_int_equal(queue_ready_count(fx_findq(fx, "d2")), 1);
    ack_next(src, 0);
    ack_next(src, 2);
    assert_null(queue_get(src));
    int waiting = 0; /* bit i: message i waits; 4 went with its claim */
    qwheel_each(&src->delayed, waiting_bit, &waiting);
    assert_int_equal(waiting, 1 << 3 | 1 << 5);
    close_broker(fx);
}

/* Deleting a dead-letter target while a move waits on its log: closing
 * the log ends the move, which released the last pin of the queue being
 * closed (a use after free, found by a SIGKILL test's cleanup). */
static void test_delete_target_with_move_in_flight(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *dst;
    queue_t *src = mk_src_dst(fx, -1, &dst);
    publish(src, msg(7, -1, NULL));
    sync_all(fx);
    qentry_t *e = queue_get(src);
    queue_reject(e);
    wait_ready(fx, dst, 1); /* the copy is queued for dst's log; the move waits for it */
    queue_flush_all(fx->b);
    vhost_queue_delete(fx->v, dst);
    sync_all(fx);
    restart(fx); /* the message went with the queue it was moved to */
    assert_int_equal(queue_ready_count(fx_findq(fx, "src")), 0);
    assert_null(fx_findq(fx, "dst"));
    close_broker(fx);
}

/* A stop while a rejected message waits for its own record to be durable
 * (the copy is not made yet): the message stays in its queue, redelivered
 * (a shutdown's queue_moved(e, -1) once recorded it as removed: lost). */
static void test_reject_cut_short_by_stop_keeps_message(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *src = mk_src_dst(fx, -1, NULL);
    publish(src, msg(1, -1, NULL)); /* not synced */
    queue_reject(queue_get(src));
    assert_int_equal(src->nmoving, 1);
    restart(fx);
    assert_int_equal(queue_ready_count(fx_findq(fx, "dst")), 0);
    src = fx_findq(fx, "src");
    assert_int_equal(queue_ready_count(src), 1);
    qentry_t *e = queue_get(src);
    assert_int_equal(idx(e), 1);
    assert_true(e->redelivered);
    queue_ack(e);
    close_broker(fx);
}

/* Rejected messages' copies are published together after
 * DEADLETTER_BATCH_MS, in order, in one loop turn (one append to the
 * target's log); the originals leave their queue only then. */
static void test_rejects_are_dead_lettered_in_one_batch(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *dst;
    queue_t *src = mk_src_dst(fx, 0, &dst);
    for (int i = 0; i < 6; i++) publish(src, msg(i, -1, NULL));
    sync_all(fx);
    qentry_t *e[6];
    for (int i = 0; i < 6; i++) e[i] = queue_get(src);
    int64_t t0 = clock_mono_ms();
    queue_reject(e[0]);
    queue_ack(e[1]);
    queue_requeue(&e[2], 1); /* past x-delivery-limit 0: dead-lettered too */
    queue_reject(e[3]);
    queue_ack(e[4]);
    queue_reject(e[5]);
    assert_int_equal(queue_ready_count(dst), 0); /* held for the batch */
    assert_int_equal(queue_unacked_count(src), 0);
    int64_t end = plog_end_offset(dst->data->log);
    while (queue_ready_count(dst) == 0) uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(clock_mono_ms() - t0 >= DEADLETTER_BATCH_MS - 1);
    assert_int_equal(queue_ready_count(dst), 4); /* all in the same loop turn */
    queue_flush_all(fx->b);
    assert_int_equal(plog_end_offset(dst->data->log), end + 4);
    const int want[4] = {0, 2, 3, 5};
    qentry_t *c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = queue_get(dst);
        assert_int_equal(dead_idx(c[i]), want[i]);
    }
    queue_requeue(c, 4);
    sync_all(fx);
    for (int spins = 0; spins < 1000 && src->nmoving; spins++) uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(src->nmoving, 0); /* the originals left once the copies were durable */
    sync_all(fx);
    restart(fx);
    assert_int_equal(queue_ready_count(fx_findq(fx, "src")), 0);
    assert_int_equal(queue_ready_count(fx_findq(fx, "dst")), 4);
    close_broker(fx);
}

/* A stop while rejected messages wait for their batch: nothing was copied,
 * so they are still in their queue after the restart (redelivered). */
static void test_held_rejects_stay_at_shutdown(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *src = mk_src_dst(fx, -1, NULL);
    publish(src, msg(1, -1, NULL));
    publish(src, msg(2, -1, NULL));
    sync_all(fx);
    queue_reject(queue_get(src));
    queue_reject(queue_get(src));
    restart(fx); /* before the batch timer */
    src = fx_findq(fx, "src");
    assert_int_equal(queue_ready_count(fx_findq(fx, "dst")), 0);
    assert_int_equal(queue_ready_count(src), 2);
    qentry_t *e = queue_get(src);
    assert_int_equal(idx(e), 1);
    assert_true(e->redelivered);
    queue_ack(e);
    /* The batch timer works again after the restart. */
    queue_reject(queue_get(src));
    wait_ready(fx, fx_findq(fx, "dst"), 1);
    close_broker(fx);
}

/* A queue deleted while its rejected messages wait for the batch: they are
 * dead-lettered first (not lost with the queue). */
static void test_delete_publishes_held_rejects(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *dst;
    queue_t *src = mk_src_dst(fx, -1, &dst);
    publish(src, msg(4, -1, NULL));
    sync_all(fx);
    queue_reject(queue_get(src));
    assert_int_equal(queue_ready_count(dst), 0);
    vhost_queue_delete(fx->v, src);
    assert_int_equal(queue_ready_count(dst), 1);
    sync_all(fx);
    restart(fx);
    assert_int_equal(queue_ready_count(fx_findq(fx, "dst")), 1);
    close_broker(fx);
}

/* DEADLETTER_BATCH_MAX held copies are published at once, without waiting
 * for the timer (a basic.nack multiple of many). */
static void test_full_batch_goes_at_once(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *dst;
    queue_t *src = mk_src_dst(fx, -1, &dst);
    for (int i = 0; i < DEADLETTER_BATCH_MAX + 1; i++) publish(src, msg(i, -1, NULL));
    sync_all(fx);
    for (int i = 0; i < DEADLETTER_BATCH_MAX - 1; i++) queue_reject(queue_get(src));
    assert_int_equal(queue_ready_count(dst), 0);
    queue_reject(queue_get(src));
    assert_int_equal(queue_ready_count(dst), DEADLETTER_BATCH_MAX);
    queue_reject(queue_get(src)); /* the next one starts a new batch */
    assert_int_equal(queue_ready_count(dst), DEADLETTER_BATCH_MAX);
    wait_ready(fx, dst, DEADLETTER_BATCH_MAX + 1);
    qentry_t *e = queue_get(dst);
    assert_int_equal(dead_idx(e), 0);
    queue_ack(e);
    close_broker(fx);
}

/* A message that already died in 70 other queues keeps every x-death
 * entry when it dies once more (a fixed array once dropped those past 64). */
static void test_long_x_death_history_is_kept(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *dst;
    queue_t *src = mk_src_dst(fx, -1, &dst);
    /* headers: x-death = 70 tables {queue: "q<i>", reason: "expired"} */
    wbuf_t h, raw;
    wbuf_init(&h);
    wbuf_init(&raw);
    ftable_put_name(&h, "x-death");
    size_t arr = ftable_put_array_begin(&h);
    for (int i = 0; i < 70; i++) {
        char qn[16];
        snprintf(qn, sizeof qn, "q%d", i);
        size_t t = ftable_put_table_begin(&h);
        ftable_put_name(&h, "queue");
        ftable_put_longstr(&h, qn, strlen(qn));
        ftable_put_name(&h, "reason");
        ftable_put_longstr(&h, "expired", 7);
        ftable_end(&h, t);
    }
    ftable_end(&h, arr);
    amqp_props_t p;
    memset(&p, 0, sizeof p);
    p.flags = PROP_HEADERS;
    p.headers = (amqp_bytes_t){h.p, (uint32_t)h.len};
    amqp_props_encode(&raw, &p);
    qmsg_t *m = qmsg_new(none, amqp_cstr("k"), (amqp_bytes_t){raw.p, (uint32_t)raw.len}, 0);
    publish(src, m);
    queue_reject(queue_get(src));
    wait_ready(fx, dst, 1);
    qentry_t *e = queue_get(dst);
    assert_non_null(e);
    assert_int_equal(amqp_props_decode(qmsg_props(e->m), &p), 0);
    fvalue_t v;
    assert_int_equal(ftable_get(p.headers, "x-death", &v), 1);
    ftable_iter_t it = {v.v.array};
    int n = 0;
    while (farray_next(&it, &v)) n++;
    assert_int_equal(n, 71);
    queue_ack(e);
    wbuf_destroy(&h);
    wbuf_destroy(&raw);
    close_broker(fx);
}

/* ---- de-duplication ---- */

static void test_dedup_window_survives_restart(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    wbuf_t w;
    wbuf_init(&w);
    amqp_bytes_t a = args_of(&w, 2, "x-message-deduplication", 't', 1, "x-cache-size", 'l', (int64_t)2);
    queue_t *q = mkq(fx, "dd", a);
    wbuf_destroy(&w);
    assert_int_equal(publish(q, msg(0, -1, "a")), QP_WAIT);
    assert_int_equal(publish(q, msg(1, -1, "a")), QP_DONE); /* duplicate: confirmed, not enqueued */
    assert_int_equal(publish(q, msg(2, -1, NULL)), QP_WAIT); /* no header: never a duplicate */
    assert_int_equal(queue_ready_count(q), 2);
    queue_ack(queue_get(q));
    assert_int_equal(publish(q, msg(3, -1, "a")), QP_DONE); /* the window outlives consumption */
    sync_all(fx);
    restart(fx);
    q = fx_findq(fx, "dd");
    assert_int_equal(publish(q, msg(4, -1, "a")), QP_DONE);
    assert_int_equal(publish(q, msg(5, -1, "b")), QP_WAIT);
    assert_int_equal(publish(q, msg(6, -1, "c")), QP_WAIT); /* a window of 2: "a" is forgotten */
    assert_int_equal(publish(q, msg(7, -1, "a")), QP_WAIT);
    assert_int_equal(queue_ready_count(q), 4);
    close_broker(fx);
}

/* Plugin mode (no window) with a backlog deep enough to page: a message on
 * disk still makes its value a duplicate, also after a restart; one read
 * back and acked, or purged from disk, frees its value. */
static void test_dedup_with_paged_backlog(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    wbuf_t w;
    wbuf_init(&w);
    amqp_bytes_t a = args_of(&w, 1, "x-message-deduplication", 't', 1);
    queue_t *q = mkq(fx, "ddeep", a);
    wbuf_destroy(&w);
    int n = QUEUE_PAGE_HIGH + 2000;
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(publish(q, msg(i, -1, key)), QP_WAIT);
        if (i % 4096 == 0) queue_flush_all(fx->b);
    }
    assert_true(q->npaged >= 2000);
    assert_int_equal(publish(q, msg(n, -1, "k0")), QP_DONE);         /* in memory */
    snprintf(key, sizeof key, "k%d", n - 1);
    assert_int_equal(publish(q, msg(n, -1, key)), QP_DONE);          /* on disk */
    sync_all(fx);
    restart(fx);
    q = fx_findq(fx, "ddeep");
    assert_true(q->npaged > 0);
    assert_int_equal(publish(q, msg(n, -1, key)), QP_DONE);          /* on disk after a restart */
    assert_int_equal(queue_ready_count(q), n);
    qentry_t *e = queue_get(q);
    assert_int_equal(idx(e), 0);
    queue_ack(e);
    assert_int_equal(publish(q, msg(n, -1, "k0")), QP_WAIT);         /* consumed: free again */
    assert_int_equal(queue_purge(q), (uint32_t)n);                    /* n - 1 old, 1 new */
    assert_int_equal(q->npaged, 0);
    assert_int_equal(publish(q, msg(n + 1, -1, key)), QP_WAIT);      /* purged from disk: free */
    assert_int_equal(publish(q, msg(n + 2, -1, "k7")), QP_WAIT);
    assert_int_equal(queue_ready_count(q), 2);
    close_broker(fx);
}

/* Publishes messages 0 .. n-1 with de-duplication values "<prefix><i>",
 * written as a loop would (every 4,096). */
static void publish_keyed(fx_t *fx, queue_t *q, char prefix, int n)
{
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%c%d", prefix, i);
        publish(q, msg(i, -1, key));
        if (i % 4096 == 0) queue_flush_all(fx->b);
    }
    queue_flush_all(fx->b);
}

/* A non-durable de-duplication queue spills too. Its values of records on
 * disk are kept by offset, so a second spill log goes on from the offsets
 * of the first: a message read back from the first (offset 0 there) and
 * still held keeps its value when the second log's backlog is purged. */
static void test_transient_dedup_queue_spills(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    wbuf_t w;
    wbuf_init(&w);
    queue_t *q = fx_queue(fx, "ndd", 0, args_of(&w, 1, "x-message-deduplication", 't', 1), NULL);
    wbuf_destroy(&w);
    int n = QUEUE_PAGE_HIGH + 2000;
    char key[32];
    publish_keyed(fx, q, 'k', n);
    assert_true(q->npaged >= 2000);
    assert_true(path_exists(q->spill_dir));
    snprintf(key, sizeof key, "k%d", n - 1);
    publish(q, msg(n, -1, key)); /* a duplicate of one in the spill log */
    assert_int_equal(queue_ready_count(q), n);
    qentry_t *held = NULL;
    for (int i = 0; i < n; i++) {
        qentry_t *e = queue_get(q);
        assert_int_equal(idx(e), i);
        if (i == QUEUE_PAGE_HIGH) held = e; /* the first paged: offset 0 of the first spill log */
        else queue_ack(e);
    }
    assert_int_equal(held->offset, -1);
    queue_maintain(q); /* nothing on disk: the spill log goes */
    assert_null(q->data);
    assert_true(q->spill_base >= 2000);
    publish_keyed(fx, q, 'r', n);
    assert_true(q->npaged >= 2000);
    assert_int_equal(partition_start_offset(q->data), q->spill_base); /* not 0 again */
    assert_int_equal(queue_purge(q), (uint32_t)n);
    snprintf(key, sizeof key, "k%d", QUEUE_PAGE_HIGH);
    publish(q, msg(n, -1, key)); /* still held: a duplicate */
    assert_int_equal(queue_ready_count(q), 0);
    queue_ack(held);
    publish(q, msg(n, -1, key)); /* acked: free again */
    assert_int_equal(queue_ready_count(q), 1);
    close_broker(fx);
}

/* ---- coalesced writes (queue_flush.c) ---- */

/* A loop turn's publishes are written in batches of at most 4,096 records;
 * when one batch fails, the ones before it stay stored and confirmed, that
 * one and the rest fail, and the queue goes on. */
static void test_flush_splits_batches(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *q = mkq(fx, "split", none);
    enum { N = 10000 };
    uint32_t *epoch = calloc(N, sizeof *epoch);
    int64_t *target = calloc(N, sizeof *target);
    for (int i = 0; i < N; i++) {
        qmsg_t *m = msg(i, -1, NULL);
        assert_int_equal(queue_publish(q, m, &epoch[i], &target[i]), QP_WAIT);
        qmsg_unref(m);
    }
    st_fail(ENOSPC, 1, 1); /* the first batch is written, the second is not */
    io_ops.pwrite = st_fail_pwrite;
    queue_flush_all(fx->b);
    io_ops_reset();
    assert_int_equal(sync_all_rc(fx->b, &fx->loop), 0);
    for (int i = 0; i < N; i++) assert_int_equal(queue_publish_state(q, epoch[i], target[i]), i < 4096 ? 1 : HE_STORAGE);
    /* the log stays usable: a new publish is stored */
    qmsg_t *m = msg(N, -1, NULL);
    assert_int_equal(queue_publish(q, m, &epoch[0], &target[0]), QP_WAIT);
    qmsg_unref(m);
    sync_all(fx);
    assert_int_equal(queue_publish_state(q, epoch[0], target[0]), 1);
    restart(fx); /* the stored ones come back in order (the failed ones were never stored) */
    q = fx_findq(fx, "split");
    assert_int_equal(queue_ready_count(q), 4097);
    for (int i = 0; i < 4096; i++) {
        qentry_t *e = queue_get(q);
        assert_int_equal(idx(e), i);
        queue_ack(e);
    }
    qentry_t *e = queue_get(q);
    assert_int_equal(idx(e), N);
    queue_ack(e);
    free(epoch);
    free(target);
    close_broker(fx);
}

/* ---- delayed messages on disk (queue_delay.c) ---- */

static void due_is(void *ctx, const qentry_t *e) { assert_int_equal(e->ready_at_ms, *(const int64_t *)ctx); }

/* The delay queues of these tests hold DELAY_MEM messages in memory
 * (delay.memory.bytes set from the size of one). */
#define DELAY_MEM 3000

/* Due time of delayed message i: the first DELAY_MEM wait in memory;
 * of the rest on disk, every other one shares one time (neighbours read
 * with one pread), the others are scattered (read alone). */
static int64_t due_of(int64_t now, int i)
{
    int j = i - DELAY_MEM;
    if (j < 0) return now + 5000;
    return now + 6000 + (j % 2 ? (int64_t)(j * 7919 % 997) : 500);
}

typedef struct {
    int64_t at;
    int i;
} due_idx_t;

static int cmp_due_idx(const void *a, const void *b)
{
    const due_idx_t *x = a, *y = b;
    return x->at != y->at ? (x->at < y->at ? -1 : 1) : x->i - y->i;
}

/* Publishes n delayed messages to dq, routes them all (queue_run_due at
 * `when`) into t and checks each arrived once, those from disk in due order
 * (ties by arrival). */
static void delay_round(fx_t *fx, queue_t *dq, queue_t *t, int n, int64_t now, int restart_between)
{
    for (int i = 0; i < n; i++) {
        qmsg_t *m = msg(i, -1, NULL);
        m->ready_at_ms = due_of(now, i);
        int rc = publish(dq, m);
        assert_true(rc == QP_WAIT);
    }
    sync_all(fx);
    assert_int_equal(queue_delayed_count(dq), n);
    if (!restart_between) { /* the budget holds the first DELAY_MEM */
        assert_int_equal(dq->delayed.n, DELAY_MEM);
        assert_int_equal(dq->dpaged.n, n - DELAY_MEM);
    }
    if (restart_between) {
        restart(fx); /* every one now waits on disk, its position unknown */
        exchange_t *dx = xregistry_find(vhost_exchanges(fx->v), amqp_cstr("dx"));
        dq = exchange_ext(dx);
        t = fx_findq(fx, "t");
        assert_int_equal(queue_delayed_count(dq), n);
    }
    int runs = 0;
    while (queue_delayed_count(dq)) {
        (void)queue_run_due(dq, now + 10000);
        runs++;
    }
    assert_true(runs >= 2); /* at most QUEUE_DELAY_RUN per run */
    assert_int_equal(dq->delayed.bytes, 0);
    sync_all(fx); /* the copies, then the removals */
    sync_all(fx);
    assert_int_equal(queue_ready_count(t), n);
    char *seen = calloc((size_t)n, 1);
    due_idx_t *want = calloc((size_t)n, sizeof *want);
    int nwant = 0, k = 0;
    for (int i = restart_between ? 0 : DELAY_MEM; i < n; i++) want[nwant++] = (due_idx_t){due_of(now, i), i};
    qsort(want, (size_t)nwant, sizeof *want, cmp_due_idx);
    qentry_t *e;
    while ((e = queue_get(t))) {
        int i = idx(e);
        assert_true(i >= 0 && i < n && !seen[i]);
        seen[i] = 1;
        if (i >= DELAY_MEM || restart_between) assert_int_equal(i, want[k++].i);
        queue_ack(e);
    }
    assert_int_equal(k, nwant);
    free(seen);
    free(want);
}

/* A broker whose delay queues hold DELAY_MEM messages like msg()'s in memory. */
static void open_broker_delay_budget(fx_t *fx)
{
    fx_delay_memory_bytes = 0;
    for (int i = 0; i < DELAY_MEM; i++) { /* (keys grow with i) */
        qentry_t e = {.m = msg(i, -1, NULL)};
        fx_delay_memory_bytes += (int64_t)queue_entry_mem(&e);
        qmsg_unref(e.m);
    }
    open_broker(fx);
}

static queue_t *delay_setup(fx_t *fx, queue_t **t)
{
    exchange_t *dx;
    assert_int_equal(vhost_exchange_declare(fx->v, amqp_cstr("dx"), EX_FANOUT, EXF_DURABLE | EXF_DELAYED, none, &dx),
                     0);
    *t = mkq(fx, "t", none);
    assert_int_equal(vhost_bind(fx->v, dx, (xdest_t){XDEST_QUEUE, *t}, none, none), 0);
    return exchange_ext(dx);
}

static void test_delayed_on_disk(void **state)
{
    fx_t *fx = *state;
    open_broker_delay_budget(fx);
    queue_t *t;
    queue_t *dq = delay_setup(fx, &t);
    int64_t now = clock_wall_ms();
    delay_round(fx, dq, t, DELAY_MEM + 20000, now, 0);
    sync_all(fx);
    delay_round(fx, exchange_ext(xregistry_find(vhost_exchanges(fx->v), amqp_cstr("dx"))), fx_findq(fx, "t"), 30000,
                now, 1);
    close_broker(fx);
    fx_delay_memory_bytes = -1;
}

/* Runs q's due passes at `at` as the vhost would: again while it answers
 * that more is due by then (QUEUE_DUE_RUN per pass). */
static void run_due_at(queue_t *q, int64_t at)
{
    int64_t t;
    int passes = 0;
    do {
        t = queue_run_due(q, at);
        assert_true(++passes < 1000);
    } while (t && t <= at);
}

/* Once the memory budget has room, the soonest due on disk come back to
 * memory before they are due. */
static void test_delayed_read_ahead(void **state)
{
    fx_t *fx = *state;
    open_broker_delay_budget(fx);
    queue_t *t;
    queue_t *dq = delay_setup(fx, &t);
    int64_t now = clock_wall_ms();
    int n = 3 * DELAY_MEM;
    for (int i = 0; i < n; i++) { /* the first DELAY_MEM due at +1 s, the rest at +2 s, +3 s */
        qmsg_t *m = msg(i, -1, NULL);
        m->ready_at_ms = now + 1000 + (i / DELAY_MEM) * 1000;
        assert_int_equal(publish(dq, m), QP_WAIT);
    }
    sync_all(fx);
    assert_int_equal(dq->delayed.n, DELAY_MEM);
    assert_int_equal(dq->dpaged.n, n - DELAY_MEM);
    run_due_at(dq, now + 500); /* nothing due, the budget full: nothing read */
    assert_int_equal(dq->delayed.n, DELAY_MEM);
    run_due_at(dq, now + 1000); /* the first third routed, the next read ahead */
    assert_int_equal(queue_delayed_count(dq), n - DELAY_MEM);
    assert_true(dq->delayed.n >= DELAY_MEM / 2);
    assert_true(dq->delayed.bytes <= (uint64_t)fx_delay_memory_bytes + 2 * sizeof(qentry_t) * DELAY_MEM);
    int64_t due = now + 2000; /* the soonest: all of the second third */
    qwheel_each(&dq->delayed, due_is, &due);
    sync_all(fx);
    sync_all(fx);
    assert_int_equal(queue_ready_count(t), DELAY_MEM);
    /* After a restart (SIGKILL: 24_amqp_retry_delay_test.py) every
     * pending one comes back once, from disk. */
    restart(fx);
    dq = exchange_ext(xregistry_find(vhost_exchanges(fx->v), amqp_cstr("dx")));
    t = fx_findq(fx, "t");
    assert_int_equal(queue_delayed_count(dq), n - DELAY_MEM);
    while (queue_delayed_count(dq)) (void)queue_run_due(dq, now + 3000);
    sync_all(fx);
    sync_all(fx);
    assert_int_equal(queue_ready_count(t), n);
    char *seen = calloc((size_t)n, 1);
    qentry_t *e;
    while ((e = queue_get(t))) {
        int i = idx(e);
        assert_true(i >= 0 && i < n && !seen[i]);
        seen[i] = 1;
        queue_ack(e);
    }
    free(seen);
    close_broker(fx);
    fx_delay_memory_bytes = -1;
}

/* A queue that is not stored keeps its delayed messages past the budget in
 * its spill log, transient ones too, and they come back once each, in due
 * order; then the spill log goes. */
static void test_delayed_spill(void **state)
{
    fx_t *fx = *state;
    open_broker_delay_budget(fx);
    queue_t *q = fx_queue(fx, "nd", 0, none, NULL);
    exchange_t *dx; /* a message still routed to q by its exchange when due */
    assert_int_equal(vhost_exchange_declare(fx->v, amqp_cstr("dx"), EX_FANOUT, EXF_DELAYED, none, &dx), 0);
    assert_int_equal(vhost_bind(fx->v, dx, (xdest_t){XDEST_QUEUE, q}, none, none), 0);
    int n = DELAY_MEM + 5000;
    int64_t now = clock_wall_ms();
    for (int i = 0; i < n; i++) { /* due in reverse order of publication */
        qmsg_t *m0 = msg(i, -1, NULL);
        qmsg_t *m = qmsg_new(amqp_cstr("dx"), qmsg_key(m0), qmsg_props(m0), 0);
        qmsg_unref(m0);
        m->persistent = i % 2;
        m->ready_at_ms = now + 1000 + (n - i);
        assert_int_equal(publish(q, m), QP_DONE);
    }
    queue_flush_all(fx->b);
    assert_true(q->delayed.n > DELAY_MEM / 2); /* up to the budget in memory */
    assert_true(q->dpaged.n >= 5000);         /* the rest in the spill log */
    assert_int_equal(q->delayed.n + q->dpaged.n, n);
    assert_true(path_exists(q->spill_dir));
    queue_maintain(q); /* still waited for: the spill log stays */
    assert_true(path_exists(q->spill_dir));
    (void)queue_run_due(q, now + 500); /* nothing due */
    assert_int_equal(queue_ready_count(q), 0);
    for (int64_t t = now + 1000; t <= now + 1000 + n; t++) { /* one falls due each ms */
        (void)queue_run_due(q, t);
        if (t % 256 == 0) queue_flush_all(fx->b);
    }
    assert_int_equal(queue_ready_count(q), n);
    for (int i = n - 1; i >= 0; i--) {
        qentry_t *e = queue_get(q);
        assert_non_null(e);
        assert_int_equal(idx(e), i);
        assert_int_equal(e->offset, -1);
        assert_int_equal(e->m->persistent, i % 2);
        queue_ack(e);
    }
    queue_maintain(q);
    assert_null(q->data);
    assert_false(path_exists(q->spill_dir));
    close_broker(fx);
    fx_delay_memory_bytes = -1;
}

/* A durable queue keeps transient delayed messages past the budget on disk
 * too, flagged: a restart drops them and keeps the persistent ones. */
static void test_transient_delayed_on_disk(void **state)
{
    fx_t *fx = *state;
    open_broker_delay_budget(fx);
    queue_t *q = mkq(fx, "d", none);
    int n = DELAY_MEM + 4000, persistent = 0;
    int64_t now = clock_wall_ms();
    for (int i = 0; i < n; i++) {
        qmsg_t *m = msg(i, -1, NULL);
        m->persistent = i % 4 == 0;
        persistent += m->persistent;
        m->ready_at_ms = now + 60000;
        assert_int_equal(publish(q, m), m->persistent ? QP_WAIT : QP_DONE);
    }
    queue_flush_all(fx->b);
    assert_true(q->dpaged.n >= 4000); /* transient ones among them */
    sync_all(fx);
    restart(fx);
    q = fx_findq(fx, "d");
    assert_int_equal(queue_delayed_count(q), persistent);
    close_broker(fx);
    fx_delay_memory_bytes = -1;
}

/* A non-durable priority queue spills per level and stays strict, also
 * with a second spill log whose offsets start over. */
static void test_transient_priority_queue_spills(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    wbuf_t w;
    wbuf_init(&w);
    queue_t *q = fx_queue(fx, "ndp", 0, args_of(&w, 1, "x-max-priority", 'l', (int64_t)9), NULL);
    wbuf_destroy(&w);
    int *want = prio_order(PRIO_N);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < PRIO_N; i++) {
            publish(q, msg(i, prio_of_i(i), NULL));
            if (i % 4096 == 0) queue_flush_all(fx->b);
        }
        queue_flush_all(fx->b);
        assert_true(q->npaged >= 30000);
        for (int k = 0; k < PRIO_N; k++) {
            qentry_t *e = queue_get(q);
            assert_non_null(e);
            assert_int_equal(idx(e), want[k]);
            queue_ack(e);
        }
        assert_null(queue_get(q));
        queue_maintain(q);
        assert_null(q->data);
    }
    test_free(want);
    close_broker(fx);
}

/* ---- messages waiting for a retry wait on disk past the budget ---- */

enum { RETRY_N = 60 };
static int all_ready(void *ctx) { return queue_ready_count(ctx) >= RETRY_N; }
static int one_ready(void *ctx) { return queue_ready_count(ctx) >= 1; }

/* Waits until q's RETRY_N messages are back from their retry wait, then
 * takes each once: with its delivery count, redelivered (and only in
 * memory when memory_only: a non-durable queue's). */
static void take_retried(fx_t *fx, queue_t *q, int memory_only)
{
    fx_run_until(fx, all_ready, q, 10000);
    assert_int_equal(queue_ready_count(q), RETRY_N);
    int seen[RETRY_N] = {0};
    for (int i = 0; i < RETRY_N; i++) {
        qentry_t *e = queue_get(q);
        assert_non_null(e);
        assert_int_equal(e->returns, 1); /* the delivery count came back with it */
        assert_true(e->redelivered);
        if (memory_only) assert_int_equal(e->offset, -1);
        seen[idx(e)]++;
        queue_ack(e);
    }
    for (int i = 0; i < RETRY_N; i++) assert_int_equal(seen[i], 1);
}

static void test_retry_waits_on_disk(void **state)
{
    fx_t *fx = *state;
    enum { N = RETRY_N };
    fx_delay_memory_bytes = 2048; /* a few entries */
    open_broker(fx);
    wbuf_t w;
    wbuf_init(&w);
    queue_t *q = mkq(fx, "rq", args_of(&w, 1, "x-retry-backoff", 'S', "1500ms"));
    for (int i = 0; i < N; i++) publish(q, msg(i, -1, NULL));
    sync_all(fx);
    qentry_t *held[N];
    for (int i = 0; i < N; i++) held[i] = queue_get(q);
    queue_requeue(held, N); /* every one waits 1.5 s for its second attempt */
    assert_int_equal(queue_ready_count(q), 0);
    assert_int_equal(queue_delayed_count(q), N);
    assert_true(q->dpaged.n >= N / 2); /* past the budget: on disk, 32 bytes each */
    assert_true(q->delayed.bytes <= 2048 + 512);
    /* A snapshot while they wait on disk keeps their counts and times. */
    sync_all(fx);
    q->snap_size = INT64_MIN / 2;
    queue_maintain(q);
    assert_true(q->snap_offset >= 0); /* written */
    sync_all(fx);
    restart(fx);
    q = fx_findq(fx, "rq");
    assert_int_equal(queue_ready_count(q), 0); /* still waiting */
    assert_int_equal(queue_delayed_count(q), N);
    assert_true(q->dpaged.n >= N / 2);
    take_retried(fx, q, 0);
    sync_all(fx);
    restart(fx);
    assert_int_equal(queue_ready_count(fx_findq(fx, "rq")), 0);
    assert_int_equal(queue_delayed_count(fx_findq(fx, "rq")), 0);
    wbuf_destroy(&w);
    close_broker(fx);
    fx_delay_memory_bytes = -1;
}

/* A broker with a budget of a few entries and a non-durable queue "nrq"
 * (x-retry-backoff 300ms) whose RETRY_N messages were all handed out and
 * given back: each waits 300 ms for its second attempt, not written yet. */
static queue_t *nacked_non_durable(fx_t *fx)
{
    fx_delay_memory_bytes = 2048;
    open_broker(fx);
    wbuf_t w;
    wbuf_init(&w);
    queue_t *q = fx_queue(fx, "nrq", 0, args_of(&w, 1, "x-retry-backoff", 'S', "300ms"), NULL);
    wbuf_destroy(&w);
    for (int i = 0; i < RETRY_N; i++) assert_int_equal(publish(q, msg(i, -1, NULL)), QP_DONE);
    qentry_t *held[RETRY_N];
    for (int i = 0; i < RETRY_N; i++) held[i] = queue_get(q);
    queue_requeue(held, RETRY_N);
    assert_int_equal(queue_ready_count(q), 0);
    return q;
}

/* A non-durable queue's messages waiting for a retry wait in its spill log
 * past the budget, and come back once each with their delivery counts. */
static void test_retry_waits_in_spill_log(void **state)
{
    fx_t *fx = *state;
    enum { N = RETRY_N };
    queue_t *q = nacked_non_durable(fx);
    queue_flush_all(fx->b);
    assert_int_equal(queue_delayed_count(q), N);
    assert_true(q->dpaged.n >= N / 2); /* past the budget: in the spill log, 32 bytes each */
    assert_true(q->delayed.bytes <= 2048 + 512);
    assert_true(path_exists(q->spill_dir));
    take_retried(fx, q, 1);
    queue_maintain(q);
    assert_false(path_exists(q->spill_dir));
    close_broker(fx);
    fx_delay_memory_bytes = -1;
}

/* ... and when their spill write fails, they wait in memory with their
 * counts. */
static void test_retry_spill_write_fails(void **state)
{
    fx_t *fx = *state;
    enum { N = RETRY_N };
    queue_t *q = nacked_non_durable(fx);
    st_fail(ENOSPC, 0, 1);
    io_ops.pwrite = st_fail_pwrite;
    queue_flush_all(fx->b);
    io_ops_reset();
    assert_int_equal(q->dpaged.n, 0);
    assert_int_equal(queue_delayed_count(q), N); /* all waiting, in memory */
    take_retried(fx, q, 1);
    close_broker(fx);
    fx_delay_memory_bytes = -1;
}

/* A message published through a delayed exchange waits in its queue; a
 * snapshot taken while it waits records it by its due time alone: after a
 * restart it still waits, and is not flagged redelivered (it never was
 * delivered). */
static void test_delayed_message_in_a_snapshot(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *t;
    (void)delay_setup(fx, &t);
    exchange_t *dx = xregistry_find(vhost_exchanges(fx->v), amqp_cstr("dx"));
    wbuf_t h;
    wbuf_init(&h);
    ftable_put_name(&h, "x-delay");
    ftable_put_i64(&h, 1500);
    qmsg_t *m = fx_msg(0, -1, (amqp_bytes_t){h.p, (uint32_t)h.len}, NULL, 0);
    qmsg_t *dm = qmsg_new(amqp_cstr("dx"), qmsg_key(m), qmsg_props(m), 0);
    dm->persistent = 1;
    qmsg_unref(m);
    xroute_t route = {0};
    assert_int_equal(vhost_route_publish(fx->v, dx, dm, (amqp_bytes_t){h.p, (uint32_t)h.len}, &route), 0);
    assert_int_equal(route.n, 1);
    assert_ptr_equal(route.q[0], t); /* stored once, in the queue */
    assert_true(dm->ready_at_ms > clock_wall_ms() + 1000);
    xroute_destroy(&route);
    publish(t, dm);
    for (int i = 1; i <= 2; i++) { /* two state records, so that a snapshot is due */
        publish(t, msg(i, -1, NULL));
        sync_all(fx);
        queue_ack(queue_get(t));
        sync_all(fx);
    }
    assert_int_equal(queue_delayed_count(t), 1);
    t->snap_size = INT64_MIN / 2;
    queue_maintain(t);
    assert_true(t->snap_offset >= 0); /* written */
    /* Its due time is in its record: the snapshot lists its offset only
     * (end, mark, one range and a count of ranges: 5 values). */
    assert_int_equal(t->snap_len, 5 * 8);
    sync_all(fx);
    queue_maintain(t); /* the state before the snapshot goes */
    assert_true(t->snap_offset < 0);
    /* The next one is due when the log has grown by 8 MiB since, or by
     * twice the last snapshot if that is more. */
    int64_t size = partition_size_bytes(t->state);
    t->snap_len = 6 << 20;
    t->snap_size = size - (10 << 20);
    queue_maintain(t);
    assert_true(t->snap_offset < 0); /* 10 MiB < 12 MiB */
    t->snap_size = size - (13 << 20);
    queue_maintain(t);
    assert_true(t->snap_offset >= 0);
    sync_all(fx);
    restart(fx);
    t = fx_findq(fx, "t");
    assert_int_equal(queue_ready_count(t), 0);
    assert_int_equal(queue_delayed_count(t), 1);
    fx_run_until(fx, one_ready, t, 10000);
    qentry_t *e = queue_get(t);
    assert_non_null(e);
    assert_false(e->redelivered);
    assert_int_equal(e->returns, 0);
    queue_ack(e);
    wbuf_destroy(&h);
    close_broker(fx);
}

/* A delayed message still waiting keeps the data segment it is in, however
 * much came after it and was acked; once it is gone, the segment goes at
 * the next maintenance. */
static void test_waiting_message_keeps_its_segment(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *q = mkq(fx, "seg", none);
    qmsg_t *m = msg(0, -1, NULL);
    m->ready_at_ms = clock_wall_ms() + 3600000;
    publish(q, m);
    enum { BODY = 100000, N = 800 }; /* 80 MB: past one 64 MiB segment */
    uint8_t *body = test_calloc(1, BODY);
    for (int i = 1; i <= N; i++) {
        publish(q, fx_msg(i, -1, none, body, BODY));
        if (i % 50 == 0) queue_flush_all(fx->b);
    }
    test_free(body);
    sync_all(fx);
    for (int i = 1; i <= N; i++) queue_ack(queue_get(q));
    sync_all(fx);
    assert_int_equal(queue_delayed_count(q), 1);
    assert_true(plog_drop_boundary(q->data->log) > 0); /* two segments or more */
    queue_maintain(q);
    sync_all(fx);
    queue_maintain(q);
    assert_int_equal(partition_start_offset(q->data), 0); /* kept for the waiting one */
    restart(fx);
    q = fx_findq(fx, "seg");
    assert_int_equal(queue_delayed_count(q), 1);
    assert_int_equal(queue_purge(q), 1);
    sync_all(fx);
    queue_maintain(q);
    sync_all(fx);
    queue_maintain(q);
    assert_true(partition_start_offset(q->data) > 0); /* nothing live in it now */
    close_broker(fx);
}

/* Messages from a delayed exchange that fall due in a queue nobody
 * consumes join its backlog on disk past the paging threshold, as
 * published ones do, and come back in full. */
static int none_delayed(void *ctx) { return queue_delayed_count(ctx) == 0; }

static void test_due_delayed_messages_page(void **state)
{
    fx_t *fx = *state;
    enum { N = QUEUE_PAGE_HIGH + 3000 };
    open_broker(fx);
    queue_t *q = mkq(fx, "dp", none);
    int64_t due = clock_wall_ms() + 200;
    for (int i = 0; i < N; i++) {
        qmsg_t *m = msg(i, -1, NULL);
        m->ready_at_ms = due + i % 50;
        publish(q, m);
    }
    sync_all(fx);
    fx_run_until(fx, none_delayed, q, 10000);
    assert_int_equal(queue_delayed_count(q), 0);
    assert_true(q->npaged >= 3000); /* past the threshold: on disk */
    assert_true(q->nready <= QUEUE_PAGE_HIGH);
    static uint8_t seen[N];
    memset(seen, 0, sizeof seen);
    qentry_t *e;
    int n = 0;
    while ((e = queue_get(q))) {
        assert_int_equal(seen[idx(e)]++, 0);
        queue_ack(e);
        n++;
    }
    assert_int_equal(n, N);
    close_broker(fx);
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranges),
        cmocka_unit_test_setup_teardown(test_returns_and_retry_times_survive_a_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_records_of_a_turn_are_one_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priorities_and_redelivered_after_clean_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_backlog_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transient_queue_spills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transient_spill_write_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spill_log_open_fails_then_works, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delayed_spill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transient_delayed_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority_backlog_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority_backlog_drains_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_removes_original, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claims_on_ready_and_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_target_with_move_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject_cut_short_by_stop_keeps_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_are_dead_lettered_in_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_rejects_stay_at_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_publishes_held_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_batch_goes_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_x_death_history_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_window_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_with_paged_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transient_dedup_queue_spills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delayed_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_waits_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_waits_in_spill_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transient_priority_queue_spills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_spill_write_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_message_keeps_its_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delayed_message_in_a_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_due_delayed_messages_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delayed_read_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_splits_batches, setup, teardown),
    };
    /* Twice: messages and entries from malloc (a broker holding little),
     * then all from base/slab (one holding more than 1 MiB). */
    int failed = cmocka_run_group_tests_name("malloc", tests, NULL, NULL);
    queue_slab_from(0);
    return failed + cmocka_run_group_tests_name("slab", tests, NULL, NULL);
}
