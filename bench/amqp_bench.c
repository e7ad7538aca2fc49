/*
 * amqp_bench: throughput, latency and broker-CPU benchmark for an AMQP 0-9-1
 * broker (written for Herald, run against RabbitMQ for scale), on rabbitmq-c.
 *
 *   amqp_bench [--host H] [--port P] [--phase all|publish|consume|both|latency]
 *              [--count N] [--size BYTES] [--window N] [--prefetch N]
 *              [--ack-every N] [--rate MSGS_PER_S] [--seconds S] [--queue NAME]
 *              [--broker-pid PID] [--label NAME] [--timeout S] [--repeat N]
 *
 * Phases, each on a durable queue with a fresh name, user guest/guest, vhost /:
 *   publish  --count persistent (delivery_mode 2) messages of --size bytes
 *            with publisher confirms, at most --window unconfirmed; timed
 *            from the first send to the last confirm;
 *   consume  that queue read back: basic.qos --prefetch, manual acks,
 *            basic.ack multiple=true every --ack-every messages;
 *   both     a publisher and a consumer at once (two connections, two
 *            threads) on a new queue; timed until the consumer has them all;
 *   latency  --rate msgs/s for --seconds, the send time in the body; a
 *            consumer on a second connection records send-to-receive time.
 * Mode "all" runs the four in that order --repeat times and deletes its
 * queues. "publish" alone keeps its queue (--queue names it) so that
 * "consume --queue NAME" can read it later.
 *
 * Publishing: rabbitmq-c's amqp_basic_publish() makes one send() per frame,
 * three per message, and at a million messages the client would be what is
 * measured. This tool encodes the basic.publish, content-header and body
 * frames itself, once, into a buffer holding a window of messages and sends
 * a chunk of it with one send(); rabbitmq-c opens the connection, runs the
 * RPCs and decodes everything the broker sends.
 *
 * With --broker-pid, the broker's utime+stime (/proc/PID/stat) is read
 * before and after each phase and reported as CPU-seconds per million
 * messages, with its VmRSS and VmHWM (peak so far) after the phase.
 *
 * Output: one line per phase and run on stdout, "-" where a figure does not
 * apply,
 *   RESULT broker=LABEL phase=P run=R msgs=N secs=S rate=MSGS_PER_S cpu_s=C
 *          cpu_per_m=C rss_kb=K hwm_kb=K p50_ms=.. p99_ms=.. p999_ms=..
 *          max_ms=.. errors=E
 * and progress in words on stderr. Exit status 1 if any phase had errors.
 * Bounded: a phase stops at --timeout seconds (default 300; the latency phase
 * at --seconds + 30), every socket wait has a timeout, and an alarm ends the
 * process if a phase overruns its bound by a minute.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "bench_amqp.h"
#include "bench_common.h"

/* ---- options ---------------------------------------------------------- */

typedef struct bench_opts {
    const char *host;
    int port;
    const char *phase;
    const char *label; /* broker= in RESULT lines */
    const char *queue; /* NULL: a fresh name per phase and run */
    long count;
    int size;      /* bytes per message body */
    int window;    /* unconfirmed messages, publisher */
    int prefetch;  /* basic.qos prefetch-count, consumer */
    int ack_every; /* messages per basic.ack multiple=true */
    long rate;     /* msgs/s, latency phase */
    int seconds;   /* latency phase length */
    int pid;       /* broker, 0: no CPU or RSS figures */
    int timeout_s; /* per phase */
    int repeat;
    int stream;    /* 1: stream queues (x-queue-type=stream), consumed from x-stream-offset=first */
} bench_opts_t;

static bench_opts_t opts = {
    .host = "127.0.0.1",
    .port = 5672,
    .phase = "all",
    .label = "broker",
    .queue = NULL,
    .count = 1000000,
    .size = 100,
    .window = 1000,
    .prefetch = 1000,
    .ack_every = 100,
    .rate = 10000,
    .seconds = 10,
    .pid = 0,
    .timeout_s = 300,
    .repeat = 1,
    .stream = 0,
};

