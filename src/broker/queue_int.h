/*
 * Queue internals shared by queue.c (entries, delivery, limits), queue_store.c
 * (the two logs: recovery, coalesced writes, snapshots) and deadletter.c.
 * Not for other files.
 */
#ifndef HERALD_BROKER_QUEUE_INT_H
#define HERALD_BROKER_QUEUE_INT_H

#include "broker/deadletter.h"
#include "broker/internal.h"
#include "broker/queue.h"

#include "store/batch.h"

/* A stored message whose record is not appended yet (coalesced per loop turn). */
typedef struct {
    qentry_t *e;        /* NULL once the entry was freed before the flush, or paged */
    qmsg_t *m;          /* one reference, kept until the record is written */
    int64_t expires_ms; /* for a paged message (no entry): its expiry, 0 none */
    uint8_t transient;  /* a transient message written only because the queue pages ("T") */
    uint8_t delayed;    /* a delay queue's message that waits on disk (queue_delay_push once written) */
    uint32_t returns;   /* delayed: the delivery count it waits with (a retry wait in a spill log) */
    int64_t wait_at;    /* delayed: its due time when not the message's (a retry wait), else 0 */
} qpend_t;

/* Paging (queue_page.c): in-memory ready messages above which new ones
 * stay on disk; below LOW, BATCH more are read back. */
#define QUEUE_PAGE_HIGH 65536
#define QUEUE_PAGE_LOW 16384
#define QUEUE_PAGE_BATCH 16384
#define QUEUE_DELAY_RUN 16384 /* delayed messages read back per queue_run_due */
/* Due and expired entries handled per queue_run_due, each: the rest waits
 * for the next pass, in the next turn of the loop, after it has served its
 * sockets and written what the pass queued (a burst of 65,536 expiries in
 * one pass held the loop for ~100 ms and every copy in memory at once;
 * 4,096 dead-letter moves still held publishers' confirms for ~10 ms, and
 * 1,024 cost ttl-expire a fifth of its publish rate against 256). */
#define QUEUE_DUE_RUN 256
/* A delay queue whose in-memory delayed messages take less than this
 * share of its budget (delay.memory.bytes) reads the soonest due from
 * disk back up to the budget. */
#define QUEUE_DELAY_LOW_DIV 2

/* Sorted, disjoint [from, to) offset ranges. */
typedef struct {
    int64_t from, to;
} qrange_t;
typedef struct {
    qrange_t *v;
    size_t n, cap;
} qranges_t;
void qranges_add(qranges_t *r, int64_t from, int64_t to); /* appends (merges with the last) */
void qranges_normalize(qranges_t *r);                     /* sorts and merges */
int qranges_has(const qranges_t *r, int64_t x);           /* normalized lists */
int qranges_remove(qranges_t *r, int64_t x);              /* 1 if it was there */
void qranges_free(qranges_t *r);

/* A delayed message kept on disk: its due time, record offset and where
 * the record's bytes are in its segment (pos QDELAY_NOPOS: not known, as
 * after a restart; the record is then found by scanning its batch). In a
 * queue with retry backoff it is a returned message waiting for its next
 * attempt, and returns is its delivery count (0 in delay queues). */
#define QDELAY_NOPOS UINT32_MAX
typedef struct {
    int64_t at, offset;
    uint32_t pos, len; /* bytes [pos, pos + len) of the segment holding offset */
    uint32_t returns;
} qdelay_t;
typedef struct {
    qdelay_t *v;
    uint32_t n, cap;
} qdheap_t;

/* A data-log record's headers (views into the record). */
typedef struct {
    amqp_bytes_t ex, props;
    int64_t expires, ready_at;
    int transient;        /* "T": written while paging; gone after a restart */
    int claim;            /* "o" present: a dead-letter copy of (claim_qid, claim_off) */
    uint64_t claim_qid;
    int64_t claim_off;
} qrec_hdrs_t;

/* A durable change of an entry's delivery state: state record "r". The
 * returns field carries QRET_DELIVERED (a clean stop's exact
 * "was delivered" flag) above the count. */
#define QRET_DELIVERED (INT64_C(1) << 32)
typedef struct {
    int64_t offset;
    int64_t returns;
    int64_t ready_at_ms;
} qret_t;

