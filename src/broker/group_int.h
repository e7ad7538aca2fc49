/* Internals of the consumer-group coordinator shared by group.c
 * (membership and rebalancing) and group_offsets.c (committed offsets and
 * their log). */
#ifndef HERALD_BROKER_GROUP_INT_H
#define HERALD_BROKER_GROUP_INT_H

#include <string.h>

#include "base/buf.h"
#include "base/mem.h"
#include "broker/group.h"
#include "broker/internal.h"

typedef struct goff {
    char *key; /* "topic:partition" (topic names cannot hold ':') */
    char *topic;
    int32_t part;
    int64_t offset;
    int32_t epoch;
    char *meta; /* NULL = null metadata */
    int32_t meta_len;
    UT_hash_handle hh;
} goff_t;

typedef struct gmember {
    struct gmember *next;
    char *id, *instance, *client_id, *client_host; /* instance may be NULL */
    int32_t session_ms, rebalance_ms;
    int nprotos;
    char **pnames;
    uint8_t **pmeta;
    int32_t *pmeta_len;
    uint8_t *assign;
    int32_t assign_len;
    group_join_cb join_cb; /* non-NULL while a JoinGroup waits */
    void *join_ctx;
    group_sync_cb sync_cb; /* non-NULL while a SyncGroup waits */
    void *sync_ctx;
    uint64_t deadline;     /* session expiry (loop ms) */
} gmember_t;

typedef struct gpending {
    struct gpending *next;
    char *id;
    uint64_t deadline;
} gpending_t;

struct group {
    char *id;
    int32_t idlen;
    group_state_t state;
    int32_t generation;
    char *ptype, *proto, *leader; /* owned; NULL if none */
    gmember_t *members;           /* join order */
    int nmembers;
    gpending_t *pending;          /* member ids handed out with MEMBER_ID_REQUIRED */
    uint64_t rb_deadline, rb_not_before;
    goff_t *offsets;
    UT_hash_handle hh;
};

struct group_coord {
    broker_t *b;
    partition_t *log;
    group_t *groups; /* uthash by id */
    uv_timer_t *timer; /* heap: freed in its close callback */
    pwaiter_t compact_w;   /* a snapshot waiting to be durable */
    int compacting;
    int64_t compact_from;  /* first offset of the snapshot */
    int64_t compact_check; /* log size at which to estimate the live size again */
};

static inline uint64_t group_now_ms_(group_coord_t *c) { return uv_now(broker_loop(c->b)); }

static inline int group_str_eq_(const char *s, group_str_t k)
{
    if (!s) return k.len < 0;
    return k.len >= 0 && strlen(s) == (size_t)k.len && memcmp(s, k.p, (size_t)k.len) == 0;
}

static inline char *group_str_dup_(group_str_t k) { return k.len < 0 ? NULL : xstrndup(k.p ? k.p : "", (size_t)k.len); }

/* group.c */
group_t *group_create_(group_coord_t *c, group_str_t gid);
/* Drops a group that holds nothing any more (no members, no offsets). */
void group_maybe_drop_(group_coord_t *c, group_t *g);

/* group_offsets.c */
/* Frees every committed offset of g. */
void group_offsets_free_(group_t *g);
void group_offset_remove_(group_t *g, goff_t *o);
/* The record key of a committed offset (format in group_offsets.c). */
void group_offset_key_(wbuf_t *w, group_str_t gid, group_str_t topic, int32_t part);
/* Rebuilds every group's offsets from the log. Returns 0 or <0. */
int group_offsets_replay_(group_coord_t *c);

#endif
