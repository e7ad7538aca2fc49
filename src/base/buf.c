/* Byte reader/writer: the out-of-line parts (varints, growth). See buf.h. */
#include "base/buf.h"

#include <stdlib.h>

#include "base/mem.h"

uint32_t rbuf_uvarint(rbuf_t *r)
{
    uint32_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        uint8_t b = rbuf_u8(r);
        if (r->err) return 0;
        if (shift == 28 && (b & 0xf0)) break; /* more than 32 bits */
        v |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    rbuf_fail(r, HE_MALFORMED);
    return 0;
}

static uint64_t rbuf_uvarlong(rbuf_t *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        uint8_t b = rbuf_u8(r);
        if (r->err) return 0;
        if (shift == 63 && (b & 0xfe)) break; /* more than 64 bits */
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    rbuf_fail(r, HE_MALFORMED);
    return 0;
}

int32_t rbuf_varint(rbuf_t *r)
{
    uint32_t u = rbuf_uvarint(r);
    return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}

int64_t rbuf_varlong(rbuf_t *r)
{
    uint64_t u = rbuf_uvarlong(r);
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

void wbuf_destroy(wbuf_t *w)
{
    free(w->p);
    wbuf_init(w);
}

void wbuf_grow(wbuf_t *w, size_t n)
{
    if (w->cap - w->len >= n) return;
    size_t cap = w->cap ? w->cap : 256;
    while (cap - w->len < n) cap *= 2;
    w->p = xrealloc(w->p, cap);
    w->cap = cap;
}

uint8_t *wbuf_release(wbuf_t *w, size_t *len)
{
    uint8_t *p = w->p;
    if (len) *len = w->len;
    wbuf_init(w);
    return p;
}

static void wbuf_uvarlong(wbuf_t *w, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    wbuf_put(w, tmp, n);
}

void wbuf_uvarint(wbuf_t *w, uint32_t v) { wbuf_uvarlong(w, v); }

void wbuf_varint(wbuf_t *w, int32_t v)
{
    wbuf_uvarlong(w, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

void wbuf_varlong(wbuf_t *w, int64_t v)
{
    wbuf_uvarlong(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static size_t uvarlong_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t buf_uvarint_size(uint32_t v) { return uvarlong_size(v); }
size_t buf_varint_size(int32_t v) { return uvarlong_size(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)); }
size_t buf_varlong_size(int64_t v) { return uvarlong_size(((uint64_t)v << 1) ^ (uint64_t)(v >> 63)); }
