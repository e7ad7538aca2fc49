/*
 * Resource alarms, with RabbitMQ's meaning: a memory high-water mark on the
 * broker's resident set, and a low-water mark on the free space of the file
 * system that holds the data directory. Both are sampled once a second by a
 * timer on the broker loop (a read of /proc/self/statm and a statvfs: a few
 * microseconds). A change of the set of alarms that are on is logged and
 * reported to the listeners (the AMQP front end blocks publishing
 * connections while any alarm is on; see amqp/conn.c and docs/amqp.md).
 * Kafka clients are not throttled by alarms.
 *
 * The alarm object is owned by the broker (broker_alarm()); it lives from
 * broker_new() to broker_free().
 */
#ifndef HERALD_BROKER_ALARM_H
#define HERALD_BROKER_ALARM_H

#include <stdint.h>
#include <uv.h>

#include "server/config.h"

typedef struct broker broker_t;
typedef struct alarm alarm_t;

/* Bits of the set of alarms that are on. */
enum { ALARM_MEMORY = 1, ALARM_DISK = 2 };

/* What one sample measured. A reading that failed is -1 and leaves that
 * alarm as it was. */
typedef struct {
    int64_t rss_bytes;       /* resident set of the process */
    int64_t disk_free_bytes; /* available to unprivileged users (statvfs f_bavail) */
} alarm_sample_t;

/* Thresholds in bytes. The memory alarm is on while rss > memory_limit,
 * the disk alarm while free < disk_limit (RabbitMQ's comparisons; neither
 * has hysteresis: one sample a second bounds the flapping). */
typedef struct {
    int64_t memory_limit;
    int64_t disk_limit;
} alarm_limits_t;

/* The alarms that are on after sample s, given those on before (prev). */
unsigned alarm_eval(const alarm_limits_t *l, const alarm_sample_t *s, unsigned prev);

/* The memory limit in bytes for a configured watermark and an amount of
 * physical memory (a share of it, or the absolute size). */
int64_t alarm_memory_limit(const config_share_t *wm, uint64_t physical_bytes);

/* RabbitMQ's connection.blocked reason for a set of alarms: "low on memory",
 * "low on disk", "low on disk & memory". Static string. */
const char *alarm_reason(unsigned active);

/* Called on the loop whenever the set of alarms that are on changes. */
typedef void (*alarm_cb)(void *ctx, unsigned active);

/* Creates the alarms for cfg (memory.high.watermark, disk.free.limit, data)
 * and starts the 1 s timer (unreferenced: it does not keep the loop alive).
 * The first sample is taken at once, so alarm_active() is meaningful from
 * the start. */
alarm_t *alarm_new(uv_loop_t *loop, const config_t *cfg);
/* Stops the timer; the memory is released in its close callback (the loop
 * must run once more). NULL is a no-op. */
void alarm_free(alarm_t *a);
/* ALARM_* bits of the alarms that are on. */
unsigned alarm_active(const alarm_t *a);
/* The limits in force (bytes). */
alarm_limits_t alarm_limits(const alarm_t *a);
/* Registers a listener (at most 4; a front end registers once). */
void alarm_listen(alarm_t *a, alarm_cb cb, void *ctx);
/* Replaces the sampler (tests): probe fills *out. NULL restores the real
 * one. */
void alarm_set_probe(alarm_t *a, void (*probe)(void *ctx, alarm_sample_t *out), void *ctx);
/* Samples now, as the timer does each second: updates the set and calls the
 * listeners if it changed. */
void alarm_check(alarm_t *a);

/* The broker's alarms (broker.c). */
alarm_t *broker_alarm(const broker_t *b);

#endif
