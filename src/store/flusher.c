/* Group commit over libuv's worker pool. Modes and guarantees in flusher.h. */
#include "store/flusher.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <stdlib.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/plog_int.h"

#define FLUSHER_DIRTY 1u    /* in f->dirty */
#define FLUSHER_IN_ROUND 2u /* in the in-flight round */

typedef struct round round_t;

/* One log of a round: synced by a worker of its own, so the logs of a
 * round sync at once and each one's waiters go as soon as it is durable
 * (one after the other, a publish's confirm waited for the state log's
 * fdatasync of the acks too). */
typedef struct {
    uv_work_t work;
    round_t *r;
    plog_t *log;      /* NULL once forgotten */
    plog_sync_t sync;
    int64_t sync_ns;  /* how long plog_sync_run took (written by the worker, read in item_done) */
} round_item_t;

struct round {
    flusher_t *f;
    round_item_t *items;
    int n;
    int left; /* items whose sync has not completed */
};

struct flusher {
    uv_loop_t *loop;
    flush_mode_t mode;
    int interval_ms;
    flusher_cb cb;
    void *ctx;
    plog_t **dirty;     /* logs marked dirty, each once (FLUSHER_DIRTY) */
    int ndirty, cap;
    round_t *round;     /* in flight, or NULL */
    uv_idle_t idle;     /* starts a round (FLUSH_ALWAYS) */
    uv_timer_t timer;   /* starts a round (FLUSH_INTERVAL) */
    int open_handles;   /* handles not yet closed */
    int freeing;        /* flusher_free called */
    uint64_t rounds;
    histo_t sync_histo;     /* plog_sync_run durations, one per log per round (loop only) */
    uint64_t last_start_ns; /* uv_hrtime() when the last round started */
    uint64_t gap_ns;        /* FLUSH_ALWAYS: least time between round starts, 0 none */
    int tfd;                /* timerfd that ends a gap (libuv timers count whole ms) */
    uv_poll_t tpoll;        /* watches tfd */
    int tarmed;             /* tfd is set */
};

static void start_round(flusher_t *f);
static void on_gap(uv_poll_t *h, int status, int events);

static void maybe_release(flusher_t *f)
{
    if (f->freeing && f->open_handles == 0 && !f->round) {
        close(f->tfd);
        free(f->dirty);
        free(f);
    }
}

static void on_idle(uv_idle_t *h)
{
    flusher_t *f = h->data;
    uv_idle_stop(&f->idle);
    if (!f->round) start_round(f);
}

static void on_timer(uv_timer_t *h)
{
    flusher_t *f = h->data;
    if (!f->round) start_round(f);
}

flusher_t *flusher_new(uv_loop_t *loop, flush_mode_t mode, int interval_ms, flusher_cb cb, void *ctx)
{
    flusher_t *f = xcalloc(1, sizeof *f);
    f->loop = loop;
    f->mode = mode;
    f->interval_ms = interval_ms > 0 ? interval_ms : 1;
    f->cb = cb;
    f->ctx = ctx;
    uv_idle_init(loop, &f->idle);
    f->idle.data = f;
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    f->open_handles = 2;
    f->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (f->tfd >= 0) {
        uv_poll_init(loop, &f->tpoll, f->tfd);
        f->tpoll.data = f;
        uv_poll_start(&f->tpoll, UV_READABLE, on_gap);
        uv_unref((uv_handle_t *)&f->tpoll);
        f->open_handles++;
    } else {
        LOG_W("store: timerfd_create: %s; sync rounds run back to back", strerror(errno));
    }
    if (mode == FLUSH_INTERVAL) {
        uv_timer_start(&f->timer, on_timer, (uint64_t)f->interval_ms, (uint64_t)f->interval_ms);
        uv_unref((uv_handle_t *)&f->timer); /* a periodic flush alone does not keep the loop alive */
    }
    return f;
}

void flusher_mark_dirty(flusher_t *f, plog_t *log)
{
    if (f->mode != FLUSH_ALWAYS) plog_mark_durable(log);
    if (f->mode == FLUSH_NEVER || (log->flush_state & FLUSHER_DIRTY)) return;
    if (f->ndirty == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->dirty = xrealloc(f->dirty, (size_t)f->cap * sizeof *f->dirty);
    }
    f->dirty[f->ndirty++] = log;
    log->flush_state |= FLUSHER_DIRTY;
    if (f->mode == FLUSH_ALWAYS && !f->round) uv_idle_start(&f->idle, on_idle);
}

void flusher_forget(flusher_t *f, plog_t *log)
{
    if (log->flush_state & FLUSHER_DIRTY) {
        for (int i = 0; i < f->ndirty; i++) {
            if (f->dirty[i] == log) {
                f->dirty[i] = f->dirty[--f->ndirty];
                break;
            }
        }
    }
    if ((log->flush_state & FLUSHER_IN_ROUND) && f->round) {
        for (int i = 0; i < f->round->n; i++)
            if (f->round->items[i].log == log) f->round->items[i].log = NULL;
    }
    log->flush_state = 0;
}

static void item_work(uv_work_t *w)
{
    round_item_t *it = w->data;
    uint64_t t0 = uv_hrtime();
    plog_sync_run(&it->sync);
    it->sync_ns = (int64_t)(uv_hrtime() - t0);
}