typedef enum { QO_DROP_HEAD, QO_REJECT_PUBLISH, QO_REJECT_PUBLISH_DLX } qoverflow_t;

/* What the queue arguments ask for (parsed once by queue_new; the front
 * end validated them). */
typedef struct {
    int64_t ttl_ms;              /* x-message-ttl, -1 none */
    int64_t expires_ms;          /* x-expires, -1 none */
    int64_t max_len;             /* x-max-length (ready messages), -1 none */
    int64_t max_bytes;           /* x-max-length-bytes (ready body bytes), -1 none */
    qoverflow_t overflow;        /* x-overflow */
    uint32_t max_prio;           /* x-max-priority, 0 none */
    int sac;                     /* x-single-active-consumer */
    int quorum;                  /* x-queue-type=quorum */
    int64_t delivery_limit;      /* x-delivery-limit, -1 none */
    int64_t backoff[QUEUE_BACKOFF_MAX]; /* x-retry-backoff delays, ms */
    int nbackoff;                /* 0: no retry backoff */
    int64_t jitter_pct;          /* x-retry-jitter, percent of each delay, 0 none */
    int64_t consumer_timeout_ms; /* x-consumer-timeout, -1 none */
    int has_dlx;                 /* x-dead-letter-exchange present ("" is the default exchange) */
    amqp_bytes_t dlx, dlrk;      /* views into the queue's args; dlrk.p NULL: keep the keys */
} qopts_t;

typedef struct {
    qentry_t *head, *tail; /* sorted by seq */
    uint32_t n;            /* entries in the list */
    uint64_t npaged;       /* this level's messages on disk (priority queues) */
    int64_t scan;          /* no paged record of this level lies below this offset */
} qlevel_t;

/* Priority queues that page: the level of each paged record, one byte per
 * data-log offset from base on (QPMAP_NONE: not paged, or taken back), in
 * chunks of QPMAP_CHUNK offsets; chunks wholly below the first paged
 * record are freed. */
#define QPMAP_CHUNK 65536
#define QPMAP_NONE 0xff
typedef struct {
    uint8_t **chunk; /* chunk[i] covers [base + i * QPMAP_CHUNK, base + (i + 1) * QPMAP_CHUNK); NULL: all NONE */
    size_t n;
    int64_t base;    /* a multiple of QPMAP_CHUNK */
} qpmap_t;

typedef struct qdedup qdedup_t; /* queue_dedup.c */
typedef struct qdkey qdkey_t;

/* Entries on a time (queue_time.c).
 *
 * A 4-ary min-heap of entries on a time (expiry: expires_ms; the delay
 * wheel's far part: ready_at_ms); in the expiry heap qentry.hidx is 1 + the entry's index. The key is kept in
 * the slot: sifting compares neighbours in the array instead of chasing
 * one pointer per level (that was 12 % of the broker's CPU in the
 * delayed benchmark). The four children of a slot share one 64-byte
 * line (v is HEAP_PAD slots past a line-aligned allocation): half the
 * levels of a binary heap, one cache miss each (a binary heap's sifts
 * were 9 % of the CPU with 300,000 delayed messages waiting). An entry's
 * key does not change while it is in. */
typedef struct {
    int64_t key;
    qentry_t *e;
} qhslot_t;
typedef struct {
    qhslot_t *v;
    uint32_t n, cap;
    int expiry;     /* 1: keyed by expires_ms, 0: by ready_at_ms */
    uint64_t bytes; /* memory of the entries in it (queue_entry_mem), bytes */
} qheap_t;
void qheap_push(qheap_t *h, qentry_t *e);
void qheap_remove(qheap_t *h, qentry_t *e);
void qheap_free(qheap_t *h);
static inline qentry_t *qheap_top(const qheap_t *h) { return h->n ? h->v[0].e : NULL; }

/* The ready entries with an expiry, by expires_ms (queue_time.c). Most
 * arrive in expiry order (a queue's x-message-ttl counts from arrival):
 * those go to the tail of a ring, and leave it from the head when they
 * expire or from anywhere when delivered, in O(1) with no sift (the
 * heap's sifts on every expiry were 4 % of the broker's CPU when every
 * message expired). One pushed with an expiry before the ring's last
 * (a per-message expiration, a requeued message) goes to the heap.
 * qentry.hidx: QEXP_RING | position for the ring, 1 + index for the heap. */
