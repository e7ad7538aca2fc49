/*
 * Group coordinator APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
 * LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups,
 * DeleteGroups. The protocol itself lives in broker/group.c; these handlers
 * translate between the wire structs and it. Join and sync answers may come
 * later (from the coordinator's callbacks); commits are answered once the
 * offsets log is durable.
 */
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "broker/group.h"
#include "kafka/errors.h"
#include "kafka/handlers.h"

#define OFFSET_METADATA_MAX 4096
#define KERR_OFFSET_METADATA_TOO_LARGE 12

#define GS(k) ((group_str_t){(k).p, (k).len})

static kstr_t ks(const char *s) { return s ? KSTR(s) : KSTR_NULL; }

/* ---- FindCoordinator ---- */

int kafka_h_find_coordinator(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_find_coordinator_req_t req;
    if (kafka_find_coordinator_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    const char *host;
    int port;
    broker_kafka_advertised(b, &host, &port);
    int16_t err = req.key_type == 0 ? KERR_NONE : KERR_COORDINATOR_NOT_AVAILABLE;
    kafka_find_coordinator_resp_t resp;
    kafka_find_coordinator_resp_init(&resp);
    if (v < 4) {
        resp.error_code = err;
        resp.node_id = err ? -1 : broker_node_id(b);
        resp.host = KSTR(err ? "" : host);
        resp.port = err ? -1 : port;
    } else {
        int32_t n = req.coordinator_keys_n > 0 ? req.coordinator_keys_n : 0;
        resp.coordinators_n = n;
        resp.coordinators = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *resp.coordinators);
        for (int32_t i = 0; i < n; i++) {
            kafka_find_coordinator_resp_coordinator_t *co = &resp.coordinators[i];
            kafka_find_coordinator_resp_coordinator_init(co);
            co->key = req.coordinator_keys[i];
            co->error_code = err;
            co->node_id = err ? -1 : broker_node_id(b);
            co->host = KSTR(err ? "" : host);
            co->port = err ? -1 : port;
        }
    }
    kreq_begin_response(rq);
    kafka_find_coordinator_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
    return 0;
}

/* ---- JoinGroup ---- */

static void join_done(void *ctx, const group_join_result_t *r)
{
    kreq_t *rq = ctx;
    int16_t v = rq->hdr.api_version;
    kafka_join_group_resp_t resp;
    kafka_join_group_resp_init(&resp);
    resp.error_code = r->error;
    resp.generation_id = r->generation;
    resp.protocol_type = ks(r->protocol_type);
    resp.protocol_name = v >= 7 ? ks(r->protocol_name) : KSTR(r->protocol_name ? r->protocol_name : "");
    resp.leader = KSTR(r->leader ? r->leader : "");
    resp.member_id = KSTR(r->member_id ? r->member_id : "");
    resp.members_n = r->nmembers;
    resp.members = arena_calloc(&rq->arena, (size_t)(r->nmembers ? r->nmembers : 1), sizeof *resp.members);
    for (int i = 0; i < r->nmembers; i++) {
        kafka_join_group_resp_member_t *m = &resp.members[i];
        kafka_join_group_resp_member_init(m);
        m->member_id = KSTR(r->members[i].member_id);
        m->group_instance_id = ks(r->members[i].instance_id);
        m->metadata = (kbytes_t){r->members[i].meta, r->members[i].meta_len};
    }
    kreq_begin_response(rq);
    kafka_join_group_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
}

int kafka_h_join_group(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_join_group_req_t req;
    if (kafka_join_group_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    int n = req.protocols_n > 0 ? req.protocols_n : 0;
    group_proto_t *protos = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *protos);
    for (int i = 0; i < n; i++)
        protos[i] = (group_proto_t){GS(req.protocols[i].name), req.protocols[i].metadata.p,
                                    req.protocols[i].metadata.len};
    group_join_req_t jr = {0};
    jr.group_id = GS(req.group_id);
    jr.member_id = GS(req.member_id);
    jr.instance_id = GS(req.group_instance_id);
    jr.protocol_type = GS(req.protocol_type);
    jr.client_id = GS(rq->hdr.client_id);
    const char *host = kreq_client_host(rq);
    jr.client_host = (group_str_t){host, (int32_t)strlen(host)};
    jr.session_ms = req.session_timeout_ms;
    /* v0 has no rebalance timeout: Kafka uses the session timeout. */
    jr.rebalance_ms = req.rebalance_timeout_ms > 0 ? req.rebalance_timeout_ms : req.session_timeout_ms;
    jr.require_known_member = v >= 4;
    jr.protos = protos;
    jr.nprotos = n;
    group_join(broker_groups(b), &jr, join_done, rq);
    return 0;
}

