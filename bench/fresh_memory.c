/*
 * fresh_memory: what first-touching anonymous memory costs on this machine,
 * the price a broker pays when it grows (delayed messages waiting, a
 * backlog in memory). Maps MB mebibytes in 2 MiB pieces, as the slab does
 * (src/base/slab.c), and writes one byte per 4 KiB page of each:
 *   fresh_memory MB [huge|small] [populate]
 * huge asks for transparent huge pages (MADV_HUGEPAGE, the slab's hint),
 * small forbids them; populate faults each piece in with one
 * MADV_POPULATE_WRITE call before the writes. Prints ms per MB. On a VM the
 * figure depends on whether the guest's free memory is still backed by the
 * host: memory another process has just freed comes back cheap, memory the
 * guest gave back to the host (free page reporting) costs the host's
 * faults again. Run it twice in a row, and again after a pause, to see
 * both.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PIECE ((size_t)2 << 20)

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fresh_memory MB [huge|small] [populate]\n");
        return 2;
    }
    long mb = strtol(argv[1], NULL, 10);
    if (mb < 2 || mb > 65536) {
        fprintf(stderr, "fresh_memory: MB must be 2..65536\n");
        return 2;
    }
    int huge = argc < 3 || strcmp(argv[2], "small") != 0;
    int populate = argc > 3 && strcmp(argv[3], "populate") == 0;
    size_t pieces = (size_t)mb / 2;
    void **p = calloc(pieces, sizeof *p);
    if (!p) return 1;
    double t0 = now_s();
    for (size_t i = 0; i < pieces; i++) {
        p[i] = mmap(NULL, PIECE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p[i] == MAP_FAILED) {
            perror("fresh_memory: mmap");
            return 1;
        }
        (void)madvise(p[i], PIECE, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        if (populate && madvise(p[i], PIECE, MADV_POPULATE_WRITE) != 0 && i == 0)
            perror("fresh_memory: MADV_POPULATE_WRITE (falling back to writes)");
        for (size_t off = 0; off < PIECE; off += 4096) ((volatile char *)p[i])[off] = 1;
    }
    double ms = (now_s() - t0) * 1e3;
    printf("fresh_memory: %zu MB, %s pages%s: %.1f ms, %.2f ms per MB\n", pieces * 2, huge ? "huge" : "4 KiB",
           populate ? ", populated" : "", ms, ms / (double)(pieces * 2));
    for (size_t i = 0; i < pieces; i++) munmap(p[i], PIECE);
    free(p);
    return 0;
}
