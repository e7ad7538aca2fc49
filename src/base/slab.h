/*
 * Small objects carved from 2 MiB chunks that the kernel may back with
 * transparent huge pages (madvise). For the memory that grows with the
 * messages a broker holds: hundreds of thousands of them waiting (delayed,
 * behind a slow consumer) are touched in an order unrelated to their
 * allocation, and on 4 KiB pages each such touch can miss the TLB and each
 * new page costs a fault (about 10 us per 4 KiB on the VMs measured, see
 * docs/benchmarks.md).
 *
 * Objects come in classes of SLAB_UNIT bytes up to SLAB_MAX_SIZE; a chunk
 * serves one class, freed objects go back to their chunk (the last freed
 * is the next handed out: it is the one most likely still in cache). A
 * chunk whose last object is freed is kept as a spare (at most
 * SLAB_SPARES) or unmapped; slab_release unmaps the spares.
 *
 * One event loop owns it: not thread-safe. Under AddressSanitizer a freed
 * object is poisoned (but for the link word), so use after free is still
 * reported.
 */
#ifndef HERALD_BASE_SLAB_H
#define HERALD_BASE_SLAB_H

#include <stddef.h>
#include <stdint.h>

#define SLAB_UNIT 32
#define SLAB_MAX_SIZE 1024 /* bytes: larger objects are not served */
#define SLAB_CHUNK ((size_t)2 << 20)
#define SLAB_SPARES 2 /* empty chunks kept for reuse */

/* Returns an object of at least size bytes and sets *cls to its class
 * (1 .. SLAB_MAX_SIZE / SLAB_UNIT; the object holds *cls * SLAB_UNIT
 * bytes). If size is over SLAB_MAX_SIZE or no chunk can be mapped, the
 * object comes from xmalloc instead and *cls is 0: the caller frees it
 * with free. */
void *slab_alloc(size_t size, uint8_t *cls);
/* Gives back an object slab_alloc returned with a class (not 0). */
void slab_free(void *p);
/* Unmaps the spare chunks. */
void slab_release(void);

typedef struct {
    size_t chunks; /* mapped, spares included */
    size_t spares; /* mapped and empty */
    size_t live;   /* objects handed out */
} slab_stats_t;
void slab_stats(slab_stats_t *st);
/* Test hook: the next n chunks cannot be mapped (as when mmap fails). */
void slab_fail_maps(unsigned n);

#endif
