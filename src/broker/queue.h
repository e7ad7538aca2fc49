/*
 * AMQP queues: a log of messages plus delivery state (DESIGN.md, "Queues
 * are logs plus delivery state").
 *
 * In memory a queue holds every live message as an entry: the ready list
 * (sorted by arrival sequence, so a requeued message goes back ahead of
 * newer ones) and the entries handed to consumers (owned by the front end's
 * channel until acked or requeued). A durable queue also writes each
 * persistent message to its data log and each ack to its state log; both
 * are partition logs under data/queues/ (one directory pair per queue id)
 * and recovered at start-up:
 *
 *   queues/ID-log     one record per persistent message:
 *       key = routing key, value = body, timestamp = arrival (ms),
 *       headers "x" = exchange name, "p" = the content-header property
 *       bytes (flags + list) exactly as published, "e" = expiry time
 *       (int64 BE, ms) when a TTL applies.
 *   queues/<id>-state   delivery state records:
 *       key "a": value = acked (or dropped) message offsets, int64 BE each
 *       key "d": value = int64 BE, every message at or below this offset
 *                may have been delivered (redelivered=true after a restart)
 *       key "s": snapshot, value = int64 BE end offset E, int64 BE
 *                delivered mark, then the live offsets below E (int64 BE
 *                each); replay restarts from the latest snapshot
 *
 * A message at offset o is live after recovery iff it is in the data log,
 * not acked after the last snapshot, and either o >= E or o is in the
 * snapshot's live list. Records are appended (coalesced per loop turn) and
 * synced by the group-commit flusher with everything else.
 *
 * Transient messages (delivery-mode != 2) and every message of a
 * non-durable queue stay in memory only.
 */
#ifndef HERALD_BROKER_QUEUE_H
#define HERALD_BROKER_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "amqp/wire.h"
#include "base/buf.h"
#include "broker/broker.h"

typedef struct queue queue_t;
typedef struct qentry qentry_t;
typedef struct qconsumer qconsumer_t;

/* The exchange and routing key that many messages share (queue.c keeps
 * the pairs it saw recently): one allocation, refcounted. */
typedef struct qnames {
    uint32_t refs;
    uint32_t hash;
    uint8_t exchange_len, key_len;
    uint8_t data[]; /* exchange | routing key */
} qnames_t;

/* A published message: one allocation shared (refcounted) by every queue
 * it was routed to. Immutable after qmsg_new + filling the body. */
typedef struct qmsg {
    uint32_t refs;
    uint8_t persistent;    /* delivery-mode 2 */
    uint8_t exchange_len;  /* bytes */
    uint8_t key_len;       /* routing key bytes */
    uint8_t pool_class;    /* internal: base/slab class of its allocation (32-byte units), 0 malloc */
    uint32_t props_len;    /* property bytes (flags + list) */
    uint8_t shared_names;  /* internal: data starts with a qnames_t * (one reference), not the names */
    uint8_t entry_used;    /* internal: the room for an entry after the data holds one (queue.c) */
    uint64_t body_len;
    int64_t ts_ms;         /* arrival, wall clock */
    int64_t expiration_ms; /* per-message TTL from the "expiration" property, -1 none */
    int64_t ready_at_ms;   /* not deliverable before this wall-clock time (delayed exchange), 0 none */
    uint64_t origin_qid;   /* a dead-letter copy: the queue it left (its claim, see deadletter.h) */
    int64_t origin_off;    /* ... and its offset there; -1: not a claiming copy */
    uint8_t data[];        /* exchange | routing key | props | body; with shared_names,
                            * the qnames_t pointer instead of exchange | routing key */
} qmsg_t;

/* Allocates a message with refs = 1, arriving now; the caller copies the
 * body into qmsg_body(m). */
