/*
 * The AMQP virtual host: its exchanges (exchange.h), its queues (queue.h),
 * and their persistence in the broker catalog. Herald has one virtual host,
 * "/". Durable exchanges, durable non-exclusive queues and the bindings
 * between durable ends are catalog records (see vhost.c for the format),
 * replayed at start-up; everything else lives in memory.
 *
 * Changes that reach the catalog are durable once broker_catalog_wait()
 * fires; front ends answer declare/delete/bind after it.
 */
#ifndef HERALD_BROKER_VHOST_H
#define HERALD_BROKER_VHOST_H

#include "amqp/wire.h"
#include "broker/broker.h"
#include "broker/exchange.h"
#include "broker/queue.h"

typedef struct vhost vhost_t;

/* The virtual host called name, or NULL (only "/" exists). */
vhost_t *broker_vhost(broker_t *b, amqp_bytes_t name);
xregistry_t *vhost_exchanges(vhost_t *v);

/* Hooks the front end registers: a queue is being deleted (consumers are
 * cancelled through qconsumer.cancelled; this is for other references). */
queue_t *vhost_queue_find(vhost_t *v, amqp_bytes_t name);
/* Creates a queue (durable ones get their logs opened and persisted).
 * flags: QF_*; owner: the exclusive owner or NULL. Returns 0 and *out,
 * or <0 (storage). The caller checked it does not exist. */
int vhost_queue_create(vhost_t *v, amqp_bytes_t name, unsigned flags, amqp_bytes_t args, void *owner,
                       queue_t **out);
/* Deletes the queue, its bindings, logs and catalog record. Returns the
 * number of ready messages it held. */
uint32_t vhost_queue_delete(vhost_t *v, queue_t *q);
/* Deletes every exclusive queue owned by owner (its connection closed). */
void vhost_owner_gone(vhost_t *v, void *owner);
/* Iteration. */
queue_t *vhost_queue_first(vhost_t *v);
queue_t *vhost_queue_next(vhost_t *v, queue_t *q);

/* Exchanges with persistence: same results as the xregistry calls. */
int vhost_exchange_declare(vhost_t *v, amqp_bytes_t name, ex_type_t type, unsigned flags, amqp_bytes_t args,
                           exchange_t **out);
int vhost_exchange_delete(vhost_t *v, exchange_t *ex, int if_unused);
int vhost_bind(vhost_t *v, exchange_t *src, xdest_t dest, amqp_bytes_t key, amqp_bytes_t args);
int vhost_unbind(vhost_t *v, exchange_t *src, xdest_t dest, amqp_bytes_t key, amqp_bytes_t args);

/* The queues a message published to ex goes to, into out (as
 * xregistry_route; headers: its headers table). One with an x-delay header
 * (> 0 ms) into an x-delayed-message exchange gets m->ready_at_ms and waits
 * in each queue it reached until due; with no queue, or a stream among
 * them, out is the exchange's delay queue alone, which routes it when due.
 * Returns 1 in that case (no route is known yet), else 0. */
int vhost_route_publish(vhost_t *v, exchange_t *ex, qmsg_t *m, amqp_bytes_t headers, xroute_t *out);

/* A message from an x-delayed-message exchange waiting in q is due: 1 if
 * its exchange still routes it to q, 0 if not (unbound, the exchange
 * deleted), checked only when bindings or exchanges changed since it was
 * published (or the broker restarted). */
int vhost_still_routes(vhost_t *v, const queue_t *q, const qmsg_t *m);

/* Lifecycle, from broker.c: vhost_new before the catalog replay, then
 * vhost_open once the replay is done (opens durable queue logs). */
vhost_t *vhost_new(broker_t *b);
int vhost_open(vhost_t *v);
void vhost_free(vhost_t *v);

#endif