/* One-entry argument table {name: longstr value}, for stream queues. */
static amqp_table_t bench_str_table(amqp_table_entry_t *e, const char *name, const char *value)
{
    e->key = amqp_cstring_bytes(name);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = amqp_cstring_bytes(value);
    return (amqp_table_t){1, e};
}

/* ---- small helpers ---------------------------------------------------- */

static void bench_on_alarm(int sig)
{
    static const char msg[] = "amqp_bench: watchdog: a phase overran its time bound, giving up\n";
    (void)sig;
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(3);
}

/* ---- connections ------------------------------------------------------ */

/* Opens a connection and channel 1. Every wait is bounded by --timeout. */
static void conn_open(bench_conn_t *bc, const char *who)
{
    bench_conn_open(bc, who, opts.host, opts.port, opts.timeout_s);
    if (opts.size + 8 > amqp_get_frame_max(bc->c))
        bench_die("%s: --size %d does not fit one frame (frame-max %d)", who, opts.size,
                  amqp_get_frame_max(bc->c));
}

static void bench_queue_declare(bench_conn_t *bc, const char *q)
{
    amqp_table_entry_t e;
    amqp_queue_declare(bc->c, 1, amqp_cstring_bytes(q), 0, 1, 0, 0,
                       opts.stream ? bench_str_table(&e, "x-queue-type", "stream") : amqp_empty_table);
    bench_reply_check(amqp_get_rpc_reply(bc->c), bc->who, "queue.declare");
}

static void bench_queue_delete(bench_conn_t *bc, const char *q)
{
    amqp_queue_delete(bc->c, 1, amqp_cstring_bytes(q), 0, 0);
    bench_reply_check(amqp_get_rpc_reply(bc->c), bc->who, "queue.delete");
}

/* ---- publish frames --------------------------------------------------- */

/* Bytes bench_put_message() writes: three frames of 8 bytes' overhead
 * around basic.publish (9 + queue name), the header (15) and the body. */
static size_t bench_message_bytes(size_t qlen, size_t size)
{
    return (8 + 9 + qlen) + (8 + 15) + (8 + size);
}

/* Encodes one persistent message to the default exchange on channel 1:
 *
 *   method  1 | ch 1 | len | 60 40 | ticket 0 | "" | shortstr queue | bits 0 | CE
 *   header  2 | ch 1 | 15  | 60 | weight 0 | body size u64 | flags 0x1000 | 2 | CE
 *   body    3 | ch 1 | size | body | CE
 *
 * qlen <= 255; size <= frame-max - 8. Returns the end of what it wrote. */
static uint8_t *bench_put_message(uint8_t *p, const char *q, size_t qlen, const void *body,
                                  size_t size)
{
    *p++ = AMQP_FRAME_METHOD;
    p = bench_put16(p, 1);
    p = bench_put32(p, (uint32_t)(9 + qlen));
    p = bench_put32(p, AMQP_BASIC_PUBLISH_METHOD);
    p = bench_put16(p, 0); /* ticket */
    *p++ = 0;              /* exchange "" */
    *p++ = (uint8_t)qlen;  /* routing key */
    memcpy(p, q, qlen);
    p += qlen;
    *p++ = 0; /* mandatory, immediate */
    *p++ = AMQP_FRAME_END;

    *p++ = AMQP_FRAME_HEADER;
    p = bench_put16(p, 1);
    p = bench_put32(p, 15);
    p = bench_put16(p, AMQP_BASIC_CLASS);
    p = bench_put16(p, 0); /* weight */
    p = bench_put64(p, size);
    p = bench_put16(p, AMQP_BASIC_DELIVERY_MODE_FLAG);
    *p++ = 2; /* persistent */
    *p++ = AMQP_FRAME_END;

    *p++ = AMQP_FRAME_BODY;
    p = bench_put16(p, 1);
    p = bench_put32(p, (uint32_t)size);
    memcpy(p, body, size);
    p += size;
    *p++ = AMQP_FRAME_END;
    return p;
}

