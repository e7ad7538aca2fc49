/*
 * Allocation that never returns NULL: on exhaustion Herald logs and aborts.
 * A broker that cannot allocate a few bytes cannot answer anyone correctly;
 * peer-controlled sizes are bounded before they reach these functions.
 */
#ifndef HERALD_BASE_MEM_H
#define HERALD_BASE_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
/* n bytes at a multiple of align (a power of two, at least sizeof(void *));
 * freed with free. */
void *xaligned_alloc(size_t align, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a heap string formatted like printf; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
