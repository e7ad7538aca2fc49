/* Records one by one. See records.h. */
#include "broker/records.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "broker/internal.h"
#include "store/batch.h"
#include "store/batch_unzip.h"

#define RECORDS_MAX_HEADERS 64

int records_append(broker_t *b, partition_t *p, const records_rec_t *recs, size_t n, int64_t *base,
                   int64_t *target)
{
    int64_t now = clock_wall_ms(), base_ts = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        int64_t ts = recs[i].timestamp > 0 ? recs[i].timestamp : now;
        if (ts < base_ts) base_ts = ts;
    }
    batch_record_t *br = xcalloc(n, sizeof *br);
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) nh += recs[i].nheaders;
    batch_header_kv_t *hk = xcalloc(nh ? nh : 1, sizeof *hk);
    nh = 0;
    for (size_t i = 0; i < n; i++) {
        const records_rec_t *r = &recs[i];
        br[i].key = r->key.p;
        br[i].key_len = r->key.len;
        br[i].value = r->value.p;
        br[i].value_len = r->value.len;
        br[i].timestamp_delta = (r->timestamp > 0 ? r->timestamp : now) - base_ts;
        br[i].headers = hk + nh;
        br[i].header_count = r->nheaders;
        for (size_t k = 0; k < r->nheaders; k++, nh++) {
            hk[nh].key = r->headers[k].key;
            hk[nh].key_len = r->headers[k].key_len;
            hk[nh].value = r->headers[k].value.p;
            hk[nh].value_len = r->headers[k].value.len;
        }
    }
    wbuf_t w;
    wbuf_init(&w);
    batch_build(&w, base_ts, br, n);
    free(br);
    free(hk);
    append_result_t res;
    int rc = partition_append_built(b, p, w.p, w.len, &res);
    wbuf_destroy(&w);
    if (rc < 0) return rc;
    *base = res.base_offset;
    *target = res.base_offset + (int64_t)n;
    return 0;
}

/* Visits the records of one uncompressed batch image at or after from. */
static int visit_batch(partition_t *p, const uint8_t *bp, size_t blen, int64_t from, int *left, records_visit_fn fn,
                       void *ctx, int64_t *next)
{
    batch_iter_t it;
    if (batch_iter_init(&it, bp, blen) < 0) return 0;
    batch_rec_t rec;
    records_header_t hdrs[RECORDS_MAX_HEADERS];
    int seen = 0;
    while (*left > 0 && batch_iter_next(&it, &rec) == 1) {
        if (rec.offset < from) continue;
        records_rec_t out = {0};
        out.offset = rec.offset;
        out.timestamp = rec.timestamp;
        out.key = (records_bytes_t){rec.key, rec.key_len};
        out.value = (records_bytes_t){rec.value, rec.value_len};
        batch_header_kv_t kv;
        while (out.nheaders < RECORDS_MAX_HEADERS && batch_rec_next_header(&rec, &kv) == 1) {
            hdrs[out.nheaders++] = (records_header_t){kv.key, kv.key_len, {kv.value, kv.value_len}};
        }
        out.headers = hdrs;
        fn(ctx, &out);
        p->io.msgs_out++;
        p->io.bytes_out += (uint64_t)(rec.key_len > 0 ? rec.key_len : 0) + (uint64_t)(rec.value_len > 0 ? rec.value_len : 0);
        (*left)--;
        seen++;
        *next = rec.offset + 1;
    }
    return seen;
}

int records_read(partition_t *p, int64_t offset, int limit, size_t max_bytes, records_visit_fn fn, void *ctx,
                 int64_t *next)
{
    *next = offset;
    if (offset < partition_start_offset(p)) return HE_OUT_OF_RANGE;
    if (offset >= partition_high_watermark(p)) return 0;
    wbuf_t buf, unz;
    wbuf_init(&buf);
    wbuf_init(&unz);
    /* Counted below by what is handed out, not by the batches read. */
    int64_t got = partition_read_quiet(p, offset, max_bytes, &buf);
    int seen = 0, left = limit;
    if (got < 0) {
        seen = (int)got;
        goto out;
    }
    size_t pos = 0;
    while (left > 0 && pos < buf.len) {
        batch_header_t h;
        if (batch_header_parse(buf.p + pos, buf.len - pos, &h) < 0) break;
        size_t len = batch_size(&h);
        const uint8_t *bp = buf.p + pos;
        size_t blen = len;
        int64_t last = batch_last_offset(&h);
        if (!(h.attributes & BATCH_ATTR_CONTROL) && last >= offset) {
            if (h.attributes & BATCH_ATTR_COMPRESSION_MASK) {
                wbuf_reset(&unz);
                if (batch_unzip(bp, len, &unz) == 0) {
                    bp = unz.p;
                    blen = unz.len;
                } else {
                    blen = 0; /* undecodable: skipped */
                }
            }
            if (blen) seen += visit_batch(p, bp, blen, offset, &left, fn, ctx, next);
        }
        if (left > 0 && last + 1 > *next) *next = last + 1;
        pos += len;
    }
out:
    wbuf_destroy(&buf);
    wbuf_destroy(&unz);
    return seen;
}

/* Kafka's murmur2 (the Java client's Utils.murmur2, seed 0x9747b28c). */
static int32_t murmur2(const uint8_t *data, size_t len)
{
    const uint32_t m = 0x5bd1e995;
    const int r = 24;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    size_t n4 = len / 4;
    for (size_t i = 0; i < n4; i++) {
        size_t i4 = i * 4;
        uint32_t k = (uint32_t)data[i4] | (uint32_t)data[i4 + 1] << 8 | (uint32_t)data[i4 + 2] << 16 |
                     (uint32_t)data[i4 + 3] << 24;
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len % 4) {
    case 3: h ^= (uint32_t)data[(len & ~3u) + 2] << 16; /* fallthrough */
    case 2: h ^= (uint32_t)data[(len & ~3u) + 1] << 8;  /* fallthrough */
    case 1:
        h ^= data[len & ~3u];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

int32_t records_partition_for_key(const void *key, size_t len, int32_t npart)
{
    if (npart <= 0) return 0;
    return (int32_t)((uint32_t)(murmur2(key, len) & 0x7fffffff) % (uint32_t)npart);
}