/* ---- publisher -------------------------------------------------------- */

/* Body layout of latency messages: 8-byte magic, 8-byte send time
 * (CLOCK_MONOTONIC ns), 8-byte sequence number, then filler. */
#define BENCH_MAGIC 0x68657261626e6368ull
#define BENCH_HDR 24

typedef struct bench_pub {
    bench_conn_t conn;
    const char *queue;
    size_t qlen;
    long count;     /* messages to publish */
    long sent;      /* delivery tags 1..sent are published */
    long confirmed; /* acked + nacked */
    long nacked;
    long low;       /* every tag below low is confirmed */
    uint8_t *done;  /* done[tag] != 0: confirmed; count + 1 entries */
    uint8_t *buf;   /* encoded messages, one window's worth */
    size_t msg_bytes;
    char *body;     /* opts.size bytes */
    long errors;
} bench_pub_t;

/* Connects, selects confirms and encodes a window of identical messages. */
static void bench_pub_init(bench_pub_t *P, const char *queue, long count)
{
    memset(P, 0, sizeof *P);
    conn_open(&P->conn, "publisher");
    amqp_confirm_select(P->conn.c, 1);
    bench_reply_check(amqp_get_rpc_reply(P->conn.c), "publisher", "confirm.select");
    P->queue = queue;
    P->qlen = strlen(queue);
    P->count = count;
    P->low = 1;
    P->done = calloc((size_t)count + 2, 1);
    P->msg_bytes = bench_message_bytes(P->qlen, (size_t)opts.size);
    P->buf = malloc(P->msg_bytes * (size_t)opts.window);
    P->body = malloc((size_t)opts.size);
    if (!P->done || !P->buf || !P->body)
        bench_die("out of memory");
    memset(P->body, 'x', (size_t)opts.size);
    uint8_t *p = P->buf;
    for (int i = 0; i < opts.window; i++)
        p = bench_put_message(p, queue, P->qlen, P->body, (size_t)opts.size);
}

static void bench_pub_destroy(bench_pub_t *P)
{
    bench_conn_close(&P->conn);
    free(P->done);
    free(P->buf);
    free(P->body);
}

/* Records basic.ack or basic.nack for tag (and below, if multiple). */
static void bench_pub_confirm(bench_pub_t *P, uint64_t tag, int multiple, int nack)
{
    if (multiple && tag == 0)
        tag = (uint64_t)P->sent; /* spec: multiple with tag 0 is "all so far" */
    if (tag == 0 || tag > (uint64_t)P->sent)
        bench_die("publisher: confirm for tag %" PRIu64 ", only %ld published", tag, P->sent);
    for (long t = multiple ? P->low : (long)tag; t <= (long)tag; t++) {
        if (!P->done[t]) {
            P->done[t] = 1;
            P->confirmed++;
            P->nacked += nack;
        }
    }
    while (P->low <= P->sent && P->done[P->low])
        P->low++;
}

/* Reads what the broker sent: waits up to wait_ms for the first frame (0:
 * only what has arrived), then takes every frame already there. */
static void bench_pub_poll(bench_pub_t *P, int wait_ms)
{
    struct timeval tv = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
    for (;;) {
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(P->conn.c, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK)
            bench_die("publisher: reading: %s", amqp_error_string2(rc));
        tv.tv_sec = tv.tv_usec = 0;
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            bench_pub_confirm(P, a->delivery_tag, a->multiple, 0);
        } else if (f.frame_type == AMQP_FRAME_METHOD &&
                   f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            amqp_basic_nack_t *a = f.payload.method.decoded;
            bench_pub_confirm(P, a->delivery_tag, a->multiple, 1);
        } else {
            bench_frame_other(&P->conn, &f);
        }
    }
    amqp_maybe_release_buffers(P->conn.c);
}

