/*
 * Channel internals shared by channel.c (lifecycle, consumers, deliveries,
 * acks, dispatch) and publish.c (content assembly, routing, publisher
 * confirms, transactions). Not for other files.
 */
#ifndef HERALD_AMQP_CHANNEL_INT_H
#define HERALD_AMQP_CHANNEL_INT_H

#include "amqp/internal.h"

struct amqp_consumer {
    qconsumer_t qc;           /* first: the queue calls back with &qc */
    amqp_channel_t *ch;
    queue_t *q;
    uint8_t tag[256];
    uint8_t tag_len;
    int no_ack;
    uint32_t prefetch;        /* per-consumer limit, 0 = none */
    uint32_t unacked;
    amqp_consumer_t *next;    /* in the channel */
};

typedef struct {
    qentry_t *e;              /* NULL: a hole (acked, requeued, or a no-ack delivery) */
    amqp_consumer_t *c;       /* the consumer it went to, NULL for basic.get or a gone consumer */
    int64_t at_ms;            /* delivered at (monotonic ms): the consumer timeout */
} slot_t;

typedef struct {
    queue_t *q;               /* pinned */
    uint32_t epoch;
    int64_t target;
} cpart_t;

typedef struct {
    uint64_t seq;
    int failed;
    uint32_t nparts, done;
    cpart_t one;              /* when nparts == 1 */
    cpart_t *parts;           /* when nparts > 1 */
} confirm_t;

/* A publish or an ack held back by a transaction. */
typedef struct txop {
    struct txop *next;
    int kind;                 /* 0 publish, 1 ack, 2 nack/reject */
    qmsg_t *m;                /* publish: the message (one reference) */
    uint8_t mandatory;
    uint64_t tag;             /* ack/nack */
    uint8_t multiple, requeue;
} txop_t;

struct amqp_channel {
    amqp_conn_t *c;
    uint16_t id;
    int opened;               /* channel.open was answered */
    int closing;              /* sent channel.close, waiting for close-ok */
    int flow_active;
    /* content being received */
    int content;              /* 0 none, 1 header expected, 2 body frames */
    uint32_t content_method;
    uint8_t pub_mandatory;
    uint8_t pub_ex_len, pub_key_len;
    uint8_t pub_names[2 * 255];   /* basic.publish's exchange, then its routing key, until the
                                   * content header says how big the message is */
    qmsg_t *msg;                  /* from the content header on */
    uint64_t body_got;        /* body bytes received */
    uint64_t body_cap;        /* body bytes msg has room for */
    int64_t content_t0;       /* metrics: when the publish's method frame began to be handled, ns */
    uint64_t content_pass;    /* ... in this parse pass of the connection */
    /* deliveries */
    slot_t *ring;
    size_t ring_cap, ring_head, ring_len;
    uint64_t ring_base;       /* tag of ring[ring_head] */
    qentry_t **taken;         /* take_tags' answer, reused: a malloc per ack of a large window
                               * consolidated glibc's fast bins each time (6 % of the broker's CPU
                               * with 300,000 delayed messages in the heap) */
    size_t taken_cap;
    uint64_t last_tag;
    uint32_t unacked;
    uint32_t prefetch_next;   /* per-consumer prefetch for consumers created from now */
    uint32_t prefetch_global; /* channel-wide limit, 0 none */
    amqp_consumer_t *consumers;
    /* confirms */
    int confirm_mode;
    uint64_t pub_seq;
    confirm_t *cf;
    size_t cf_head, cf_len, cf_cap;
    pwaiter_t cf_wait;
    int cf_waiting;
    /* transactions */
    int tx_mode;
    txop_t *tx_head, *tx_tail;
    int tx_committing;
    char last_queue[256];
    uint8_t last_queue_len;
    /* direct reply-to: the no-ack consumer of amq.rabbitmq.reply-to */
    uint8_t reply_tag[256];
    uint8_t reply_tag_len;
    int reply_consuming;
};

#define AMQP_BODY_FIRST_ALLOC (1u << 20) /* body room allocated before the bytes arrive */
#define REPLY_QUEUE "amq.rabbitmq.reply-to"
#define REPLY_PREFIX "amq.rabbitmq.reply-to."
/* channel.c */
void amqp_ch_send(amqp_channel_t *ch, const amqp_method_t *m);
/* Records a delivery under the next tag (e NULL: a no-ack delivery, a hole). */
void amqp_ring_push(amqp_channel_t *ch, qentry_t *e, amqp_consumer_t *c);
/* basic.ack/nack/reject on the entries the tag covers. Returns 0 or <0
 * after a channel error. */
int amqp_do_ack(amqp_channel_t *ch, uint32_t method, uint64_t tag, int multiple, int ack, int requeue);

/* publish.c */
int amqp_publish_method(amqp_channel_t *ch, const amqp_basic_publish_t *p);
int amqp_publish_header(amqp_channel_t *ch, const uint8_t *p, uint32_t len);
int amqp_publish_body(amqp_channel_t *ch, const uint8_t *p, uint32_t len);
/* Sends the confirms that are due; waits for the rest. */
void amqp_confirms_advance(amqp_channel_t *ch);
confirm_t *amqp_cf_at(amqp_channel_t *ch, size_t i);
/* Unpins the queues of a confirm entry and frees its parts. */
void amqp_cf_release(confirm_t *cf);
int amqp_tx_commit(amqp_channel_t *ch);
int amqp_tx_rollback(amqp_channel_t *ch);

#endif
