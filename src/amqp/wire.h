/*
 * AMQP 0-9-1 wire primitives shared by the codec, the field tables, the
 * content properties and the connection.
 *
 * A frame (spec 4.2.3):
 *
 *   +------+---------+---------+-------------------+-----------+
 *   | type | channel |  size   |  payload          | frame-end |
 *   | u8   | u16 BE  | u32 BE  |  size bytes       | 0xCE      |
 *   +------+---------+---------+-------------------+-----------+
 *
 * type 1 method (payload: class u16, method u16, arguments), 2 content
 * header (class u16, weight u16 = 0, body size u64, property flags,
 * property list), 3 body (bytes), 8 heartbeat (channel 0, empty).
 */
#ifndef HERALD_AMQP_WIRE_H
#define HERALD_AMQP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define AMQP_FRAME_METHOD 1
#define AMQP_FRAME_HEADER 2
#define AMQP_FRAME_BODY 3
#define AMQP_FRAME_HEARTBEAT 8
#define AMQP_FRAME_END 0xCE
#define AMQP_FRAME_OVERHEAD 8 /* 7-byte header + frame-end */
#define AMQP_FRAME_MIN_SIZE 4096 /* spec: frame-max may not be below this */

/* A view of bytes on the wire (a shortstr, longstr or raw table). Not
 * NUL-terminated; valid as long as the buffer it points into. */
typedef struct {
    const uint8_t *p;
    uint32_t len;
} amqp_bytes_t;

static inline amqp_bytes_t amqp_cstr(const char *s)
{
    amqp_bytes_t b = {(const uint8_t *)s, 0};
    while (s[b.len]) b.len++;
    return b;
}

/* 1 if b equals the NUL-terminated string s. */
int amqp_bytes_eq(amqp_bytes_t b, const char *s);

/* Reply codes (spec 1.2 constants). */
enum {
    AMQP_REPLY_SUCCESS = 200,
    AMQP_CONTENT_TOO_LARGE = 311,
    AMQP_NO_ROUTE = 312,
    AMQP_NO_CONSUMERS = 313,
    AMQP_CONNECTION_FORCED = 320,
    AMQP_INVALID_PATH = 402,
    AMQP_ACCESS_REFUSED = 403,
    AMQP_NOT_FOUND = 404,
    AMQP_RESOURCE_LOCKED = 405,
    AMQP_PRECONDITION_FAILED = 406,
    AMQP_FRAME_ERROR = 501,
    AMQP_SYNTAX_ERROR = 502,
    AMQP_COMMAND_INVALID = 503,
    AMQP_CHANNEL_ERROR = 504,
    AMQP_UNEXPECTED_FRAME = 505,
    AMQP_RESOURCE_ERROR = 506,
    AMQP_NOT_ALLOWED = 530,
    AMQP_NOT_IMPLEMENTED = 540,
    AMQP_INTERNAL_ERROR = 541,
};

#endif