#define QEXP_RING 0x80000000u
typedef struct {
    qhslot_t *ring;        /* cap slots, a power of two; e NULL: removed (its key stays) */
    uint32_t cap;
    uint32_t head, tail;   /* positions [head, tail), counting on past cap (slot: pos & (cap - 1)) */
    uint32_t nring;        /* entries in the ring; head holds one whenever any */
    qheap_t heap;          /* those that came out of order */
} qexpiry_t;
void qexpiry_push(qexpiry_t *x, qentry_t *e);
void qexpiry_remove(qexpiry_t *x, qentry_t *e);
/* The entry that expires first, NULL when none. */
qentry_t *qexpiry_top(const qexpiry_t *x);
/* The ring's k-th slot from the head (NULL: past its end, or removed):
 * to fetch entries ahead of their expiry. */
static inline qentry_t *qexpiry_ahead(const qexpiry_t *x, uint32_t k)
{
    return x->nring && k < x->tail - x->head ? x->ring[(x->head + k) & (x->cap - 1)].e : NULL;
}
void qexpiry_free(qexpiry_t *x);

/* The delay wheel: entries waiting for their ready_at_ms, in two levels.
 * The window [base, base + QWHEEL_SLOTS ms) is cut into buckets of
 * QWHEEL_GRAIN ms; a push appends to its bucket, and a bucket is opened
 * when the wheel is first read at its time: its entries move, in push
 * order, into one slot per millisecond, each a FIFO, and popping reads
 * the slots in order. Due times before `opened` are in slots, later ones
 * in buckets, ones past the window in a heap (far) until the window
 * reaches them. The heap this replaced cost a cache miss per level for
 * each message of the delayed benchmark (10 % of the broker's CPU with
 * 300,000 waiting); pushing into the slots directly cost a miss on a slot
 * tail per push (2,000 of them in use with a second of delays ahead,
 * each touched every few milliseconds), where the ~30 bucket tails in use
 * stay in the cache. The window starts no later than the clock: one due
 * before it (already due) waits in the first slot. */
#define QWHEEL_SLOTS 4096 /* a power of two */
#define QWHEEL_GRAIN 64   /* ms per bucket, a power of two */
#define QWHEEL_BUCKETS 128 /* > QWHEEL_SLOTS / QWHEEL_GRAIN + 1: two in the window never share one */
#define QWBLOCK_N 56       /* entries per block: 512 bytes with their milliseconds and the link */
typedef struct qwblock {
    struct qwblock *next;
    qentry_t *v[QWBLOCK_N];
    uint8_t dt[QWBLOCK_N]; /* in a bucket: due time - the bucket's start, ms */
} qwblock_t;
/* A slot or a bucket: a FIFO of blocks, none when empty. Blocks come from
 * a pool, so one that fills up takes another block instead of growing an
 * array by copying it (realloc was 3 % of the broker's CPU in the delayed
 * benchmark). */
typedef struct {
    qwblock_t *head, *tail;
    uint32_t hpos, tpos; /* waiting: head->v[hpos ..] through tail->v[.. tpos) */
} qwslot_t;
typedef struct {
    qwslot_t *slot;   /* QWHEEL_SLOTS of them while it holds any, else NULL */
    qwslot_t *bucket; /* QWHEEL_BUCKETS of them (with slot) */
    int64_t base;     /* the window [base, base + QWHEEL_SLOTS): slot t % QWHEEL_SLOTS holds time t */
    int64_t lo;       /* every slot in [base, lo) is empty */
    int64_t opened;   /* due times before it are in slots, from it on (in the window) in buckets */
    uint32_t nw;      /* entries in the slots */
    uint32_t nc;      /* entries in the buckets */
    qheap_t far;      /* entries due past the window (its bytes are not kept) */
    uint64_t far_pushes;
    uint32_t n;       /* entries in all */
    uint64_t bytes;   /* memory of the entries (queue_entry_mem), bytes */
} qwheel_t;
/* now: the wall clock (the window never starts past it). */
void qwheel_push(qwheel_t *w, qentry_t *e, int64_t now);
void qwheel_remove(qwheel_t *w, qentry_t *e);
/* The earliest due time, 0 when empty. */
int64_t qwheel_next(qwheel_t *w);
/* Takes up to max entries due at now into out, in due order (the caller
 * takes their bytes off w->bytes once it touches them). */
