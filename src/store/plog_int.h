/* Internals of plog shared by plog.c, plog_recover.c and plog_sync.c. */
#ifndef HERALD_STORE_PLOG_INT_H
#define HERALD_STORE_PLOG_INT_H

#include "store/plog.h"
#include "store/segment.h"

#define PLOG_CKPT_FILE "recovery-checkpoint"
#define PLOG_CKPT_SYNC_TMP "recovery-checkpoint.sync"
#define PLOG_START_FILE "log-start-offset"
#define PLOG_CLEAN_FILE "clean-shutdown"
#define PLOG_CKPT_SIZE 52
#define PLOG_START_SIZE 20

typedef struct {
    int64_t seg_base, pos, next, max_ts;
    uint32_t n_idx, n_tidx;
} plog_ckpt_t;

struct plog {
    char *dir;               /* owned, NUL-terminated */
    int dirfd;               /* the directory: fsync and renameat */
    plog_config_t cfg;
    segment_t **segs;        /* ascending base, contiguous offsets; segs[nsegs-1] is active */
    int nsegs, cap;
    int64_t start;           /* log start offset, >= segs[0]->base */
    int64_t end;             /* == active->next */
    int64_t synced;          /* covered by a successful fdatasync */
    int64_t durable;         /* acknowledged-durable, >= synced */
    int64_t size_bytes;      /* sum of segment sizes */
    int64_t last_pos;        /* byte position of the last appended batch in the active segment, -1 none */
    int failed;              /* read-only after a storage failure */
    int scratch;             /* plog_open_scratch: never synced, discarded at close */
    int64_t fresh_base;      /* the first offset if recovery finds no segment */
    int sync_inflight;
    int64_t covered_seg_base; /* segments with base below are wholly synced */
    uint64_t dir_gen, dir_synced_gen;   /* segment creations / covered by a dir fsync */
    uint64_t roll_gen, ckpt_roll_gen;   /* rolls / covered by a checkpoint */
    int64_t ckpt_mono_ms;    /* when the last checkpoint was written */
    unsigned flush_state;    /* owned by flusher.c: FLUSHER_* bits */
};

static inline segment_t *plog_active(const plog_t *log) { return log->segs[log->nsegs - 1]; }

/* plog.c */
void plog_push_segment_(plog_t *log, segment_t *s);
void plog_drop_segment_(plog_t *log, int i, int unlink_files);

/* plog_recover.c: reads the directory and recovers segments into log
 * (log->dir, dirfd, cfg set). Returns 0 or <0. */
int plog_recover_(plog_t *log);
void plog_ckpt_encode_(uint8_t out[PLOG_CKPT_SIZE], const plog_ckpt_t *c);

/* plog_sync.c: syncs everything now, blocking (open and close). */
int plog_sync_all_(plog_t *log);

#endif
