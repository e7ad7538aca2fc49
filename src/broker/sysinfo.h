/*
 * Figures about the process for /metrics: cheap (getrusage, /proc/self),
 * read on the loop.
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

#endif