/* Publishes P->count messages as fast as confirms allow: sends a chunk when
 * at least an eighth of the window is free, one send() per chunk. */
static void bench_pub_run(bench_pub_t *P, uint64_t deadline)
{
    long chunk_min = opts.window / 8 > 0 ? opts.window / 8 : 1;
    while (P->confirmed < P->count && bench_now_ns() < deadline) {
        long room = opts.window - (P->sent - P->confirmed);
        long left = P->count - P->sent;
        long n = room < left ? room : left;
        if (n > 0 && (n >= chunk_min || n == left)) {
            int rc = bench_send_all(P->conn.fd, P->buf, P->msg_bytes * (size_t)n, deadline);
            if (rc < 0) {
                fprintf(stderr, "amqp_bench: publisher: send: %s\n", strerror(-rc));
                break;
            }
            P->sent += n;
            bench_pub_poll(P, 0);
        } else {
            bench_pub_poll(P, 100);
        }
    }
    P->errors = (P->count - P->confirmed) + P->nacked;
}

/* ---- consumer --------------------------------------------------------- */

typedef struct bench_sub {
    bench_conn_t conn;
    const char *queue;
    long count;        /* messages to receive */
    long got;
    long errors;
    uint64_t deadline; /* ns, monotonic */
    uint64_t *lat_ns;  /* latency phase: by sequence number, 0 = not seen */
    volatile int ready; /* basic.consume-ok received */
    volatile int stop;
} bench_sub_t;

static void bench_sub_start(bench_sub_t *S)
{
    amqp_basic_qos(S->conn.c, 1, 0, (uint16_t)opts.prefetch, 0);
    bench_reply_check(amqp_get_rpc_reply(S->conn.c), "consumer", "basic.qos");
    amqp_table_entry_t e;
    amqp_basic_consume(S->conn.c, 1, amqp_cstring_bytes(S->queue), amqp_empty_bytes, 0, 0, 0,
                       opts.stream ? bench_str_table(&e, "x-stream-offset", "first") : amqp_empty_table);
    bench_reply_check(amqp_get_rpc_reply(S->conn.c), "consumer", "basic.consume");
    S->ready = 1;
}

/* A whole message arrived at now; head holds its first head_len bytes. */
static void bench_sub_latency(bench_sub_t *S, const uint8_t *head, size_t head_len, uint64_t now)
{
    uint64_t h[3];
    if (head_len < BENCH_HDR) {
        S->errors++;
        return;
    }
    memcpy(h, head, sizeof h);
    if (h[0] != BENCH_MAGIC || h[2] >= (uint64_t)S->count || S->lat_ns[h[2]]) {
        S->errors++;
        return;
    }
    S->lat_ns[h[2]] = now - h[1] + 1; /* 0 means "not seen" */
}

/* Receives S->count messages (basic.deliver, header, body frames) and acks
 * them with multiple=true every --ack-every. */
static void bench_sub_run(bench_sub_t *S)
{
    uint64_t tag = 0, acked = 0, body_left = 0;
    uint8_t head[BENCH_HDR];
    size_t head_len = 0;
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
    while (S->got < S->count && !S->stop && bench_now_ns() < S->deadline) {
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(S->conn.c, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            continue;
        if (rc != AMQP_STATUS_OK)
            bench_die("consumer: reading: %s", amqp_error_string2(rc));
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
            tag = ((amqp_basic_deliver_t *)f.payload.method.decoded)->delivery_tag;
            head_len = 0;
            continue;
        } else if (f.frame_type == AMQP_FRAME_HEADER) {
            body_left = f.payload.properties.body_size;
            if (body_left > 0)
                continue;
        } else if (f.frame_type == AMQP_FRAME_BODY) {
            size_t len = f.payload.body_fragment.len;
            size_t take = len < sizeof head - head_len ? len : sizeof head - head_len;
            memcpy(head + head_len, f.payload.body_fragment.bytes, take);
            head_len += take;
            body_left -= len < body_left ? len : body_left;
            if (body_left > 0)
                continue;
        } else {
            bench_frame_other(&S->conn, &f);
            continue;
        }
        /* A whole message. */
        if (S->lat_ns)
            bench_sub_latency(S, head, head_len, bench_now_ns());
        S->got++;
        if (tag - acked >= (uint64_t)opts.ack_every || S->got == S->count) {
            rc = amqp_basic_ack(S->conn.c, 1, tag, 1);
            if (rc != AMQP_STATUS_OK)
                bench_die("consumer: basic.ack: %s", amqp_error_string2(rc));
            acked = tag;
            amqp_maybe_release_buffers(S->conn.c);
        }
    }
    if (tag > acked && amqp_basic_ack(S->conn.c, 1, tag, 1) != AMQP_STATUS_OK)
        S->errors++;
}

