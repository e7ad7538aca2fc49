/* AMQP field tables and properties <-> JSON. See amqp_json.h. */
#include "http/amqp_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/ftable.h"
#include "amqp/props.h"
#include "http/hjson.h"

/* ---- table -> JSON ---- */

static json_t *from_array(amqp_bytes_t content);

static json_t *string_or_b64(amqp_bytes_t s)
{
    if (hjson_utf8_valid(s.p, s.len)) return json_stringn(s.len ? (const char *)s.p : "", s.len);
    char *b = hjson_b64_encode(s.p, s.len);
    json_t *j = json_string(b);
    free(b);
    return j;
}

static json_t *from_value(const fvalue_t *v)
{
    switch (v->type) {
    case FV_VOID: return json_null();
    case FV_BOOL: return json_boolean(v->v.i);
    case FV_I8: case FV_U8: case FV_I16: case FV_U16: case FV_I32: case FV_U32: case FV_I64: case FV_TIMESTAMP:
        return json_integer(v->v.i);
    case FV_FLOAT: case FV_DOUBLE: return json_real(v->v.d);
    case FV_DECIMAL: {
        double d = v->v.dec.value;
        for (int i = 0; i < v->v.dec.scale; i++) d /= 10.0;
        return json_real(d);
    }
    case FV_LONGSTR: return string_or_b64(v->v.str);
    case FV_BYTES: {
        char *b = hjson_b64_encode(v->v.str.p, v->v.str.len);
        json_t *j = json_string(b);
        free(b);
        return j;
    }
    case FV_ARRAY: return from_array(v->v.array);
    case FV_TABLE: return amqp_json_from_table(v->v.table);
    }
    return json_null();
}

json_t *amqp_json_from_table(amqp_bytes_t content)
{
    json_t *o = json_object();
    ftable_iter_t it = {content};
    amqp_bytes_t name;
    fvalue_t v;
    while (ftable_next(&it, &name, &v)) {
        char key[256];
        memcpy(key, name.p, name.len);
        key[name.len] = '\0';
        if (strlen(key) != name.len || !hjson_utf8_valid(name.p, name.len)) continue; /* not a JSON key */
        json_object_set_new(o, key, from_value(&v));
    }
    return o;
}

static json_t *from_array(amqp_bytes_t content)
{
    json_t *a = json_array();
    ftable_iter_t it = {content};
    fvalue_t v;
    while (farray_next(&it, &v)) json_array_append_new(a, from_value(&v));
    return a;
}

/* ---- JSON -> table ---- */

static int to_value(const json_t *j, wbuf_t *w, int depth, char *err, size_t n);

static int to_entries(const json_t *obj, wbuf_t *w, int depth, char *err, size_t n)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        if (strlen(k) > 255) {
            snprintf(err, n, "field table key longer than 255 bytes: \"%.40s...\"", k);
            return -1;
        }
        ftable_put_name(w, k);
        if (to_value(v, w, depth, err, n) < 0) return -1;
    }
    return 0;
}

static int to_value(const json_t *j, wbuf_t *w, int depth, char *err, size_t n)
{
    switch (json_typeof(j)) {
    case JSON_NULL: wbuf_u8(w, FV_VOID); return 0;
    case JSON_TRUE: ftable_put_bool(w, 1); return 0;
    case JSON_FALSE: ftable_put_bool(w, 0); return 0;
    case JSON_INTEGER: ftable_put_i64(w, (int64_t)json_integer_value(j)); return 0;
    case JSON_REAL:
        wbuf_u8(w, FV_DOUBLE);
        wbuf_f64(w, json_real_value(j));
        return 0;
    case JSON_STRING: ftable_put_longstr(w, json_string_value(j), json_string_length(j)); return 0;
    case JSON_ARRAY: {
        if (depth >= FTABLE_MAX_DEPTH) goto deep;
        size_t mark = ftable_put_array_begin(w), i;
        json_t *v;
        json_array_foreach((json_t *)j, i, v) if (to_value(v, w, depth + 1, err, n) < 0) return -1;
        ftable_end(w, mark);
        return 0;
    }
    case JSON_OBJECT: {
        if (depth >= FTABLE_MAX_DEPTH) goto deep;
        size_t mark = ftable_put_table_begin(w);
        if (to_entries(j, w, depth + 1, err, n) < 0) return -1;
        ftable_end(w, mark);
        return 0;
    }
    }
    snprintf(err, n, "unsupported JSON value");
    return -1;
deep:
    snprintf(err, n, "field tables nest at most %d deep", FTABLE_MAX_DEPTH);
    return -1;
}

int amqp_json_to_table(const json_t *obj, wbuf_t *w, char *err, size_t errn)
{
    if (!json_is_object(obj)) {
        snprintf(err, errn, "a field table must be a JSON object");
        return -1;
    }
    return to_entries(obj, w, 1, err, errn);
}

/* ---- properties ---- */

typedef enum { PK_STR, PK_OCTET, PK_U64, PK_TABLE } pkind_t;

