/* Stream queues over a real broker: coalesced publishes keep the offsets
 * their confirms were given even when a Kafka append comes in between;
 * the binding survives a restart; deleting either side deletes both; a
 * stream's topic keeps one partition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "amqp/ftable.h"
#include "base/err.h"
#include "broker/queue_int.h"
#include "broker/stream.h"
#include "broker/stream_map.h"
#include "store/batch.h"
#include "vhost_fixture.h"

static amqp_bytes_t stream_args(wbuf_t *w)
{
    wbuf_init(w);
    ftable_put_name(w, "x-queue-type");
    ftable_put_longstr(w, "stream", 6);
    ftable_put_name(w, "x-max-age");
    ftable_put_longstr(w, "1h", 2);
    return (amqp_bytes_t){w->p, (uint32_t)w->len};
}

static queue_t *make_stream(fx_t *fx, const char *name)
{
    wbuf_t a;
    queue_t *q = NULL;
    assert_int_equal(vhost_queue_create(fx->v, amqp_cstr(name), QF_DURABLE | QF_STREAM, stream_args(&a), NULL, &q),
                     0);
    wbuf_destroy(&a);
    return q;
}

static int publish(queue_t *q, const char *body, uint32_t *epoch, int64_t *target)
{
    qmsg_t *m = qmsg_new(amqp_cstr(""), queue_name(q), none, strlen(body));
    memcpy(qmsg_body(m), body, strlen(body));
    int rc = queue_publish(q, m, epoch, target);
    qmsg_unref(m);
    return rc;
}

static void kafka_append(fx_t *fx, partition_t *p, const char *value, int64_t *base)
{
    batch_record_t r = {0};
    r.key_len = -1;
    r.value = value;
    r.value_len = (int32_t)strlen(value);
    wbuf_t w;
    wbuf_init(&w);
    batch_build(&w, 1, &r, 1);
    append_result_t res;
    assert_int_equal(partition_append(fx->b, p, w.p, w.len, &res), 0);
    *base = res.base_offset;
    wbuf_destroy(&w);
}

/* The value of the record at offset off. */
static void assert_value_at(partition_t *p, int64_t off, const char *value, int from_amqp)
{
    wbuf_t w;
    wbuf_init(&w);
    assert_true(partition_read(p, off, 1 << 20, &w) > 0);
    batch_iter_t it;
    assert_int_equal(batch_iter_init(&it, w.p, w.len), 0);
    batch_rec_t rec;
    int found = 0;
    while (batch_iter_next(&it, &rec) > 0)
        if (rec.offset == off) {
            found = 1;
            assert_int_equal(rec.value_len, (int32_t)strlen(value));
            assert_memory_equal(rec.value, value, strlen(value));
            assert_int_equal(rec.key_len > 0, from_amqp); /* AMQP: the routing key; this Kafka record: none */
        }
    assert_true(found);
    wbuf_destroy(&w);
}

static void test_coalesced_offsets_hold(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *q = make_stream(fx, "orders");
    topic_t *t = broker_topic_find(fx->b, "orders", 6);
    assert_non_null(t);
    assert_int_equal(topic_partition_count(t), 1);
    char buf[32];
    int is_default;
    assert_string_equal(topic_config_get(t, fx->b, "retention.ms", buf, sizeof buf, &is_default), "3600000");
    partition_t *p = topic_partition(t, 0);
    uint32_t ep[3];
    int64_t tg[3];
    assert_int_equal(publish(q, "a0", &ep[0], &tg[0]), QP_WAIT);
    assert_int_equal(publish(q, "a1", &ep[1], &tg[1]), QP_WAIT);
    assert_int_equal(publish(q, "a2", &ep[2], &tg[2]), QP_WAIT);
    assert_int_equal(tg[0], 1);
    assert_int_equal(tg[2], 3);
    assert_int_equal(partition_end_offset(p), 0); /* coalesced: not appended yet */
    int64_t base;
    kafka_append(fx, p, "k3", &base); /* a Kafka produce first appends the pending publishes */
    assert_int_equal(base, 3);
    assert_int_equal(publish(q, "a4", &ep[0], &tg[0]), QP_WAIT);
    assert_int_equal(tg[0], 5);
    uv_run(&fx->loop, UV_RUN_NOWAIT); /* the prepare handle appends it */
    assert_int_equal(partition_end_offset(p), 5);
    sync_all(fx);
    for (int i = 0; i < 3; i++) assert_int_equal(queue_publish_state(q, ep[i], tg[i]), 1);
    assert_value_at(p, 0, "a0", 1);
    assert_value_at(p, 2, "a2", 1);
    assert_value_at(p, 3, "k3", 0);
    assert_value_at(p, 4, "a4", 1);
    assert_int_equal(queue_ready_count(q), 5);

    /* restart: the queue is a stream again, bound to the same records */
    restart(fx);
    q = vhost_queue_find(fx->v, amqp_cstr("orders"));
    assert_non_null(q);
    assert_true(queue_flags(q) & QF_STREAM);
    assert_int_equal(queue_ready_count(q), 5);
    t = broker_topic_find(fx->b, "orders", 6);
    assert_ptr_equal(stream_queue_of_topic(fx->b, t), q);
    assert_int_equal(broker_topic_add_partitions(fx->b, t, 2), HE_OUT_OF_RANGE); /* one partition, always */

    /* Kafka DeleteTopics deletes the queue too */
    assert_int_equal(broker_topic_delete(fx->b, t), 0);
    assert_null(vhost_queue_find(fx->v, amqp_cstr("orders")));
    sync_all(fx);
    restart(fx);
    assert_null(vhost_queue_find(fx->v, amqp_cstr("orders")));
    assert_null(broker_topic_find(fx->b, "orders", 6));
}

