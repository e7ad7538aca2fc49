/*
 * Rates and history for the HTTP API and the dashboard. A sampler on the
 * event loop reads the broker's running totals (queue_counters,
 * partition_counters) every second and keeps, per queue, partition and
 * consumer group, per-second rates (exponentially weighted over about 5 s)
 * and a history of 120 points, one per 5 s. Entries of objects that are
 * gone are dropped at the next sample. Loop only.
 */
#ifndef HERALD_HTTP_STATS_H
#define HERALD_HTTP_STATS_H

#include <jansson.h>

#include "broker/broker.h"
#include "broker/queue.h"
#include "http/http.h"

typedef struct http_stats http_stats_t;

#define STATS_HISTORY 120
#define STATS_HISTORY_MS 5000

/* Per second, in the order of queue_counters_t's fields. */
typedef struct {
    double publish, refuse, duplicate, deliver, redeliver, ack, ret, dead_letter, expire, drop;
} queue_rates_t;

typedef struct {
    double in, in_bytes, out, out_bytes;
} partition_rates_t;

typedef struct {
    double kafka_in, kafka_in_bytes, kafka_out, kafka_out_bytes, amqp_publish, amqp_deliver, amqp_ack;
} overview_rates_t;

/* The data directory's disk use (every file's allocated blocks) and its
 * file system's free and total bytes, measured off the loop every 10 s. */
typedef struct {
    int valid; /* 0 until the first measurement is in */
    uint64_t used_bytes, free_bytes, total_bytes;
} http_disk_t;
void http_stats_disk(http_stats_t *s, http_disk_t *out);
/* Wall-clock time the sampler started (with the broker). */
int64_t http_stats_started_ms(http_stats_t *s);

http_stats_t *http_stats_new(broker_t *b);
void http_stats_free(http_stats_t *s); /* NULL ok */

/* Zeros until the object has been sampled twice. */
void http_stats_queue_rates(http_stats_t *s, const queue_t *q, queue_rates_t *out);
void http_stats_partition_rates(http_stats_t *s, const partition_t *p, partition_rates_t *out);
void http_stats_overview_rates(http_stats_t *s, overview_rates_t *out);
/* New references: [[time_ms, ready, unacked], ...], [[time_ms, lag], ...],
 * and the overview's (docs/http-api.md). Empty arrays before the first point. */
json_t *http_stats_queue_history(http_stats_t *s, const queue_t *q);
json_t *http_stats_group_history(http_stats_t *s, const char *group_id);
json_t *http_stats_overview_history(http_stats_t *s);

/* Sum over the group's committed partitions of high watermark - committed
 * offset (negative terms count 0). */
int64_t http_stats_group_lag(broker_t *b, const char *group_id);

/* The sampler of the running HTTP server (NULL when HTTP is off). */
http_stats_t *http_stats(const http_req_t *r);

#endif
