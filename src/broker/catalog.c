/*
 * The topic catalog is a log (data/__catalog) of records, replayed in order
 * at start-up; the last record for a key wins, a null value deletes it.
 *
 * Record keys and values (all integers big-endian):
 *
 *   key "t:<topic name>"   value: version int8 (=1)
 *                                 topic id: 16 bytes
 *                                 partitions: int32
 *                                 config count: int32
 *                                 per config: key (int16 len + bytes),
 *                                             value (int16 len + bytes)
 *                          null value: the topic was deleted
 *   key "pid"              value: int64, the end (exclusive) of the last
 *                                 producer-id block handed out
 *   key "cluster"          value: the cluster id string (written once)
 *
 * An unknown value version stops start-up with an error rather than guess.
 */
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/internal.h"
#include "store/batch.h"

static void put_str16(wbuf_t *w, const char *s)
{
    size_t n = strlen(s);
    wbuf_i16(w, (int16_t)n);
    wbuf_put(w, s, n);
}

int catalog_put_topic(broker_t *b, const topic_t *t, int64_t *target)
{
    wbuf_t key, val;
    wbuf_init(&key);
    wbuf_init(&val);
    wbuf_put(&key, "t:", 2);
    wbuf_put(&key, t->name, strlen(t->name));
    wbuf_i8(&val, 1);
    wbuf_put(&val, t->id, 16);
    wbuf_i32(&val, t->npart);
    int32_t n = 0;
    for (topic_cfg_entry_t *e = t->configs; e; e = e->next) n++;
    wbuf_i32(&val, n);
    for (topic_cfg_entry_t *e = t->configs; e; e = e->next) {
        put_str16(&val, e->key);
        put_str16(&val, e->value);
    }
    int rc = internal_append(b, b->catalog, key.p, (int32_t)key.len, val.p, (int32_t)val.len, target);
    wbuf_destroy(&key);
    wbuf_destroy(&val);
    return rc;
}

int catalog_delete_topic(broker_t *b, const char *name, int64_t *target)
{
    wbuf_t key;
    wbuf_init(&key);
    wbuf_put(&key, "t:", 2);
    wbuf_put(&key, name, strlen(name));
    int rc = internal_append(b, b->catalog, key.p, (int32_t)key.len, NULL, -1, target);
    wbuf_destroy(&key);
    return rc;
}

int catalog_put_pid_block(broker_t *b, int64_t block_end, int64_t *target)
{
    uint8_t v[8];
    wbuf_put_be64(v, (uint64_t)block_end);
    return internal_append(b, b->catalog, "pid", 3, v, 8, target);
}

static int replay_topic(broker_t *b, const char *name, size_t nlen, const uint8_t *val, int32_t vlen)
{
    topic_t *old = broker_topic_find(b, name, nlen);
    if (vlen < 0) { /* deleted */
        if (old) topic_free(b, old);
        return 0;
    }
    rbuf_t r;
    rbuf_init(&r, val, (size_t)vlen);
    int8_t version = rbuf_i8(&r);
    if (version != 1) {
        LOG_E("catalog: topic %.*s has record version %d, this build reads 1", (int)nlen, name, version);
        return HE_UNSUPPORTED;
    }
    const uint8_t *id = rbuf_view(&r, 16);
    int32_t npart = rbuf_i32(&r);
    int32_t ncfg = rbuf_i32(&r);
    if (r.err || npart < 1 || ncfg < 0) return HE_CORRUPT;
    topic_t *t = old;
    if (t && memcmp(t->id, id, 16) != 0) { /* recreated under the same name */
        topic_free(b, t);
        t = NULL;
    }
    if (!t) {
        t = topic_alloc(name, nlen, id, 0);
        HASH_ADD_KEYPTR(hh, b->topics, t->name, strlen(t->name), t);
        t->prev = b->last;
        if (b->last) b->last->next = t;
        else b->first = t;
        b->last = t;
        b->ntopics++;
    }
    /* Configs are replaced as a whole by each record. */
    topic_configs_clear(t);
    for (int32_t i = 0; i < ncfg && !r.err; i++) {
        int16_t kl = rbuf_i16(&r);
        const uint8_t *k = rbuf_view(&r, kl < 0 ? 0 : (size_t)kl);
        int16_t vl = rbuf_i16(&r);
        const uint8_t *v = rbuf_view(&r, vl < 0 ? 0 : (size_t)vl);
        if (r.err || kl < 0 || vl < 0) break;
        char *ks = xstrndup((const char *)k, (size_t)kl), *vs = xstrndup((const char *)v, (size_t)vl);
        topic_set_config_raw(t, ks, vs);
        free(ks);
        free(vs);
    }
    if (r.err) return HE_CORRUPT;
    if (npart > t->npart) {
        t->parts = xrealloc(t->parts, sizeof *t->parts * (size_t)npart);
        for (int32_t i = t->npart; i < npart; i++) t->parts[i] = NULL;
        t->npart = npart; /* the new partitions' logs are opened after replay */
    }
    return 0;
}

typedef struct {
    broker_t *b;
    int rc;
} replay_ctx_t;

static void replay_record(replay_ctx_t *cx, const batch_rec_t *rec)
{
    const char *k = (const char *)rec->key;
    int32_t kl = rec->key_len;
    if (kl >= 2 && memcmp(k, "t:", 2) == 0) {
        int rc = replay_topic(cx->b, k + 2, (size_t)kl - 2, rec->value, rec->value_len);
        if (rc && !cx->rc) cx->rc = rc;
    } else if (kl >= 2 && k[1] == ':' && (k[0] == 'x' || k[0] == 'q' || k[0] == 'b')) {
        vhost_replay_record(cx->b, rec->key, kl, rec->value, rec->value_len);
    } else if (kl == 3 && memcmp(k, "pid", 3) == 0 && rec->value_len == 8) {
        int64_t end = (int64_t)buf_get_be64(rec->value);
        /* Ids below the persisted block end may have been handed out. */
        cx->b->next_pid = end;
        cx->b->pid_block_end = end;
    } else if (kl == 7 && memcmp(k, "cluster", 7) == 0 && rec->value_len > 0 &&
               rec->value_len < (int32_t)sizeof cx->b->cluster_id) {
        memcpy(cx->b->cluster_id, rec->value, (size_t)rec->value_len);
        cx->b->cluster_id[rec->value_len] = '\0';
    }
}

static void replay_cb(void *ctx, const batch_rec_t *rec) { replay_record(ctx, rec); }

int catalog_replay(broker_t *b)
{
    replay_ctx_t cx = {b, 0};
    int rc = partition_scan(b->catalog, replay_cb, &cx);
    if (rc && !cx.rc) cx.rc = rc;
    if (!cx.rc && !b->cluster_id[0]) {
        /* First start: make and persist a cluster id (22 chars, like Kafka's). */
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        uint8_t rnd[22];
        uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL);
        for (int i = 0; i < 22; i++) b->cluster_id[i] = alphabet[rnd[i] & 63];
        b->cluster_id[22] = '\0';
        int64_t target;
        cx.rc = internal_append(b, b->catalog, "cluster", 7, b->cluster_id, 22, &target);
    }
    return cx.rc;
}