static void *bench_sub_thread(void *arg)
{
    bench_sub_t *S = arg;
    bench_sub_start(S);
    bench_sub_run(S);
    return NULL;
}

/* ---- results ---------------------------------------------------------- */

typedef struct bench_result {
    const char *phase;
    int run;
    long msgs;
    double secs;
    double cpu_s; /* broker CPU during the phase, -1 unknown */
    int has_lat;
    double p50_ms, p99_ms, p999_ms, max_ms;
    long errors;
} bench_result_t;

static int bench_failed;

static void bench_fmt(char *out, size_t n, int have, const char *fmt, double v)
{
    if (have)
        snprintf(out, n, fmt, v);
    else
        snprintf(out, n, "-");
}

static void bench_report(const bench_result_t *r)
{
    double rate = r->secs > 0 ? (double)r->msgs / r->secs : 0;
    int have_cpu = r->cpu_s >= 0 && r->msgs > 0;
    char cpu[32], cpum[32], l[4][32];
    bench_fmt(cpu, sizeof cpu, have_cpu, "%.2f", r->cpu_s);
    bench_fmt(cpum, sizeof cpum, have_cpu, "%.2f", have_cpu ? r->cpu_s / ((double)r->msgs / 1e6) : 0);
    bench_fmt(l[0], 32, r->has_lat, "%.3f", r->p50_ms);
    bench_fmt(l[1], 32, r->has_lat, "%.3f", r->p99_ms);
    bench_fmt(l[2], 32, r->has_lat, "%.3f", r->p999_ms);
    bench_fmt(l[3], 32, r->has_lat, "%.3f", r->max_ms);
    long rss = bench_proc_status_kb(opts.pid, "VmRSS"), hwm = bench_proc_status_kb(opts.pid, "VmHWM");
    printf("RESULT broker=%s phase=%s run=%d msgs=%ld secs=%.3f rate=%.0f cpu_s=%s cpu_per_m=%s "
           "rss_kb=%ld hwm_kb=%ld p50_ms=%s p99_ms=%s p999_ms=%s max_ms=%s errors=%ld\n",
           opts.label, r->phase, r->run, r->msgs, r->secs, rate, cpu, cpum, rss, hwm, l[0], l[1],
           l[2], l[3], r->errors);
    fflush(stdout);
    fprintf(stderr, "amqp_bench: %s %s (run %d): %ld msgs in %.2f s = %.0f msgs/s", opts.label,
            r->phase, r->run, r->msgs, r->secs, rate);
    if (have_cpu)
        fprintf(stderr, ", broker CPU %s s = %s s per 1M", cpu, cpum);
    if (r->has_lat)
        fprintf(stderr, ", latency p50 %s ms p99 %s ms p99.9 %s ms max %s ms", l[0], l[1], l[2],
                l[3]);
    if (rss >= 0)
        fprintf(stderr, ", broker RSS %ld kB (peak %ld kB)", rss, hwm);
    if (r->errors)
        fprintf(stderr, ", %ld ERRORS", r->errors);
    fprintf(stderr, "\n");
    bench_failed |= r->errors != 0;
}

