/* Joins the modules' route tables into one. See router.h. */
#include "http/router.h"

#include <pthread.h>
#include <stdlib.h>

#include "base/mem.h"

static const http_route_t *const tables[] = {
    api_overview_routes, api_topic_routes, api_group_routes, api_queue_routes,
    api_conn_routes,     metrics_routes,   dashboard_routes,
};

static http_route_t *all;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void)
{
    size_t n = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const http_route_t *r = tables[t]; r->pattern; r++) n++;
    all = xcalloc(n + 1, sizeof *all);
    n = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const http_route_t *r = tables[t]; r->pattern; r++) all[n++] = *r;
}

const http_route_t *http_routes(void)
{
    pthread_once(&once, build);
    return all;
}
