/*
 * The consumer-group coordinator (classic rebalance protocol) and the
 * committed-offsets log. See group.c.
 *
 * The coordinator speaks in the classic protocol's own error codes (the
 * GERR_* values below are Kafka's wire codes for these outcomes): group
 * semantics are defined by that protocol, so the Kafka front end passes them
 * through unchanged.
 */
#ifndef HERALD_BROKER_GROUP_H
#define HERALD_BROKER_GROUP_H

#include "broker/broker.h"

enum {
    GERR_NONE = 0,
    GERR_UNKNOWN_TOPIC_OR_PARTITION = 3,
    GERR_COORDINATOR_NOT_AVAILABLE = 15,
    GERR_ILLEGAL_GENERATION = 22,
    GERR_INCONSISTENT_GROUP_PROTOCOL = 23,
    GERR_INVALID_GROUP_ID = 24,
    GERR_UNKNOWN_MEMBER_ID = 25,
    GERR_INVALID_SESSION_TIMEOUT = 26,
    GERR_REBALANCE_IN_PROGRESS = 27,
    GERR_STORAGE = 56,
    GERR_NON_EMPTY_GROUP = 68,
    GERR_GROUP_ID_NOT_FOUND = 69,
    GERR_MEMBER_ID_REQUIRED = 79,
    GERR_FENCED_INSTANCE_ID = 82,
};

typedef enum { GROUP_EMPTY, GROUP_PREPARING, GROUP_COMPLETING, GROUP_STABLE, GROUP_DEAD } group_state_t;

typedef struct group group_t;

/* A length-delimited string (same layout as the Kafka codec's kstr_t);
 * len -1 = null. */
typedef struct {
    const char *p;
    int32_t len;
} group_str_t;

/* Creates the coordinator and replays committed offsets from offsets_log
 * (an internal partition owned by the broker). Returns NULL on a corrupt log. */
group_coord_t *group_coord_new(broker_t *b, partition_t *offsets_log);
/* Answers every pending join/sync (COORDINATOR_NOT_AVAILABLE), closes the
 * timer and frees all group state. NULL is a no-op. */
void group_coord_free(group_coord_t *g);

/* ---- membership ---- */

typedef struct {
    group_str_t name;
    const uint8_t *meta;
    int32_t meta_len;
} group_proto_t;

typedef struct {
    group_str_t group_id, member_id, instance_id, protocol_type, client_id, client_host;
    int32_t session_ms, rebalance_ms;
    int require_known_member; /* JoinGroup v4+ (KIP-394) */
    const group_proto_t *protos;
    int nprotos;
} group_join_req_t;

typedef struct {
    const char *member_id, *instance_id, *client_id, *client_host;
    const uint8_t *meta;   /* join: metadata of the chosen protocol; describe: same */
    int32_t meta_len;
    const uint8_t *assign; /* describe only */
    int32_t assign_len;
} group_member_info_t;

/* Everything points into coordinator memory valid only during the callback. */
typedef struct {
    int16_t error;
    int32_t generation;
    const char *protocol_type, *protocol_name, *leader, *member_id; /* NULL if unknown */
    int nmembers;                     /* the leader only */
    const group_member_info_t *members;
} group_join_result_t;

typedef void (*group_join_cb)(void *ctx, const group_join_result_t *r);
typedef void (*group_sync_cb)(void *ctx, int16_t error, const char *protocol_type, const char *protocol_name,
                              const uint8_t *assign, int32_t assign_len);

/* Joins (or rejoins) a group. cb is called exactly once, now or when the
 * rebalance completes. */
void group_join(group_coord_t *c, const group_join_req_t *r, group_join_cb cb, void *ctx);

typedef struct {
    group_str_t member_id;
    const uint8_t *p;
    int32_t len;
} group_assignment_t;

typedef struct {
    group_str_t group_id, member_id, instance_id, protocol_type, protocol_name;
    int32_t generation;
    const group_assignment_t *assign; /* the leader's; ignored from followers */
    int nassign;
} group_sync_req_t;

/* cb is called exactly once, now or when the leader's assignment arrives. */
void group_sync(group_coord_t *c, const group_sync_req_t *r, group_sync_cb cb, void *ctx);

int16_t group_heartbeat(group_coord_t *c, group_str_t gid, int32_t generation, group_str_t member,
                        group_str_t instance);
/* Removes one member (by member id, or by instance id when member is ""). */
int16_t group_leave(group_coord_t *c, group_str_t gid, group_str_t member, group_str_t instance);

/* ---- committed offsets ---- */

/* Checks whether a commit from (generation, member) is allowed now. */
int16_t group_commit_check(group_coord_t *c, group_str_t gid, int32_t generation, group_str_t member,
                           group_str_t instance);
/* Appends one committed offset and applies it. *target is the offsets-log
 * offset to wait for (group_offsets_wait). Returns 0 or <0 (storage). */
int group_commit(group_coord_t *c, group_str_t gid, group_str_t topic, int32_t partition, int64_t offset,
                 int32_t leader_epoch, group_str_t metadata, int64_t *target);
/* Rewrites the live offsets and drops the log before them once durable
 * (runs by itself when the log outgrows the live state; exposed for tests).
 * Returns 0 or <0. */
int group_offsets_compact(group_coord_t *c);
/* partition_wait on the offsets log. */
int group_offsets_wait(group_coord_t *c, pwaiter_t *w);
/* Returns 1 and the committed offset, or 0 if none. *meta points into
 * coordinator memory (valid until the next call into the coordinator). */
int group_offset_get(group_coord_t *c, group_str_t gid, group_str_t topic, int32_t partition, int64_t *offset,
                     int32_t *leader_epoch, group_str_t *meta);
typedef void (*group_offset_visit)(void *ctx, const char *topic, int32_t partition, int64_t offset,
                                   int32_t leader_epoch, group_str_t meta);
/* Visits every committed offset of a group. */
void group_offsets_each(group_coord_t *c, group_str_t gid, group_offset_visit fn, void *ctx);

/* ---- inspection and deletion ---- */

group_t *group_find(group_coord_t *c, group_str_t gid);
group_t *group_first(group_coord_t *c);
group_t *group_next(group_t *g);
const char *group_id(const group_t *g);
group_state_t group_state(const group_t *g);
const char *group_state_name(group_state_t s); /* "Stable", "Empty", ... */
const char *group_protocol_type(const group_t *g); /* "" if none */
const char *group_protocol(const group_t *g);      /* "" if none */
int group_member_count(const group_t *g);
/* Fills up to max members; returns the number filled. */
int group_members(const group_t *g, group_member_info_t *out, int max);
/* Deletes an Empty group and its offsets (tombstones). *target: offsets-log
 * offset to wait for (0 if nothing was written). Returns a GERR code. */
int16_t group_delete(group_coord_t *c, group_str_t gid, int64_t *target);

#endif
