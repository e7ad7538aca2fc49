/*
 * What the HTTP admin API needs of the AMQP front end (docs/http-api.md,
 * "Queues" and "Connections"): queue.declare's argument rules without a
 * channel, and read-only views of connections, channels and consumers.
 * Loop only; the views are valid during the callback.
 */
#ifndef HERALD_AMQP_ADMIN_H
#define HERALD_AMQP_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "amqp/wire.h"
#include "broker/queue.h"

/* queue.declare's argument validation (qargs.c) for queue qname with flags
 * (QF_*). Returns 0, or -1 with the channel error's text ("PRECONDITION_FAILED
 * - ...", the same words as over AMQP) in out. */
int amqp_qargs_validate(amqp_bytes_t qname, unsigned flags, amqp_bytes_t args, char *out, size_t outn);
/* queue.declare's check of x-source-topic / x-source-max-ready (a queue
 * fed from a Kafka topic, broker/feed.h): 0, or the AMQP reply code (406,
 * 404) with the text in out. */
int amqp_qargs_source_topic(broker_t *b, amqp_bytes_t qname, amqp_bytes_t args, char *out, size_t outn);
/* 1 if args are equivalent to q's for a redeclare; else 0 with the text. */
int amqp_qargs_compare(const queue_t *q, amqp_bytes_t args, char *out, size_t outn);

typedef struct {
    const char *peer;           /* "ip:port" */
    const char *user;
    const char *product, *version, *conn_name; /* client properties, "" when absent */
    uint32_t channels;          /* open channels */
    int64_t connected_at_ms;    /* wall clock */
    uint64_t bytes_in, bytes_out;
} amqp_conn_info_t;

typedef struct {
    const char *conn_peer;      /* the connection's "ip:port" */
    uint16_t number;
    uint32_t consumers;
    uint32_t unacked;
    uint32_t prefetch;          /* the global limit if set, else the per-consumer default */
    int confirm;
} amqp_channel_info_t;

typedef struct {
    amqp_bytes_t tag;           /* consumer tag */
    const char *conn_peer;
    uint16_t channel;
    uint32_t prefetch;          /* 0 none */
    int ack;                    /* manual acknowledgements */
} amqp_consumer_info_t;

/* Calls fn for every AMQP connection past the handshake (open). */
void amqp_admin_conns(void (*fn)(void *ctx, const amqp_conn_info_t *i), void *ctx);
/* Calls fn for every open channel of every open connection. */
void amqp_admin_channels(void (*fn)(void *ctx, const amqp_channel_info_t *i), void *ctx);
/* Fills *out for a consumer attached to a queue (every queue consumer is
 * an AMQP consumer). */
void amqp_admin_consumer(const qconsumer_t *qc, amqp_consumer_info_t *out);

#endif
