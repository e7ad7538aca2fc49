/* Placeholder: routes land here. */
#include "http/router.h"

const http_route_t api_group_routes[] = {
    {NULL, NULL, NULL},
};
