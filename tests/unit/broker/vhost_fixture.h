/*
 * Test fixture shared by the broker's queue and vhost tests: a temp data
 * directory, a loop and a real broker, restarted on the same directory;
 * sync_all() appends pending queue records and runs the loop until every
 * log (the catalog included) is durable; queues and messages made the same
 * way in every test (fx_queue, fx_msg: message i has routing key "k<i>").
 */
#ifndef HERALD_TEST_VHOST_FIXTURE_H
#define HERALD_TEST_VHOST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../store/store_test.h"
#include "amqp/props.h"
#include "broker/internal.h"
#include "broker/queue.h"
#include "base/clock.h"
#include "base/slab.h"
#include "broker/vhost.h"

static const amqp_bytes_t none = {NULL, 0};


/* ---- fixture: a temp data dir, a loop, a broker ---- */

typedef struct {
    char *dir;
    uv_loop_t loop;
    broker_t *b;
    vhost_t *v;
} fx_t;

static inline int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    fx->dir = st_tmpdir();
    uv_loop_init(&fx->loop);
    *state = fx;
    return 0;
}

static inline void close_broker(fx_t *fx)
{
    broker_free(fx->b);
    fx->b = NULL;
    fx->v = NULL;
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* close callbacks, deletions, the last sync round */
}

static inline int teardown(void **state)
{
    fx_t *fx = *state;
    io_ops_reset();
    if (fx->b) close_broker(fx);
    int rc = uv_loop_close(&fx->loop);
    st_rmdir(fx->dir);
    free(fx);
    /* LeakSanitizer does not see into the slab's chunks (they are its
     * roots): a message or entry still handed out once the broker is
     * gone is a leak. */
    slab_stats_t st;
    slab_stats(&st);
    if (st.live) {
        fprintf(stderr, "%zu slab object(s) leaked\n", st.live);
        return -1;
    }
    return rc == 0 ? 0 : -1;
}

/* delay.memory.bytes of the brokers opened next; -1: the default. */
static int64_t fx_delay_memory_bytes = -1;

static inline broker_t *broker_open_dir(uv_loop_t *loop, const char *dir)
{
    config_t cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    if (fx_delay_memory_bytes >= 0) cfg.delay_memory_bytes = fx_delay_memory_bytes;
    int err = 0;
    return broker_new(loop, &cfg, &err);
}

static inline void open_broker(fx_t *fx)
{
    fx->b = broker_open_dir(&fx->loop, fx->dir);
    assert_non_null(fx->b);
    fx->v = broker_vhost(fx->b, amqp_cstr("/"));
    assert_non_null(fx->v);
}

static inline void restart(fx_t *fx)
{
    close_broker(fx);
    open_broker(fx);
}

/* Appends pending queue records, then runs the loop until every log is
 * durable. Returns 0, or -1 if that never happens. */
static inline int sync_all_rc(broker_t *b, uv_loop_t *loop)
{
    queue_flush_all(b);
    for (long spins = 0; spins < 2000000; spins++) {
        int pending = 0;
        for (partition_t *p = b->by_log; p; p = p->hh_log.next)
            if (!p->failed && !p->spill && plog_durable_offset(p->log) < plog_end_offset(p->log)) pending = 1;
        if (!pending) return 0;
        uv_run(loop, UV_RUN_ONCE);
    }
    return -1;
}

static inline void sync_all(fx_t *fx) { assert_int_equal(sync_all_rc(fx->b, &fx->loop), 0); }

static inline void fx_on_tick(uv_timer_t *t) { (void)t; }

/* Runs the loop as a serving broker's runs (a listener keeps it alive, so
 * prepare handles and timers fire) until done(ctx) or ms pass. */
static inline void fx_run_until(fx_t *fx, int (*done)(void *ctx), void *ctx, int64_t ms)
{
    uv_timer_t tick;
    uv_timer_init(&fx->loop, &tick);
    uv_timer_start(&tick, fx_on_tick, 5, 5);
    int64_t deadline = clock_mono_ms() + ms;
    while (!done(ctx) && clock_mono_ms() < deadline) uv_run(&fx->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static inline void qdir_path(char *out, size_t n, const char *data, uint64_t id, const char *suffix)
{
    snprintf(out, n, "%s/queues/%016llx-%s", data, (unsigned long long)id, suffix);
}

static inline int path_exists(const char *p) { return access(p, F_OK) == 0; }

/* ---- queues and messages ---- */

static inline queue_t *fx_queue(fx_t *fx, const char *name, unsigned flags, amqp_bytes_t args, void *owner)
{
    queue_t *q = NULL;
    assert_int_equal(vhost_queue_create(fx->v, amqp_cstr(name), flags, args, owner, &q), 0);
    assert_non_null(q);
    return q;
}

static inline queue_t *fx_findq(fx_t *fx, const char *name) { return vhost_queue_find(fx->v, amqp_cstr(name)); }

/* Message i: routing key "k<i>", no exchange, persistent (delivery mode 2),
 * priority prio (-1 none), the field table headers (none: no headers), a
 * copy of the blen bytes at body. */
static inline qmsg_t *fx_msg(int i, int prio, amqp_bytes_t headers, const void *body, size_t blen)
{
    amqp_props_t p;
    memset(&p, 0, sizeof p);
    p.flags = PROP_DELIVERY_MODE;
    p.delivery_mode = 2;
    if (prio >= 0) {
        p.flags |= PROP_PRIORITY;
        p.priority = (uint8_t)prio;
    }
    if (headers.len) {
        p.flags |= PROP_HEADERS;
        p.headers = headers;
    }
    wbuf_t raw;
    wbuf_init(&raw);
    amqp_props_encode(&raw, &p);
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    qmsg_t *m = qmsg_new(none, amqp_cstr(key), (amqp_bytes_t){raw.p, (uint32_t)raw.len}, blen);
    if (blen) memcpy(qmsg_body(m), body, blen);
    m->persistent = 1;
    wbuf_destroy(&raw);
    return m;
}

/* i of a routing key "k<i>". */
static inline int fx_key_idx(amqp_bytes_t k)
{
    int v = 0;
    for (uint32_t i = 1; i < k.len; i++) v = v * 10 + (k.p[i] - '0');
    return v;
}

#endif
