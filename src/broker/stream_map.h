/*
 * The mapping between AMQP messages and the Kafka records of a stream
 * queue (stream.h, docs/streams.md). Broker-internal: it works on stored
 * records (store/batch.h).
 */
#ifndef HERALD_BROKER_STREAM_MAP_H
#define HERALD_BROKER_STREAM_MAP_H

#include "base/buf.h"
#include "broker/queue.h"
#include "store/batch.h"

/* ---- the record mapping (stream_map.c, pure functions) ---- */

/* Appends to out one uncompressed record batch holding m: key = routing
 * key (null if empty), value = body, timestamp = arrival, and record
 * headers: each entry of the AMQP headers table (strings as they are,
 * numbers in decimal, booleans true/false, void as a null value; nested
 * tables and arrays are left out), each other property as
 * "amqp.<property-name>" (e.g. amqp.content-type, amqp.delivery-mode), the
 * exchange as "amqp.exchange", and "amqp.properties", the property bytes
 * exactly as published, so AMQP consumers get them back unchanged. */
void stream_map_batch(wbuf_t *out, const qmsg_t *m);
/* The message an AMQP consumer gets for a stored record: with
 * "amqp.properties", those properties; otherwise properties rebuilt from
 * the amqp.* headers, and every other record header as a longstr entry of
 * the headers table (a null value as void). Either way the headers table
 * gains x-stream-offset (long) = the record's offset. Routing key = the
 * record key (empty if null or over 255 bytes), exchange = amqp.exchange
 * or "". Returns a new message (refs = 1). */
qmsg_t *stream_map_message(const batch_rec_t *rec);

#endif
