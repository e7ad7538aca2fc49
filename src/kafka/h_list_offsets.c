/*
 * ListOffsets: timestamp -1 = latest (the high watermark), -2 = earliest
 * (log start offset), -3 = the batch with the largest timestamp (v7+),
 * otherwise the first offset whose batch timestamp is >= the given one.
 */
#include <string.h>

#include "base/err.h"
#include "kafka/errors.h"
#include "kafka/handlers.h"

#define TS_LATEST (-1)
#define TS_EARLIEST (-2)
#define TS_MAX (-3)

static void lookup(partition_t *p, int64_t ts, kafka_list_offsets_resp_list_offsets_partition_response_t *out)
{
    int64_t off = -1, bts = -1;
    if (ts == TS_LATEST) {
        off = partition_high_watermark(p);
    } else if (ts == TS_EARLIEST) {
        off = partition_start_offset(p);
    } else if (ts == TS_MAX) {
        /* The batch holding the largest timestamp (its first offset: the
         * store indexes batches, not records). */
        if (partition_max_timestamp(p, &off, &bts) < 0) off = bts = -1;
    } else if (ts >= 0) {
        int rc = partition_offset_for_time(p, ts, &off, &bts);
        if (rc < 0) {
            off = -1;
            bts = -1;
        }
    } else {
        out->error_code = KERR_INVALID_REQUEST;
        return;
    }
    out->offset = off;
    out->timestamp = (ts == TS_LATEST || ts == TS_EARLIEST) ? -1 : bts;
}

int kafka_h_list_offsets(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_list_offsets_req_t req;
    if (kafka_list_offsets_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    kafka_list_offsets_resp_t resp;
    memset(&resp, 0, sizeof resp);
    int32_t nt = req.topics_n > 0 ? req.topics_n : 0;
    resp.topics_n = nt;
    resp.topics = arena_calloc(&rq->arena, (size_t)(nt ? nt : 1), sizeof *resp.topics);
    for (int32_t i = 0; i < nt; i++) {
        kafka_list_offsets_req_list_offsets_topic_t *rt = &req.topics[i];
        kafka_list_offsets_resp_list_offsets_topic_response_t *tt = &resp.topics[i];
        tt->name = rt->name;
        int32_t np = rt->partitions_n > 0 ? rt->partitions_n : 0;
        tt->partitions_n = np;
        tt->partitions = arena_calloc(&rq->arena, (size_t)(np ? np : 1), sizeof *tt->partitions);
        topic_t *t = broker_topic_find(b, rt->name.p, rt->name.len > 0 ? (size_t)rt->name.len : 0);
        for (int32_t j = 0; j < np; j++) {
            kafka_list_offsets_resp_list_offsets_partition_response_t *pr = &tt->partitions[j];
            pr->partition_index = rt->partitions[j].partition_index;
            pr->offset = -1;
            pr->timestamp = -1;
            pr->leader_epoch = 0;
            partition_t *p = t ? topic_partition(t, pr->partition_index) : NULL;
            if (!p) {
                pr->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                pr->leader_epoch = -1;
                continue;
            }
            lookup(p, rt->partitions[j].timestamp, pr);
            if (v == 0) {
                /* v0 answers with a list of offsets (at most max_num_offsets). */
                int64_t *one = arena_alloc(&rq->arena, sizeof *one);
                *one = pr->offset;
                pr->old_style_offsets = one;
                pr->old_style_offsets_n = pr->offset >= 0 && rt->partitions[j].max_num_offsets > 0 ? 1 : 0;
            }
        }
    }
    kreq_begin_response(rq);
    kafka_list_offsets_resp_encode(&rq->resp, v, &resp);
    kreq_done(rq);
    return 0;
}
