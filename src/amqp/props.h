/*
 * Content header of class basic (spec 4.2.6.1 and the basic class):
 *
 *   class-id u16 (60) | weight u16 (0) | body-size u64 | property-flags u16 | property list
 *
 * Property flags: bit 15 is the first property; bit 0 set means another
 * flags word follows (never for basic, whose 14 properties fit in one; a
 * continuation is accepted and must then be all zero after). Properties in
 * flag order:
 *
 *   15 content-type shortstr   14 content-encoding shortstr  13 headers table
 *   12 delivery-mode octet     11 priority octet              10 correlation-id shortstr
 *    9 reply-to shortstr        8 expiration shortstr          7 message-id shortstr
 *    6 timestamp u64            5 type shortstr                4 user-id shortstr
 *    3 app-id shortstr          2 cluster-id shortstr (deprecated)
 *
 * The property bytes (flags + list) are stored and re-sent verbatim; the
 * decoded struct holds views into them for the fields the broker acts on.
 */
#ifndef HERALD_AMQP_PROPS_H
#define HERALD_AMQP_PROPS_H

#include <stdint.h>

#include "amqp/wire.h"
#include "base/buf.h"

#define AMQP_CLASS_BASIC 60

enum {
    PROP_CONTENT_TYPE = 1u << 15, PROP_CONTENT_ENCODING = 1u << 14, PROP_HEADERS = 1u << 13,
    PROP_DELIVERY_MODE = 1u << 12, PROP_PRIORITY = 1u << 11, PROP_CORRELATION_ID = 1u << 10,
    PROP_REPLY_TO = 1u << 9, PROP_EXPIRATION = 1u << 8, PROP_MESSAGE_ID = 1u << 7,
    PROP_TIMESTAMP = 1u << 6, PROP_TYPE = 1u << 5, PROP_USER_ID = 1u << 4, PROP_APP_ID = 1u << 3,
    PROP_CLUSTER_ID = 1u << 2,
};

typedef struct {
    uint16_t flags;             /* which properties are present (PROP_*) */
    amqp_bytes_t content_type, content_encoding;
    amqp_bytes_t headers;       /* table content (after the length), validated */
    uint8_t delivery_mode;      /* 2 = persistent */
    uint8_t priority;
    amqp_bytes_t correlation_id, reply_to, expiration, message_id;
    uint64_t timestamp;
    amqp_bytes_t type, user_id, app_id, cluster_id;
} amqp_props_t;

/* Decodes a content-header payload (the frame payload after the frame
 * header). Fills *class_id, *body_size, *props (views into p) and *raw (the
 * property bytes: flags and list, as stored). Returns 0 or HE_MALFORMED
 * (truncated, trailing bytes, invalid headers table, or a weight != 0). */
int amqp_header_decode(const uint8_t *p, size_t len, uint16_t *class_id, uint64_t *body_size,
                       amqp_props_t *props, amqp_bytes_t *raw);

/* Decodes stored property bytes (flags + list) into *props. Returns 0 or
 * HE_MALFORMED. */
int amqp_props_decode(amqp_bytes_t raw, amqp_props_t *props);

/* The headers table of property bytes that amqp_props_decode accepted
 * before (a stored message's, or amqp_props_encode's): *headers is a view
 * of its content, found without decoding the other properties or checking
 * the table again (routing a copy decoded every property twice). Returns 1
 * (present), 0 (absent: *headers empty) or HE_MALFORMED (the bytes end
 * early). */
int amqp_props_headers(amqp_bytes_t raw, amqp_bytes_t *headers);

/* An expiration property's value as milliseconds: decimal digits only,
 * at most 18 (RabbitMQ's rule). Returns 0 and *ms, or -1 if invalid. */
int amqp_expiration_parse(amqp_bytes_t s, int64_t *ms);
/* The per-message TTL of property bytes that amqp_props_decode accepted
 * before: the expiration in ms, or -1 when absent or invalid. Decodes only
 * when the expiration flag is set. */
int64_t amqp_props_expiration_ms(amqp_bytes_t raw);

/* The slot in props of the shortstr property with this flag bit
 * (PROP_CONTENT_TYPE, ...), NULL for the other properties. */
amqp_bytes_t *amqp_props_str(amqp_props_t *props, uint16_t flag);

/* Writes a content-header payload for class basic: class, weight 0,
 * body_size, then `raw` verbatim (stored property bytes; an empty raw means
 * flags 0). */
void amqp_header_encode(wbuf_t *w, uint64_t body_size, amqp_bytes_t raw);

/* Encodes props (only the fields named in props->flags) as property bytes
 * (flags + list) into w: used when the broker builds or changes properties
 * (x-death headers, direct reply-to). */
void amqp_props_encode(wbuf_t *w, const amqp_props_t *props);

#endif
