/*
 * DescribeConfigs, AlterConfigs, IncrementalAlterConfigs for topics
 * (resource type 2) and, read-only, the broker (resource type 4).
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "kafka/errors.h"
#include "kafka/handlers.h"

#define RES_TOPIC 2
#define RES_BROKER 4
/* DescribeConfigs config_source values */
#define SRC_TOPIC 1
#define SRC_STATIC_BROKER 4
#define SRC_DEFAULT 5
/* config_type values (v3+) */
#define TYPE_STRING 2
#define TYPE_LONG 5
#define TYPE_BOOLEAN 1
#define TYPE_LIST 7

static kstr_t cstr(const char *s) { return (kstr_t){s, (int32_t)strlen(s)}; }

static int8_t config_type(const char *key)
{
    if (!strcmp(key, "cleanup.policy")) return TYPE_LIST;
    if (!strcmp(key, "compression.type") || !strcmp(key, "message.timestamp.type")) return TYPE_STRING;
    if (!strcmp(key, "unclean.leader.election.enable")) return TYPE_BOOLEAN;
    return TYPE_LONG;
}

static int wanted(const kafka_describe_configs_req_describe_configs_resource_t *r, const char *key)
{
    if (r->configuration_keys_n < 0) return 1;
    for (int32_t i = 0; i < r->configuration_keys_n; i++) {
        kstr_t k = r->configuration_keys[i];
        if (k.len == (int32_t)strlen(key) && !memcmp(k.p, key, (size_t)k.len)) return 1;
    }
    return 0;
}

static void describe_topic(broker_t *b, kreq_t *rq, const kafka_describe_configs_req_describe_configs_resource_t *r,
                           kafka_describe_configs_resp_describe_configs_result_t *out)
{
    topic_t *t = broker_topic_find(b, r->resource_name.p, r->resource_name.len > 0 ? (size_t)r->resource_name.len : 0);
    if (!t) {
        out->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        out->error_message = cstr("unknown topic");
        return;
    }
    int n = 0;
    while (topic_config_keys[n]) n++;
    out->configs = arena_calloc(&rq->arena, (size_t)n, sizeof *out->configs);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *key = topic_config_keys[i];
        if (!wanted(r, key)) continue;
        char buf[64];
        int is_default;
        const char *val = topic_config_get(t, b, key, buf, sizeof buf, &is_default);
        kafka_describe_configs_resp_describe_configs_resource_result_t *c = &out->configs[k++];
        c->name = cstr(key);
        c->value = cstr(arena_strndup(&rq->arena, val, strlen(val)));
        c->read_only = 0;
        c->is_default = is_default;
        c->config_source = is_default ? SRC_DEFAULT : SRC_TOPIC;
        c->is_sensitive = 0;
        c->synonyms_n = 0;
        c->config_type = config_type(key);
        c->documentation = KSTR_NULL;
    }
    out->configs_n = k;
}

static void describe_broker(broker_t *b, kreq_t *rq, const kafka_describe_configs_req_describe_configs_resource_t *r,
                            kafka_describe_configs_resp_describe_configs_result_t *out)
{
    /* Broker defaults for the topic-level keys, read-only here. */
    int n = 0;
    while (topic_config_keys[n]) n++;
    out->configs = arena_calloc(&rq->arena, (size_t)n, sizeof *out->configs);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *key = topic_config_keys[i];
        if (!wanted(r, key)) continue;
        char buf[64];
        int is_default;
        const char *val = topic_config_get(NULL, b, key, buf, sizeof buf, &is_default);
        kafka_describe_configs_resp_describe_configs_resource_result_t *c = &out->configs[k++];
        c->name = cstr(key);
        c->value = cstr(arena_strndup(&rq->arena, val, strlen(val)));
        c->read_only = 1;
        c->is_default = 1;
        c->config_source = SRC_STATIC_BROKER;
        c->synonyms_n = 0;
        c->config_type = config_type(key);
        c->documentation = KSTR_NULL;
    }
    out->configs_n = k;
}

int kafka_h_describe_configs(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_describe_configs_req_t req;
    if (kafka_describe_configs_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_describe_configs_resp_t resp;
    memset(&resp, 0, sizeof resp);
    int32_t n = req.resources_n > 0 ? req.resources_n : 0;
    resp.results_n = n;
    resp.results = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *resp.results);
    for (int32_t i = 0; i < n; i++) {
        const kafka_describe_configs_req_describe_configs_resource_t *r = &req.resources[i];
        kafka_describe_configs_resp_describe_configs_result_t *out = &resp.results[i];
        out->resource_type = r->resource_type;
        out->resource_name = r->resource_name;
        out->error_message = KSTR_NULL;
        if (r->resource_type == RES_TOPIC) {
            describe_topic(b, rq, r, out);
        } else if (r->resource_type == RES_BROKER) {
            describe_broker(b, rq, r, out);
        } else {
            out->error_code = KERR_INVALID_REQUEST;
            out->error_message = cstr("only topic and broker resources have configs");
        }
    }
    kreq_begin_response(rq);
    kafka_describe_configs_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
    return 0;
}

