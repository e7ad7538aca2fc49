/* The HTTP server and its hand-over to the event loop. See http.h. */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <uv.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/broker.h"
#include "http/router.h"
#include "http/stats.h"
#include "server/config.h"

#define HTTP_MAX_HEADERS 8

struct http_req {
    http_server_t *srv;
    /* Filled by the HTTP thread before the hand-over, read-only after. */
    char method[16];
    char *path;                    /* owned, %-encoded */
    char *if_none_match;           /* owned, the request's If-None-Match, NULL if none */
    int nquery;
    char *qkey[HTTP_MAX_QUERY], *qval[HTTP_MAX_QUERY]; /* owned, decoded; qval "" when absent */
    int query_overflow;            /* more than HTTP_MAX_QUERY arguments: 400 */
    int query_bad;                 /* a malformed %-escape in one: 400 */
    uint8_t *body;                 /* owned */
    size_t body_len, body_cap;
    int too_large;                 /* the body passed http.max.body.bytes: 413 */
    int started;                   /* the first call of the access handler happened */
    int submitted;                 /* handed to the loop */
    /* Loop side. */
    char *param_buf;               /* owned: the decoded {name} segments, NUL-separated */
    const char *params[HTTP_MAX_PARAMS];
    http_req_t *next;              /* in the server's queue (under mu) */
    http_req_t *lprev, *lnext;     /* in the loop's list of dispatched requests */
    void (*cancel)(http_req_t *r, void *ctx);
    void *cancel_ctx;
    /* The answer: written by the loop, read by the thread after `answered`. */
    int status;
    char *resp;                    /* malloc'd (freed by libmicrohttpd) */
    size_t resp_len;
    char ctype[64];
    int nhdr;
    char *hname[HTTP_MAX_HEADERS], *hval[HTTP_MAX_HEADERS];
    int answered;                  /* under mu */
};

struct http_server {
    broker_t *b;
    struct MHD_Daemon *d;
    size_t max_body;
    uv_async_t async;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    http_req_t *qhead, *qtail;     /* submitted, not yet dispatched (under mu) */
    http_req_t *inflight;          /* dispatched, not answered (loop only) */
    int stopping;                  /* under mu */
    http_stats_t *stats;
};

/* ---- small helpers ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* %-decodes s[0..n) into out (room for n + 1); '+' is a space when plus.
 * Returns the decoded length, or -1 for a malformed escape or an encoded
 * NUL. */
static ssize_t pct_decode(const char *s, size_t n, char *out, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) return -1;
            out[o++] = (char)(h * 16 + l);
            i += 2;
        } else if (plus && s[i] == '+') {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return (ssize_t)o;
}

static const char *reason(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "payload_too_large";
    case 415: return "unsupported_media_type";
    case 422: return "unprocessable";
    case 500: return "internal_error";
    case 503: return "unavailable";
    case 507: return "insufficient_storage";
    default: return status >= 500 ? "server_error" : "error";
    }
}

static char *error_body(int status, const char *msg, size_t *len)
{
    json_t *j = json_pack("{s:s, s:s}", "error", reason(status), "message", msg);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    *len = strlen(s);
    return s;
}

static void req_free(http_req_t *r)
{
    if (!r) return;
    free(r->path);
    free(r->if_none_match);
    for (int i = 0; i < r->nquery; i++) {
        free(r->qkey[i]);
        free(r->qval[i]);
    }
    free(r->body);
    free(r->param_buf);
    free(r->resp); /* only if never handed to libmicrohttpd */
    for (int i = 0; i < r->nhdr; i++) {
        free(r->hname[i]);
        free(r->hval[i]);
    }
    free(r);
}

/* ---- loop side ---- */

static void inflight_unlink(http_server_t *s, http_req_t *r)
{
    if (r->lprev) r->lprev->lnext = r->lnext;
    else if (s->inflight == r) s->inflight = r->lnext;
    if (r->lnext) r->lnext->lprev = r->lprev;
    r->lprev = r->lnext = NULL;
}

