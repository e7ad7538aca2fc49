/*
 * The HTTP front end: the admin API (docs/http-api.md), /metrics and the
 * dashboard, served by libmicrohttpd.
 *
 * Threads. libmicrohttpd runs its own listener thread and one thread per
 * connection (at most HTTP_MAX_CONNECTIONS); those threads read the request
 * and its body (bounded by http.max.body.bytes), then hand the request to
 * the broker's event loop through a uv_async and wait for the answer. Every
 * handler runs on the loop, so it reads broker state exactly as the Kafka
 * and AMQP front ends see it, consistently, and never takes a lock on it;
 * the loop never waits for an HTTP thread. A handler may answer at once or
 * later (a produce waiting for fdatasync): either way it calls one of the
 * http_reply* functions exactly once.
 *
 *   HTTP thread                      event loop
 *   ------------------------------   ----------------------------------
 *   read headers + body (bounded)
 *   push request, uv_async_send  ->  router: handler(req)
 *   wait (condition variable)        ... http_reply*(req) (now or later)
 *   send the response            <-  signal
 *
 * Stopping (http_server_free, on the loop): requests that wait for the loop
 * are answered 503, handlers still waiting get their cancel callback first,
 * then libmicrohttpd is stopped and its threads joined.
 */
#ifndef HERALD_HTTP_HTTP_H
#define HERALD_HTTP_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct broker broker_t;
typedef struct http_server http_server_t;
typedef struct http_req http_req_t;

#define HTTP_MAX_CONNECTIONS 64
#define HTTP_MAX_PARAMS 4   /* {name} segments in one route pattern */
#define HTTP_MAX_QUERY 16   /* query arguments kept per request; more are a 400 */

/* Starts serving on addr (listen: how the configuration wrote it, for log
 * lines). *port gets the bound port. Returns NULL and sets *err (<0) on
 * failure (logged). */
struct sockaddr;
http_server_t *http_server_new(broker_t *b, const struct sockaddr *addr, const char *listen, int *port, int *err);
/* Answers what is pending with 503, stops the threads, frees. NULL ok. */
void http_server_free(http_server_t *s);

/* ---- request (valid on the loop until it is answered) ---- */

broker_t *http_req_broker(const http_req_t *r);
const char *http_req_method(const http_req_t *r); /* "GET", "POST", ... */
const char *http_req_path(const http_req_t *r);   /* as sent, still %-encoded */
/* The request's If-None-Match header (at most 255 bytes kept), or NULL. */
const char *http_req_if_none_match(const http_req_t *r);
/* The i-th {name} segment of the matched route, %-decoded, NUL-terminated
 * (a name may hold any byte but NUL; "%2F" is a '/' inside one segment). */
const char *http_req_param(const http_req_t *r, int i);
/* A query argument, %-decoded; NULL if absent. */
const char *http_req_query(const http_req_t *r, const char *key);
/* The request body (not NUL-terminated); len 0 if none. */
const uint8_t *http_req_body(const http_req_t *r, size_t *len);

/* Query helpers: a missing argument gives def; a malformed one answers
 * 400 naming it and returns -1 (the handler then returns at once). */
int http_query_i64(http_req_t *r, const char *key, int64_t min, int64_t max, int64_t def, int64_t *out);
int http_query_bool(http_req_t *r, const char *key, int def, int *out);

/* A handler that answers later registers what to undo if the server stops
 * first (cancel a waiter, free its state). The cancel callback must not
 * answer; the server answers 503 after it. Cleared by answering. */
void http_req_on_cancel(http_req_t *r, void (*cancel)(http_req_t *r, void *ctx), void *ctx);

/* ---- answering (exactly once per request, on the loop) ---- */

/* body (copied) with the given content type. */
void http_reply(http_req_t *r, int status, const char *content_type, const void *body, size_t len);
/* body (taken over: malloc'd, freed with free()). */
void http_reply_owned(http_req_t *r, int status, const char *content_type, char *body, size_t len);
/* j (its reference is taken over) as application/json. */
void http_reply_json(http_req_t *r, int status, json_t *j);
/* {"error": "<reason phrase>", "message": "<formatted>"} with status. */
void http_reply_error(http_req_t *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Adds a response header to the answer about to be given (copied); at most
 * 8 per request. Answers carry "Cache-Control: no-store" unless the handler
 * sets a Cache-Control of its own. */
void http_reply_header(http_req_t *r, const char *name, const char *value);

/* ---- request bodies ---- */

/* Parses the body as a JSON object whose keys are all in allowed (NULL-
 * terminated). On error answers 400 (bad JSON, not an object, an unknown
 * field, named) and returns NULL; else the caller owns the object. An
 * empty body is an empty object. */
json_t *http_body_object(http_req_t *r, const char *const *allowed);

#endif
