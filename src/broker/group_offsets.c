/*
 * Committed offsets of the consumer groups and the internal log that keeps
 * them.
 *
 * Committed offsets are persisted in the internal log data/__offsets, one
 * record per committed partition:
 *
 *   key   = 'o' (1 byte)
 *           group_len u16 BE | group bytes
 *           topic_len u16 BE | topic bytes
 *           partition i32 BE
 *   value = version i16 BE (0)
 *           offset i64 BE | leader_epoch i32 BE | commit_ts_ms i64 BE
 *           metadata_len i32 BE (-1 = null) | metadata bytes
 *   value null (tombstone) = the offset was deleted (DeleteGroups).
 *
 * Records with another key prefix or a value version other than 0 are
 * skipped at replay (a later format adds a version, never reinterprets 0).
 * Replay applies records in log order, so the last record per key wins.
 *
 * Compaction: the log grows with every commit and is replayed from its start
 * offset. When it exceeds COMPACT_MIN_BYTES and COMPACT_RATIO times the
 * estimated size of the live offsets, every live offset is appended again
 * (a snapshot; commit timestamps become the snapshot time) and, once that is
 * durable, the log start offset is raised to the snapshot's first offset,
 * which deletes the whole segments before it. A crash in between is
 * harmless: replay sees old records then the snapshot, and the last wins.
 */
#include "broker/group_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/batch.h"

#define COMPACT_MIN_BYTES (64ll << 20)
#define COMPACT_RATIO 4
#define COMPACT_RECHECK_BYTES (8ll << 20) /* log growth between live-size estimates */
#define REC_OVERHEAD 96                     /* batch header (61) + record framing */
#define OFFSET_REC_VERSION 0

static goff_t *offset_find(group_t *g, group_str_t topic, int32_t part)
{
    char key[TOPIC_NAME_MAX + 16];
    if (topic.len < 0 || topic.len > TOPIC_NAME_MAX) return NULL;
    int n = snprintf(key, sizeof key, "%.*s:%d", (int)topic.len, topic.p ? topic.p : "", part);
    goff_t *o = NULL;
    HASH_FIND(hh, g->offsets, key, (unsigned)n, o);
    return o;
}

static void offset_apply(group_t *g, group_str_t topic, int32_t part, int64_t offset, int32_t epoch,
                         group_str_t meta)
{
    goff_t *o = offset_find(g, topic, part);
    if (!o) {
        o = xcalloc(1, sizeof *o);
        o->topic = group_str_dup_(topic);
        o->part = part;
        o->key = xasprintf("%s:%d", o->topic, part);
        HASH_ADD_KEYPTR(hh, g->offsets, o->key, (unsigned)strlen(o->key), o);
    }
    o->offset = offset;
    o->epoch = epoch;
    free(o->meta);
    o->meta = group_str_dup_(meta);
    o->meta_len = meta.len;
}

void group_offset_remove_(group_t *g, goff_t *o)
{
    HASH_DEL(g->offsets, o);
    free(o->key);
    free(o->topic);
    free(o->meta);
    free(o);
}

void group_offset_key_(wbuf_t *w, group_str_t gid, group_str_t topic, int32_t part)
{
    wbuf_u8(w, 'o');
    wbuf_u16(w, (uint16_t)gid.len);
    wbuf_put(w, gid.p, (size_t)gid.len);
    wbuf_u16(w, (uint16_t)topic.len);
    wbuf_put(w, topic.p, (size_t)topic.len);
    wbuf_i32(w, part);
}


static int offset_append(group_coord_t *c, group_str_t gid, group_str_t topic, int32_t partition, int64_t offset,
                         int32_t leader_epoch, group_str_t metadata, int64_t *target)
{
    wbuf_t k, v;
    wbuf_init(&k);
    wbuf_init(&v);
    group_offset_key_(&k, gid, topic, partition);
    wbuf_i16(&v, OFFSET_REC_VERSION);
    wbuf_i64(&v, offset);
    wbuf_i32(&v, leader_epoch);
    wbuf_i64(&v, clock_wall_ms());
    wbuf_i32(&v, metadata.len);
    if (metadata.len > 0) wbuf_put(&v, metadata.p, (size_t)metadata.len);
    int rc = internal_append(c->b, c->log, k.p, (int32_t)k.len, v.p, (int32_t)v.len, target);
    wbuf_destroy(&k);
    wbuf_destroy(&v);
    return rc;
}

static int64_t live_bytes(group_coord_t *c)
{
    int64_t n = 0;
    for (group_t *g = c->groups; g; g = g->hh.next)
        for (goff_t *o = g->offsets; o; o = o->hh.next)
            n += REC_OVERHEAD + 9 + g->idlen + (int64_t)strlen(o->topic) + 26 + (o->meta_len > 0 ? o->meta_len : 0);
    return n;
}

static void compact_done(pwaiter_t *w, int status)
{
    group_coord_t *c = w->ctx;
    c->compacting = 0;
    if (status < 0) return;
    int rc = partition_delete_before(c->b, c->log, c->compact_from);
    if (rc < 0) LOG_W("offsets log compaction: %s", herald_strerror(rc));
    else LOG_I("offsets log compacted: starts at %lld, %lld bytes", (long long)c->compact_from,
               (long long)partition_size_bytes(c->log));
}

