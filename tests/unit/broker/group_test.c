/* Group coordinator: protocol selection, join/sync through the C API, and
 * the committed-offsets log replayed by a new broker (tombstones included). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../store/store_test.h"
#include "broker/broker.h"
#include "broker/group.h"

#define GSTR(s) ((group_str_t){(s), (int32_t)strlen(s)})
#define GNULL ((group_str_t){NULL, -1})

typedef struct {
    int calls;
    int16_t error;
    int32_t generation;
    char member_id[128], protocol[32], leader[128];
    int nmembers;
} join_out_t;

static void on_join(void *ctx, const group_join_result_t *r)
{
    join_out_t *o = ctx;
    o->calls++;
    o->error = r->error;
    o->generation = r->generation;
    snprintf(o->member_id, sizeof o->member_id, "%s", r->member_id ? r->member_id : "");
    snprintf(o->protocol, sizeof o->protocol, "%s", r->protocol_name ? r->protocol_name : "");
    snprintf(o->leader, sizeof o->leader, "%s", r->leader ? r->leader : "");
    o->nmembers = r->nmembers;
}

typedef struct {
    int calls;
    int16_t error;
    char assign[32];
} sync_out_t;

static void on_sync(void *ctx, int16_t err, const char *pt, const char *pn, const uint8_t *a, int32_t len)
{
    sync_out_t *o = ctx;
    o->calls++;
    o->error = err;
    snprintf(o->assign, sizeof o->assign, "%.*s", (int)len, a ? (const char *)a : "");
}

static broker_t *open_broker(uv_loop_t *loop, const char *dir)
{
    config_t cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    cfg.group_initial_delay_ms = 0;
    int err = 0;
    broker_t *b = broker_new(loop, &cfg, &err);
    assert_non_null(b);
    return b;
}

static void join_req(group_join_req_t *r, const char *member, const group_proto_t *p, int n)
{
    memset(r, 0, sizeof *r);
    r->group_id = GSTR("g");
    r->member_id = GSTR(member);
    r->instance_id = GNULL;
    r->protocol_type = GSTR("consumer");
    r->client_id = GSTR("c");
    r->client_host = GSTR("");
    r->session_ms = 10000;
    r->rebalance_ms = 10000;
    r->protos = p;
    r->nprotos = n;
}

static void test_protocol_vote_and_sync(void **state)
{
    (void)state;
    char *dir = st_tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    broker_t *b = open_broker(&loop, dir);
    group_coord_t *c = broker_groups(b);
    /* A prefers x, B and C prefer y: y wins by vote. */
    group_proto_t pa[] = {{GSTR("x"), (const uint8_t *)"a", 1}, {GSTR("y"), (const uint8_t *)"a", 1}};
    group_proto_t pb[] = {{GSTR("y"), (const uint8_t *)"b", 1}, {GSTR("x"), (const uint8_t *)"b", 1}};
    group_join_req_t r;
    join_out_t ja = {0}, jb = {0}, jc = {0};
    join_req(&r, "", pa, 2);
    group_join(c, &r, on_join, &ja); /* v0-3 style: no MEMBER_ID_REQUIRED, waits */
    assert_int_equal(ja.calls, 1);    /* sole member: completes at once */
    assert_int_equal(ja.generation, 1);
    assert_string_equal(ja.protocol, "x");
    join_req(&r, "", pb, 2);
    r.require_known_member = 1;
    group_join(c, &r, on_join, &jb);
    assert_int_equal(jb.error, GERR_MEMBER_ID_REQUIRED);
    char bid[128];
    snprintf(bid, sizeof bid, "%s", jb.member_id);
    join_req(&r, bid, pb, 2);
    group_join(c, &r, on_join, &jb);
    assert_int_equal(jb.calls, 1); /* waits for A to rejoin */
    join_req(&r, "", pb, 2);
    group_join(c, &r, on_join, &jc);
    join_req(&r, ja.member_id, pa, 2);
    group_join(c, &r, on_join, &ja);
    assert_int_equal(ja.calls, 2);
    assert_int_equal(jb.calls, 2);
    assert_int_equal(jc.calls, 1);
    assert_int_equal(ja.generation, 2);
    assert_string_equal(ja.protocol, "y");
    assert_string_equal(ja.leader, ja.member_id);
    assert_int_equal(ja.nmembers, 3);
    assert_int_equal(jb.nmembers, 0);

    sync_out_t sb = {0}, sa = {0};
    group_sync_req_t s = {GSTR("g"), GSTR(jb.member_id), GNULL, GNULL, GNULL, 2, NULL, 0};
    group_sync(c, &s, on_sync, &sb);
    assert_int_equal(sb.calls, 0); /* waits for the leader */
    group_assignment_t as[] = {{GSTR(jb.member_id), (const uint8_t *)"B", 1}};
    s = (group_sync_req_t){GSTR("g"), GSTR(ja.member_id), GNULL, GNULL, GSTR("y"), 2, as, 1};
    group_sync(c, &s, on_sync, &sa);
    assert_int_equal(sb.calls, 1);
    assert_string_equal(sb.assign, "B");
    assert_string_equal(sa.assign, "");
    assert_string_equal(group_state_name(group_state(group_find(c, GSTR("g")))), "Stable");
    assert_int_equal(group_heartbeat(c, GSTR("g"), 2, GSTR(ja.member_id), GNULL), 0);
    assert_int_equal(group_delete(c, GSTR("g"), &(int64_t){0}), GERR_NON_EMPTY_GROUP);

    broker_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    st_rmdir(dir);
}

