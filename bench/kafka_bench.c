/*
 * kafka_bench: throughput, latency and broker-CPU benchmark for a Kafka
 * broker (written for Herald), on librdkafka.
 *
 *   kafka_bench --brokers HOST:PORT [--mode all|produce|consume|latency]
 *               [--count N] [--size BYTES] [--acks 1|all] [--topic NAME]
 *               [--rate MSGS_PER_S] [--seconds S] [--pid BROKER_PID]
 *               [--deadline S] [--repeat N] [--linger MS]
 *
 * Mode "all" runs, each on a fresh topic where it writes:
 *   produce acks=1, produce acks=all, consume (the acks=all topic from
 *   offset 0), latency (fixed rate, send time in the payload, a consumer
 *   thread in this process measures end-to-end latency).
 * With --pid, the broker's utime+stime (/proc/PID/stat) is read before and
 * after each phase and reported as CPU-seconds per million messages.
 *
 * Every phase runs --repeat times (default 3), each on its own topic; the
 * table gives the median of each figure.
 * Output: one Markdown table on stdout; progress and errors on stderr.
 * Every loop is bounded by --deadline seconds per phase (default 90).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "bench_common.h"

/* ---- options ---------------------------------------------------------- */

typedef struct bench_opts {
    const char *brokers;
    const char *mode;
    const char *topic; /* base name; each phase appends a suffix */
    const char *acks;  /* for mode produce only */
    long count;
    int size;
    long rate;
    int seconds;
    int pid;
    int deadline_s;
    int repeat;
    const char *linger_ms; /* latency phase producer */
} bench_opts_t;

static bench_opts_t opts = {
    .brokers = NULL,
    .mode = "all",
    .topic = NULL,
    .acks = "all",
    .count = 1000000,
    .size = 100,
    .rate = 10000,
    .seconds = 10,
    .pid = 0,
    .deadline_s = 90,
    .repeat = 3,
    .linger_ms = "0",
};

/* ---- small helpers ---------------------------------------------------- */

static void bench_conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
        bench_die("config %s=%s: %s", k, v, err);
}

/* ---- results ---------------------------------------------------------- */

typedef struct bench_result {
    char phase[48];
    long msgs;
    double secs;
    double cpu_s; /* broker CPU during the phase, -1 unknown */
    double client_cpu_s; /* this tool's CPU (all its threads, librdkafka's included), -1 unknown */
    int has_lat;
    double p50_ms, p99_ms, p999_ms, max_ms;
    long errors;
} bench_result_t;

#define BENCH_MAX_RESULTS 256
static bench_result_t results[BENCH_MAX_RESULTS];
static int n_results;

