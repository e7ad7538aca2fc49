/*
 * libcurl, loaded when a client command runs. The broker and the CLI are
 * one binary; linking libcurl would map it and its TLS, LDAP and other
 * dependencies into every `herald serve` (about 8 MB of resident pages at
 * idle). The CLI loads libcurl.so.4 with dlopen instead and calls it
 * through this table.
 */
#ifndef HERALD_CLI_CURL_LOAD_H
#define HERALD_CLI_CURL_LOAD_H

#include <curl/curl.h>
#include <stddef.h>

typedef struct {
    CURLcode (*global_init)(long flags);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *h);
    void (*easy_reset)(CURL *h);
    CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
    CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
    CURLcode (*easy_perform)(CURL *h);
    const char *(*easy_strerror)(CURLcode c);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
} cli_curl_t;

extern cli_curl_t cli_curl;

/* Loads libcurl.so.4 and fills cli_curl. Returns 0, or -1 with a message
 * naming what is missing in err. */
int cli_curl_load(char *err, size_t errlen);

#endif
