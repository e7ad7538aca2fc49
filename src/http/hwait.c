/* Wait sets. See hwait.h. */
#include "http/hwait.h"

#include <stdlib.h>

#include "base/mem.h"

struct hwait {
    http_req_t *r;
    int n, left;       /* slots, slots not yet fired */
    int armed;
    int status;        /* first failure, 0 none */
    hwait_done_fn done;
    void *ctx;
    void (*ctx_free)(void *ctx);
    pwaiter_t w[];
};

static void finish(hwait_t *w)
{
    http_req_on_cancel(w->r, NULL, NULL);
    w->done(w->r, w->status, w->ctx);
    if (w->ctx_free) w->ctx_free(w->ctx);
    free(w);
}

void hwait_fired(hwait_t *w, int i, int status)
{
    (void)i;
    if (status < 0 && !w->status) w->status = status;
    w->left--;
    if (w->armed && !w->left) finish(w);
}

static void on_fired(pwaiter_t *pw, int status)
{
    hwait_t *w = pw->ctx;
    hwait_fired(w, (int)(pw - w->w), status);
}

static void on_cancel(http_req_t *r, void *ctx)
{
    (void)r;
    hwait_t *w = ctx;
    for (int i = 0; i < w->n; i++) pwaiter_cancel(&w->w[i]);
    if (w->ctx_free) w->ctx_free(w->ctx);
    free(w);
}

hwait_t *hwait_new(http_req_t *r, int n, hwait_done_fn done, void *ctx, void (*ctx_free)(void *ctx))
{
    hwait_t *w = xcalloc(1, sizeof *w + (size_t)n * sizeof(pwaiter_t));
    w->r = r;
    w->n = w->left = n;
    w->done = done;
    w->ctx = ctx;
    w->ctx_free = ctx_free;
    for (int i = 0; i < n; i++) {
        w->w[i].cb = on_fired;
        w->w[i].ctx = w;
    }
    http_req_on_cancel(r, on_cancel, w);
    return w;
}

pwaiter_t *hwait_slot(hwait_t *w, int i) { return &w->w[i]; }

void hwait_arm(hwait_t *w)
{
    w->armed = 1;
    if (!w->left) finish(w);
}
