/*
 * AMQP front end internals shared by conn.c (connection, frames,
 * heartbeats, resource alarms), handshake.c (connection.start .. open-ok),
 * channel.c (channels, publishing, deliveries, acks, confirms,
 * transactions) and h_entities.c (exchange.* and queue.*).
 */
#ifndef HERALD_AMQP_INTERNAL_H
#define HERALD_AMQP_INTERNAL_H

#include <stdint.h>
#include <uv.h>

#include "amqp/amqp_methods.h"
#include "amqp/props.h"
#include "amqp/wire.h"
#include "base/buf.h"
#include "broker/broker.h"
#include "broker/vhost.h"

typedef struct amqp_conn amqp_conn_t;
typedef struct amqp_channel amqp_channel_t;
typedef struct amqp_consumer amqp_consumer_t;

typedef enum {
    AC_HEADER,   /* waiting for the protocol header */
    AC_START_OK, /* sent connection.start */
    AC_TUNE_OK,  /* sent connection.tune */
    AC_OPEN,     /* waiting for connection.open */
    AC_RUNNING,  /* open */
    AC_CLOSING,  /* sent connection.close, waiting for close-ok */
    AC_CLOSED,   /* socket closing */
} amqp_conn_state_t;

/* Client capabilities that change what the server may send. */
enum { CAP_CANCEL_NOTIFY = 1, CAP_BLOCKED = 2, CAP_AUTH_FAILURE_CLOSE = 4 };

struct amqp_conn {
    broker_t *b;
    vhost_t *vh;
    uv_tcp_t tcp;
    amqp_conn_state_t state;
    uint8_t *in;             /* unparsed input */
    size_t in_len, in_cap;
    wbuf_t out;              /* frames not yet handed to the socket */
    wbuf_t inflight;         /* frames being written */
    uv_write_t wreq;
    int writing;
    int reading;             /* uv_read_start active */
    int close_when_flushed;  /* close the socket once the output is written */
    int waiting;             /* a handler waits for durability: input parsing paused */
    int blocked;             /* an alarm blocks this publisher: input neither parsed nor read */
    int blocked_sent;        /* connection.blocked sent, connection.unblocked owed */
    pwaiter_t wait;          /* for `waiting` */
    void (*wait_done)(amqp_conn_t *c, int status);
    uint16_t channel_max;
    uint32_t frame_max;      /* negotiated (or offered, before tune-ok) */
    uint16_t heartbeat_s;    /* negotiated, 0 none */
    uv_timer_t timer;        /* heartbeats and the close-ok timeout */
    int64_t last_recv_ms, last_send_ms;
    int64_t recv_wall_ms;    /* wall clock of the last read: the arrival time of what it brought */
    unsigned caps;           /* CAP_* */
    amqp_channel_t **channels; /* indexed by channel id, chan_cap slots, [0] unused */
    uint32_t chan_cap;       /* grows to the highest id used + 1 (at most 65536) */
    uint32_t nchan;          /* open channels: channel_max limits this, as RabbitMQ */
    char peer[64];           /* "127.0.0.1:34567" */
    char user[64];
    /* For the admin API (amqp/admin.h): from start-ok's client-properties,
     * printable ASCII, NUL-terminated, "" when absent. */
    char client_product[64], client_version[32], conn_name[128];
    int64_t connected_at_ms;      /* wall clock */
    uint64_t bytes_in, bytes_out; /* socket bytes read / handed to writes */
    int refs;                /* the socket + pending callbacks; freed at 0 */
    int loopback;            /* peer address is loopback */
    uint64_t id;             /* random: names the connection in direct reply-to addresses */
    uint64_t parse_passes;   /* parse_input runs: frames of one pass are handled back to back */
    amqp_conn_t *prev, *next; /* all connections */
    amqp_conn_t *dirty_next;  /* in the list of connections with output to flush */
    int dirty;
};

/* ---- conn.c ---- */

/* Appends a method frame on channel ch. */
void amqp_send_method(amqp_conn_t *c, uint16_t ch, const amqp_method_t *m);
/* Appends a content-bearing method with its header and body frames. */
void amqp_send_content(amqp_conn_t *c, uint16_t ch, const amqp_method_t *m, amqp_bytes_t props,
                       const uint8_t *body, uint64_t body_len);
/* Starts writing what was appended (at the end of each callback). */
void amqp_conn_flush(amqp_conn_t *c);
/* Hard error: sends connection.close with the code and text and stops
 * processing input. text is formatted like printf. */
