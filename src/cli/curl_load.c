/* libcurl through dlopen. See curl_load.h. */
#include "cli/curl_load.h"

#include <dlfcn.h>
#include <stdio.h>

cli_curl_t cli_curl;

int cli_curl_load(char *err, size_t errlen)
{
    if (cli_curl.easy_init) return 0;
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "the client commands need libcurl (Debian package libcurl4): %s", dlerror());
        return -1;
    }
    static const struct {
        const char *name;
        size_t off;
    } syms[] = {
#define S(f, n) {n, offsetof(cli_curl_t, f)}
        S(global_init, "curl_global_init"),   S(global_cleanup, "curl_global_cleanup"),
        S(easy_init, "curl_easy_init"),       S(easy_cleanup, "curl_easy_cleanup"),
        S(easy_reset, "curl_easy_reset"),     S(easy_setopt, "curl_easy_setopt"),
        S(easy_getinfo, "curl_easy_getinfo"), S(easy_perform, "curl_easy_perform"),
        S(easy_strerror, "curl_easy_strerror"), S(slist_append, "curl_slist_append"),
        S(slist_free_all, "curl_slist_free_all"),
#undef S
    };
    cli_curl_t t;
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *f = dlsym(h, syms[i].name);
        if (!f) {
            snprintf(err, errlen, "libcurl.so.4 has no %s", syms[i].name);
            dlclose(h);
            return -1;
        }
        *(void **)((char *)&t + syms[i].off) = f;
    }
    cli_curl = t;
    return 0;
}
