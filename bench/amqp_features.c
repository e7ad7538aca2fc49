/*
 * amqp_features: what queue features cost an AMQP 0-9-1 broker on the hot
 * path (written for Herald, run against RabbitMQ where it has the feature),
 * on rabbitmq-c. Companion of amqp_bench.c (plain queues). Usage: see usage().
 *
 * Every scenario publishes --count messages of --size bytes (persistent but
 * in the transient scenarios) with confirms (at most --window unconfirmed)
 * while consumers take them with manual acks (basic.qos --prefetch, ack
 * multiple=true every --ack-every);
 * each body carries its sequence number, and every message must be settled
 * exactly once (acked from its queue or received from the dead-letter
 * queue), else the run counts errors.
 *   plain       a durable queue (the baseline);
 *   dlx-retry   x-dead-letter-exchange (fanout to a DLQ a second consumer
 *               drains) + x-retry-backoff --backoff (Herald's): --nack-pct %
 *               are nacked (requeue) on first delivery and acked when they
 *               come back, --reject-pct % rejected and must reach the DLQ;
 *   dlx-requeue the same without x-retry-backoff (what RabbitMQ can do);
 *   dlx-idle    dlx-retry's queue, every message acked (the configured cost);
 *   priority    x-max-priority 10, message priorities 0-9 (pseudo-random);
 *   ttl         x-message-ttl --ttl (default 1 h: nothing expires);
 *   ttl-expire  x-message-ttl --expire-ttl + dead-letter exchange, nobody
 *               consumes the queue: every message expires into the DLQ;
 *   delayed     an x-delayed-message exchange (x-delayed-type direct), x-delay
 *               uniform in 0..--delay-max ms; lateness = delivery - due;
 *   backlog     publish with nobody consuming, then consume (two results);
 *   backlog-priority  the same into priority's queue, with its priorities;
 *   transient   a non-durable queue and transient messages (delivery mode 1);
 *   backlog-transient  backlog into transient's queue, with its messages.
 * --scenario takes a comma-separated list; --repeat runs it that many times;
 * --settle S waits S seconds after each run, so that memory a run leaves to
 * be given back (a broker's trim after a drain) is not paid by the next.
 * --again 1 runs each scenario (but the backlogs) a second time right after
 * its run, on the same broker and fresh queues, reported as phase=again:
 * the broker has grown to the scenario's working set once (the first run
 * of a million delayed messages grows it by ~140 MB, which on a VM is
 * memory new to the guest and costs the host's faults).
 *
 * Output, one line per scenario (and phase) and run:
 *   RESULT broker= scenario= phase= run= msgs= secs= rate= pub_rate= cpu_s=
 *          cpu_per_m= client_cpu_per_m= rss_peak_kb= rss_end_kb=
 *          lat_p50_ms= lat_p99_ms= nacked= rejected= dlq= errors=
 * rate: messages over first send to last settle; pub_rate: to last confirm;
 * cpu: the broker's utime+stime (/proc/PID/stat) during the run; rss_peak:
 * highest VmRSS sampled every 20 ms; lat: delayed, delivery - due time;
 * dlx-*, nack to redelivery. Bounded: each run stops at --timeout seconds and
 * an alarm ends the process a minute past a run's bound.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "bench_amqp.h"
#include "bench_common.h"

static struct {
    const char *host, *label, *scenarios, *backoff;
    int port, size, window, prefetch, ack_every, nack_pct, reject_pct, pid, timeout_s, repeat, first_run, settle_s, again;
    long count, ttl_ms, expire_ms, delay_max_ms, warmup;
} o = {"127.0.0.1", "broker", "plain", "100ms", 5672, 100, 1000, 1000, 100, 10, 1, 0, 300, 1, 1, 0, 0,
       1000000, 3600000, 1000, 2000, 0};

enum {
    S_PLAIN, S_DLX_RETRY, S_DLX_REQUEUE, S_DLX_IDLE, S_PRIORITY, S_TTL, S_TTL_EXPIRE, S_DELAYED, S_BACKLOG,
    S_BACKLOG_PRIO, S_TRANSIENT, S_BACKLOG_TRANSIENT
};
static const char *const scen_names[] = {"plain", "dlx-retry", "dlx-requeue", "dlx-idle", "priority", "ttl",
                                         "ttl-expire", "delayed", "backlog", "backlog-priority", "transient",
                                         "backlog-transient", NULL};

#define MAGIC 0x68657261626e6368ull
#define HDR 24 /* body: magic, sequence number, due time (CLOCK_REALTIME ns) */

#define MONO() bench_now_ns()

static void on_alarm(int sig)
{
    static const char m[] = "amqp_features: watchdog: a run overran its time bound, giving up\n";
    (void)sig;
    ssize_t w = write(2, m, sizeof m - 1);
    (void)w;
    _exit(3);
}

