/* Group coordinator APIs: not yet implemented; every request is answered
 * with COORDINATOR_NOT_AVAILABLE so clients retry instead of hanging. */
#include "base/err.h"
#include "kafka/errors.h"
#include "kafka/handlers.h"

#define STUB(fn, api)                                                         \
    int fn(broker_t *b, kreq_t *rq)                                           \
    {                                                                         \
        (void)b;                                                              \
        kafka_##api##_req_t req;                                              \
        if (kafka_##api##_req_decode(&rq->body, rq->hdr.api_version, &rq->arena, &req) < 0) \
            return HE_MALFORMED;                                              \
        return HE_UNSUPPORTED;                                                \
    }

STUB(kafka_h_find_coordinator, find_coordinator)
STUB(kafka_h_join_group, join_group)
STUB(kafka_h_sync_group, sync_group)
STUB(kafka_h_heartbeat, heartbeat)
STUB(kafka_h_leave_group, leave_group)
STUB(kafka_h_offset_commit, offset_commit)
STUB(kafka_h_offset_fetch, offset_fetch)
STUB(kafka_h_list_groups, list_groups)
STUB(kafka_h_describe_groups, describe_groups)
STUB(kafka_h_delete_groups, delete_groups)
