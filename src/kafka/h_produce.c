/*
 * Produce: validate every batch of a partition, append them, and answer
 * acks=1/-1 once the partition's high watermark (durable offset under
 * flush=always) covers the last appended offset. acks=0 gets no response.
 *
 * The records field of a partition may hold several RecordBatch v2; they are
 * checked as a whole before any is appended, so a partition's batches are
 * accepted or refused together.
 */
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "kafka/errors.h"
#include "kafka/handlers.h"

#define BATCH_HEADER_LEN 61
#define ATTR_TRANSACTIONAL 0x10

typedef struct {
    pwaiter_t w;
    struct produce_state *st;
    kafka_produce_resp_partition_produce_response_t *out;
} produce_wait_t;

typedef struct produce_state {
    kreq_t *rq;
    kafka_produce_resp_t resp;
    int pending; /* waiters not yet fired */
} produce_state_t;

static void produce_finish(produce_state_t *st)
{
    kreq_t *rq = st->rq;
    kreq_begin_response(rq);
    kafka_produce_resp_encode(&rq->resp, rq->hdr.api_version, &st->resp);
    kreq_done(rq);
}

static void on_durable(pwaiter_t *w, int status)
{
    produce_wait_t *pw = (produce_wait_t *)w;
    if (status < 0) {
        pw->out->error_code = kafka_error_from(status);
        pw->out->base_offset = -1;
    }
    if (--pw->st->pending == 0) produce_finish(pw->st);
}

/* Checks the framing of every batch in records. Returns 0 or a Kafka error. */
static int16_t check_batches(kbytes_t rec, int64_t max_batch)
{
    if (rec.len <= 0) return KERR_INVALID_RECORD;
    size_t pos = 0, len = (size_t)rec.len;
    while (pos < len) {
        if (len - pos < BATCH_HEADER_LEN) return KERR_CORRUPT_MESSAGE;
        const uint8_t *p = rec.p + pos;
        int8_t magic = (int8_t)p[16];
        if (magic != 2) return KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
        int32_t blen = (int32_t)buf_get_be32(p + 8);
        if (blen < BATCH_HEADER_LEN - 12 || (size_t)blen > len - pos - 12) return KERR_CORRUPT_MESSAGE;
        if ((int64_t)blen + 12 > max_batch) return KERR_MESSAGE_TOO_LARGE;
        uint16_t attrs = (uint16_t)((p[21] << 8) | p[22]);
        if (attrs & ATTR_TRANSACTIONAL) return KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        pos += 12 + (size_t)blen;
    }
    return KERR_NONE;
}

/* Appends every batch of one partition. Returns 0 and the wait target (last
 * offset + 1) or a Kafka error. */
static int16_t append_partition(broker_t *b, partition_t *p, kbytes_t rec, int64_t *base, int64_t *target)
{
    size_t pos = 0, len = (size_t)rec.len;
    uint8_t *buf = (uint8_t *)rec.p; /* the request frame is ours to modify */
    *base = -1;
    while (pos < len) {
        size_t blen = 12 + (size_t)buf_get_be32(buf + pos + 8);
        append_result_t res;
        int rc = partition_append(b, p, buf + pos, blen, &res);
        if (rc < 0) {
            if (rc != BROKER_E_OUT_OF_ORDER_SEQ && rc != BROKER_E_UNKNOWN_PRODUCER_ID)
                LOG_W("produce to %s-%d refused: %s", topic_name(partition_topic(p)), partition_index(p),
                      herald_strerror(rc));
            return kafka_error_from(rc);
        }
        if (*base < 0) *base = res.base_offset;
        int32_t last_delta = (int32_t)buf_get_be32(buf + pos + 23);
        *target = res.base_offset + last_delta + 1;
        pos += blen;
    }
    return KERR_NONE;
}

int kafka_h_produce(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    kafka_produce_req_t req;
    if (kafka_produce_req_decode(&rq->body, v, &rq->arena, &req) < 0) return HE_MALFORMED;
    produce_state_t *st = arena_alloc(&rq->arena, sizeof *st);
    st->rq = rq;
    kafka_produce_resp_t *resp = &st->resp;
    int acks_ok = req.acks == 0 || req.acks == 1 || req.acks == -1;
    int64_t max_batch = broker_config(b)->max_request_bytes;

    resp->responses_n = req.topic_data_n > 0 ? req.topic_data_n : 0;
    resp->responses = arena_calloc(&rq->arena, (size_t)(resp->responses_n ? resp->responses_n : 1),
                                   sizeof *resp->responses);
    /* Waiters live in the arena: rq outlives them (kreq_done comes last). */
    for (int32_t i = 0; i < resp->responses_n; i++) {
        kafka_produce_req_topic_produce_data_t *td = &req.topic_data[i];
        kafka_produce_resp_topic_produce_response_t *tr = &resp->responses[i];
        tr->name = td->name;
        int32_t np = td->partition_data_n > 0 ? td->partition_data_n : 0;
        tr->partition_responses_n = np;
        tr->partition_responses = arena_calloc(&rq->arena, (size_t)(np ? np : 1), sizeof *tr->partition_responses);
        int16_t terr = KERR_NONE;
        topic_t *t = NULL;
        if (v < 3) terr = KERR_UNSUPPORTED_VERSION;
        else if (!acks_ok) terr = KERR_INVALID_REQUIRED_ACKS;
        else if (req.transactional_id.len >= 0) terr = KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        else t = kafka_topic_lookup(b, td->name, 1, &terr);
        for (int32_t j = 0; j < np; j++) {
            kafka_produce_req_partition_produce_data_t *pd = &td->partition_data[j];
            kafka_produce_resp_partition_produce_response_t *pr = &tr->partition_responses[j];
            pr->index = pd->index;
            pr->base_offset = -1;
            pr->log_append_time_ms = -1;
            pr->log_start_offset = -1;
            pr->error_message = KSTR_NULL;
            pr->current_leader.leader_id = -1;
            pr->current_leader.leader_epoch = -1;
            if (terr) {
                pr->error_code = terr;
                continue;
            }
            partition_t *p = topic_partition(t, pd->index);
            if (!p) {
                pr->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if ((pr->error_code = check_batches(pd->records, max_batch)) != KERR_NONE) continue;
            int64_t target = 0;
            pr->error_code = append_partition(b, p, pd->records, &pr->base_offset, &target);
            pr->log_start_offset = partition_start_offset(p);
            if (pr->error_code || req.acks == 0) continue;
            produce_wait_t *pw = arena_alloc(&rq->arena, sizeof *pw);
            pw->st = st;
            pw->out = pr;
            pw->w.target = target;
            pw->w.cb = on_durable;
            if (partition_wait(p, &pw->w) == 0) st->pending++;
        }
    }
    if (req.acks == 0) {
        rq->no_response = 1;
        kreq_done(rq);
        return 0;
    }
    if (st->pending == 0) produce_finish(st);
    return 0;
}