size_t qwheel_pop_due(qwheel_t *w, int64_t now, qentry_t **out, size_t max);
/* Takes any one entry (bytes taken off), NULL when empty. */
qentry_t *qwheel_take_any(qwheel_t *w);
void qwheel_each(const qwheel_t *w, void (*fn)(void *ctx, const qentry_t *e), void *ctx);
void qwheel_free(qwheel_t *w);

/* The memory an entry and its message take (one reference counted as
 * the whole message), bytes: what a delay queue's budget counts. */
static inline uint64_t queue_entry_mem(const qentry_t *e)
{
    return sizeof *e + qmsg_size(e->m);
}

struct queue {
    broker_t *b;
    char *name;              /* owned, NUL-terminated (may contain other bytes: len below) */
    uint32_t name_len;
    uint64_t id;
    unsigned flags;          /* QF_* */
    uint8_t *args;           /* arguments table content, owned */
    uint32_t args_len;
    qopts_t opt;
    qdedup_t *dedup;         /* x-message-deduplication, NULL off */
    qranges_t paged;         /* ready records not in memory, after the ready list in order; in a
                              * priority queue it may also hold records taken back (see pmap) */
    qpmap_t pmap;            /* priority queues: the level of each paged record */
    uint32_t ptop;           /* priority queues: no level above this one has records on disk */
    uint64_t npaged, paged_bytes; /* their count and body bytes */
    int64_t page_dmark;      /* paged records at or below this come back redelivered (recovery) */
    qdheap_t dpaged;         /* delay queue: stored messages waiting on disk, by due time */
    amqp_bytes_t fwd;        /* delay queue: the exchange to route through (owned bytes), else {NULL, 0} */
    char *dir;               /* "<data>/queues/<id>", owned; NULL for non-durable */
    partition_t *data, *state; /* durable queues: the two logs; a queue that is not stored may
                              * have data as its spill log (no state log) */
    char *spill_dir;         /* not stored: "<data>/queues/<id>-spill", where its backlog pages
                              * (opened when first needed), owned; NULL: stays in memory */
    int64_t spill_retry_ms;  /* the spill log could not be opened: not tried before (mono ms) */
    int64_t spill_base;      /* where the next spill log starts: offsets stay unique in a queue's life */
    void *owner;             /* exclusive owner */
    int64_t last_used_ms;

    qlevel_t *lv;            /* ready lists, one per priority level (1 + max_prio) */
    uint32_t nlv;
    uint32_t top;            /* no level above this one holds an entry */
    qentry_t *held_head;     /* handed to consumers, not yet acked/requeued; unordered */
    qentry_t *moving_head;   /* being dead-lettered */
    qwheel_t delayed;        /* QE_DELAYED entries by ready_at_ms */
    qexpiry_t expiring;      /* QE_READY entries with an expiry, by expires_ms */
    uint32_t nready, nheld, nmoving;
    uint64_t ready_bytes;    /* body bytes of the ready entries */
    uint64_t next_seq;
    qconsumer_t *consumers;  /* ring (circular doubly linked); the next to serve
                              * (with single active consumer: the active one) */
    uint32_t nconsumers;
    int had_consumer;
    int dispatching;
    int deleted;
    int sac_wait;            /* single active consumer changed while deliveries were out */
    int64_t wake_at;         /* the due time last asked of the vhost, 0 none */
    uint32_t due_slot;       /* 1 + index in b->due_queues (queue_arm), 0 none */
    queue_counters_t counters;

    /* pending writes */
    qpend_t *pend;
    size_t npend, cappend;
    int64_t *acks;
    size_t nacks, capacks;
    qret_t *rets;
    size_t nrets, caprets;
    int64_t dmark;           /* delivered mark recorded (or pending), ahead of the deliveries */
    int64_t delivered_max;   /* highest stored offset handed out, -1 none (exact) */
    int dmark_dirty;
    int64_t snap_offset;     /* state log offset of the last snapshot written, -1 none */
    int64_t snap_size;       /* state log bytes (partition_size_bytes) after the last snapshot, 0 none */
    int64_t snap_len;        /* bytes of the last snapshot's record, 0 none */
    queue_t *dirty_next;     /* in b->dirty_queues */
    uint32_t pins;           /* publisher confirms and moves waiting on this queue */
    uint32_t epoch;          /* bumped by each failed append of pending messages */
    int64_t fail_at[16];     /* fail_at[e % 16]: first offset lost when epoch e failed */
    int dirty;
};