qmsg_t *qmsg_new(amqp_bytes_t exchange, amqp_bytes_t key, amqp_bytes_t props, uint64_t body_len);
/* The same with room for only body_cap <= body_len body bytes, grown with
 * qmsg_grow while the caller is the only owner (a peer's declared size is
 * not allocated before its bytes arrive), arriving at ts_ms (wall ms: a
 * front end passes when it read the bytes, one clock reading per read). */
qmsg_t *qmsg_new_room(amqp_bytes_t exchange, amqp_bytes_t key, amqp_bytes_t props, uint64_t body_len,
                      uint64_t body_cap, int64_t ts_ms);
/* Reallocates m (refs == 1) to hold body_cap body bytes; returns it. */
qmsg_t *qmsg_grow(qmsg_t *m, uint64_t body_cap);
static inline qmsg_t *qmsg_ref(qmsg_t *m) { m->refs++; return m; }
void qmsg_unref(qmsg_t *m); /* NULL ok */
/* Bytes of the messages alive now (the vhost gives memory back to the OS
 * once they fell well below their peak: a queue drained). */
uint64_t queue_msg_bytes(void);
/* Test hook: messages and entries come from base/slab once the live
 * messages hold this many bytes (default 1 MiB; 0: always). */
void queue_slab_from(uint64_t bytes);
/* Frees the pool of blocks that emptied delay-wheel slots gave back. */
void qwheel_pool_release(void);
/* Frees the recently seen exchange and routing-key pairs that no message
 * holds (the broker's end, tests). */
void qmsg_names_release(void);
static inline const uint8_t *qmsg_names(const qmsg_t *m)
{
    const qnames_t *n;
    if (!m->shared_names) return m->data;
    memcpy(&n, m->data, sizeof n);
    return n->data;
}
/* Bytes the names take in the message itself. */
static inline size_t qmsg_names_size(const qmsg_t *m)
{
    return m->shared_names ? sizeof(qnames_t *) : (size_t)m->exchange_len + m->key_len;
}
/* Bytes of the message's allocation in use: header, names, props, body. */
static inline size_t qmsg_size(const qmsg_t *m) { return sizeof *m + qmsg_names_size(m) + m->props_len + m->body_len; }
static inline amqp_bytes_t qmsg_exchange(const qmsg_t *m) { return (amqp_bytes_t){qmsg_names(m), m->exchange_len}; }
static inline amqp_bytes_t qmsg_key(const qmsg_t *m) { return (amqp_bytes_t){qmsg_names(m) + m->exchange_len, m->key_len}; }
static inline amqp_bytes_t qmsg_props(const qmsg_t *m)
{
    return (amqp_bytes_t){m->data + qmsg_names_size(m), m->props_len};
}
static inline uint8_t *qmsg_body(qmsg_t *m) { return m->data + qmsg_names_size(m) + m->props_len; }

/* Where an entry is (qentry.state). */
enum {
    QE_READY = 1, /* in the ready list of its priority */
    QE_HELD,      /* handed to a consumer (or basic.get), not yet acked or given back */
    QE_DELAYED,   /* waiting for ready_at_ms (retry backoff, delayed exchange) */
    QE_MOVING,    /* being dead-lettered: leaves the queue once its copies are durable */
};

/* One message in one queue. */
struct qentry {
    qentry_t *prev, *next; /* in the list of its state (ready level, held, moving) */
    queue_t *q;
    qmsg_t *m;             /* one reference */
    uint64_t seq;          /* arrival order in this queue */
    int64_t offset;        /* record offset in the data log, -1 if not stored */
    int64_t expires_ms;    /* wall-clock expiry, 0 none */
    int64_t ready_at_ms;   /* QE_DELAYED until this wall-clock time, 0 none */
    uint32_t deliveries;   /* times handed out (this run) */
    uint32_t returns;      /* times given back unacked (nack/reject with requeue, consumer gone):
                            * the delivery count of x-delivery-limit and x-retry-backoff; durable */
    uint32_t hidx;         /* internal: 1 + index in the expiry heap, 0 none (the delay heap keeps none) */
    uint32_t pend_slot;    /* internal: 1 + index in the queue's pending writes, 0 none */
    uint8_t redelivered;   /* handed out before (this run or a previous one) */
    uint8_t state;         /* QE_* */
    uint8_t prio;          /* priority level, 0 .. x-max-priority */
    uint8_t parked;        /* QE_MOVING whose move failed: stays until a restart */
    uint8_t slab;          /* internal: where its memory is from, a QE_FROM_* */
};

