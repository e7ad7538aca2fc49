/*
 * Topic administration: CreateTopics, DeleteTopics, CreatePartitions,
 * DeleteRecords. Responses that change the catalog are sent after the
 * catalog change is durable (broker_catalog_wait).
 */
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "kafka/errors.h"
#include "kafka/handlers.h"

/* ---- answering after the catalog is durable ---- */

typedef struct {
    pwaiter_t w;
    kreq_t *rq;
    void *resp;
    kafka_encode_fn encode;
} catalog_wait_t;

static void answer(kreq_t *rq, void *resp, kafka_encode_fn encode)
{
    kreq_begin_response(rq);
    encode(rq, resp);
    kreq_done(rq);
}

static void on_catalog_durable(pwaiter_t *w, int status)
{
    catalog_wait_t *cw = (catalog_wait_t *)w;
    if (status < 0) LOG_W("catalog sync failed: %s", herald_strerror(status));
    answer(cw->rq, cw->resp, cw->encode);
}

void kafka_answer_after_catalog(broker_t *b, kreq_t *rq, void *resp, kafka_encode_fn encode)
{
    catalog_wait_t *cw = arena_alloc(&rq->arena, sizeof *cw);
    cw->rq = rq;
    cw->resp = resp;
    cw->encode = encode;
    cw->w.cb = on_catalog_durable;
    if (broker_catalog_wait(b, &cw->w)) answer(rq, resp, encode);
}

static kstr_t cstr(const char *s) { return (kstr_t){s, (int32_t)strlen(s)}; }

static char *dupz(kreq_t *rq, kstr_t s)
{
    return s.len < 0 ? NULL : arena_strndup(&rq->arena, s.p, (size_t)s.len);
}

/* ---- CreateTopics ---- */

static void enc_create_topics(kreq_t *rq, void *resp)
{
    kafka_create_topics_resp_encode(&rq->resp, rq->hdr.api_version, resp);
}

int kafka_h_create_topics(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_create_topics_req_t req;
    if (kafka_create_topics_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_create_topics_resp_t *resp = arena_alloc(&rq->arena, sizeof *resp);
    int32_t n = req.topics_n > 0 ? req.topics_n : 0;
    resp->topics_n = n;
    resp->topics = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *resp->topics);
    for (int32_t i = 0; i < n; i++) {
        kafka_create_topics_req_creatable_topic_t *ct = &req.topics[i];
        kafka_create_topics_resp_creatable_topic_result_t *r = &resp->topics[i];
        r->name = ct->name;
        r->error_message = KSTR_NULL;
        r->num_partitions = -1;
        r->replication_factor = -1;
        r->configs_n = -1;
        int32_t np = ct->num_partitions;
        if (np == -1) np = ct->assignments_n > 0 ? ct->assignments_n : broker_config(b)->num_partitions;
        if (ct->replication_factor != -1 && ct->replication_factor != 1) {
            r->error_code = KERR_INVALID_REPLICATION_FACTOR;
            r->error_message = cstr("Herald is a single node: replication factor must be 1");
            continue;
        }
        if (np < 1) {
            r->error_code = KERR_INVALID_PARTITIONS;
            r->error_message = cstr("number of partitions must be at least 1");
            continue;
        }
        if (broker_topic_name_valid(ct->name.p, ct->name.len > 0 ? (size_t)ct->name.len : 0) < 0) {
            r->error_code = KERR_INVALID_TOPIC_EXCEPTION;
            r->error_message = cstr("topic names are 1-249 characters of [a-zA-Z0-9._-]");
            continue;
        }
        if (broker_topic_find(b, ct->name.p, (size_t)ct->name.len)) {
            r->error_code = KERR_TOPIC_ALREADY_EXISTS;
            r->error_message = cstr("topic already exists");
            continue;
        }
        int32_t nc = ct->configs_n > 0 ? ct->configs_n : 0;
        topic_kv_t *kv = arena_calloc(&rq->arena, (size_t)(nc ? nc : 1), sizeof *kv);
        int bad = 0;
        for (int32_t k = 0; k < nc; k++) {
            kv[k].key = dupz(rq, ct->configs[k].name);
            kv[k].value = dupz(rq, ct->configs[k].value);
            if (!kv[k].key || !kv[k].value || broker_topic_config_valid(kv[k].key, kv[k].value) < 0) {
                r->error_code = KERR_INVALID_CONFIG;
                r->error_message = cstr("unknown or unsupported topic config");
                bad = 1;
                break;
            }
        }
        if (bad) continue;
        r->num_partitions = np;
        r->replication_factor = 1;
        if (req.validate_only) continue;
        topic_t *t = NULL;
        int rc = broker_topic_create(b, ct->name.p, (size_t)ct->name.len, np, kv, (size_t)nc, &t, NULL);
        if (rc < 0) {
            r->error_code = kafka_error_from(rc);
            if (rc == HE_NOT_FOUND || rc == HE_UNSUPPORTED) r->error_code = KERR_INVALID_CONFIG;
            continue;
        }
        memcpy(r->topic_id.b, topic_id(t), 16);
        r->configs_n = 0;
    }
    kafka_answer_after_catalog(b, rq, resp, enc_create_topics);
    return 0;
}

