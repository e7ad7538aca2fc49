/* Placeholder: routes land here. */
#include "http/router.h"

const http_route_t metrics_routes[] = {
    {NULL, NULL, NULL},
};
