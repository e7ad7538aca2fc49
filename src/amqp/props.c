/*
 * Basic content header and properties; see props.h for the layout.
 *
 *   class u16 | weight u16 (0) | body-size u64 | flags u16 [| flags u16 ...] | properties
 *
 * A flags word with bit 0 set is followed by another flags word. Basic has
 * 14 properties (bits 15..2 of the first word), so bit 1 of the first word
 * and bits 15..1 of any continuation word must be zero. The property list
 * holds exactly the flagged properties, in bit order, and nothing after.
 */
#include "amqp/props.h"

#include <assert.h>
#include <string.h>

#include "amqp/ftable.h"

#define PROP_ALL 0xfffcu /* bits 15..2: the 14 basic properties */

static void read_shortstr(rbuf_t *r, amqp_bytes_t *out)
{
    uint8_t n = rbuf_u8(r);
    out->p = rbuf_view(r, n);
    out->len = out->p ? n : 0;
}

static void write_shortstr(wbuf_t *w, amqp_bytes_t s)
{
    assert(s.len <= 255);
    wbuf_u8(w, (uint8_t)s.len);
    wbuf_put(w, s.p, s.len);
}

/* The shortstr properties in flag order, with their slot in amqp_props_t. */
amqp_bytes_t *amqp_props_str(amqp_props_t *p, uint16_t flag)
{
    switch (flag) {
    case PROP_CONTENT_TYPE: return &p->content_type;
    case PROP_CONTENT_ENCODING: return &p->content_encoding;
    case PROP_CORRELATION_ID: return &p->correlation_id;
    case PROP_REPLY_TO: return &p->reply_to;
    case PROP_EXPIRATION: return &p->expiration;
    case PROP_MESSAGE_ID: return &p->message_id;
    case PROP_TYPE: return &p->type;
    case PROP_USER_ID: return &p->user_id;
    case PROP_APP_ID: return &p->app_id;
    case PROP_CLUSTER_ID: return &p->cluster_id;
    default: return NULL;
    }
}

int amqp_props_decode(amqp_bytes_t raw, amqp_props_t *props)
{
    rbuf_t r;
    rbuf_init(&r, raw.p, raw.len);
    memset(props, 0, sizeof *props);
    uint16_t flags = rbuf_u16(&r);
    if (flags & 2)
        return HE_MALFORMED; /* no 15th property */
    for (uint16_t more = flags & 1; more && !r.err;) {
        uint16_t next = rbuf_u16(&r);
        if (next & 0xfffe)
            return HE_MALFORMED;
        more = next & 1;
    }
    props->flags = flags & PROP_ALL;
    for (uint16_t bit = 1u << 15; bit >= PROP_CLUSTER_ID && !r.err; bit >>= 1) {
        if (!(flags & bit))
            continue;
        amqp_bytes_t *s = amqp_props_str(props, bit);
        if (s)
            read_shortstr(&r, s);
        else if (bit == PROP_HEADERS)
            ftable_read(&r, &props->headers);
        else if (bit == PROP_DELIVERY_MODE)
            props->delivery_mode = rbuf_u8(&r);
        else if (bit == PROP_PRIORITY)
            props->priority = rbuf_u8(&r);
        else if (bit == PROP_TIMESTAMP)
            props->timestamp = rbuf_u64(&r);
    }
    if (r.err || r.pos != r.len)
        return HE_MALFORMED;
    return 0;
}

int amqp_props_headers(amqp_bytes_t raw, amqp_bytes_t *headers)
{
    rbuf_t r;
    rbuf_init(&r, raw.p, raw.len);
    *headers = (amqp_bytes_t){NULL, 0};
    if (raw.len == 0)
        return 0; /* no properties */
    uint16_t flags = rbuf_u16(&r);
    for (uint16_t more = flags & 1; more && !r.err;)
        more = rbuf_u16(&r) & 1;
    if (!(flags & PROP_HEADERS))
        return r.err ? HE_MALFORMED : 0;
    amqp_bytes_t skip;
    if (flags & PROP_CONTENT_TYPE)
        read_shortstr(&r, &skip);
    if (flags & PROP_CONTENT_ENCODING)
        read_shortstr(&r, &skip);
    uint32_t n = rbuf_u32(&r);
    const uint8_t *p = rbuf_view(&r, n);
    if (r.err || (n && !p))
        return HE_MALFORMED;
    *headers = (amqp_bytes_t){p, n};
    return 1;
}

int amqp_expiration_parse(amqp_bytes_t s, int64_t *ms)
{
    if (!s.len || s.len > 18) return -1;
    int64_t v = 0;
    for (uint32_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return -1;
        v = v * 10 + (s.p[i] - '0');
    }
    *ms = v;
    return 0;
}

int64_t amqp_props_expiration_ms(amqp_bytes_t raw)
{
    if (raw.len < 2 || !(((uint16_t)raw.p[0] << 8 | raw.p[1]) & PROP_EXPIRATION)) return -1;
    amqp_props_t p;
    int64_t ms;
    if (amqp_props_decode(raw, &p) < 0 || amqp_expiration_parse(p.expiration, &ms) < 0) return -1;
    return ms;
}

int amqp_header_decode(const uint8_t *p, size_t len, uint16_t *class_id, uint64_t *body_size,
                       amqp_props_t *props, amqp_bytes_t *raw)
{
    rbuf_t r;
    rbuf_init(&r, p, len);
    *class_id = rbuf_u16(&r);
    uint16_t weight = rbuf_u16(&r);
    *body_size = rbuf_u64(&r);
    if (r.err || weight != 0 || len - r.pos > UINT32_MAX)
        return HE_MALFORMED;
    raw->p = p + r.pos;
    raw->len = (uint32_t)(len - r.pos);
    return amqp_props_decode(*raw, props);
}

void amqp_header_encode(wbuf_t *w, uint64_t body_size, amqp_bytes_t raw)
{
    wbuf_u16(w, AMQP_CLASS_BASIC);
    wbuf_u16(w, 0); /* weight */
    wbuf_u64(w, body_size);
    if (raw.len)
        wbuf_put(w, raw.p, raw.len);
    else
        wbuf_u16(w, 0); /* no properties */
}

void amqp_props_encode(wbuf_t *w, const amqp_props_t *props)
{
    uint16_t flags = props->flags & PROP_ALL;
    wbuf_u16(w, flags);
    for (uint16_t bit = 1u << 15; bit >= PROP_CLUSTER_ID; bit >>= 1) {
        if (!(flags & bit))
            continue;
        amqp_bytes_t *s = amqp_props_str((amqp_props_t *)props, bit); /* read only */
        if (s) {
            write_shortstr(w, *s);
        } else if (bit == PROP_HEADERS) {
            wbuf_u32(w, props->headers.len);
            wbuf_put(w, props->headers.p, props->headers.len);
        } else if (bit == PROP_DELIVERY_MODE) {
            wbuf_u8(w, props->delivery_mode);
        } else if (bit == PROP_PRIORITY) {
            wbuf_u8(w, props->priority);
        } else if (bit == PROP_TIMESTAMP) {
            wbuf_u64(w, props->timestamp);
        }
    }
}
