/* Resource alarms: the thresholds (RabbitMQ's comparisons, unknown readings
 * keep the previous state), the watermark as a share of RAM or a size, the
 * connection.blocked reasons, and the listener protocol on a real loop with a
 * fake sampler (each test closes its loop cleanly). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/alarm.h"

static void test_eval_table(void **state)
{
    (void)state;
    const alarm_limits_t l = {.memory_limit = 1000, .disk_limit = 500};
    static const struct {
        int64_t rss, disk;
        unsigned prev, want;
    } cases[] = {
        {999, 501, 0, 0},
        {1000, 500, 0, 0},                          /* at the limits: no alarm */
        {1001, 500, 0, ALARM_MEMORY},               /* over the watermark */
        {1000, 499, 0, ALARM_DISK},                 /* under the free limit */
        {1001, 499, 0, ALARM_MEMORY | ALARM_DISK},
        {999, 499, ALARM_MEMORY | ALARM_DISK, ALARM_DISK}, /* each clears on its own */
        {1001, 501, ALARM_MEMORY | ALARM_DISK, ALARM_MEMORY},
        {-1, 501, ALARM_MEMORY, ALARM_MEMORY},      /* a failed reading changes nothing */
        {-1, -1, ALARM_DISK, ALARM_DISK},
        {999, -1, ALARM_MEMORY | ALARM_DISK, ALARM_DISK},
        {0, 0, 0, ALARM_DISK},                      /* a full disk */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        alarm_sample_t s = {cases[i].rss, cases[i].disk};
        assert_int_equal(alarm_eval(&l, &s, cases[i].prev), cases[i].want);
    }
    /* A zero watermark (RabbitMQ: block every publisher) is on for any process. */
    const alarm_limits_t zero = {.memory_limit = 0, .disk_limit = 0};
    alarm_sample_t s = {1, 0};
    assert_int_equal(alarm_eval(&zero, &s, 0), ALARM_MEMORY);
}

static void test_memory_limit(void **state)
{
    (void)state;
    config_share_t rel = {.relative = 1, .fraction = 0.4};
    assert_true(alarm_memory_limit(&rel, 1000000) == 400000);
    rel.fraction = 0.0;
    assert_true(alarm_memory_limit(&rel, 1000000) == 0);
    rel.fraction = 1.0;
    assert_true(alarm_memory_limit(&rel, UINT64_MAX) == INT64_MAX); /* saturates */
    config_share_t abs = {.relative = 0, .bytes = 512LL << 20};
    assert_true(alarm_memory_limit(&abs, 1000) == 512LL << 20);
}

static void test_reasons(void **state)
{
    (void)state;
    /* RabbitMQ 3.10.8's texts, as observed. */
    assert_string_equal(alarm_reason(ALARM_MEMORY), "low on memory");
    assert_string_equal(alarm_reason(ALARM_DISK), "low on disk");
    assert_string_equal(alarm_reason(ALARM_MEMORY | ALARM_DISK), "low on disk & memory");
    assert_string_equal(alarm_reason(0), "");
}

typedef struct {
    alarm_sample_t next; /* what the fake sampler reports */
    unsigned seen[8];    /* listener calls */
    int nseen;
} fake_t;

static void fake_probe(void *ctx, alarm_sample_t *out) { *out = ((fake_t *)ctx)->next; }

static void on_change(void *ctx, unsigned active)
{
    fake_t *f = ctx;
    assert_true(f->nseen < 8);
    f->seen[f->nseen++] = active;
}

static void stop_waiting(uv_timer_t *t) { uv_close((uv_handle_t *)t, NULL); }

static void test_listener_sees_changes_only(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    config_t cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "/");
    cfg.memory_high_watermark = (config_share_t){.relative = 0, .bytes = 1000};
    cfg.disk_free_limit = 500;
    alarm_t *a = alarm_new(&loop, &cfg);
    /* The first, real sample: this test process is bigger than 1000 bytes. */
    assert_true(alarm_active(a) & ALARM_MEMORY);
    assert_true(alarm_limits(a).memory_limit == 1000 && alarm_limits(a).disk_limit == 500);

    fake_t f = {.next = {10, 10000}};
    alarm_set_probe(a, fake_probe, &f);
    alarm_listen(a, on_change, &f);
    alarm_check(a); /* memory clears */
    alarm_check(a); /* nothing changed: no call */
    f.next = (alarm_sample_t){10, 10};
    alarm_check(a); /* disk on */
    f.next = (alarm_sample_t){2000, -1};
    alarm_check(a); /* memory on too; the failed disk reading keeps disk on */
    f.next = (alarm_sample_t){10, 10000};
    alarm_check(a); /* both clear */
    assert_int_equal(f.nseen, 4);
    assert_int_equal(f.seen[0], 0);
    assert_int_equal(f.seen[1], ALARM_DISK);
    assert_int_equal(f.seen[2], ALARM_MEMORY | ALARM_DISK);
    assert_int_equal(f.seen[3], 0);

    /* The timer samples by itself once a second (it does not keep the loop
     * alive: a helper timer does, for 1.3 s). */
    f.next = (alarm_sample_t){2000, 10000};
    uv_timer_t wait;
    uv_timer_init(&loop, &wait);
    uv_timer_start(&wait, stop_waiting, 1300, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(f.nseen, 5);
    assert_int_equal(f.seen[4], ALARM_MEMORY);

    alarm_set_probe(a, NULL, NULL); /* the real sampler again */
    alarm_free(a);
    alarm_free(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_table),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_listener_sees_changes_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
