/* Partition log: append, read, time lookup, retention. File formats in
 * plog.h and segment.h; recovery in plog_recover.c; syncing in plog_sync.c. */
#include "store/plog_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/crc32c.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/deleter.h"
#include "store/io.h"

void plog_config_default(plog_config_t *c)
{
    c->segment_bytes = 1LL << 30;
    c->segment_ms = 7LL * 24 * 3600 * 1000;
    c->retention_ms = 7LL * 24 * 3600 * 1000;
    c->retention_bytes = -1;
    c->index_interval_bytes = 4096;
}

void plog_set_config(plog_t *log, const plog_config_t *cfg)
{
    log->cfg = *cfg;
    if (log->cfg.segment_bytes < 4096) log->cfg.segment_bytes = 4096;
    if (log->cfg.segment_bytes > INT32_MAX) log->cfg.segment_bytes = INT32_MAX;
    if (log->cfg.index_interval_bytes < 0) log->cfg.index_interval_bytes = 0;
}

void plog_push_segment_(plog_t *log, segment_t *s)
{
    if (log->nsegs == log->cap) {
        log->cap = log->cap ? log->cap * 2 : 8;
        log->segs = xrealloc(log->segs, (size_t)log->cap * sizeof *log->segs);
    }
    log->segs[log->nsegs++] = s;
    log->size_bytes += s->size;
}

void plog_drop_segment_(plog_t *log, int i, int unlink_files)
{
    segment_t *s = log->segs[i];
    log->size_bytes -= s->size;
    if (unlink_files) {
        int rc = segment_unlink(log->dir, s->base);
        if (rc) LOG_W("store: %s: deleting segment %lld: %s", log->dir, (long long)s->base, herald_strerror(rc));
    }
    segment_free(s);
    memmove(&log->segs[i], &log->segs[i + 1], (size_t)(log->nsegs - i - 1) * sizeof *log->segs);
    log->nsegs--;
}

static int mkdir_p(const char *dir)
{
    char p[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p) return -ENAMETOOLONG;
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) return -errno;
        p[i] = c;
    }
    return 0;
}

static int open_log(const char *dir, const plog_config_t *cfg, int scratch, int64_t base, plog_t **out)
{
    int rc = mkdir_p(dir);
    if (rc) return rc;
    plog_t *log = xcalloc(1, sizeof *log);
    log->last_pos = -1;
    log->scratch = scratch;
    log->fresh_base = base;
    log->dir = xstrdup(dir);
    plog_set_config(log, cfg);
    log->dirfd = io_open(dir, O_RDONLY | O_DIRECTORY, 0);
    if (log->dirfd < 0) {
        rc = log->dirfd;
        goto fail;
    }
    rc = plog_recover_(log);
    if (rc) goto fail;
    *out = log;
    return 0;
fail:
    LOG_E("store: %s: open failed: %s", dir, herald_strerror(rc));
    log->failed = 1; /* no marker, no syncs */
    plog_close(log);
    return rc;
}

int plog_open(const char *dir, const plog_config_t *cfg, plog_t **out) { return open_log(dir, cfg, 0, 0, out); }
int plog_open_scratch(const char *dir, const plog_config_t *cfg, int64_t base, plog_t **out)
{
    return open_log(dir, cfg, 1, base, out);
}

void plog_close(plog_t *log)
{
    if (!log) return;
    if (!log->failed && !log->scratch && log->nsegs) {
        segment_seal_index(plog_active(log));
        int rc = plog_sync_all_(log);
        if (!rc) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", log->dir, PLOG_CLEAN_FILE);
            int fd = io_open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            rc = fd < 0 ? fd : 0;
            if (fd >= 0) close(fd);
            if (!rc) rc = io_fdatasync(log->dirfd);
        }
        if (rc) LOG_W("store: %s: clean close failed: %s", log->dir, herald_strerror(rc));
    }
    while (log->nsegs) plog_drop_segment_(log, log->nsegs - 1, 0);
    if (log->dirfd >= 0) close(log->dirfd);
    free(log->segs);
    free(log->dir);
    free(log);
}

