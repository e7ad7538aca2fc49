/* Syncing a partition log: the round protocol (begin on the loop, run on a
 * worker, end on the loop) and the blocking sync used at open and close.
 * The checkpoint format is in plog.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "store/io.h"
#include "store/plog_int.h"

static void ckpt_of_active(const plog_t *log, plog_ckpt_t *c)
{
    const segment_t *a = plog_active(log);
    *c = (plog_ckpt_t){a->base, a->size, a->next, a->max_ts, (uint32_t)a->ix.on, (uint32_t)a->ix.tn};
}

static void fail_log(plog_t *log, const char *what, int rc)
{
    if (!log->failed) LOG_E("store: %s: %s failed: %s; log is read-only", log->dir, what, herald_strerror(rc));
    log->failed = 1;
}

int plog_sync_all_(plog_t *log)
{
    segment_t *a = plog_active(log);
    int rc = 0;
    for (int i = 0; i < log->nsegs && !rc; i++) {
        segment_t *s = log->segs[i];
        if (s->base < log->covered_seg_base && s->ix.ofd < 0) continue;
        rc = index_flush(&s->ix);
        if (!rc) rc = io_fdatasync(s->fd);
        if (!rc && s->ix.ofd >= 0) rc = io_fdatasync(s->ix.ofd);
        if (!rc && s->ix.tfd >= 0) rc = io_fdatasync(s->ix.tfd);
        if (!rc && s != a) index_close_files(&s->ix);
    }
    if (!rc) rc = io_fdatasync(log->dirfd);
    if (!rc) {
        uint8_t b[PLOG_CKPT_SIZE];
        plog_ckpt_t c;
        ckpt_of_active(log, &c);
        plog_ckpt_encode_(b, &c);
        rc = io_replace_file(log->dirfd, log->dir, PLOG_CKPT_FILE, b, sizeof b);
    }
    if (rc) {
        fail_log(log, "sync", rc);
        return rc;
    }
    log->synced = log->end;
    if (log->durable < log->end) log->durable = log->end;
    log->covered_seg_base = a->base;
    log->dir_synced_gen = log->dir_gen;
    log->ckpt_roll_gen = log->roll_gen;
    log->ckpt_mono_ms = clock_mono_ms();
    return 0;
}

int plog_needs_sync(const plog_t *log)
{
    return !log->failed && (log->end > log->synced || log->dir_gen != log->dir_synced_gen ||
                            log->covered_seg_base < plog_active(log)->base);
}

/* dup()s fd into the round; 0 or -errno. */
static int add_fd(plog_sync_t *s, int fd)
{
    int d = dup(fd);
    if (d < 0) return -errno;
    s->fds[s->nfds++] = d;
    return 0;
}

