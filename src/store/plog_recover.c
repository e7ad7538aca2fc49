/*
 * Opening a partition log: list the segments, read the checkpoint and the
 * start offset, and bring the segments to a valid state. The rules (file
 * formats in plog.h, segment.h, index.h):
 *
 *  - segments before the checkpoint's segment are trusted: not read; their
 *    indexes are loaded and must be complete (the last time index entry is
 *    the segment's last offset), else they are rebuilt by a scan;
 *  - the checkpoint's segment keeps the index entries the checkpoint counts
 *    and is scanned (CRC-checked) from the checkpoint position;
 *  - later segments are scanned whole, their indexes rebuilt;
 *  - the first invalid batch truncates its segment; later segments are
 *    deleted (offsets must stay contiguous);
 *  - what was scanned is then synced and a new checkpoint written, so the
 *    whole log is durable when plog_open() returns.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/crc32c.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/io.h"
#include "store/plog_int.h"

void plog_ckpt_encode_(uint8_t b[PLOG_CKPT_SIZE], const plog_ckpt_t *c)
{
    memcpy(b, "HRCP", 4);
    wbuf_put_be32(b + 4, 1);
    wbuf_put_be64(b + 8, (uint64_t)c->seg_base);
    wbuf_put_be64(b + 16, (uint64_t)c->pos);
    wbuf_put_be64(b + 24, (uint64_t)c->next);
    wbuf_put_be64(b + 32, (uint64_t)c->max_ts);
    wbuf_put_be32(b + 40, c->n_idx);
    wbuf_put_be32(b + 44, c->n_tidx);
    wbuf_put_be32(b + 48, crc32c(0, b, 48));
}

/* Reads a small file whole; returns its length, or -1 if missing/unreadable. */
static ssize_t read_small(const plog_t *log, const char *name, uint8_t *b, size_t cap)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", log->dir, name);
    int fd = io_open(p, O_RDONLY, 0);
    if (fd < 0) return -1;
    ssize_t n = io_ops.pread(fd, b, cap, 0);
    close(fd);
    return n;
}

static int read_ckpt(const plog_t *log, plog_ckpt_t *c)
{
    uint8_t b[PLOG_CKPT_SIZE + 1];
    if (read_small(log, PLOG_CKPT_FILE, b, sizeof b) != PLOG_CKPT_SIZE) return HE_NOT_FOUND;
    if (memcmp(b, "HRCP", 4) || buf_get_be32(b + 4) != 1 || buf_get_be32(b + 48) != crc32c(0, b, 48))
        return HE_CORRUPT;
    c->seg_base = (int64_t)buf_get_be64(b + 8);
    c->pos = (int64_t)buf_get_be64(b + 16);
    c->next = (int64_t)buf_get_be64(b + 24);
    c->max_ts = (int64_t)buf_get_be64(b + 32);
    c->n_idx = buf_get_be32(b + 40);
    c->n_tidx = buf_get_be32(b + 44);
    if (c->pos < 0 || c->next < c->seg_base || c->next - c->seg_base > UINT32_MAX) return HE_CORRUPT;
    return 0;
}

static int64_t read_start(const plog_t *log)
{
    uint8_t b[PLOG_START_SIZE + 1];
    if (read_small(log, PLOG_START_FILE, b, sizeof b) != PLOG_START_SIZE) return -1;
    if (memcmp(b, "HLSO", 4) || buf_get_be32(b + 4) != 1 || buf_get_be32(b + 16) != crc32c(0, b, 16)) {
        LOG_W("store: %s: ignoring invalid %s", log->dir, PLOG_START_FILE);
        return -1;
    }
    return (int64_t)buf_get_be64(b + 8);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists segment bases (sorted) and deletes temp-file leftovers. */
static int list_segments(const plog_t *log, int64_t **bases, int *n, int *clean)
{
    DIR *d = opendir(log->dir);
    if (!d) return -errno;
    int cap = 16;
    *bases = xmalloc((size_t)cap * sizeof **bases);
    *n = 0;
    *clean = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        size_t len = strlen(nm);
        if (!strcmp(nm, PLOG_CLEAN_FILE)) *clean = 1;
        if ((len > 4 && !strcmp(nm + len - 4, ".tmp")) || !strcmp(nm, PLOG_CKPT_SYNC_TMP)) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", log->dir, nm);
            (void)io_ops.unlink(p);
            continue;
        }
        if (len != 24 || strcmp(nm + 20, ".log") || strspn(nm, "0123456789") != 20) continue;
        if (*n == cap) {
            cap *= 2;
            *bases = xrealloc(*bases, (size_t)cap * sizeof **bases);
        }
        (*bases)[(*n)++] = strtoll(nm, NULL, 10);
    }
    closedir(d);
    qsort(*bases, (size_t)*n, sizeof **bases, cmp_i64);
    return 0;
}

/* Rebuilds a segment's indexes by scanning its whole log. */
static int rebuild(plog_t *log, segment_t *s, int verify)
{
    int rc = index_truncate(&s->ix, 0, 0);
    if (rc) return rc;
    s->next = s->base;
    s->max_ts = -1;
    s->since_index = 0;
    return segment_scan(s, 0, verify, log->cfg.index_interval_bytes);
}

