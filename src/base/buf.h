/*
 * Byte reader and writer for wire formats (big-endian, as Kafka and AMQP).
 *
 * rbuf_t reads from a borrowed buffer. Every read checks the remaining length;
 * the first failure sets a sticky error (`err`, negative) and every later read
 * returns zero values, so a decoder checks `err` once at the end. A declared
 * length is never trusted: rbuf_view() refuses lengths beyond what remains.
 *
 * wbuf_t is a growable output buffer owned by the caller (wbuf_init/
 * wbuf_destroy). Writers never fail: growth aborts the process on OOM, the
 * same policy as xmalloc. Offsets returned by wbuf_reserve() stay valid across
 * growth (they are offsets, not pointers) so sizes and counts can be
 * back-patched.
 */
#ifndef HERALD_BASE_BUF_H
#define HERALD_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/err.h"

typedef struct {
    const uint8_t *p; /* start of the buffer (borrowed) */
    size_t len;       /* bytes in the buffer */
    size_t pos;       /* next byte to read, <= len */
    int err;          /* 0, or the first error (sticky, negative HE_*) */
} rbuf_t;

static inline void rbuf_init(rbuf_t *r, const void *p, size_t len)
{
    r->p = (const uint8_t *)p;
    r->len = len;
    r->pos = 0;
    r->err = 0;
}

static inline size_t rbuf_remaining(const rbuf_t *r) { return r->err ? 0 : r->len - r->pos; }

/* Marks the reader failed (keeps the first error). */
static inline void rbuf_fail(rbuf_t *r, int err)
{
    if (!r->err) r->err = err;
}

/* Returns 1 if n bytes are available, else sets HE_TRUNCATED and returns 0. */
static inline int rbuf_need(rbuf_t *r, size_t n)
{
    if (r->err) return 0;
    if (r->len - r->pos < n) {
        r->err = HE_TRUNCATED;
        return 0;
    }
    return 1;
}

static inline uint8_t rbuf_u8(rbuf_t *r)
{
    if (!rbuf_need(r, 1)) return 0;
    return r->p[r->pos++];
}

static inline uint16_t rbuf_u16(rbuf_t *r)
{
    if (!rbuf_need(r, 2)) return 0;
    const uint8_t *b = r->p + r->pos;
    r->pos += 2;
    return (uint16_t)((b[0] << 8) | b[1]);
}

