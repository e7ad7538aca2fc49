/*
 * The broker core: topics and partitions over the store, the topic catalog,
 * durability waits (a produce answered after fdatasync), data waits (a fetch
 * long poll), idempotent-producer state. One event loop owns all of it; front
 * ends call these functions from loop callbacks only.
 *
 * Front ends include broker/ headers, never store/ ones: every store access
 * goes through here.
 */
#ifndef HERALD_BROKER_BROKER_H
#define HERALD_BROKER_BROKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "base/histo.h"
#include "server/config.h"

typedef struct broker broker_t;
typedef struct topic topic_t;
typedef struct partition partition_t;
typedef struct group_coord group_coord_t;

/* ---- waiting for the high watermark ----
 *
 * A waiter is embedded in a handler-owned struct. It fires once, on the loop,
 * when the partition's high watermark reaches `target` (status 0), or when
 * the partition fails or is deleted (status < 0). Produce waits for its last
 * offset + 1 to become durable; a fetch long poll waits for its fetch offset
 * + 1 to become visible. A waiter that has fired or been cancelled is
 * unlinked; cancelling an unlinked waiter is a no-op. */
typedef struct pwaiter pwaiter_t;
typedef void (*pwaiter_cb)(pwaiter_t *w, int status);
struct pwaiter {
    pwaiter_t *prev, *next; /* in the partition's list; both NULL when unlinked */
    partition_t *part;      /* set while linked */
    int64_t target;         /* absolute offset the high watermark must reach */
    pwaiter_cb cb;
    void *ctx;              /* for the owner */
};

/* ---- lifecycle ---- */

/* Opens (or creates) the data directory, recovers the catalog, every
 * partition log and the group offsets. Returns NULL and sets *err on failure
 * (message already logged). */
broker_t *broker_new(uv_loop_t *loop, const config_t *cfg, int *err);
/* Closes every log cleanly (fsync + clean-shutdown marker). NULL is a no-op. */
void broker_free(broker_t *b);
const config_t *broker_config(const broker_t *b);
uv_loop_t *broker_loop(const broker_t *b);
group_coord_t *broker_groups(const broker_t *b);
/* "host", port advertised to Kafka clients. */
void broker_kafka_advertised(const broker_t *b, const char **host, int *port);
void broker_set_kafka_port(broker_t *b, int port);
/* The cluster id (stable across restarts) and node id. */
const char *broker_cluster_id(const broker_t *b);
int32_t broker_node_id(const broker_t *b);
/* Records a request's handling time (metrics). */
void broker_observe_request(broker_t *b, int16_t api_key, int64_t ns);
/* Records how long the AMQP front end took to handle a method frame
 * (class << 16 | method id, a method the codec knows), ns. */
void broker_observe_amqp_method(broker_t *b, uint32_t method_id, int64_t ns);
/* The latency histograms for /metrics (base/histo.h), valid until the next
 * observation: Kafka requests by API key (arrival to response complete;
 * keys as the peer sent them), AMQP methods by id, and one log sync each
 * (fdatasync on the worker pool). */
const histo_map_t *broker_kafka_histos(const broker_t *b);
const histo_map_t *broker_amqp_histos(const broker_t *b);
const histo_t *broker_fsync_histo(const broker_t *b);

/* ---- topics ---- */

#define TOPIC_NAME_MAX 249

typedef struct {
    const char *key, *value; /* NUL-terminated */
} topic_kv_t;

/* Validates a topic name the way Kafka does: 1..249 chars of [a-zA-Z0-9._-],
 * not "." or "..". Returns 0 or HE_INVALID. */
int broker_topic_name_valid(const char *name, size_t len);
topic_t *broker_topic_find(broker_t *b, const char *name, size_t len);
/* Creates and persists a topic. configs may be NULL. Returns 0, HE_EXISTS,
 * HE_INVALID (name, partition count, or a config: *bad_config names it). */
int broker_topic_create(broker_t *b, const char *name, size_t len, int32_t partitions, const topic_kv_t *configs,
                        size_t nconfigs, topic_t **out, const char **bad_config);
/* Deletes a topic: waiters fail, logs are removed. */
int broker_topic_delete(broker_t *b, topic_t *t);
/* Grows a topic to `total` partitions (HE_INVALID if not larger). */
int broker_topic_add_partitions(broker_t *b, topic_t *t, int32_t total);
/* Validates and applies topic configs (replace = 1: the set becomes exactly
 * these; 0: merge). Persisted. */
int broker_topic_set_configs(broker_t *b, topic_t *t, const topic_kv_t *configs, size_t n, int replace,
                             const char **bad_config);
/* Checks a single topic config key/value without applying it. */
int broker_topic_config_valid(const char *key, const char *value);
/* Iteration in creation order. */
topic_t *broker_topic_first(broker_t *b);
topic_t *topic_next(topic_t *t);
int broker_topic_count(const broker_t *b);

