/*
 * The mapping between AMQP messages and the Kafka records of a stream
 * (stream.h; docs/streams.md has the table). Pure functions: no broker
 * state, so the unit tests drive them directly.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/ftable.h"
#include "amqp/props.h"
#include "base/mem.h"
#include "broker/stream_map.h"

#define HDR_PREFIX "amqp."
#define HDR_PROPS "amqp.properties"
#define HDR_EXCHANGE "amqp.exchange"
/* Record headers rebuilt into an AMQP headers table stop short of this
 * many bytes: the content header must fit one frame (clients negotiate
 * 128 KiB; the spec's floor is 4 KiB, and most of it is left for the rest). */
#define TABLE_MAX 16384

/* The shortstr properties and their header names, in flag order. */
static const struct {
    uint16_t flag;
    const char *name;
} str_props[] = {
    {PROP_CONTENT_TYPE, "amqp.content-type"},   {PROP_CONTENT_ENCODING, "amqp.content-encoding"},
    {PROP_CORRELATION_ID, "amqp.correlation-id"}, {PROP_REPLY_TO, "amqp.reply-to"},
    {PROP_EXPIRATION, "amqp.expiration"},       {PROP_MESSAGE_ID, "amqp.message-id"},
    {PROP_TYPE, "amqp.type"},                   {PROP_USER_ID, "amqp.user-id"},
    {PROP_APP_ID, "amqp.app-id"},               {PROP_CLUSTER_ID, "amqp.cluster-id"},
};
#define NSTR (sizeof str_props / sizeof str_props[0])

/* ---- AMQP -> record ---- */

/* Renders a header value as text into out; returns 0, or -1 for a value
 * with no text form (nested table or array: left out). */
static int value_text(const fvalue_t *v, wbuf_t *out, int *is_null)
{
    char tmp[64];
    int n = -1;
    *is_null = 0;
    switch (v->type) {
    case FV_LONGSTR:
    case FV_BYTES: wbuf_put(out, v->v.str.p, v->v.str.len); return 0;
    case FV_VOID: *is_null = 1; return 0;
    case FV_BOOL: n = snprintf(tmp, sizeof tmp, "%s", v->v.i ? "true" : "false"); break;
    case FV_FLOAT:
    case FV_DOUBLE: n = snprintf(tmp, sizeof tmp, "%.17g", v->v.d); break;
    case FV_DECIMAL: {
        uint64_t div = 1;
        for (int i = 0; i < v->v.dec.scale && i < 19; i++) div *= 10;
        if (div == 1) n = snprintf(tmp, sizeof tmp, "%" PRIu32, v->v.dec.value);
        else
            n = snprintf(tmp, sizeof tmp, "%" PRIu64 ".%0*" PRIu64, v->v.dec.value / div, (int)v->v.dec.scale,
                         v->v.dec.value % div);
        break;
    }
    case FV_TABLE:
    case FV_ARRAY: return -1;
    default: n = snprintf(tmp, sizeof tmp, "%" PRId64, v->v.i); break; /* integers, timestamp */
    }
    if (n < 0) return -1;
    wbuf_put(out, tmp, (size_t)n);
    return 0;
}

typedef struct {
    size_t name_off, name_len;  /* in the text buffer */
    size_t val_off;
    int32_t val_len;            /* -1: null */
} hdr_ref_t;

typedef struct {
    wbuf_t text;                /* header names and values of every message */
    hdr_ref_t *refs;
    size_t n, cap;
} refs_t;

static void add_ref(refs_t *r, size_t noff, size_t nlen, size_t voff, int32_t vlen)
{
    if (r->n == r->cap) r->refs = xrealloc(r->refs, (r->cap = r->cap ? r->cap * 2 : 64) * sizeof *r->refs);
    r->refs[r->n++] = (hdr_ref_t){noff, nlen, voff, vlen};
}

static void add_text(refs_t *r, const char *name, const void *val, size_t vlen)
{
    size_t noff = r->text.len, nl = strlen(name);
    wbuf_put(&r->text, name, nl);
    size_t voff = r->text.len;
    wbuf_put(&r->text, val, vlen);
    add_ref(r, noff, nl, voff, (int32_t)vlen);
}

/* Collects the mapped headers of m (all but amqp.exchange and
 * amqp.properties, which are views into m). Names and values are offsets
 * into one buffer, which may move while it grows; the views are made at
 * the end. */
