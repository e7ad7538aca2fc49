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
/* Freed objects kept for reuse (pools, base/slab) are marked unusable for
 * AddressSanitizer, so a use after free is still reported: mem_poison
 * when one goes into a pool, mem_unpoison when it comes out. No-ops
 * without ASan. */
void mem_poison(const void *p, size_t n);
void mem_unpoison(const void *p, size_t n);
/* Memory mapped outside malloc that holds pointers to malloc blocks (the
 * slab's chunks): the leak checker scans it as a root. No-ops without
 * ASan. */
void mem_root_add(const void *p, size_t n);
void mem_root_del(const void *p, size_t n);
/* Returns a heap string formatted like printf; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
