/*
 * Stream queues: an AMQP queue declared with x-queue-type=stream is the
 * Kafka topic of the same name, with one partition (docs/streams.md).
 *
 * The queue is a queue_t with QF_STREAM: it has no logs of its own and no
 * ready list. queue.c hands the calls that touch messages to this module:
 * a publish appends one record to partition 0 of the topic, a publisher
 * confirm waits for that partition's high watermark, and each AMQP
 * consumer is a reader that walks the partition by offset, within the
 * consumer's prefetch credit. An ack frees the delivered copy and returns
 * the credit; it never removes anything from the log. Retention is the
 * topic's (retention.ms, retention.bytes), set from x-max-age and
 * x-max-length-bytes.
 *
 * Records and AMQP messages map onto each other as broker/stream_map.h
 * describes.
 */
#ifndef HERALD_BROKER_STREAM_H
#define HERALD_BROKER_STREAM_H

#include <stdint.h>

#include "amqp/wire.h"
#include "broker/broker.h"
#include "broker/queue.h"

/* ---- where a consumer starts (x-stream-offset) ---- */

typedef enum {
    STREAM_FROM_NEXT,   /* the high watermark when it attaches (the default) */
    STREAM_FROM_FIRST,  /* the log start */
    STREAM_FROM_LAST,   /* the first offset of the last stored batch */
    STREAM_FROM_OFFSET, /* value: an offset, clamped to [start, high watermark] */
    STREAM_FROM_TIME,   /* value: ms since the epoch: the first batch with a later timestamp */
} stream_from_t;

typedef struct {
    stream_from_t kind;
    int64_t value;
} stream_start_t;

/* Parses a RabbitMQ interval string: a positive decimal count followed by
 * one unit of Y (365 days), M (30 days), D, h, m or s ("1h", "7D").
 * Returns 0 and *ms (saturated at INT64_MAX), or HE_INVALID. */
int stream_parse_interval(amqp_bytes_t s, int64_t *ms);

/* ---- the queue <-> topic binding ---- */

/* Binds a QF_STREAM queue to its topic. declare = 1 (queue.declare): the
 * topic is created with one partition, or adopted if it exists with one
 * partition, and the retention arguments become its configs. declare = 0
 * (start-up): the topic is looked up, and recreated if a crash lost it.
 * Returns 0, HE_INVALID (name, partition count, or an argument value),
 * or <0 (storage). */
int stream_open(broker_t *b, queue_t *q, int declare);
/* The queue goes away: readers are detached, and with remove = 1 the topic
 * is deleted too (queue.delete). From queue_delete/queue_close. */
void stream_queue_gone(queue_t *q, int remove);
/* Kafka DeleteTopics of a topic that backs a stream: the queue is deleted
 * with it (its consumers are cancelled). From broker_topic_delete. */
void stream_topic_deleting(broker_t *b, topic_t *t);
/* The stream queue bound to topic t, or NULL. */
queue_t *stream_queue_of_topic(broker_t *b, const topic_t *t);
/* The topic configs the stream arguments of a queue.declare ask for:
 * x-max-age -> retention.ms, x-max-length-bytes -> retention.bytes,
 * x-stream-max-segment-size-bytes -> segment.bytes. kv (room for 3) points
 * into vals (3 x 24 bytes). Returns the count, or HE_INVALID and *bad (the
 * argument name) when a value is unusable. */
int stream_arg_configs(amqp_bytes_t args, topic_kv_t *kv, char vals[3][24], const char **bad);

/* ---- called by queue.c for QF_STREAM queues ---- */

/* Appends m as one record. Returns 1 with *epoch and *target (the offset
 * after the record) for the confirm, or <0 if it could not be stored. */
int stream_publish(queue_t *q, qmsg_t *m, uint32_t *epoch, int64_t *target);
/* Appends the AMQP publishes pending for partition p first: called before
 * any other append to a partition with p->stream_pending (topic.c). */
void stream_before_append(partition_t *p);
/* Same contract as queue_publish_state / queue_wait. */
int stream_publish_state(queue_t *q, uint32_t epoch, int64_t target);
int stream_wait(queue_t *q, pwaiter_t *w, int64_t target);
/* The offset the next publish into q will get. */
int64_t stream_next_offset(const queue_t *q);
/* Start-up: appends to (*v, *n, *cap) the claims (STREAM_HDR_CLAIM) in
 * q's records that one of the intents (all for q) expects: the same source
 * queue and offset, at or past the intent's offset. Any other claim is
 * ignored: a Kafka producer or an AMQP header can write that header too,
 * and must not remove messages from queues. Returns how many. Reads the
 * log from the intents' lowest offset on. */
size_t stream_scan_claims(queue_t *q, const qintent_t *in, size_t nin, qclaim_t **v, size_t *n, size_t *cap);
/* Messages in the stream (high watermark - start; declare-ok's count). */
uint32_t stream_message_count(const queue_t *q);
/* Credit may have come back: every reader delivers what fits. */
void stream_kick(queue_t *q);
/* Frees a delivered copy (ack, or its channel went away). */
void stream_entry_free(qentry_t *e);
/* Frees the stream entries among es (a requeue of them means nothing: the
 * log still holds them) and returns how many others are left, compacted
 * at the front. */
size_t stream_drop_entries(qentry_t **es, size_t n);
/* 1 if e is a delivered copy of a stream record. */
int stream_entry_is(const qentry_t *e);

/* ---- readers: one per AMQP consumer ---- */

/* Starts delivering to c (attached to q with queue_consumer_add) from the
 * offset `from` resolves to, within c->can_take. */
void stream_reader_add(queue_t *q, qconsumer_t *c, stream_start_t from);
/* Stops delivering to c (it is being detached). No-op if it has no reader. */
void stream_reader_remove(queue_t *q, qconsumer_t *c);

#endif
