/*
 * AMQP 0-9-1 connections (the front end's public face for the server).
 * Everything else of the front end is internal (amqp/internal.h).
 */
#ifndef HERALD_AMQP_CONN_H
#define HERALD_AMQP_CONN_H

#include <uv.h>

typedef struct broker broker_t;

/* Accepts a connection on server and starts the handshake. Returns 0 or <0. */
int amqp_conn_accept(broker_t *b, uv_stream_t *server);
/* Closes every AMQP connection (shutdown): unacked messages are requeued. */
void amqp_conn_close_all(broker_t *b);
/* Number of open AMQP connections. */
int amqp_conn_count(void);
/* Number of open channels over all AMQP connections. */
int amqp_channel_count(void);
/* Makes AMQP connections follow the broker's resource alarms (broker/alarm.h):
 * publishers are blocked while one is on. Called once, after broker_new. */
void amqp_conn_watch_alarms(broker_t *b);

#endif