/* Seals the active segment and starts a new one at the end offset. */
static int plog_roll(plog_t *log)
{
    segment_t *a = plog_active(log), *n;
    segment_seal_index(a);
    int rc = segment_create(log->dir, log->end, &n);
    if (rc) {
        LOG_W("store: %s: roll failed: %s", log->dir, herald_strerror(rc));
        return rc;
    }
    plog_push_segment_(log, n);
    log->dir_gen++;
    log->roll_gen++;
    return 0;
}

int plog_append(plog_t *log, uint8_t *batch, size_t len, int64_t *base_offset)
{
    if (log->failed) return HE_STORAGE;
    batch_header_t h;
    int rc = batch_header_parse(batch, len, &h);
    if (rc) return rc;
    if (batch_size(&h) != len) return HE_INVALID;
    segment_t *a = plog_active(log);
    if (a->size > 0 && (a->size + (int64_t)len > log->cfg.segment_bytes ||
                        log->end + h.last_offset_delta - a->base > (int64_t)UINT32_MAX)) {
        rc = plog_roll(log);
        if (rc) return rc;
        a = plog_active(log);
    }
    h.base_offset = log->end;
    batch_set_base_offset(batch, log->end);
    int64_t pos = a->size;
    rc = segment_append(a, batch, len, &h, log->cfg.index_interval_bytes);
    if (rc) {
        if (rc == HE_STORAGE) log->failed = 1;
        return rc;
    }
    if (a->roll_ms < 0) a->roll_ms = clock_wall_ms();
    log->end = a->next;
    log->size_bytes += (int64_t)len;
    log->last_pos = pos;
    *base_offset = h.base_offset;
    return 0;
}

int64_t plog_last_batch_pos(const plog_t *log) { return log->last_pos; }

