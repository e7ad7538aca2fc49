/*
 * Fetch with long poll. A fetch reads whole stored batches from each
 * requested partition (never past the high watermark). If fewer than
 * min_bytes are available and max_wait_ms > 0, it waits: one waiter per
 * partition (woken when that partition's high watermark passes what was
 * seen) and a timer for max_wait_ms; it is answered when enough bytes are
 * there, when the timer fires, or when a partition fails.
 *
 * Fetch sessions (KIP-227) are not kept: every response carries session_id
 * 0, which tells clients to send full fetch requests.
 */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "kafka/errors.h"
#include "kafka/handlers.h"

typedef struct fetch_state fetch_state_t;

typedef struct {
    pwaiter_t w;
    fetch_state_t *st;
} fetch_wait_t;

/* Heap-allocated: the timer handle must outlive kreq_done until its close
 * callback, which frees this. */
struct fetch_state {
    uv_timer_t timer;
    broker_t *b;
    kreq_t *rq;
    kafka_fetch_req_t req;
    fetch_wait_t *waits; /* one per requested partition, in the arena */
    int nwaits;
    int answered;
};

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Reads everything the request asks for into resp. Returns bytes of records.
 * `records` keeps the partitions' bytes alive until the response is encoded. */
static size_t fetch_collect(broker_t *b, kreq_t *rq, const kafka_fetch_req_t *req, kafka_fetch_resp_t *resp,
                            wbuf_t *records)
{
    int16_t v = rq->hdr.api_version;
    size_t total = 0;
    /* The client's max_bytes, capped by the broker: a fetch must not make
     * the broker buffer a whole segment because a client asked for 2 GiB. */
    size_t budget = req->max_bytes > 0 ? (size_t)req->max_bytes : 0;
    size_t cap = (size_t)broker_config(b)->fetch_max_bytes;
    if (budget > cap) budget = cap;
    int32_t nt = req->topics_n > 0 ? req->topics_n : 0;
    resp->responses_n = nt;
    resp->responses = arena_calloc(&rq->arena, (size_t)(nt ? nt : 1), sizeof *resp->responses);
    /* First pass: read into one buffer, remembering offsets (the buffer may
     * move while it grows); second pass: point the views into it. */
    size_t **starts = arena_calloc(&rq->arena, (size_t)(nt ? nt : 1), sizeof *starts);
    for (int32_t i = 0; i < nt; i++) {
        const kafka_fetch_req_fetch_topic_t *ft = &req->topics[i];
        kafka_fetch_resp_fetchable_topic_response_t *tr = &resp->responses[i];
        tr->topic = ft->topic;
        int32_t np = ft->partitions_n > 0 ? ft->partitions_n : 0;
        tr->partitions_n = np;
        tr->partitions = arena_calloc(&rq->arena, (size_t)(np ? np : 1), sizeof *tr->partitions);
        starts[i] = arena_calloc(&rq->arena, (size_t)(np ? np : 1) * 2, sizeof **starts);
        topic_t *t = broker_topic_find(b, ft->topic.p, ft->topic.len > 0 ? (size_t)ft->topic.len : 0);
        for (int32_t j = 0; j < np; j++) {
            const kafka_fetch_req_fetch_partition_t *fp = &ft->partitions[j];
            kafka_fetch_resp_partition_data_t *pd = &tr->partitions[j];
            pd->partition_index = fp->partition;
            pd->high_watermark = -1;
            pd->last_stable_offset = -1;
            pd->log_start_offset = -1;
            pd->diverging_epoch.epoch = -1;
            pd->diverging_epoch.end_offset = -1;
            pd->current_leader.leader_id = -1;
            pd->current_leader.leader_epoch = -1;
            pd->snapshot_id.end_offset = -1;
            pd->snapshot_id.epoch = -1;
            pd->aborted_transactions_n = v >= 4 ? 0 : -1;
            pd->preferred_read_replica = -1;
            pd->records = (kbytes_t){NULL, 0};
            starts[i][2 * j] = starts[i][2 * j + 1] = 0;
            partition_t *p = t ? topic_partition(t, fp->partition) : NULL;
            if (!p) {
                pd->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            int64_t hw = partition_high_watermark(p);
            pd->high_watermark = hw;
            pd->last_stable_offset = hw;
            pd->log_start_offset = partition_start_offset(p);
            if (fp->fetch_offset < pd->log_start_offset || fp->fetch_offset > hw) {
                pd->error_code = KERR_OFFSET_OUT_OF_RANGE;
                continue;
            }
            if (fp->fetch_offset == hw || fp->partition_max_bytes <= 0) continue;
            /* Kafka's rule: the first batch of the response is returned even
             * if it exceeds the limits, so the consumer always progresses. */
            size_t limit = min_sz((size_t)fp->partition_max_bytes, total == 0 ? SIZE_MAX : budget);
            if (limit == 0) continue;
            size_t before = records->len;
            int64_t n = partition_read(p, fp->fetch_offset, total == 0 ? min_sz(limit, budget ? budget : 1) : limit,
                                       records);
            if (n < 0) {
                pd->error_code = kafka_error_from((int)n);
                records->len = before;
                continue;
            }
            starts[i][2 * j] = before;
            starts[i][2 * j + 1] = (size_t)n;
            total += (size_t)n;
            budget = budget > (size_t)n ? budget - (size_t)n : 0;
        }
    }
    for (int32_t i = 0; i < nt; i++)
        for (int32_t j = 0; j < resp->responses[i].partitions_n; j++) {
            size_t len = starts[i][2 * j + 1];
            if (len) resp->responses[i].partitions[j].records = (kbytes_t){records->p + starts[i][2 * j], (int32_t)len};
        }
    return total;
}

static void fetch_state_closed(uv_handle_t *h) { free(h->data); }

/* Answers with `collected` (a response whose records point into
 * `records`) if given, else collects afresh. Consumes records. */
static void fetch_respond(fetch_state_t *st, kafka_fetch_resp_t *collected, wbuf_t *records)
{
    st->answered = 1;
    for (int i = 0; i < st->nwaits; i++) pwaiter_cancel(&st->waits[i].w);
    uv_timer_stop(&st->timer);
    kreq_t *rq = st->rq;
    kafka_fetch_resp_t resp;
    wbuf_t own;
    if (!collected) {
        memset(&resp, 0, sizeof resp);
        wbuf_init(&own);
        fetch_collect(st->b, rq, &st->req, &resp, &own);
        collected = &resp;
        records = &own;
    }
    kreq_begin_response(rq);
    /* The records stay in `records` (now owned by rq) and go out by
     * reference: stored bytes are copied once, into that buffer. */
    kreq_splice_begin(rq, records);
    kafka_fetch_resp_encode(&rq->resp, rq->hdr.api_version, collected);
    kreq_splice_end(rq);
    kreq_done(rq);
    st->timer.data = st;
    uv_close((uv_handle_t *)&st->timer, fetch_state_closed);
}

static void fetch_answer(fetch_state_t *st)
{
    if (!st->answered) fetch_respond(st, NULL, NULL);
}

static void on_timeout(uv_timer_t *t) { fetch_answer(t->data); }

/* Links a waiter for each partition; returns how many are linked. */
static int fetch_arm(fetch_state_t *st)
{
    int linked = 0, k = 0;
    const kafka_fetch_req_t *req = &st->req;
    for (int32_t i = 0; i < req->topics_n; i++) {
        const kafka_fetch_req_fetch_topic_t *ft = &req->topics[i];
        topic_t *t = broker_topic_find(st->b, ft->topic.p, ft->topic.len > 0 ? (size_t)ft->topic.len : 0);
        for (int32_t j = 0; j < ft->partitions_n; j++, k++) {
            partition_t *p = t ? topic_partition(t, ft->partitions[j].partition) : NULL;
            if (!p) continue;
            int64_t hw = partition_high_watermark(p), off = ft->partitions[j].fetch_offset;
            st->waits[k].w.target = (off > hw ? off : hw) + 1;
            if (partition_wait(p, &st->waits[k].w) == 0) linked++;
        }
    }
    return linked;
}

static void on_data(pwaiter_t *w, int status)
{
    fetch_state_t *st = ((fetch_wait_t *)w)->st;
    if (st->answered) return;
    if (status < 0) {
        fetch_answer(st);
        return;
    }
    /* Enough bytes now? Cheap check: re-collect only when min_bytes > 1. */
    if (st->req.min_bytes <= 1) {
        fetch_answer(st);
        return;
    }
    kafka_fetch_resp_t probe;
    memset(&probe, 0, sizeof probe);
    wbuf_t records;
    wbuf_init(&records);
    size_t have = fetch_collect(st->b, st->rq, &st->req, &probe, &records);
    if (have >= (size_t)st->req.min_bytes) {
        fetch_respond(st, &probe, &records);
        return;
    }
    wbuf_destroy(&records);
    for (int i = 0; i < st->nwaits; i++) pwaiter_cancel(&st->waits[i].w);
    fetch_arm(st);
}

int kafka_h_fetch(broker_t *b, kreq_t *rq)
{
    int16_t v = rq->hdr.api_version;
    fetch_state_t *st = xcalloc(1, sizeof *st);
    if (kafka_fetch_req_decode(&rq->body, v, &rq->arena, &st->req) < 0) {
        free(st);
        return HE_MALFORMED;
    }
    st->b = b;
    st->rq = rq;
    uv_timer_init(broker_loop(b), &st->timer);
    st->timer.data = st;
    int n = 0;
    for (int32_t i = 0; i < st->req.topics_n; i++) n += st->req.topics[i].partitions_n > 0 ? st->req.topics[i].partitions_n : 0;
    st->nwaits = n;
    st->waits = arena_calloc(&rq->arena, (size_t)(n ? n : 1), sizeof *st->waits);
    for (int i = 0; i < n; i++) {
        st->waits[i].st = st;
        st->waits[i].w.cb = on_data;
    }
    if (st->req.max_wait_ms <= 0 || n == 0) {
        fetch_answer(st);
        return 0;
    }
    /* Answer at once if enough is there; otherwise wait. */
    kafka_fetch_resp_t probe;
    memset(&probe, 0, sizeof probe);
    wbuf_t records;
    wbuf_init(&records);
    size_t have = fetch_collect(b, rq, &st->req, &probe, &records);
    int32_t min_bytes = st->req.min_bytes > 0 ? st->req.min_bytes : 1;
    if (have >= (size_t)min_bytes || fetch_arm(st) == 0) {
        fetch_respond(st, &probe, &records);
        return 0;
    }
    wbuf_destroy(&records);
    uv_timer_start(&st->timer, on_timeout, (uint64_t)st->req.max_wait_ms, 0);
    return 0;
}