static const struct {
    const char *name;
    uint16_t flag;
    pkind_t kind;
    size_t off; /* of the amqp_bytes_t / integer field in amqp_props_t */
} g_props[] = {
    {"content_type", PROP_CONTENT_TYPE, PK_STR, offsetof(amqp_props_t, content_type)},
    {"content_encoding", PROP_CONTENT_ENCODING, PK_STR, offsetof(amqp_props_t, content_encoding)},
    {"headers", PROP_HEADERS, PK_TABLE, offsetof(amqp_props_t, headers)},
    {"delivery_mode", PROP_DELIVERY_MODE, PK_OCTET, offsetof(amqp_props_t, delivery_mode)},
    {"priority", PROP_PRIORITY, PK_OCTET, offsetof(amqp_props_t, priority)},
    {"correlation_id", PROP_CORRELATION_ID, PK_STR, offsetof(amqp_props_t, correlation_id)},
    {"reply_to", PROP_REPLY_TO, PK_STR, offsetof(amqp_props_t, reply_to)},
    {"expiration", PROP_EXPIRATION, PK_STR, offsetof(amqp_props_t, expiration)},
    {"message_id", PROP_MESSAGE_ID, PK_STR, offsetof(amqp_props_t, message_id)},
    {"timestamp", PROP_TIMESTAMP, PK_U64, offsetof(amqp_props_t, timestamp)},
    {"type", PROP_TYPE, PK_STR, offsetof(amqp_props_t, type)},
    {"user_id", PROP_USER_ID, PK_STR, offsetof(amqp_props_t, user_id)},
    {"app_id", PROP_APP_ID, PK_STR, offsetof(amqp_props_t, app_id)},
    {"cluster_id", PROP_CLUSTER_ID, PK_STR, offsetof(amqp_props_t, cluster_id)},
};
#define NPROPS (sizeof g_props / sizeof g_props[0])

json_t *amqp_json_from_props(amqp_bytes_t raw)
{
    json_t *o = json_object();
    amqp_props_t p;
    if (amqp_props_decode(raw, &p) < 0) return o;
    for (size_t i = 0; i < NPROPS; i++) {
        if (!(p.flags & g_props[i].flag)) continue;
        const char *f = (const char *)&p + g_props[i].off;
        json_t *v;
        switch (g_props[i].kind) {
        case PK_STR: v = string_or_b64(*(const amqp_bytes_t *)f); break;
        case PK_OCTET: v = json_integer(*(const uint8_t *)f); break;
        case PK_U64: v = json_integer((json_int_t) * (const uint64_t *)f); break;
        default: v = amqp_json_from_table(*(const amqp_bytes_t *)f); break;
        }
        json_object_set_new(o, g_props[i].name, v);
    }
    return o;
}

static int parse_expiration(const char *s, int64_t *ms)
{
    size_t n = strlen(s);
    if (!n || n > 18) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *ms = v;
    return 0;
}

int amqp_json_to_props(const json_t *obj, wbuf_t *w, int *delivery_mode, int64_t *expiration_ms, char *err,
                       size_t errn)
{
    amqp_props_t p;
    memset(&p, 0, sizeof p);
    *delivery_mode = 0;
    *expiration_ms = -1;
    wbuf_t h;
    wbuf_init(&h);
    int rc = -1;
    if (!json_is_object(obj)) {
        snprintf(err, errn, "properties must be a JSON object");
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        size_t i = 0;
        while (i < NPROPS && strcmp(g_props[i].name, k)) i++;
        if (i == NPROPS) {
            snprintf(err, errn, "unknown property \"%.64s\"", k);
            goto out;
        }
        char *f = (char *)&p + g_props[i].off;
        switch (g_props[i].kind) {
        case PK_STR:
            if (!json_is_string(v) || json_string_length(v) > 255) {
                snprintf(err, errn, "property %s must be a string of at most 255 bytes", k);
                goto out;
            }
            *(amqp_bytes_t *)f = (amqp_bytes_t){(const uint8_t *)json_string_value(v), (uint32_t)json_string_length(v)};
            break;
        case PK_OCTET:
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 255) {
                snprintf(err, errn, "property %s must be an integer from 0 to 255", k);
                goto out;
            }
            *(uint8_t *)f = (uint8_t)json_integer_value(v);
            break;
        case PK_U64:
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                snprintf(err, errn, "property %s must be a non-negative integer", k);
                goto out;
            }
            *(uint64_t *)f = (uint64_t)json_integer_value(v);
            break;
        case PK_TABLE:
            if (amqp_json_to_table(v, &h, err, errn) < 0) goto out;
            break;
        }
        p.flags |= g_props[i].flag;
    }
    if ((p.flags & PROP_EXPIRATION)) {
        if (parse_expiration(json_string_value(json_object_get(obj, "expiration")), expiration_ms) < 0) {
            snprintf(err, errn, "property expiration must be a non-negative integer string (ms)");
            goto out;
        }
    }
    if (p.flags & PROP_HEADERS) p.headers = (amqp_bytes_t){h.p, (uint32_t)h.len};
    if (p.flags & PROP_DELIVERY_MODE) *delivery_mode = p.delivery_mode;
    amqp_props_encode(w, &p);
    rc = 0;
out:
    wbuf_destroy(&h);
    return rc;
}
