/* Sparse offset and time indexes of a segment. Formats in index.h. */
#include "store/index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/mem.h"
#include "store/io.h"

void index_init(index_t *ix)
{
    *ix = (index_t){0};
    ix->ofd = ix->tfd = -1;
}

void index_close_files(index_t *ix)
{
    if (ix->ofd >= 0) close(ix->ofd);
    if (ix->tfd >= 0) close(ix->tfd);
    ix->ofd = ix->tfd = -1;
}

void index_destroy(index_t *ix)
{
    index_close_files(ix);
    free(ix->oe);
    free(ix->te);
    index_init(ix);
}

int index_open(index_t *ix, const char *opath, const char *tpath)
{
    index_close_files(ix);
    int fd = io_open(opath, O_RDWR | O_CREAT, 0644);
    if (fd < 0) return fd;
    ix->ofd = fd;
    fd = io_open(tpath, O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        index_close_files(ix);
        return fd;
    }
    ix->tfd = fd;
    return 0;
}

void index_grow_(index_t *ix, int time)
{
    if (time) {
        ix->tcap = ix->tcap ? ix->tcap * 2 : 64;
        ix->te = xrealloc(ix->te, ix->tcap * sizeof *ix->te);
    } else {
        ix->ocap = ix->ocap ? ix->ocap * 2 : 64;
        ix->oe = xrealloc(ix->oe, ix->ocap * sizeof *ix->oe);
    }
}

/* Reads a whole index file into a heap buffer. */
static int read_file(int fd, uint8_t **out, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    *len = (size_t)st.st_size;
    *out = xmalloc(*len ? *len : 1);
    int rc = io_pread_all(fd, *out, *len, 0);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int index_load(index_t *ix, uint32_t max_rel, int64_t max_pos, int *complete)
{
    uint8_t *b;
    size_t len;
    ix->on = ix->tn = 0;
    int rc = read_file(ix->ofd, &b, &len);
    if (rc) return rc;
    int whole = len % INDEX_ENTRY_SIZE == 0;
    for (size_t i = 0; i + INDEX_ENTRY_SIZE <= len; i += INDEX_ENTRY_SIZE) {
        uint32_t rel = buf_get_be32(b + i), pos = buf_get_be32(b + i + 4);
        int ok = rel <= max_rel && (int64_t)pos < max_pos;
        if (ok && ix->on) ok = rel > ix->oe[ix->on - 1].rel && pos > ix->oe[ix->on - 1].pos;
        if (!ok) {
            whole = 0;
            break;
        }
        index_add(ix, rel, pos);
    }
    free(b);
    rc = read_file(ix->tfd, &b, &len);
    if (rc) return rc;
    if (len % TINDEX_ENTRY_SIZE) whole = 0;
    for (size_t i = 0; i + TINDEX_ENTRY_SIZE <= len; i += TINDEX_ENTRY_SIZE) {
        int64_t ts = (int64_t)buf_get_be64(b + i);
        uint32_t rel = buf_get_be32(b + i + 8);
        int ok = rel <= max_rel;
        if (ok && ix->tn) ok = rel > ix->te[ix->tn - 1].rel && ts >= ix->te[ix->tn - 1].ts;
        if (!ok) {
            whole = 0;
            break;
        }
        index_add_time(ix, ts, rel);
    }
    free(b);
    ix->owritten = ix->on;
    ix->twritten = ix->tn;
    *complete = whole;
    return 0;
}

int index_truncate(index_t *ix, size_t on, size_t tn)
{
    if (on < ix->on) ix->on = on;
    if (tn < ix->tn) ix->tn = tn;
    if (ix->owritten > ix->on) ix->owritten = ix->on;
    if (ix->twritten > ix->tn) ix->twritten = ix->tn;
    if (ix->ofd >= 0 && io_ops.ftruncate(ix->ofd, (off_t)(ix->owritten * INDEX_ENTRY_SIZE)) < 0) return -errno;
    if (ix->tfd >= 0 && io_ops.ftruncate(ix->tfd, (off_t)(ix->twritten * TINDEX_ENTRY_SIZE)) < 0) return -errno;
    return 0;
}

int index_flush(index_t *ix)
{
    uint8_t buf[4096];
    while (ix->owritten < ix->on) {
        size_t n = 0, first = ix->owritten;
        for (; ix->owritten + n < ix->on && (n + 1) * INDEX_ENTRY_SIZE <= sizeof buf; n++) {
            const index_entry_t *e = &ix->oe[first + n];
            wbuf_put_be32(buf + n * INDEX_ENTRY_SIZE, e->rel);
            wbuf_put_be32(buf + n * INDEX_ENTRY_SIZE + 4, e->pos);
        }
        int rc = io_pwrite_all(ix->ofd, buf, n * INDEX_ENTRY_SIZE, (int64_t)(first * INDEX_ENTRY_SIZE));
        if (rc) {
            (void)io_ops.ftruncate(ix->ofd, (off_t)(first * INDEX_ENTRY_SIZE));
            return rc;
        }
        ix->owritten += n;
    }
    while (ix->twritten < ix->tn) {
        size_t n = 0, first = ix->twritten;
        for (; ix->twritten + n < ix->tn && (n + 1) * TINDEX_ENTRY_SIZE <= sizeof buf; n++) {
            const tindex_entry_t *e = &ix->te[first + n];
            wbuf_put_be64(buf + n * TINDEX_ENTRY_SIZE, (uint64_t)e->ts);
            wbuf_put_be32(buf + n * TINDEX_ENTRY_SIZE + 8, e->rel);
        }
        int rc = io_pwrite_all(ix->tfd, buf, n * TINDEX_ENTRY_SIZE, (int64_t)(first * TINDEX_ENTRY_SIZE));
        if (rc) {
            (void)io_ops.ftruncate(ix->tfd, (off_t)(first * TINDEX_ENTRY_SIZE));
            return rc;
        }
        ix->twritten += n;
    }
    return 0;
}

uint32_t index_lookup(const index_t *ix, uint32_t rel)
{
    /* Binary search for the last entry with oe.rel <= rel. */
    size_t lo = 0, hi = ix->on;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->oe[mid].rel <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? ix->oe[lo - 1].pos : 0;
}

int64_t index_lookup_time(const index_t *ix, int64_t ts)
{
    /* Timestamps never decrease: find the last entry with te.ts < ts. */
    size_t lo = 0, hi = ix->tn;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->te[mid].ts < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? (int64_t)ix->te[lo - 1].rel + 1 : 0;
}