/* Where an entry's memory is from (qentry.slab). */
enum { QE_FROM_MALLOC, QE_FROM_SLAB, QE_FROM_MSG /* the room after its message's bytes */ };

/* A consumer, embedded in the front end's struct. */
struct qconsumer {
    qconsumer_t *prev, *next; /* in the queue's consumer ring (internal) */
    queue_t *q;               /* set while attached */
    /* 1 if it can take one more message now (prefetch, write backlog). */
    int (*can_take)(qconsumer_t *c);
    /* Hands e over: the consumer owns it until queue_ack/queue_requeue
     * (a no-ack consumer acks it right after writing it). */
    void (*deliver)(qconsumer_t *c, qentry_t *e);
    /* The queue is being deleted: the consumer was detached. */
    void (*cancelled)(qconsumer_t *c);
    int exclusive;
};

/* QF_STREAM: a stream queue (broker/stream.h): the topic of the same
 * name; its messages live in the topic's partition, not in queue logs. */
enum { QF_DURABLE = 1, QF_EXCLUSIVE = 2, QF_AUTO_DELETE = 4, QF_STREAM = 8 };

/* Creates a queue in memory. With QF_DURABLE, dir (taken over) is its log
 * directory, opened by queue_open(); NULL otherwise. args: the arguments
 * table content (copied). owner: the exclusive owner (opaque), or NULL. */
queue_t *queue_new(broker_t *b, amqp_bytes_t name, uint64_t id, unsigned flags, amqp_bytes_t args, char *dir);
/* Opens and recovers the logs of a durable queue (blocking; at start-up or
 * declare). Returns 0 or <0. */
int queue_open(queue_t *q);
/* Deletes the queue: consumers get cancelled(), ready messages are dropped,
 * the logs are removed. Entries held by consumers stay valid; acking or
 * requeueing them is then a no-op that frees them. The struct itself is
 * freed when the last such entry is released. */
void queue_delete(queue_t *q);
/* Closes without deleting (shutdown). Entries held by consumers must have
 * been released first. */
void queue_close(queue_t *q);

amqp_bytes_t queue_name(const queue_t *q);
const char *queue_name_cstr(const queue_t *q);
uint64_t queue_id(const queue_t *q);
unsigned queue_flags(const queue_t *q);
amqp_bytes_t queue_args(const queue_t *q);
uint32_t queue_ready_count(const queue_t *q);
uint32_t queue_unacked_count(const queue_t *q);
uint32_t queue_consumer_count(const queue_t *q);
uint32_t queue_delayed_count(const queue_t *q); /* waiting for a retry delay or x-delay */
uint64_t queue_ready_bytes(const queue_t *q);   /* body bytes of the ready messages */
int queue_is_quorum(const queue_t *q);          /* x-queue-type=quorum */
int64_t queue_consumer_timeout_ms(const queue_t *q); /* x-consumer-timeout, -1 none */
int queue_is_deleted(const queue_t *q);
void *queue_owner(const queue_t *q);
void queue_set_owner(queue_t *q, void *owner);
/* Where a queue that is not stored pages a deep backlog (owned from here;
 * NULL: it keeps its backlog in memory). */
void queue_set_spill_dir(queue_t *q, char *dir);
/* For the vhost's x-expires and auto-delete handling. */
int64_t queue_last_used_ms(const queue_t *q);
void queue_touch(queue_t *q);
int64_t queue_expires_ms(const queue_t *q);   /* x-expires, -1 none */
int queue_had_consumer(const queue_t *q);
int queue_has_exclusive_consumer(const queue_t *q);

