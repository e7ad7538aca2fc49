/*
 * Paging of list answers, as RabbitMQ's management API pages them: with
 * any of the query arguments `page` (1-based, default 1), `page_size`
 * (1..PAGING_MAX_SIZE, default 100) or `name` (a case-insensitive
 * substring filter) the answer is an envelope
 *
 *   {"filtered_count": F, "item_count": I, "items": [...], "page": P,
 *    "page_count": C, "page_size": S, "total_count": T}
 *
 * with the matching items sorted by name, and only the page's items built.
 * Without them the list is the plain JSON array it always was.
 * `use_regex=true` is refused (400): names are matched as substrings only.
 */
#ifndef HERALD_HTTP_PAGING_H
#define HERALD_HTTP_PAGING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"

#define PAGING_DEFAULT_SIZE 100
#define PAGING_MAX_SIZE 500

typedef struct {
    int on;           /* paging was asked for */
    int64_t page;     /* 1-based */
    int64_t size;     /* items per page */
    const char *name; /* filter, NULL for none (borrowed from the request) */
} paging_t;

/* Reads the arguments. Returns 0, or -1 after answering 400. */
int paging_parse(http_req_t *r, paging_t *p);

/* One listed item: its name (borrowed, NUL-terminated) and what builds it. */
typedef struct {
    const char *name;
    void *item;
} paging_item_t;

/* Keeps the items whose name matches p->name (all when NULL), sorts them by
 * name (bytewise) and reports the page: *first and *count index into the
 * kept items (now at the front of v), *kept their number. Returns 0, or -1
 * when the page is past the last one (page 1 of nothing is fine). */
int paging_select(const paging_t *p, paging_item_t *v, size_t n, size_t *kept, size_t *first, size_t *count);

/* The envelope around items (taken over). */
json_t *paging_envelope(const paging_t *p, size_t total, size_t kept, json_t *items);

#endif
