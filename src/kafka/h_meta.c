/* ApiVersions, Metadata, DescribeCluster, SaslHandshake. */
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "kafka/errors.h"
#include "kafka/handlers.h"

int kafka_h_api_versions(broker_t *b, kreq_t *rq)
{
    (void)b;
    int16_t v = rq->hdr.api_version;
    kafka_api_versions_resp_t resp;
    memset(&resp, 0, sizeof resp);
    resp.finalized_features_epoch = -1;
    if (v > 3) {
        /* KIP-511: answer an unknown version in the v0 format with the
         * error and our ranges, so the client can retry lower. */
        resp.error_code = KERR_UNSUPPORTED_VERSION;
        v = 0;
    } else {
        kafka_api_versions_req_t req;
        if (kafka_api_versions_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    }
    int n;
    const kafka_api_entry_t *e = kafka_api_entries(&n);
    resp.api_keys = arena_calloc(&rq->arena, (size_t)n, sizeof *resp.api_keys);
    resp.api_keys_n = n;
    for (int i = 0; i < n; i++) {
        resp.api_keys[i].api_key = e[i].key;
        resp.api_keys[i].min_version = e[i].advertised_min;
        resp.api_keys[i].max_version = e[i].max;
    }
    kreq_begin_response(rq);
    kafka_api_versions_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
    return 0;
}

topic_t *kafka_topic_lookup(broker_t *b, kstr_t name, int create, int16_t *err)
{
    *err = KERR_NONE;
    if (name.len <= 0) {
        *err = KERR_INVALID_TOPIC_EXCEPTION;
        return NULL;
    }
    topic_t *t = broker_topic_find(b, name.p, (size_t)name.len);
    if (t) return t;
    if (broker_topic_name_valid(name.p, (size_t)name.len) < 0) {
        *err = KERR_INVALID_TOPIC_EXCEPTION;
        return NULL;
    }
    const config_t *cfg = broker_config(b);
    if (!create || !cfg->auto_create_topics || (name.len >= 2 && name.p[0] == '_' && name.p[1] == '_')) {
        *err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return NULL;
    }
    int rc = broker_topic_create(b, name.p, (size_t)name.len, cfg->num_partitions, NULL, 0, &t, NULL);
    if (rc < 0) {
        LOG_W("auto-create of topic %.*s failed: %s", (int)name.len, name.p, herald_strerror(rc));
        *err = kafka_error_from(rc);
        return NULL;
    }
    return t;
}

static void fill_topic(broker_t *b, kreq_t *rq, kafka_metadata_resp_topic_t *mt, topic_t *t)
{
    int32_t node = broker_node_id(b);
    mt->error_code = KERR_NONE;
    const char *nm = topic_name(t);
    mt->name = (kstr_t){nm, (int32_t)strlen(nm)};
    memcpy(mt->topic_id.b, topic_id(t), 16);
    mt->is_internal = 0;
    mt->topic_authorized_operations = INT32_MIN;
    int32_t np = topic_partition_count(t);
    mt->partitions = arena_calloc(&rq->arena, (size_t)np, sizeof *mt->partitions);
    mt->partitions_n = np;
    int32_t *one = arena_alloc(&rq->arena, sizeof *one);
    *one = node;
    for (int32_t i = 0; i < np; i++) {
        kafka_metadata_resp_partition_t *mp = &mt->partitions[i];
        /* A partition whose log could not be opened has no leader yet. */
        mp->error_code = topic_partition(t, i) ? KERR_NONE : KERR_LEADER_NOT_AVAILABLE;
        mp->partition_index = i;
        mp->leader_id = node;
        mp->leader_epoch = 0;
        mp->replica_nodes = one;
        mp->replica_nodes_n = 1;
        mp->isr_nodes = one;
        mp->isr_nodes_n = 1;
        mp->offline_replicas_n = 0;
    }
}

/* Fills the single-broker list shared by Metadata and DescribeCluster. */
static void own_broker(broker_t *b, const char **host, int32_t *port)
{
    int p;
    broker_kafka_advertised(b, host, &p);
    *port = p;
}

int kafka_h_metadata(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_metadata_req_t req;
    if (kafka_metadata_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_metadata_resp_t resp;
    memset(&resp, 0, sizeof resp);
    const char *host;
    int32_t port;
    own_broker(b, &host, &port);
    resp.brokers = arena_calloc(&rq->arena, 1, sizeof *resp.brokers);
    resp.brokers_n = 1;
    resp.brokers[0].node_id = broker_node_id(b);
    resp.brokers[0].host = (kstr_t){host, (int32_t)strlen(host)};
    resp.brokers[0].port = port;
    resp.brokers[0].rack = KSTR_NULL;
    const char *cid = broker_cluster_id(b);
    resp.cluster_id = (kstr_t){cid, (int32_t)strlen(cid)};
    resp.controller_id = broker_node_id(b);
    resp.cluster_authorized_operations = INT32_MIN;

    int all = req.topics_n < 0 || (v == 0 && req.topics_n == 0);
    if (all) {
        int n = broker_topic_count(b), i = 0;
        resp.topics = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *resp.topics);
        for (topic_t *t = broker_topic_first(b); t && i < n; t = topic_next(t)) fill_topic(b, rq, &resp.topics[i++], t);
        resp.topics_n = i;
    } else {
        resp.topics = arena_calloc(&rq->arena, (size_t)(req.topics_n ? req.topics_n : 1), sizeof *resp.topics);
        resp.topics_n = req.topics_n;
        int create = v < 4 ? 1 : req.allow_auto_topic_creation;
        for (int32_t i = 0; i < req.topics_n; i++) {
            kafka_metadata_resp_topic_t *mt = &resp.topics[i];
            kstr_t name = req.topics[i].name;
            mt->topic_authorized_operations = INT32_MIN;
            if (name.len < 0) {
                /* v10+: lookup by topic id */
                mt->topic_id = req.topics[i].topic_id;
                mt->name = KSTR_NULL;
                topic_t *found = NULL;
                for (topic_t *t = broker_topic_first(b); t; t = topic_next(t))
                    if (!memcmp(topic_id(t), req.topics[i].topic_id.b, 16)) found = t;
                if (found) fill_topic(b, rq, mt, found);
                else mt->error_code = KERR_UNKNOWN_TOPIC_ID;
                continue;
            }
            int16_t err;
            topic_t *t = kafka_topic_lookup(b, name, create, &err);
            if (t) {
                fill_topic(b, rq, mt, t);
            } else {
                mt->error_code = err;
                mt->name = name;
            }
        }
    }
    kreq_begin_response(rq);
    kafka_metadata_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
    return 0;
}

int kafka_h_describe_cluster(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_describe_cluster_req_t req;
    if (kafka_describe_cluster_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_describe_cluster_resp_t resp;
    memset(&resp, 0, sizeof resp);
    const char *host;
    int32_t port;
    own_broker(b, &host, &port);
    resp.error_message = KSTR_NULL;
    resp.endpoint_type = 1;
    const char *cid = broker_cluster_id(b);
    resp.cluster_id = (kstr_t){cid, (int32_t)strlen(cid)};
    resp.controller_id = broker_node_id(b);
    resp.brokers = arena_calloc(&rq->arena, 1, sizeof *resp.brokers);
    resp.brokers_n = 1;
    resp.brokers[0].broker_id = broker_node_id(b);
    resp.brokers[0].host = (kstr_t){host, (int32_t)strlen(host)};
    resp.brokers[0].port = port;
    resp.brokers[0].rack = KSTR_NULL;
    resp.cluster_authorized_operations = INT32_MIN;
    kreq_begin_response(rq);
    kafka_describe_cluster_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
    return 0;
}

int kafka_h_sasl_handshake(broker_t *b, kreq_t *rq)
{
    (void)b;
    int16_t v = rq->hdr.api_version;
    kafka_sasl_handshake_req_t req;
    if (kafka_sasl_handshake_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    /* Authentication arrives with the security milestone; until then no
     * mechanism is enabled and the client is told so. */
    kafka_sasl_handshake_resp_t resp;
    memset(&resp, 0, sizeof resp);
    resp.error_code = KERR_UNSUPPORTED_SASL_MECHANISM;
    resp.mechanisms_n = 0;
    kreq_begin_response(rq);
    kafka_sasl_handshake_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
    return 0;
}