/* Running totals of a queue since the broker started (not durable), read
 * by the HTTP API and /metrics, which derive rates from them. */
typedef struct {
    uint64_t published;     /* messages enqueued by queue_publish (not duplicates, not refused) */
    uint64_t refused;       /* publishes refused by x-overflow reject-publish(-dlx) */
    uint64_t duplicates;    /* publishes dropped as duplicates (x-message-deduplication) */
    uint64_t delivered;     /* hand-outs to consumers and basic.get, redeliveries included */
    uint64_t redelivered;   /* of those, messages handed out before */
    uint64_t acked;         /* acknowledged (including no-ack deliveries) */
    uint64_t returned;      /* given back unacked: nack/reject with requeue, recover, consumer gone */
    uint64_t dead_lettered; /* moves to the dead-letter exchange begun (any reason) */
    uint64_t expired;       /* TTL expiries (dead-lettered or dropped) */
    uint64_t dropped;       /* discarded: rejected/expired/overflowed without a DLX, purged */
} queue_counters_t;
const queue_counters_t *queue_counters(const queue_t *q);

/* Adds m (takes no reference of the caller's; the queue takes its own) and
 * tries to deliver. If the message is stored in the data log, returns
 * QP_WAIT and fills epoch and target for queue_publish_state and
 * queue_wait. Returns QP_DONE if nothing needs waiting (transient,
 * non-durable), QP_REJECTED if a full queue with x-overflow reject-publish
 * (-dlx) refused it (the publisher gets a nack), or <0 if storing failed
 * (the message is kept in memory, not durable). */
enum { QP_DONE = 0, QP_WAIT = 1, QP_REJECTED = 2 };
int queue_publish(queue_t *q, qmsg_t *m, uint32_t *epoch, int64_t *target);

/* Makes q a delay queue of the exchange called exchange (copied): its
 * messages are routed through that exchange when their ready_at_ms comes
 * (moved like dead letters, atomic with respect to crashes), never
 * delivered to consumers. */
void queue_set_forward(queue_t *q, amqp_bytes_t exchange);

/* Parses an x-retry-backoff schedule ("1s,5s,30s,5m": numbers with unit
 * ms, s, m or h; a bare number is ms) into out (at most max delays, ms).
 * Returns the count (>= 1) or -1 if malformed. */
int queue_parse_backoff(amqp_bytes_t s, int64_t *out, int max);
#define QUEUE_BACKOFF_MAX 32

void queue_consumer_add(queue_t *q, qconsumer_t *c);
/* Detaches c. The entries it holds stay with the front end. */
void queue_consumer_remove(queue_t *q, qconsumer_t *c);
/* Consumers may take messages now (credit returned): deliver what fits. */
void queue_kick(queue_t *q);

/* basic.get: the next ready message (the caller owns it as with deliver),
 * or NULL. */
qentry_t *queue_get(queue_t *q);
/* Acknowledges and frees e (records the ack for a stored message). */
void queue_ack(qentry_t *e);
/* basic.reject / basic.nack with requeue=false: dead-letters e (reason
 * "rejected") if the queue has a dead-letter exchange, else acks it. */
void queue_reject(qentry_t *e);
/* Gives entries back (nack/reject with requeue, recover, consumer gone):
 * each counts one return. Past x-delivery-limit or the end of the
 * x-retry-backoff schedule an entry is dead-lettered (reason
 * "delivery_limit"); with x-retry-backoff it waits for its delay; else it
 * goes back to the ready list in arrival order, marked redelivered. Then
 * delivers. */
void queue_requeue(qentry_t **es, size_t n);
/* The property bytes to deliver e with (get: for basic.get): its
 * message's, or (a queue that counts deliveries, after a return) a copy
 * with the x-delivery-count header, written into w (the caller's scratch). */