static uint64_t mix(uint64_t x) /* splitmix64: per-message pseudo-random */
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ---- the broker process ----------------------------------------------- */

static volatile long rss_peak;
static volatile int sampler_on;

static void *sampler(void *arg)
{
    (void)arg;
    while (sampler_on) {
        long kb = bench_proc_status_kb(o.pid, "VmRSS");
        if (kb > rss_peak)
            rss_peak = kb;
        usleep(20000);
    }
    return NULL;
}

/* ---- connections ------------------------------------------------------ */

/* ---- topology ----------------------------------------------------------- */

typedef struct topo {
    char q[160], dlx[160], dlq[160], ex[160]; /* "" when not used */
} topo_t;

static amqp_table_entry_t targ_str(const char *k, const char *v)
{
    amqp_table_entry_t e = {.key = amqp_cstring_bytes(k)};
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(v);
    return e;
}

static amqp_table_entry_t targ_int(const char *k, int32_t v)
{
    amqp_table_entry_t e = {.key = amqp_cstring_bytes(k)};
    e.value.kind = AMQP_FIELD_KIND_I32;
    e.value.value.i32 = v;
    return e;
}

static void topo_create(bench_conn_t *a, topo_t *t, int scen, const char *base)
{
    amqp_table_entry_t args[4];
    int n = 0;
    memset(t, 0, sizeof *t);
    snprintf(t->q, sizeof t->q, "%s-q", base);
    if (scen == S_DLX_RETRY || scen == S_DLX_REQUEUE || scen == S_DLX_IDLE || scen == S_TTL_EXPIRE) {
        snprintf(t->dlx, sizeof t->dlx, "%s-dlx", base);
        snprintf(t->dlq, sizeof t->dlq, "%s-dlq", base);
        amqp_exchange_declare(a->c, 1, amqp_cstring_bytes(t->dlx), amqp_cstring_bytes("fanout"), 0, 1, 0, 0,
                              amqp_empty_table);
        bench_reply_check(amqp_get_rpc_reply(a->c), "admin", "exchange.declare (dead letters)");
        amqp_queue_declare(a->c, 1, amqp_cstring_bytes(t->dlq), 0, 1, 0, 0, amqp_empty_table);
        bench_reply_check(amqp_get_rpc_reply(a->c), "admin", "queue.declare (dead letters)");
        amqp_queue_bind(a->c, 1, amqp_cstring_bytes(t->dlq), amqp_cstring_bytes(t->dlx), amqp_empty_bytes,
                        amqp_empty_table);
        bench_reply_check(amqp_get_rpc_reply(a->c), "admin", "queue.bind (dead letters)");
        args[n++] = targ_str("x-dead-letter-exchange", t->dlx);
    }
    if (scen == S_DLX_RETRY || scen == S_DLX_IDLE)
        args[n++] = targ_str("x-retry-backoff", o.backoff);
    if (scen == S_PRIORITY)
        args[n++] = targ_int("x-max-priority", 10);
    if (scen == S_TTL || scen == S_TTL_EXPIRE)
        args[n++] = targ_int("x-message-ttl", (int32_t)(scen == S_TTL ? o.ttl_ms : o.expire_ms));
    amqp_table_t tab = {.num_entries = n, .entries = args};
    amqp_queue_declare(a->c, 1, amqp_cstring_bytes(t->q), 0, scen != S_TRANSIENT, 0, 0, tab);
    bench_reply_check(amqp_get_rpc_reply(a->c), "admin", "queue.declare");
    if (scen == S_DELAYED) {
        snprintf(t->ex, sizeof t->ex, "%s-delayed", base);
        amqp_table_entry_t xa = targ_str("x-delayed-type", "direct");
        amqp_exchange_declare(a->c, 1, amqp_cstring_bytes(t->ex), amqp_cstring_bytes("x-delayed-message"), 0,
                              1, 0, 0, (amqp_table_t){.num_entries = 1, .entries = &xa});
        bench_reply_check(amqp_get_rpc_reply(a->c), "admin", "exchange.declare x-delayed-message");
        amqp_queue_bind(a->c, 1, amqp_cstring_bytes(t->q), amqp_cstring_bytes(t->ex), amqp_cstring_bytes(t->q),
                        amqp_empty_table);
        bench_reply_check(amqp_get_rpc_reply(a->c), "admin", "queue.bind (delayed)");
    }
}

/* After a run that left messages unsettled: what the broker says it holds. */
static void topo_counts(bench_conn_t *a, const topo_t *t)
{
    const char *qs[] = {t->q, t->dlq};
    for (int i = 0; i < 2; i++) {
        if (!qs[i][0])
            continue;
        amqp_queue_declare_ok_t *ok = amqp_queue_declare(a->c, 1, amqp_cstring_bytes(qs[i]), 1, 0, 0, 0, amqp_empty_table);
        bench_reply_check(amqp_get_rpc_reply(a->c), "admin", "queue.declare passive");
        fprintf(stderr, "amqp_features: queue %s: %u ready, %u consumers\n", qs[i], ok->message_count, ok->consumer_count);
    }
}