/* A segment before the checkpoint: load its indexes, rebuild if damaged. */
static int recover_trusted(plog_t *log, segment_t *s, int64_t next_base)
{
    int complete;
    uint32_t last_rel = (uint32_t)(next_base - 1 - s->base);
    int rc = index_load(&s->ix, last_rel, s->size, &complete);
    if (rc) return rc;
    if (complete && s->ix.tn && s->ix.te[s->ix.tn - 1].rel == last_rel && next_base > s->base) {
        s->next = next_base;
        s->max_ts = s->ix.te[s->ix.tn - 1].ts;
        index_close_files(&s->ix);
        return 0;
    }
    LOG_W("store: %s: rebuilding the indexes of segment %lld", log->dir, (long long)s->base);
    rc = rebuild(log, s, 1);
    return rc;
}

/* The checkpoint's segment: keep the synced index prefix, scan from pos. */
static int recover_from(plog_t *log, segment_t *s, const plog_ckpt_t *c, int verify)
{
    int complete;
    if (c->pos > s->size) return rebuild(log, s, 1);
    uint32_t max_rel = c->next > s->base ? (uint32_t)(c->next - 1 - s->base) : 0;
    int rc = index_load(&s->ix, max_rel, c->pos, &complete);
    if (rc) return rc;
    if (s->ix.on < c->n_idx || s->ix.tn < c->n_tidx) return rebuild(log, s, 1);
    rc = index_truncate(&s->ix, c->n_idx, c->n_tidx);
    if (rc) return rc;
    s->next = c->next;
    s->max_ts = c->max_ts;
    s->since_index = s->ix.on ? c->pos - s->ix.oe[s->ix.on - 1].pos : c->pos;
    return segment_scan(s, c->pos, verify, log->cfg.index_interval_bytes);
}

int plog_recover_(plog_t *log)
{
    int64_t *bases = NULL;
    int nb = 0, clean = 0;
    int rc = list_segments(log, &bases, &nb, &clean);
    if (rc) return rc;
    plog_ckpt_t ck = {0}; /* (gcc -O3 cannot see read_ckpt fills it whenever it returns 0) */
    int have_ck = read_ckpt(log, &ck) == 0;
    int64_t start = read_start(log);
    segment_t *s;
    for (int i = 0; i < nb; i++) {
        rc = segment_open(log->dir, bases[i], &s);
        if (rc) goto out;
        plog_push_segment_(log, s);
    }
    if (log->nsegs == 0) {
        rc = segment_create(log->dir, start > 0 ? start : log->fresh_base, &s);
        if (rc) goto out;
        plog_push_segment_(log, s);
        log->dir_gen++;
    }
    /* Which segment holds the checkpoint: none found means scan everything. */
    int ci = 0;
    if (have_ck) {
        for (ci = 0; ci < log->nsegs && log->segs[ci]->base != ck.seg_base; ci++) {}
        if (ci == log->nsegs) {
            LOG_W("store: %s: checkpoint segment %lld missing, scanning all", log->dir, (long long)ck.seg_base);
            have_ck = 0;
            ci = 0;
        }
    }
    if (!have_ck) ck = (plog_ckpt_t){log->segs[0]->base, 0, log->segs[0]->base, -1, 0, 0};
    int verify = !clean, cut = -1;
    for (int i = 0; i < log->nsegs && cut < 0; i++) {
        s = log->segs[i];
        log->size_bytes -= s->size;
        if (i > 0 && s->base != log->segs[i - 1]->next)
            rc = 2; /* a gap: drop this one and the rest */
        else if (i < ci)
            rc = recover_trusted(log, s, log->segs[i + 1]->base);
        else if (i == ci)
            rc = recover_from(log, s, &ck, verify);
        else
            rc = rebuild(log, s, verify);
        log->size_bytes += s->size;
        if (rc < 0) goto out;
        if (rc > 0) {
            LOG_W("store: %s: segment %lld truncated at %lld (torn or corrupt batch)", log->dir,
                  (long long)s->base, (long long)s->size);
            cut = rc == 2 ? i : i + 1;
        }
    }
    while (cut > 0 && log->nsegs > cut) plog_drop_segment_(log, log->nsegs - 1, 1);
    rc = 0;
    /* Rolled segments whose indexes were rebuilt get their final time index
     * entry back, so the next open trusts them without a scan. */
    for (int i = 0; i < log->nsegs - 1; i++) segment_seal_index(log->segs[i]);
    segment_t *a = plog_active(log);
    log->end = a->next;
    log->start = log->segs[0]->base;
    if (start > log->start) log->start = start > log->end ? log->end : start;
    if (a->size > 0) {
        batch_header_t h;
        int64_t now = clock_wall_ms();
        a->roll_ms = segment_read_header(a, 0, &h) == 0 && h.max_timestamp < now ? h.max_timestamp : now;
    }
    /* Segments from the checkpoint's on were (re)scanned: make them durable. */
    log->covered_seg_base = log->segs[ci < log->nsegs ? ci : log->nsegs - 1]->base;
    log->roll_gen = 1; /* force a checkpoint */
    if (log->scratch) goto out; /* nothing in it is to be durable */
    rc = plog_sync_all_(log);
    if (rc) goto out;
    if (clean) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", log->dir, PLOG_CLEAN_FILE);
        if (io_ops.unlink(p) < 0 && errno != ENOENT) rc = -errno;
        if (!rc) rc = io_fdatasync(log->dirfd);
    }
out:
    free(bases);
    return rc;
}
