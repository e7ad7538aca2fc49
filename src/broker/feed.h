/*
 * Queues fed from a Kafka topic (Herald extension): a classic or quorum
 * queue declared with x-source-topic = <topic> receives every new record
 * of every partition of that topic as a message (the stream mapping,
 * stream_map.h, plus x-stream-partition), and its AMQP consumers ack them
 * one by one like any other message (docs/streams.md, "Queues fed from a
 * topic").
 *
 * Feeding pauses while the queue holds x-source-max-ready (default 1000)
 * ready messages or more, and resumes when consumers take them.
 *
 * Exactly once across restarts: each fed message is stored with a
 * dead-letter style claim (qmsg origin_qid/origin_off, record header "o")
 * naming its source: origin_qid = feed_source_id(queue id, partition),
 * origin_off = the source offset. At start-up the claims found in the
 * queue's data log give, per partition, the last fed offset whose message
 * was stored; a small position log (<data>/queues/<queue id>-feed: records
 * key "f", value u32 count + i64 next offset per partition, the last one
 * wins) keeps the positions of messages whose data-log segments were
 * dropped after they were acked. The feed resumes after the larger of the
 * two, so a stored message is never fed again and none is skipped. The
 * position log only records positions whose messages are durable.
 */
#ifndef HERALD_BROKER_FEED_H
#define HERALD_BROKER_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/queue.h"

#define FEED_MAX_READY_DEFAULT 1000

/* 1 if the queue arguments name a source topic. */
int feed_wanted(amqp_bytes_t args);
/* Sets up the feed of q (its arguments name the topic). declare = 1: a new
 * queue, fed from each partition's high watermark now. declare = 0
 * (start-up, after queue_open): positions come from the position log and,
 * through feed_claims, the data log. Returns 0, HE_NOT_FOUND (no such
 * topic, declare only) or <0. */
int feed_open(broker_t *b, queue_t *q, int declare);
/* The claims every data log held (vhost_open, before they are resolved):
 * feed claims set positions; then every feed starts. */
void feed_claims(broker_t *b, const qclaim_t *c, size_t n);
/* q goes away (remove = 1: deleted, its position log too). */
void feed_close(queue_t *q, int remove);
/* Room may have come back in q: feed. */
void feed_kick(queue_t *q);

#endif
