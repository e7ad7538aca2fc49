/*
 * Kafka RecordBatch v2: the format Herald stores, byte for byte.
 *
 *   offset size field                 notes
 *        0    8 baseOffset            assigned by the broker; NOT covered by the CRC
 *        8    4 batchLength           bytes after this field (total = 12 + batchLength)
 *       12    4 partitionLeaderEpoch
 *       16    1 magic                 2
 *       17    4 crc                   CRC-32C of bytes [21, 12 + batchLength)
 *       21    2 attributes            bits 0-2 compression (0 none, 1 gzip, 2 snappy,
 *                                     3 lz4, 4 zstd), bit 3 timestampType (1: log
 *                                     append time), bit 4 transactional, bit 5 control
 *       23    4 lastOffsetDelta
 *       27    8 baseTimestamp         ms
 *       35    8 maxTimestamp          ms
 *       43    8 producerId            -1: none
 *       51    2 producerEpoch
 *       53    4 baseSequence
 *       57    4 records count
 *       61      records (compressed as a whole when attributes say so)
 *
 * All integers big-endian. Each record (uncompressed form):
 *
 *   length varint (bytes after this field), attributes int8 (unused, 0),
 *   timestampDelta varlong, offsetDelta varint, keyLength varint (-1: null),
 *   key, valueLength varint (-1: null), value, headers count varint,
 *   per header: keyLength varint, key (string), valueLength varint (-1: null), value.
 */
#ifndef HERALD_STORE_BATCH_H
#define HERALD_STORE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define BATCH_HEADER_SIZE 61
#define BATCH_LENGTH_OFFSET 8  /* batchLength field */
#define BATCH_CRC_OFFSET 17
#define BATCH_ATTR_OFFSET 21   /* first byte covered by the CRC */
#define BATCH_MIN_LENGTH (BATCH_HEADER_SIZE - 12) /* batchLength of a batch without records: 49 */
#define BATCH_MAGIC 2

#define BATCH_ATTR_COMPRESSION_MASK 0x07
#define BATCH_ATTR_LOG_APPEND_TIME 0x08
#define BATCH_ATTR_TRANSACTIONAL 0x10
#define BATCH_ATTR_CONTROL 0x20

typedef struct {
    int64_t base_offset;
    int32_t batch_length;      /* bytes after the batchLength field */
    int32_t leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta; /* >= 0 */
    int64_t base_timestamp;    /* ms */
    int64_t max_timestamp;     /* ms */
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;      /* >= 0 */
} batch_header_t;

/* Total bytes of the batch described by h. */
static inline size_t batch_size(const batch_header_t *h) { return 12 + (size_t)h->batch_length; }
/* Absolute offset of the batch's last record. */
static inline int64_t batch_last_offset(const batch_header_t *h) { return h->base_offset + h->last_offset_delta; }

/* Parses and sanity-checks the 61-byte header at p (len bytes available):
 * magic 2, batchLength >= 49, 12 + batchLength <= len, record count >= 0,
 * lastOffsetDelta >= 0. Does not check the CRC. Returns 0, HE_TRUNCATED if
 * len is shorter than the header or the whole batch, HE_MALFORMED otherwise. */
int batch_header_parse(const uint8_t *p, size_t len, batch_header_t *h);

/* Parses only the header (len >= 61), not requiring the records to be present:
 * for readers that fetched just the header bytes from a file. Same checks as
 * batch_header_parse except the total-size one. */
int batch_header_parse_prefix(const uint8_t *p, size_t len, batch_header_t *h);

/* Verifies the CRC-32C of the batch at p (len bytes, at least the whole batch).
 * Returns 0, HE_CORRUPT on mismatch, HE_TRUNCATED/HE_MALFORMED if the header
 * does not parse. */
int batch_verify_crc(const uint8_t *p, size_t len);

/* Writes base into the baseOffset field (the CRC does not cover it). */
void batch_set_base_offset(uint8_t *p, int64_t base);

/* ---- building uncompressed batches ---- */

typedef struct {
    const void *key;   /* header key: a string, not NUL-terminated */
    int32_t key_len;   /* >= 0 */
    const void *value;
    int32_t value_len; /* -1: null */
} batch_header_kv_t;

typedef struct {
    const void *key;
    int32_t key_len;   /* -1: null */
    const void *value;
    int32_t value_len; /* -1: null */
    int64_t timestamp_delta; /* ms, from the batch's base timestamp, >= 0 */
    const batch_header_kv_t *headers; /* optional */
    size_t header_count;
} batch_record_t;

/* Appends to out one uncompressed batch of n >= 1 records with offset deltas
 * 0..n-1: base offset 0 (assigned on append), leader epoch -1, create-time
 * timestamps, producer id/epoch/sequence -1, CRC computed. */
void batch_build(wbuf_t *out, int64_t base_timestamp, const batch_record_t *recs, size_t n);
/* batch_build that also stores in rec_pos[0..n] where each record starts,
 * in bytes from the batch's first byte, and (rec_pos[n]) where the last one
 * ends: record i is the span [rec_pos[i], rec_pos[i + 1]). */
void batch_build_spans(wbuf_t *out, int64_t base_timestamp, const batch_record_t *recs, size_t n, uint32_t *rec_pos);

/* ---- iterating the records of an uncompressed batch ---- */

typedef struct {
    rbuf_t r;            /* over the records section */
    batch_header_t h;
    int32_t left;        /* records not yet returned */
} batch_iter_t;

typedef struct {
    int32_t offset_delta;
    int64_t offset;          /* absolute: base offset + delta */
    int64_t timestamp_delta;
    int64_t timestamp;       /* ms: base timestamp + delta */
    const uint8_t *key;      /* view into the batch; NULL when null */
    int32_t key_len;         /* -1: null */
    const uint8_t *value;    /* view into the batch; NULL when null */
    int32_t value_len;       /* -1: null */
    int32_t header_count;
    int32_t headers_left;    /* for batch_rec_next_header */
    rbuf_t headers;          /* the headers section, for batch_rec_next_header */
} batch_rec_t;

/* Starts iterating the records of the batch at p (len bytes, the whole
 * batch). Returns 0, HE_TRUNCATED/HE_MALFORMED if the header does not parse,
 * HE_UNSUPPORTED if the batch is compressed. The CRC is not checked. */
int batch_iter_init(batch_iter_t *it, const uint8_t *p, size_t len);

/* Returns 1 and fills rec (views into the batch, validated including the
 * headers), 0 after the last record, HE_MALFORMED/HE_TRUNCATED if a record
 * does not fit its declared length or the count does not match the bytes. */
int batch_iter_next(batch_iter_t *it, batch_rec_t *rec);

/* Returns 1 and the next header of rec (views), 0 after the last one, <0 if
 * malformed (cannot happen for records returned by batch_iter_next). */
int batch_rec_next_header(batch_rec_t *rec, batch_header_kv_t *kv);
/* Parses one record of an uncompressed batch on its own: p holds exactly
 * its bytes (a span batch_build_spans reported, read back from the log).
 * Sets the deltas, views and headers; offset and timestamp are -1 (the
 * batch header is not at hand: the caller knows them). Returns 0, or
 * HE_MALFORMED if the bytes are not exactly one well-formed record. */
int batch_record_parse(const uint8_t *p, size_t len, batch_rec_t *rec);

#endif
