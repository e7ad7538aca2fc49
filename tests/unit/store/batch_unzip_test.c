/* Decompressing stored batches (batch_unzip.c): every codec Kafka clients
 * use, snappy both raw and xerial-framed, and truncated, corrupt, unknown
 * and oversized inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "base/err.h"
#include "store/batch.h"
#include "store/batch_unzip.h"

/* An uncompressed batch of three records. */
static void plain_batch(wbuf_t *w)
{
    batch_record_t recs[3] = {0};
    static const char *vals[3] = {"alpha", "beta beta beta beta", ""};
    for (int i = 0; i < 3; i++) {
        recs[i].key_len = -1;
        recs[i].value = vals[i];
        recs[i].value_len = (int32_t)strlen(vals[i]);
        recs[i].timestamp_delta = i;
    }
    batch_build(w, 1000, recs, 3);
}

/* Compresses the records of plain with codec into a new batch in out. */
static void compressed_batch(const wbuf_t *plain, int codec, int xerial, wbuf_t *out)
{
    const uint8_t *rec = plain->p + BATCH_HEADER_SIZE;
    size_t n = plain->len - BATCH_HEADER_SIZE, cap = n * 2 + 1024, clen = cap;
    uint8_t *c = malloc(cap);
    switch (codec) {
    case 1: {
        uLongf dl = cap;
        assert_int_equal(compress2(c, &dl, rec, n, 6), Z_OK); /* a zlib stream: accepted as gzip is */
        clen = dl;
        break;
    }
    case 2:
        if (!xerial) {
            assert_int_equal(snappy_compress((const char *)rec, n, (char *)c, &clen), SNAPPY_OK);
        } else {
            static const uint8_t magic[16] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1};
            memcpy(c, magic, 16);
            size_t bl = cap - 20;
            assert_int_equal(snappy_compress((const char *)rec, n, (char *)c + 20, &bl), SNAPPY_OK);
            wbuf_put_be32(c + 16, (uint32_t)bl);
            clen = 20 + bl;
        }
        break;
    case 3: clen = LZ4F_compressFrame(c, cap, rec, n, NULL); assert_false(LZ4F_isError(clen)); break;
    case 4: clen = ZSTD_compress(c, cap, rec, n, 3); assert_false(ZSTD_isError(clen)); break;
    default: memcpy(c, rec, n); clen = n; break;
    }
    wbuf_reset(out);
    wbuf_put(out, plain->p, BATCH_HEADER_SIZE);
    wbuf_put(out, c, clen);
    wbuf_put_be32(out->p + BATCH_LENGTH_OFFSET, (uint32_t)(out->len - 12));
    out->p[BATCH_ATTR_OFFSET + 1] = (uint8_t)((out->p[BATCH_ATTR_OFFSET + 1] & ~7) | codec);
    free(c);
}

static void test_codecs(void **state)
{
    (void)state;
    wbuf_t plain, z, u;
    wbuf_init(&plain);
    wbuf_init(&z);
    wbuf_init(&u);
    plain_batch(&plain);
    for (int codec = 0; codec <= 4; codec++)
        for (int xerial = 0; xerial < (codec == 2 ? 2 : 1); xerial++) {
            compressed_batch(&plain, codec, xerial, &z);
            wbuf_reset(&u);
            wbuf_put(&u, "pre", 3); /* appends after what is there */
            assert_int_equal(batch_unzip(z.p, z.len, &u), 0);
            assert_int_equal(u.len, 3 + plain.len);
            /* the same header except the compression bits (the CRC is left as it was) */
            assert_memory_equal(u.p + 3 + 12, plain.p + 12, BATCH_CRC_OFFSET - 12);
            assert_int_equal(u.p[3 + BATCH_ATTR_OFFSET + 1] & 7, 0);
            assert_memory_equal(u.p + 3 + BATCH_HEADER_SIZE, plain.p + BATCH_HEADER_SIZE,
                                plain.len - BATCH_HEADER_SIZE);
            batch_iter_t it;
            batch_rec_t rec;
            assert_int_equal(batch_iter_init(&it, u.p + 3, u.len - 3), 0);
            int n = 0;
            while (batch_iter_next(&it, &rec) > 0) n++;
            assert_int_equal(n, 3);
        }
    wbuf_destroy(&plain);
    wbuf_destroy(&z);
    wbuf_destroy(&u);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    wbuf_t plain, z, u;
    wbuf_init(&plain);
    wbuf_init(&z);
    wbuf_init(&u);
    plain_batch(&plain);
    for (int codec = 1; codec <= 4; codec++) {
        compressed_batch(&plain, codec, codec == 2, &z);
        /* cut the compressed data short (the batch length says so: a whole, shorter batch) */
        size_t cut = z.len - 4;
        wbuf_put_be32(z.p + BATCH_LENGTH_OFFSET, (uint32_t)(cut - 12));
        wbuf_reset(&u);
        int rc = batch_unzip(z.p, cut, &u);
        assert_true(rc < 0);
        assert_int_equal(u.len, 0); /* nothing left behind */
        /* garbage instead of compressed data */
        compressed_batch(&plain, codec, 0, &z);
        memset(z.p + BATCH_HEADER_SIZE, 0x5a, z.len - BATCH_HEADER_SIZE);
        wbuf_reset(&u);
        assert_true(batch_unzip(z.p, z.len, &u) < 0);
        assert_int_equal(u.len, 0);
    }
    compressed_batch(&plain, 0, 0, &z);
    z.p[BATCH_ATTR_OFFSET + 1] |= 5; /* no such codec */
    assert_int_equal(batch_unzip(z.p, z.len, &u), HE_UNSUPPORTED);
    assert_int_equal(batch_unzip(z.p, 10, &u), HE_TRUNCATED);
    wbuf_destroy(&plain);
    wbuf_destroy(&z);
    wbuf_destroy(&u);
}

/* A small batch that inflates past BATCH_UNZIP_MAX is refused. */
static void test_bomb(void **state)
{
    (void)state;
    size_t n = BATCH_UNZIP_MAX + (1u << 20);
    uint8_t *zeros = calloc(1, n);
    size_t cap = ZSTD_compressBound(n);
    uint8_t *c = malloc(cap);
    size_t clen = ZSTD_compress(c, cap, zeros, n, 1);
    assert_false(ZSTD_isError(clen));
    wbuf_t plain, z, u;
    wbuf_init(&plain);
    wbuf_init(&z);
    wbuf_init(&u);
    plain_batch(&plain);
    wbuf_put(&z, plain.p, BATCH_HEADER_SIZE);
    wbuf_put(&z, c, clen);
    wbuf_put_be32(z.p + BATCH_LENGTH_OFFSET, (uint32_t)(z.len - 12));
    z.p[BATCH_ATTR_OFFSET + 1] |= 4;
    assert_int_equal(batch_unzip(z.p, z.len, &u), HE_TOO_LARGE);
    assert_int_equal(u.len, 0);
    free(zeros);
    free(c);
    wbuf_destroy(&plain);
    wbuf_destroy(&z);
    wbuf_destroy(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codecs),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_bomb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
