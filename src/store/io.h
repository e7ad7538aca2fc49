/*
 * The store's I/O layer: every file operation of src/store goes through the
 * function pointers in io_ops, which default to the libc calls. Tests replace
 * single members to make an operation fail with EIO or ENOSPC, once or
 * persistently (as SQLite's test_vfs and beanstalkd's dat.h do), then call
 * io_ops_reset().
 *
 * The members keep the libc contracts (-1 and errno on failure) so the
 * defaults are the libc functions themselves. The helpers below loop over
 * short transfers and return 0 or -errno.
 *
 * io_ops is read by worker threads (fdatasync during a sync round); tests
 * change it only while no sync is in flight.
 */
#ifndef HERALD_STORE_IO_H
#define HERALD_STORE_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    int (*open)(const char *path, int flags, ...);
    ssize_t (*write)(int fd, const void *p, size_t n);
    ssize_t (*pwrite)(int fd, const void *p, size_t n, off_t off);
    ssize_t (*pread)(int fd, void *p, size_t n, off_t off);
    int (*fdatasync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    /* Paths relative to the directory fds (AT_FDCWD for plain paths). */
    int (*renameat)(int olddir, const char *oldpath, int newdir, const char *newpath);
    int (*unlink)(const char *path);
} io_ops_t;

extern io_ops_t io_ops;

/* Restores the libc defaults. */
void io_ops_reset(void);

/* Writes all n bytes at off. Returns 0, or -errno (-ENOSPC for a write that
 * made no progress without an errno). On failure some bytes may have been
 * written: the caller truncates. */
int io_pwrite_all(int fd, const void *p, size_t n, int64_t off);
/* Reads exactly n bytes at off. Returns 0, HE_TRUNCATED at end of file, or
 * -errno. */
int io_pread_all(int fd, void *p, size_t n, int64_t off);
/* Opens path (O_CLOEXEC added). Returns the fd or -errno. */
int io_open(const char *path, int flags, int mode);
/* fdatasync through the shim. Returns 0 or -errno. */
int io_fdatasync(int fd);
/* Durably replaces dir/name with data: writes dir/name.tmp, fdatasyncs it,
 * renames it over dir/name and fsyncs the directory (dirfd). Blocking.
 * Returns 0 or -errno; on failure dir/name is either the old or the new file. */
int io_replace_file(int dirfd, const char *dir, const char *name, const void *data, size_t n);

#endif
