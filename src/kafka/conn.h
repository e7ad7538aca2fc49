/*
 * A Kafka client connection: framing, the per-connection request queue and
 * in-order responses.
 *
 * Wire framing (every request and response):
 *
 *   +----------------+----------------------------------------+
 *   | size: int32 BE | size bytes: header, then body          |
 *   +----------------+----------------------------------------+
 *
 * A size above max.request.bytes, or too small to hold a request header,
 * closes the connection (logged) as soon as the 4 size bytes arrive, before
 * anything is allocated for the frame.
 *
 * Requests are decoded and handled in arrival order. A handler may answer at
 * once or later (a produce waiting for fdatasync, a fetch long poll, a group
 * join); responses are written strictly in request order, as Kafka clients
 * require. If the connection closes while requests are pending, each pending
 * request stays valid until its owner completes it (kreq_done), and the
 * connection memory is freed after the last one.
 */
#ifndef HERALD_KAFKA_CONN_H
#define HERALD_KAFKA_CONN_H

#include <stdint.h>
#include <uv.h>

#include "base/arena.h"
#include "base/buf.h"
#include "kafka/kafka_msgs.h"

typedef struct broker broker_t;
typedef struct kafka_conn kafka_conn_t;
typedef struct kreq kreq_t;

struct kreq {
    kafka_conn_t *conn;       /* owning connection (refcounted by pending requests) */
    kreq_t *next;             /* in the connection's in-order queue */
    kafka_req_header_t hdr;   /* decoded header; client_id views into frame */
    rbuf_t body;              /* the request body, a view into frame */
    uint8_t *frame;           /* the request frame (owned, freed with the request) */
    arena_t arena;            /* request-scoped allocations (decoded structs) */
    wbuf_t resp;              /* the response: size, header, body */
    kcodec_splices_t splices; /* byte ranges inserted into resp when sent (zero-copy) */
    wbuf_t hold;              /* owns the memory the splices point into */
    int64_t start_ns;         /* monotonic arrival time (for metrics/latency) */
    unsigned done : 1;        /* response complete (or none is due) */
    unsigned no_response : 1; /* acks=0 produce: nothing is written back */
    void *pending;            /* handler-owned state while waiting */
};

/* Accepts a connection on `server` and starts reading. Returns 0 or <0. */
int kafka_conn_accept(broker_t *b, uv_stream_t *server);

/* Writes the response header for rq (v0 or v1 by API and version) into
 * rq->resp after the size placeholder; the handler then encodes the body. */
void kreq_begin_response(kreq_t *rq);

/* Starts/stops zero-copy encoding into rq->resp: views of stored bytes
 * written while active are sent by reference (see kcodec_splice_begin).
 * `backing` (taken over, left empty) owns the memory the views point into. */
void kreq_splice_begin(kreq_t *rq, wbuf_t *backing);
void kreq_splice_end(kreq_t *rq);

/* Marks rq answered: patches the frame size and writes every completed
 * response at the head of the connection's queue. May be called from any
 * loop callback after the handler returned; after it, rq must not be used. */
void kreq_done(kreq_t *rq);

/* The client's address as Kafka reports it ("/127.0.0.1"), NUL-terminated,
 * valid while rq is. */
const char *kreq_client_host(const kreq_t *rq);

/* True if the client has gone away (the response will be discarded). */
int kreq_conn_closed(const kreq_t *rq);

/* Closes every connection (shutdown). */
void kafka_conn_close_all(broker_t *b);

/* Number of open Kafka connections. */
int kafka_conn_count(void);

/* One open connection as the admin API shows it; strings are valid during
 * the callback only. */
typedef struct {
    const char *peer;        /* "ip:port" */
    const char *client_id;   /* of the last request ("" before the first) */
    int64_t connected_at_ms; /* wall clock */
    uint64_t requests;       /* requests received */
    uint64_t bytes_in, bytes_out;
} kafka_conn_info_t;
/* Calls fn for every open connection (loop only). */
void kafka_conn_foreach(void (*fn)(void *ctx, const kafka_conn_info_t *info), void *ctx);

#endif