static void topo_delete(bench_conn_t *a, const topo_t *t)
{
    const char *qs[] = {t->q, t->dlq}, *xs[] = {t->ex, t->dlx};
    for (int i = 0; i < 2; i++) {
        if (qs[i][0]) {
            amqp_queue_delete(a->c, 1, amqp_cstring_bytes(qs[i]), 0, 0);
            bench_reply_check(amqp_get_rpc_reply(a->c), "admin", "queue.delete");
        }
        if (xs[i][0]) {
            amqp_exchange_delete(a->c, 1, amqp_cstring_bytes(xs[i]), 0);
            bench_reply_check(amqp_get_rpc_reply(a->c), "admin", "exchange.delete");
        }
    }
}

/* ---- publisher -------------------------------------------------------- */


static uint8_t *put_frame_head(uint8_t *p, uint8_t type, uint32_t len) { return *p = type, bench_put32(bench_put16(p + 1, 1), len); }

typedef struct pub {
    bench_conn_t conn;
    int scen;
    const char *ex, *key;
    long count, sent, confirmed, nacked, low;
    uint8_t *done; /* done[tag]: confirmed */
    uint8_t *buf;
    uint64_t t_confirmed; /* monotonic ns of the last confirm */
    long errors;
} pub_t;

#define MSG_MAX(P) (8 + 11 + 2 * 256 + 8 + 32 + 8 + (size_t)o.size + 1)

/* Encodes message seq: basic.publish, a content header with delivery-mode 2
 * (+ priority, + headers {x-delay: I}) and the body. */
static uint8_t *put_message(pub_t *P, uint8_t *p, uint64_t seq)
{
    size_t el = strlen(P->ex), kl = strlen(P->key);
    uint64_t r = mix(seq);
    int64_t delay_ms = P->scen == S_DELAYED ? (int64_t)(r % (uint64_t)(o.delay_max_ms + 1)) : 0;
    p = put_frame_head(p, AMQP_FRAME_METHOD, (uint32_t)(9 + el + kl));
    p = bench_put16(bench_put32(p, AMQP_BASIC_PUBLISH_METHOD), 0);
    *p++ = (uint8_t)el;
    memcpy(p, P->ex, el);
    p += el;
    *p++ = (uint8_t)kl;
    memcpy(p, P->key, kl);
    p += kl;
    *p++ = 0;
    *p++ = AMQP_FRAME_END;

    int prio = P->scen == S_PRIORITY, hdrs = P->scen == S_DELAYED;
    p = put_frame_head(p, AMQP_FRAME_HEADER, (uint32_t)(15 + prio + (hdrs ? 4 + 13 : 0)));
    p = bench_put64(bench_put16(bench_put16(p, AMQP_BASIC_CLASS), 0), (uint64_t)o.size);
    p = bench_put16(p, (uint16_t)(AMQP_BASIC_DELIVERY_MODE_FLAG | (prio ? AMQP_BASIC_PRIORITY_FLAG : 0) |
                            (hdrs ? AMQP_BASIC_HEADERS_FLAG : 0)));
    if (hdrs) {
        p = bench_put32(p, 13);
        *p++ = 7;
        memcpy(p, "x-delay", 7);
        p += 7;
        *p++ = 'I';
        p = bench_put32(p, (uint32_t)delay_ms);
    }
    *p++ = P->scen == S_TRANSIENT ? 1 : 2; /* delivery mode: transient, persistent */
    if (prio)
        *p++ = (uint8_t)(r % 10);
    *p++ = AMQP_FRAME_END;

    uint64_t h[3] = {MAGIC, seq, bench_clock_ns(CLOCK_REALTIME) + (uint64_t)delay_ms * 1000000ull};
    p = put_frame_head(p, AMQP_FRAME_BODY, (uint32_t)o.size);
    memcpy(p, h, HDR);
    memset(p + HDR, 'x', (size_t)o.size - HDR);
    p += o.size;
    *p++ = AMQP_FRAME_END;
    return p;
}

static void pub_init(pub_t *P, int scen, const char *ex, const char *key, long count)
{
    memset(P, 0, sizeof *P);
    bench_conn_open(&P->conn, "publisher", o.host, o.port, o.timeout_s);
    amqp_confirm_select(P->conn.c, 1);
    bench_reply_check(amqp_get_rpc_reply(P->conn.c), "publisher", "confirm.select");
    P->scen = scen;
    P->ex = ex;
    P->key = key;
    P->count = count;
    P->low = 1;
    P->done = calloc((size_t)count + 2, 1);
    P->buf = malloc(MSG_MAX(P) * (size_t)o.window);
    if (!P->done || !P->buf)
        bench_die("out of memory");
}

