/* Bump allocator; see arena.h. Chunks grow geometrically from 4 KiB. */
#include "base/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

struct arena_chunk {
    arena_chunk_t *next;
    size_t cap;
    _Alignas(16) unsigned char data[];
};

void arena_init(arena_t *a)
{
    a->head = NULL;
    a->used = 0;
    a->total = 0;
}

void arena_destroy(arena_t *a)
{
    arena_chunk_t *c = a->head;
    while (c) {
        arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    arena_init(a);
}

void arena_reset(arena_t *a)
{
    if (!a->head) return;
    /* Keep the largest (newest) chunk, free the others. */
    arena_chunk_t *keep = a->head, *c = keep->next;
    while (c) {
        arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    keep->next = NULL;
    a->head = keep;
    a->used = 0;
    a->total = 0;
}

void *arena_alloc(arena_t *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->used < n) {
        size_t cap = a->head ? a->head->cap * 2 : 4096;
        while (cap < n) cap *= 2;
        arena_chunk_t *c = xmalloc(sizeof *c + cap);
        c->cap = cap;
        c->next = a->head;
        a->head = c;
        a->used = 0;
    }
    void *p = a->head->data + a->used;
    a->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

void *arena_calloc(arena_t *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) return NULL;
    return arena_alloc(a, count * size);
}

char *arena_strndup(arena_t *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}