int plog_sync_begin(plog_t *log, plog_sync_t *s)
{
    *s = (plog_sync_t){.dir_fd = -1, .ckpt_fd = -1};
    if (log->failed) return HE_STORAGE;
    if (log->sync_inflight || !plog_needs_sync(log)) return 0;
    segment_t *a = plog_active(log);
    int rc = 0, i = 0;
    /* Rolled segments not yet wholly synced: log and both indexes (sealed at
     * roll). Leave room for the active segment's three fds. */
    for (; i < log->nsegs - 1 && !rc; i++) {
        segment_t *g = log->segs[i];
        if (g->base < log->covered_seg_base) continue;
        if (s->nfds + 6 > PLOG_SYNC_MAX_FDS) break;
        rc = index_flush(&g->ix);
        if (!rc) rc = add_fd(s, g->fd);
        if (!rc && g->ix.ofd >= 0) rc = add_fd(s, g->ix.ofd);
        if (!rc && g->ix.tfd >= 0) rc = add_fd(s, g->ix.tfd);
    }
    if (!rc && i == log->nsegs - 1) {
        s->end_offset = log->end;
        s->covered_seg_base = a->base;
        rc = add_fd(s, a->fd);
        int due = log->roll_gen != log->ckpt_roll_gen || clock_mono_ms() - log->ckpt_mono_ms >= PLOG_CKPT_INTERVAL_MS;
        if (!rc && due) {
            rc = index_flush(&a->ix);
            if (!rc) rc = add_fd(s, a->ix.ofd);
            if (!rc) rc = add_fd(s, a->ix.tfd);
            if (!rc) {
                char p[4096];
                snprintf(p, sizeof p, "%s/%s", log->dir, PLOG_CKPT_SYNC_TMP);
                s->ckpt_fd = io_open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                if (s->ckpt_fd < 0) {
                    LOG_W("store: %s: checkpoint: %s", log->dir, herald_strerror(s->ckpt_fd));
                    s->ckpt_fd = -1; /* the data sync goes ahead without it */
                }
            }
            if (s->ckpt_fd >= 0) {
                plog_ckpt_t c;
                ckpt_of_active(log, &c);
                plog_ckpt_encode_(s->ckpt, &c);
                s->roll_gen = log->roll_gen;
                s->has_ckpt = 1;
            }
        }
    } else if (!rc) {
        s->end_offset = log->segs[i]->base;
        s->covered_seg_base = log->segs[i]->base;
    }
    if (!rc && (log->dir_gen != log->dir_synced_gen || s->ckpt_fd >= 0)) {
        s->sync_dir = log->dir_gen != log->dir_synced_gen;
        s->dir_gen = log->dir_gen;
        s->dir_fd = dup(log->dirfd);
        if (s->dir_fd < 0) rc = -errno;
    }
    if (rc) {
        plog_sync_discard(s);
        if (rc != -EMFILE && rc != -ENFILE) fail_log(log, "index write", rc);
        return rc;
    }
    log->sync_inflight = 1;
    return 1;
}

void plog_sync_run(plog_sync_t *s)
{
    s->status = 0;
    s->ckpt_status = 0;
    for (int i = 0; i < s->nfds; i++) {
        int rc = io_fdatasync(s->fds[i]);
        if (rc) {
            s->status = rc;
            return;
        }
    }
    /* New segments' directory entries before anything counts as durable. */
    if (s->sync_dir && (s->status = io_fdatasync(s->dir_fd)) < 0) return;
    if (s->ckpt_fd < 0) return;
    int rc = io_pwrite_all(s->ckpt_fd, s->ckpt, sizeof s->ckpt, 0);
    if (!rc) rc = io_fdatasync(s->ckpt_fd);
    if (!rc && io_ops.renameat(s->dir_fd, PLOG_CKPT_SYNC_TMP, s->dir_fd, PLOG_CKPT_FILE) < 0) rc = -errno;
    if (!rc) rc = io_fdatasync(s->dir_fd);
    s->ckpt_status = rc;
}

void plog_sync_discard(plog_sync_t *s)
{
    for (int i = 0; i < s->nfds; i++) close(s->fds[i]);
    s->nfds = 0;
    if (s->dir_fd >= 0) close(s->dir_fd);
    if (s->ckpt_fd >= 0) close(s->ckpt_fd);
    s->dir_fd = s->ckpt_fd = -1;
}

int plog_sync_end(plog_t *log, plog_sync_t *s)
{
    plog_sync_discard(s);
    log->sync_inflight = 0;
    if (s->status < 0) {
        fail_log(log, "fdatasync", s->status);
        return s->status;
    }
    if (s->end_offset > log->synced) log->synced = s->end_offset;
    if (log->synced > log->durable) log->durable = log->synced;
    if (s->sync_dir) log->dir_synced_gen = s->dir_gen;
    /* Rolled segments now covered: their indexes are final, close them. */
    for (int i = 0; i < log->nsegs - 1 && log->segs[i]->base < s->covered_seg_base; i++)
        index_close_files(&log->segs[i]->ix);
    if (s->covered_seg_base > log->covered_seg_base) log->covered_seg_base = s->covered_seg_base;
    if (s->has_ckpt) {
        if (s->ckpt_status == 0) {
            log->ckpt_roll_gen = s->roll_gen;
            log->ckpt_mono_ms = clock_mono_ms();
        } else {
            LOG_W("store: %s: checkpoint write failed: %s", log->dir, herald_strerror(s->ckpt_status));
        }
    }
    return s->status;
}
