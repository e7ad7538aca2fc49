/*
 * The HTTP route table: each API module exports a table of routes, the
 * router tries them in order. A pattern is a literal path in which "{}"
 * matches one non-empty segment (%-decoded into http_req_param(r, i), in
 * order). A path that matches with another method is a 405, no match a
 * 404; GET routes also answer HEAD.
 */
#ifndef HERALD_HTTP_ROUTER_H
#define HERALD_HTTP_ROUTER_H

#include "http/http.h"

typedef struct {
    const char *method;        /* "GET", "POST", "PUT", "DELETE" */
    const char *pattern;       /* "/api/queues/{}/purge"; NULL ends a table */
    void (*fn)(http_req_t *r); /* answers r, now or later */
} http_route_t;

/* Every route, NULL-pattern terminated (built once, on first use). */
const http_route_t *http_routes(void);

/* The tables of the modules (api_*.c, metrics.c, dashboard.c). */
extern const http_route_t api_overview_routes[];
extern const http_route_t api_topic_routes[];
extern const http_route_t api_group_routes[];
extern const http_route_t api_queue_routes[];
extern const http_route_t api_conn_routes[];
extern const http_route_t metrics_routes[];
extern const http_route_t dashboard_routes[];

#endif