static bench_result_t *bench_result_new(const char *phase)
{
    if (n_results == BENCH_MAX_RESULTS)
        bench_die("too many results");
    bench_result_t *r = &results[n_results++];
    memset(r, 0, sizeof *r);
    snprintf(r->phase, sizeof r->phase, "%s", phase);
    r->cpu_s = -1;
    r->client_cpu_s = -1;
    return r;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of n values (n >= 1); sorts v. */
static double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One row per phase: the median over its repetitions of each figure, and
 * the min-max of msgs/s. */
static void bench_print_table(void)
{
    printf("| phase | runs | messages | msgs/s (median) | msgs/s (min–max) | MB/s | p50 ms | p99 ms "
           "| p99.9 ms | max ms | broker CPU-s per 1M | client CPU-s per 1M | broker busy |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < n_results; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= !strcmp(results[j].phase, results[i].phase);
        if (seen)
            continue;
        double rate[BENCH_MAX_RESULTS], cpum[BENCH_MAX_RESULTS], ccpum[BENCH_MAX_RESULTS], busy[BENCH_MAX_RESULTS],
            lat[4][BENCH_MAX_RESULTS];
        int n = 0, ncpu = 0, nccpu = 0, nlat = 0;
        long msgs = 0, errors = 0;
        for (int j = i; j < n_results; j++) {
            bench_result_t *r = &results[j];
            if (strcmp(r->phase, results[i].phase))
                continue;
            rate[n++] = r->secs > 0 ? (double)r->msgs / r->secs : 0;
            msgs = r->msgs;
            errors += r->errors;
            if (r->cpu_s >= 0 && r->msgs > 0 && r->secs > 0) {
                busy[ncpu] = 100 * r->cpu_s / r->secs; /* % of one core */
                cpum[ncpu++] = r->cpu_s / ((double)r->msgs / 1e6);
            }
            if (r->client_cpu_s >= 0 && r->msgs > 0)
                ccpum[nccpu++] = r->client_cpu_s / ((double)r->msgs / 1e6);
            if (r->has_lat) {
                lat[0][nlat] = r->p50_ms;
                lat[1][nlat] = r->p99_ms;
                lat[2][nlat] = r->p999_ms;
                lat[3][nlat] = r->max_ms;
                nlat++;
            }
        }
        double med = bench_median(rate, n); /* sorts rate */
        char l[4][32], c[32], cc[32], bz[32];
        for (int k = 0; k < 4; k++) {
            if (nlat)
                snprintf(l[k], 32, "%.2f", bench_median(lat[k], nlat));
            else
                snprintf(l[k], 32, "–");
        }
        if (ncpu) {
            snprintf(c, sizeof c, "%.3f", bench_median(cpum, ncpu));
            snprintf(bz, sizeof bz, "%.0f %%", bench_median(busy, ncpu));
        } else {
            snprintf(c, sizeof c, "–");
            snprintf(bz, sizeof bz, "–");
        }
        if (nccpu)
            snprintf(cc, sizeof cc, "%.3f", bench_median(ccpum, nccpu));
        else
            snprintf(cc, sizeof cc, "–");
        printf("| %s%s | %d | %ld | %.0f | %.0f–%.0f | %.1f | %s | %s | %s | %s | %s | %s | %s |\n",
               results[i].phase, errors ? " (ERRORS)" : "", n, msgs, med, rate[0], rate[n - 1],
               med * opts.size / 1e6, l[0], l[1], l[2], l[3], c, cc, bz);
    }
    fflush(stdout);
}

/* ---- produce ---------------------------------------------------------- */

typedef struct bench_dr {
    long delivered;
    long failed;
    rd_kafka_resp_err_t first_err;
} bench_dr_t;

static void bench_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    bench_dr_t *dr = opaque;
    if (m->err) {
        if (!dr->failed)
            dr->first_err = m->err;
        dr->failed++;
    } else {
        dr->delivered++;
    }
}

static rd_kafka_t *bench_producer_new(const char *acks, const char *linger_ms, bench_dr_t *dr)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bench_conf_set(conf, "bootstrap.servers", opts.brokers);
    bench_conf_set(conf, "acks", acks);
    bench_conf_set(conf, "linger.ms", linger_ms);
    bench_conf_set(conf, "batch.size", "1048576");
    bench_conf_set(conf, "message.max.bytes", "2000000");
    bench_conf_set(conf, "queue.buffering.max.messages", "2000000");
    bench_conf_set(conf, "queue.buffering.max.kbytes", "1048576");
    bench_conf_set(conf, "compression.type", "none");
    bench_conf_set(conf, "message.timeout.ms", "60000");
    rd_kafka_conf_set_dr_msg_cb(conf, bench_dr_cb);
    rd_kafka_conf_set_opaque(conf, dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk)
        bench_die("producer: %s", err);
    return rk;
}

