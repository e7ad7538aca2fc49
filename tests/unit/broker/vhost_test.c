/* The AMQP virtual host (vhost.c) over a real broker: catalog replay of
 * durable exchanges, queues and bindings (and what must not come back:
 * non-durable ones, bindings of a deleted queue or exchange, exclusive
 * queues), vhost_owner_gone, x-expires through the vhost's timer, a queue
 * whose logs cannot be opened. Queue behaviour itself is in queue_test.c.
 *
 * Each test runs in its own temp directory with its own loop; sync_all()
 * runs the loop until every log (the catalog included) is durable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>

#include "../store/store_test.h"
#include "amqp/ftable.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "broker/internal.h"
#include "broker/queue.h"
#include "broker/vhost.h"
#include "vhost_fixture.h"

/* Queue log directories in <data>/queues. */
static int queues_dir_entries(const char *data)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/queues", data);
    DIR *d = opendir(p);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) /* a "*.deleting-*" directory is already gone (its removal is async) */
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !strstr(e->d_name, ".deleting-")) n++;
    closedir(d);
    return n;
}


/* A persistent message with routing key "k<i>" and no body. */
static void publish(queue_t *q, int i, int persistent)
{
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    qmsg_t *m = qmsg_new(none, amqp_cstr(key), none, 0);
    m->persistent = (uint8_t)persistent;
    uint32_t epoch;
    int64_t target;
    queue_publish(q, m, &epoch, &target);
    qmsg_unref(m);
}

static void assert_bytes_equal(amqp_bytes_t a, amqp_bytes_t b)
{
    assert_int_equal(a.len, b.len);
    if (a.len) assert_memory_equal(a.p, b.p, a.len);
}

static amqp_bytes_t args_i64(wbuf_t *w, const char *name, int64_t v)
{
    ftable_put_name(w, name);
    ftable_put_i64(w, v);
    return (amqp_bytes_t){w->p, (uint32_t)w->len};
}

/* A consumer that never takes anything (it only has to be there). */
static int never_take(qconsumer_t *c)
{
    (void)c;
    return 0;
}

static void no_deliver(qconsumer_t *c, qentry_t *e)
{
    (void)c;
    (void)e;
    fail();
}

static void assert_route(vhost_t *v, exchange_t *ex, const char *key, queue_t *want)
{
    xroute_t r = {0};
    xregistry_route(vhost_exchanges(v), ex, amqp_cstr(key), none, &r);
    assert_int_equal(r.n, want ? 1 : 0);
    if (want) assert_ptr_equal(r.q[0], want);
    xroute_destroy(&r);
}

static int count_bindings(exchange_t *ex)
{
    int n = 0;
    for (xbinding_t *bd = exchange_bindings(ex); bd; bd = xbinding_next(bd)) n++;
    return n;
}

static exchange_t *findx(fx_t *fx, const char *name)
{
    return xregistry_find(vhost_exchanges(fx->v), amqp_cstr(name));
}

static void test_vhost_replay(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    vhost_t *v = fx->v;
    wbuf_t xa, ba;
    wbuf_init(&xa);
    wbuf_init(&ba);
    amqp_bytes_t xargs = args_i64(&xa, "alternate-x", 7);
    amqp_bytes_t bargs = args_i64(&ba, "x-b", 42);
    exchange_t *dx, *tx, *dx2;
    assert_int_equal(vhost_exchange_declare(v, amqp_cstr("dx"), EX_DIRECT, EXF_DURABLE, xargs, &dx), 0);
    assert_int_equal(vhost_exchange_declare(v, amqp_cstr("tx"), EX_TOPIC, 0, none, &tx), 0);
    assert_int_equal(vhost_exchange_declare(v, amqp_cstr("dx2"), EX_FANOUT, EXF_DURABLE, none, &dx2), 0);
    assert_int_equal(vhost_exchange_declare(v, amqp_cstr("dx"), EX_DIRECT, EXF_DURABLE, none, &dx), 1);
    queue_t *dq = fx_queue(fx, "dq", QF_DURABLE, none, NULL);
    queue_t *nq = fx_queue(fx, "nq", 0, none, NULL);
    xdest_t to_dq = {XDEST_QUEUE, dq}, to_nq = {XDEST_QUEUE, nq}, to_dx2 = {XDEST_EXCHANGE, dx2};
    assert_int_equal(vhost_bind(v, dx, to_dq, amqp_cstr("k1"), bargs), 0);
    assert_int_equal(vhost_bind(v, dx, to_nq, amqp_cstr("k2"), none), 0);
    assert_int_equal(vhost_bind(v, tx, to_dq, amqp_cstr("#"), none), 0);
    assert_int_equal(vhost_bind(v, dx, to_dx2, amqp_cstr("k3"), none), 0);
    assert_int_equal(vhost_bind(v, dx2, to_dq, amqp_cstr(""), none), 0);
    assert_int_equal(vhost_bind(v, dx, to_dq, amqp_cstr("gone"), none), 0);
    assert_int_equal(vhost_unbind(v, dx, to_dq, amqp_cstr("gone"), none), 0);
    publish(dq, 1, 1);
    sync_all(fx);
    restart(fx);
    v = fx->v;

    dx = findx(fx, "dx");
    dx2 = findx(fx, "dx2");
    dq = fx_findq(fx, "dq");
    assert_non_null(dx);
    assert_non_null(dx2);
    assert_non_null(dq);
    assert_null(findx(fx, "tx"));
    assert_null(fx_findq(fx, "nq"));
    assert_int_equal(exchange_type(dx), EX_DIRECT);
    assert_int_equal(exchange_flags(dx), EXF_DURABLE);
    assert_bytes_equal(exchange_args(dx), xargs);
    assert_int_equal(exchange_type(dx2), EX_FANOUT);
    assert_int_equal(queue_ready_count(dq), 1);
    /* dx: k1 -> dq (with its arguments), k3 -> dx2; dx2: "" -> dq. */
    assert_int_equal(count_bindings(dx), 2);
    xbinding_t *bd = exchange_bindings(dx);
    assert_int_equal(xbinding_dest(bd).kind, XDEST_QUEUE);
    assert_ptr_equal(xbinding_dest(bd).ptr, dq);
    assert_bytes_equal(xbinding_key(bd), amqp_cstr("k1"));
    assert_bytes_equal(xbinding_args(bd), bargs);
    bd = xbinding_next(bd);
    assert_int_equal(xbinding_dest(bd).kind, XDEST_EXCHANGE);
    assert_ptr_equal(xbinding_dest(bd).ptr, dx2);
    assert_int_equal(count_bindings(dx2), 1);
    assert_route(v, dx, "k1", dq);
    assert_route(v, dx, "k3", dq);
    assert_route(v, dx, "k2", NULL);
    assert_route(v, dx, "gone", NULL);
    wbuf_destroy(&xa);
    wbuf_destroy(&ba);
    close_broker(fx);
}

