/* Consumer groups over HTTP: list, describe (members, assignments,
 * committed offsets and lag), delete, commit (docs/http-api.md). */
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"
#include "broker/group.h"
#include "http/hwait.h"
#include "http/router.h"
#include "http/stats.h"

#define GROUP_MEMBERS_MAX 4096
#define COMMIT_MAX 10000

static group_str_t gstr(const char *s) { return (group_str_t){s, (int32_t)strlen(s)}; }

static group_t *find_group(http_req_t *r)
{
    const char *id = http_req_param(r, 0);
    group_t *g = group_find(broker_groups(http_req_broker(r)), gstr(id));
    if (!g) http_reply_error(r, 404, "no consumer group called %s", id);
    return g;
}

typedef struct {
    broker_t *b;
    json_t *offsets;  /* NULL: only collect topics */
    json_t *topics;   /* names, each once */
} offsets_ctx_t;

static void visit_offset(void *ctx, const char *topic, int32_t partition, int64_t offset, int32_t leader_epoch,
                         group_str_t meta)
{
    offsets_ctx_t *c = ctx;
    int known = 0;
    size_t i;
    json_t *v;
    json_array_foreach(c->topics, i, v) known |= !strcmp(json_string_value(v), topic);
    if (!known) json_array_append_new(c->topics, json_string(topic));
    if (!c->offsets) return;
    topic_t *t = broker_topic_find(c->b, topic, strlen(topic));
    partition_t *p = t ? topic_partition(t, partition) : NULL;
    json_t *o = json_pack("{s:s, s:i, s:I}", "topic", topic, "partition", partition, "committed", (json_int_t)offset);
    if (p) {
        int64_t hw = partition_high_watermark(p), lag = hw - offset;
        json_object_set_new(o, "high_watermark", json_integer(hw));
        json_object_set_new(o, "lag", json_integer(lag > 0 ? lag : 0));
    } else {
        json_object_set_new(o, "high_watermark", json_null());
        json_object_set_new(o, "lag", json_null());
    }
    json_object_set_new(o, "metadata", meta.len > 0 ? json_stringn(meta.p, (size_t)meta.len) : json_string(""));
    json_array_append_new(c->offsets, o);
}

static void get_groups(http_req_t *r)
{
    broker_t *b = http_req_broker(r);
    json_t *arr = json_array();
    for (group_t *g = group_first(broker_groups(b)); g; g = group_next(g)) {
        offsets_ctx_t c = {b, NULL, json_array()};
        group_offsets_each(broker_groups(b), gstr(group_id(g)), visit_offset, &c);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:o}", "group_id", group_id(g), "state",
                                             group_state_name(group_state(g)), "protocol_type",
                                             group_protocol_type(g), "protocol", group_protocol(g), "members",
                                             group_member_count(g), "lag",
                                             (json_int_t)http_stats_group_lag(b, group_id(g)), "topics", c.topics));
    }
    http_reply_json(r, 200, arr);
}

/* The consumer protocol's assignment (version, [topic, [partition]],
 * user data) as [{"topic", "partitions"}]; null if it does not parse. */
static json_t *assignment_json(const uint8_t *p, int32_t len)
{
    if (!p || len <= 0) return json_array();
    rbuf_t rb;
    rbuf_init(&rb, p, (size_t)len);
    (void)rbuf_i16(&rb);
    int32_t nt = rbuf_i32(&rb);
    if (nt < 0 || (size_t)nt > rbuf_remaining(&rb) / 6) return json_null();
    json_t *arr = json_array();
    for (int32_t i = 0; i < nt && !rb.err; i++) {
        int16_t tl = rbuf_i16(&rb);
        const uint8_t *tn = tl >= 0 ? rbuf_view(&rb, (size_t)tl) : NULL;
        int32_t np = rbuf_i32(&rb);
        if (!tn || np < 0 || (size_t)np > rbuf_remaining(&rb) / 4) {
            json_decref(arr);
            return json_null();
        }
        json_t *parts = json_array();
        for (int32_t k = 0; k < np; k++) json_array_append_new(parts, json_integer(rbuf_i32(&rb)));
        json_array_append_new(arr, json_pack("{s:s%, s:o}", "topic", (const char *)tn, (size_t)tl, "partitions", parts));
    }
    if (rb.err) {
        json_decref(arr);
        return json_null();
    }
    return arr;
}

static json_t *opt_str(const char *s) { return s ? json_string(s) : json_null(); }