/* One log of the round is synced. The round ends with its last log, and
 * the next one starts then: one round in flight at a time. */
static void item_done(uv_work_t *w, int status)
{
    round_item_t *it = w->data;
    round_t *r = it->r;
    flusher_t *f = r->f;
    (void)status; /* queued work cannot be cancelled by us: always 0 */
    /* The worker's timing becomes visible here (uv_queue_work orders the
     * work callback before this one): folded in on the loop, no atomics. */
    histo_observe(&f->sync_histo, it->sync_ns);
    if (!it->log || f->freeing) {
        plog_sync_discard(&it->sync);
    } else {
        it->log->flush_state &= ~FLUSHER_IN_ROUND;
        int rc = plog_sync_end(it->log, &it->sync);
        /* A round may cover only part of a log (fd limit): go on. */
        if (!rc && plog_needs_sync(it->log)) flusher_mark_dirty(f, it->log);
        plog_t *log = it->log;
        it->log = NULL; /* done: forgetting the log now is no business of this round */
        f->cb(f->ctx, log, rc);
    }
    if (--r->left) return;
    f->round = NULL;
    free(r->items);
    free(r);
    if (f->freeing) {
        maybe_release(f);
        return;
    }
    if (f->mode == FLUSH_ALWAYS && f->ndirty) start_round(f);
}

static void on_gap(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    flusher_t *f = h->data;
    uint64_t expirations;
    ssize_t n = read(f->tfd, &expirations, sizeof expirations); /* drains it; EAGAIN is fine */
    (void)n;
    f->tarmed = 0;
    uv_unref((uv_handle_t *)&f->tpoll);
    if (!f->round) start_round(f);
}

static void start_round(flusher_t *f)
{
    if (!f->ndirty) return;
    uint64_t now = uv_hrtime();
    if (f->mode == FLUSH_ALWAYS && f->gap_ns && f->tfd >= 0 && now - f->last_start_ns < f->gap_ns) {
        /* Too soon after the last round: the dirty logs wait for the rest
         * of the gap and then share one round. */
        if (!f->tarmed) {
            uint64_t wait = f->gap_ns - (now - f->last_start_ns);
            struct itimerspec its = {{0, 0}, {(time_t)(wait / 1000000000), (long)(wait % 1000000000)}};
            timerfd_settime(f->tfd, 0, &its, NULL);
            f->tarmed = 1;
            uv_ref((uv_handle_t *)&f->tpoll); /* a postponed round keeps the loop alive */
        }
        return;
    }
    f->last_start_ns = now;
    round_t *r = xcalloc(1, sizeof *r);
    r->f = f;
    r->items = xmalloc((size_t)f->ndirty * sizeof *r->items);
    /* The dirty set is taken whole; logs marked during the round form the
     * next one. Callbacks run after the set is cleared, so a cb may mark. */
    int n = f->ndirty;
    plog_t **logs = f->dirty;
    f->dirty = NULL;
    f->ndirty = f->cap = 0;
    for (int i = 0; i < n; i++) {
        plog_t *log = logs[i];
        log->flush_state &= ~FLUSHER_DIRTY;
        round_item_t *it = &r->items[r->n];
        int rc = plog_sync_begin(log, &it->sync);
        if (rc > 0) {
            it->r = r;
            it->log = log;
            log->flush_state |= FLUSHER_IN_ROUND;
            r->n++;
        } else {
            /* Nothing to sync (already covered) or the log failed. */
            logs[i] = NULL;
            f->cb(f->ctx, log, rc);
        }
    }
    free(logs);
    if (r->n == 0) {
        free(r->items);
        free(r);
        return;
    }
    f->round = r;
    f->rounds++;
    r->left = r->n;
    for (int i = 0, nitems = r->n; i < nitems; i++) { /* (an inline last item_done frees r) */
        round_item_t *it = &r->items[i];
        it->work.data = it;
        int rc = uv_queue_work(f->loop, &it->work, item_work, item_done);
        if (rc) {
            /* Cannot happen with a valid loop; fail safe: sync inline. */
            LOG_E("store: uv_queue_work: %s", uv_strerror(rc));
            item_work(&it->work);
            item_done(&it->work, 0);
        }
    }
}

static void on_close(uv_handle_t *h)
{
    flusher_t *f = h->data;
    f->open_handles--;
    maybe_release(f);
}

void flusher_free(flusher_t *f)
{
    if (!f) return;
    f->freeing = 1;
    for (int i = 0; i < f->ndirty; i++) f->dirty[i]->flush_state = 0;
    f->ndirty = 0;
    if (f->round)
        for (int i = 0; i < f->round->n; i++)
            if (f->round->items[i].log) f->round->items[i].log->flush_state = 0;
    uv_close((uv_handle_t *)&f->idle, on_close);
    uv_close((uv_handle_t *)&f->timer, on_close);
    if (f->tfd >= 0) uv_close((uv_handle_t *)&f->tpoll, on_close);
}

uint64_t flusher_rounds(const flusher_t *f) { return f->rounds; }

const histo_t *flusher_sync_histo(const flusher_t *f) { return &f->sync_histo; }

void flusher_set_round_gap(flusher_t *f, int64_t gap_us) { f->gap_ns = gap_us > 0 ? (uint64_t)gap_us * 1000 : 0; }
