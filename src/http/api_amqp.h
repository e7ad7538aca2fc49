/*
 * Shared by the AMQP side of the admin API: api_queues.c (queues, the
 * route table api_queue_routes, the helpers below) and api_exchanges.c
 * (exchanges, bindings, publish).
 */
#ifndef HERALD_HTTP_API_AMQP_H
#define HERALD_HTTP_API_AMQP_H

#include <jansson.h>

#include "amqp/wire.h"
#include "broker/vhost.h"
#include "http/http.h"

/* The virtual host "/". */
vhost_t *api_vhost(http_req_t *r);
/* A name as a JSON string (bytes that are not UTF-8 become '?'). */
json_t *api_name_json(amqp_bytes_t name);
/* Answers status with body (taken; NULL: no body) once every catalog
 * change made so far is durable (507 if the catalog cannot be written). */
void api_reply_after_catalog(http_req_t *r, int status, json_t *body);
/* Parses a JSON field table (NULL: empty) into w. Returns 0, or answers
 * 400 naming field and returns -1. */
int api_table_arg(http_req_t *r, const json_t *v, const char *field, wbuf_t *w);
/* A JSON boolean field of obj, def when absent. Returns 0, or answers 400
 * and returns -1. */
int api_bool_field(http_req_t *r, const json_t *obj, const char *field, int def, int *out);

/* api_exchanges.c */
void api_exchanges_list(http_req_t *r);
void api_exchange_get(http_req_t *r);
void api_exchange_put(http_req_t *r);
void api_exchange_delete(http_req_t *r);
void api_exchange_publish(http_req_t *r);
void api_bindings_list(http_req_t *r);
void api_binding_post(http_req_t *r);
void api_binding_delete(http_req_t *r);

#endif
