/*
 * Decompressing a stored record batch, for readers that need its records
 * (an AMQP consumer of a stream queue). Kafka consumers get the stored
 * bytes as they are and never need this.
 *
 * Codecs (attributes bits 0-2): 1 gzip (RFC 1952; zlib streams accepted
 * too), 2 snappy (raw, or the xerial framing Java clients write: magic
 * 82 'S' 'N' 'A' 'P' 'P' 'Y' 00, two u32 versions, then blocks of u32 BE
 * length + raw snappy), 3 lz4 (the LZ4 frame format), 4 zstd (frames).
 */
#ifndef HERALD_STORE_BATCH_UNZIP_H
#define HERALD_STORE_BATCH_UNZIP_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define BATCH_UNZIP_MAX (64u << 20) /* decompressed records of one batch, at most */

/* Appends to out the batch at p (len bytes, the whole batch) with its
 * records decompressed: the same 61-byte header with the compression bits
 * cleared (the CRC is not recomputed: for batch_iter_* only), then the
 * records. Returns 0, HE_UNSUPPORTED (unknown codec), HE_TOO_LARGE (over
 * BATCH_UNZIP_MAX) or HE_MALFORMED/HE_CORRUPT (not valid for its codec). */
int batch_unzip(const uint8_t *p, size_t len, wbuf_t *out);

#endif