static inline uint32_t rbuf_u32(rbuf_t *r)
{
    if (!rbuf_need(r, 4)) return 0;
    const uint8_t *b = r->p + r->pos;
    r->pos += 4;
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

static inline uint64_t rbuf_u64(rbuf_t *r)
{
    uint64_t hi = rbuf_u32(r);
    uint64_t lo = rbuf_u32(r);
    return (hi << 32) | lo;
}

static inline int8_t rbuf_i8(rbuf_t *r) { return (int8_t)rbuf_u8(r); }
static inline int16_t rbuf_i16(rbuf_t *r) { return (int16_t)rbuf_u16(r); }
static inline int32_t rbuf_i32(rbuf_t *r) { return (int32_t)rbuf_u32(r); }
static inline int64_t rbuf_i64(rbuf_t *r) { return (int64_t)rbuf_u64(r); }

static inline double rbuf_f64(rbuf_t *r)
{
    uint64_t u = rbuf_u64(r);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Unsigned LEB128 varint (Kafka "unsigned varint"), at most 5 bytes for u32. */
uint32_t rbuf_uvarint(rbuf_t *r);
/* Zig-zag varint (Kafka "varint"/"varlong"). */
int32_t rbuf_varint(rbuf_t *r);
int64_t rbuf_varlong(rbuf_t *r);

/* Returns a pointer to the next n bytes and advances, or NULL (and sets the
 * error) if fewer remain. The pointer is a view into the reader's buffer. */
static inline const uint8_t *rbuf_view(rbuf_t *r, size_t n)
{
    if (!rbuf_need(r, n)) return NULL;
    const uint8_t *v = r->p + r->pos;
    r->pos += n;
    return v;
}

static inline void rbuf_skip(rbuf_t *r, size_t n) { (void)rbuf_view(r, n); }

/* Narrows: returns a sub-reader over the next n bytes and advances past them.
 * On failure the sub-reader carries the error too. */
static inline rbuf_t rbuf_sub(rbuf_t *r, size_t n)
{
    rbuf_t s;
    const uint8_t *v = rbuf_view(r, n);
    rbuf_init(&s, v, v ? n : 0);
    if (!v) s.err = r->err;
    return s;
}

/* ---- writer ---- */

typedef struct {
    uint8_t *p;  /* heap buffer, owned; NULL when empty */
    size_t len;  /* bytes written */
    size_t cap;  /* bytes allocated */
} wbuf_t;

static inline void wbuf_init(wbuf_t *w)
{
    w->p = NULL;
    w->len = 0;
    w->cap = 0;
}

void wbuf_destroy(wbuf_t *w);
/* Ensures room for n more bytes. */
void wbuf_grow(wbuf_t *w, size_t n);
/* Hands the heap buffer to the caller (who frees it with free()); the writer
 * is left empty. */
uint8_t *wbuf_release(wbuf_t *w, size_t *len);

static inline void wbuf_reset(wbuf_t *w) { w->len = 0; }

static inline uint8_t *wbuf_tail(wbuf_t *w, size_t n)
{
    if (w->cap - w->len < n) wbuf_grow(w, n);
    uint8_t *t = w->p + w->len;
    w->len += n;
    return t;
}

/* Reserves n bytes, returns their offset for a later wbuf_patch_*(). */
static inline size_t wbuf_reserve(wbuf_t *w, size_t n)
{
    size_t off = w->len;
    memset(wbuf_tail(w, n), 0, n);
    return off;
}

static inline void wbuf_put(wbuf_t *w, const void *p, size_t n)
{
    if (n) memcpy(wbuf_tail(w, n), p, n);
}

static inline void wbuf_u8(wbuf_t *w, uint8_t v) { *wbuf_tail(w, 1) = v; }

static inline void wbuf_u16(wbuf_t *w, uint16_t v)
{
    uint8_t *b = wbuf_tail(w, 2);
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

static inline void wbuf_put_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static inline void wbuf_put_be64(uint8_t *b, uint64_t v)
{
    wbuf_put_be32(b, (uint32_t)(v >> 32));
    wbuf_put_be32(b + 4, (uint32_t)v);
}

static inline uint32_t buf_get_be32(const uint8_t *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

static inline uint64_t buf_get_be64(const uint8_t *b)
{
    return ((uint64_t)buf_get_be32(b) << 32) | buf_get_be32(b + 4);
}

static inline void wbuf_u32(wbuf_t *w, uint32_t v) { wbuf_put_be32(wbuf_tail(w, 4), v); }
static inline void wbuf_u64(wbuf_t *w, uint64_t v) { wbuf_put_be64(wbuf_tail(w, 8), v); }
static inline void wbuf_i8(wbuf_t *w, int8_t v) { wbuf_u8(w, (uint8_t)v); }
static inline void wbuf_i16(wbuf_t *w, int16_t v) { wbuf_u16(w, (uint16_t)v); }
static inline void wbuf_i32(wbuf_t *w, int32_t v) { wbuf_u32(w, (uint32_t)v); }
static inline void wbuf_i64(wbuf_t *w, int64_t v) { wbuf_u64(w, (uint64_t)v); }

static inline void wbuf_f64(wbuf_t *w, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    wbuf_u64(w, u);
}

void wbuf_uvarint(wbuf_t *w, uint32_t v);
void wbuf_varint(wbuf_t *w, int32_t v);
void wbuf_varlong(wbuf_t *w, int64_t v);

static inline void wbuf_patch_u32(wbuf_t *w, size_t off, uint32_t v) { wbuf_put_be32(w->p + off, v); }
static inline void wbuf_patch_i32(wbuf_t *w, size_t off, int32_t v) { wbuf_put_be32(w->p + off, (uint32_t)v); }

/* Bytes a value takes as an unsigned varint / zig-zag varint. */
size_t buf_uvarint_size(uint32_t v);
size_t buf_varint_size(int32_t v);
size_t buf_varlong_size(int64_t v);

#endif