/* Starts a phase's clocks and its watchdog (bound seconds plus a minute). */
static void bench_phase_begin(bench_result_t *r, const char *phase, int run, int bound_s,
                              uint64_t *t0, uint64_t *deadline)
{
    memset(r, 0, sizeof *r);
    r->phase = phase;
    r->run = run;
    alarm((unsigned)bound_s + 60);
    r->cpu_s = bench_proc_cpu_s(opts.pid);
    *t0 = bench_now_ns();
    *deadline = *t0 + (uint64_t)bound_s * 1000000000ull;
}

static void bench_phase_end(bench_result_t *r, uint64_t t0)
{
    r->secs = (double)(bench_now_ns() - t0) / 1e9;
    double cpu1 = bench_proc_cpu_s(opts.pid);
    r->cpu_s = r->cpu_s >= 0 && cpu1 >= 0 ? cpu1 - r->cpu_s : -1;
    alarm(0);
    bench_report(r);
}

/* ---- phases ----------------------------------------------------------- */

static void bench_publish(bench_conn_t *admin, const char *q, int run)
{
    bench_pub_t P;
    bench_pub_init(&P, q, opts.count);
    bench_queue_declare(admin, q);
    bench_result_t r;
    uint64_t t0, deadline;
    bench_phase_begin(&r, "publish", run, opts.timeout_s, &t0, &deadline);
    bench_pub_run(&P, deadline);
    r.msgs = P.confirmed - P.nacked;
    r.errors = P.errors;
    bench_phase_end(&r, t0);
    bench_pub_destroy(&P);
}

static void bench_consume(const char *q, int run, long count)
{
    bench_sub_t S = {.queue = q, .count = count};
    conn_open(&S.conn, "consumer");
    bench_result_t r;
    uint64_t t0;
    bench_phase_begin(&r, "consume", run, opts.timeout_s, &t0, &S.deadline);
    bench_sub_start(&S);
    bench_sub_run(&S);
    r.msgs = S.got;
    r.errors = (count - S.got) + S.errors;
    bench_phase_end(&r, t0);
    bench_conn_close(&S.conn);
}

static void bench_both(bench_conn_t *admin, const char *q, int run)
{
    bench_pub_t P;
    bench_pub_init(&P, q, opts.count);
    bench_queue_declare(admin, q);
    bench_sub_t S = {.queue = q, .count = opts.count};
    conn_open(&S.conn, "consumer");
    bench_result_t r;
    uint64_t t0, deadline;
    bench_phase_begin(&r, "both", run, opts.timeout_s, &t0, &deadline);
    S.deadline = deadline;
    pthread_t th;
    if (pthread_create(&th, NULL, bench_sub_thread, &S))
        bench_die("pthread_create");
    bench_pub_run(&P, deadline);
    pthread_join(th, NULL);
    r.msgs = S.got;
    r.errors = P.errors + (opts.count - S.got) + S.errors;
    bench_phase_end(&r, t0);
    bench_conn_close(&S.conn);
    bench_pub_destroy(&P);
}

/* Publishes at --rate for --seconds, each message stamped as it is encoded;
 * everything due is sent with one send(). The consumer thread records. */