/* Publishes the answer to the waiting thread; r must not be used after. */
static void finish(http_req_t *r)
{
    http_server_t *s = r->srv;
    inflight_unlink(s, r);
    r->cancel = NULL;
    pthread_mutex_lock(&s->mu);
    r->answered = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void http_reply_owned(http_req_t *r, int status, const char *content_type, char *body, size_t len)
{
    r->status = status;
    r->resp = body;
    r->resp_len = len;
    snprintf(r->ctype, sizeof r->ctype, "%s", content_type);
    finish(r);
}

void http_reply(http_req_t *r, int status, const char *content_type, const void *body, size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (!copy) abort();
    if (len) memcpy(copy, body, len);
    http_reply_owned(r, status, content_type, copy, len);
}

void http_reply_json(http_req_t *r, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
    json_decref(j);
    if (!s) {
        http_reply_error(r, 500, "cannot encode the answer");
        return;
    }
    http_reply_owned(r, status, "application/json", s, strlen(s));
}

void http_reply_error(http_req_t *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len;
    char *body = error_body(status, msg, &len);
    http_reply_owned(r, status, "application/json", body, len);
}

void http_reply_header(http_req_t *r, const char *name, const char *value)
{
    if (r->nhdr >= HTTP_MAX_HEADERS) return;
    r->hname[r->nhdr] = xstrdup(name);
    r->hval[r->nhdr] = xstrdup(value);
    r->nhdr++;
}

void http_req_on_cancel(http_req_t *r, void (*cancel)(http_req_t *r, void *ctx), void *ctx)
{
    r->cancel = cancel;
    r->cancel_ctx = ctx;
}

broker_t *http_req_broker(const http_req_t *r) { return r->srv->b; }
http_stats_t *http_stats(const http_req_t *r) { return r->srv->stats; }
const char *http_req_method(const http_req_t *r) { return r->method; }
const char *http_req_path(const http_req_t *r) { return r->path; }
const char *http_req_if_none_match(const http_req_t *r) { return r->if_none_match; }
const char *http_req_param(const http_req_t *r, int i)
{
    return i >= 0 && i < HTTP_MAX_PARAMS && r->params[i] ? r->params[i] : "";
}

const char *http_req_query(const http_req_t *r, const char *key)
{
    for (int i = 0; i < r->nquery; i++)
        if (!strcmp(r->qkey[i], key)) return r->qval[i];
    return NULL;
}

const uint8_t *http_req_body(const http_req_t *r, size_t *len)
{
    *len = r->body_len;
    return r->body;
}

int http_query_i64(http_req_t *r, const char *key, int64_t min, int64_t max, int64_t def, int64_t *out)
{
    const char *v = http_req_query(r, key);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < min || x > max) {
        http_reply_error(r, 400, "query argument %s must be an integer from %lld to %lld", key, (long long)min,
                         (long long)max);
        return -1;
    }
    *out = x;
    return 0;
}

int http_query_bool(http_req_t *r, const char *key, int def, int *out)
{
    const char *v = http_req_query(r, key);
    if (!v) *out = def;
    else if (!*v || !strcmp(v, "true") || !strcmp(v, "1")) *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0")) *out = 0;
    else {
        http_reply_error(r, 400, "query argument %s must be true or false", key);
        return -1;
    }
    return 0;
}