static void get_group(http_req_t *r)
{
    broker_t *b = http_req_broker(r);
    group_t *g = find_group(r);
    if (!g) return;
    group_member_info_t *mi = xcalloc(GROUP_MEMBERS_MAX, sizeof *mi);
    int nm = group_members(g, mi, GROUP_MEMBERS_MAX);
    json_t *members = json_array();
    int consumer = !strcmp(group_protocol_type(g), "consumer");
    for (int i = 0; i < nm; i++) {
        json_t *m = json_pack("{s:o, s:o, s:o, s:o}", "member_id", opt_str(mi[i].member_id), "instance_id",
                              opt_str(mi[i].instance_id), "client_id", opt_str(mi[i].client_id), "client_host",
                              opt_str(mi[i].client_host));
        json_object_set_new(m, "assignments",
                            consumer ? assignment_json(mi[i].assign, mi[i].assign_len) : json_null());
        json_array_append_new(members, m);
    }
    free(mi);
    offsets_ctx_t c = {b, json_array(), json_array()};
    group_offsets_each(broker_groups(b), gstr(group_id(g)), visit_offset, &c);
    json_decref(c.topics);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:o}", "group_id", group_id(g), "state",
                          group_state_name(group_state(g)), "protocol_type", group_protocol_type(g), "protocol",
                          group_protocol(g), "lag", (json_int_t)http_stats_group_lag(b, group_id(g)), "members",
                          members, "offsets", c.offsets, "history",
                          http_stats_group_history(http_stats(r), group_id(g)));
    http_reply_json(r, 200, j);
}

static void offsets_durable(http_req_t *r, int status, void *ctx)
{
    size_t n = (size_t)(uintptr_t)ctx;
    if (status < 0) http_reply_error(r, 507, "the offsets could not be stored: %s", herald_strerror(status));
    else if (n == (size_t)-1) http_reply(r, 204, "application/json", "", 0);
    else http_reply_json(r, 200, json_pack("{s:I}", "committed", (json_int_t)n));
}

static void answer_after_offsets(http_req_t *r, int64_t target, size_t n)
{
    hwait_t *w = hwait_new(r, 1, offsets_durable, (void *)(uintptr_t)n, NULL);
    pwaiter_t *pw = hwait_slot(w, 0);
    pw->target = target;
    if (target <= 0 || group_offsets_wait(broker_groups(http_req_broker(r)), pw) == 1) hwait_fired(w, 0, 0);
    hwait_arm(w);
}

static void delete_group(http_req_t *r)
{
    group_coord_t *c = broker_groups(http_req_broker(r));
    group_t *g = find_group(r);
    if (!g) return;
    int64_t target = 0;
    int16_t err = group_delete(c, gstr(group_id(g)), &target);
    if (err == GERR_NON_EMPTY_GROUP) http_reply_error(r, 409, "the group has members");
    else if (err == GERR_GROUP_ID_NOT_FOUND) http_reply_error(r, 404, "no consumer group called %s", http_req_param(r, 0));
    else if (err) http_reply_error(r, 507, "cannot delete the group (error %d)", err);
    else answer_after_offsets(r, target, (size_t)-1);
}

static void post_offsets(http_req_t *r)
{
    static const char *const allowed[] = {"offsets", NULL};
    broker_t *b = http_req_broker(r);
    group_coord_t *c = broker_groups(b);
    const char *gid = http_req_param(r, 0);
    json_t *body = http_body_object(r, allowed);
    if (!body) return;
    json_t *arr = json_object_get(body, "offsets");
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0 || n > COMMIT_MAX) {
        http_reply_error(r, 400, "\"offsets\" must be an array of 1 to %d entries", COMMIT_MAX);
        goto out;
    }
    /* Validate everything before committing anything. */
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        json_t *jt = json_object_get(e, "topic"), *jp = json_object_get(e, "partition"),
               *jo = json_object_get(e, "offset");
        if (!json_is_object(e) || json_object_size(e) != 3 || !json_is_string(jt) || !json_is_integer(jp) ||
            !json_is_integer(jo) || json_integer_value(jo) < 0) {
            http_reply_error(r, 400, "offsets[%zu] must be {\"topic\": string, \"partition\": int, \"offset\": int >= 0}",
                             i);
            goto out;
        }
        topic_t *t = broker_topic_find(b, json_string_value(jt), json_string_length(jt));
        if (!t || json_integer_value(jp) < 0 || json_integer_value(jp) >= topic_partition_count(t)) {
            http_reply_error(r, 404, "offsets[%zu]: no partition %lld of topic %s", i,
                             (long long)json_integer_value(jp), json_string_value(jt));
            goto out;
        }
    }
    int16_t gerr = group_commit_check(c, gstr(gid), -1, gstr(""), (group_str_t){NULL, -1});
    if (gerr) {
        http_reply_error(r, 409, "the group has members: only they may commit (error %d)", gerr);
        goto out;
    }
    int64_t target = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        json_t *jt = json_object_get(e, "topic");
        int64_t tg = 0;
        int rc = group_commit(c, gstr(gid), (group_str_t){json_string_value(jt), (int32_t)json_string_length(jt)},
                              (int32_t)json_integer_value(json_object_get(e, "partition")),
                              json_integer_value(json_object_get(e, "offset")), -1, gstr(""), &tg);
        if (rc < 0) {
            http_reply_error(r, 507, "cannot store the offset: %s", herald_strerror(rc));
            goto out;
        }
        if (tg > target) target = tg;
    }
    answer_after_offsets(r, target, n);
out:
    json_decref(body);
}

const http_route_t api_group_routes[] = {
    {"GET", "/api/groups", get_groups},
    {"GET", "/api/groups/{}", get_group},
    {"DELETE", "/api/groups/{}", delete_group},
    {"POST", "/api/groups/{}/offsets", post_offsets},
    {NULL, NULL, NULL},
};
