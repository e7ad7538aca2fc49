/* The API table: handler, advertised and accepted versions. See dispatch.h. */
#include "kafka/dispatch.h"

#include "base/err.h"
#include "base/log.h"
#include "kafka/handlers.h"

/* Advertised minimums of 0 for Produce and the group APIs: librdkafka only
 * enables compression, consumer groups and idempotence when the advertised
 * range overlaps its own fixed ranges (see docs/compatibility.md). Produce
 * v0-v2 carry the old message formats and are refused per partition with
 * UNSUPPORTED_VERSION at request time. */
static const kafka_api_entry_t entries[] = {
    {0, kafka_h_produce, 0, 3, 11},
    {1, kafka_h_fetch, 4, 4, 12},
    {2, kafka_h_list_offsets, 1, 1, 8},
    {3, kafka_h_metadata, 0, 0, 12},
    {8, kafka_h_offset_commit, 2, 2, 8},
    {9, kafka_h_offset_fetch, 1, 1, 8},
    {10, kafka_h_find_coordinator, 0, 0, 4},
    {11, kafka_h_join_group, 0, 0, 9},
    {12, kafka_h_heartbeat, 0, 0, 4},
    {13, kafka_h_leave_group, 0, 0, 5},
    {14, kafka_h_sync_group, 0, 0, 5},
    {15, kafka_h_describe_groups, 0, 0, 5},
    {16, kafka_h_list_groups, 0, 0, 4},
    {17, kafka_h_sasl_handshake, 0, 0, 1},
    {18, kafka_h_api_versions, 0, 0, 3},
    {19, kafka_h_create_topics, 0, 0, 7},
    {20, kafka_h_delete_topics, 0, 0, 6},
    {21, kafka_h_delete_records, 0, 0, 2},
    {22, kafka_h_init_producer_id, 0, 0, 4},
    {32, kafka_h_describe_configs, 0, 0, 4},
    {33, kafka_h_alter_configs, 0, 0, 2},
    {37, kafka_h_create_partitions, 0, 0, 3},
    {42, kafka_h_delete_groups, 0, 0, 2},
    {44, kafka_h_incremental_alter_configs, 0, 0, 1},
    {60, kafka_h_describe_cluster, 0, 0, 1},
};

#define NENTRIES ((int)(sizeof entries / sizeof entries[0]))

const kafka_api_entry_t *kafka_api_entries(int *n)
{
    *n = NENTRIES;
    return entries;
}

int kafka_dispatch(broker_t *b, kreq_t *rq)
{
    int16_t key = rq->hdr.api_key, v = rq->hdr.api_version;
    for (int i = 0; i < NENTRIES; i++) {
        if (entries[i].key != key) continue;
        /* ApiVersions answers any version itself (KIP-511). */
        if (key != 18 && (v < entries[i].advertised_min || v > entries[i].max)) {
            LOG_W("kafka: api %d version %d not supported (%d..%d)", key, v, entries[i].advertised_min,
                  entries[i].max);
            return HE_UNSUPPORTED;
        }
        int rc = entries[i].handler(b, rq);
        if (rc < 0) LOG_W("kafka: api %d v%d request rejected: %s", key, v, herald_strerror(rc));
        return rc;
    }
    LOG_W("kafka: unknown api key %d", key);
    return HE_UNSUPPORTED;
}
