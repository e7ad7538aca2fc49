/*
 * Figures about the process and its data directory, for /metrics and the
 * admin API. The process figures are cheap (getrusage, /proc/self) and read
 * on the loop; the disk usage of the data directory needs a walk of the
 * directory tree, so it runs on libuv's worker pool.
 */
#ifndef HERALD_BROKER_SYSINFO_H
#define HERALD_BROKER_SYSINFO_H

#include <stdint.h>

#include "broker/broker.h"

typedef struct {
    double cpu_seconds;  /* user + system CPU time of the process */
    int64_t rss_bytes;   /* resident set; -1 unknown */
    double start_time_s; /* when the process started, seconds since the epoch; 0 unknown */
    int64_t open_fds;    /* -1 unknown */
    int64_t max_fds;     /* soft RLIMIT_NOFILE; -1 unlimited or unknown */
} sysinfo_proc_t;

/* Samples the process now (loop thread; a few system calls). */
void sysinfo_proc_sample(sysinfo_proc_t *out);

typedef struct {
    int64_t used_bytes;  /* allocated to the files under the data directory */
    int64_t free_bytes;  /* available on its file system; -1 unknown */
    int64_t total_bytes; /* size of its file system; -1 unknown */
} sysinfo_disk_t;

/* Called on the loop with the measurement: status 0, or <0 (the data
 * directory could not be read: d->used_bytes is -1). */
typedef void (*sysinfo_disk_cb)(void *ctx, int status, const sysinfo_disk_t *d);

/* Measures the data directory on the worker pool. cb runs exactly once,
 * on the loop, later (also when the broker is shutting down: the caller
 * keeps ctx alive until then). Never fails. */
void sysinfo_disk_measure(broker_t *b, sysinfo_disk_cb cb, void *ctx);

#endif
