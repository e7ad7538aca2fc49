/*
 * Request dispatch: one table maps each API key to its handler and to the
 * versions Herald accepts; the same table (with the codec's schema ranges)
 * drives ApiVersions. See dispatch.c.
 */
#ifndef HERALD_KAFKA_DISPATCH_H
#define HERALD_KAFKA_DISPATCH_H

#include "broker/broker.h"
#include "kafka/conn.h"

/* A handler decodes rq->body at rq->hdr.api_version, acts, and answers now
 * or later with kreq_begin_response + encode + kreq_done. Returns 0, or <0
 * if the request is malformed (the connection is then closed). */
typedef int (*kafka_handler_t)(broker_t *b, kreq_t *rq);

typedef struct {
    int16_t key;
    kafka_handler_t handler;
    int16_t advertised_min; /* what ApiVersions says (0 where librdkafka needs it) */
    int16_t accepted_min;   /* lower versions are refused at request time */
    int16_t max;            /* highest version handled (<= the schema's) */
} kafka_api_entry_t;

/* Runs the handler for rq, or returns <0 for an unknown API or version. */
int kafka_dispatch(broker_t *b, kreq_t *rq);

/* The dispatch table, for ApiVersions. */
const kafka_api_entry_t *kafka_api_entries(int *n);

#endif