static void test_vhost_deleted_bindings_stay_deleted(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    vhost_t *v = fx->v;
    exchange_t *dx, *dx3;
    assert_int_equal(vhost_exchange_declare(v, amqp_cstr("dx"), EX_DIRECT, EXF_DURABLE, none, &dx), 0);
    assert_int_equal(vhost_exchange_declare(v, amqp_cstr("dx3"), EX_DIRECT, EXF_DURABLE, none, &dx3), 0);
    queue_t *dq = fx_queue(fx, "dq", QF_DURABLE, none, NULL);
    assert_int_equal(vhost_bind(v, dx, (xdest_t){XDEST_QUEUE, dq}, amqp_cstr("k"), none), 0);
    assert_int_equal(vhost_bind(v, dx3, (xdest_t){XDEST_QUEUE, dq}, amqp_cstr("z"), none), 0);
    assert_int_equal(vhost_bind(v, dx, (xdest_t){XDEST_EXCHANGE, dx3}, amqp_cstr("e"), none), 0);
    publish(dq, 1, 1);
    /* The queue goes and comes back under the same name; dx3 goes and
     * comes back too. */
    assert_int_equal(vhost_queue_delete(v, dq), 1);
    assert_int_equal(count_bindings(dx), 1); /* only dx -> dx3 */
    dq = fx_queue(fx, "dq", QF_DURABLE, none, NULL);
    assert_int_equal(vhost_exchange_delete(v, dx3, 0), 0);
    assert_int_equal(count_bindings(dx), 0);
    assert_int_equal(vhost_exchange_declare(v, amqp_cstr("dx3"), EX_DIRECT, EXF_DURABLE, none, &dx3), 0);
    sync_all(fx);
    restart(fx);
    dx = findx(fx, "dx");
    dx3 = findx(fx, "dx3");
    dq = fx_findq(fx, "dq");
    assert_non_null(dx);
    assert_non_null(dx3);
    assert_non_null(dq);
    assert_int_equal(count_bindings(dx), 0);
    assert_int_equal(count_bindings(dx3), 0);
    assert_int_equal(queue_ready_count(dq), 0);
    assert_route(fx->v, dx, "k", NULL);
    assert_int_equal(queues_dir_entries(fx->dir), 2); /* the old dq's logs are gone */
    close_broker(fx);
}

/* Bindings from the pre-declared amq.* exchanges (durable) to a durable
 * queue are durable bindings (RabbitMQ keeps them across restarts). */
static void test_vhost_builtin_exchange_binding_survives(void **state)
{
    /* Regression: bindings from a built-in exchange (amq.topic -> a
     * durable queue) were not written to the catalog. */
    fx_t *fx = *state;
    open_broker(fx);
    queue_t *dq = fx_queue(fx, "dq", QF_DURABLE, none, NULL);
    exchange_t *amq = findx(fx, "amq.topic");
    assert_non_null(amq);
    assert_int_equal(vhost_bind(fx->v, amq, (xdest_t){XDEST_QUEUE, dq}, amqp_cstr("a.#"), none), 0);
    sync_all(fx);
    restart(fx);
    dq = fx_findq(fx, "dq");
    assert_route(fx->v, findx(fx, "amq.topic"), "a.b", dq);
    close_broker(fx);
}

