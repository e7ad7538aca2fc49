/*
 * Answering a request after durability waits: a wait set holds n pwaiters
 * (partition_wait, queue_wait, broker_catalog_wait, group_offsets_wait) and
 * calls done once every one of them fired, with the first failure status
 * (0 if all succeeded). If the server stops first the waiters are
 * cancelled and done is never called (the server answers 503).
 *
 *   hwait_t *w = hwait_new(r, 2, done, ctx);
 *   if (partition_wait(p, hwait_slot(w, 0)) == 1) hwait_fired(w, 0, 0);
 *   ... slot 1 ...
 *   hwait_arm(w);   // done may run inside this call
 *
 * A slot's target is set by the caller (partition_wait) or by the wait
 * function itself (broker_catalog_wait). The set frees itself after done
 * (or after the cancel); ctx stays the caller's, freed in done or in
 * ctx_free (called in both cases when given).
 */
#ifndef HERALD_HTTP_HWAIT_H
#define HERALD_HTTP_HWAIT_H

#include "broker/broker.h"
#include "http/http.h"

typedef struct hwait hwait_t;
typedef void (*hwait_done_fn)(http_req_t *r, int status, void *ctx);

hwait_t *hwait_new(http_req_t *r, int n, hwait_done_fn done, void *ctx, void (*ctx_free)(void *ctx));
/* The i-th waiter (cb and ctx already set; set target before waiting). */
pwaiter_t *hwait_slot(hwait_t *w, int i);
/* Marks slot i as done at once (its wait function returned 1, or there was
 * nothing to wait for), with status. */
void hwait_fired(hwait_t *w, int i, int status);
/* All slots are linked or fired: done runs when the last one fires. */
void hwait_arm(hwait_t *w);

#endif
