/*
 * Group commit: decides when partition logs are fdatasync'd and runs the
 * syncs on libuv's worker pool (plog_sync_begin/run/end), never on the loop.
 *
 * Modes and what an acknowledgement means:
 *
 *   FLUSH_ALWAYS    a log marked dirty is synced in the next round. A round
 *                   starts from an idle callback once no round is in flight,
 *                   and syncs every log marked dirty by then, so all producers
 *                   that appended meanwhile share one fdatasync per log. Its
 *                   logs sync at once, each on a worker of its own, and cb
 *                   runs for each log as soon as that log is synced; logs
 *                   marked dirty during the round start the next one once
 *                   the round's last log is done. Acks wait for cb:
 *                   plog_durable_offset() covers only synced data.
 *   FLUSH_INTERVAL  flusher_mark_dirty() advances the durable offset at once
 *                   (plog_mark_durable): an ack means "written to the page
 *                   cache". A timer syncs dirty logs every interval_ms; cb
 *                   runs after each of those syncs (status < 0: the log is
 *                   now read-only).
 *   FLUSH_NEVER     as INTERVAL without the timer: the OS writes back when
 *                   it likes; plog_close() still syncs. After a crash,
 *                   recovery may scan far (the checkpoint only advances with
 *                   syncs).
 *
 * All functions run on the loop thread.
 */
#ifndef HERALD_STORE_FLUSHER_H
#define HERALD_STORE_FLUSHER_H

#include <uv.h>

#include "base/histo.h"
#include "store/plog.h"

typedef enum { FLUSH_ALWAYS, FLUSH_INTERVAL, FLUSH_NEVER } flush_mode_t;

typedef struct flusher flusher_t;

/* Called on the loop after a sync round covering log finished: status 0 and
 * plog_durable_offset(log) now covers what was appended before the round
 * began; or status < 0 and the log is read-only (appends fail with
 * HE_STORAGE). Not called for logs forgotten meanwhile, nor after
 * flusher_free(). */
typedef void (*flusher_cb)(void *ctx, plog_t *log, int status);

/* interval_ms is used by FLUSH_INTERVAL (>= 1). Never fails (aborts on OOM). */
flusher_t *flusher_new(uv_loop_t *loop, flush_mode_t mode, int interval_ms, flusher_cb cb, void *ctx);

/* FLUSH_ALWAYS: a round starts no sooner than gap_us after the previous
 * one started (0, the default: back to back). Syncs then come at most
 * every gap: fewer fdatasyncs and thread wake-ups under steady light load,
 * which is what disturbed every other latency on a small machine, for at
 * most gap_us more on an acknowledgement. Under heavy load a round takes
 * longer than the gap anyway. */
void flusher_set_round_gap(flusher_t *f, int64_t gap_us);

/* log has appended data not yet synced (call after each append; cheap, O(1)). */
void flusher_mark_dirty(flusher_t *f, plog_t *log);

/* log is about to be closed or deleted: drops it from the dirty set; if a
 * round including it is in flight, the round's result for it is discarded
 * (its dup'd fds closed) and cb is not called. plog_close() may follow at
 * once. */
void flusher_forget(flusher_t *f, plog_t *log);

/* Stops the timers and releases the flusher asynchronously, libuv style:
 * the handles are closed and, if a round is in flight, it is left to finish
 * on the worker; memory is freed once both are done, so the caller keeps
 * running the loop (uv_run) until then. No cb runs after this call. Forget
 * or close no log here: forget them first. NULL ok. */
void flusher_free(flusher_t *f);

/* Rounds started so far (tests and metrics). */
uint64_t flusher_rounds(const flusher_t *f);
/* How long each log's sync took (fdatasync of its files, directory and
 * checkpoint), measured on the worker, counted when its round completes. */
const histo_t *flusher_sync_histo(const flusher_t *f);

#endif
