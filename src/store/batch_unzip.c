/* Decompressing record batches: see batch_unzip.h for the codecs. */
#include "store/batch_unzip.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "base/err.h"
#include "store/batch.h"

#define CHUNK (64u << 10)

static int unzip_gzip(const uint8_t *in, size_t n, wbuf_t *out, size_t limit)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK) return HE_MALFORMED; /* +32: gzip or zlib header */
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    int rc = HE_MALFORMED;
    for (;;) {
        uint8_t *dst = wbuf_tail(out, CHUNK);
        zs.next_out = dst;
        zs.avail_out = CHUNK;
        int z = inflate(&zs, Z_NO_FLUSH);
        out->len -= zs.avail_out;
        if (z == Z_STREAM_END) {
            rc = 0;
            break;
        }
        if (z != Z_OK && z != Z_BUF_ERROR) break;
        if (z == Z_BUF_ERROR && zs.avail_in == 0) break; /* truncated */
        if (out->len > limit) {
            rc = HE_TOO_LARGE;
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

static int unsnappy_raw(const uint8_t *in, size_t n, wbuf_t *out, size_t limit)
{
    size_t ulen;
    if (snappy_uncompressed_length((const char *)in, n, &ulen) != SNAPPY_OK) return HE_MALFORMED;
    if (ulen > limit || out->len + ulen > limit) return HE_TOO_LARGE;
    uint8_t *dst = wbuf_tail(out, ulen);
    size_t got = ulen;
    if (snappy_uncompress((const char *)in, n, (char *)dst, &got) != SNAPPY_OK || got != ulen) return HE_MALFORMED;
    return 0;
}

static int unzip_snappy(const uint8_t *in, size_t n, wbuf_t *out, size_t limit)
{
    static const uint8_t xerial[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
    if (n < 16 || memcmp(in, xerial, 8) != 0) return unsnappy_raw(in, n, out, limit);
    rbuf_t r;
    rbuf_init(&r, in + 16, n - 16);
    while (rbuf_remaining(&r)) {
        uint32_t bl = rbuf_u32(&r);
        const uint8_t *b = rbuf_view(&r, bl);
        if (r.err) return HE_MALFORMED;
        int rc = unsnappy_raw(b, bl, out, limit);
        if (rc < 0) return rc;
    }
    return 0;
}

static int unzip_lz4(const uint8_t *in, size_t n, wbuf_t *out, size_t limit)
{
    LZ4F_dctx *d;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION))) return HE_MALFORMED;
    int rc = HE_MALFORMED;
    size_t pos = 0;
    for (;;) {
        size_t dst_n = CHUNK, src_n = n - pos;
        uint8_t *dst = wbuf_tail(out, CHUNK);
        size_t hint = LZ4F_decompress(d, dst, &dst_n, in + pos, &src_n, NULL);
        out->len -= CHUNK - dst_n;
        pos += src_n;
        if (LZ4F_isError(hint)) break;
        if (hint == 0) {
            rc = 0;
            break;
        }
        if (out->len > limit) {
            rc = HE_TOO_LARGE;
            break;
        }
        if (pos >= n && dst_n == 0) break; /* truncated */
    }
    LZ4F_freeDecompressionContext(d);
    return rc;
}

static int unzip_zstd(const uint8_t *in, size_t n, wbuf_t *out, size_t limit)
{
    ZSTD_DStream *z = ZSTD_createDStream();
    if (!z) return HE_MALFORMED;
    ZSTD_initDStream(z);
    ZSTD_inBuffer ib = {in, n, 0};
    int rc = HE_MALFORMED;
    for (;;) {
        uint8_t *dst = wbuf_tail(out, CHUNK);
        ZSTD_outBuffer ob = {dst, CHUNK, 0};
        size_t ret = ZSTD_decompressStream(z, &ob, &ib);
        out->len -= CHUNK - ob.pos;
        if (ZSTD_isError(ret)) break;
        if (ret == 0 && ib.pos == ib.size) { /* frame(s) complete */
            rc = 0;
            break;
        }
        if (out->len > limit) {
            rc = HE_TOO_LARGE;
            break;
        }
        if (ib.pos == ib.size && ob.pos == 0) break; /* truncated */
    }
    ZSTD_freeDStream(z);
    return rc;
}

int batch_unzip(const uint8_t *p, size_t len, wbuf_t *out)
{
    batch_header_t h;
    int rc = batch_header_parse(p, len, &h);
    if (rc < 0) return rc;
    size_t total = batch_size(&h), start = out->len;
    const uint8_t *in = p + BATCH_HEADER_SIZE;
    size_t n = total - BATCH_HEADER_SIZE;
    wbuf_put(out, p, BATCH_HEADER_SIZE);
    size_t limit = start + BATCH_HEADER_SIZE + BATCH_UNZIP_MAX;
    switch (h.attributes & BATCH_ATTR_COMPRESSION_MASK) {
    case 0: wbuf_put(out, in, n); rc = 0; break;
    case 1: rc = unzip_gzip(in, n, out, limit); break;
    case 2: rc = unzip_snappy(in, n, out, limit); break;
    case 3: rc = unzip_lz4(in, n, out, limit); break;
    case 4: rc = unzip_zstd(in, n, out, limit); break;
    default: rc = HE_UNSUPPORTED; break;
    }
    if (rc == 0 && out->len > limit) rc = HE_TOO_LARGE;
    if (rc < 0) {
        out->len = start;
        return rc;
    }
    uint8_t *hdr = out->p + start;
    size_t blen = out->len - start - 12;
    if (blen > INT32_MAX) {
        out->len = start;
        return HE_TOO_LARGE;
    }
    wbuf_put_be32(hdr + BATCH_LENGTH_OFFSET, (uint32_t)blen);
    uint16_t attr = (uint16_t)((hdr[BATCH_ATTR_OFFSET] << 8) | hdr[BATCH_ATTR_OFFSET + 1]);
    attr &= (uint16_t)~BATCH_ATTR_COMPRESSION_MASK;
    hdr[BATCH_ATTR_OFFSET] = (uint8_t)(attr >> 8);
    hdr[BATCH_ATTR_OFFSET + 1] = (uint8_t)attr;
    return 0;
}
