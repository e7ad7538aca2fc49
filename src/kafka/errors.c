/* Internal error -> Kafka error code, in one place. */
#include "kafka/errors.h"

#include "base/err.h"
#include "broker/broker.h"

int16_t kafka_error_from(int rc)
{
    if (rc >= 0) return KERR_NONE;
    switch (rc) {
    case HE_CORRUPT:
        return KERR_CORRUPT_MESSAGE;
    case HE_MALFORMED:
    case HE_TRUNCATED:
    case BROKER_E_INVALID_RECORD:
        return KERR_INVALID_RECORD;
    case HE_TOO_LARGE:
        return KERR_MESSAGE_TOO_LARGE;
    case HE_NOT_FOUND:
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    case HE_EXISTS:
        return KERR_TOPIC_ALREADY_EXISTS;
    case HE_OUT_OF_RANGE:
        return KERR_OFFSET_OUT_OF_RANGE;
    case HE_UNSUPPORTED:
        return KERR_UNSUPPORTED_VERSION;
    case HE_INVALID:
        return KERR_INVALID_REQUEST;
    case BROKER_E_OUT_OF_ORDER_SEQ:
        return KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    case BROKER_E_DUPLICATE_SEQ:
        return KERR_DUPLICATE_SEQUENCE_NUMBER;
    case BROKER_E_INVALID_PRODUCER_EPOCH:
        return KERR_INVALID_PRODUCER_EPOCH;
    case BROKER_E_UNKNOWN_PRODUCER_ID:
        return KERR_UNKNOWN_PRODUCER_ID;
    case HE_STORAGE:
    case HE_CLOSED:
    default:
        /* -errno from the store (EIO, ENOSPC, ...) */
        return KERR_KAFKA_STORAGE_ERROR;
    }
}
