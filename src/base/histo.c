/* Fixed-bucket latency histograms. See histo.h. */
#include "base/histo.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

const int64_t histo_bounds_ns[HISTO_NBOUNDS] = {
    100000,    250000,    500000,     1000000,    2500000,    5000000,    10000000,   25000000,
    50000000,  100000000, 250000000,  500000000,  1000000000, 2500000000, 5000000000, 10000000000,
};

const char *const histo_bounds_text[HISTO_NBOUNDS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10",
};

void histo_observe(histo_t *h, int64_t ns)
{
    if (ns < 0) ns = 0;
    /* Binary search for the first bound >= ns (HISTO_NBOUNDS if none). */
    size_t lo = 0, hi = HISTO_NBOUNDS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (histo_bounds_ns[mid] < ns) lo = mid + 1;
        else hi = mid;
    }
    h->buckets[lo]++;
    h->count++;
    h->sum_ns += (uint64_t)ns;
}

void histo_map_init(histo_map_t *m) { memset(m, 0, sizeof *m); }

void histo_map_destroy(histo_map_t *m)
{
    free(m->e);
    memset(m, 0, sizeof *m);
}

histo_t *histo_map_get(histo_map_t *m, uint32_t key)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->e[mid].key < key) lo = mid + 1;
        else hi = mid;
    }
    if (lo < m->n && m->e[lo].key == key) return &m->e[lo].h;
    if (m->n >= HISTO_MAP_MAX) return NULL;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->e = xrealloc(m->e, m->cap * sizeof *m->e);
    }
    memmove(&m->e[lo + 1], &m->e[lo], (m->n - lo) * sizeof *m->e);
    m->n++;
    memset(&m->e[lo], 0, sizeof m->e[lo]);
    m->e[lo].key = key;
    return &m->e[lo].h;
}

void histo_map_observe(histo_map_t *m, uint32_t key, int64_t ns)
{
    histo_t *h = histo_map_get(m, key);
    if (h) histo_observe(h, ns);
}
