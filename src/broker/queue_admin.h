/*
 * What the HTTP admin API does to queues beyond the protocol's verbs
 * (queue_admin.c): look at ready messages without taking them, move
 * dead-lettered messages back, list consumers. Loop only.
 */
#ifndef HERALD_BROKER_QUEUE_ADMIN_H
#define HERALD_BROKER_QUEUE_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "amqp/wire.h"
#include "broker/queue.h"

/* One ready message as peek shows it: views valid during the callback. */
typedef struct {
    amqp_bytes_t exchange, key, props; /* props: flags + list, as published */
    const uint8_t *body;
    uint64_t body_len;
    int redelivered;
    uint32_t returns;                  /* deliveries given back (x-delivery-count) */
} queue_peek_msg_t;

/* Calls fn for the first (at most limit) ready messages of q in delivery
 * order (priority levels high to low, arrival order within one), the ones
 * paged out to disk included (read back from the data log, left there).
 * Delayed and unacked messages are not ready. Messages published in this
 * loop turn whose records are not appended yet are not seen when they are
 * paged. Returns how many were passed, or <0 if a paged record could not be
 * read (the ones before it were passed). */
int queue_peek(queue_t *q, size_t limit, void (*fn)(void *ctx, const queue_peek_msg_t *m), void *ctx);

/* The name of the queue a message last died in: its newest x-death entry's
 * "queue". Returns 1 and *out (a view into props), 0 if none. */
int queue_death_queue(amqp_bytes_t props, amqp_bytes_t *out);

/* Moves up to max ready messages of q (skipped ones do not count) (delivery order; only those in
 * memory: a queue paged out to disk gets one page read back first) to the
 * queue called to, or when to.p is NULL to the queue of their newest
 * x-death entry, with deadletter_redrive (crash-atomic). Messages without
 * a target stay, counted in *skipped. done(ctx, result) runs once per move
 * started, possibly before this returns (deadletter.h). Returns the number
 * of moves started. */
size_t queue_redrive(queue_t *q, size_t max, amqp_bytes_t to, void (*done)(void *ctx, int result), void *ctx,
                     size_t *skipped);

/* Links w (w->cb/ctx set by the caller) to fire once the delivery state
 * q recorded so far (acks, removals: a purge) is durable, appending the
 * pending records first. Same return rule as partition_wait: 1 (nothing
 * to wait for: durable already, or a queue without logs), 0 linked. */
int queue_wait_state(queue_t *q, pwaiter_t *w);

/* Calls fn for every consumer attached to q, in ring order. */
void queue_foreach_consumer(queue_t *q, void (*fn)(void *ctx, const qconsumer_t *c), void *ctx);

#endif