static void pub_confirm(pub_t *P, uint64_t tag, int multiple, int nack)
{
    if (multiple && tag == 0)
        tag = (uint64_t)P->sent;
    if (tag == 0 || tag > (uint64_t)P->sent)
        bench_die("publisher: confirm for tag %" PRIu64 ", only %ld published", tag, P->sent);
    for (long t = multiple ? P->low : (long)tag; t <= (long)tag; t++)
        if (!P->done[t]) {
            P->done[t] = 1;
            P->confirmed++;
            P->nacked += nack;
        }
    while (P->low <= P->sent && P->done[P->low])
        P->low++;
    P->t_confirmed = MONO();
}

static void pub_poll(pub_t *P, int wait_ms)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = wait_ms * 1000};
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
            pub_confirm(P, a->delivery_tag, a->multiple, 0);
        } else if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            amqp_basic_nack_t *a = f.payload.method.decoded;
            pub_confirm(P, a->delivery_tag, a->multiple, 1);
        } else {
            bench_frame_other(&P->conn, &f);
        }
    }
    amqp_maybe_release_buffers(P->conn.c);
}

/* Publishes as fast as confirms allow, a chunk when an eighth of the window
 * is free, one send() per chunk. */
static void pub_run(pub_t *P, uint64_t deadline)
{
    long chunk_min = o.window / 8 > 0 ? o.window / 8 : 1;
    while (P->confirmed < P->count && MONO() < deadline) {
        long room = o.window - (P->sent - P->confirmed), left = P->count - P->sent;
        long n = room < left ? room : left;
        if (n <= 0 || (n < chunk_min && n != left)) {
            pub_poll(P, 100);
            continue;
        }
        uint8_t *p = P->buf;
        for (long i = 0; i < n; i++)
            p = put_message(P, p, (uint64_t)(P->sent + i));
        int rc = bench_send_all(P->conn.fd, P->buf, (size_t)(p - P->buf), deadline);
        if (rc == -ETIMEDOUT)
            break;
        if (rc < 0)
            bench_die("send: %s", strerror(-rc));
        P->sent += n;
        pub_poll(P, 0);
    }
    P->errors = (P->count - P->confirmed) + P->nacked;
}

static void pub_destroy(pub_t *P)
{
    bench_conn_close(&P->conn);
    free(P->done);
    free(P->buf);
}

/* ---- consumers -------------------------------------------------------- */

/* Shared by the consumers of one run; each array has one writer. */
static struct {
    int scen;
    long n;
    uint8_t *seen;     /* deliveries from the queue, by sequence number */
    uint8_t *acked;    /* acked from the queue */
    uint8_t *dead;     /* received from the dead-letter queue */
    uint64_t *nack_ns; /* when it was nacked (monotonic) */
    int64_t *lat;      /* lateness samples, ns */
    long nlat, nacked, rejected, dlq, errors;
    long settled; /* atomic: acked + dead */
} R;

typedef struct sub {
    bench_conn_t conn;
    const char *queue;
    int dlq;
    uint64_t deadline;
    volatile int ready;
    uint8_t out[64 * 21]; /* encoded basic.ack / nack / reject frames */
    size_t out_len;
    int out_n;
} sub_t;

static void sub_flush(sub_t *S)
{
    int rc = S->out_len ? bench_send_all(S->conn.fd, S->out, S->out_len, MONO() + 10000000000ull) : 0;
    if (rc < 0)
        bench_die("%s: cannot send acks: %s", S->conn.who, strerror(-rc));
    S->out_len = 0;
    S->out_n = 0;
}

/* Queues a settling method (basic.ack 80, basic.reject 90, basic.nack 120)
 * for tag; they go out together, one send() per --ack-every settles, as a
 * client that pipelines its acks would do. bits: multiple 1, requeue 2
 * (reject: requeue 1). */
static void sub_settle(sub_t *S, uint16_t method, uint64_t tag, uint8_t bits)
{
    uint8_t *p = S->out + S->out_len;
    p = put_frame_head(p, AMQP_FRAME_METHOD, 13);
    p = bench_put64(bench_put16(bench_put16(p, AMQP_BASIC_CLASS), method), tag);
    *p++ = bits;
    *p++ = AMQP_FRAME_END;
    S->out_len = (size_t)(p - S->out);
    if (++S->out_n >= 64 || S->out_n >= o.ack_every)
        sub_flush(S);
}

