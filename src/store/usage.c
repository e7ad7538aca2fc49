/* Disk usage of a directory tree. See usage.h. */
#include "store/usage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Adds the blocks of everything under the open directory fd (taken over:
 * closed here) to *used. */
static void walk(int fd, int depth, int64_t *used)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue; /* gone meanwhile */
        *used += (int64_t)st.st_blocks * 512;
        if (S_ISDIR(st.st_mode) && depth < STORE_USAGE_MAX_DEPTH) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) walk(sub, depth + 1, used);
        }
    }
    closedir(d);
}

int store_usage_measure(const char *dir, store_usage_t *out)
{
    out->used_bytes = out->free_bytes = out->total_bytes = -1;
    struct statvfs vs;
    if (statvfs(dir, &vs) == 0) {
        out->free_bytes = (int64_t)vs.f_bavail * (int64_t)vs.f_frsize;
        out->total_bytes = (int64_t)vs.f_blocks * (int64_t)vs.f_frsize;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    int64_t used = fstat(fd, &st) == 0 ? (int64_t)st.st_blocks * 512 : 0;
    walk(fd, 1, &used);
    out->used_bytes = used;
    return 0;
}