/* Produce opts.count messages of opts.size bytes to partition 0 of topic. */
static void bench_produce(const char *topic, const char *acks, const char *phase)
{
    bench_dr_t dr = {0};
    rd_kafka_t *rk = bench_producer_new(acks, "5", &dr);
    char *payload = malloc((size_t)opts.size);
    memset(payload, 'x', (size_t)opts.size);

    /* Create the topic and the connection before timing. */
    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                      RD_KAFKA_V_VALUE(payload, (size_t)opts.size),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    rd_kafka_flush(rk, 10000);
    if (dr.delivered != 1)
        bench_die("%s: warm-up message not delivered: %s", phase, rd_kafka_err2str(dr.first_err));
    dr.delivered = 0;

    bench_result_t *r = bench_result_new(phase);
    double cpu0 = bench_proc_cpu_s(opts.pid), ccpu0 = bench_proc_cpu_s((int)getpid());
    uint64_t t0 = bench_now_ns();
    uint64_t deadline = t0 + (uint64_t)opts.deadline_s * 1000000000ull;
    long sent = 0;
    while (sent < opts.count && bench_now_ns() < deadline) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
            RD_KAFKA_V_VALUE(payload, (size_t)opts.size), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 1);
            continue;
        }
        if (e)
            bench_die("%s: produce: %s", phase, rd_kafka_err2str(e));
        sent++;
        if ((sent & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    while (dr.delivered + dr.failed < sent && bench_now_ns() < deadline)
        rd_kafka_poll(rk, 10);
    uint64_t t1 = bench_now_ns();
    double cpu1 = bench_proc_cpu_s(opts.pid), ccpu1 = bench_proc_cpu_s((int)getpid());

    r->msgs = dr.delivered;
    r->errors = dr.failed + (sent - dr.delivered - dr.failed);
    r->secs = (double)(t1 - t0) / 1e9;
    if (cpu0 >= 0 && cpu1 >= 0)
        r->cpu_s = cpu1 - cpu0;
    if (ccpu0 >= 0 && ccpu1 >= 0)
        r->client_cpu_s = ccpu1 - ccpu0;
    if (r->errors)
        fprintf(stderr, "kafka_bench: %s: %ld of %ld not delivered (first error: %s)\n", phase,
                r->errors, sent, rd_kafka_err2str(dr.first_err));
    fprintf(stderr, "kafka_bench: %s: %ld msgs in %.2f s, broker CPU %.2f s\n", phase, r->msgs,
            r->secs, r->cpu_s);

    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk, 1000);
    rd_kafka_destroy(rk);
    free(payload);
}

/* ---- consume ---------------------------------------------------------- */

/* A consumer reading partition 0 of topic from offset 0. It uses the
 * simple (group-less) consumer API: rd_kafka_assign() needs a group.id,
 * and with one librdkafka looks up a group coordinator, which this bench
 * does not want to measure. Returns the topic handle in *rktp. */
static rd_kafka_t *bench_consumer_new(const char *topic, const char *fetch_wait_ms,
                                      rd_kafka_topic_t **rktp)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bench_conf_set(conf, "bootstrap.servers", opts.brokers);
    bench_conf_set(conf, "fetch.min.bytes", "1");
    bench_conf_set(conf, "fetch.wait.max.ms", fetch_wait_ms);
    bench_conf_set(conf, "fetch.max.bytes", "52428800");
    bench_conf_set(conf, "fetch.message.max.bytes", "4194304");
    bench_conf_set(conf, "queued.min.messages", "200000");
    bench_conf_set(conf, "check.crcs", "false");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk)
        bench_die("consumer: %s", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt || rd_kafka_consume_start(rkt, 0, 0) == -1)
        bench_die("consume_start %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
    *rktp = rkt;
    return rk;
}

static void bench_consumer_free(rd_kafka_t *rk, rd_kafka_topic_t *rkt)
{
    rd_kafka_consume_stop(rkt, 0);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
}

