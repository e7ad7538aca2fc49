/*
 * Dead-lettering (deadletter.c): moving a message that leaves a queue to
 * the queue's dead-letter exchange, with RabbitMQ's x-death header, atomic
 * with respect to crashes. Used by the queues (queue_int.h) and, for its
 * shutdown, by the vhost.
 */
#ifndef HERALD_BROKER_DEADLETTER_H
#define HERALD_BROKER_DEADLETTER_H

#include <stdint.h>

#include "amqp/wire.h"
#include "base/buf.h"
#include "broker/queue.h"

/* Starts moving e (QE_MOVING in q, counted in its nmoving) to q's
 * dead-letter exchange with reason ("rejected", "expired", "maxlen",
 * "delivery_limit"); ends with queue_moved(). The copies of "rejected" and
 * "delivery_limit" moves (deaths a consumer causes) are published in
 * batches: DEADLETTER_BATCH_MS after the first one waits (a loop timer),
 * or at once when DEADLETTER_BATCH_MAX wait. */
#define DEADLETTER_BATCH_MS 20
#define DEADLETTER_BATCH_MAX 1024
void deadletter_move(queue_t *q, qentry_t *e, const char *reason);
/* Publishes the waiting batch now (a queue with moves in it is deleted:
 * its rejected messages must reach their targets first). */
void deadletter_publish_held(void);
/* Starts moving e (QE_MOVING) of a delay queue through the queue's
 * forward exchange (routing key, properties and body unchanged). */
void deadletter_forward(queue_t *q, qentry_t *e);
/* Starts moving e (QE_MOVING in q) into the queue called to (copied):
 * properties, x-death and body unchanged, exchange "" and routing key to,
 * with the same claim as a dead-letter move, so a crash leaves it in exactly
 * one place (the admin API's redrive). done(ctx, result) runs once at the
 * end: 1 moved; 2 not moved, e is ready in q again (the target is missing,
 * q itself, a stream, or refused it by x-overflow reject-publish); 0 the
 * copy could not be stored (e stays parked until a restart); -1 shutdown. */
void deadletter_redrive(queue_t *q, qentry_t *e, amqp_bytes_t to, void (*done)(void *ctx, int result), void *ctx);
/* Publishes a dead-letter copy of m, which is not in q (a publish refused
 * by reject-publish-dlx). */
void deadletter_copy(queue_t *q, qmsg_t *m, const char *reason);
/* The property bytes props with header x-delivery-count = count, written
 * into w (reset first); props itself if it does not decode. */
amqp_bytes_t deadletter_props_with_count(amqp_bytes_t props, uint32_t count, wbuf_t *w);
/* Ends the moves in flight (shutdown): their originals stay parked in
 * their queues, which are closed next. */
void deadletter_shutdown(void);
/* Appends again the intents of q's moves into streams still in flight
 * (after a state snapshot, which lets older records go). */
void deadletter_restate_intents(queue_t *q);

#endif
