/* A segment: its log file, indexes and recovery scan. Format in segment.h. */
#include "store/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/mem.h"
#include "store/deleter.h"
#include "store/io.h"

#define SCAN_BUF_BYTES (1 << 20)

int segment_path(char *buf, size_t n, const char *dir, int64_t base, const char *ext)
{
    int w = snprintf(buf, n, "%s/%020" PRId64 "%s", dir, base, ext);
    return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

static int open_files(const char *dir, int64_t base, int flags, segment_t **out)
{
    char lp[4096], op[4096], tp[4096];
    int rc = segment_path(lp, sizeof lp, dir, base, ".log");
    if (!rc) rc = segment_path(op, sizeof op, dir, base, ".index");
    if (!rc) rc = segment_path(tp, sizeof tp, dir, base, ".timeindex");
    if (rc) return rc;
    segment_t *s = xcalloc(1, sizeof *s);
    s->base = s->next = base;
    s->max_ts = -1;
    s->roll_ms = -1;
    index_init(&s->ix);
    s->fd = io_open(lp, O_RDWR | flags, 0644);
    if (s->fd < 0) {
        rc = s->fd;
        goto fail;
    }
    struct stat st;
    if (fstat(s->fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    s->size = st.st_size;
    rc = index_open(&s->ix, op, tp);
    if (rc) goto fail;
    if (flags & O_TRUNC) rc = index_truncate(&s->ix, 0, 0);
    if (rc) goto fail;
    *out = s;
    return 0;
fail:
    segment_free(s);
    return rc;
}

int segment_create(const char *dir, int64_t base, segment_t **out)
{
    return open_files(dir, base, O_CREAT | O_TRUNC, out);
}

int segment_open(const char *dir, int64_t base, segment_t **out) { return open_files(dir, base, 0, out); }

void segment_free(segment_t *s)
{
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    index_destroy(&s->ix);
    free(s);
}

int segment_unlink(const char *dir, int64_t base)
{
    /* The .log goes first: recovery enumerates segments by their .log, so
     * an index left behind by a crash is never read. */
    static const char *const ext[] = {".log", ".index", ".timeindex"};
    int first = 0;
    for (size_t i = 0; i < 3; i++) {
        char p[4096];
        int rc = segment_path(p, sizeof p, dir, base, ext[i]);
        if (!rc) store_unlink(p); /* on the worker pool when installed */
        if (rc && !first) first = rc;
    }
    return first;
}

/* Bookkeeping for a batch now stored at pos: indexes, size, end, timestamps. */
static void account(segment_t *s, const batch_header_t *h, int64_t pos, int32_t interval)
{
    int64_t max_ts = h->max_timestamp > s->max_ts ? h->max_timestamp : s->max_ts;
    uint32_t last_rel = (uint32_t)(batch_last_offset(h) - s->base);
    if (s->since_index >= interval) {
        index_add(&s->ix, (uint32_t)(h->base_offset - s->base), (uint32_t)pos);
        index_add_time(&s->ix, max_ts, last_rel);
        s->since_index = 0;
    }
    s->since_index += (int64_t)batch_size(h);
    s->size = pos + (int64_t)batch_size(h);
    s->next = batch_last_offset(h) + 1;
    s->max_ts = max_ts;
}

int segment_append(segment_t *s, const uint8_t *batch, size_t len, const batch_header_t *h, int32_t interval)
{
    int rc = io_pwrite_all(s->fd, batch, len, s->size);
    if (rc) {
        if (io_ops.ftruncate(s->fd, (off_t)s->size) < 0) return HE_STORAGE;
        return rc;
    }
    account(s, h, s->size, interval);
    return 0;
}

void segment_seal_index(segment_t *s)
{
    if (s->next == s->base) return;
    uint32_t last_rel = (uint32_t)(s->next - 1 - s->base);
    if (s->ix.tn && s->ix.te[s->ix.tn - 1].rel == last_rel) return;
    index_add_time(&s->ix, s->max_ts, last_rel);
}

int segment_read_header(const segment_t *s, int64_t pos, batch_header_t *h)
{
    uint8_t b[BATCH_HEADER_SIZE];
    if (pos + BATCH_HEADER_SIZE > s->size) return HE_CORRUPT;
    int rc = io_pread_all(s->fd, b, sizeof b, pos);
    if (rc) return rc == HE_TRUNCATED ? HE_CORRUPT : rc;
    if (batch_header_parse_prefix(b, sizeof b, h) < 0) return HE_CORRUPT;
    if (pos + (int64_t)batch_size(h) > s->size) return HE_CORRUPT;
    return 0;
}

int64_t segment_find(const segment_t *s, int64_t offset, batch_header_t *h)
{
    int64_t pos = index_lookup(&s->ix, (uint32_t)(offset - s->base));
    for (;;) {
        int rc = segment_read_header(s, pos, h);
        if (rc) return rc;
        if (batch_last_offset(h) >= offset) return h->base_offset <= offset ? pos : HE_CORRUPT;
        pos += (int64_t)batch_size(h);
    }
}

int segment_scan(segment_t *s, int64_t pos, int verify_crc, int32_t interval)
{
    struct stat st;
    if (fstat(s->fd, &st) < 0) return -errno;
    int64_t file_size = st.st_size;
    size_t cap = SCAN_BUF_BYTES;
    uint8_t *buf = xmalloc(cap);
    int64_t buf_pos = pos; /* file position of buf[0] */
    size_t have = 0;       /* valid bytes in buf */
    int rc = 0, bad = 0;
    while (pos < file_size) {
        size_t at = (size_t)(pos - buf_pos), avail = have - at;
        size_t need = BATCH_HEADER_SIZE;
        batch_header_t h;
        if (avail >= BATCH_HEADER_SIZE) {
            if (batch_header_parse_prefix(buf + at, avail, &h) < 0) break;
            need = batch_size(&h);
        }
        if ((int64_t)need > file_size - pos) break; /* torn: the batch runs past the end */
        if (avail < need) {
            /* Refill: keep the partial batch at the front, grow for big ones.
             * Makes progress: the file holds at least need bytes from pos. */
            memmove(buf, buf + at, avail);
            have = avail;
            buf_pos = pos;
            if (need > cap) {
                cap = need;
                buf = xrealloc(buf, cap);
            }
            size_t want = cap - have;
            int64_t left = file_size - (buf_pos + (int64_t)have);
            if ((int64_t)want > left) want = (size_t)left;
            rc = io_pread_all(s->fd, buf + have, want, buf_pos + (int64_t)have);
            if (rc) break;
            have += want;
            continue;
        }
        if (h.base_offset != s->next || batch_last_offset(&h) - s->base > UINT32_MAX ||
            (verify_crc && batch_verify_crc(buf + at, avail) < 0))
            break;
        account(s, &h, pos, interval);
        pos += (int64_t)need;
    }
    free(buf);
    if (rc) return rc == HE_TRUNCATED ? HE_CORRUPT : rc;
    if (pos < file_size) {
        if (io_ops.ftruncate(s->fd, (off_t)pos) < 0) return -errno;
        bad = 1;
    }
    s->size = pos;
    return bad;
}
