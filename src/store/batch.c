/* Kafka RecordBatch v2: header parsing, CRC, building and iterating
 * uncompressed batches. The layout is in batch.h. */
#include "store/batch.h"

#include <assert.h>

#include "base/crc32c.h"

int batch_header_parse_prefix(const uint8_t *p, size_t len, batch_header_t *h)
{
    rbuf_t r;
    rbuf_init(&r, p, len);
    h->base_offset = rbuf_i64(&r);
    h->batch_length = rbuf_i32(&r);
    h->leader_epoch = rbuf_i32(&r);
    h->magic = rbuf_i8(&r);
    h->crc = rbuf_u32(&r);
    h->attributes = rbuf_i16(&r);
    h->last_offset_delta = rbuf_i32(&r);
    h->base_timestamp = rbuf_i64(&r);
    h->max_timestamp = rbuf_i64(&r);
    h->producer_id = rbuf_i64(&r);
    h->producer_epoch = rbuf_i16(&r);
    h->base_sequence = rbuf_i32(&r);
    h->record_count = rbuf_i32(&r);
    if (r.err) return r.err;
    if (h->magic != BATCH_MAGIC || h->batch_length < BATCH_MIN_LENGTH || h->record_count < 0 ||
        h->last_offset_delta < 0)
        return HE_MALFORMED;
    return 0;
}

int batch_header_parse(const uint8_t *p, size_t len, batch_header_t *h)
{
    int rc = batch_header_parse_prefix(p, len, h);
    if (rc) return rc;
    if (batch_size(h) > len) return HE_TRUNCATED;
    return 0;
}

int batch_verify_crc(const uint8_t *p, size_t len)
{
    batch_header_t h;
    int rc = batch_header_parse(p, len, &h);
    if (rc) return rc;
    uint32_t c = crc32c(0, p + BATCH_ATTR_OFFSET, batch_size(&h) - BATCH_ATTR_OFFSET);
    return c == h.crc ? 0 : HE_CORRUPT;
}

void batch_set_base_offset(uint8_t *p, int64_t base) { wbuf_put_be64(p, (uint64_t)base); }

/* Bytes of one record after its length field. */
static size_t record_body_size(const batch_record_t *rec, int32_t delta)
{
    size_t n = 1 + buf_varlong_size(rec->timestamp_delta) + buf_varint_size(delta);
    n += buf_varint_size(rec->key_len) + (rec->key_len > 0 ? (size_t)rec->key_len : 0);
    n += buf_varint_size(rec->value_len) + (rec->value_len > 0 ? (size_t)rec->value_len : 0);
    n += buf_varint_size((int32_t)rec->header_count);
    for (size_t i = 0; i < rec->header_count; i++) {
        const batch_header_kv_t *kv = &rec->headers[i];
        n += buf_varint_size(kv->key_len) + (size_t)kv->key_len;
        n += buf_varint_size(kv->value_len) + (kv->value_len > 0 ? (size_t)kv->value_len : 0);
    }
    return n;
}

void batch_build(wbuf_t *out, int64_t base_timestamp, const batch_record_t *recs, size_t n)
{
    batch_build_spans(out, base_timestamp, recs, n, NULL);
}

void batch_build_spans(wbuf_t *out, int64_t base_timestamp, const batch_record_t *recs, size_t n, uint32_t *rec_pos)
{
    assert(n >= 1 && n <= INT32_MAX);
    size_t start = out->len;
    int64_t max_delta = 0;
    for (size_t i = 0; i < n; i++)
        if (recs[i].timestamp_delta > max_delta) max_delta = recs[i].timestamp_delta;
    wbuf_i64(out, 0);                       /* baseOffset: assigned on append */
    size_t len_at = wbuf_reserve(out, 4);   /* batchLength */
    wbuf_i32(out, -1);                      /* partitionLeaderEpoch */
    wbuf_i8(out, BATCH_MAGIC);
    size_t crc_at = wbuf_reserve(out, 4);
    wbuf_i16(out, 0);                       /* attributes: no compression, create time */
    wbuf_i32(out, (int32_t)(n - 1));        /* lastOffsetDelta */
    wbuf_i64(out, base_timestamp);
    wbuf_i64(out, base_timestamp + max_delta);
    wbuf_i64(out, -1);                      /* producerId */
    wbuf_i16(out, -1);                      /* producerEpoch */
    wbuf_i32(out, -1);                      /* baseSequence */
    wbuf_i32(out, (int32_t)n);
    for (size_t i = 0; i < n; i++) {
        const batch_record_t *rec = &recs[i];
        if (rec_pos) rec_pos[i] = (uint32_t)(out->len - start);
        wbuf_varint(out, (int32_t)record_body_size(rec, (int32_t)i));
        wbuf_i8(out, 0);
        wbuf_varlong(out, rec->timestamp_delta);
        wbuf_varint(out, (int32_t)i);
        wbuf_varint(out, rec->key_len);
        if (rec->key_len > 0) wbuf_put(out, rec->key, (size_t)rec->key_len);
        wbuf_varint(out, rec->value_len);
        if (rec->value_len > 0) wbuf_put(out, rec->value, (size_t)rec->value_len);
        wbuf_varint(out, (int32_t)rec->header_count);
        for (size_t k = 0; k < rec->header_count; k++) {
            const batch_header_kv_t *kv = &rec->headers[k];
            wbuf_varint(out, kv->key_len);
            wbuf_put(out, kv->key, (size_t)kv->key_len);
            wbuf_varint(out, kv->value_len);
            if (kv->value_len > 0) wbuf_put(out, kv->value, (size_t)kv->value_len);
        }
    }
    if (rec_pos) rec_pos[n] = (uint32_t)(out->len - start);
    wbuf_patch_i32(out, len_at, (int32_t)(out->len - start - 12));
    uint32_t c = crc32c(0, out->p + start + BATCH_ATTR_OFFSET, out->len - start - BATCH_ATTR_OFFSET);
    wbuf_patch_u32(out, crc_at, c);
}

