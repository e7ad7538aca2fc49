/* Records one by one (broker/records.c): Kafka's key partitioner against
 * the Java client's published murmur2 values, and an append/read round
 * trip with keys, nulls, headers, limits and offsets in the middle of a
 * batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../store/store_test.h"
#include "base/err.h"
#include "broker/broker.h"
#include "broker/records.h"

static void test_partition_for_key(void **state)
{
    (void)state;
    /* murmur2 values from Kafka's UtilsTest; the partition is
     * (hash & 0x7fffffff) % n. */
    static const struct {
        const char *key;
        int32_t hash;
    } v[] = {{"21", -973932308},
             {"foobar", -790332482},
             {"a-little-bit-long-string", -985981536},
             {"a-little-bit-longer-string", -1486304829},
             {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
             {"abc", 479470107}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint32_t pos = (uint32_t)v[i].hash & 0x7fffffffu;
        for (int32_t n = 1; n <= 100; n += 33)
            assert_int_equal(records_partition_for_key(v[i].key, strlen(v[i].key), n), (int32_t)(pos % (uint32_t)n));
    }
    assert_int_equal(records_partition_for_key("x", 1, 0), 0);
}

typedef struct {
    int n;
    int64_t offsets[16];
    char values[16][16];
    int null_keys;
    int headers;
} seen_t;

static void collect(void *ctx, const records_rec_t *rec)
{
    seen_t *s = ctx;
    s->offsets[s->n] = rec->offset;
    if (rec->value.p) snprintf(s->values[s->n], sizeof s->values[0], "%.*s", rec->value.len, (const char *)rec->value.p);
    else snprintf(s->values[s->n], sizeof s->values[0], "<null>");
    s->null_keys += rec->key.p == NULL;
    s->headers += (int)rec->nheaders;
    s->n++;
}

static void test_append_read(void **state)
{
    (void)state;
    char *dir = st_tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    config_t cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    int err = 0;
    broker_t *b = broker_new(&loop, &cfg, &err);
    assert_non_null(b);
    topic_t *t;
    assert_int_equal(broker_topic_create(b, "r", 1, 1, NULL, 0, &t, NULL), 0);
    partition_t *p = topic_partition(t, 0);
    records_header_t h = {"trace", 5, {"abc", 3}};
    records_rec_t recs[5] = {
        {.key = {"k0", 2}, .value = {"v0", 2}, .headers = &h, .nheaders = 1},
        {.key = {NULL, -1}, .value = {"v1", 2}},
        {.key = {"k2", 2}, .value = {NULL, -1}},
        {.key = {NULL, -1}, .value = {"v3", 2}, .timestamp = 1000},
        {.key = {NULL, -1}, .value = {"v4", 2}},
    };
    int64_t base = -1, target = -1;
    assert_int_equal(records_append(b, p, recs, 5, &base, &target), 0);
    assert_int_equal(base, 0);
    assert_int_equal(target, 5);
    while (partition_high_watermark(p) < 5) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(records_append(b, p, recs + 1, 2, &base, &target), 0);
    assert_int_equal(base, 5);
    while (partition_high_watermark(p) < 7) uv_run(&loop, UV_RUN_ONCE);

    seen_t s = {0};
    int64_t next = -1;
    assert_int_equal(records_read(p, 0, 100, 1 << 20, collect, &s, &next), 7);
    assert_int_equal(next, 7);
    assert_string_equal(s.values[0], "v0");
    assert_string_equal(s.values[2], "<null>");
    assert_string_equal(s.values[6], "<null>");
    assert_int_equal(s.null_keys, 4);
    assert_int_equal(s.headers, 1);
    /* From the middle of the first batch, with a limit. */
    memset(&s, 0, sizeof s);
    assert_int_equal(records_read(p, 3, 3, 1 << 20, collect, &s, &next), 3);
    assert_int_equal(s.offsets[0], 3);
    assert_int_equal(s.offsets[2], 5);
    assert_int_equal(next, 6);
    /* At the end: nothing, next stays. */
    memset(&s, 0, sizeof s);
    assert_int_equal(records_read(p, 7, 10, 1 << 20, collect, &s, &next), 0);
    assert_int_equal(next, 7);
    /* Counted as consumed: 7 + 3 records handed out. */
    assert_int_equal(partition_counters(p)->msgs_in, 7);
    assert_int_equal(partition_counters(p)->msgs_out, 10);
    broker_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    st_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition_for_key),
        cmocka_unit_test(test_append_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
