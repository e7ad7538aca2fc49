/*
 * Disk usage of the data directory, for /metrics and the admin API.
 * Blocking (it walks the directory tree): run it on the worker pool, never
 * on the event loop (broker/sysinfo.h does).
 */
#ifndef HERALD_STORE_USAGE_H
#define HERALD_STORE_USAGE_H

#include <stdint.h>

typedef struct {
    int64_t used_bytes;  /* space allocated to the files under the directory (st_blocks * 512) */
    int64_t free_bytes;  /* available to unprivileged users on its file system (f_bavail) */
    int64_t total_bytes; /* size of that file system */
} store_usage_t;

/* Depth below dir at which the walk stops (the data directory is three
 * levels deep: queues/<id>-log/<segment>). */
#define STORE_USAGE_MAX_DEPTH 8

/* Measures dir. Files that vanish during the walk (retention, deletes) are
 * skipped. Returns 0, or -errno if dir itself cannot be read (*out then
 * holds what statvfs could tell, -1 elsewhere). */
int store_usage_measure(const char *dir, store_usage_t *out);

#endif
