/*
 * Test fixture shared by queue_test.c and vhost_test.c: a temp data
 * directory, a loop and a real broker, restarted on the same directory;
 * sync_all() appends pending queue records and runs the loop until every
 * log (the catalog included) is durable.
 */
#ifndef HERALD_TEST_VHOST_FIXTURE_H
#define HERALD_TEST_VHOST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../store/store_test.h"
#include "broker/internal.h"
#include "broker/queue.h"
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
    return rc == 0 ? 0 : -1;
}

static inline broker_t *broker_open_dir(uv_loop_t *loop, const char *dir)
{
    config_t cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
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
            if (!p->failed && plog_durable_offset(p->log) < plog_end_offset(p->log)) pending = 1;
        if (!pending) return 0;
        uv_run(loop, UV_RUN_ONCE);
    }
    return -1;
}

static inline void sync_all(fx_t *fx) { assert_int_equal(sync_all_rc(fx->b, &fx->loop), 0); }

static inline void qdir_path(char *out, size_t n, const char *data, uint64_t id, const char *suffix)
{
    snprintf(out, n, "%s/queues/%016llx-%s", data, (unsigned long long)id, suffix);
}

static inline int path_exists(const char *p) { return access(p, F_OK) == 0; }

#endif
