/* Paging of list answers. See paging.h. */
#include "http/paging.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int paging_parse(http_req_t *r, paging_t *p)
{
    *p = (paging_t){0, 1, PAGING_DEFAULT_SIZE, NULL};
    p->name = http_req_query(r, "name");
    if (p->name && !*p->name) p->name = NULL;
    p->on = http_req_query(r, "page") || http_req_query(r, "page_size") || http_req_query(r, "name");
    int regex;
    if (http_query_bool(r, "use_regex", 0, &regex) < 0) return -1;
    if (regex) {
        http_reply_error(r, 400, "use_regex is not supported: name matches as a case-insensitive substring");
        return -1;
    }
    if (http_query_i64(r, "page", 1, INT32_MAX, 1, &p->page) < 0) return -1;
    if (http_query_i64(r, "page_size", 1, PAGING_MAX_SIZE, PAGING_DEFAULT_SIZE, &p->size) < 0) return -1;
    return 0;
}

/* Case-insensitive (ASCII) substring test. */
static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *h = hay; *h; h++)
        if (!strncasecmp(h, needle, n)) return 1;
    return n == 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const paging_item_t *)a)->name, ((const paging_item_t *)b)->name);
}

int paging_select(const paging_t *p, paging_item_t *v, size_t n, size_t *kept, size_t *first, size_t *count)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!p->name || contains_ci(v[i].name, p->name)) v[k++] = v[i];
    qsort(v, k, sizeof *v, by_name);
    *kept = k;
    size_t from = (size_t)(p->page - 1) * (size_t)p->size;
    if (from >= k && !(k == 0 && p->page == 1)) return -1;
    *first = from < k ? from : k;
    *count = k - *first < (size_t)p->size ? k - *first : (size_t)p->size;
    return 0;
}

json_t *paging_envelope(const paging_t *p, size_t total, size_t kept, json_t *items)
{
    size_t pages = (kept + (size_t)p->size - 1) / (size_t)p->size;
    return json_pack("{s:I, s:I, s:o, s:I, s:I, s:I, s:I}", "filtered_count", (json_int_t)kept, "item_count",
                     (json_int_t)json_array_size(items), "items", items, "page", (json_int_t)p->page, "page_count",
                     (json_int_t)pages, "page_size", (json_int_t)p->size, "total_count", (json_int_t)total);
}
