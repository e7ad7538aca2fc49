/*
 * Queue-level de-duplication (x-message-deduplication), as the RabbitMQ
 * message-deduplication plugin defines it, plus a window:
 *
 *   - without x-cache-ttl / x-cache-size: a message whose
 *     x-deduplication-header value equals that of a message still in the
 *     queue (ready, delayed or unacked) is not enqueued (the plugin);
 *   - with x-cache-ttl (ms) and/or x-cache-size (entries): a value is
 *     remembered for x-cache-ttl after it was first enqueued, whether or
 *     not the message was consumed since, and at most x-cache-size values
 *     are kept (the oldest goes first).
 *
 * A duplicate is confirmed to its publisher but not enqueued. The values
 * are rebuilt at start-up from the data log (the record headers keep the
 * message's headers): live messages in the first mode; every record still
 * inside the window in the second, and maintenance keeps the data-log
 * segments holding those records (queue_dedup_floor).
 */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "amqp/ftable.h"
#include "amqp/props.h"
#include "base/mem.h"
#include "broker/queue_int.h"

struct qdkey {
    UT_hash_handle hh;
    qdkey_t *older, *newer; /* window mode: first-seen order */
    int64_t until_ms;       /* window mode: forgotten at this wall time, 0 never */
    int64_t offset;         /* the record it came from, -1 not stored */
    uint32_t live;          /* plugin mode: live messages carrying it */
    uint32_t len;
    uint8_t key[];
};

struct qdedup {
    qdkey_t *by_key;        /* uthash */
    qdkey_t *oldest, *newest;
    uint32_t n;
    int window;             /* x-cache-ttl or x-cache-size given */
    int64_t ttl_ms;         /* 0 none */
    int64_t size;           /* 0 unbounded */
};

void queue_dedup_init(queue_t *q)
{
    amqp_bytes_t a = queue_args(q);
    fvalue_t v;
    if (ftable_get(a, "x-message-deduplication", &v) != 1 || v.type != FV_BOOL || !v.v.i) return;
    qdedup_t *d = xcalloc(1, sizeof *d);
    int64_t x;
    if (ftable_get_int(a, "x-cache-ttl", &x) == 1 && x > 0) d->ttl_ms = x;
    if (ftable_get_int(a, "x-cache-size", &x) == 1 && x > 0) d->size = x;
    d->window = d->ttl_ms || d->size;
    q->dedup = d;
}

static void key_drop(qdedup_t *d, qdkey_t *k)
{
    HASH_DEL(d->by_key, k);
    if (k->older) k->older->newer = k->newer;
    else if (d->oldest == k) d->oldest = k->newer;
    if (k->newer) k->newer->older = k->older;
    else if (d->newest == k) d->newest = k->older;
    d->n--;
    free(k);
}

void queue_dedup_free(queue_t *q)
{
    qdedup_t *d = q->dedup;
    if (!d) return;
    while (d->by_key) key_drop(d, d->by_key);
    free(d);
    q->dedup = NULL;
}

/* The message's de-duplication value as bytes (type octet + value), or
 * len 0 when it has none (then it is never a duplicate). */
static size_t key_of(amqp_bytes_t props, uint8_t *buf, size_t cap)
{
    amqp_props_t p;
    fvalue_t v;
    if (amqp_props_decode(props, &p) < 0 || !(p.flags & PROP_HEADERS) ||
        ftable_get(p.headers, "x-deduplication-header", &v) != 1)
        return 0;
    if (v.type == FV_LONGSTR || v.type == FV_BYTES) {
        if (v.v.str.len + 1 > cap) return 0;
        buf[0] = 'S';
        memcpy(buf + 1, v.v.str.p, v.v.str.len);
        return v.v.str.len + 1;
    }
    if (v.type == FV_I8 || v.type == FV_U8 || v.type == FV_I16 || v.type == FV_U16 || v.type == FV_I32 ||
        v.type == FV_U32 || v.type == FV_I64) {
        buf[0] = 'l';
        wbuf_put_be64(buf + 1, (uint64_t)v.v.i);
        return 9;
    }
    return 0;
}

#define KEY_MAX 4096

static void expire(qdedup_t *d, int64_t now)
{
    while (d->oldest && d->oldest->until_ms && d->oldest->until_ms <= now) key_drop(d, d->oldest);
}

int queue_dedup_seen(queue_t *q, amqp_bytes_t props, int64_t now)
{
    qdedup_t *d = q->dedup;
    uint8_t buf[KEY_MAX];
    size_t n = d ? key_of(props, buf, sizeof buf) : 0;
    if (!n) return 0;
    if (d->window) expire(d, now);
    qdkey_t *k;
    HASH_FIND(hh, d->by_key, buf, n, k);
    return k != NULL && (d->window || k->live > 0);
}

void queue_dedup_add(queue_t *q, amqp_bytes_t props, int64_t offset, int64_t ts_ms)
{
    qdedup_t *d = q->dedup;
    uint8_t buf[KEY_MAX];
    size_t n = d ? key_of(props, buf, sizeof buf) : 0;
    if (!n) return;
    qdkey_t *k;
    HASH_FIND(hh, d->by_key, buf, n, k);
    if (k) { /* plugin mode: another live copy (after a restart's replay) */
        k->live++;
        return;
    }
    k = xcalloc(1, sizeof *k + n);
    memcpy(k->key, buf, n);
    k->len = (uint32_t)n;
    k->offset = offset;
    k->live = 1;
    k->until_ms = d->ttl_ms ? ts_ms + d->ttl_ms : 0;
    HASH_ADD(hh, d->by_key, key, k->len, k);
    k->older = d->newest;
    if (d->newest) d->newest->newer = k;
    else d->oldest = k;
    d->newest = k;
    d->n++;
    if (d->size)
        while (d->n > (uint64_t)d->size) key_drop(d, d->oldest);
}

void queue_dedup_forget(queue_t *q, amqp_bytes_t props)
{
    qdedup_t *d = q->dedup;
    if (!d || d->window) return; /* a window keeps values after consumption */
    uint8_t buf[KEY_MAX];
    size_t n = key_of(props, buf, sizeof buf);
    if (!n) return;
    qdkey_t *k;
    HASH_FIND(hh, d->by_key, buf, n, k);
    if (k && --k->live == 0) key_drop(d, k);
}

void queue_dedup_forget_ranges(queue_t *q, const qranges_t *gone)
{
    qdedup_t *d = q->dedup;
    if (!d || d->window || !gone->n) return;
    qdkey_t *k, *tmp;
    HASH_ITER(hh, d->by_key, k, tmp)
        if (k->offset >= 0 && qranges_has(gone, k->offset)) key_drop(d, k);
}

void queue_dedup_forget_offset(queue_t *q, int64_t offset)
{
    if (!q->dedup || q->dedup->window) return;
    qranges_t one = {0};
    qranges_add(&one, offset, offset + 1);
    queue_dedup_forget_ranges(q, &one);
    qranges_free(&one);
}

int queue_dedup_window(const queue_t *q) { return q->dedup && q->dedup->window; }

int64_t queue_dedup_floor(queue_t *q, int64_t now)
{
    qdedup_t *d = q->dedup;
    if (!d || !d->window) return INT64_MAX;
    expire(d, now);
    int64_t floor = INT64_MAX;
    for (qdkey_t *k = d->oldest; k; k = k->newer)
        if (k->offset >= 0) {
            floor = k->offset; /* first-seen order is offset order */
            break;
        }
    return floor;
}