const char *topic_name(const topic_t *t);
const uint8_t *topic_id(const topic_t *t); /* 16 bytes */
int32_t topic_partition_count(const topic_t *t);
partition_t *topic_partition(topic_t *t, int32_t index); /* NULL if out of range */
/* The effective config value (topic override or broker default) for key;
 * *is_default tells which. Returns NULL for an unknown key. Writes into buf. */
const char *topic_config_get(const topic_t *t, const broker_t *b, const char *key, char *buf, size_t buflen,
                             int *is_default);
/* Known topic config keys, NULL-terminated. */
extern const char *const topic_config_keys[];

/* ---- partitions ---- */

int32_t partition_index(const partition_t *p);
topic_t *partition_topic(const partition_t *p);
int64_t partition_start_offset(const partition_t *p);
int64_t partition_end_offset(const partition_t *p);
/* Offsets below are visible to consumers: with flush=always, durable ones. */
int64_t partition_high_watermark(const partition_t *p);
int64_t partition_size_bytes(const partition_t *p);

/* Result of an append, per batch. */
typedef struct {
    int64_t base_offset;   /* assigned (or the original one for a duplicate) */
    int duplicate;         /* 1: an idempotent retry, not re-appended */
} append_result_t;

/* Validates and appends one RecordBatch v2 (buf is modified: base offset).
 * Checks magic, CRC and idempotent sequence. Returns 0, or HE_CORRUPT (CRC),
 * HE_MALFORMED, HE_STORAGE / -errno (disk), or one of the BROKER_E_* codes
 * below. Then the caller waits for durability with partition_wait(). */
int partition_append(broker_t *b, partition_t *p, uint8_t *batch, size_t len, append_result_t *res);
/* The same for a batch the broker built itself (batch_build): its CRC was
 * computed a moment ago, so it is not computed again (1.5 % of the
 * broker's CPU when every AMQP message is written twice). */
int partition_append_built(broker_t *b, partition_t *p, uint8_t *batch, size_t len, append_result_t *res);

enum {
    BROKER_E_OUT_OF_ORDER_SEQ = -20001,
    BROKER_E_DUPLICATE_SEQ = -20002,
    BROKER_E_INVALID_PRODUCER_EPOCH = -20003,
    BROKER_E_UNKNOWN_PRODUCER_ID = -20004,
    BROKER_E_INVALID_RECORD = -20005,
};

/* Links w to wait for the high watermark to reach w->target. Returns 1
 * without linking if it already has (the caller goes on synchronously; the
 * callback never fires), otherwise 0: w->cb fires later. */
int partition_wait(partition_t *p, pwaiter_t *w);
void pwaiter_cancel(pwaiter_t *w);

/* A front end's once-a-second work (AMQP consumer timeouts), called from
 * the vhost's maintenance tick. One hook; setting it again replaces it. */
void broker_set_tick_hook(broker_t *b, void (*fn)(broker_t *b));

/* Waits until every catalog change made so far (topic create/delete/
 * configs, producer-id blocks) is durable. Same return rule as
 * partition_wait. Admin responses are sent after it. */
int broker_catalog_wait(broker_t *b, pwaiter_t *w);

/* Appends whole batches from offset into out (see plog_read); counted as
 * consumed (partition_counters). The _quiet form does not count (reads the
 * broker makes for itself). */
int64_t partition_read(partition_t *p, int64_t offset, size_t max_bytes, wbuf_t *out);
int64_t partition_read_quiet(partition_t *p, int64_t offset, size_t max_bytes, wbuf_t *out);

/* Running totals since the broker started (not durable): records and
 * batch bytes appended, and read by consumers (each read counts). */
typedef struct {
    uint64_t msgs_in, bytes_in, msgs_out, bytes_out;
} partition_counters_t;
const partition_counters_t *partition_counters(const partition_t *p);
/* Segment files of the partition's log. */
int partition_segment_count(const partition_t *p);
/* Offset of the first batch with max timestamp >= ts; HE_NOT_FOUND if none. */
int partition_offset_for_time(partition_t *p, int64_t ts, int64_t *offset, int64_t *batch_ts);
/* The batch holding the largest timestamp (ListOffsets -3): its base offset
 * and that timestamp; HE_NOT_FOUND when nothing is visible. */
int partition_max_timestamp(partition_t *p, int64_t *offset, int64_t *ts);
/* Kafka DeleteRecords: raises the log start offset (HE_OUT_OF_RANGE if
 * beyond the high watermark). */
int partition_delete_before(broker_t *b, partition_t *p, int64_t offset);

/* ---- producer ids ---- */

/* Allocates a new producer id (persisted block allocation). */
int broker_next_producer_id(broker_t *b, int64_t *pid);

#endif
