/* Shared helpers for the store unit tests: a temp directory per test,
 * batch construction, and an I/O shim that fails on demand. */
#ifndef HERALD_TESTS_STORE_TEST_H
#define HERALD_TESTS_STORE_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "store/batch.h"
#include "store/io.h"

static inline int st_rm_cb(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(p);
}

/* Creates /tmp/herald-store-XXXXXX; returns a heap string. */
static inline char *st_tmpdir(void)
{
    char *d = strdup("/tmp/herald-store-XXXXXX");
    if (!mkdtemp(d)) abort();
    return d;
}

static inline void st_rmdir(char *d)
{
    nftw(d, st_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
}

/* Builds a batch of n records with value_len-byte values; record i has
 * value bytes (seed + i) and timestamp ts + i. */
static inline void st_batch(wbuf_t *w, int n, int value_len, int64_t ts, int seed)
{
    batch_record_t recs[64];
    uint8_t vals[64][256];
    if (n > 64 || value_len > 256) abort();
    for (int i = 0; i < n; i++) {
        memset(vals[i], seed + i, (size_t)value_len);
        recs[i] = (batch_record_t){.key = NULL, .key_len = -1, .value = vals[i], .value_len = value_len,
                                   .timestamp_delta = i};
    }
    batch_build(w, ts, recs, (size_t)n);
}

static inline off_t st_file_size(const char *dir, const char *name)
{
    char p[4096];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) < 0 ? -1 : sb.st_size;
}

static inline void st_truncate(const char *dir, const char *name, off_t len)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (truncate(p, len) < 0) abort();
}

/* Flips one byte of a file at off. */
static inline void st_flip(const char *dir, const char *name, off_t off)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_RDWR);
    uint8_t b;
    if (fd < 0 || pread(fd, &b, 1, off) != 1) abort();
    b ^= 0x5a;
    if (pwrite(fd, &b, 1, off) != 1) abort();
    close(fd);
}

/* ---- fault injection: fail the next `st_fail_after` calls, then `count` calls ---- */
static int st_fail_errno, st_fail_skip, st_fail_count;

static inline int st_should_fail(void)
{
    if (st_fail_count == 0) return 0;
    if (st_fail_skip > 0) {
        st_fail_skip--;
        return 0;
    }
    if (st_fail_count > 0) st_fail_count--;
    errno = st_fail_errno;
    return 1;
}

static inline ssize_t st_fail_pwrite(int fd, const void *p, size_t n, off_t off)
{
    if (st_should_fail()) return -1;
    return pwrite(fd, p, n, off);
}

/* A short write: half the bytes land, then ENOSPC on the next call. */
static inline ssize_t st_short_pwrite(int fd, const void *p, size_t n, off_t off)
{
    if (st_should_fail()) {
        ssize_t w = pwrite(fd, p, n / 2, off);
        errno = 0;
        st_fail_skip = 0;
        st_fail_count = 1;
        io_ops.pwrite = st_fail_pwrite;
        return w;
    }
    return pwrite(fd, p, n, off);
}

static inline int st_fail_fdatasync(int fd)
{
    if (st_should_fail()) return -1;
    return fdatasync(fd);
}

/* count < 0: fail forever. */
static inline void st_fail(int err, int skip, int count)
{
    st_fail_errno = err;
    st_fail_skip = skip;
    st_fail_count = count;
}

#endif