/* queue.c */
int queue_is_stored(const queue_t *q);
void queue_mark_dirty(queue_t *q);
void queue_wake_at(queue_t *q, int64_t t); /* asks the vhost to call queue_run_due at t (wall ms) */
void queue_arm(queue_t *q); /* q may have timed work: the due passes visit it until they find none */
void queue_due_round_free(void); /* queue_run_all_due's scratch (queue_scratch_free) */
/* Puts a recovered (or claimed-back) entry where its state says: ready
 * list of its level, or the delay heap. */
void queue_place(queue_t *q, qentry_t *e, int64_t now_ms);
/* Takes e out of the ready list / delay heap / held list. */
void queue_unplace(queue_t *q, qentry_t *e);
/* e left the queue for good: records its removal, frees it. */
void queue_entry_release(qentry_t *e);
void queue_entry_free(qentry_t *e);
/* A zeroed entry (from a pool of freed ones; queue_entry_free gives it
 * back); queue_entry_pool_free releases the pool at shutdown. */
qentry_t *queue_entry_alloc(void);
void queue_entry_pool_free(void);
/* The priority level a message's properties ask for in q. */
uint8_t queue_prio_of(const queue_t *q, const qmsg_t *m);
uint8_t queue_prio_of_props(const queue_t *q, amqp_bytes_t props);
/* Frees a deleted queue once nothing refers to it. */
void queue_maybe_free(queue_t *q);
/* A move of e (QE_MOVING) ended: ok (1), its copies are durable (e leaves
 * the queue); or failed (0) or cut short by shutdown (-1): it stays,
 * parked, until a restart brings it back. */
void queue_moved(qentry_t *e, int ok);
/* Records a durable change of e's returns / ready_at. */
void queue_record_return(queue_t *q, const qentry_t *e);

/* queue_dedup.c: x-message-deduplication (props: a message's property bytes) */
void queue_dedup_init(queue_t *q);   /* from q's arguments; leaves q->dedup NULL when off */
void queue_dedup_free(queue_t *q);
int queue_dedup_seen(queue_t *q, amqp_bytes_t props, int64_t now_ms); /* 1: a duplicate */
void queue_dedup_add(queue_t *q, amqp_bytes_t props, int64_t offset, int64_t ts_ms);
void queue_dedup_forget(queue_t *q, amqp_bytes_t props); /* a message left the queue */
/* Messages on disk left the queue without being read back (purge, a claim
 * at start-up, a failed write): the values of the records in gone
 * (normalized) are forgotten. */
void queue_dedup_forget_ranges(queue_t *q, const qranges_t *gone);
void queue_dedup_forget_offset(queue_t *q, int64_t offset); /* the same for one record */
int queue_dedup_window(const queue_t *q); /* x-cache-ttl / x-cache-size: values outlive messages */
/* The oldest data-log offset a window still needs (INT64_MAX none). */
int64_t queue_dedup_floor(queue_t *q, int64_t now_ms);

/* queue_page.c */
/* Calls fn for every record of the whole batches in [p, p + len) (what
 * plog_read returned), in offset order. */
void queue_each_record(const uint8_t *p, size_t len, void (*fn)(void *ctx, const batch_rec_t *rec), void *ctx);
int queue_pageable(const queue_t *q);
/* A queue that is not stored pages its deep backlog into a spill log: never
 * synced (nothing in it is durable), its records dropped by whole segments
 * once read back, the log removed when drained, when the queue goes and, after a
 * crash, at the next start (an orphan of the queues directory). */
int queue_is_spilling(const queue_t *q);
/* Opens q's spill log if it can have one. Returns 1 if q has it now. */
int queue_spill_open(queue_t *q);
/* The message of p, which was to wait on disk but whose record could not
 * be written, stays in memory: at the tail of the ready list of its level,
 * or, one waiting for its x-delay or a retry, in the delay wheel. */
void queue_keep_in_memory(queue_t *q, const qpend_t *p);
/* A queue that is not stored: e, waiting for a retry (ready_at_ms, its
 * returns), waits in the spill log instead of in memory. Returns 1 if so
 * (the caller frees e), 0 if it has to wait in memory. */
