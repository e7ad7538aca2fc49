/*
 * Latency histograms with fixed buckets, for /metrics (Prometheus
 * histograms: cumulative bucket counts, a count and a sum).
 *
 * The bucket bounds are the same for every histogram, 100 µs to 10 s,
 * so that series from different APIs aggregate and the exposition can
 * print the bounds from one table. A histogram is plain counters: it is
 * written and read on one thread (the event loop); a duration measured on
 * a worker thread is handed back to the loop before it is observed (see
 * store/flusher.c).
 */
#ifndef HERALD_BASE_HISTO_H
#define HERALD_BASE_HISTO_H

#include <stddef.h>
#include <stdint.h>

#define HISTO_NBOUNDS 16

/* Upper bounds of the buckets (inclusive, as Prometheus' "le"), ascending:
 * in ns, and the same as the text Prometheus shows ("0.00025"). */
extern const int64_t histo_bounds_ns[HISTO_NBOUNDS];
extern const char *const histo_bounds_text[HISTO_NBOUNDS];

typedef struct {
    uint64_t buckets[HISTO_NBOUNDS + 1]; /* observations per bucket, NOT cumulative;
                                          * [HISTO_NBOUNDS]: above the last bound */
    uint64_t count;                      /* observations */
    uint64_t sum_ns;                     /* sum of the observed durations, ns */
} histo_t;

/* Adds one duration (ns; a negative one counts as 0). */
void histo_observe(histo_t *h, int64_t ns);

/* A set of histograms keyed by a small integer (a Kafka API key, an AMQP
 * class/method id), kept sorted by key. At most HISTO_MAP_MAX keys: keys
 * past that are not recorded (keys may come from peers: a Kafka request
 * with an unknown API key is still timed). */
#define HISTO_MAP_MAX 256

typedef struct {
    uint32_t key;
    histo_t h;
} histo_entry_t;

typedef struct {
    histo_entry_t *e; /* n entries by ascending key, cap allocated */
    size_t n, cap;
} histo_map_t;

void histo_map_init(histo_map_t *m);
void histo_map_destroy(histo_map_t *m);
/* The histogram for key, created empty on first use; NULL when the map is
 * full. The pointer is valid until the next histo_map_get. */
histo_t *histo_map_get(histo_map_t *m, uint32_t key);
/* Observes ns in key's histogram (dropped when the map is full). */
void histo_map_observe(histo_map_t *m, uint32_t key, int64_t ns);

#endif