/* Applies (or validates) configs on a topic resource. Returns a Kafka error. */
static int16_t alter_topic(broker_t *b, kreq_t *rq, kstr_t name, topic_kv_t *kv, size_t n, int replace, int validate,
                           kstr_t *msg)
{
    topic_t *t = broker_topic_find(b, name.p, name.len > 0 ? (size_t)name.len : 0);
    if (!t) return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    for (size_t i = 0; i < n; i++) {
        if (kv[i].value && broker_topic_config_valid(kv[i].key, kv[i].value) < 0) {
            char *m = arena_alloc(&rq->arena, 300);
            snprintf(m, 300, "invalid or unsupported value for %s", kv[i].key);
            *msg = cstr(m);
            return KERR_INVALID_CONFIG;
        }
    }
    if (validate) return KERR_NONE;
    int rc = broker_topic_set_configs(b, t, kv, n, replace, NULL);
    return rc < 0 ? KERR_INVALID_CONFIG : KERR_NONE;
}

/* The response prefix both alter APIs share: only topics are alterable.
 * Returns KERR_NONE or the error (with *msg set). */
static int16_t topic_resource(int8_t type, kstr_t *msg)
{
    *msg = KSTR_NULL;
    if (type == RES_TOPIC) return KERR_NONE;
    *msg = cstr("only topic configs can be altered");
    return KERR_INVALID_REQUEST;
}

static void enc_alter_configs(kreq_t *rq, void *resp)
{
    kafka_alter_configs_resp_encode(&rq->resp, rq->hdr.api_version, resp);
}

static void enc_incremental_alter_configs(kreq_t *rq, void *resp)
{
    kafka_incremental_alter_configs_resp_encode(&rq->resp, rq->hdr.api_version, resp);
}

/* Alter responses are sent once the new configs are durable in the catalog. */
int kafka_h_alter_configs(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_alter_configs_req_t req;
    if (kafka_alter_configs_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_alter_configs_resp_t *resp = arena_alloc(&rq->arena, sizeof *resp);
    int32_t n = req.resources_n > 0 ? req.resources_n : 0;
    resp->responses_n = n;
    resp->responses = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *resp->responses);
    for (int32_t i = 0; i < n; i++) {
        const kafka_alter_configs_req_alter_configs_resource_t *r = &req.resources[i];
        kafka_alter_configs_resp_alter_configs_resource_response_t *out = &resp->responses[i];
        out->resource_type = r->resource_type;
        out->resource_name = r->resource_name;
        if ((out->error_code = topic_resource(r->resource_type, &out->error_message))) continue;
        int32_t nc = r->configs_n > 0 ? r->configs_n : 0;
        topic_kv_t *kv = arena_calloc(&rq->arena, (size_t)(nc ? nc : 1), sizeof *kv);
        for (int32_t k = 0; k < nc; k++) {
            kv[k].key = arena_strndup(&rq->arena, r->configs[k].name.p, (size_t)(r->configs[k].name.len > 0 ? r->configs[k].name.len : 0));
            kv[k].value = r->configs[k].value.len < 0 ? NULL
                          : arena_strndup(&rq->arena, r->configs[k].value.p, (size_t)r->configs[k].value.len);
        }
        out->error_code = alter_topic(b, rq, r->resource_name, kv, (size_t)nc, 1, req.validate_only, &out->error_message);
    }
    kafka_answer_after_catalog(b, rq, resp, enc_alter_configs);
    return 0;
}

int kafka_h_incremental_alter_configs(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_incremental_alter_configs_req_t req;
    if (kafka_incremental_alter_configs_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_incremental_alter_configs_resp_t *resp = arena_alloc(&rq->arena, sizeof *resp);
    int32_t n = req.resources_n > 0 ? req.resources_n : 0;
    resp->responses_n = n;
    resp->responses = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *resp->responses);
    for (int32_t i = 0; i < n; i++) {
        const kafka_incremental_alter_configs_req_alter_configs_resource_t *r = &req.resources[i];
        kafka_incremental_alter_configs_resp_alter_configs_resource_response_t *out = &resp->responses[i];
        out->resource_type = r->resource_type;
        out->resource_name = r->resource_name;
        if ((out->error_code = topic_resource(r->resource_type, &out->error_message))) continue;
        int32_t nc = r->configs_n > 0 ? r->configs_n : 0;
        topic_kv_t *kv = arena_calloc(&rq->arena, (size_t)(nc ? nc : 1), sizeof *kv);
        int bad = 0;
        for (int32_t k = 0; k < nc; k++) {
            const kafka_incremental_alter_configs_req_alterable_config_t *c = &r->configs[k];
            kv[k].key = arena_strndup(&rq->arena, c->name.p, (size_t)(c->name.len > 0 ? c->name.len : 0));
            if (c->config_operation == 0) { /* SET */
                kv[k].value = c->value.len < 0 ? "" : arena_strndup(&rq->arena, c->value.p, (size_t)c->value.len);
            } else if (c->config_operation == 1) { /* DELETE: back to the default */
                kv[k].value = NULL;
            } else { /* APPEND / SUBTRACT apply to list configs only; none is settable here */
                bad = 1;
            }
        }
        if (bad) {
            out->error_code = KERR_INVALID_CONFIG;
            out->error_message = cstr("APPEND/SUBTRACT are not supported for these configs");
            continue;
        }
        out->error_code = alter_topic(b, rq, r->resource_name, kv, (size_t)nc, 0, req.validate_only, &out->error_message);
    }
    kafka_answer_after_catalog(b, rq, resp, enc_incremental_alter_configs);
    return 0;
}