/* Read want messages (after skip warm-up ones) from partition 0. */
static void bench_consume(const char *topic, long skip, long want, const char *phase)
{
    rd_kafka_topic_t *rkt;
    rd_kafka_t *rk = bench_consumer_new(topic, "100", &rkt);
    bench_result_t *r = bench_result_new(phase);
    enum { BATCH = 10000 };
    rd_kafka_message_t **batch = calloc(BATCH, sizeof *batch);

    double cpu0 = bench_proc_cpu_s(opts.pid), ccpu0 = bench_proc_cpu_s((int)getpid());
    uint64_t t0 = bench_now_ns();
    uint64_t deadline = t0 + (uint64_t)opts.deadline_s * 1000000000ull;
    long got = 0, errs = 0;
    while (got < skip + want && bench_now_ns() < deadline) {
        ssize_t n = rd_kafka_consume_batch(rkt, 0, 100, batch, BATCH);
        for (ssize_t i = 0; i < n; i++) {
            if (batch[i]->err) {
                if (batch[i]->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && errs++ < 5)
                    fprintf(stderr, "kafka_bench: %s: %s\n", phase,
                            rd_kafka_message_errstr(batch[i]));
            } else {
                got++;
            }
            rd_kafka_message_destroy(batch[i]);
        }
    }
    uint64_t t1 = bench_now_ns();
    double cpu1 = bench_proc_cpu_s(opts.pid), ccpu1 = bench_proc_cpu_s((int)getpid());

    r->msgs = got > skip ? got - skip : 0;
    r->errors = (skip + want - got) + errs;
    r->secs = (double)(t1 - t0) / 1e9;
    if (cpu0 >= 0 && cpu1 >= 0)
        r->cpu_s = cpu1 - cpu0;
    if (ccpu0 >= 0 && ccpu1 >= 0)
        r->client_cpu_s = ccpu1 - ccpu0;
    fprintf(stderr, "kafka_bench: %s: %ld msgs in %.2f s, broker CPU %.2f s\n", phase, r->msgs,
            r->secs, r->cpu_s);

    free(batch);
    bench_consumer_free(rk, rkt);
}

/* ---- latency ---------------------------------------------------------- */

/* Payload layout: 8-byte magic, 8-byte send time (CLOCK_MONOTONIC ns),
 * 8-byte sequence number (-1 for the warm-up message), then filler. */
#define BENCH_MAGIC 0x68657261626e6368ull

typedef struct bench_lat {
    const char *topic;
    long expect;       /* timed messages to wait for */
    uint64_t *lat_ns;  /* indexed by sequence number */
    long received;
    volatile int ready; /* warm-up message seen */
    volatile int stop;
    long errors;
} bench_lat_t;

