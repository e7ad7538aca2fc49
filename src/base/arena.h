/*
 * Bump allocator for short-lived, request-scoped objects (decoded Kafka
 * requests, response structs). Everything allocated from an arena is freed
 * at once by arena_reset()/arena_destroy(); nothing is freed one by one.
 * The caller owns the arena_t (arena_init/arena_destroy).
 */
#ifndef HERALD_BASE_ARENA_H
#define HERALD_BASE_ARENA_H

#include <stddef.h>

typedef struct arena_chunk arena_chunk_t;

typedef struct {
    arena_chunk_t *head; /* newest chunk first */
    size_t used;         /* bytes used in head */
    size_t total;        /* bytes handed out since the last reset */
} arena_t;

void arena_init(arena_t *a);
void arena_destroy(arena_t *a);
/* Frees every allocation but keeps the first chunk for reuse. */
void arena_reset(arena_t *a);
/* Returns n zeroed bytes aligned to 16, valid until the next reset. */
void *arena_alloc(arena_t *a, size_t n);
/* Returns a zeroed array of count elements, or NULL if count*size overflows. */
void *arena_calloc(arena_t *a, size_t count, size_t size);
/* Copies n bytes (plus a NUL) into the arena. */
char *arena_strndup(arena_t *a, const char *s, size_t n);

#endif
