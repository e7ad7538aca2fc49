/* Broker topics: create/validate, the catalog log replayed by a new broker
 * (topics, partition counts, configs, deletions, producer-id blocks),
 * appends and high-watermark waiters under flush=always. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../store/store_test.h"
#include "base/err.h"
#include "broker/broker.h"

static broker_t *open_broker(uv_loop_t *loop, const char *dir)
{
    config_t cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    int err = 0;
    broker_t *b = broker_new(loop, &cfg, &err);
    assert_non_null(b);
    return b;
}

/* Frees the broker and lets pending close callbacks and worker-pool jobs
 * (syncs, deletions) finish; the loop must then close cleanly. */
static void close_broker(uv_loop_t *loop, broker_t *b)
{
    broker_free(b);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void test_names_and_validation(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int ok;
    } names[] = {{"a", 1}, {"orders.v1-x_Y", 1}, {".", 0}, {"..", 0}, {"", 0}, {"bad/name", 0}, {"sp ace", 0}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_int_equal(broker_topic_name_valid(names[i].name, strlen(names[i].name)) == 0, names[i].ok);
    char longname[251];
    memset(longname, 'x', 250);
    longname[250] = '\0';
    assert_int_equal(broker_topic_name_valid(longname, 249), 0);
    assert_int_equal(broker_topic_name_valid(longname, 250), HE_INVALID);

    assert_int_equal(broker_topic_config_valid("retention.ms", "-1"), 0);
    assert_int_equal(broker_topic_config_valid("retention.ms", "soon"), HE_INVALID);
    assert_int_equal(broker_topic_config_valid("cleanup.policy", "compact"), HE_UNSUPPORTED);
    assert_int_equal(broker_topic_config_valid("segment.bytes", "100"), HE_INVALID);
    assert_int_equal(broker_topic_config_valid("no.such", "1"), HE_NOT_FOUND);
}

static void test_catalog_survives_restart(void **state)
{
    (void)state;
    char *dir = st_tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    broker_t *b = open_broker(&loop, dir);
    topic_kv_t cfg[] = {{"retention.ms", "3600000"}};
    topic_t *t = NULL;
    const char *bad = NULL;
    assert_int_equal(broker_topic_create(b, "keep", 4, 2, cfg, 1, &t, &bad), 0);
    assert_int_equal(broker_topic_create(b, "keep", 4, 1, NULL, 0, NULL, NULL), HE_EXISTS);
    topic_kv_t badcfg[] = {{"cleanup.policy", "compact"}};
    assert_true(broker_topic_create(b, "nope", 4, 1, badcfg, 1, NULL, &bad) < 0);
    assert_string_equal(bad, "cleanup.policy");
    assert_int_equal(broker_topic_create(b, "gone", 4, 1, NULL, 0, NULL, NULL), 0);
    assert_int_equal(broker_topic_add_partitions(b, t, 5), 0);
    assert_int_equal(broker_topic_add_partitions(b, t, 3), HE_INVALID);
    uint8_t id[16];
    memcpy(id, topic_id(t), 16);
    assert_int_equal(broker_topic_delete(b, broker_topic_find(b, "gone", 4)), 0);
    int64_t pid1, pid2;
    assert_int_equal(broker_next_producer_id(b, &pid1), 0);
    /* Append one batch and wait for it to be durable. */
    wbuf_t w;
    wbuf_init(&w);
    st_batch(&w, 3, 10, 1000, 1);
    append_result_t res;
    partition_t *p = topic_partition(t, 4);
    assert_int_equal(partition_append(b, p, w.p, w.len, &res), 0);
    assert_int_equal(res.base_offset, 0);
    while (partition_high_watermark(p) < 3) uv_run(&loop, UV_RUN_ONCE);
    wbuf_destroy(&w);
    close_broker(&loop, b);

    b = open_broker(&loop, dir);
    assert_int_equal(broker_topic_count(b), 1);
    t = broker_topic_find(b, "keep", 4);
    assert_non_null(t);
    assert_memory_equal(topic_id(t), id, 16);
    assert_int_equal(topic_partition_count(t), 5);
    char buf[64];
    int is_default;
    assert_string_equal(topic_config_get(t, b, "retention.ms", buf, sizeof buf, &is_default), "3600000");
    assert_false(is_default);
    assert_string_equal(topic_config_get(t, b, "segment.bytes", buf, sizeof buf, &is_default), "1073741824");
    assert_true(is_default);
    assert_null(broker_topic_find(b, "gone", 4));
    assert_int_equal(partition_high_watermark(topic_partition(t, 4)), 3);
    assert_int_equal(broker_next_producer_id(b, &pid2), 0);
    assert_true(pid2 > pid1); /* never reused after a restart */
    close_broker(&loop, b);
    assert_int_equal(uv_loop_close(&loop), 0);
    st_rmdir(dir);
}

typedef struct {
    pwaiter_t w;
    int fired, status;
} test_wait_t;

static void on_fire(pwaiter_t *w, int status)
{
    test_wait_t *t = (test_wait_t *)w;
    t->fired++;
    t->status = status;
}

static void test_waiters_fire_on_durability_and_delete(void **state)
{
    (void)state;
    char *dir = st_tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    broker_t *b = open_broker(&loop, dir);
    topic_t *t = NULL;
    assert_int_equal(broker_topic_create(b, "w", 1, 1, NULL, 0, &t, NULL), 0);
    partition_t *p = topic_partition(t, 0);
    test_wait_t ahead = {.w = {.target = 1, .cb = on_fire}};
    test_wait_t far = {.w = {.target = 100, .cb = on_fire}};
    test_wait_t cancelled = {.w = {.target = 1, .cb = on_fire}};
    assert_int_equal(partition_wait(p, &ahead.w), 0);
    assert_int_equal(partition_wait(p, &far.w), 0);
    assert_int_equal(partition_wait(p, &cancelled.w), 0);
    pwaiter_cancel(&cancelled.w);
    pwaiter_cancel(&cancelled.w); /* twice is a no-op */
    wbuf_t w;
    wbuf_init(&w);
    st_batch(&w, 1, 10, 1000, 2);
    append_result_t res;
    assert_int_equal(partition_append(b, p, w.p, w.len, &res), 0);
    assert_int_equal(ahead.fired, 0); /* not before the sync */
    while (!ahead.fired) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(ahead.status, 0);
    assert_int_equal(far.fired, 0);
    /* A corrupt batch is refused and changes nothing. */
    wbuf_reset(&w);
    st_batch(&w, 1, 10, 1000, 3);
    w.p[w.len - 1] ^= 0xff;
    assert_int_equal(partition_append(b, p, w.p, w.len, &res), HE_CORRUPT);
    assert_int_equal(partition_end_offset(p), 1);
    wbuf_destroy(&w);
    /* Deleting the topic fails the remaining waiter. */
    assert_int_equal(broker_topic_delete(b, t), 0);
    assert_int_equal(far.fired, 1);
    assert_true(far.status < 0);
    assert_int_equal(cancelled.fired, 0);
    close_broker(&loop, b);
    assert_int_equal(uv_loop_close(&loop), 0);
    st_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_validation),
        cmocka_unit_test(test_catalog_survives_restart),
        cmocka_unit_test(test_waiters_fire_on_durability_and_delete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