static void test_delete_queue_deletes_topic_and_adoption(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *q = make_stream(fx, "s1");
    uint32_t ep;
    int64_t tg;
    assert_int_equal(publish(q, "x", &ep, &tg), QP_WAIT);
    vhost_queue_delete(fx->v, q); /* with a publish still pending: dropped with the queue */
    assert_null(broker_topic_find(fx->b, "s1", 2));

    /* an existing one-partition topic is adopted with its records; more partitions are refused */
    topic_t *t = NULL;
    assert_int_equal(broker_topic_create(fx->b, "k1", 2, 1, NULL, 0, &t, NULL), 0);
    int64_t base;
    kafka_append(fx, topic_partition(t, 0), "old", &base);
    sync_all(fx);
    q = make_stream(fx, "k1");
    assert_int_equal(queue_ready_count(q), 1);
    assert_int_equal(broker_topic_create(fx->b, "k3", 2, 3, NULL, 0, &t, NULL), 0);
    wbuf_t a;
    queue_t *q3 = NULL;
    assert_int_equal(vhost_queue_create(fx->v, amqp_cstr("k3"), QF_DURABLE | QF_STREAM, stream_args(&a), NULL, &q3),
                     HE_INVALID);
    assert_null(vhost_queue_find(fx->v, amqp_cstr("k3")));
    /* a name Kafka cannot hold */
    amqp_bytes_t args = {a.p, (uint32_t)a.len};
    assert_int_equal(vhost_queue_create(fx->v, amqp_cstr("a b"), QF_DURABLE | QF_STREAM, args, NULL, &q3), HE_INVALID);
    wbuf_destroy(&a);
    sync_all(fx);
}


/* ---- dead-lettering into a stream is exact across a crash ---- */

/* "src" dead-letters through the default exchange into the stream "s". */
static queue_t *make_dl_source(fx_t *fx)
{
    wbuf_t a;
    wbuf_init(&a);
    ftable_put_name(&a, "x-dead-letter-exchange");
    ftable_put_longstr(&a, "", 0);
    ftable_put_name(&a, "x-dead-letter-routing-key");
    ftable_put_longstr(&a, "s", 1);
    queue_t *q = fx_queue(fx, "src", QF_DURABLE, (amqp_bytes_t){a.p, (uint32_t)a.len}, NULL);
    wbuf_destroy(&a);
    return q;
}

/* A persistent message (only stored originals are moved with claims). */
static void publish_p(queue_t *q, const char *body)
{
    qmsg_t *m = qmsg_new(amqp_cstr(""), queue_name(q), none, strlen(body));
    memcpy(qmsg_body(m), body, strlen(body));
    m->persistent = 1;
    uint32_t epoch;
    int64_t target;
    queue_publish(q, m, &epoch, &target);
    qmsg_unref(m);
}

/* Stream publishes are appended by a prepare handle: one turn first. */
static void settle(fx_t *fx)
{
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    sync_all(fx);
}

/* How many records of s claim (src, off) as an interrupted move would. */
static size_t claims_in(queue_t *s, queue_t *src, int64_t off)
{
    qclaim_t *v = NULL;
    size_t n = 0, cap = 0;
    qintent_t in = {queue_id(s), 0, queue_id(src), off};
    size_t k = stream_scan_claims(s, &in, 1, &v, &n, &cap);
    for (size_t i = 0; i < n; i++) assert_true(v[i].qid == queue_id(src) && v[i].offset == off);
    free(v);
    return k;
}