static void collect(refs_t *r, const qmsg_t *m)
{
    if (m->origin_off >= 0 && m->origin_qid) { /* a dead-letter copy's claim (stream.h) */
        uint8_t claim[16];
        wbuf_put_be64(claim, m->origin_qid);
        wbuf_put_be64(claim + 8, (uint64_t)m->origin_off);
        add_text(r, STREAM_HDR_CLAIM, claim, sizeof claim);
    }
    amqp_props_t props;
    if (amqp_props_decode(qmsg_props(m), &props) < 0) memset(&props, 0, sizeof props);
    if (props.flags & PROP_HEADERS) {
        ftable_iter_t it = {props.headers};
        amqp_bytes_t name;
        fvalue_t v;
        while (ftable_next(&it, &name, &v)) {
            size_t noff = r->text.len;
            wbuf_put(&r->text, name.p, name.len);
            size_t voff = r->text.len;
            int is_null;
            if (value_text(&v, &r->text, &is_null) < 0) {
                r->text.len = noff;
                continue;
            }
            add_ref(r, noff, name.len, voff, is_null ? -1 : (int32_t)(r->text.len - voff));
        }
    }
    for (size_t i = 0; i < NSTR; i++) {
        if (!(props.flags & str_props[i].flag)) continue;
        amqp_bytes_t sv = *amqp_props_str(&props, str_props[i].flag);
        add_text(r, str_props[i].name, sv.p, sv.len);
    }
    static const struct {
        uint16_t flag;
        const char *name;
    } num_props[] = {{PROP_DELIVERY_MODE, "amqp.delivery-mode"}, {PROP_PRIORITY, "amqp.priority"},
                     {PROP_TIMESTAMP, "amqp.timestamp"}};
    for (size_t i = 0; i < 3; i++) {
        if (!(props.flags & num_props[i].flag)) continue;
        uint64_t v = num_props[i].flag == PROP_DELIVERY_MODE ? props.delivery_mode
                     : num_props[i].flag == PROP_PRIORITY    ? props.priority
                                                             : props.timestamp;
        char tmp[24];
        int tl = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
        add_text(r, num_props[i].name, tmp, (size_t)tl);
    }
}

void stream_map_batch(wbuf_t *out, qmsg_t *const *ms, size_t n)
{
    refs_t r = {0};
    wbuf_init(&r.text);
    size_t *first = xmalloc((n + 1) * sizeof *first); /* refs of message i: [first[i], first[i+1]) */
    for (size_t i = 0; i < n; i++) {
        first[i] = r.n;
        collect(&r, ms[i]);
    }
    first[n] = r.n;
    batch_header_kv_t *h = xmalloc((r.n + 2 * n + 1) * sizeof *h);
    batch_record_t *recs = xcalloc(n ? n : 1, sizeof *recs);
    int64_t base_ts = n ? ms[0]->ts_ms : 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const qmsg_t *m = ms[i];
        batch_header_kv_t *hi = h + k;
        for (size_t j = first[i]; j < first[i + 1]; j++) {
            const hdr_ref_t *f = &r.refs[j];
            h[k++] = (batch_header_kv_t){r.text.p + f->name_off, (int32_t)f->name_len,
                                         f->val_len < 0 ? NULL : r.text.p + f->val_off, f->val_len};
        }
        amqp_bytes_t ex = qmsg_exchange(m), raw = qmsg_props(m), key = qmsg_key(m);
        if (ex.len) h[k++] = (batch_header_kv_t){HDR_EXCHANGE, (int32_t)strlen(HDR_EXCHANGE), ex.p, (int32_t)ex.len};
        if (raw.len) h[k++] = (batch_header_kv_t){HDR_PROPS, (int32_t)strlen(HDR_PROPS), raw.p, (int32_t)raw.len};
        recs[i].key = key.len ? key.p : NULL;
        recs[i].key_len = key.len ? (int32_t)key.len : -1;
        recs[i].value = qmsg_body((qmsg_t *)m); /* read only */
        recs[i].value_len = (int32_t)m->body_len;
        recs[i].timestamp_delta = m->ts_ms > base_ts ? m->ts_ms - base_ts : 0;
        recs[i].headers = hi;
        recs[i].header_count = (size_t)(h + k - hi);
    }
    if (n) batch_build(out, base_ts, recs, n);
    free(recs);
    free(h);
    free(first);
    free(r.refs);
    wbuf_destroy(&r.text);
}

/* ---- record -> AMQP ---- */

static int name_is(const batch_header_kv_t *kv, const char *s)
{
    size_t n = strlen(s);
    return (size_t)kv->key_len == n && !memcmp(kv->key, s, n);
}

static int has_prefix(const batch_header_kv_t *kv)
{
    return kv->key_len >= 5 && !memcmp(kv->key, HDR_PREFIX, 5);
}

