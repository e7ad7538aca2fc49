/*
 * What every benchmark tool in bench/ needs: clocks, dying with a message,
 * the broker process's CPU and memory from /proc, and a comparison for
 * sorting latencies. Compiled into each tool (bench/bench_common.c).
 */
#ifndef HERALD_BENCH_COMMON_H
#define HERALD_BENCH_COMMON_H

#include <stdint.h>
#include <time.h>

/* The tool's name, the prefix of bench_die's messages. */
extern const char *bench_prog;

/* Nanoseconds on clock c; bench_now_ns is CLOCK_MONOTONIC. */
uint64_t bench_clock_ns(clockid_t c);
uint64_t bench_now_ns(void);

/* Prints "PROG: message" to stderr and exits 1. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* CPU seconds (user + system) of process pid from /proc, -1 if pid <= 0 or
 * unreadable. */
double bench_proc_cpu_s(int pid);
/* A kB figure ("VmRSS", "VmHWM") from /proc/PID/status, -1 if none. */
long bench_proc_status_kb(int pid, const char *key);

/* qsort comparators, ascending. */
int bench_cmp_u64(const void *a, const void *b);
int bench_cmp_i64(const void *a, const void *b);

#endif
