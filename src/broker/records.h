/*
 * Kafka records for front ends that do not speak the Kafka wire format
 * (the HTTP API): append records given one by one, and read records back
 * one by one, compressed batches included. The Kafka front end keeps
 * batches opaque and does not use this.
 */
#ifndef HERALD_BROKER_RECORDS_H
#define HERALD_BROKER_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"

typedef struct {
    const void *p;     /* NULL when null */
    int32_t len;       /* -1: null (keys and values) */
} records_bytes_t;

typedef struct {
    const char *key;   /* header key, len bytes */
    int32_t key_len;
    records_bytes_t value;
} records_header_t;

typedef struct {
    int64_t offset;    /* absolute (reading); ignored when appending */
    int64_t timestamp; /* ms since the epoch; appending: <= 0 means now */
    records_bytes_t key, value;
    const records_header_t *headers;
    size_t nheaders;
} records_rec_t;

/* Appends recs[0..n) (n >= 1) as one uncompressed batch to p. Returns 0 with
 * *base the offset of the first and *target the high watermark to wait for
 * (partition_wait), or an error as partition_append. */
int records_append(broker_t *b, partition_t *p, const records_rec_t *recs, size_t n, int64_t *base,
                   int64_t *target);

/* Visits the visible records of p from offset on (counted as consumed:
 * the records handed out and their key and value bytes), at most limit of them and
 * about max_bytes of stored batches, decompressing as needed; control
 * batches are skipped. The record and its views are valid during the call.
 * *next gets the offset to read from next time. Returns the number visited
 * or <0 (HE_OUT_OF_RANGE below the start offset, storage errors). */
typedef void (*records_visit_fn)(void *ctx, const records_rec_t *rec);
int records_read(partition_t *p, int64_t offset, int limit, size_t max_bytes, records_visit_fn fn, void *ctx,
                 int64_t *next);

/* The partition a keyed record goes to, as the Java client computes it
 * (murmur2 of the key, positive, modulo the partition count). */
int32_t records_partition_for_key(const void *key, size_t len, int32_t npart);

#endif