/* ---- SyncGroup ---- */

static void sync_done(void *ctx, int16_t error, const char *ptype, const char *pname, const uint8_t *assign,
                      int32_t len)
{
    kreq_t *rq = ctx;
    kafka_sync_group_resp_t resp;
    kafka_sync_group_resp_init(&resp);
    resp.error_code = error;
    resp.protocol_type = ks(ptype);
    resp.protocol_name = ks(pname);
    resp.assignment = (kbytes_t){assign ? assign : (const uint8_t *)"", assign ? len : 0};
    kreq_begin_response(rq);
    kafka_sync_group_resp_encode(&rq->resp, rq->hdr.api_version, &resp);
    kreq_done(rq);
}

int kafka_h_sync_group(broker_t *b, kreq_t *rq)
{
    kafka_sync_group_req_t req;
    if (kafka_sync_group_req_decode(&rq->body, rq->hdr.api_version, &rq->arena, &req) < 0) return HE_MALFORMED;
    int n = req.assignments_n > 0 ? req.assignments_n : 0;
    group_assignment_t *as = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *as);
    for (int i = 0; i < n; i++)
        as[i] = (group_assignment_t){GS(req.assignments[i].member_id), req.assignments[i].assignment.p,
                                     req.assignments[i].assignment.len};
    group_sync_req_t sr = {GS(req.group_id), GS(req.member_id), GS(req.group_instance_id), GS(req.protocol_type),
                           GS(req.protocol_name), req.generation_id, as, n};
    group_sync(broker_groups(b), &sr, sync_done, rq);
    return 0;
}

/* ---- Heartbeat, LeaveGroup ---- */

