/*
 * Queue arguments at queue.declare (qargs.c): validation and redeclare
 * equivalence, with RabbitMQ's codes and texts.
 */
#ifndef HERALD_AMQP_QARGS_H
#define HERALD_AMQP_QARGS_H

#include "amqp/internal.h"

/* Validates the arguments table content of a declare of queue qname with
 * flags (QF_*). Returns 0, or -1 after raising the channel error. */
int amqp_qargs_check(amqp_channel_t *ch, amqp_bytes_t qname, unsigned flags, amqp_bytes_t args);
/* 1 if args are equivalent to q's for a redeclare; else raises 406 and
 * returns 0. */
int amqp_qargs_equivalent(amqp_channel_t *ch, queue_t *q, amqp_bytes_t args);

#endif