/* Index of the segment containing offset (the last with base <= offset). */
static int find_segment(const plog_t *log, int64_t offset)
{
    int lo = 0, hi = log->nsegs;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (log->segs[mid]->base <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : 0;
}

int64_t plog_read(plog_t *log, int64_t offset, int64_t limit, size_t max_bytes, wbuf_t *out)
{
    if (offset < log->start || offset > log->end) return HE_OUT_OF_RANGE;
    if (limit > log->end) limit = log->end;
    if (offset >= limit) return 0;
    segment_t *s = log->segs[find_segment(log, offset)];
    batch_header_t h;
    int64_t pos = segment_find(s, offset, &h);
    if (pos < 0) return pos;
    if (batch_last_offset(&h) >= limit) return 0;
    size_t first = batch_size(&h), want = max_bytes;
    if ((int64_t)want > s->size - pos) want = (size_t)(s->size - pos);
    if (want < first) want = first;
    size_t old = out->len;
    uint8_t *dst = wbuf_tail(out, want);
    int rc = io_pread_all(s->fd, dst, want, pos);
    if (rc) {
        out->len = old;
        return rc == HE_TRUNCATED ? HE_CORRUPT : rc;
    }
    /* Keep the whole batches that fit and end before limit. */
    size_t used = first;
    while (used + BATCH_HEADER_SIZE <= want) {
        if (batch_header_parse(dst + used, want - used, &h) < 0 || batch_last_offset(&h) >= limit) break;
        used += batch_size(&h);
    }
    out->len = old + used;
    return (int64_t)used;
}

int plog_pread(plog_t *log, int64_t offset, int64_t pos, size_t len, uint8_t *dst)
{
    if (offset < log->start || offset >= log->end) return HE_OUT_OF_RANGE;
    segment_t *s = log->segs[find_segment(log, offset)];
    if (pos < 0 || pos > s->size || (int64_t)len > s->size - pos) return HE_OUT_OF_RANGE;
    int rc = io_pread_all(s->fd, dst, len, pos);
    return rc == HE_TRUNCATED ? HE_CORRUPT : rc;
}

int64_t plog_segment_base(const plog_t *log, int64_t offset) { return log->segs[find_segment(log, offset)]->base; }

int64_t plog_start_offset(const plog_t *log) { return log->start; }
int64_t plog_end_offset(const plog_t *log) { return log->end; }
int64_t plog_durable_offset(const plog_t *log) { return log->durable; }
int64_t plog_synced_offset(const plog_t *log) { return log->synced; }
int plog_failed(const plog_t *log) { return log->failed; }
int64_t plog_size_bytes(const plog_t *log) { return log->size_bytes; }
int plog_segment_count(const plog_t *log) { return log->nsegs; }
int64_t plog_drop_boundary(const plog_t *log) { return log->nsegs > 1 ? log->segs[1]->base : -1; }

void plog_mark_durable(plog_t *log)
{
    if (!log->failed) log->durable = log->end;
}

int64_t plog_max_timestamp(const plog_t *log)
{
    int64_t m = -1;
    for (int i = 0; i < log->nsegs; i++)
        if (log->segs[i]->max_ts > m) m = log->segs[i]->max_ts;
    return m;
}

int plog_offset_for_time(plog_t *log, int64_t ts, int64_t *offset, int64_t *batch_ts)
{
    for (int i = find_segment(log, log->start); i < log->nsegs; i++) {
        segment_t *s = log->segs[i];
        if (s->next == s->base || s->max_ts < ts) continue;
        int64_t from = s->base + index_lookup_time(&s->ix, ts);
        if (from < log->start) from = log->start;
        if (from >= s->next) continue;
        batch_header_t h;
        int64_t pos = segment_find(s, from, &h);
        for (;;) {
            if (pos < 0) return (int)pos;
            if (h.max_timestamp >= ts) {
                *offset = h.base_offset > log->start ? h.base_offset : log->start;
                *batch_ts = h.max_timestamp;
                return 0;
            }
            pos += (int64_t)batch_size(&h);
            if (pos >= s->size) break;
            int rc = segment_read_header(s, pos, &h);
            if (rc) return rc;
        }
    }
    return HE_NOT_FOUND;
}

/* Deletes the oldest segments that lie wholly below the start offset. */
static int drop_below_start(plog_t *log)
{
    int n = 0;
    while (log->nsegs > 1 && log->segs[0]->next <= log->start) {
        plog_drop_segment_(log, 0, 1);
        n++;
    }
    return n;
}

static int write_start_file(plog_t *log, int64_t offset)
{
    uint8_t b[PLOG_START_SIZE];
    memcpy(b, "HLSO", 4);
    wbuf_put_be32(b + 4, 1);
    wbuf_put_be64(b + 8, (uint64_t)offset);
    wbuf_put_be32(b + 16, crc32c(0, b, 16));
    return io_replace_file(log->dirfd, log->dir, PLOG_START_FILE, b, sizeof b);
}

int plog_delete_before(plog_t *log, int64_t offset)
{
    if (offset > log->end) return HE_OUT_OF_RANGE;
    if (offset <= log->start) return 0;
    if (log->failed) return HE_STORAGE;
    int rc = write_start_file(log, offset);
    if (rc) return rc;
    log->start = offset;
    if (offset == log->end && plog_active(log)->size > 0) (void)plog_roll(log);
    drop_below_start(log);
    return 0;
}

int plog_drop_segments_before(plog_t *log, int64_t offset)
{
    int n = 0;
    while (log->nsegs > 1 && log->segs[1]->base <= offset) {
        plog_drop_segment_(log, 0, 1);
        n++;
    }
    if (log->start < log->segs[0]->base) log->start = log->segs[0]->base;
    return n;
}

int plog_maintain(plog_t *log, int64_t now_ms)
{
    const plog_config_t *c = &log->cfg;
    segment_t *a = plog_active(log);
    if (!log->failed && c->segment_ms >= 0 && a->size > 0 && a->roll_ms >= 0 && now_ms - a->roll_ms >= c->segment_ms)
        (void)plog_roll(log);
    int n = 0;
    while (log->nsegs > 1) {
        segment_t *s = log->segs[0];
        int expired = c->retention_ms >= 0 && s->max_ts < now_ms - c->retention_ms;
        int over = c->retention_bytes >= 0 && log->size_bytes - s->size >= c->retention_bytes;
        if (!expired && !over) break;
        plog_drop_segment_(log, 0, 1);
        n++;
    }
    if (log->start < log->segs[0]->base) log->start = log->segs[0]->base;
    return n;
}

int plog_destroy_dir(const char *dir) { return store_remove_dir(dir); }