static void sub_start(sub_t *S)
{
    amqp_basic_qos(S->conn.c, 1, 0, (uint16_t)o.prefetch, 0);
    bench_reply_check(amqp_get_rpc_reply(S->conn.c), S->conn.who, "basic.qos");
    amqp_basic_consume(S->conn.c, 1, amqp_cstring_bytes(S->queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    bench_reply_check(amqp_get_rpc_reply(S->conn.c), S->conn.who, "basic.consume");
    S->ready = 1;
}

/* Decides what to do with a whole message: 0 ack, 1 nack+requeue, 2 reject. */
static int sub_message(sub_t *S, const uint8_t *head, size_t head_len)
{
    uint64_t h[3];
    if (head_len < HDR)
        return R.errors++, 0;
    memcpy(h, head, sizeof h);
    if (h[0] != MAGIC || h[1] >= (uint64_t)R.n)
        return R.errors++, 0;
    uint64_t seq = h[1];
    if (S->dlq) {
        if (R.dead[seq]++ || R.acked[seq])
            R.errors++;
        R.dlq++;
        __atomic_add_fetch(&R.settled, 1, __ATOMIC_RELAXED);
        return 0;
    }
    int retry = R.scen == S_DLX_RETRY || R.scen == S_DLX_REQUEUE;
    if (R.scen == S_DELAYED && R.nlat < R.n)
        R.lat[R.nlat++] = (int64_t)(bench_clock_ns(CLOCK_REALTIME) - h[2]);
    if (R.seen[seq] < 255)
        R.seen[seq]++;
    int pct = (int)(mix(seq ^ 0x5555) % 100);
    if (retry && pct < o.nack_pct) {
        if (R.seen[seq] == 1) {
            R.nack_ns[seq] = MONO();
            R.nacked++;
            return 1;
        }
        if (R.seen[seq] == 2 && R.nack_ns[seq] && R.nlat < R.n)
            R.lat[R.nlat++] = (int64_t)(MONO() - R.nack_ns[seq]);
    } else if (retry && pct < o.nack_pct + o.reject_pct) {
        if (R.seen[seq] > 1)
            R.errors++; /* a rejected message came back */
        R.rejected++;
        return 2;
    }
    if (R.acked[seq]++ || R.dead[seq])
        R.errors++;
    __atomic_add_fetch(&R.settled, 1, __ATOMIC_RELAXED);
    return 0;
}

/* Takes messages until every one of the run is settled (or the deadline). */
static void sub_run(sub_t *S)
{
    uint64_t tag = 0, ack_tag = 0, body_left = 0;
    long pending = 0;
    uint8_t head[HDR];
    size_t head_len = 0;
    struct timeval tv = {.tv_sec = 0, .tv_usec = 20000};
    while (__atomic_load_n(&R.settled, __ATOMIC_RELAXED) < R.n && MONO() < S->deadline) {
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(S->conn.c, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT) {
            if (pending) /* idle: settle what is held */
                sub_settle(S, 80, ack_tag, 1);
            pending = 0;
            sub_flush(S);
            continue;
        }
        if (rc != AMQP_STATUS_OK)
            bench_die("%s: reading: %s", S->conn.who, amqp_error_string2(rc));
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
            tag = ((amqp_basic_deliver_t *)f.payload.method.decoded)->delivery_tag;
            head_len = 0;
            continue;
        } else if (f.frame_type == AMQP_FRAME_HEADER) {
            body_left = f.payload.properties.body_size;
            if (body_left > 0)
                continue;
        } else if (f.frame_type == AMQP_FRAME_BODY) {
            size_t len = f.payload.body_fragment.len, take = HDR - head_len;
            memcpy(head + head_len, f.payload.body_fragment.bytes, len < take ? len : take);
            head_len += len < take ? len : take;
            body_left -= len < body_left ? len : body_left;
            if (body_left > 0)
                continue;
        } else {
            bench_frame_other(&S->conn, &f);
            continue;
        }
        int what = sub_message(S, head, head_len);
        if (what == 0) {
            ack_tag = tag;
            pending++;
        } else if (what == 1) {
            sub_settle(S, 120, tag, 2); /* nack, requeue */
        } else {
            sub_settle(S, 90, tag, 0); /* reject, no requeue */
        }
        if (pending >= o.ack_every) {
            sub_settle(S, 80, ack_tag, 1);
            sub_flush(S);
            pending = 0;
            amqp_maybe_release_buffers(S->conn.c);
        }
    }
    if (pending)
        sub_settle(S, 80, ack_tag, 1);
    sub_flush(S);
}

static void *sub_thread(void *arg)
{
    sub_t *S = arg;
    sub_start(S);
    sub_run(S);
    return NULL;
}

/* ---- runs ------------------------------------------------------------- */

typedef struct res {
    const char *scen, *phase;
    int run;
    long msgs;
    double secs, pub_secs, cpu_s, client_cpu_s;
    long rss_start, rss_peak, rss_end;
    int has_lat;
    double p50, p99;
    long nacked, rejected, dlq, errors;
} res_t;

static int failed, quiet;

static void report(const res_t *r)
{
    if (quiet) {
        failed |= r->errors != 0;
        return;
    }
    char cpu[32] = "-", cpum[32] = "-", p50[32] = "-", p99[32] = "-", pr[32] = "-";
    if (r->cpu_s >= 0) {
        snprintf(cpu, sizeof cpu, "%.2f", r->cpu_s);
        snprintf(cpum, sizeof cpum, "%.2f", r->cpu_s / ((double)r->msgs / 1e6));
    }
    if (r->has_lat) {
        snprintf(p50, sizeof p50, "%.1f", r->p50);
        snprintf(p99, sizeof p99, "%.1f", r->p99);
    }
    if (r->pub_secs > 0)
        snprintf(pr, sizeof pr, "%.0f", (double)r->msgs / r->pub_secs);
    printf("RESULT broker=%s scenario=%s phase=%s run=%d msgs=%ld secs=%.3f rate=%.0f pub_rate=%s cpu_s=%s "
           "cpu_per_m=%s client_cpu_per_m=%.2f rss_start_kb=%ld rss_peak_kb=%ld rss_end_kb=%ld lat_p50_ms=%s lat_p99_ms=%s nacked=%ld rejected=%ld "
           "dlq=%ld errors=%ld\n",
           o.label, r->scen, r->phase, r->run, r->msgs, r->secs, (double)r->msgs / r->secs, pr, cpu, cpum,
           r->client_cpu_s / ((double)r->msgs / 1e6), r->rss_start, r->rss_peak, r->rss_end, p50, p99, r->nacked, r->rejected, r->dlq, r->errors);
    fflush(stdout);
    fprintf(stderr,
            "amqp_features: %s %s %s (run %d): %ld msgs in %.2f s = %.0f msgs/s (publish %s), broker CPU %s s "
            "per 1M, RSS peak %ld kB, lat p50/p99 %s/%s ms, nacked %ld rejected %ld dlq %ld%s\n",
            o.label, r->scen, r->phase, r->run, r->msgs, r->secs, (double)r->msgs / r->secs, pr, cpum,
            r->rss_peak, p50, p99, r->nacked, r->rejected, r->dlq, r->errors ? ", ERRORS" : "");
    failed |= r->errors != 0;
}

static pthread_t sampler_th;

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void measure_begin(res_t *r, const char *scen, const char *phase, int run, uint64_t *t0)
{
    memset(r, 0, sizeof *r);
    r->scen = scen;
    r->phase = phase;
    r->run = run;
    alarm((unsigned)o.timeout_s + 60);
    rss_peak = r->rss_start = bench_proc_status_kb(o.pid, "VmRSS");
    sampler_on = 1;
    if (o.pid > 0 && pthread_create(&sampler_th, NULL, sampler, NULL))
        bench_die("pthread_create");
    r->cpu_s = bench_proc_cpu_s(o.pid);
    r->client_cpu_s = self_cpu_s();
    *t0 = MONO();
}

static void measure_end(res_t *r, uint64_t t0)
{
    r->secs = (double)(MONO() - t0) / 1e9;
    double c1 = bench_proc_cpu_s(o.pid);
    r->cpu_s = r->cpu_s >= 0 && c1 >= 0 ? c1 - r->cpu_s : -1;
    r->client_cpu_s = self_cpu_s() - r->client_cpu_s;
    if (o.pid > 0) {
        sampler_on = 0;
        pthread_join(sampler_th, NULL);
    }
    r->rss_end = bench_proc_status_kb(o.pid, "VmRSS");
    r->rss_peak = rss_peak > r->rss_end ? rss_peak : r->rss_end;
    alarm(0);
}

static void run_alloc(int scen)
{
    memset(&R, 0, sizeof R);
    R.scen = scen;
    R.n = o.count;
    R.seen = calloc((size_t)o.count, 1);
    R.acked = calloc((size_t)o.count, 1);
    R.dead = calloc((size_t)o.count, 1);
    R.nack_ns = calloc((size_t)o.count, sizeof *R.nack_ns);
    R.lat = calloc((size_t)o.count, sizeof *R.lat);
    if (!R.seen || !R.acked || !R.dead || !R.nack_ns || !R.lat)
        bench_die("out of memory");
}

static void run_free(void)
{
    free(R.seen);
    free(R.acked);
    free(R.dead);
    free(R.nack_ns);
    free(R.lat);
}

/* Publisher and consumers at once; done when every message is settled. */
static void run_scenario(bench_conn_t *admin, int scen, const char *base, int run, const char *phase)
{
    topo_t t;
    topo_create(admin, &t, scen, base);
    run_alloc(scen);
    pub_t P;
    pub_init(&P, scen, t.ex, t.q, o.count);
    sub_t S[2] = {{.queue = t.q}, {.queue = t.dlq, .dlq = 1}};
    int first = scen == S_TTL_EXPIRE, last = t.dlq[0] ? 2 : 1;
    pthread_t th[2];
    res_t r;
    uint64_t t0;
    for (int i = first; i < last; i++)
        bench_conn_open(&S[i].conn, i ? "dlq consumer" : "consumer", o.host, o.port, o.timeout_s);
    measure_begin(&r, scen_names[scen], phase, run, &t0);
    for (int i = first; i < last; i++) {
        S[i].deadline = t0 + (uint64_t)o.timeout_s * 1000000000ull;
        if (pthread_create(&th[i], NULL, sub_thread, &S[i]))
            bench_die("pthread_create");
    }
    pub_run(&P, t0 + (uint64_t)o.timeout_s * 1000000000ull);
    for (int i = first; i < last; i++)
        pthread_join(th[i], NULL);
    measure_end(&r, t0);
    r.msgs = o.count;
    r.pub_secs = P.t_confirmed > t0 ? (double)(P.t_confirmed - t0) / 1e9 : 0;
    long missing = 0;
    for (long s = 0; s < o.count; s++)
        missing += !R.acked[s] && !R.dead[s];
    r.errors = P.errors + R.errors + missing;
    r.nacked = R.nacked;
    r.rejected = R.rejected;
    r.dlq = R.dlq;
    if (R.nlat > 0) {
        qsort(R.lat, (size_t)R.nlat, sizeof *R.lat, bench_cmp_i64);
        r.has_lat = 1;
        r.p50 = (double)R.lat[(long)(0.50 * (double)(R.nlat - 1))] / 1e6;
        r.p99 = (double)R.lat[(long)(0.99 * (double)(R.nlat - 1))] / 1e6;
    }
    if (missing) {
        fprintf(stderr, "amqp_features: %s run %d: %ld messages never settled (%ld reached the DLQ)\n",
                scen_names[scen], run, missing, R.dlq);
        topo_counts(admin, &t);
    }
    report(&r);
    for (int i = first; i < last; i++)
        bench_conn_close(&S[i].conn);
    pub_destroy(&P);
    topo_delete(admin, &t);
    run_free();
}

/* A deep queue (scen S_PLAIN or S_PRIORITY): publish everything with
 * nobody consuming, then consume. */
static void run_backlog(bench_conn_t *admin, const char *base, int run, int scen)
{
    const char *name = scen == S_PRIORITY ? "backlog-priority" : scen == S_TRANSIENT ? "backlog-transient" : "backlog";
    topo_t t;
    topo_create(admin, &t, scen, base);
    run_alloc(scen);
    pub_t P;
    pub_init(&P, scen, "", t.q, o.count);
    res_t r;
    uint64_t t0;
    measure_begin(&r, name, "publish", run, &t0);
    pub_run(&P, t0 + (uint64_t)o.timeout_s * 1000000000ull);
    measure_end(&r, t0);
    r.msgs = o.count;
    r.errors = P.errors;
    report(&r);
    pub_destroy(&P);
    sleep(2);
    fprintf(stderr, "amqp_features: %s: broker RSS %ld kB with the queue full, 2 s after the last confirm\n",
            name, bench_proc_status_kb(o.pid, "VmRSS"));

    sub_t S = {.queue = t.q};
    bench_conn_open(&S.conn, "consumer", o.host, o.port, o.timeout_s);
    measure_begin(&r, name, "consume", run, &t0);
    S.deadline = t0 + (uint64_t)o.timeout_s * 1000000000ull;
    sub_start(&S);
    sub_run(&S);
    measure_end(&r, t0);
    long missing = 0;
    for (long s = 0; s < o.count; s++)
        missing += !R.acked[s];
    r.msgs = o.count;
    r.errors = R.errors + missing;
    report(&r);
    bench_conn_close(&S.conn);
    topo_delete(admin, &t);
    run_free();
}

static void usage(void)
{
    fprintf(stderr, "usage: amqp_features --scenario plain,dlx-retry,dlx-requeue,dlx-idle,priority,ttl,ttl-expire,"
                    "delayed,backlog,backlog-priority,transient,backlog-transient\n"
                    "       [--host H] [--port P] [--count N] [--size B] [--window N] [--prefetch N]\n"
                    "       [--ack-every N] [--nack-pct P] [--reject-pct P] [--backoff SPEC] [--ttl MS]\n"
                    "       [--expire-ttl MS] [--delay-max MS] [--warmup N] [--broker-pid PID] [--label NAME]\n"
                    "       [--timeout S] [--repeat N] [--first-run N] [--settle S] [--again 0|1]\n");
    exit(2);
}

static long arg_long(const char *v, long min, long max)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < min || x > max)
        usage();
    return x;
}

