/*
 * Broker-internal structures shared by broker.c, topic.c, catalog.c and the
 * group coordinator. Not for front ends (they use broker.h).
 */
#ifndef HERALD_BROKER_INTERNAL_H
#define HERALD_BROKER_INTERNAL_H

#include <uthash.h>

#include "base/histo.h"
#include "broker/alarm.h"
#include "broker/broker.h"
#include "store/batch.h"
#include "store/flusher.h"
#include "store/plog.h"

#define PRODUCER_BATCHES_KEPT 5 /* as Kafka: the last 5 batches per producer */

typedef struct {
    int32_t first_seq, last_seq;
    int64_t base_offset;
} producer_batch_t;

/* Idempotent producer state for one partition and producer id. */
typedef struct {
    int64_t producer_id; /* hash key */
    int16_t epoch;
    int n;                                    /* batches in ring, <= PRODUCER_BATCHES_KEPT */
    int head;                                 /* index of the newest */
    producer_batch_t ring[PRODUCER_BATCHES_KEPT];
    UT_hash_handle hh;
} producer_state_t;

struct partition {
    topic_t *topic;         /* NULL for internal logs (catalog, offsets) */
    int32_t index;
    plog_t *log;
    char *dir;              /* owned */
    pwaiter_t *waiters;     /* waiting for the high watermark; unordered */
    producer_state_t *producers; /* uthash by producer_id */
    int failed;             /* a sync failed: the log is read-only */
    int stream_pending;     /* a stream queue holds publishes to append first (stream.c) */
    int spill;              /* never synced, discarded at close: a non-durable queue's paged backlog */
    partition_counters_t io;
    UT_hash_handle hh_log;  /* in broker->by_log, keyed by the plog pointer */
};

typedef struct topic_cfg_entry {
    char *key, *value; /* owned */
    struct topic_cfg_entry *next;
} topic_cfg_entry_t;

struct topic {
    char *name;             /* owned, NUL-terminated */
    uint8_t id[16];
    int32_t npart;
    partition_t **parts;    /* npart entries, owned */
    topic_cfg_entry_t *configs; /* overrides, owned */
    topic_t *next, *prev;   /* creation order */
    UT_hash_handle hh;
};

typedef struct queue queue_t;
typedef struct vhost vhost_t;

struct broker {
    uv_loop_t *loop;
    config_t cfg;
    char cluster_id[32];
    char adv_host[256];
    int adv_port;
    flusher_t *flusher;
    topic_t *topics;                  /* uthash by name */
    topic_t *first, *last;            /* creation order */
    int ntopics;
    partition_t *by_log;              /* uthash: plog pointer -> partition */
    partition_t *catalog;             /* internal log: topics, producer id blocks */
    partition_t *offsets;             /* internal log: committed group offsets */
    int64_t next_pid, pid_block_end;  /* producer ids [next_pid, pid_block_end) are ours */
    group_coord_t *groups;
    uv_timer_t maint_timer;
    alarm_t *alarm;                   /* memory and disk alarms */
    uint64_t requests_total;
    histo_map_t kafka_histos;         /* request durations by Kafka API key */
    histo_map_t amqp_histos;          /* method handling durations by AMQP class << 16 | method */
    vhost_t *vhost;                   /* AMQP: the one virtual host, "/" */
    queue_t *dirty_queues;            /* queues with records to append this loop turn */
    queue_t **due_queues;             /* queues that may have timed work: the due passes' round (queue.c) */
    uint32_t ndue, capdue;
    void (*tick_hook)(broker_t *b);   /* broker_set_tick_hook */
};

/* Opens an internal or topic partition log in dir (taking ownership of dir)
 * and registers it with the flusher map. */
partition_t *partition_open(broker_t *b, topic_t *t, int32_t index, char *dir, int *err);
/* The same for a queue's spill log: nothing in it is synced (on open, at
 * close, or by the flusher: appends are not waited for); a new one starts
 * at offset base. */
partition_t *partition_open_spill(broker_t *b, char *dir, int64_t base, int *err);
/* Closes the log (clean), fails its waiters with HE_CLOSED, frees. */
void partition_close(broker_t *b, partition_t *p);
/* Called when the high watermark may have moved: fires satisfied waiters
 * (all of them, with status, when status < 0). */
void partition_hw_advanced(partition_t *p, int status);
/* Fires, oldest first, the waiters whose target is in (lo, hi], with status. */
void partition_fire_waiters(partition_t *p, int64_t lo, int64_t hi, int status);
/* Calls fn for every record of an uncompressed internal log (catalog,
 * offsets, queue logs) from its start to its end, in order; rec and its
 * views are valid during the call only. Returns 0, HE_CORRUPT or -errno. */
typedef void (*partition_scan_fn)(void *ctx, const batch_rec_t *rec);
int partition_scan(partition_t *p, partition_scan_fn fn, void *ctx);
/* Deletes the whole segments below offset without a start-offset file
 * (queue logs; see plog_drop_segments_before). */
int partition_drop_segments_before(partition_t *p, int64_t offset);
/* Fills a plog config from broker defaults and the topic's overrides. */
void topic_plog_config(const broker_t *b, const topic_t *t, plog_config_t *pc);
/* Appends an internal record (key/value) to an internal log: used by the
 * catalog and the offsets log. Returns 0 and the offset after it (wait
 * target) or <0. */
int internal_append(broker_t *b, partition_t *p, const void *key, int32_t klen, const void *val, int32_t vlen,
                    int64_t *target);

/* Asks for a queue_run_due pass over the vhost's queues at wall-clock
 * time wall_ms (earlier requests win; vhost.c). */
void vhost_wake_at(vhost_t *v, int64_t wall_ms);

/* Creates path and its missing parents. Returns 0 or -errno. */
int mkdir_p(const char *path);

/* Catalog records (catalog.c). */
int catalog_replay(broker_t *b);
int catalog_put_topic(broker_t *b, const topic_t *t, int64_t *target);
int catalog_delete_topic(broker_t *b, const char *name, int64_t *target);
int catalog_put_pid_block(broker_t *b, int64_t block_end, int64_t *target);

/* AMQP entities in the catalog (vhost.c): keys starting "x:", "q:", "b:". */
void vhost_replay_record(broker_t *b, const uint8_t *key, int32_t klen, const uint8_t *val, int32_t vlen);

/* Topic objects (topic.c). */
topic_t *topic_alloc(const char *name, size_t len, const uint8_t id[16], int32_t npart);
void topic_free(broker_t *b, topic_t *t);
int topic_open_partitions(broker_t *b, topic_t *t, int32_t from);
void topic_set_config_raw(topic_t *t, const char *key, const char *value);
/* Frees every config override of t. */
void topic_configs_clear(topic_t *t);

#endif
