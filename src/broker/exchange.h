/*
 * Exchanges and bindings of one virtual host, and routing: which queues a
 * message published to an exchange reaches. In memory only; the caller
 * persists durable exchanges and bindings in the catalog and replays them
 * through the same calls at start-up.
 *
 * Types (RabbitMQ semantics):
 *   direct   binding key == routing key
 *   fanout   every binding
 *   topic    dot-separated words; in a binding key "*" matches exactly one
 *            word and "#" zero or more ("#" alone matches everything, an
 *            empty routing key has zero words)
 *   headers  binding arguments against the message's headers table:
 *            x-match = all (default) | any | all-with-x | any-with-x; keys
 *            starting "x-" are ignored unless *-with-x; a void value in the
 *            binding matches presence only
 *
 * The default exchange "" routes to the queue named by the routing key
 * (looked up through xregistry_t's queue_lookup callback) and cannot be
 * bound to, unbound, declared with another type or deleted. The registry
 * pre-declares amq.direct, amq.fanout, amq.topic, amq.headers and amq.match
 * (durable); names starting "amq." are reserved for them (the caller refuses
 * declares of new "amq." names with ACCESS_REFUSED).
 *
 * Destinations are queues (opaque pointers owned by the caller) or other
 * exchanges (exchange-to-exchange bindings). Routing follows exchange
 * bindings transitively, visits each exchange at most once (cycles are
 * harmless) and returns each queue at most once.
 */
#ifndef HERALD_BROKER_EXCHANGE_H
#define HERALD_BROKER_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "amqp/wire.h"

typedef struct exchange exchange_t;
typedef struct xregistry xregistry_t;
typedef struct xbinding xbinding_t;

typedef enum { EX_DIRECT, EX_FANOUT, EX_TOPIC, EX_HEADERS } ex_type_t;

/* EXF_DELAYED: declared with type x-delayed-message; the exchange routes
 * as its x-delayed-type, and publishes with an x-delay header wait first
 * (the vhost's delay queue, vhost.c). */
enum { EXF_DURABLE = 1, EXF_AUTO_DELETE = 2, EXF_INTERNAL = 4, EXF_DELAYED = 8 };

typedef enum { XDEST_QUEUE, XDEST_EXCHANGE } xdest_kind_t;

typedef struct {
    xdest_kind_t kind;
    void *ptr; /* the queue (opaque) or exchange_t * */
} xdest_t;

/* Callbacks into the owner. queue_lookup: the queue called name, or NULL.
 * on_auto_delete: ex is about to be freed because its last binding as a
 * source went away and it is auto-delete (the owner drops it from the
 * catalog); ex is still valid during the call. */
typedef struct {
    void *ctx;
    void *(*queue_lookup)(void *ctx, amqp_bytes_t name);
    void (*on_auto_delete)(void *ctx, exchange_t *ex);
} xregistry_ops_t;

/* Creates a registry with "" and the amq.* exchanges. */
xregistry_t *xregistry_new(const xregistry_ops_t *ops);
void xregistry_free(xregistry_t *r); /* NULL ok; frees exchanges and bindings, not queues */

/* Parses an exchange type name ("direct", ...). Returns 0, or HE_NOT_FOUND
 * for an unknown type (the caller answers COMMAND_INVALID, as RabbitMQ). */
int ex_type_parse(amqp_bytes_t name, ex_type_t *out);
const char *ex_type_name(ex_type_t t);

exchange_t *xregistry_find(xregistry_t *r, amqp_bytes_t name);
/* Declares an exchange (copies name and args, the arguments table content).
 * If it exists with the same type and flags: returns 1 and *out (args are
 * not compared, as RabbitMQ). If it exists with a different type or
 * durable/auto-delete/internal flags: HE_EXISTS (PRECONDITION_FAILED).
 * New: returns 0 and *out. name must be 1..255 bytes. */
int xregistry_declare(xregistry_t *r, amqp_bytes_t name, ex_type_t type, unsigned flags, amqp_bytes_t args,
                      exchange_t **out);
/* Deletes ex and every binding where it is source or destination. With
 * if_unused, returns HE_BUSY (and deletes nothing) if it is the source of
 * any binding. The default and amq.* exchanges: HE_DENIED. */
int xregistry_delete(xregistry_t *r, exchange_t *ex, int if_unused);

/* Binds src to dest with a routing key and arguments (table content; copied).
 * Returns 0 if added, 1 if an identical binding (same dest, key and args
 * bytes) already existed. Binding the default exchange: HE_DENIED. */
int xregistry_bind(xregistry_t *r, exchange_t *src, xdest_t dest, amqp_bytes_t key, amqp_bytes_t args);
/* Removes the identical binding. Returns 0, or HE_NOT_FOUND if absent (the
 * caller treats that as success, as RabbitMQ). May auto-delete src. */
int xregistry_unbind(xregistry_t *r, exchange_t *src, xdest_t dest, amqp_bytes_t key, amqp_bytes_t args);
/* Removes every binding whose destination is the queue (queue deleted).
 * May auto-delete sources. */
void xregistry_unbind_queue(xregistry_t *r, void *queue);

/* The queues a message reaches. out->n is set; out->q is grown as needed
 * (owned by the caller: reuse it across calls, free with xroute_destroy).
 * headers: the message's headers table content (may be empty). */
typedef struct {
    void **q;
    size_t n, cap;
} xroute_t;
void xroute_destroy(xroute_t *out);
void xregistry_route(xregistry_t *r, exchange_t *ex, amqp_bytes_t routing_key, amqp_bytes_t headers, xroute_t *out);

/* Accessors. name is not NUL-terminated in general but is stored with a
 * trailing NUL, so exchange_name_cstr is safe. */
amqp_bytes_t exchange_name(const exchange_t *ex);
const char *exchange_name_cstr(const exchange_t *ex);
ex_type_t exchange_type(const exchange_t *ex);
unsigned exchange_flags(const exchange_t *ex);
amqp_bytes_t exchange_args(const exchange_t *ex);
int exchange_is_builtin(const exchange_t *ex); /* "" and amq.* */
/* An owner's pointer kept with the exchange (the vhost's delay queue). */
void *exchange_ext(const exchange_t *ex);
void exchange_set_ext(exchange_t *ex, void *ext);

/* Iteration in declaration order (built-ins first). */
exchange_t *xregistry_first(xregistry_t *r);
exchange_t *exchange_next(exchange_t *ex);
/* Bindings where ex is the source, in binding order. */
xbinding_t *exchange_bindings(exchange_t *ex);
xbinding_t *xbinding_next(xbinding_t *b);
xdest_t xbinding_dest(const xbinding_t *b);
amqp_bytes_t xbinding_key(const xbinding_t *b);
amqp_bytes_t xbinding_args(const xbinding_t *b);

#endif
