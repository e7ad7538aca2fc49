/* Small objects in huge-page chunks. Design and ownership in slab.h. */
#include "base/slab.h"

#include <stdlib.h>
#include <sys/mman.h>

#include "base/log.h"
#include "base/mem.h"

#define NCLASS (SLAB_MAX_SIZE / SLAB_UNIT)
#define HEAD 64 /* bytes of the chunk its header takes; objects follow */

/* The header at the start of each chunk (chunks are SLAB_CHUNK-aligned, so
 * an object finds its chunk by masking its address). */
typedef struct chunk {
    struct chunk *prev, *next; /* in its class's list of chunks with room, or the spares */
    void *free;                /* freed objects, linked through their first word */
    uint32_t live;             /* objects handed out */
    uint32_t bump;             /* offset of the first never-used byte */
    uint32_t size;             /* object bytes: cls * SLAB_UNIT */
    uint8_t cls;
    uint8_t listed;            /* in a list (has room, or is a spare) */
} chunk_t;

static chunk_t *g_room[NCLASS + 1]; /* per class: chunks with room, the one to use first at the head */
static chunk_t *g_spare;
static size_t g_nspare, g_chunks, g_live;

static chunk_t *chunk_of(const void *p) { return (chunk_t *)((uintptr_t)p & ~(uintptr_t)(SLAB_CHUNK - 1)); }

static void unlink_chunk(chunk_t **list, chunk_t *c)
{
    if (c->prev) c->prev->next = c->next;
    else *list = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->listed = 0;
}

static void push_chunk(chunk_t **list, chunk_t *c)
{
    c->prev = NULL;
    c->next = *list;
    if (*list) (*list)->prev = c;
    *list = c;
    c->listed = 1;
}

static unsigned g_fail_maps; /* slab_fail_maps */

void slab_fail_maps(unsigned n) { g_fail_maps = n; }

/* A fresh chunk, SLAB_CHUNK-aligned (mapped twice the size, the ends cut). */
static chunk_t *chunk_map(void)
{
    if (g_fail_maps) {
        g_fail_maps--;
        return NULL;
    }
    uint8_t *p = mmap(NULL, 2 * SLAB_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    uintptr_t a = ((uintptr_t)p + SLAB_CHUNK - 1) & ~(uintptr_t)(SLAB_CHUNK - 1);
    size_t lead = a - (uintptr_t)p;
    if (lead) munmap(p, lead);
    munmap((uint8_t *)a + SLAB_CHUNK, SLAB_CHUNK - lead);
    (void)madvise((void *)a, SLAB_CHUNK, MADV_HUGEPAGE); /* a hint: 4 KiB pages still work */
    g_chunks++;
    mem_root_add((void *)a, SLAB_CHUNK); /* its objects hold pointers to malloc blocks */
    return (chunk_t *)a;
}

static void chunk_unmap(chunk_t *c)
{
    g_chunks--;
    mem_root_del((void *)c, SLAB_CHUNK);
    mem_unpoison((void *)c, SLAB_CHUNK);
    munmap(c, SLAB_CHUNK);
}

static chunk_t *chunk_for(uint8_t cls)
{
    chunk_t *c = g_spare;
    if (c) {
        unlink_chunk(&g_spare, c);
        g_nspare--;
    } else if (!(c = chunk_map())) {
        return NULL;
    }
    c->free = NULL;
    c->live = 0;
    c->bump = HEAD;
    c->cls = cls;
    c->size = (uint32_t)cls * SLAB_UNIT;
    mem_poison((uint8_t *)c + HEAD, SLAB_CHUNK - HEAD);
    push_chunk(&g_room[cls], c);
    return c;
}

void *slab_alloc(size_t size, uint8_t *cls)
{
    if (size > SLAB_MAX_SIZE) { /* not served: from malloc, as when no chunk can be mapped */
        *cls = 0;
        return xmalloc(size);
    }
    uint8_t k = (uint8_t)((size + SLAB_UNIT - 1) / SLAB_UNIT);
    if (!k) k = 1;
    chunk_t *c = g_room[k];
    if (!c && !(c = chunk_for(k))) {
        static int warned; /* once: under memory pressure every allocation would say it */
        if (!warned) LOG_W("slab: mmap of a %zu-byte chunk failed; objects come from malloc", SLAB_CHUNK);
        warned = 1;
        *cls = 0;
        return xmalloc(size);
    }
    uint8_t *p = c->free, *next;
    if (p) {
        mem_unpoison(p, sizeof(void *));
        c->free = *(void **)(void *)p;
        next = c->free;
    } else {
        p = (uint8_t *)c + c->bump;
        c->bump += c->size;
        next = c->bump + c->size <= SLAB_CHUNK ? (uint8_t *)c + c->bump : NULL;
    }
    mem_unpoison(p, c->size);
    /* The next object of this class is fetched now, while the caller fills
     * this one: freed a while ago, it is rarely still in a cache, and its
     * miss was the most expensive instruction of a publish. */
    if (next)
        for (uint32_t off = 0; off < c->size && off < 256; off += 64) __builtin_prefetch(next + off, 1);
    c->live++;
    g_live++;
    if (!c->free && c->bump + c->size > SLAB_CHUNK) unlink_chunk(&g_room[k], c); /* full */
    *cls = k;
    return p;
}

void slab_free(void *p)
{
    if (!p) return;
    chunk_t *c = chunk_of(p);
    *(void **)p = c->free;
    c->free = p;
    mem_poison((uint8_t *)p + sizeof(void *), c->size - sizeof(void *));
    g_live--;
    if (--c->live == 0) {
        /* Empty: a spare, or given back. */
        if (c->listed) unlink_chunk(&g_room[c->cls], c);
        if (g_nspare < SLAB_SPARES) {
            push_chunk(&g_spare, c);
            g_nspare++;
            mem_poison((uint8_t *)c + HEAD, SLAB_CHUNK - HEAD);
        } else {
            chunk_unmap(c);
        }
        return;
    }
    if (!c->listed) push_chunk(&g_room[c->cls], c); /* was full: has room again, used first */
}

void slab_release(void)
{
    while (g_spare) {
        chunk_t *c = g_spare;
        unlink_chunk(&g_spare, c);
        chunk_unmap(c);
    }
    g_nspare = 0;
}

void slab_stats(slab_stats_t *st)
{
    st->chunks = g_chunks;
    st->spares = g_nspare;
    st->live = g_live;
}