static void test_vhost_exclusive_queues(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    int owner1, owner2;
    queue_t *e1 = fx_queue(fx, "e1", QF_DURABLE | QF_EXCLUSIVE, none, &owner1);
    queue_t *e2 = fx_queue(fx, "e2", QF_EXCLUSIVE, none, &owner1);
    queue_t *e3 = fx_queue(fx, "e3", QF_DURABLE | QF_EXCLUSIVE, none, &owner2);
    queue_t *sh = fx_queue(fx, "shared", QF_DURABLE, none, &owner1);
    assert_ptr_equal(queue_owner(e1), &owner1);
    assert_ptr_equal(queue_owner(e2), &owner1);
    exchange_t *dx;
    assert_int_equal(vhost_exchange_declare(fx->v, amqp_cstr("dx"), EX_FANOUT, EXF_DURABLE, none, &dx), 0);
    assert_int_equal(vhost_bind(fx->v, dx, (xdest_t){XDEST_QUEUE, e3}, none, none), 0);
    publish(e1, 1, 1);
    publish(e3, 3, 1);
    publish(sh, 4, 1);
    sync_all(fx);
    char e1log[4096];
    qdir_path(e1log, sizeof e1log, fx->dir, queue_id(e1), "log");

    vhost_owner_gone(fx->v, &owner1);
    assert_null(fx_findq(fx, "e1"));
    assert_null(fx_findq(fx, "e2"));
    assert_ptr_equal(fx_findq(fx, "e3"), e3);
    assert_ptr_equal(fx_findq(fx, "shared"), sh);
    sync_all(fx);
    restart(fx);
    /* Exclusive queues are never in the catalog; their logs are swept. */
    assert_false(path_exists(e1log));
    assert_null(fx_findq(fx, "e3"));
    assert_null(fx_findq(fx, "e1"));
    sh = fx_findq(fx, "shared");
    assert_non_null(sh);
    assert_int_equal(queue_ready_count(sh), 1);
    assert_int_equal(count_bindings(findx(fx, "dx")), 0);
    assert_int_equal(queues_dir_entries(fx->dir), 2);
    close_broker(fx);
}

/* ======================= timers and failures ======================= */

static void on_keepalive(uv_timer_t *t) { (void)t; }

static void test_x_expires_by_vhost_timer(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    wbuf_t w;
    wbuf_init(&w);
    amqp_bytes_t args = args_i64(&w, "x-expires", 1);
    fx_queue(fx, "xd", QF_DURABLE, args, NULL);
    fx_queue(fx, "xn", 0, args, NULL);
    queue_t *kept = fx_queue(fx, "xk", QF_DURABLE, args, NULL);
    wbuf_destroy(&w);
    qconsumer_t c = {.can_take = never_take, .deliver = no_deliver};
    queue_consumer_add(kept, &c);
    uv_timer_t keep;
    uv_timer_init(&fx->loop, &keep);
    uv_timer_start(&keep, on_keepalive, 50, 50);
    int64_t until = clock_mono_ms() + 3000;
    while ((fx_findq(fx, "xd") || fx_findq(fx, "xn")) && clock_mono_ms() < until) uv_run(&fx->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&keep, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_null(fx_findq(fx, "xd"));
    assert_null(fx_findq(fx, "xn"));
    assert_non_null(fx_findq(fx, "xk")); /* it has a consumer */
    queue_consumer_remove(kept, &c);
    sync_all(fx);
    restart(fx);
    assert_null(fx_findq(fx, "xd"));
    assert_non_null(fx_findq(fx, "xk"));
    assert_int_equal(queues_dir_entries(fx->dir), 2);
    close_broker(fx);
}

/* A durable queue whose log cannot be opened is not created. */
static int match_open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int mode = va_arg(ap, int);
    va_end(ap);
    if (strstr(path, "/queues/") && strstr(path, "-log")) {
        errno = EIO;
        return -1;
    }
    return open(path, flags, mode);
}

static void test_create_fails_cleanly(void **state)
{
    fx_t *fx = *state;
    open_broker(fx);
    io_ops.open = match_open;
    queue_t *q = NULL;
    assert_true(vhost_queue_create(fx->v, amqp_cstr("bad"), QF_DURABLE, none, NULL, &q) < 0);
    io_ops_reset();
    assert_null(fx_findq(fx, "bad"));
    q = fx_queue(fx, "bad", QF_DURABLE, none, NULL);
    publish(q, 1, 1);
    sync_all(fx);
    restart(fx);
    q = fx_findq(fx, "bad");
    assert_non_null(q);
    assert_int_equal(queue_ready_count(q), 1);
    assert_int_equal(queues_dir_entries(fx->dir), 2); /* the failed attempt's directories are gone */
    close_broker(fx);
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vhost_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vhost_deleted_bindings_stay_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vhost_builtin_exchange_binding_survives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vhost_exclusive_queues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x_expires_by_vhost_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_fails_cleanly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