int kafka_h_heartbeat(broker_t *b, kreq_t *rq)
{
    kafka_heartbeat_req_t req;
    if (kafka_heartbeat_req_decode(&rq->body, rq->hdr.api_version, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_heartbeat_resp_t resp;
    kafka_heartbeat_resp_init(&resp);
    resp.error_code = group_heartbeat(broker_groups(b), GS(req.group_id), req.generation_id, GS(req.member_id),
                                      GS(req.group_instance_id));
    kreq_begin_response(rq);
    kafka_heartbeat_resp_encode(&rq->resp, rq->hdr.api_version, &resp);
    kreq_done(rq);
    return 0;
}

int kafka_h_leave_group(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_leave_group_req_t req;
    if (kafka_leave_group_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_leave_group_resp_t resp;
    kafka_leave_group_resp_init(&resp);
    group_coord_t *c = broker_groups(b);
    if (v < 3) {
        resp.error_code = group_leave(c, GS(req.group_id), GS(req.member_id), (group_str_t){NULL, -1});
    } else {
        int32_t n = req.members_n > 0 ? req.members_n : 0;
        resp.members_n = n;
        resp.members = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *resp.members);
        for (int32_t i = 0; i < n; i++) {
            kafka_leave_group_resp_member_response_t *mr = &resp.members[i];
            kafka_leave_group_resp_member_response_init(mr);
            mr->member_id = req.members[i].member_id;
            mr->group_instance_id = req.members[i].group_instance_id;
            mr->error_code =
                group_leave(c, GS(req.group_id), GS(req.members[i].member_id), GS(req.members[i].group_instance_id));
        }
    }
    kreq_begin_response(rq);
    kafka_leave_group_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
    return 0;
}

/* ---- OffsetCommit ---- */

typedef struct {
    pwaiter_t w;
    kreq_t *rq;
    kafka_offset_commit_resp_t resp;
} commit_state_t;

static void commit_finish(commit_state_t *st)
{
    kreq_t *rq = st->rq;
    kreq_begin_response(rq);
    kafka_offset_commit_resp_encode(&rq->resp, rq->hdr.api_version, &st->resp);
    kreq_done(rq);
}

static void commit_durable(pwaiter_t *w, int status)
{
    commit_state_t *st = (commit_state_t *)w;
    if (status < 0) {
        int16_t err = kafka_error_from(status);
        for (int32_t i = 0; i < st->resp.topics_n; i++)
            for (int32_t j = 0; j < st->resp.topics[i].partitions_n; j++)
                if (!st->resp.topics[i].partitions[j].error_code) st->resp.topics[i].partitions[j].error_code = err;
    }
    commit_finish(st);
}

int kafka_h_offset_commit(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_offset_commit_req_t req;
    if (kafka_offset_commit_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    group_coord_t *c = broker_groups(b);
    commit_state_t *st = arena_calloc(&rq->arena, 1, sizeof *st);
    st->rq = rq;
    kafka_offset_commit_resp_init(&st->resp);
    int16_t gerr = group_commit_check(c, GS(req.group_id), req.generation_id, GS(req.member_id),
                                      GS(req.group_instance_id));
    int32_t nt = req.topics_n > 0 ? req.topics_n : 0;
    st->resp.topics_n = nt;
    st->resp.topics = arena_calloc(&rq->arena, (size_t)(nt ? nt : 1), sizeof *st->resp.topics);
    int64_t target = 0;
    for (int32_t i = 0; i < nt; i++) {
        kafka_offset_commit_req_topic_t *rt = &req.topics[i];
        kafka_offset_commit_resp_topic_t *t = &st->resp.topics[i];
        kafka_offset_commit_resp_topic_init(t);
        t->name = rt->name;
        int32_t np = rt->partitions_n > 0 ? rt->partitions_n : 0;
        t->partitions_n = np;
        t->partitions = arena_calloc(&rq->arena, (size_t)(np ? np : 1), sizeof *t->partitions);
        topic_t *topic = rt->name.len > 0 ? broker_topic_find(b, rt->name.p, (size_t)rt->name.len) : NULL;
        for (int32_t j = 0; j < np; j++) {
            kafka_offset_commit_req_partition_t *rp = &rt->partitions[j];
            kafka_offset_commit_resp_partition_t *p = &t->partitions[j];
            kafka_offset_commit_resp_partition_init(p);
            p->partition_index = rp->partition_index;
            if (gerr) {
                p->error_code = gerr;
                continue;
            }
            if (!topic || !topic_partition(topic, rp->partition_index)) {
                p->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (rp->committed_metadata.len > OFFSET_METADATA_MAX) {
                p->error_code = KERR_OFFSET_METADATA_TOO_LARGE;
                continue;
            }
            int64_t tg = 0;
            int rc = group_commit(c, GS(req.group_id), GS(rt->name), rp->partition_index, rp->committed_offset,
                                  v >= 6 ? rp->committed_leader_epoch : -1, GS(rp->committed_metadata), &tg);
            if (rc < 0) p->error_code = kafka_error_from(rc);
            else if (tg > target) target = tg;
        }
    }
    if (target > 0) {
        st->w.target = target;
        st->w.cb = commit_durable;
        if (group_offsets_wait(c, &st->w) == 0) return 0;
    }
    commit_finish(st);
    return 0;
}

/* ---- OffsetFetch ---- */

typedef struct fetch_entry {
    const char *topic;
    int32_t part;
    int64_t offset;
    int32_t epoch;
    kstr_t meta;
} fetch_entry_t;

typedef struct {
    arena_t *a;
    fetch_entry_t *e;
    int n, cap;
} fetch_all_t;

static void collect_offset(void *ctx, const char *topic, int32_t part, int64_t offset, int32_t epoch,
                           group_str_t meta)
{
    fetch_all_t *fa = ctx;
    if (fa->n == fa->cap) {
        int cap = fa->cap ? fa->cap * 2 : 16;
        fetch_entry_t *e = arena_alloc(fa->a, (size_t)cap * sizeof *e);
        if (fa->n) memcpy(e, fa->e, (size_t)fa->n * sizeof *e);
        fa->e = e;
        fa->cap = cap;
    }
    fetch_entry_t *e = &fa->e[fa->n++];
    e->topic = arena_strndup(fa->a, topic, strlen(topic));
    e->part = part;
    e->offset = offset;
    e->epoch = epoch;
    e->meta = meta.len < 0 ? KSTR_NULL : (kstr_t){arena_strndup(fa->a, meta.p, (size_t)meta.len), meta.len};
}

/* One group's answer, in the v8 group layout (the v0-7 structs have the
 * same fields and are copied from it). */
static void fetch_group(broker_t *b, kreq_t *rq, kstr_t gid, const kafka_offset_fetch_req_group_topic_t *topics,
                        int32_t ntopics, kafka_offset_fetch_resp_group_t *out)
{
    group_coord_t *c = broker_groups(b);
    kafka_offset_fetch_resp_group_init(out);
    out->group_id = gid;
    if (ntopics >= 0) {
        out->topics_n = ntopics;
        out->topics = arena_calloc(&rq->arena, (size_t)(ntopics ? ntopics : 1), sizeof *out->topics);
        for (int32_t i = 0; i < ntopics; i++) {
            kafka_offset_fetch_resp_group_topic_t *t = &out->topics[i];
            kafka_offset_fetch_resp_group_topic_init(t);
            t->name = topics[i].name;
            int32_t np = topics[i].partition_indexes_n > 0 ? topics[i].partition_indexes_n : 0;
            t->partitions_n = np;
            t->partitions = arena_calloc(&rq->arena, (size_t)(np ? np : 1), sizeof *t->partitions);
            for (int32_t j = 0; j < np; j++) {
                kafka_offset_fetch_resp_group_partition_t *p = &t->partitions[j];
                kafka_offset_fetch_resp_group_partition_init(p);
                p->partition_index = topics[i].partition_indexes[j];
                int64_t off;
                int32_t epoch;
                group_str_t meta;
                if (group_offset_get(c, GS(gid), GS(t->name), p->partition_index, &off, &epoch, &meta)) {
                    p->committed_offset = off;
                    p->committed_leader_epoch = epoch;
                    p->metadata = meta.len < 0 ? KSTR("")
                                               : (kstr_t){arena_strndup(&rq->arena, meta.p, (size_t)meta.len), meta.len};
                } else {
                    p->committed_offset = -1;
                    p->committed_leader_epoch = -1;
                    p->metadata = KSTR("");
                }
            }
        }
        return;
    }
    /* Null topics: everything committed for the group, grouped by topic. */
    fetch_all_t fa = {&rq->arena, NULL, 0, 0};
    group_offsets_each(c, GS(gid), collect_offset, &fa);
    out->topics = arena_calloc(&rq->arena, (size_t)(fa.n ? fa.n : 1), sizeof *out->topics);
    out->topics_n = 0;
    for (int i = 0; i < fa.n; i++) {
        kafka_offset_fetch_resp_group_topic_t *t = NULL;
        for (int32_t k = 0; k < out->topics_n; k++)
            if (strcmp(out->topics[k].name.p, fa.e[i].topic) == 0) t = &out->topics[k];
        if (!t) {
            t = &out->topics[out->topics_n++];
            kafka_offset_fetch_resp_group_topic_init(t);
            t->name = KSTR(fa.e[i].topic);
            t->partitions = arena_calloc(&rq->arena, (size_t)fa.n, sizeof *t->partitions);
            t->partitions_n = 0;
        }
        kafka_offset_fetch_resp_group_partition_t *p = &t->partitions[t->partitions_n++];
        kafka_offset_fetch_resp_group_partition_init(p);
        p->partition_index = fa.e[i].part;
        p->committed_offset = fa.e[i].offset;
        p->committed_leader_epoch = fa.e[i].epoch;
        p->metadata = fa.e[i].meta.len < 0 ? KSTR("") : fa.e[i].meta;
    }
}

int kafka_h_offset_fetch(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_offset_fetch_req_t req;
    if (kafka_offset_fetch_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_offset_fetch_resp_t resp;
    kafka_offset_fetch_resp_init(&resp);
    if (v >= 8) {
        int32_t ng = req.groups_n > 0 ? req.groups_n : 0;
        resp.groups_n = ng;
        resp.groups = arena_calloc(&rq->arena, (size_t)(ng ? ng : 1), sizeof *resp.groups);
        for (int32_t i = 0; i < ng; i++)
            fetch_group(b, rq, req.groups[i].group_id, req.groups[i].topics, req.groups[i].topics_n,
                        &resp.groups[i]);
    } else {
        /* The v0-7 topic struct has the same layout as the v8 group one. */
        int32_t nt = req.topics_n;
        kafka_offset_fetch_req_group_topic_t *topics = NULL;
        if (nt > 0) {
            topics = arena_calloc(&rq->arena, (size_t)nt, sizeof *topics);
            for (int32_t i = 0; i < nt; i++)
                topics[i] = (kafka_offset_fetch_req_group_topic_t){req.topics[i].name, req.topics[i].partition_indexes,
                                                                   req.topics[i].partition_indexes_n};
        }
        kafka_offset_fetch_resp_group_t g;
        fetch_group(b, rq, req.group_id, topics, nt < 0 ? -1 : nt, &g);
        resp.error_code = g.error_code;
        resp.topics_n = g.topics_n;
        resp.topics = arena_calloc(&rq->arena, (size_t)(g.topics_n > 0 ? g.topics_n : 1), sizeof *resp.topics);
        for (int32_t i = 0; i < g.topics_n; i++) {
            kafka_offset_fetch_resp_topic_t *t = &resp.topics[i];
            kafka_offset_fetch_resp_topic_init(t);
            t->name = g.topics[i].name;
            t->partitions_n = g.topics[i].partitions_n;
            t->partitions = arena_calloc(&rq->arena, (size_t)(t->partitions_n > 0 ? t->partitions_n : 1),
                                         sizeof *t->partitions);
            for (int32_t j = 0; j < t->partitions_n; j++) {
                kafka_offset_fetch_resp_partition_t *p = &t->partitions[j];
                const kafka_offset_fetch_resp_group_partition_t *gp = &g.topics[i].partitions[j];
                kafka_offset_fetch_resp_partition_init(p);
                p->partition_index = gp->partition_index;
                p->committed_offset = gp->committed_offset;
                p->committed_leader_epoch = gp->committed_leader_epoch;
                p->metadata = gp->metadata;
                p->error_code = gp->error_code;
            }
        }
    }
    kreq_begin_response(rq);
    kafka_offset_fetch_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
    return 0;
}

/* ---- ListGroups, DescribeGroups, DeleteGroups ---- */

int kafka_h_list_groups(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_list_groups_req_t req;
    if (kafka_list_groups_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    group_coord_t *c = broker_groups(b);
    int n = 0;
    for (group_t *g = group_first(c); g; g = group_next(g)) n++;
    kafka_list_groups_resp_t resp;
    kafka_list_groups_resp_init(&resp);
    resp.groups = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *resp.groups);
    resp.groups_n = 0;
    for (group_t *g = group_first(c); g; g = group_next(g)) {
        const char *state = group_state_name(group_state(g));
        if (v >= 4 && req.states_filter_n > 0) {
            int match = 0;
            for (int32_t i = 0; i < req.states_filter_n && !match; i++)
                match = req.states_filter[i].len == (int32_t)strlen(state) &&
                        strncasecmp(req.states_filter[i].p, state, strlen(state)) == 0;
            if (!match) continue;
        }
        kafka_list_groups_resp_listed_group_t *lg = &resp.groups[resp.groups_n++];
        kafka_list_groups_resp_listed_group_init(lg);
        lg->group_id = KSTR(group_id(g));
        lg->protocol_type = KSTR(group_protocol_type(g));
        lg->group_state = KSTR(state);
    }
    kreq_begin_response(rq);
    kafka_list_groups_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
    return 0;
}

int kafka_h_describe_groups(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_describe_groups_req_t req;
    if (kafka_describe_groups_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    group_coord_t *c = broker_groups(b);
    int32_t n = req.groups_n > 0 ? req.groups_n : 0;
    kafka_describe_groups_resp_t resp;
    kafka_describe_groups_resp_init(&resp);
    resp.groups_n = n;
    resp.groups = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *resp.groups);
    for (int32_t i = 0; i < n; i++) {
        kafka_describe_groups_resp_described_group_t *d = &resp.groups[i];
        kafka_describe_groups_resp_described_group_init(d);
        d->group_id = req.groups[i];
        d->protocol_type = KSTR("");
        d->protocol_data = KSTR("");
        d->members_n = 0;
        d->members = arena_calloc(&rq->arena, 1, sizeof *d->members);
        group_t *g = group_find(c, GS(req.groups[i]));
        if (!g) {
            /* Kafka describes an unknown group as Dead, without an error. */
            d->group_state = KSTR("Dead");
            continue;
        }
        d->group_state = KSTR(group_state_name(group_state(g)));
        d->protocol_type = KSTR(group_protocol_type(g));
        d->protocol_data = KSTR(group_protocol(g));
        int nm = group_member_count(g);
        group_member_info_t *mi = arena_calloc(&rq->arena, (size_t)(nm ? nm : 1), sizeof *mi);
        nm = group_members(g, mi, nm);
        d->members = arena_calloc(&rq->arena, (size_t)(nm ? nm : 1), sizeof *d->members);
        d->members_n = nm;
        for (int j = 0; j < nm; j++) {
            kafka_describe_groups_resp_described_group_member_t *m = &d->members[j];
            kafka_describe_groups_resp_described_group_member_init(m);
            m->member_id = KSTR(mi[j].member_id);
            m->group_instance_id = ks(mi[j].instance_id);
            m->client_id = KSTR(mi[j].client_id);
            m->client_host = KSTR(mi[j].client_host);
            m->member_metadata = (kbytes_t){mi[j].meta, mi[j].meta_len};
            m->member_assignment = (kbytes_t){mi[j].assign, mi[j].assign_len};
        }
    }
    kreq_begin_response(rq);
    kafka_describe_groups_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
    return 0;
}

typedef struct {
    pwaiter_t w;
    kreq_t *rq;
    kafka_delete_groups_resp_t resp;
} delete_state_t;

static void delete_finish(delete_state_t *st)
{
    kreq_begin_response(st->rq);
    kafka_delete_groups_resp_encode(&st->rq->resp, st->rq->hdr.api_version, &st->resp);
    kreq_done(st->rq);
}

static void delete_durable(pwaiter_t *w, int status)
{
    delete_state_t *st = (delete_state_t *)w;
    if (status < 0)
        for (int32_t i = 0; i < st->resp.results_n; i++)
            if (!st->resp.results[i].error_code) st->resp.results[i].error_code = kafka_error_from(status);
    delete_finish(st);
}

int kafka_h_delete_groups(broker_t *b, kreq_t *rq)
{
    kafka_delete_groups_req_t req;
    if (kafka_delete_groups_req_decode(&rq->body, rq->hdr.api_version, &rq->arena, &req) < 0) return HE_MALFORMED;
    group_coord_t *c = broker_groups(b);
    delete_state_t *st = arena_calloc(&rq->arena, 1, sizeof *st);
    st->rq = rq;
    kafka_delete_groups_resp_init(&st->resp);
    int32_t n = req.groups_names_n > 0 ? req.groups_names_n : 0;
    st->resp.results_n = n;
    st->resp.results = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *st->resp.results);
    int64_t target = 0;
    for (int32_t i = 0; i < n; i++) {
        kafka_delete_groups_resp_deletable_group_result_t *r = &st->resp.results[i];
        kafka_delete_groups_resp_deletable_group_result_init(r);
        r->group_id = req.groups_names[i];
        int64_t tg = 0;
        r->error_code = group_delete(c, GS(req.groups_names[i]), &tg);
        if (tg > target) target = tg;
    }
    if (target > 0) {
        st->w.target = target;
        st->w.cb = delete_durable;
        if (group_offsets_wait(c, &st->w) == 0) return 0;
    }
    delete_finish(st);
    return 0;
}