int queue_spill_wait(queue_t *q, const qentry_t *e);
int queue_page_out(const queue_t *q, uint8_t prio); /* 1: a new publish of that level stays on disk */
void queue_page_add(queue_t *q, int64_t offset, uint8_t prio, uint64_t body_len);
int queue_page_remove(queue_t *q, int64_t offset, uint64_t body_len); /* 1 if it was paged */
/* Reads up to max paged messages back into the ready lists, oldest first
 * whatever their level. Returns how many. */
size_t queue_page_in(queue_t *q, size_t max);
/* Before a delivery: reads back what the ready lists need next (FIFO:
 * the next batch once the list runs low; priority: the highest level with
 * records on disk, once that level is the top one and runs low). */
void queue_page_refill(queue_t *q);
/* Adds the ranges of the records still on disk to out (not normalized). */
void queue_page_live(const queue_t *q, qranges_t *out);
/* 1 if the record at offset, inside q->paged, is still on disk. */
int queue_page_holds(const queue_t *q, int64_t offset);
void queue_page_free(queue_t *q);
/* queue_delay.c. Delay queues, and retry waits past the memory budget: a
 * stored message waits on disk until at (wall ms); its record is the span
 * [pos, pos + len) of its segment (QDELAY_NOPOS: unknown); returns is the
 * delivery count it gets back (0: none). */
void queue_delay_push(queue_t *q, int64_t at, int64_t offset, uint32_t pos, uint32_t len, uint32_t returns);
/* Reads back the ones due at now_ms and, soonest first, not yet due ones
 * while their records (plus entry overhead) add up to less than ahead
 * bytes (at most QUEUE_DELAY_RUN in all, in few reads: sorted by
 * position, neighbours read together) and hands each in due order to
 * due() (ready_at_ms 0) or, not due yet, to back() (ready_at_ms its due
 * time). Returns the next due time left on disk (now_ms when more are
 * due), 0 none. */
int64_t queue_delay_run(queue_t *q, int64_t now_ms, uint64_t ahead, void (*due)(queue_t *, qentry_t *),
                        void (*back)(queue_t *, qentry_t *));
int64_t queue_delay_floor(const queue_t *q); /* lowest offset waiting, INT64_MAX none */
/* Start-up: removes (records as gone) the waiting ones at these ascending
 * offsets (claimed by their copies). Returns how many. */
size_t queue_delay_drop(queue_t *q, const int64_t *offsets, size_t n);
void queue_delay_scratch_free(void);

/* queue_flush.c (queue_flush_all is in queue.h) */
/* Appends a state record key -> val now. */
void queue_state_append(queue_t *q, const char *key, const void *val, size_t len);
void queue_flush_scratch_free(void);

/* queue_store.c */
void queue_store_free(queue_t *q); /* pending-write arrays */
void queue_rec_headers(const batch_rec_t *rec, qrec_hdrs_t *h);
/* A new entry for a stored record (not placed). */
qentry_t *queue_entry_from_record(queue_t *q, const batch_rec_t *rec, const qrec_hdrs_t *h);
/* queue_store_publish for a message that stays on disk (no entry); a
 * delayed one (delay queues) is pushed on the disk heap once written. */
int queue_store_publish_paged(queue_t *q, qmsg_t *m, int64_t expires_ms, int delayed, uint32_t *epoch,
                              int64_t *target, int64_t *offset);
/* Queues e's record when m is persistent and q stored: returns QP_WAIT
 * with epoch/target, QP_DONE, or HE_STORAGE (the log failed before). */
int queue_store_publish(queue_t *q, qentry_t *e, uint32_t *epoch, int64_t *target);
/* Records that every offset of the ranges is gone (a purge of paged messages). */
void queue_record_removed_ranges(queue_t *q, const qranges_t *r);
/* Records that the stored message at offset is gone (acked, dropped, moved). */
void queue_record_removed(queue_t *q, int64_t offset);
/* Deletion: drops pending writes, marks deleted, removes the logs. */
void queue_store_delete(queue_t *q);
/* Clean close: flushes and writes the exact delivered mark (begin), then
 * closes the logs (end, after the entries were freed). */
void queue_store_close_begin(queue_t *q);
void queue_store_close_end(queue_t *q);

#endif