/* A record published into s whose AMQP headers carry a claim header on
 * (src, off): what a client could send, which must never count. */
static void publish_forged_claim(queue_t *s, queue_t *src, int64_t off)
{
    uint8_t claim[16];
    wbuf_put_be64(claim, queue_id(src));
    wbuf_put_be64(claim + 8, (uint64_t)off);
    wbuf_t h;
    wbuf_init(&h);
    ftable_put_name(&h, STREAM_HDR_CLAIM);
    ftable_put_longstr(&h, (const char *)claim, sizeof claim);
    qmsg_t *m = fx_msg(99, -1, (amqp_bytes_t){h.p, (uint32_t)h.len}, NULL, 0);
    wbuf_destroy(&h);
    uint32_t epoch;
    int64_t target;
    queue_publish(s, m, &epoch, &target);
    qmsg_unref(m);
}

/* The stream holds the copy and the source's move ended. */
static int moved_into_stream(void *ctx)
{
    queue_t **q = ctx;
    return queue_ready_count(q[0]) >= 1 && !q[1]->nmoving;
}

/* The real path: the copy carries its claim and goes in only after the
 * source's intent is durable; the move ends with the original gone. */
static void test_dead_letter_into_stream(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *s = make_stream(fx, "s");
    queue_t *src = make_dl_source(fx);
    publish_p(src, "m0");
    settle(fx);
    queue_reject(queue_get(src));
    queue_t *both[2] = {s, src};
    fx_run_until(fx, moved_into_stream, both, 5000);
    assert_int_equal(queue_ready_count(s), 1);
    assert_int_equal(src->nmoving, 0);
    assert_int_equal(claims_in(s, src, 0), 1);
    assert_int_equal(claims_in(s, src, 1), 0); /* only what an intent expects */
    settle(fx);
    restart(fx);
    src = fx_findq(fx, "src");
    s = fx_findq(fx, "s");
    assert_int_equal(queue_ready_count(src), 0);
    assert_int_equal(queue_ready_count(s), 1);
    close_broker(fx);
}

/* The crash windows, written by hand: intent durable and the copy too (the
 * original must go at start-up), or the intent alone (it must stay). A
 * record that a client wrote with a claim header on another message,
 * in the range scanned, removes nothing. */
static void crash_window(fx_t *fx, int copy_stored)
{
    open_broker(fx);
    queue_t *s = make_stream(fx, "s");
    queue_t *src = make_dl_source(fx);
    publish_p(s, "other"); /* the copy is not the stream's first record */
    publish_p(src, "m0");
    publish_p(src, "m1");
    settle(fx);
    uint8_t intent[24];
    wbuf_put_be64(intent, 1);
    wbuf_put_be64(intent + 8, queue_id(s));
    wbuf_put_be64(intent + 16, (uint64_t)stream_next_offset(s));
    queue_state_append(src, "m", intent, sizeof intent);
    publish_forged_claim(s, src, 0);
    if (copy_stored) {
        qmsg_t *m = qmsg_new(amqp_cstr(""), amqp_cstr("s"), none, 2);
        memcpy(qmsg_body(m), "m1", 2);
        m->origin_qid = queue_id(src);
        m->origin_off = 1;
        m->persistent = 1;
        uint32_t epoch;
        int64_t target;
        queue_publish(s, m, &epoch, &target);
        qmsg_unref(m);
    }
    settle(fx);
    restart(fx);
    src = fx_findq(fx, "src");
    s = fx_findq(fx, "s");
    assert_int_equal(queue_ready_count(s), 2 + copy_stored);
    assert_int_equal(queue_ready_count(src), 2 - copy_stored);
    qentry_t *e = queue_get(src);
    assert_memory_equal(qmsg_body(e->m), "m0", 2); /* the other message is untouched */
    queue_ack(e);
    if (!copy_stored) {
        e = queue_get(src);
        assert_memory_equal(qmsg_body(e->m), "m1", 2);
        queue_ack(e);
    }
    settle(fx);
    restart(fx); /* nothing comes back */
    assert_int_equal(queue_ready_count(fx_findq(fx, "src")), 0);
    close_broker(fx);
}

static void test_crash_after_stream_copy_removes_original(void **state) { crash_window(*state, 1); }
static void test_crash_before_stream_copy_keeps_original(void **state) { crash_window(*state, 0); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_coalesced_offsets_hold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_queue_deletes_topic_and_adoption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter_into_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_stream_copy_removes_original, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_before_stream_copy_keeps_original, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