/* A decimal header value as u64; returns 0 or -1. */
static int parse_u64(const batch_header_kv_t *kv, uint64_t *out)
{
    if (kv->value_len <= 0 || kv->value_len > 20) return -1;
    uint64_t v = 0;
    const uint8_t *p = kv->value;
    for (int32_t i = 0; i < kv->value_len; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return 0;
}

/* Properties from a record without amqp.properties: the amqp.* headers
 * become properties, the others headers-table entries. Writes the table
 * content into tbl (the caller appends x-stream-offset). */
static void rebuild_props(const batch_rec_t *rec, amqp_props_t *p, wbuf_t *tbl)
{
    batch_rec_t r = *rec;
    batch_header_kv_t kv;
    while (batch_rec_next_header(&r, &kv) > 0) {
        if (!has_prefix(&kv)) {
            size_t need = 1 + (size_t)kv.key_len + 5 + (kv.value_len > 0 ? (size_t)kv.value_len : 0);
            if (kv.key_len > 255 || tbl->len + need > TABLE_MAX) continue; /* left out */
            wbuf_u8(tbl, (uint8_t)kv.key_len);
            wbuf_put(tbl, kv.key, (size_t)kv.key_len);
            if (kv.value_len < 0) wbuf_u8(tbl, FV_VOID);
            else ftable_put_longstr(tbl, kv.value, (size_t)kv.value_len);
            continue;
        }
        uint64_t v;
        if (name_is(&kv, "amqp.delivery-mode") && parse_u64(&kv, &v) == 0 && v <= 255) {
            p->flags |= PROP_DELIVERY_MODE;
            p->delivery_mode = (uint8_t)v;
        } else if (name_is(&kv, "amqp.priority") && parse_u64(&kv, &v) == 0 && v <= 255) {
            p->flags |= PROP_PRIORITY;
            p->priority = (uint8_t)v;
        } else if (name_is(&kv, "amqp.timestamp") && parse_u64(&kv, &v) == 0) {
            p->flags |= PROP_TIMESTAMP;
            p->timestamp = v;
        } else {
            for (size_t i = 0; i < NSTR; i++)
                if (name_is(&kv, str_props[i].name) && kv.value_len >= 0 && kv.value_len <= 255) {
                    p->flags |= str_props[i].flag;
                    *amqp_props_str(p, str_props[i].flag) = (amqp_bytes_t){kv.value, (uint32_t)kv.value_len};
                }
        }
    }
}

qmsg_t *stream_map_message(const batch_rec_t *rec, int32_t partition)
{
    amqp_bytes_t ex = {NULL, 0}, stored = {NULL, 0};
    int has_stored = 0;
    batch_rec_t r = *rec;
    batch_header_kv_t kv;
    while (batch_rec_next_header(&r, &kv) > 0) {
        if (name_is(&kv, HDR_EXCHANGE) && kv.value_len > 0 && kv.value_len <= 255)
            ex = (amqp_bytes_t){kv.value, (uint32_t)kv.value_len};
        else if (name_is(&kv, HDR_PROPS) && kv.value_len >= 0) {
            stored = (amqp_bytes_t){kv.value, (uint32_t)kv.value_len};
            has_stored = 1;
        }
    }
    amqp_props_t props;
    memset(&props, 0, sizeof props);
    wbuf_t tbl, enc;
    wbuf_init(&tbl);
    wbuf_init(&enc);
    if (has_stored && amqp_props_decode(stored, &props) == 0) {
        if (props.flags & PROP_HEADERS) wbuf_put(&tbl, props.headers.p, props.headers.len);
    } else {
        memset(&props, 0, sizeof props);
        rebuild_props(rec, &props, &tbl);
    }
    ftable_put_name(&tbl, "x-stream-offset");
    ftable_put_i64(&tbl, rec->offset);
    if (partition >= 0) {
        ftable_put_name(&tbl, "x-stream-partition");
        ftable_put_i32(&tbl, partition);
    }
    props.flags |= PROP_HEADERS;
    props.headers = (amqp_bytes_t){tbl.p, (uint32_t)tbl.len};
    amqp_props_encode(&enc, &props);
    amqp_bytes_t key = {rec->key, rec->key_len > 0 && rec->key_len <= 255 ? (uint32_t)rec->key_len : 0};
    uint64_t blen = rec->value_len > 0 ? (uint64_t)rec->value_len : 0;
    qmsg_t *m = qmsg_new(ex, key, (amqp_bytes_t){enc.p, (uint32_t)enc.len}, blen);
    if (blen) memcpy(qmsg_body(m), rec->value, blen);
    m->ts_ms = rec->timestamp;
    m->persistent = (props.flags & PROP_DELIVERY_MODE) && props.delivery_mode == 2;
    wbuf_destroy(&tbl);
    wbuf_destroy(&enc);
    return m;
}