static void *bench_lat_consumer(void *arg)
{
    bench_lat_t *L = arg;
    rd_kafka_topic_t *rkt;
    rd_kafka_t *rk = bench_consumer_new(L->topic, "500", &rkt);
    while (!L->stop && L->received < L->expect) {
        rd_kafka_message_t *m = rd_kafka_consume(rkt, 0, 50);
        if (!m)
            continue;
        uint64_t now = bench_now_ns();
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && L->errors++ < 5)
                fprintf(stderr, "kafka_bench: latency consumer: %s\n", rd_kafka_message_errstr(m));
        } else if (m->len >= 24) {
            uint64_t hdr[3];
            memcpy(hdr, m->payload, sizeof hdr);
            int64_t seq = (int64_t)hdr[2];
            if (hdr[0] != BENCH_MAGIC) {
                L->errors++;
            } else if (seq < 0) {
                L->ready = 1;
            } else if (seq < L->expect && L->lat_ns[seq] == 0) {
                L->lat_ns[seq] = now - hdr[1] + 1; /* 0 means "not seen" */
                L->received++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    bench_consumer_free(rk, rkt);
    return NULL;
}

static void bench_latency(const char *topic, const char *phase)
{
    long total = opts.rate * opts.seconds;
    size_t size = opts.size < 24 ? 24 : (size_t)opts.size;
    char *payload = malloc(size);
    memset(payload, 'x', size);
    uint64_t hdr[3] = {BENCH_MAGIC, 0, (uint64_t)-1};

    bench_dr_t dr = {0};
    rd_kafka_t *rk = bench_producer_new("all", opts.linger_ms, &dr);

    /* Warm-up: create the topic, then wait until the consumer sees it. */
    hdr[1] = bench_now_ns();
    memcpy(payload, hdr, sizeof hdr);
    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                      RD_KAFKA_V_VALUE(payload, size), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                      RD_KAFKA_V_END);
    rd_kafka_flush(rk, 10000);
    if (dr.delivered != 1)
        bench_die("%s: warm-up message not delivered: %s", phase, rd_kafka_err2str(dr.first_err));
    dr.delivered = 0;

    bench_lat_t L = {.topic = topic, .expect = total};
    L.lat_ns = calloc((size_t)total, sizeof *L.lat_ns);
    pthread_t th;
    if (pthread_create(&th, NULL, bench_lat_consumer, &L))
        bench_die("pthread_create");
    uint64_t ready_by = bench_now_ns() + 15000000000ull;
    while (!L.ready && bench_now_ns() < ready_by)
        usleep(1000);
    if (!L.ready)
        bench_die("%s: consumer did not see the warm-up message", phase);

    bench_result_t *r = bench_result_new(phase);
    double cpu0 = bench_proc_cpu_s(opts.pid), ccpu0 = bench_proc_cpu_s((int)getpid());
    uint64_t t0 = bench_now_ns();
    uint64_t deadline = t0 + ((uint64_t)opts.seconds + 30) * 1000000000ull;
    long sent = 0;
    while (sent < total && bench_now_ns() < deadline) {
        /* Send everything due by now, then sleep until the next is due. */
        uint64_t now = bench_now_ns();
        while (sent < total && t0 + (uint64_t)((double)sent * 1e9 / (double)opts.rate) <= now) {
            hdr[1] = bench_now_ns();
            hdr[2] = (uint64_t)sent;
            memcpy(payload, hdr, sizeof hdr);
            rd_kafka_resp_err_t e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                RD_KAFKA_V_VALUE(payload, size), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 1);
                break;
            }
            if (e)
                bench_die("%s: produce: %s", phase, rd_kafka_err2str(e));
            sent++;
        }
        rd_kafka_poll(rk, 0);
        uint64_t next = t0 + (uint64_t)((double)sent * 1e9 / (double)opts.rate);
        now = bench_now_ns();
        if (next > now) {
            struct timespec ts = {.tv_sec = (time_t)(next / 1000000000ull),
                                  .tv_nsec = (long)(next % 1000000000ull)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
    }
    while (dr.delivered + dr.failed < sent && bench_now_ns() < deadline)
        rd_kafka_poll(rk, 10);
    while (L.received < sent && bench_now_ns() < deadline)
        usleep(1000);
    uint64_t t1 = bench_now_ns();
    double cpu1 = bench_proc_cpu_s(opts.pid), ccpu1 = bench_proc_cpu_s((int)getpid());
    L.stop = 1;
    pthread_join(th, NULL);

    /* Compact the seen latencies and sort them. */
    long n = 0;
    for (long i = 0; i < total; i++)
        if (L.lat_ns[i])
            L.lat_ns[n++] = L.lat_ns[i] - 1;
    qsort(L.lat_ns, (size_t)n, sizeof *L.lat_ns, bench_cmp_u64);
    r->msgs = n;
    r->secs = (double)(t1 - t0) / 1e9;
    r->errors = (sent - n) + dr.failed + L.errors + (total - sent);
    if (cpu0 >= 0 && cpu1 >= 0)
        r->cpu_s = cpu1 - cpu0;
    if (ccpu0 >= 0 && ccpu1 >= 0)
        r->client_cpu_s = ccpu1 - ccpu0;
    if (n > 0) {
        r->has_lat = 1;
        r->p50_ms = (double)L.lat_ns[(long)(0.50 * (double)(n - 1))] / 1e6;
        r->p99_ms = (double)L.lat_ns[(long)(0.99 * (double)(n - 1))] / 1e6;
        r->p999_ms = (double)L.lat_ns[(long)(0.999 * (double)(n - 1))] / 1e6;
        r->max_ms = (double)L.lat_ns[n - 1] / 1e6;
    }
    fprintf(stderr, "kafka_bench: %s: sent %ld, received %ld in %.2f s, broker CPU %.2f s\n",
            phase, sent, n, r->secs, r->cpu_s);

    free(L.lat_ns);
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk, 1000);
    rd_kafka_destroy(rk);
    free(payload);
}

/* ---- main ------------------------------------------------------------- */

