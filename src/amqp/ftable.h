/*
 * AMQP field tables and field arrays, with every field type RabbitMQ and
 * its clients use (the 0-9-1 errata set, not the spec's original list):
 *
 *   t bool(u8)   b int8   B uint8   s int16   u uint16   I int32   i uint32
 *   l int64      f float  d double  D decimal (scale u8, value u32)
 *   S longstr    x byte array (u32 length + bytes)   A array   F table
 *   T timestamp (u64)    V void (no value)
 *
 * Table on the wire: u32 byte length, then entries of shortstr name,
 * type octet, value. Array: u32 byte length, then (type octet, value)*.
 *
 * Tables are kept as raw byte views (they round-trip byte for byte: queue
 * arguments and message headers are stored as received). ftable_validate()
 * checks the whole structure once, bounded in depth; after it, lookups and
 * iteration cannot fail on that view.
 */
#ifndef HERALD_AMQP_FTABLE_H
#define HERALD_AMQP_FTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "amqp/wire.h"
#include "base/buf.h"

#define FTABLE_MAX_DEPTH 16 /* nested tables/arrays deeper than this are malformed */

typedef enum {
    FV_VOID = 'V', FV_BOOL = 't', FV_I8 = 'b', FV_U8 = 'B', FV_I16 = 's', FV_U16 = 'u',
    FV_I32 = 'I', FV_U32 = 'i', FV_I64 = 'l', FV_FLOAT = 'f', FV_DOUBLE = 'd',
    FV_DECIMAL = 'D', FV_LONGSTR = 'S', FV_BYTES = 'x', FV_ARRAY = 'A', FV_TABLE = 'F',
    FV_TIMESTAMP = 'T',
} fv_type_t;

/* One decoded value. Strings, nested tables and arrays are views into the
 * table's bytes (table/array views hold the content after the u32 length). */
typedef struct {
    fv_type_t type;
    union {
        int64_t i;          /* every integer type, bool (0/1), timestamp */
        double d;           /* float and double */
        struct { uint8_t scale; uint32_t value; } dec;
        amqp_bytes_t str;   /* S, x */
        amqp_bytes_t table; /* F: entries, without the length prefix */
        amqp_bytes_t array; /* A: values, without the length prefix */
    } v;
} fvalue_t;

/* Checks that `content` (a table's bytes after its u32 length) is a
 * well-formed table: every entry complete, known types, names 1..128 bytes
 * (RabbitMQ accepts empty names; so do we: 0..255), nesting at most
 * FTABLE_MAX_DEPTH. Returns 0 or HE_MALFORMED. */
int ftable_validate(amqp_bytes_t content);
/* The same for an array's content. */
int farray_validate(amqp_bytes_t content);

/* Reads a table (u32 length + content) from r into *out (a view; content
 * only) and validates it. Sets r's sticky error (HE_MALFORMED) on failure. */
void ftable_read(rbuf_t *r, amqp_bytes_t *out);

/* Iteration over a validated table. it starts zeroed with it.rest = content.
 * Returns 1 and fills name/value, 0 at the end. */
typedef struct {
    amqp_bytes_t rest;
} ftable_iter_t;
int ftable_next(ftable_iter_t *it, amqp_bytes_t *name, fvalue_t *value);
/* Iteration over a validated array's values. */
int farray_next(ftable_iter_t *it, fvalue_t *value);

/* Looks up the first entry called name (NUL-terminated) in a validated
 * table. Returns 1 and *value, 0 if absent. */
int ftable_get(amqp_bytes_t content, const char *name, fvalue_t *value);
/* Convenience: an integer-typed entry (any of b B s u I i l T, or bool) as
 * int64. Returns 1, 0 if absent, -1 if present with a non-integer type. */
int ftable_get_int(amqp_bytes_t content, const char *name, int64_t *out);
/* A longstr entry. Returns 1, 0 if absent, -1 if another type. */
int ftable_get_str(amqp_bytes_t content, const char *name, amqp_bytes_t *out);

/* 1 if two values are equal for headers-exchange matching: same type class
 * (all integers compare by value, whatever their width; strings by bytes;
 * void equals void; other types by type and raw bytes). */
int fvalue_equal(const fvalue_t *a, const fvalue_t *b);
/* 1 for the integer types (b, B, s, u, I, i, l). */
int fvalue_is_int(fv_type_t t);
/* The type's name as RabbitMQ prints it in errors (Erlang's: "signedint",
 * "longstr", ...). */
const char *fvalue_type_name(fv_type_t t);

/* ---- building tables (server-sent: capabilities, x-death, ...) ----
 * A builder writes into w; ftable_begin reserves the u32 length that
 * ftable_end back-patches. Nest with the same calls. */
size_t ftable_begin(wbuf_t *w);
void ftable_end(wbuf_t *w, size_t mark);
void ftable_put_name(wbuf_t *w, const char *name); /* shortstr; then one ftable_put_* value */
void ftable_put_bool(wbuf_t *w, int v);
void ftable_put_i64(wbuf_t *w, int64_t v);   /* 'l' */
void ftable_put_i32(wbuf_t *w, int32_t v);   /* 'I' */
void ftable_put_longstr(wbuf_t *w, const void *p, size_t n); /* 'S' */
void ftable_put_timestamp(wbuf_t *w, uint64_t v); /* 'T' */
/* Value type 'F' / 'A': write the type octet and reserve the length; close
 * with ftable_end(w, mark). */
size_t ftable_put_table_begin(wbuf_t *w);
size_t ftable_put_array_begin(wbuf_t *w);
/* Copies a pre-encoded value (type octet + value bytes) verbatim. */
void ftable_put_raw(wbuf_t *w, const void *p, size_t n);

#endif