static void test_offsets_replay_and_tombstones(void **state)
{
    (void)state;
    char *dir = st_tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    broker_t *b = open_broker(&loop, dir);
    group_coord_t *c = broker_groups(b);
    int64_t t;
    assert_int_equal(group_commit_check(c, GSTR("g1"), -1, GSTR(""), GNULL), 0);
    assert_int_equal(group_commit(c, GSTR("g1"), GSTR("t"), 0, 5, -1, GSTR("m"), &t), 0);
    assert_int_equal(group_commit(c, GSTR("g1"), GSTR("t"), 0, 7, 3, GNULL, &t), 0);
    assert_int_equal(group_commit(c, GSTR("g2"), GSTR("t"), 1, 9, -1, GSTR(""), &t), 0);
    assert_int_equal(group_commit(c, GSTR("g3"), GSTR("u"), 2, 11, -1, GSTR("x"), &t), 0);
    assert_int_equal(group_delete(c, GSTR("g3"), &t), GERR_NONE);
    assert_int_equal(group_delete(c, GSTR("g3"), &t), GERR_GROUP_ID_NOT_FOUND);
    broker_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);

    b = open_broker(&loop, dir);
    c = broker_groups(b);
    int64_t off;
    int32_t ep;
    group_str_t md;
    assert_int_equal(group_offset_get(c, GSTR("g1"), GSTR("t"), 0, &off, &ep, &md), 1);
    assert_int_equal(off, 7);
    assert_int_equal(ep, 3);
    assert_int_equal(md.len, -1);
    assert_int_equal(group_offset_get(c, GSTR("g2"), GSTR("t"), 1, &off, &ep, &md), 1);
    assert_int_equal(off, 9);
    assert_int_equal(md.len, 0);
    assert_int_equal(group_offset_get(c, GSTR("g3"), GSTR("u"), 2, &off, &ep, &md), 0);
    assert_null(group_find(c, GSTR("g3")));
    assert_string_equal(group_state_name(group_state(group_find(c, GSTR("g1")))), "Empty");
    broker_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    st_rmdir(dir);
}

static void test_offsets_compaction(void **state)
{
    (void)state;
    char *dir = st_tmpdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    broker_t *b = open_broker(&loop, dir);
    group_coord_t *c = broker_groups(b);
    int64_t t;
    for (int i = 0; i < 200; i++) {
        char md[16];
        snprintf(md, sizeof md, "v%d", i);
        assert_int_equal(group_commit(c, GSTR("g"), GSTR("t"), i % 3, i, -1, GSTR(md), &t), 0);
    }
    assert_int_equal(group_commit(c, GSTR("gone"), GSTR("t"), 0, 1, -1, GNULL, &t), 0);
    assert_int_equal(group_delete(c, GSTR("gone"), &t), GERR_NONE);
    assert_int_equal(group_offsets_compact(c), 0);
    char path[2048];
    snprintf(path, sizeof path, "%s/__offsets/log-start-offset", dir);
    for (int i = 0; i < 500 && access(path, F_OK) != 0; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    assert_int_equal(access(path, F_OK), 0);
    broker_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);

    b = open_broker(&loop, dir);
    c = broker_groups(b);
    int64_t off;
    int32_t ep;
    group_str_t md;
    for (int p = 0; p < 3; p++) {
        assert_int_equal(group_offset_get(c, GSTR("g"), GSTR("t"), p, &off, &ep, &md), 1);
        int last = 199 - ((199 - p) % 3);
        char want[16];
        snprintf(want, sizeof want, "v%d", last);
        assert_int_equal(off, last);
        assert_int_equal(md.len, (int32_t)strlen(want));
        assert_memory_equal(md.p, want, (size_t)md.len);
    }
    assert_null(group_find(c, GSTR("gone")));
    broker_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    st_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol_vote_and_sync),
        cmocka_unit_test(test_offsets_replay_and_tombstones),
        cmocka_unit_test(test_offsets_compaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
