/*
 * The web dashboard: GET / answers web/index.html, GET /ui/NAME the other
 * files of web/ (CSS, JS). The files are compiled into the binary by
 * tools/web_gen.py (a byte array, a content type and a strong ETag each;
 * see the generated http/web_assets.h), so the broker serves them with no
 * file access and no configuration, and a running broker always serves the
 * dashboard it was built with. The pages are a single-page app that reads
 * only the admin API (docs/http-api.md, docs/dashboard.md).
 */
#include <string.h>

#include "http/router.h"
#include "http/web_assets.h"

/* Headers every asset carries. The page loads nothing from elsewhere (no
 * CDN, no inline script), which the Content-Security-Policy makes a rule. */
static void serve(http_req_t *r, const dashboard_asset_t *a)
{
    http_reply_header(r, "ETag", a->etag);
    http_reply_header(r, "Cache-Control", "no-cache"); /* kept, revalidated by ETag on each load */
    http_reply_header(r, "X-Content-Type-Options", "nosniff");
    http_reply_header(r, "Content-Security-Policy",
                      "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    const char *inm = http_req_if_none_match(r);
    if (inm && (strstr(inm, a->etag) || !strcmp(inm, "*"))) http_reply(r, 304, a->content_type, "", 0);
    else http_reply(r, 200, a->content_type, a->data, a->len);
}

static const dashboard_asset_t *find(const char *name)
{
    for (size_t i = 0; i < dashboard_asset_count; i++)
        if (!strcmp(dashboard_assets[i].name, name)) return &dashboard_assets[i];
    return NULL;
}

static void get_index(http_req_t *r)
{
    const dashboard_asset_t *a = find("index.html");
    if (!a) {
        http_reply_error(r, 404, "this build has no dashboard");
        return;
    }
    serve(r, a);
}

static void get_asset(http_req_t *r)
{
    const char *name = http_req_param(r, 0);
    const dashboard_asset_t *a = find(name);
    if (!a || !strcmp(name, "index.html")) {
        http_reply_error(r, 404, "no such dashboard file: %s", name);
        return;
    }
    serve(r, a);
}

const http_route_t dashboard_routes[] = {
    {"GET", "/", get_index},
    {"GET", "/ui/{}", get_asset},
    {NULL, NULL, NULL},
};