json_t *http_body_object(http_req_t *r, const char *const *allowed)
{
    if (r->body_len == 0) return json_object();
    json_error_t je;
    json_t *j = json_loadb((const char *)r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        http_reply_error(r, 400, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_reply_error(r, 400, "the body must be a JSON object");
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        int ok = 0;
        for (int i = 0; allowed && allowed[i]; i++)
            if (!strcmp(allowed[i], k)) ok = 1;
        if (!ok) {
            http_reply_error(r, 400, "unknown field \"%s\"", k);
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

/* Matches r's path against pattern ("/api/queues/{}/purge"); fills the
 * params on success. Returns 1 on a match, 0 if not, -1 for a malformed
 * escape (answered). */
static int match(http_req_t *r, const char *pattern)
{
    const char *p = r->path, *q = pattern;
    size_t plen = strlen(p);
    char *buf = xmalloc(plen + HTTP_MAX_PARAMS + 1);
    size_t used = 0;
    int np = 0;
    const char *params[HTTP_MAX_PARAMS] = {0};
    while (*q && *p) {
        if (q[0] == '{' && q[1] == '}') {
            const char *e = strchr(p, '/');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (n == 0 || np == HTTP_MAX_PARAMS) break;
            ssize_t d = pct_decode(p, n, buf + used, 0);
            if (d < 0) {
                free(buf);
                http_reply_error(r, 400, "malformed %%-escape in the path");
                return -1;
            }
            params[np++] = buf + used;
            used += (size_t)d + 1;
            p += n;
            q += 2;
        } else if (*q == *p) {
            q++;
            p++;
        } else {
            break;
        }
    }
    if (*q || *p) {
        free(buf);
        return 0;
    }
    free(r->param_buf);
    r->param_buf = buf;
    memcpy(r->params, params, sizeof params);
    return 1;
}

static void dispatch(http_server_t *s, http_req_t *r)
{
    r->lnext = s->inflight;
    if (s->inflight) s->inflight->lprev = r;
    s->inflight = r;
    if (r->query_overflow) {
        http_reply_error(r, 400, "more than %d query arguments", HTTP_MAX_QUERY);
        return;
    }
    if (r->query_bad) {
        http_reply_error(r, 400, "malformed %%-escape in the query");
        return;
    }
    int path_matched = 0;
    for (const http_route_t *rt = http_routes(); rt->pattern; rt++) {
        int m = match(r, rt->pattern);
        if (m < 0) return;
        if (!m) continue;
        path_matched = 1;
        if (strcmp(rt->method, r->method) && !(rt->method[0] == 'G' && !strcmp(r->method, "HEAD"))) continue;
        rt->fn(r);
        return;
    }
    if (path_matched) http_reply_error(r, 405, "%s is not allowed on %s", r->method, r->path);
    else http_reply_error(r, 404, "no such resource: %s", r->path);
}

static void on_async(uv_async_t *a)
{
    http_server_t *s = a->data;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        http_req_t *r = s->qhead;
        if (r) {
            s->qhead = r->next;
            if (!s->qhead) s->qtail = NULL;
            r->next = NULL;
        }
        pthread_mutex_unlock(&s->mu);
        if (!r) break;
        dispatch(s, r);
    }
}

/* ---- HTTP threads ---- */

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    http_req_t *r = cls;
    if (r->nquery == HTTP_MAX_QUERY) {
        r->query_overflow = 1;
        return MHD_NO;
    }
    size_t kl = strlen(key), vl = value ? strlen(value) : 0;
    char *k = xmalloc(kl + 1), *v = xmalloc(vl + 1);
    if (pct_decode(key, kl, k, 1) < 0 || pct_decode(value ? value : "", vl, v, 1) < 0) {
        free(k);
        free(v);
        r->query_bad = 1;
        return MHD_NO;
    }
    r->qkey[r->nquery] = k;
    r->qval[r->nquery] = v;
    r->nquery++;
    return MHD_YES;
}

static enum MHD_Result send_answer(struct MHD_Connection *conn, http_req_t *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_FREE);
    if (!resp) return MHD_NO;
    r->resp = NULL; /* libmicrohttpd frees it */
    MHD_add_response_header(resp, "Content-Type", r->ctype);
    int cache_set = 0;
    for (int i = 0; i < r->nhdr; i++) {
        MHD_add_response_header(resp, r->hname[i], r->hval[i]);
        cache_set |= !strcasecmp(r->hname[i], "Cache-Control");
    }
    if (!cache_set) MHD_add_response_header(resp, "Cache-Control", "no-store"); /* live figures */
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result answer_now(struct MHD_Connection *conn, http_req_t *r, int status, const char *msg)
{
    r->status = status;
    r->resp = error_body(status, msg, &r->resp_len);
    snprintf(r->ctype, sizeof r->ctype, "application/json");
    return send_answer(conn, r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    http_server_t *s = cls;
    http_req_t *r = *con_cls;
    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->srv = s;
        *con_cls = r;
        snprintf(r->method, sizeof r->method, "%s", method);
        r->path = xstrdup(url);
        const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
        if (inm && strlen(inm) < 256) r->if_none_match = xstrdup(inm);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->max_body) r->too_large = 1;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_large || r->body_len + n > s->max_body) {
            r->too_large = 1;
            free(r->body);
            r->body = NULL;
            r->body_len = r->body_cap = 0;
            return MHD_YES;
        }
        if (r->body_len + n > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap : 4096;
            while (cap < r->body_len + n) cap *= 2;
            if (cap > s->max_body) cap = s->max_body;
            r->body = xrealloc(r->body, cap);
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload, n);
        r->body_len += n;
        return MHD_YES;
    }
    if (r->submitted) return MHD_YES; /* already answered */
    r->submitted = 1;
    if (r->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is larger than http.max.body.bytes (%zu)", s->max_body);
        return answer_now(conn, r, 413, msg);
    }
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, r);
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return answer_now(conn, r, 503, "the broker is shutting down");
    }
    if (s->qtail) s->qtail->next = r;
    else s->qhead = r;
    s->qtail = r;
    uv_async_send(&s->async);
    while (!r->answered) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return send_answer(conn, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    req_free(*con_cls);
    *con_cls = NULL;
}

/* Paths keep their %-escapes: a queue name may contain '/', written %2F,
 * and the router splits segments before decoding them. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    LOG_W("http: %s", msg);
}

static void on_async_closed(uv_handle_t *h)
{
    http_server_t *s = h->data;
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

http_server_t *http_server_new(broker_t *b, const struct sockaddr *addr, const char *listen, int *port, int *err)
{
    http_server_t *s = xcalloc(1, sizeof *s);
    s->b = b;
    s->max_body = (size_t)broker_config(b)->http_max_body_bytes;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (addr->sa_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
                            MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, s,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 128u, MHD_OPTION_END);
    if (!s->d) {
        LOG_E("cannot listen for HTTP on %s", listen);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        *err = -EADDRINUSE;
        return NULL;
    }
    s->stats = http_stats_new(b);
    uv_async_init(broker_loop(b), &s->async, on_async);
    s->async.data = s;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : 0;
    return s;
}

void http_server_free(http_server_t *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    http_req_t *queued = s->qhead;
    s->qhead = s->qtail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (queued) {
        http_req_t *n = queued->next;
        queued->next = NULL;
        queued->lnext = s->inflight; /* dispatched as an answer */
        if (s->inflight) s->inflight->lprev = queued;
        s->inflight = queued;
        http_reply_error(queued, 503, "the broker is shutting down");
        queued = n;
    }
    while (s->inflight) {
        http_req_t *r = s->inflight;
        if (r->cancel) r->cancel(r, r->cancel_ctx);
        http_reply_error(r, 503, "the broker is shutting down");
    }
    MHD_stop_daemon(s->d);
    http_stats_free(s->stats);
    s->stats = NULL;
    uv_close((uv_handle_t *)&s->async, on_async_closed);
}
