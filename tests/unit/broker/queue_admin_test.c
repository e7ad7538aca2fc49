/* Admin operations on queues (queue_admin.c) over a real broker: peek in
 * delivery order across a paged-out backlog without moving anything,
 * priorities first; redrive to the x-death queue and to an override, and a
 * redrive whose target is missing leaving the messages in place and order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../store/store_test.h"
#include "amqp/ftable.h"
#include "amqp/props.h"
#include "base/log.h"
#include "broker/queue_admin.h"
#include "broker/queue_int.h"
#include "vhost_fixture.h"

static queue_t *mkq(fx_t *fx, const char *name, amqp_bytes_t args) { return fx_queue(fx, name, QF_DURABLE, args, NULL); }

/* Message i (fx_msg) with priority prio (-1 none), an x-death entry naming
 * died_in (NULL none), body i % 100 as two digits. */
static qmsg_t *msg(int i, int prio, const char *died_in)
{
    wbuf_t h;
    wbuf_init(&h);
    if (died_in) {
        ftable_put_name(&h, "x-death");
        size_t a = ftable_put_array_begin(&h);
        size_t t = ftable_put_table_begin(&h);
        ftable_put_name(&h, "queue");
        ftable_put_longstr(&h, died_in, strlen(died_in));
        ftable_end(&h, t);
        t = ftable_put_table_begin(&h); /* an older death: not the target */
        ftable_put_name(&h, "queue");
        ftable_put_longstr(&h, "older", 5);
        ftable_end(&h, t);
        ftable_end(&h, a);
    }
    char body[16];
    snprintf(body, sizeof body, "%02d", i % 100);
    qmsg_t *m = fx_msg(i, prio, (amqp_bytes_t){h.p, (uint32_t)h.len}, body, 2);
    wbuf_destroy(&h);
    return m;
}



/* A redriven message's key is its new queue's name: the body names it. */
static int body_idx(qmsg_t *m) { return (qmsg_body(m)[0] - '0') * 10 + (qmsg_body(m)[1] - '0'); }

static void publish(queue_t *q, qmsg_t *m)
{
    uint32_t epoch;
    int64_t target;
    assert_true(queue_publish(q, m, &epoch, &target) >= 0);
    qmsg_unref(m);
}

typedef struct {
    int n, bad;
    int order[64];
} seen_t;

static void on_peek(void *ctx, const queue_peek_msg_t *m)
{
    seen_t *s = ctx;
    int i = fx_key_idx(m->key);
    if (s->n < 64) s->order[s->n] = i;
    else if (i != s->n) s->bad++; /* FIFO: message n is at position n */
    if (m->body_len != 2 || (m->body[0] - '0') * 10 + (m->body[1] - '0') != i % 100) s->bad++;
    s->n++;
}

static void test_peek_paged_backlog(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *q = mkq(fx, "deep", none);
    int n = QUEUE_PAGE_HIGH + 3000;
    for (int i = 0; i < n; i++) {
        publish(q, msg(i, -1, NULL));
        if (i % 4096 == 0) queue_flush_all(fx->b);
    }
    queue_flush_all(fx->b);
    uint64_t paged = q->npaged;
    assert_true(paged >= 3000);
    seen_t s = {0};
    assert_int_equal(queue_peek(q, (size_t)n + 10, on_peek, &s), n);
    assert_int_equal(s.n, n);
    assert_int_equal(s.bad, 0);
    for (int i = 0; i < 64; i++) assert_int_equal(s.order[i], i);
    assert_int_equal(q->npaged, paged); /* nothing was read back into the queue */
    assert_int_equal(queue_ready_count(q), n);
    seen_t few = {0};
    assert_int_equal(queue_peek(q, 5, on_peek, &few), 5);
    close_broker(fx);
}

