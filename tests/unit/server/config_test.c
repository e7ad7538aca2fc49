/* Unit tests for server/config: defaults, every kind of value, bounds,
 * unit suffixes, and the file parser's errors (which name file, line, key). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/err.h"
#include "server/config.h"

static void test_defaults(void **state)
{
    (void)state;
    config_t c;
    config_defaults(&c);
    assert_string_equal(c.data_dir, "./herald-data");
    assert_string_equal(c.kafka_listen, "127.0.0.1:9092");
    assert_int_equal(c.flush_mode, CONFIG_FLUSH_ALWAYS);
    assert_int_equal(c.max_request_bytes, 104857600);
    assert_int_equal(c.auto_create_topics, 1);
    assert_int_equal(c.num_partitions, 1);
    assert_true(c.retention_bytes == -1);
    /* RabbitMQ's defaults: 0.4 of RAM, 50 MB free, a 30 min consumer timeout. */
    assert_int_equal(c.memory_high_watermark.relative, 1);
    assert_true(c.memory_high_watermark.fraction == 0.4);
    assert_true(c.disk_free_limit == 50000000);
    assert_true(c.amqp_consumer_timeout_ms == 1800000);
}

static void test_values_table(void **state)
{
    (void)state;
    static const struct {
        const char *key, *value;
        int ok;
    } cases[] = {
        {"flush", "always", 1},          {"flush", "never", 1},
        {"flush", "interval:250", 1},    {"flush", "interval:2s", 1},
        {"flush", "interval:0", 0},      {"flush", "sometimes", 0},
        {"flush", "interval:", 0},       {"num.partitions", "0", 0},
        {"num.partitions", "10000", 1},  {"num.partitions", "10001", 0},
        {"num.partitions", "3x", 0},     {"num.partitions", "", 0},
        {"num.partitions", "99999999999999999999", 0},
        {"segment.bytes", "256m", 1},    {"segment.bytes", "1023", 0},
        {"segment.bytes", "1q", 0},      {"retention.ms", "7d", 1},
        {"retention.ms", "-1", 1},       {"retention.ms", "-2", 0},
        {"auto.create.topics", "false", 1}, {"auto.create.topics", "maybe", 0},
        {"log.level", "debug", 1},       {"log.level", "loud", 0},
        {"kafka", "0.0.0.0:0", 1},       {"kafka", "[::1]:9092", 1},
        {"kafka", "nohost", 0},          {"kafka", "h:70000", 0},
        {"no.such.key", "1", 0},
        {"memory.high.watermark", "0.4", 1},   {"memory.high.watermark", "1.0", 1},
        {"memory.high.watermark", "0.0", 1},   {"memory.high.watermark", "1.5", 0},
        {"memory.high.watermark", "-0.1", 0},  {"memory.high.watermark", "0.4x", 0},
        {"memory.high.watermark", ".", 0},     {"memory.high.watermark", "512MiB", 1},
        {"memory.high.watermark", "2GB", 1},   {"memory.high.watermark", "-1", 0},
        {"memory.high.watermark", "", 0},      {"memory.high.watermark", "lots", 0},
        {"disk.free.limit", "50MB", 1},        {"disk.free.limit", "0", 1},
        {"disk.free.limit", "-1", 0},          {"disk.free.limit", "1Mb", 0},
        {"amqp.consumer.timeout", "0", 1},     {"amqp.consumer.timeout", "30m", 1},
        {"amqp.consumer.timeout", "-1", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config_t c;
        config_defaults(&c);
        char err[256] = "";
        int rc = config_set(&c, cases[i].key, cases[i].value, err, sizeof err);
        if (cases[i].ok) {
            assert_int_equal(rc, 0);
        } else {
            assert_true(rc < 0);
            assert_non_null(strstr(err, cases[i].key)); /* the message names the key */
        }
    }
}

static void test_scaled_values(void **state)
{
    (void)state;
    config_t c;
    config_defaults(&c);
    char err[256];
    assert_int_equal(config_set(&c, "segment.bytes", "256m", err, sizeof err), 0);
    assert_true(c.segment_bytes == 256LL << 20);
    assert_int_equal(config_set(&c, "retention.ms", "2h", err, sizeof err), 0);
    assert_true(c.retention_ms == 7200000);
    assert_int_equal(config_set(&c, "flush", "interval:2s", err, sizeof err), 0);
    assert_int_equal(c.flush_mode, CONFIG_FLUSH_INTERVAL);
    assert_int_equal(c.flush_interval_ms, 2000);

    /* Binary and decimal size units. */
    static const struct {
        const char *value;
        int64_t bytes;
    } sizes[] = {{"1k", 1024}, {"1KiB", 1024}, {"1kB", 1000}, {"1KB", 1000}, {"3MB", 3000000},
                 {"2GB", 2000000000}, {"1TB", 1000000000000}, {"1t", 1LL << 40}, {"1TiB", 1LL << 40}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_int_equal(config_set(&c, "disk.free.limit", sizes[i].value, err, sizeof err), 0);
        assert_true(c.disk_free_limit == sizes[i].bytes);
    }
    /* A decimal point makes the watermark a share of RAM; otherwise it is a size. */
    assert_int_equal(config_set(&c, "memory.high.watermark", "0.25", err, sizeof err), 0);
    assert_int_equal(c.memory_high_watermark.relative, 1);
    assert_true(c.memory_high_watermark.fraction == 0.25);
    assert_int_equal(config_set(&c, "memory.high.watermark", "512MiB", err, sizeof err), 0);
    assert_int_equal(c.memory_high_watermark.relative, 0);
    assert_true(c.memory_high_watermark.bytes == 512LL << 20);
    assert_int_equal(config_set(&c, "memory.high.watermark", "1", err, sizeof err), 0);
    assert_int_equal(c.memory_high_watermark.relative, 0);
    assert_true(c.memory_high_watermark.bytes == 1);
    assert_int_equal(config_set(&c, "amqp.consumer.timeout", "15m", err, sizeof err), 0);
    assert_true(c.amqp_consumer_timeout_ms == 900000);
}

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/herald-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_file(void **state)
{
    (void)state;
    config_t c;
    config_defaults(&c);
    char err[512];
    char *p = write_tmp("# a comment\n\n  num.partitions = 4  \nretention.ms=1d\n");
    assert_int_equal(config_load_file(&c, p, err, sizeof err), 0);
    assert_int_equal(c.num_partitions, 4);
    assert_true(c.retention_ms == 86400000);
    unlink(p);
    free(p);

    p = write_tmp("num.partitions = 2\nthis line has no equals\n");
    assert_true(config_load_file(&c, p, err, sizeof err) < 0);
    assert_non_null(strstr(err, ":2:"));
    unlink(p);
    free(p);

    p = write_tmp("bogus.key = 1\n");
    assert_true(config_load_file(&c, p, err, sizeof err) < 0);
    assert_non_null(strstr(err, "bogus.key"));
    unlink(p);
    free(p);

    assert_true(config_load_file(&c, "/nonexistent/herald.conf", err, sizeof err) < 0);
    assert_non_null(strstr(err, "/nonexistent/herald.conf"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values_table),
        cmocka_unit_test(test_scaled_values),
        cmocka_unit_test(test_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
