/*
 * The mapping between AMQP messages and the Kafka records of a stream
 * queue (stream.h, docs/streams.md). Broker-internal: it works on stored
 * records (store/batch.h).
 */
#ifndef HERALD_BROKER_STREAM_MAP_H
#define HERALD_BROKER_STREAM_MAP_H

#include "base/buf.h"
#include "broker/broker.h"
#include "broker/queue.h"
#include "store/batch.h"

/* ---- the record mapping (stream_map.c, pure functions) ---- */

/* Appends to out one uncompressed record batch holding the n >= 1
 * messages ms, one record each (timestamps relative to the first's): for
 * each message m, key = routing key (null if empty), value = body,
 * timestamp = arrival, and record
 * headers: each entry of the AMQP headers table (strings as they are,
 * numbers in decimal, booleans true/false, void as a null value; nested
 * tables and arrays are left out), each other property as
 * "amqp.<property-name>" (e.g. amqp.content-type, amqp.delivery-mode), the
 * exchange as "amqp.exchange", and "amqp.properties", the property bytes
 * exactly as published, so AMQP consumers get them back unchanged. */
void stream_map_batch(wbuf_t *out, qmsg_t *const *ms, size_t n);
/* A dead-letter copy (qmsg origin_qid / origin_off) also carries its
 * claim: this header, 16 bytes (queue id, offset; big-endian). It is under
 * the amqp. prefix, so an AMQP reader never sees it as a header. */
#define STREAM_HDR_CLAIM "amqp.claim"
/* The message an AMQP consumer gets for a stored record: with
 * "amqp.properties", those properties; otherwise properties rebuilt from
 * the amqp.* headers, and every other record header as a longstr entry of
 * the headers table (a null value as void; names over 255 bytes, and
 * headers past 16 KiB of table, are left out). Either way the headers table
 * gains x-stream-offset (long) = the record's offset. Routing key = the
 * record key (empty if null or over 255 bytes), exchange = amqp.exchange
 * or "". partition >= 0 (a queue fed from a topic, feed.h) adds
 * x-stream-partition (signedint). Returns a new message (refs = 1). */
qmsg_t *stream_map_message(const batch_rec_t *rec, int32_t partition);

/* ---- reading a partition record by record (stream.c) ---- */

/* A position in a partition log with the batches read ahead. Reads only up
 * to the high watermark; decompresses compressed batches; skips control
 * batches. */
typedef struct {
    int64_t next_off;       /* absolute offset of the next record to return */
    wbuf_t buf;             /* whole batches read from the log */
    wbuf_t unz;             /* the batch being iterated, decompressed (when it was compressed) */
    size_t pos;             /* start of the batch being iterated (or of the next one) in buf */
    size_t cur_len;         /* bytes of the batch being iterated, 0 none */
    batch_iter_t it;
    int warned_bad;         /* a batch that could not be decompressed was logged */
} lcursor_t;

void lcursor_init(lcursor_t *c, int64_t offset);
void lcursor_destroy(lcursor_t *c);
/* Moves to offset, dropping what was read ahead. */
void lcursor_seek(lcursor_t *c, int64_t offset);
/* Fills rec (views valid until the next call) with the next record of p
 * at or past c->next_off and moves past it. Below the log start (retention)
 * it continues from the start. what names the reader in log messages.
 * Returns 1, 0 if none is visible yet (or p is NULL), or <0 (read error). */
int lcursor_next(lcursor_t *c, partition_t *p, batch_rec_t *rec, const char *what);

#endif