static void bench_usage(void)
{
    fprintf(stderr,
            "usage: kafka_bench --brokers HOST:PORT [--mode all|produce|consume|latency]\n"
            "       [--count N] [--size BYTES] [--acks 1|all] [--topic NAME]\n"
            "       [--rate MSGS_PER_S] [--seconds S] [--pid BROKER_PID] [--deadline S] [--repeat N]\n"
            "       [--linger MS (latency producer, default 0)]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    bench_prog = "kafka_bench";
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (i + 1 >= argc)
            bench_usage();
        const char *v = argv[++i];
        if (!strcmp(k, "--brokers"))
            opts.brokers = v;
        else if (!strcmp(k, "--mode"))
            opts.mode = v;
        else if (!strcmp(k, "--topic"))
            opts.topic = v;
        else if (!strcmp(k, "--acks"))
            opts.acks = v;
        else if (!strcmp(k, "--count"))
            opts.count = strtol(v, NULL, 10);
        else if (!strcmp(k, "--size"))
            opts.size = atoi(v);
        else if (!strcmp(k, "--rate"))
            opts.rate = strtol(v, NULL, 10);
        else if (!strcmp(k, "--seconds"))
            opts.seconds = atoi(v);
        else if (!strcmp(k, "--pid"))
            opts.pid = atoi(v);
        else if (!strcmp(k, "--linger"))
            opts.linger_ms = v;
        else if (!strcmp(k, "--repeat"))
            opts.repeat = atoi(v);
        else if (!strcmp(k, "--deadline"))
            opts.deadline_s = atoi(v);
        else
            bench_usage();
    }
    if (!opts.brokers || opts.count <= 0 || opts.size <= 0 || opts.rate <= 0 ||
        opts.seconds <= 0 || opts.deadline_s <= 0 || opts.repeat <= 0 || opts.repeat > 20)
        bench_usage();

    char base[128];
    if (opts.topic)
        snprintf(base, sizeof base, "%s", opts.topic);
    else
        snprintf(base, sizeof base, "bench-%ld-%d", (long)time(NULL), (int)getpid());

    char label[64], t[200];
    for (int run = 0; run < opts.repeat; run++) {
        if (!strcmp(opts.mode, "all")) {
            snprintf(t, sizeof t, "%s-%d-acks1", base, run);
            bench_produce(t, "1", "produce acks=1");
            bench_result_t *p = &results[n_results];
            snprintf(t, sizeof t, "%s-%d-acksall", base, run);
            bench_produce(t, "all", "produce acks=all");
            bench_result_t *c = &results[n_results];
            bench_consume(t, 1, opts.count, "consume");
            /* Produce acks=all + consume of the same messages, both batched. */
            if (p->cpu_s >= 0 && c->cpu_s >= 0) {
                bench_result_t *b = bench_result_new("produce acks=all + consume");
                b->msgs = p->msgs < c->msgs ? p->msgs : c->msgs;
                b->secs = p->secs + c->secs;
                b->cpu_s = p->cpu_s + c->cpu_s;
                b->client_cpu_s = p->client_cpu_s >= 0 && c->client_cpu_s >= 0 ? p->client_cpu_s + c->client_cpu_s : -1;
                b->errors = p->errors + c->errors;
            }
            snprintf(label, sizeof label, "latency %ld/s acks=all linger %sms", opts.rate,
                     opts.linger_ms);
            snprintf(t, sizeof t, "%s-%d-latency", base, run);
            bench_latency(t, label);
        } else if (!strcmp(opts.mode, "produce")) {
            snprintf(label, sizeof label, "produce acks=%s", opts.acks);
            snprintf(t, sizeof t, "%s-%d", base, run);
            bench_produce(t, opts.acks, label);
        } else if (!strcmp(opts.mode, "consume")) {
            if (!opts.topic)
                bench_die("--mode consume needs --topic");
            bench_consume(base, 0, opts.count, "consume");
        } else if (!strcmp(opts.mode, "latency")) {
            snprintf(label, sizeof label, "latency %ld/s acks=all linger %sms", opts.rate,
                     opts.linger_ms);
            snprintf(t, sizeof t, "%s-%d", base, run);
            bench_latency(t, label);
        } else {
            bench_usage();
        }
    }

    bench_print_table();
    if (opts.pid > 0)
        printf("\nBroker RSS now %ld kB, peak (VmHWM) %ld kB.\n", bench_proc_status_kb(opts.pid, "VmRSS"),
               bench_proc_status_kb(opts.pid, "VmHWM"));
    int bad = 0;
    for (int i = 0; i < n_results; i++)
        bad |= results[i].errors != 0;
    return bad ? 1 : 0;
}