static void test_peek_priorities(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    wbuf_t w;
    wbuf_init(&w);
    ftable_put_name(&w, "x-max-priority");
    ftable_put_i64(&w, 9);
    queue_t *q = mkq(fx, "prio", (amqp_bytes_t){w.p, (uint32_t)w.len});
    int prios[] = {1, 9, 5, 9, 0};
    for (int i = 0; i < 5; i++) publish(q, msg(i, prios[i], NULL));
    seen_t s = {0};
    assert_int_equal(queue_peek(q, 10, on_peek, &s), 5);
    int want[] = {1, 3, 2, 0, 4};
    for (int i = 0; i < 5; i++) assert_int_equal(s.order[i], want[i]);
    for (int i = 0; i < 5; i++) { /* the same order as deliveries */
        qentry_t *e = queue_get(q);
        assert_int_equal(fx_key_idx(qmsg_key(e->m)), want[i]);
        queue_ack(e);
    }
    wbuf_destroy(&w);
    close_broker(fx);
}

typedef struct {
    int calls, moved, back;
} ends_t;

static void on_end(void *ctx, int result)
{
    ends_t *e = ctx;
    e->calls++;
    if (result == 1) e->moved++;
    if (result == 2) e->back++;
}

static void run_until(fx_t *fx, const ends_t *e, int calls)
{
    for (int i = 0; i < 2000 && e->calls < calls; i++) {
        queue_flush_all(fx->b);
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(e->calls, calls);
}

static void test_redrive(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *dlq = mkq(fx, "dlq", none);
    queue_t *work = mkq(fx, "work", none);
    queue_t *other = mkq(fx, "other", none);
    for (int i = 0; i < 4; i++) publish(dlq, msg(i, -1, i == 2 ? NULL : "work"));
    queue_flush_all(fx->b);
    amqp_bytes_t died;
    qentry_t *head = dlq->lv[0].head;
    assert_int_equal(queue_death_queue(qmsg_props(head->m), &died), 1);
    assert_true(amqp_bytes_eq(died, "work"));
    /* at most 2 moves: 0 and 1 */
    ends_t e = {0};
    size_t skipped;
    assert_int_equal(queue_redrive(dlq, 2, none, on_end, &e, &skipped), 2);
    assert_int_equal(skipped, 0);
    run_until(fx, &e, 2);
    assert_int_equal(e.moved, 2);
    assert_int_equal(queue_ready_count(work), 2);
    assert_int_equal(queue_ready_count(dlq), 2);
    /* message 2 has no x-death: skipped, stays; 3 moves */
    ends_t e1 = {0};
    assert_int_equal(queue_redrive(dlq, SIZE_MAX, none, on_end, &e1, &skipped), 1);
    assert_int_equal(skipped, 1);
    run_until(fx, &e1, 1);
    assert_int_equal(queue_ready_count(work), 3);
    /* the rest to "other", x-death or not */
    ends_t e2 = {0};
    assert_int_equal(queue_redrive(dlq, SIZE_MAX, amqp_cstr("other"), on_end, &e2, &skipped), 1);
    run_until(fx, &e2, 1);
    assert_int_equal(queue_ready_count(other), 1);
    assert_int_equal(queue_ready_count(dlq), 0);
    int want_work[] = {0, 1, 3}, want_other[] = {2};
    for (int i = 0; i < 3; i++) {
        qentry_t *x = queue_get(work);
        assert_int_equal(body_idx(x->m), want_work[i]);
        assert_true(amqp_bytes_eq(qmsg_key(x->m), "work"));
        assert_int_equal(queue_death_queue(qmsg_props(x->m), &died), 1); /* headers kept */
        queue_ack(x);
    }
    for (int i = 0; i < 1; i++) {
        qentry_t *x = queue_get(other);
        assert_int_equal(body_idx(x->m), want_other[i]);
        queue_ack(x);
    }
    /* a missing target: the messages go back, in their order */
    for (int i = 10; i < 13; i++) publish(dlq, msg(i, -1, "gone"));
    queue_flush_all(fx->b);
    ends_t e3 = {0};
    assert_int_equal(queue_redrive(dlq, SIZE_MAX, none, on_end, &e3, &skipped), 3);
    run_until(fx, &e3, 3);
    assert_int_equal(e3.back, 3);
    assert_int_equal(queue_ready_count(dlq), 3);
    for (int i = 10; i < 13; i++) {
        qentry_t *x = queue_get(dlq);
        assert_int_equal(fx_key_idx(qmsg_key(x->m)), i);
        queue_ack(x);
    }
    close_broker(fx);
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_peek_paged_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peek_priorities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redrive, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
