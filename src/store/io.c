/* The store's I/O shim and its helpers. See io.h. */
#include "store/io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "base/err.h"

static const io_ops_t io_defaults = {
    .open = open,
    .write = write,
    .pwrite = pwrite,
    .pread = pread,
    .fdatasync = fdatasync,
    .ftruncate = ftruncate,
    .renameat = renameat,
    .unlink = unlink,
};

io_ops_t io_ops = {
    .open = open,
    .write = write,
    .pwrite = pwrite,
    .pread = pread,
    .fdatasync = fdatasync,
    .ftruncate = ftruncate,
    .renameat = renameat,
    .unlink = unlink,
};

void io_ops_reset(void) { io_ops = io_defaults; }

int io_pwrite_all(int fd, const void *p, size_t n, int64_t off)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = io_ops.pwrite(fd, b, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (w == 0) return -ENOSPC;
        b += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

int io_pread_all(int fd, void *p, size_t n, int64_t off)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = io_ops.pread(fd, b, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (r == 0) return HE_TRUNCATED;
        b += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

int io_open(const char *path, int flags, int mode)
{
    int fd;
    do {
        fd = io_ops.open(path, flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

int io_fdatasync(int fd)
{
    return io_ops.fdatasync(fd) < 0 ? -errno : 0;
}

int io_replace_file(int dirfd, const char *dir, const char *name, const void *data, size_t n)
{
    char tmp[PATH_MAX], tmpname[NAME_MAX + 1];
    if (snprintf(tmpname, sizeof tmpname, "%s.tmp", name) >= (int)sizeof tmpname) return -ENAMETOOLONG;
    if (snprintf(tmp, sizeof tmp, "%s/%s", dir, tmpname) >= (int)sizeof tmp) return -ENAMETOOLONG;
    int fd = io_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fd;
    int rc = io_pwrite_all(fd, data, n, 0);
    if (!rc) rc = io_fdatasync(fd);
    close(fd);
    if (!rc && io_ops.renameat(dirfd, tmpname, dirfd, name) < 0) rc = -errno;
    if (!rc) rc = io_fdatasync(dirfd);
    if (rc) (void)io_ops.unlink(tmp);
    return rc;
}