static void bench_latency(bench_conn_t *admin, const char *q, int run)
{
    long total = opts.rate * opts.seconds;
    bench_pub_t P;
    bench_pub_init(&P, q, total);
    bench_queue_declare(admin, q);
    bench_sub_t S = {.queue = q, .count = total};
    S.lat_ns = calloc((size_t)total, sizeof *S.lat_ns);
    if (!S.lat_ns)
        bench_die("out of memory");
    conn_open(&S.conn, "consumer");
    S.deadline = bench_now_ns() + ((uint64_t)opts.seconds + 45) * 1000000000ull;
    pthread_t th;
    if (pthread_create(&th, NULL, bench_sub_thread, &S))
        bench_die("pthread_create");
    for (int i = 0; i < 10000 && !S.ready; i++)
        usleep(1000);
    if (!S.ready)
        bench_die("latency: the consumer did not start");

    int bound = opts.seconds + 30 < opts.timeout_s ? opts.seconds + 30 : opts.timeout_s;
    bench_result_t r;
    uint64_t t0, deadline;
    bench_phase_begin(&r, "latency", run, bound, &t0, &deadline);
    uint64_t hdr[3] = {BENCH_MAGIC, 0, 0};
    while (P.sent < total && bench_now_ns() < deadline) {
        /* Encode everything due by now (within the window), send it at once. */
        uint64_t now = bench_now_ns();
        uint8_t *p = P.buf;
        long n = 0;
        while (P.sent + n < total && P.sent + n - P.confirmed < opts.window &&
               t0 + (uint64_t)((double)(P.sent + n) * 1e9 / (double)opts.rate) <= now) {
            hdr[1] = bench_now_ns();
            hdr[2] = (uint64_t)(P.sent + n);
            memcpy(P.body, hdr, sizeof hdr);
            p = bench_put_message(p, q, P.qlen, P.body, (size_t)opts.size);
            n++;
        }
        if (n > 0) {
            int rc = bench_send_all(P.conn.fd, P.buf, (size_t)(p - P.buf), deadline);
            if (rc < 0) {
                fprintf(stderr, "amqp_bench: publisher: send: %s\n", strerror(-rc));
                break;
            }
            P.sent += n;
        }
        bench_pub_poll(&P, 0);
        if (P.sent - P.confirmed >= opts.window) {
            bench_pub_poll(&P, 10);
            continue;
        }
        uint64_t next = t0 + (uint64_t)((double)P.sent * 1e9 / (double)opts.rate);
        if (next > bench_now_ns()) {
            struct timespec ts = {.tv_sec = (time_t)(next / 1000000000ull),
                                  .tv_nsec = (long)(next % 1000000000ull)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
    }
    while (P.confirmed < P.sent && bench_now_ns() < deadline)
        bench_pub_poll(&P, 100);
    while (S.got < P.sent && bench_now_ns() < deadline)
        usleep(1000);
    S.stop = 1;
    pthread_join(th, NULL);

    /* Compact the seen latencies and sort them. */
    long n = 0;
    for (long i = 0; i < total; i++)
        if (S.lat_ns[i])
            S.lat_ns[n++] = S.lat_ns[i] - 1;
    qsort(S.lat_ns, (size_t)n, sizeof *S.lat_ns, bench_cmp_u64);
    r.msgs = n;
    r.errors = (total - n) + (P.sent - P.confirmed) + P.nacked + S.errors;
    if (n > 0) {
        r.has_lat = 1;
        r.p50_ms = (double)S.lat_ns[(long)(0.50 * (double)(n - 1))] / 1e6;
        r.p99_ms = (double)S.lat_ns[(long)(0.99 * (double)(n - 1))] / 1e6;
        r.p999_ms = (double)S.lat_ns[(long)(0.999 * (double)(n - 1))] / 1e6;
        r.max_ms = (double)S.lat_ns[n - 1] / 1e6;
    }
    bench_phase_end(&r, t0);
    free(S.lat_ns);
    bench_conn_close(&S.conn);
    bench_pub_destroy(&P);
}

/* ---- main ------------------------------------------------------------- */

static void bench_usage(void)
{
    fprintf(stderr,
            "usage: amqp_bench [--host H] [--port P] [--phase all|publish|consume|both|latency]\n"
            "       [--count N] [--size BYTES] [--window N] [--prefetch N] [--ack-every N]\n"
            "       [--rate MSGS_PER_S] [--seconds S] [--queue NAME] [--broker-pid PID]\n"
            "       [--label NAME] [--timeout S] [--repeat N] [--stream 0|1]\n");
    exit(2);
}

static long bench_arg_long(const char *v, long min, long max)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < min || x > max)
        bench_usage();
    return x;
}

