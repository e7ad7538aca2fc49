/*
 * AMQP field tables and basic properties as JSON, both ways, for the admin
 * API: queue and exchange arguments, binding arguments, message headers
 * and properties (docs/http-api.md).
 *
 *   field type              JSON out                 JSON in
 *   t bool                  true / false             true / false -> t
 *   b B s u I i l           integer                  integer -> l (int64)
 *   T timestamp             integer (seconds)        -
 *   f d                     real                     real -> d
 *   D decimal               real (value / 10^scale)  -
 *   S longstr               string (base64 if not    string -> S
 *                           UTF-8 without NUL)
 *   x byte array            string (base64)          -
 *   V void                  null                     null -> V
 *   A array                 array                    array -> A
 *   F table                 object                   object -> F
 *
 * So JSON -> table -> JSON is the identity, and table -> JSON loses only
 * the integer widths and the S/x/T/D distinctions. Names are 0..255 bytes,
 * nesting at most FTABLE_MAX_DEPTH.
 */
#ifndef HERALD_HTTP_AMQP_JSON_H
#define HERALD_HTTP_AMQP_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "amqp/wire.h"
#include "base/buf.h"

/* A validated table's content (after its u32 length) as a new JSON object. */
json_t *amqp_json_from_table(amqp_bytes_t content);
/* Appends the table content (no length prefix) for obj (a JSON object) to
 * w. Returns 0, or -1 with the reason in err (w then holds garbage). */
int amqp_json_to_table(const json_t *obj, wbuf_t *w, char *err, size_t errn);

/* Stored property bytes (flags + list) as a new JSON object with the
 * properties present: {"delivery_mode": 2, "headers": {...}, ...}; an
 * empty object if they do not decode. */
json_t *amqp_json_from_props(amqp_bytes_t props);
/* Encodes a JSON properties object (the names above; unknown names, wrong
 * types and shortstrs over 255 bytes are errors) as property bytes into w.
 * *delivery_mode gets the delivery mode (0 absent), *expiration_ms the
 * "expiration" as ms (-1 absent). Returns 0 or -1 with err. */
int amqp_json_to_props(const json_t *obj, wbuf_t *w, int *delivery_mode, int64_t *expiration_ms, char *err,
                       size_t errn);

#endif