int main(int argc, char **argv)
{
    bench_prog = "amqp_features";
    for (int i = 1; i + 1 < argc || (i < argc && (usage(), 0)); i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--host")) o.host = v;
        else if (!strcmp(k, "--port")) o.port = (int)arg_long(v, 1, 65535);
        else if (!strcmp(k, "--scenario")) o.scenarios = v;
        else if (!strcmp(k, "--label")) o.label = v;
        else if (!strcmp(k, "--backoff")) o.backoff = v;
        else if (!strcmp(k, "--count")) o.count = arg_long(v, 1, 100000000);
        else if (!strcmp(k, "--size")) o.size = (int)arg_long(v, HDR, 131000);
        else if (!strcmp(k, "--window")) o.window = (int)arg_long(v, 1, 100000);
        else if (!strcmp(k, "--prefetch")) o.prefetch = (int)arg_long(v, 1, 65535);
        else if (!strcmp(k, "--ack-every")) o.ack_every = (int)arg_long(v, 1, 65535);
        else if (!strcmp(k, "--nack-pct")) o.nack_pct = (int)arg_long(v, 0, 100);
        else if (!strcmp(k, "--reject-pct")) o.reject_pct = (int)arg_long(v, 0, 100);
        else if (!strcmp(k, "--ttl")) o.ttl_ms = arg_long(v, 0, 2147483647);
        else if (!strcmp(k, "--expire-ttl")) o.expire_ms = arg_long(v, 0, 2147483647);
        else if (!strcmp(k, "--delay-max")) o.delay_max_ms = arg_long(v, 0, 3600000);
        else if (!strcmp(k, "--broker-pid")) o.pid = (int)arg_long(v, 1, 1L << 30);
        else if (!strcmp(k, "--timeout")) o.timeout_s = (int)arg_long(v, 1, 86400);
        else if (!strcmp(k, "--repeat")) o.repeat = (int)arg_long(v, 1, 20);
        else if (!strcmp(k, "--warmup")) o.warmup = arg_long(v, 0, 100000000);
        else if (!strcmp(k, "--first-run")) o.first_run = (int)arg_long(v, 1, 1000);
        else if (!strcmp(k, "--settle")) o.settle_s = (int)arg_long(v, 0, 60);
        else if (!strcmp(k, "--again")) o.again = (int)arg_long(v, 0, 1);
        else usage();
    }
    if (o.nack_pct + o.reject_pct > 100 || o.size + 8 > 131072)
        usage();
    int list[16], nl = 0;
    char *copy = strdup(o.scenarios), *save = NULL;
    for (char *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (scen_names[k] && strcmp(scen_names[k], s))
            k++;
        if (!scen_names[k] || nl == 16)
            usage();
        list[nl++] = k;
    }
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    bench_conn_t admin;
    bench_conn_open(&admin, "admin", o.host, o.port, o.timeout_s);
    char base[200];
    if (o.warmup > 0) { /* a fresh broker's first run pays for first-touch memory: not reported */
        long count = o.count;
        o.count = o.warmup;
        quiet = 1;
        snprintf(base, sizeof base, "amqp-features-%d-%ld-warmup", (int)getpid(), (long)time(NULL));
        run_scenario(&admin, S_PLAIN, base, 0, "both");
        quiet = 0;
        o.count = count;
    }
    for (int run = o.first_run; run < o.first_run + o.repeat; run++)
        for (int i = 0; i < nl; i++) {
            snprintf(base, sizeof base, "amqp-features-%d-%ld-%s-%d", (int)getpid(), (long)time(NULL),
                     scen_names[list[i]], run);
            if (list[i] == S_BACKLOG || list[i] == S_BACKLOG_PRIO || list[i] == S_BACKLOG_TRANSIENT)
                run_backlog(&admin, base, run,
                            list[i] == S_BACKLOG ? S_PLAIN : list[i] == S_BACKLOG_PRIO ? S_PRIORITY : S_TRANSIENT);
            else
                run_scenario(&admin, list[i], base, run, "both");
            if (o.settle_s) sleep((unsigned)o.settle_s); /* the broker gives memory back between runs */
            if (o.again && list[i] != S_BACKLOG && list[i] != S_BACKLOG_PRIO && list[i] != S_BACKLOG_TRANSIENT) {
                /* The same scenario once more on the same broker: its working set
                 * (delayed messages waiting, a retry's returns) was grown once. */
                snprintf(base, sizeof base, "amqp-features-%d-%ld-%s-%d-again", (int)getpid(), (long)time(NULL),
                         scen_names[list[i]], run);
                run_scenario(&admin, list[i], base, run, "again");
                if (o.settle_s) sleep((unsigned)o.settle_s);
            }
        }
    bench_conn_close(&admin);
    free(copy);
    return failed ? 1 : 0;
}
