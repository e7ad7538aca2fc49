/*
 * Kafka wire codec: common types, request/response headers, and the
 * primitive readers/writers that the generated kafka_msgs.c calls.
 *
 * A request on the wire (all integers big-endian):
 *
 *   +----------+---------+-------------+----------------+-----------+---------+------+
 *   | size i32 | key i16 | version i16 | correlation i32| client_id | [tags]  | body |
 *   +----------+---------+-------------+----------------+-----------+---------+------+
 *              '------------- request header v1 / v2 --------------------------'
 *   client_id: int16 length + bytes, -1 = null (never compact, even in v2).
 *   [tags] (header v2, i.e. flexible request versions): uvarint count, then
 *          per field uvarint tag, uvarint size, size bytes.
 *
 * A response: size i32 | correlation i32 | [tags] (header v1) | body.
 * ApiVersions responses always use header v0 (no tags).
 *
 * Body encodings, non-flexible / flexible versions:
 *   string   int16 len (-1 null)        / uvarint len+1 (0 null)
 *   bytes    int32 len (-1 null)        / uvarint len+1 (0 null)
 *   array    int32 count (-1 null)      / uvarint count+1 (0 null)
 *   struct   fields                     / fields, then a tagged-field section
 * The size prefix of a request frame is the connection's business, not this
 * codec's: everything here starts after it.
 */
#ifndef HERALD_KAFKA_KCODEC_H
#define HERALD_KAFKA_KCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"

/* A string view: not NUL-terminated, borrowed from the decoded buffer.
 * len -1 = null (p is then NULL). */
typedef struct {
    const char *p;
    int32_t len;
} kstr_t;

/* A byte-range view (bytes and record batches), borrowed; len -1 = null. */
typedef struct {
    const uint8_t *p;
    int32_t len;
} kbytes_t;

typedef struct {
    uint8_t b[16];
} kuuid_t;

/* kstr_t from a C string literal or NUL-terminated string. */
#define KSTR(s) ((kstr_t){ (s), (int32_t)strlen(s) })
#define KSTR_NULL ((kstr_t){ NULL, -1 })
#define KBYTES_NULL ((kbytes_t){ NULL, -1 })

/* One row of the generated kafka_api_table[]: what the schema covers. */
typedef struct {
    int16_t key;
    const char *name;         /* "Produce" */
    int16_t min_version;
    int16_t max_version;
    int16_t flexible_min;     /* first flexible version, -1 if none */
} kafka_api_info_t;

/* Returns the schema's row for an API key, or NULL if the key is unknown. */
const kafka_api_info_t *kafka_api_lookup(int16_t key);

/* Returns 1 if (key, version) uses flexible encodings (header v2/v1, compact
 * types, tagged fields), judged by the schema's flexible_min even for versions
 * above max_version (a newer client's request header is still parseable). */
int kafka_api_is_flexible(int16_t key, int16_t version);

typedef struct {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    kstr_t client_id; /* nullable, a view into the request buffer */
} kafka_req_header_t;

/* Decodes a request header (v1, or v2 when the version is flexible: tagged
 * fields skipped) from r, which starts after the frame's size prefix and is
 * left at the body. Unknown API keys decode as header v1 so the caller can
 * still answer with the correlation id. Returns 0 or a negative HE_* code. */
int kafka_req_header_decode(rbuf_t *r, kafka_req_header_t *h);

/* Encodes a request header (tests and tools); client_id may be null. */
void kafka_req_header_encode(wbuf_t *w, const kafka_req_header_t *h);

/* Writes the response header for (api_key, api_version): v0, or v1 (an empty
 * tagged-field section) when flexible, except ApiVersions which is always v0. */
void kafka_resp_header_encode(wbuf_t *w, int16_t api_key, int16_t api_version,
                              int32_t correlation_id);

/* ---- primitives used by the generated code ---- */

/* Reads a string / bytes (compact when flex). A null where !nullable, or a
 * length beyond what remains, fails the reader. The view borrows r's buffer. */
void kcodec_read_str(rbuf_t *r, int flex, int nullable, kstr_t *out);
void kcodec_read_bytes(rbuf_t *r, int flex, int nullable, kbytes_t *out);
/* Reads an array count: returns n >= 0, -1 for null (only if nullable), or 0
 * with r failed. n * min_elem must fit in the bytes remaining, so a hostile
 * count fails before anything is allocated. */
int32_t kcodec_read_count(rbuf_t *r, int flex, int nullable, size_t min_elem);
void kcodec_read_uuid(rbuf_t *r, kuuid_t *out);
/* Tagged fields: read the count (bounded by the bytes remaining), then per
 * field kcodec_read_tag() which returns the tag and narrows *sub to its data,
 * then kcodec_tag_done() which turns an error inside *sub into HE_MALFORMED. */
uint32_t kcodec_read_tag_count(rbuf_t *r);
uint32_t kcodec_read_tag(rbuf_t *r, rbuf_t *sub);
void kcodec_tag_done(rbuf_t *r, const rbuf_t *sub);
/* Skips a whole tagged-field section. */
void kcodec_skip_tags(rbuf_t *r);

void kcodec_write_str(wbuf_t *w, int flex, kstr_t s);
void kcodec_write_bytes(wbuf_t *w, int flex, kbytes_t b);

/* Zero-copy byte ranges (fetch responses). While a splice list is active
 * for writer w, kcodec_write_bytes() writes the length prefix of a view of
 * at least KCODEC_SPLICE_MIN bytes but, instead of copying the bytes, records
 * where they belong (`at`, an offset in w). The encoded message is then
 * w's bytes with every view inserted at its offset: the connection sends it
 * with writev, so stored record batches are copied once (from the page
 * cache into the read buffer) on their way to the socket. The views must
 * stay valid until the write completes. */
#define KCODEC_SPLICE_MIN 512
typedef struct {
    size_t at;        /* offset in the writer where the bytes belong */
    const uint8_t *p; /* borrowed */
    size_t len;
} kcodec_splice_t;
typedef struct {
    wbuf_t *w;          /* the writer the splices refer to */
    kcodec_splice_t *v; /* owned */
    int n, cap;
    size_t bytes;       /* sum of len */
} kcodec_splices_t;
void kcodec_splice_begin(kcodec_splices_t *s, wbuf_t *w);
void kcodec_splice_end(void);
void kcodec_splices_destroy(kcodec_splices_t *s);
/* Writes an array count; n < 0 writes null. */
void kcodec_write_count(wbuf_t *w, int flex, int32_t n);
/* Writes tag, size and the bytes of *t, then destroys *t. */
void kcodec_write_tag(wbuf_t *w, uint32_t tag, wbuf_t *t);
int kcodec_uuid_is_zero(const kuuid_t *u);

#endif
