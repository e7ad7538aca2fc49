/*
 * One partition log: a directory of segments (segment.h) holding Kafka
 * RecordBatch v2 batches, with offsets assigned on append. Also the log
 * behind queues and the broker's internal logs. Owned by the loop thread;
 * only plog_sync_run() runs elsewhere.
 *
 * Files in the log directory besides the segments:
 *
 *   recovery-checkpoint   52 bytes, all integers big-endian:
 *       0  4  magic "HRCP"
 *       4  4  version (1)
 *       8  8  base offset of the segment the checkpoint is in
 *      16  8  position in that segment's .log up to which data is synced
 *      24  8  next offset at that position
 *      32  8  max timestamp (ms) of that segment's batches before it, -1 if none
 *      40  4  offset index entries of that segment that are synced
 *      44  4  time index entries of that segment that are synced
 *      48  4  CRC-32C of bytes [0, 48)
 *     Written by a sync round after its fdatasyncs succeeded (temp file
 *     "recovery-checkpoint.sync", fdatasync, rename, directory fsync): at
 *     most every PLOG_CKPT_INTERVAL_MS, and at the first sync after a roll,
 *     and by plog_close(). Everything before the checkpoint position is
 *     trusted at open: segments before it are not read at all (their indexes
 *     are loaded and checked, rebuilt only if damaged), the checkpoint's
 *     segment is CRC-scanned from the position on, later segments whole.
 *     An invalid or missing checkpoint means: scan every segment.
 *
 *   log-start-offset      20 bytes: "HLSO", version int32 (1), offset int64,
 *     CRC-32C of bytes [0, 16). Written (temp + rename) by
 *     plog_delete_before(); the start offset is the max of it and the first
 *     segment's base. Invalid: ignored.
 *
 *   clean-shutdown        empty; created by plog_close() after everything
 *     was synced and the checkpoint written; removed (durably) at open.
 *     When present, the scan past the checkpoint skips CRC checks.
 *
 *   *.tmp, *.sync         leftovers of an interrupted replace; deleted at open.
 */
#ifndef HERALD_STORE_PLOG_H
#define HERALD_STORE_PLOG_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define PLOG_CKPT_INTERVAL_MS 2000
#define PLOG_SYNC_MAX_FDS 16

typedef struct plog plog_t;

typedef struct {
    int64_t segment_bytes;        /* roll when the active segment would exceed this; default 1 GiB,
                                     at most 2^31-1 (positions are u32) */
    int64_t segment_ms;           /* roll when the active segment's first append is older; default 7 days; -1 never */
    int64_t retention_ms;         /* delete segments whose newest timestamp is older; -1 unlimited */
    int64_t retention_bytes;      /* delete oldest segments while the rest still holds this much; -1 unlimited */
    int32_t index_interval_bytes; /* bytes of log between index entries; default 4096, >= 0 */
} plog_config_t;

void plog_config_default(plog_config_t *c);

/* Opens the log in dir, creating the directory if missing, and recovers it
 * (see the file formats above). Blocking: reads and syncs files; run at
 * start-up or off the loop. On return everything in the log is durable.
 * Returns 0 and *out, or -errno / HE_*. */
int plog_open(const char *dir, const plog_config_t *cfg, plog_t **out);

/* Opens (or creates) a log in dir as plog_open does, for data that needs no
 * durability (a queue's spill log): nothing is synced, on open or at
 * close, so it may run on the loop; remove dir after plog_close. A log
 * created here (dir holds no segment) starts at offset base: an owner that
 * opens one scratch log after another keeps its offsets unique. */
int plog_open_scratch(const char *dir, const plog_config_t *cfg, int64_t base, plog_t **out);

/* Syncs data and indexes, writes the checkpoint and the clean-shutdown
 * marker (not if the log failed, nor for a scratch log), closes and frees.
 * Blocking. No sync round may be in flight (flusher_forget() first). NULL
 * ok. */
void plog_close(plog_t *log);

/* Values out of range are clamped (segment_bytes to [4096, 2^31-1],
 * index_interval_bytes to >= 0). */
void plog_set_config(plog_t *log, const plog_config_t *cfg);

/* Appends one v2 batch of exactly len bytes (the caller validated it with
 * batch_header_parse). Writes the assigned base offset into batch[0..8) (the
 * caller's buffer is modified), appends it to the active segment (one
 * pwrite), rolling first if needed. No allocation except at a roll.
 * Returns 0 and *base_offset, HE_INVALID if the batch's size is not len,
 * -errno on a failed write (the segment is cut back: nothing partial remains
 * and the log stays usable), HE_STORAGE if the log is read-only (a sync
 * failed, or a failed write could not be cut back). */
int plog_append(plog_t *log, uint8_t *batch, size_t len, int64_t *base_offset);

/* Appends to out whole stored batches starting with the one containing
 * offset, none reaching limit (exclusive; a batch boundary such as the
 * durable or end offset), all from one segment. Stops before a batch that
 * would take the total past max_bytes, except that the first batch is
 * always returned whole (Kafka semantics). Reads with pread straight into
 * out's tail. Returns bytes appended (0 when offset >= limit),
 * HE_OUT_OF_RANGE if offset < start or > end, HE_CORRUPT or -errno. */
int64_t plog_read(plog_t *log, int64_t offset, int64_t limit, size_t max_bytes, wbuf_t *out);

/* Where the batch of the last successful plog_append starts: its byte
 * position in the segment holding it (-1 before any append since open). */