/* ---- DeleteTopics ---- */

static void enc_delete_topics(kreq_t *rq, void *resp)
{
    kafka_delete_topics_resp_encode(&rq->resp, rq->hdr.api_version, resp);
}

static topic_t *find_by_id(broker_t *b, const kuuid_t *id)
{
    for (topic_t *t = broker_topic_first(b); t; t = topic_next(t))
        if (!memcmp(topic_id(t), id->b, 16)) return t;
    return NULL;
}

int kafka_h_delete_topics(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_delete_topics_req_t req;
    if (kafka_delete_topics_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_delete_topics_resp_t *resp = arena_alloc(&rq->arena, sizeof *resp);
    int32_t n = v >= 6 ? req.topics_n : req.topic_names_n;
    if (n < 0) n = 0;
    resp->responses_n = n;
    resp->responses = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *resp->responses);
    for (int32_t i = 0; i < n; i++) {
        kafka_delete_topics_resp_deletable_topic_result_t *r = &resp->responses[i];
        r->error_message = KSTR_NULL;
        topic_t *t;
        if (v >= 6 && req.topics[i].name.len < 0) {
            r->topic_id = req.topics[i].topic_id;
            r->name = KSTR_NULL;
            t = find_by_id(b, &req.topics[i].topic_id);
            if (t) r->name = cstr(arena_strndup(&rq->arena, topic_name(t), strlen(topic_name(t))));
            if (!t) {
                r->error_code = KERR_UNKNOWN_TOPIC_ID;
                continue;
            }
        } else {
            kstr_t name = v >= 6 ? req.topics[i].name : req.topic_names[i];
            r->name = name;
            t = broker_topic_find(b, name.p, name.len > 0 ? (size_t)name.len : 0);
            if (!t) {
                r->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            memcpy(r->topic_id.b, topic_id(t), 16);
        }
        int rc = broker_topic_delete(b, t);
        if (rc < 0) r->error_code = kafka_error_from(rc);
    }
    kafka_answer_after_catalog(b, rq, resp, enc_delete_topics);
    return 0;
}

/* ---- CreatePartitions ---- */

static void enc_create_partitions(kreq_t *rq, void *resp)
{
    kafka_create_partitions_resp_encode(&rq->resp, rq->hdr.api_version, resp);
}

int kafka_h_create_partitions(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_create_partitions_req_t req;
    if (kafka_create_partitions_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_create_partitions_resp_t *resp = arena_alloc(&rq->arena, sizeof *resp);
    int32_t n = req.topics_n > 0 ? req.topics_n : 0;
    resp->results_n = n;
    resp->results = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *resp->results);
    for (int32_t i = 0; i < n; i++) {
        kafka_create_partitions_req_create_partitions_topic_t *ct = &req.topics[i];
        kafka_create_partitions_resp_create_partitions_topic_result_t *r = &resp->results[i];
        r->name = ct->name;
        r->error_message = KSTR_NULL;
        topic_t *t = broker_topic_find(b, ct->name.p, ct->name.len > 0 ? (size_t)ct->name.len : 0);
        if (!t) {
            r->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        if (ct->count <= topic_partition_count(t)) {
            r->error_code = KERR_INVALID_PARTITIONS;
            r->error_message = cstr("the partition count can only grow");
            continue;
        }
        if (req.validate_only) continue;
        int rc = broker_topic_add_partitions(b, t, ct->count);
        if (rc < 0) r->error_code = rc == HE_OUT_OF_RANGE ? KERR_INVALID_PARTITIONS : kafka_error_from(rc);
    }
    kafka_answer_after_catalog(b, rq, resp, enc_create_partitions);
    return 0;
}

/* ---- DeleteRecords ---- */

int kafka_h_delete_records(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_delete_records_req_t req;
    if (kafka_delete_records_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_delete_records_resp_t resp;
    memset(&resp, 0, sizeof resp);
    int32_t n = req.topics_n > 0 ? req.topics_n : 0;
    resp.topics_n = n;
    resp.topics = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *resp.topics);
    for (int32_t i = 0; i < n; i++) {
        kafka_delete_records_req_delete_records_topic_t *dt = &req.topics[i];
        kafka_delete_records_resp_delete_records_topic_result_t *r = &resp.topics[i];
        r->name = dt->name;
        int32_t np = dt->partitions_n > 0 ? dt->partitions_n : 0;
        r->partitions_n = np;
        r->partitions = arena_calloc(&rq->arena, (size_t)(np ? np : 1), sizeof *r->partitions);
        topic_t *t = broker_topic_find(b, dt->name.p, dt->name.len > 0 ? (size_t)dt->name.len : 0);
        for (int32_t j = 0; j < np; j++) {
            r->partitions[j].partition_index = dt->partitions[j].partition_index;
            r->partitions[j].low_watermark = -1;
            partition_t *p = t ? topic_partition(t, dt->partitions[j].partition_index) : NULL;
            if (!p) {
                r->partitions[j].error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            int64_t off = dt->partitions[j].offset;
            if (off == -1) off = partition_high_watermark(p); /* -1: up to the high watermark */
            int rc = partition_delete_before(b, p, off);
            r->partitions[j].error_code = kafka_error_from(rc);
            r->partitions[j].low_watermark = partition_start_offset(p);
        }
    }
    kreq_begin_response(rq);
    kafka_delete_records_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
    return 0;
}

/* ---- InitProducerId ---- */

static void enc_init_pid(kreq_t *rq, void *resp)
{
    kafka_init_producer_id_resp_encode(&rq->resp, rq->hdr.api_version, resp);
}

int kafka_h_init_producer_id(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_init_producer_id_req_t req;
    if (kafka_init_producer_id_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_init_producer_id_resp_t *resp = arena_alloc(&rq->arena, sizeof *resp);
    resp->producer_id = -1;
    resp->producer_epoch = -1;
    if (req.transactional_id.len >= 0) {
        /* Transactions arrive with the exactly-once milestone. */
        resp->error_code = KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    } else if (v >= 3 && req.producer_id >= 0) {
        /* KIP-360: an idempotent producer bumping its epoch keeps its id. */
        resp->producer_id = req.producer_id;
        resp->producer_epoch = (int16_t)(req.producer_epoch + 1);
        if (resp->producer_epoch < 0) {
            int64_t pid;
            int rc = broker_next_producer_id(b, &pid);
            resp->error_code = kafka_error_from(rc);
            resp->producer_id = rc < 0 ? -1 : pid;
            resp->producer_epoch = rc < 0 ? -1 : 0;
        }
    } else {
        int64_t pid;
        int rc = broker_next_producer_id(b, &pid);
        resp->error_code = kafka_error_from(rc);
        if (rc == 0) {
            resp->producer_id = pid;
            resp->producer_epoch = 0;
        }
    }
    kafka_answer_after_catalog(b, rq, resp, enc_init_pid);
    return 0;
}