int group_offsets_compact(group_coord_t *c)
{
    if (c->compacting) return 0;
    int64_t from = partition_end_offset(c->log), target = from;
    for (group_t *g = c->groups; g; g = g->hh.next)
        for (goff_t *o = g->offsets; o; o = o->hh.next) {
            int64_t t = 0;
            int rc = offset_append(c, (group_str_t){g->id, g->idlen}, (group_str_t){o->topic, (int32_t)strlen(o->topic)},
                                   o->part, o->offset, o->epoch, (group_str_t){o->meta, o->meta ? o->meta_len : -1}, &t);
            if (rc < 0) return rc;
            if (t > target) target = t;
        }
    c->compacting = 1;
    c->compact_from = from;
    memset(&c->compact_w, 0, sizeof c->compact_w);
    c->compact_w.target = target;
    c->compact_w.cb = compact_done;
    c->compact_w.ctx = c;
    if (partition_wait(c->log, &c->compact_w)) compact_done(&c->compact_w, 0);
    return 0;
}

static void maybe_compact(group_coord_t *c)
{
    int64_t size = partition_size_bytes(c->log);
    if (c->compacting || size < COMPACT_MIN_BYTES || size < c->compact_check) return;
    c->compact_check = size + COMPACT_RECHECK_BYTES;
    if (size > COMPACT_RATIO * live_bytes(c)) group_offsets_compact(c);
}

int group_commit(group_coord_t *c, group_str_t gid, group_str_t topic, int32_t partition, int64_t offset,
                 int32_t leader_epoch, group_str_t metadata, int64_t *target)
{
    if (gid.len <= 0 || gid.len > 0xffff || topic.len < 0 || topic.len > TOPIC_NAME_MAX) return HE_INVALID;
    int rc = offset_append(c, gid, topic, partition, offset, leader_epoch, metadata, target);
    if (rc < 0) return rc;
    group_t *g = group_find(c, gid);
    if (!g) g = group_create_(c, gid);
    offset_apply(g, topic, partition, offset, leader_epoch, metadata);
    maybe_compact(c);
    return 0;
}

int group_offsets_wait(group_coord_t *c, pwaiter_t *w) { return partition_wait(c->log, w); }

int group_offset_get(group_coord_t *c, group_str_t gid, group_str_t topic, int32_t partition, int64_t *offset,
                     int32_t *leader_epoch, group_str_t *meta)
{
    group_t *g = group_find(c, gid);
    goff_t *o = g ? offset_find(g, topic, partition) : NULL;
    if (!o) return 0;
    *offset = o->offset;
    *leader_epoch = o->epoch;
    *meta = (group_str_t){o->meta, o->meta ? o->meta_len : -1};
    return 1;
}

void group_offsets_each(group_coord_t *c, group_str_t gid, group_offset_visit fn, void *ctx)
{
    group_t *g = group_find(c, gid);
    if (!g) return;
    for (goff_t *o = g->offsets; o; o = o->hh.next)
        fn(ctx, o->topic, o->part, o->offset, o->epoch, (group_str_t){o->meta, o->meta ? o->meta_len : -1});
}

static void replay_record(group_coord_t *c, const batch_rec_t *rec)
{
    const uint8_t *k = rec->key;
    int32_t kl = rec->key_len;
    if (kl < 1 + 2 || k[0] != 'o') return;
    int32_t pos = 1;
    int32_t gl = (int32_t)((k[pos] << 8) | k[pos + 1]);
    pos += 2;
    if (gl <= 0 || pos + gl + 2 > kl) return;
    group_str_t gid = {(const char *)k + pos, gl};
    pos += gl;
    int32_t tl = (int32_t)((k[pos] << 8) | k[pos + 1]);
    pos += 2;
    if (tl < 0 || tl > TOPIC_NAME_MAX || pos + tl + 4 != kl) return;
    group_str_t topic = {(const char *)k + pos, tl};
    pos += tl;
    int32_t part = (int32_t)buf_get_be32(k + pos);
    group_t *g = group_find(c, gid);
    if (rec->value_len < 0) {
        goff_t *o = g ? offset_find(g, topic, part) : NULL;
        if (o) group_offset_remove_(g, o);
        if (g) group_maybe_drop_(c, g);
        return;
    }
    const uint8_t *v = rec->value;
    int32_t vl = rec->value_len;
    if (vl < 2 + 8 + 4 + 8 + 4 || (int16_t)((v[0] << 8) | v[1]) != OFFSET_REC_VERSION) return;
    int64_t off = (int64_t)buf_get_be64(v + 2);
    int32_t epoch = (int32_t)buf_get_be32(v + 10);
    int32_t ml = (int32_t)buf_get_be32(v + 22);
    if (ml > vl - 26) return;
    group_str_t meta = {ml >= 0 ? (const char *)v + 26 : NULL, ml < 0 ? -1 : ml};
    if (!g) g = group_create_(c, gid);
    offset_apply(g, topic, part, off, epoch, meta);
}

static void replay_cb(void *ctx, const batch_rec_t *rec) { replay_record(ctx, rec); }

int group_offsets_replay_(group_coord_t *c) { return partition_scan(c->log, replay_cb, c); }

void group_offsets_free_(group_t *g)
{
    goff_t *o, *tmp;
    HASH_ITER(hh, g->offsets, o, tmp) group_offset_remove_(g, o);
}