int64_t plog_last_batch_pos(const plog_t *log);
/* Reads exactly len bytes at byte position pos of the segment holding
 * offset (a span inside a batch whose position plog_last_batch_pos gave)
 * into dst. Returns 0, HE_OUT_OF_RANGE if offset is not in [start, end) or
 * the span not inside that segment, HE_CORRUPT or -errno. */
int plog_pread(plog_t *log, int64_t offset, int64_t pos, size_t len, uint8_t *dst);
/* Base offset of the segment holding offset (spans of two offsets with the
 * same base may be read together). */
int64_t plog_segment_base(const plog_t *log, int64_t offset);

int64_t plog_start_offset(const plog_t *log);   /* first readable offset */
int64_t plog_end_offset(const plog_t *log);     /* next offset to assign */
/* Offsets below are acknowledged-durable: covered by an fdatasync, or by
 * plog_mark_durable() (flush modes interval/never). */
int64_t plog_durable_offset(const plog_t *log);
/* Offsets below were covered by a successful fdatasync. */
int64_t plog_synced_offset(const plog_t *log);
/* Declares everything appended so far durable for acknowledgement purposes
 * without syncing: used by the flusher in interval/never modes, where an
 * ack means "written to the page cache". */
void plog_mark_durable(plog_t *log);
/* 1 once a sync failed or a write could not be undone: appends fail with
 * HE_STORAGE, reads still work. */
int plog_failed(const plog_t *log);

/* First offset (>= start) of the first batch whose maxTimestamp >= ts, and
 * that batch's maxTimestamp. Returns 0, HE_NOT_FOUND if no batch qualifies,
 * or <0 on I/O error. */
int plog_offset_for_time(plog_t *log, int64_t ts, int64_t *offset, int64_t *batch_ts);
/* Max batch timestamp in the log (ms), -1 when empty. */
int64_t plog_max_timestamp(const plog_t *log);

/* Raises the log start offset (Kafka DeleteRecords) to offset, persisting it
 * (blocking: temp file + rename + fsync), and deletes the whole segments
 * below it (rolling first when offset == end). Returns 0 (also when offset
 * <= start), HE_OUT_OF_RANGE if offset > end, or <0. */
int plog_delete_before(plog_t *log, int64_t offset);

/* Deletes the whole segments that hold only offsets below offset (never
 * the active one) and raises the start to the first kept segment's base.
 * Writes no start-offset file: for logs whose owner knows, after a
 * restart, which records are dead (queue logs). Unlinks through the
 * deleter. Returns the number of segments deleted. */
int plog_drop_segments_before(plog_t *log, int64_t offset);

/* Rolls the active segment if older than segment_ms, then deletes the oldest
 * segments whose max timestamp is before now_ms - retention_ms, or while the
 * log without them still holds retention_bytes (Kafka's rule). Never deletes
 * the active segment. Unlinks on the calling thread. Returns the number of
 * segments deleted. */
int plog_maintain(plog_t *log, int64_t now_ms);

int64_t plog_size_bytes(const plog_t *log);   /* bytes of all .log files */
int plog_segment_count(const plog_t *log);
/* The lowest offset that plog_drop_segments_before must be given to drop
 * a segment (the second segment's base); -1 with a single segment. */
int64_t plog_drop_boundary(const plog_t *log);

/* Deletes the log directory and everything in it (topic deletion). The log
 * must be closed. Returns 0 (also if missing) or -errno. */
int plog_destroy_dir(const char *dir);

/* ---- sync protocol: fdatasync off the loop thread ----
 *
 * One round: plog_sync_begin() on the loop captures what needs syncing,
 * plog_sync_run() on a worker fdatasyncs it, plog_sync_end() back on the
 * loop applies the result. At most one round per log at a time. The worker
 * touches only the plog_sync_t (dup'd fds), so the log keeps taking appends
 * meanwhile; they are covered by the next round. */
typedef struct {
    int fds[PLOG_SYNC_MAX_FDS]; /* dup'd fds to fdatasync, in order */
    int nfds;
    int dir_fd;         /* dup'd directory fd, -1 if unused */
    int sync_dir;       /* fsync dir_fd after fds: segments were created */
    int ckpt_fd;        /* temp checkpoint file to write, -1 if none */
    uint8_t ckpt[52];   /* checkpoint image */
    int64_t end_offset; /* synced offset once the round succeeds */
    int status;         /* plog_sync_run: 0 or -errno of the first failed fdatasync */
    int ckpt_status;    /* plog_sync_run: 0 or -errno of the checkpoint write */
    /* private to plog */
    int has_ckpt;
    int64_t covered_seg_base; /* segments below are now wholly synced */
    uint64_t dir_gen, roll_gen;
} plog_sync_t;

/* On the loop: writes pending index entries, fills s (dup'd fds of the
 * active segment and segments rolled since the last round, the directory
 * when segments were created, the checkpoint when due). Returns 1 if a
 * round should run, 0 if nothing to do (or one is in flight), HE_STORAGE if
 * the log failed, -errno (the log failed: an index write failed). */
int plog_sync_begin(plog_t *log, plog_sync_t *s);
/* On a worker thread: fdatasync each fd, then the directory, then the
 * checkpoint. Touches no plog state. */
void plog_sync_run(plog_sync_t *s);
/* Back on the loop: closes the dup'd fds; on success advances the synced
 * (and durable) offset to s->end_offset; on failure marks the log read-only
 * (fsync is never retried after a failure). Returns s->status. */
int plog_sync_end(plog_t *log, plog_sync_t *s);
/* Closes the dup'd fds of a round whose log was closed meanwhile. */
void plog_sync_discard(plog_sync_t *s);
/* 1 if data, indexes or directory entries await a sync round. */
int plog_needs_sync(const plog_t *log);

#endif
