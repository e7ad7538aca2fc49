/* Kafka codec primitives and headers; see kcodec.h for the wire layout. */
#include "kafka/kcodec.h"

#include <stdlib.h>

#include "base/mem.h"

#include <assert.h>
#include <string.h>

#include "kafka/kafka_msgs.h"

int kafka_api_is_flexible(int16_t key, int16_t version)
{
    const kafka_api_info_t *api = kafka_api_lookup(key);
    return api && api->flexible_min >= 0 && version >= api->flexible_min;
}

int kafka_req_header_decode(rbuf_t *r, kafka_req_header_t *h)
{
    h->api_key = rbuf_i16(r);
    h->api_version = rbuf_i16(r);
    h->correlation_id = rbuf_i32(r);
    kcodec_read_str(r, 0, 1, &h->client_id);
    if (!r->err && kafka_api_is_flexible(h->api_key, h->api_version))
        kcodec_skip_tags(r);
    return r->err;
}

void kafka_req_header_encode(wbuf_t *w, const kafka_req_header_t *h)
{
    wbuf_i16(w, h->api_key);
    wbuf_i16(w, h->api_version);
    wbuf_i32(w, h->correlation_id);
    kcodec_write_str(w, 0, h->client_id);
    if (kafka_api_is_flexible(h->api_key, h->api_version))
        wbuf_u8(w, 0);
}

void kafka_resp_header_encode(wbuf_t *w, int16_t api_key, int16_t api_version,
                              int32_t correlation_id)
{
    wbuf_i32(w, correlation_id);
    if (api_key != KAFKA_API_API_VERSIONS && kafka_api_is_flexible(api_key, api_version))
        wbuf_u8(w, 0);
}

/* Reads a length: int16/int32 (-1 null) or compact uvarint (0 null). Returns
 * the length, -1 for null, or -2 with r failed. */
static int64_t read_len(rbuf_t *r, int flex, int wide, int nullable)
{
    int64_t n;
    if (flex)
        n = (int64_t)rbuf_uvarint(r) - 1;
    else
        n = wide ? rbuf_i32(r) : rbuf_i16(r);
    if (r->err)
        return -2;
    if (n < -1 || (n == -1 && !nullable)) {
        rbuf_fail(r, HE_MALFORMED);
        return -2;
    }
    if (n > (int64_t)rbuf_remaining(r)) {
        rbuf_fail(r, HE_TRUNCATED);
        return -2;
    }
    return n;
}

void kcodec_read_str(rbuf_t *r, int flex, int nullable, kstr_t *out)
{
    int64_t n = read_len(r, flex, 0, nullable);
    if (n < 0) {
        *out = n == -1 ? KSTR_NULL : (kstr_t){ "", 0 };
        return;
    }
    out->p = (const char *)rbuf_view(r, (size_t)n);
    out->len = (int32_t)n;
}

void kcodec_read_bytes(rbuf_t *r, int flex, int nullable, kbytes_t *out)
{
    int64_t n = read_len(r, flex, 1, nullable);
    if (n < 0) {
        *out = n == -1 ? KBYTES_NULL : (kbytes_t){ NULL, 0 };
        return;
    }
    out->p = rbuf_view(r, (size_t)n);
    out->len = (int32_t)n;
}

int32_t kcodec_read_count(rbuf_t *r, int flex, int nullable, size_t min_elem)
{
    int64_t n = flex ? (int64_t)rbuf_uvarint(r) - 1 : rbuf_i32(r);
    if (r->err)
        return 0;
    if (n < -1 || (n == -1 && !nullable)) {
        rbuf_fail(r, HE_MALFORMED);
        return 0;
    }
    if (n > 0 && (uint64_t)n * min_elem > rbuf_remaining(r)) {
        rbuf_fail(r, HE_TRUNCATED);
        return 0;
    }
    return (int32_t)n;
}

void kcodec_read_uuid(rbuf_t *r, kuuid_t *out)
{
    const uint8_t *p = rbuf_view(r, 16);
    if (p)
        memcpy(out->b, p, 16);
    else
        memset(out->b, 0, 16);
}

uint32_t kcodec_read_tag_count(rbuf_t *r)
{
    uint32_t n = rbuf_uvarint(r);
    /* every tagged field takes at least two bytes (tag, size) */
    if (!r->err && (uint64_t)n * 2 > rbuf_remaining(r))
        rbuf_fail(r, HE_TRUNCATED);
    return r->err ? 0 : n;
}

uint32_t kcodec_read_tag(rbuf_t *r, rbuf_t *sub)
{
    uint32_t tag = rbuf_uvarint(r);
    uint32_t size = rbuf_uvarint(r);
    *sub = rbuf_sub(r, size);
    return r->err ? UINT32_MAX : tag;
}

void kcodec_tag_done(rbuf_t *r, const rbuf_t *sub)
{
    if (sub->err && !r->err)
        rbuf_fail(r, HE_MALFORMED);
}

void kcodec_skip_tags(rbuf_t *r)
{
    uint32_t n = kcodec_read_tag_count(r);
    for (uint32_t i = 0; i < n && !r->err; i++) {
        rbuf_t sub;
        (void)kcodec_read_tag(r, &sub);
    }
}

void kcodec_write_str(wbuf_t *w, int flex, kstr_t s)
{
    assert(flex || s.len <= INT16_MAX); /* int16 length: a caller's bug, not peer data */
    if (flex)
        wbuf_uvarint(w, s.len < 0 ? 0 : (uint32_t)s.len + 1);
    else
        wbuf_i16(w, s.len < 0 ? -1 : (int16_t)s.len);
    if (s.len > 0)
        wbuf_put(w, s.p, (size_t)s.len);
}

/* The splice list in force (one event-loop thread encodes at a time). */
static kcodec_splices_t *g_splices;

void kcodec_splice_begin(kcodec_splices_t *s, wbuf_t *w)
{
    s->w = w;
    g_splices = s;
}

void kcodec_splice_end(void) { g_splices = NULL; }

void kcodec_splices_destroy(kcodec_splices_t *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

void kcodec_write_bytes(wbuf_t *w, int flex, kbytes_t b)
{
    if (flex)
        wbuf_uvarint(w, b.len < 0 ? 0 : (uint32_t)b.len + 1);
    else
        wbuf_i32(w, b.len < 0 ? -1 : b.len);
    kcodec_splices_t *s = g_splices;
    if (s && s->w == w && b.len >= KCODEC_SPLICE_MIN) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 8;
            s->v = xrealloc(s->v, sizeof *s->v * (size_t)s->cap);
        }
        s->v[s->n++] = (kcodec_splice_t){w->len, b.p, (size_t)b.len};
        s->bytes += (size_t)b.len;
        return;
    }
    if (b.len > 0)
        wbuf_put(w, b.p, (size_t)b.len);
}

void kcodec_write_count(wbuf_t *w, int flex, int32_t n)
{
    if (flex)
        wbuf_uvarint(w, n < 0 ? 0 : (uint32_t)n + 1);
    else
        wbuf_i32(w, n < 0 ? -1 : n);
}

void kcodec_write_tag(wbuf_t *w, uint32_t tag, wbuf_t *t)
{
    wbuf_uvarint(w, tag);
    wbuf_uvarint(w, (uint32_t)t->len);
    wbuf_put(w, t->p, t->len);
    wbuf_destroy(t);
}

int kcodec_uuid_is_zero(const kuuid_t *u)
{
    static const kuuid_t zero;
    return memcmp(u->b, zero.b, 16) == 0;
}