int main(int argc, char **argv)
{
    bench_prog = "amqp_bench";
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (i + 1 >= argc)
            bench_usage();
        const char *v = argv[++i];
        if (!strcmp(k, "--host"))
            opts.host = v;
        else if (!strcmp(k, "--port"))
            opts.port = (int)bench_arg_long(v, 1, 65535);
        else if (!strcmp(k, "--phase"))
            opts.phase = v;
        else if (!strcmp(k, "--label"))
            opts.label = v;
        else if (!strcmp(k, "--queue"))
            opts.queue = v;
        else if (!strcmp(k, "--count"))
            opts.count = bench_arg_long(v, 1, 100000000);
        else if (!strcmp(k, "--size"))
            opts.size = (int)bench_arg_long(v, BENCH_HDR, 131000);
        else if (!strcmp(k, "--window"))
            opts.window = (int)bench_arg_long(v, 1, 100000);
        else if (!strcmp(k, "--prefetch"))
            opts.prefetch = (int)bench_arg_long(v, 0, 65535);
        else if (!strcmp(k, "--ack-every"))
            opts.ack_every = (int)bench_arg_long(v, 1, 65535);
        else if (!strcmp(k, "--rate"))
            opts.rate = bench_arg_long(v, 1, 10000000);
        else if (!strcmp(k, "--seconds"))
            opts.seconds = (int)bench_arg_long(v, 1, 3600);
        else if (!strcmp(k, "--broker-pid"))
            opts.pid = (int)bench_arg_long(v, 1, 1L << 30);
        else if (!strcmp(k, "--timeout"))
            opts.timeout_s = (int)bench_arg_long(v, 1, 86400);
        else if (!strcmp(k, "--repeat"))
            opts.repeat = (int)bench_arg_long(v, 1, 20);
        else if (!strcmp(k, "--stream"))
            opts.stream = (int)bench_arg_long(v, 0, 1);
        else
            bench_usage();
    }
    if (opts.queue && strlen(opts.queue) > 200)
        bench_usage();
    if (opts.rate * opts.seconds > 100000000)
        bench_die("--rate times --seconds is over 100M messages");
    signal(SIGALRM, bench_on_alarm);
    signal(SIGPIPE, SIG_IGN);

    char base[128], q[256];
    snprintf(base, sizeof base, "amqp-bench-%ld-%d", (long)time(NULL), (int)getpid());
    bench_conn_t admin;
    conn_open(&admin, "admin");
    for (int run = 1; run <= opts.repeat; run++) {
        int all = !strcmp(opts.phase, "all");
        if (all || !strcmp(opts.phase, "publish")) {
            if (opts.queue && !all)
                snprintf(q, sizeof q, "%s", opts.queue);
            else
                snprintf(q, sizeof q, "%s-%d-publish", base, run);
            bench_publish(&admin, q, run);
            if (all) {
                bench_consume(q, run, opts.count);
                bench_queue_delete(&admin, q);
            }
        } else if (!strcmp(opts.phase, "consume")) {
            if (!opts.queue)
                bench_die("--phase consume needs --queue (a queue a publish phase filled)");
            bench_consume(opts.queue, run, opts.count);
        } else if (strcmp(opts.phase, "both") && strcmp(opts.phase, "latency")) {
            bench_usage();
        }
        if (all || !strcmp(opts.phase, "both")) {
            snprintf(q, sizeof q, "%s-%d-both", base, run);
            bench_both(&admin, q, run);
            bench_queue_delete(&admin, q);
        }
        if (all || !strcmp(opts.phase, "latency")) {
            snprintf(q, sizeof q, "%s-%d-latency", base, run);
            bench_latency(&admin, q, run);
            bench_queue_delete(&admin, q);
        }
    }
    bench_conn_close(&admin);
    return bench_failed ? 1 : 0;
}