amqp_bytes_t queue_entry_props(const qentry_t *e, int get, wbuf_t *w);
/* Drops every ready message (acked as removed). Returns how many. */
uint32_t queue_purge(queue_t *q);

/* Timed work due at now_ms: expired ready messages (x-message-ttl /
 * expiration) are dead-lettered or dropped, delayed ones whose time came
 * become ready, at most QUEUE_DUE_RUN of each. Returns the wall-clock time
 * of the next such event (now_ms when more is due than one call takes), 0
 * none. The vhost's due timer calls it (queues ask for it with
 * vhost_wake_at), and calls it again in the loop's next turn for more. */
int64_t queue_run_due(queue_t *q, int64_t now_ms);
/* Entries that due passes handed on or expired from memory so far, in
 * all queues (the vhost spaces its passes while they take many). */
uint64_t queue_due_work(void);
/* One due pass: queue_run_due on each queue of b that may have timed work
 * (an expiry, a delay, a paged TTL); a queue in which it finds none leaves
 * that round until it gets some again. Returns the earliest next due
 * time, as queue_run_due does (0 none). */
int64_t queue_run_all_due(broker_t *b, int64_t now_ms);
/* Calls of queue_run_due so far (tests). */
uint64_t queue_due_visits(void);

/* Writes a snapshot of the delivery state when its log has grown, and
 * drops log segments nobody needs any more. From the maintenance timer. */
void queue_maintain(queue_t *q);

/* Publisher confirms hold a queue (pin) while waiting for its log; the
 * struct outlives a deletion until unpinned. */
void queue_pin(queue_t *q);
void queue_unpin(queue_t *q);
/* Where a stored publish stands: *epoch is recorded by queue_publish.
 * Returns 1 if durable (or the queue was deleted since: nothing left to
 * wait for), 0 if not yet, <0 if storing it failed. */
int queue_publish_state(queue_t *q, uint32_t epoch, int64_t target);
/* Links w (w->cb/ctx set by the caller) to fire when the data log's
 * durable offset may have reached target. Same return rule as
 * partition_wait. */
int queue_wait(queue_t *q, pwaiter_t *w, int64_t target);

/* Dead-letter claims. A dead-letter copy stored in a target queue's data
 * log names the (queue id, offset) it left as record header "o"; the
 * source records the removal only once the copy is durable. At start-up
 * the claims found in every data log remove their sources' entries that a
 * crash left behind, so a moved message is in exactly one place. */
typedef struct {
    uint64_t qid;
    int64_t offset;
} qclaim_t;
/* The claims queue_open met since the last call; *out is malloc'd (the
 * caller frees it), NULL when none. */
size_t queue_take_claims(qclaim_t **out);
/* Removes (records as gone) the live entries at these offsets (ascending). */
void queue_drop_claimed(queue_t *q, const int64_t *offsets, size_t n);

/* Moves into a stream (a Kafka topic) cannot rely on the target's replay,
 * which reads no stream: before such a copy is published, the source
 * queue's state log records an intent ("m": offset, stream queue id, the
 * stream's next offset then), durably. At start-up the intents whose
 * original is still live name where in which stream a copy may be; the
 * claims found there from that offset on (stream_scan_claims) remove the
 * originals as above. */
typedef struct {
    uint64_t stream_qid;
    int64_t from;      /* the copy, if any, is at this stream offset or later */
    uint64_t qid;      /* the source queue and the original's offset: the claim to look for */
    int64_t offset;
} qintent_t;
/* The intents of live originals queue_open met since the last call
 * (*out malloc'd, NULL when none). */
size_t queue_take_intents(qintent_t **out);

/* Appends the coalesced records (messages, acks) of every queue with
 * pending writes. Called once per loop turn (a uv_prepare in the vhost). */
void queue_flush_all(broker_t *b);
/* Frees the scratch memory the flushes keep (at shutdown). */
void queue_scratch_free(void);

#endif