void amqp_conn_error(amqp_conn_t *c, uint16_t code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The open connection with this id, or NULL. */
amqp_conn_t *amqp_conn_by_id(uint64_t id);
/* Bytes queued for the socket (deliveries stop above a threshold). */
size_t amqp_conn_backlog(const amqp_conn_t *c);
#define AMQP_BACKLOG_MAX (4u << 20)
/* Pauses input until wait_done runs (a reply that needs durability). The
 * caller linked c->wait (partition_wait/broker_catalog_wait returned 0). */
void amqp_conn_hold(amqp_conn_t *c, void (*done)(amqp_conn_t *c, int status));

/* The channel with this id, or NULL. */
static inline amqp_channel_t *amqp_conn_channel(const amqp_conn_t *c, uint32_t id)
{
    return id < c->chan_cap ? c->channels[id] : NULL;
}
/* Forgets a channel that is being freed. */
void amqp_conn_drop_channel(amqp_conn_t *c, uint16_t id);
/* Releases channels and exclusive queues and closes the socket at once,
 * without connection.close (a refused login without the capability). */
void amqp_conn_close(amqp_conn_t *c);
/* Replaces the handshake deadline with the heartbeat timer (if one was
 * negotiated). */
void amqp_conn_heartbeats_start(amqp_conn_t *c);

/* ---- handshake.c: connection.start .. connection.open-ok ---- */

/* Sends connection.start (the protocol header arrived). */
void amqp_handshake_start(amqp_conn_t *c);
/* connection.start-ok, tune-ok, open. Each returns 0, or <0 after the
 * connection was closed or a hard error raised. */
int amqp_handshake_start_ok(amqp_conn_t *c, const amqp_connection_start_ok_t *so);
int amqp_handshake_tune_ok(amqp_conn_t *c, const amqp_connection_tune_ok_t *t);
int amqp_handshake_open(amqp_conn_t *c, const amqp_connection_open_t *o);

/* ---- channel.c ---- */

amqp_channel_t *amqp_channel_new(amqp_conn_t *c, uint16_t id);
/* Every connection: amqp_conn_next(NULL) is the first. */
amqp_conn_t *amqp_conn_next(amqp_conn_t *c);
/* Releases everything (consumers removed, unacked requeued) and frees. */
void amqp_channel_free(amqp_channel_t *ch);
/* Handles one frame for an open channel. Returns 0, or <0 after a hard
 * error was raised. */
int amqp_channel_frame(amqp_channel_t *ch, uint8_t type, const uint8_t *payload, uint32_t len);
/* Soft error: channel.close with code and text; the channel's resources
 * are released at once, its frames ignored until close-ok. */
void amqp_channel_error(amqp_channel_t *ch, uint16_t code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* End of an input batch: emit confirms, flush. */
void amqp_channel_after_input(amqp_channel_t *ch);
/* The socket drained: consumers may take more. */
void amqp_channel_kick(amqp_channel_t *ch);
uint16_t amqp_channel_id(const amqp_channel_t *ch);
int amqp_channel_closing(const amqp_channel_t *ch);
/* Remembers the queue last declared on the channel (for "" names). */
void amqp_channel_set_last_queue(amqp_channel_t *ch, amqp_bytes_t name);
amqp_bytes_t amqp_channel_last_queue(const amqp_channel_t *ch);
amqp_conn_t *amqp_channel_conn(const amqp_channel_t *ch);

/* ---- h_entities.c: exchange.* and queue.* methods ---- */

/* Returns 0, or <0 if the channel or the connection was closed. */
int amqp_handle_entity(amqp_channel_t *ch, const amqp_method_t *m);
/* Finds the queue for a consume/get/bind, raising 404/405 as RabbitMQ.
 * Returns NULL after raising the error. */
queue_t *amqp_queue_for(amqp_channel_t *ch, amqp_bytes_t name, uint32_t method_id);
/* Deletes an auto-delete queue that has lost its last consumer. */
void amqp_queue_maybe_autodelete(amqp_conn_t *c, queue_t *q);

/* ---- stream_consumer.c: stream queues (x-queue-type=stream) ---- */

/* queue.declare when it concerns a stream (asks for one, or names an
 * existing one). Returns 1 if not (the classic path goes on), else 0, or
 * <0 after raising an error. */
int amqp_stream_declare(amqp_channel_t *ch, const amqp_queue_declare_t *a);
/* basic.consume on a stream: manual acks, a per-consumer prefetch and a
 * valid x-stream-offset are required. Returns 0 or <0 after raising. */
int amqp_stream_consume_check(amqp_channel_t *ch, const amqp_basic_consume_t *a, queue_t *q);
/* Starts the reader of a stream consumer just attached with
 * queue_consumer_add. */
void amqp_stream_consume_start(amqp_channel_t *ch, queue_t *q, qconsumer_t *qc, amqp_bytes_t args);
/* basic.get / queue.purge (method) on a stream: raises 540 and returns 1;
 * 0 for other queues. */
int amqp_stream_refuse(amqp_channel_t *ch, queue_t *q, uint32_t method);
/* basic.nack/reject/recover (method) covering stream deliveries: the
 * entries es (taken from the ring) are released, 540 is raised and 1
 * returned; 0 if none of them is a stream's. */
int amqp_stream_settle_refused(amqp_channel_t *ch, uint32_t method, qentry_t **es, size_t n);

#endif