int batch_iter_init(batch_iter_t *it, const uint8_t *p, size_t len)
{
    int rc = batch_header_parse(p, len, &it->h);
    if (rc) return rc;
    if (it->h.attributes & BATCH_ATTR_COMPRESSION_MASK) return HE_UNSUPPORTED;
    rbuf_init(&it->r, p + BATCH_HEADER_SIZE, batch_size(&it->h) - BATCH_HEADER_SIZE);
    it->left = it->h.record_count;
    return 0;
}

/* Reads a varint length that must be -1 (null) or fit in what remains;
 * returns the view (NULL for null) and sets *len. */
static const uint8_t *read_bytes(rbuf_t *r, int32_t *len, int nullable)
{
    int32_t n = rbuf_varint(r);
    *len = n;
    if (r->err) return NULL;
    if (n < 0) {
        if (n != -1 || !nullable) rbuf_fail(r, HE_MALFORMED);
        *len = -1;
        return NULL;
    }
    return rbuf_view(r, (size_t)n);
}

/* Parses the record at the front of r (its length varint first) into rec
 * (deltas, views, headers validated); r moves past it. Returns 0 or
 * HE_MALFORMED (r's error is set). */
static int record_parse(rbuf_t *rr, batch_rec_t *rec)
{
    int32_t len = rbuf_varint(rr);
    if (!rr->err && len < 0) rbuf_fail(rr, HE_MALFORMED);
    rbuf_t r = rbuf_sub(rr, (size_t)(len < 0 ? 0 : len));
    (void)rbuf_i8(&r); /* record attributes: unused */
    rec->timestamp_delta = rbuf_varlong(&r);
    rec->offset_delta = rbuf_varint(&r);
    rec->key = read_bytes(&r, &rec->key_len, 1);
    rec->value = read_bytes(&r, &rec->value_len, 1);
    rec->header_count = rbuf_varint(&r);
    if (!r.err && rec->header_count < 0) rbuf_fail(&r, HE_MALFORMED);
    rec->headers = r;
    rec->headers_left = rec->header_count;
    /* Validate the headers now so that walking them later cannot fail. */
    for (int32_t i = 0; i < rec->header_count && !r.err; i++) {
        int32_t n;
        (void)read_bytes(&r, &n, 0);
        (void)read_bytes(&r, &n, 1);
    }
    if (!r.err && rbuf_remaining(&r)) rbuf_fail(&r, HE_MALFORMED);
    if (!r.err && rec->offset_delta < 0) rbuf_fail(&r, HE_MALFORMED);
    if (r.err || rr->err) {
        /* The bytes are whole, so running out of them inside is malformed. */
        rr->err = HE_MALFORMED;
        return HE_MALFORMED;
    }
    return 0;
}

int batch_iter_next(batch_iter_t *it, batch_rec_t *rec)
{
    if (it->r.err) return it->r.err;
    if (it->left == 0) return rbuf_remaining(&it->r) ? HE_MALFORMED : 0;
    if (record_parse(&it->r, rec) < 0) return HE_MALFORMED;
    rec->offset = it->h.base_offset + rec->offset_delta;
    rec->timestamp = it->h.base_timestamp + rec->timestamp_delta;
    it->left--;
    return 1;
}

int batch_record_parse(const uint8_t *p, size_t len, batch_rec_t *rec)
{
    rbuf_t r;
    rbuf_init(&r, p, len);
    if (record_parse(&r, rec) < 0 || rbuf_remaining(&r)) return HE_MALFORMED;
    rec->offset = -1;
    rec->timestamp = -1;
    return 0;
}

int batch_rec_next_header(batch_rec_t *rec, batch_header_kv_t *kv)
{
    if (rec->headers_left <= 0) return 0;
    kv->key = read_bytes(&rec->headers, &kv->key_len, 0);
    kv->value = read_bytes(&rec->headers, &kv->value_len, 1);
    if (rec->headers.err) return rec->headers.err;
    rec->headers_left--;
    return 1;
}
