/*
 * HTTP calls to the broker's API with one reused libcurl handle (so a
 * produce of many batches rides one keep-alive connection). Answers are
 * JSON; an error answer carries {"error": code, "message": text} and the
 * message is what the user sees. See cli_int.h.
 */
#include "cli/curl_load.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/cli_int.h"

#define CLI_CONNECT_TIMEOUT_MS 5000
#define CLI_DEFAULT_TIMEOUT_MS 60000
#define CLI_MAX_ANSWER (256u << 20) /* bytes; a bigger answer is refused */

typedef struct {
    char *p;    /* malloc'd, not NUL-terminated until done */
    size_t len, cap;
    int too_big;
} answer_t;

static size_t on_data(char *data, size_t size, size_t nmemb, void *ctx)
{
    answer_t *a = ctx;
    size_t n = size * nmemb;
    if (a->len + n > CLI_MAX_ANSWER) {
        a->too_big = 1;
        return 0; /* makes curl fail the transfer */
    }
    if (a->len + n + 1 > a->cap) {
        a->cap = (a->len + n + 1) * 2;
        a->p = xrealloc(a->p, a->cap);
    }
    memcpy(a->p + a->len, data, n);
    a->len += n;
    return n;
}

char *cli_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = xmalloc(n * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '_' || *p == '.' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* Why curl failed, as the OS said it when it did ("Connection refused"). */
static void transport_error(cli_t *c, CURLcode res, const answer_t *a)
{
    long os_errno = 0;
    cli_curl.easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
    const char *why = os_errno ? strerror((int)os_errno) : cli_curl.easy_strerror(res);
    if (a->too_big) why = "answer too large";
    snprintf(c->err, sizeof c->err, "cannot reach %s: %s", c->server, why);
}

/* The message of an error answer, else the status. */
static void api_error(cli_t *c, const char *method, const char *path, const answer_t *a)
{
    json_t *v = a->len ? json_loadb(a->p, a->len, 0, NULL) : NULL;
    const char *msg = cli_jstr(v, "message");
    if (!*msg) msg = cli_jstr(v, "error");
    if (*msg) snprintf(c->err, sizeof c->err, "%s", msg);
    else snprintf(c->err, sizeof c->err, "%s %s: HTTP %ld", method, path, c->status);
    cli_safe_inplace(c->err); /* messages quote names clients chose */
    json_decref(v);
}

static void set_request(cli_t *c, const char *method, const char *url, const char *body, long timeout_ms)
{
    CURL *h = c->curl;
    cli_curl.easy_reset(h); /* keeps the open connection */
    cli_curl.easy_setopt(h, CURLOPT_URL, url);
    cli_curl.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    cli_curl.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CLI_CONNECT_TIMEOUT_MS);
    cli_curl.easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms ? timeout_ms : (long)CLI_DEFAULT_TIMEOUT_MS);
    cli_curl.easy_setopt(h, CURLOPT_USERAGENT, "herald-cli");
    if (!strcmp(method, "HEAD")) cli_curl.easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0) cli_curl.easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        cli_curl.easy_setopt(h, CURLOPT_POSTFIELDS, body);
        cli_curl.easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
}

int cli_http(cli_t *c, const char *method, const char *path, json_t *body, json_t **out, long timeout_ms)
{
    int rc = CLI_EAPI;
    answer_t a = {0};
    char *text = NULL;
    struct curl_slist *hdrs = NULL;
    char *url = xasprintf("%s%s", c->server, path);
    if (out) *out = NULL;
    c->status = 0;
    c->err[0] = '\0';
    /* POST and PUT always carry an object, "{}" when there is nothing to say. */
    if (body) text = json_dumps(body, JSON_COMPACT);
    else if (!strcmp(method, "POST") || !strcmp(method, "PUT")) text = xstrdup("{}");
    set_request(c, method, url, text, timeout_ms);
    cli_curl.easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
    cli_curl.easy_setopt(c->curl, CURLOPT_WRITEDATA, &a);
    if (text) {
        hdrs = cli_curl.slist_append(hdrs, "Content-Type: application/json");
        cli_curl.easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
    }
    CURLcode res = cli_curl.easy_perform(c->curl);
    if (res != CURLE_OK) {
        transport_error(c, res, &a);
        rc = CLI_EUSAGE;
        goto fail;
    }
    cli_curl.easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &c->status);
    if (c->status < 200 || c->status > 299) {
        api_error(c, method, path, &a);
        goto fail;
    }
    if (a.len && out) {
        json_error_t je;
        *out = json_loadb(a.p, a.len, JSON_DECODE_ANY, &je);
        if (!*out) {
            snprintf(c->err, sizeof c->err, "%s %s: the answer is not JSON (%s)", method, path, je.text);
            goto fail;
        }
    }
    rc = CLI_OK;
fail:
    cli_curl.slist_free_all(hdrs);
    free(text);
    free(url);
    free(a.p);
    return rc;
}

int cli_call(cli_t *c, const char *method, const char *path, json_t *body, json_t **out)
{
    int rc = cli_http(c, method, path, body, out, 0);
    if (rc) fprintf(stderr, "herald: %s\n", c->err);
    return rc;
}

int cli_get_show(cli_t *c, const char *path, void (*show)(const json_t *v))
{
    json_t *v = NULL;
    int rc = cli_call(c, "GET", path, NULL, &v);
    if (!rc) {
        if (c->json) cli_print_json(v);
        else show(v);
    }
    json_decref(v);
    return rc;
}

int cli_write_say(cli_t *c, const char *method, const char *path, json_t *body, const char *done)
{
    json_t *v = NULL;
    int rc = cli_call(c, method, path, body, &v);
    if (!rc) {
        if (!c->json) printf("%s\n", done);
        else if (v) cli_print_json(v);
    }
    json_decref(v);
    return rc;
}

int cli_delete_named(cli_t *c, int argc, char **argv, const char *kind, const char *what)
{
    const char *name;
    int rc = cli_parse(c, argc, argv, NULL, &name, 1);
    if (rc) return rc;
    char *e = cli_escape(name);
    char *path = xasprintf("/api/%s/%s", kind, e);
    char *done = xasprintf("deleted %s %s", what, name);
    rc = cli_write_say(c, "DELETE", path, NULL, done);
    free(done);
    free(path);
    free(e);
    return rc;
}

int cli_declare(cli_t *c, const char *path, json_t *body, const char *what, const char *name)
{
    json_t *v = NULL;
    int rc = cli_call(c, "PUT", path, body, &v);
    if (!rc && c->json && v) cli_print_json(v);
    else if (!rc && !c->json && c->status == 201) printf("created %s %s\n", what, name);
    else if (!rc && !c->json) printf("%s %s exists with the same settings\n", what, name);
    json_decref(v);
    return rc;
}
