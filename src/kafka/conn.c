/* Kafka connection: framing, in-order response queue. See conn.h. */
#include "kafka/conn.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/broker.h"
#include "kafka/dispatch.h"

#define READ_CHUNK (64 * 1024)
#define BIG_FRAME (READ_CHUNK / 2) /* frames at least this large get their own buffer */
#define MIN_FRAME 8          /* api_key + api_version + correlation_id */
#define MAX_QUEUED 1024      /* pending requests before reading pauses */
#define WQ_HIGH (16u << 20)  /* unsent response bytes before reading pauses */
#define WQ_LOW (4u << 20)    /* ... and below which it resumes */
#define MAX_RESP 64          /* responses gathered into one write */
#define MAX_IOV 256          /* buffers in one write */
#define FLUSH_NOW (64u << 10) /* completed response bytes written at once rather than at the turn's end */

struct kafka_conn {
    uv_tcp_t tcp;          /* first: handle data points back to us */
    broker_t *broker;
    kafka_conn_t *prev, *next; /* in the open-connection list */
    char peer[64];         /* "ip:port" for log lines */
    char host[64];         /* "/ip", as Kafka shows client hosts */
    uint8_t *rbuf;         /* bytes read but not yet framed */
    size_t rlen, rcap;
    uint8_t *big;          /* a large frame being read straight into its own buffer */
    size_t big_len, big_have; /* its size and the bytes received so far */
    kreq_t *head, *tail;   /* in-order request queue */
    int queued;            /* requests in the queue */
    int refs;              /* 1 for the open handle + 1 per queued request */
    unsigned closing : 1;  /* uv_close called; no more reads or writes */
    unsigned paused : 1;   /* reading and dispatching stopped for backpressure */
    unsigned processing : 1; /* inside conn_process */
    int writes_inflight;   /* uv_write requests not yet completed */
    kafka_conn_t *dirty_next; /* in g_dirty while dirty */
    unsigned dirty : 1;    /* completed responses wait for the next flush (holds a ref) */
    size_t unflushed;      /* bytes of responses completed since the last flush */
    /* For the admin API (kafka_conn_foreach). */
    int64_t connected_at_ms; /* wall clock */
    uint64_t requests;       /* frames dispatched */
    uint64_t bytes_in, bytes_out; /* socket bytes read / response bytes handed to writes */
    char client_id[128];     /* of the last request, sanitized, NUL-terminated */
};

typedef struct {
    uv_write_t req;
    kafka_conn_t *conn;
    int n;
    kreq_t *done[MAX_RESP]; /* freed in the write callback */
} write_batch_t;

static kafka_conn_t *g_conns;
/* Connections with completed responses: written once per loop turn, by a
 * prepare handle (it runs before the loop blocks), so the answers that one
 * sync round or one read completes go out in one write, not one each. */
static kafka_conn_t *g_dirty;
static uv_prepare_t g_flush_prep;
static int g_flush_prep_on;

static void conn_backpressure(kafka_conn_t *c);
static void conn_process(kafka_conn_t *c);
static int g_nconns;

int kafka_conn_count(void) { return g_nconns; }

static void conn_unref(kafka_conn_t *c)
{
    if (--c->refs > 0) return;
    free(c->rbuf);
    free(c->big);
    free(c);
}

static void on_close(uv_handle_t *h)
{
    kafka_conn_t *c = h->data;
    conn_unref(c);
}

static void conn_close(kafka_conn_t *c)
{
    if (c->closing) return;
    c->closing = 1;
    if (c->prev) c->prev->next = c->next;
    else g_conns = c->next;
    if (c->next) c->next->prev = c->prev;
    g_nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void kreq_free(kreq_t *rq)
{
    arena_destroy(&rq->arena);
    wbuf_destroy(&rq->resp);
    wbuf_destroy(&rq->hold);
    kcodec_splices_destroy(&rq->splices);
    free(rq->frame);
    free(rq);
}

static void on_write(uv_write_t *w, int status)
{
    write_batch_t *wb = (write_batch_t *)w;
    kafka_conn_t *c = wb->conn;
    c->writes_inflight--;
    if (status < 0 && !c->closing) {
        LOG_I("kafka %s: write failed: %s", c->peer, uv_strerror(status));
        conn_close(c);
    }
    conn_backpressure(c); /* before the unrefs below, which may free c */
    /* Each request held a reference; the last one may free c. */
    int n = wb->n;
    for (int i = 0; i < n; i++) kreq_free(wb->done[i]);
    free(wb);
    for (int i = 0; i < n; i++) conn_unref(c);
}

static void conn_read_start(kafka_conn_t *c);

/* Backpressure: a client that sends requests faster than it reads the
 * answers (or pipelines too many) stops being read until it catches up, so
 * its unsent responses cannot grow without bound. */
static void conn_backpressure(kafka_conn_t *c)
{
    if (c->closing) return;
    size_t wq = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (!c->paused && (c->queued >= MAX_QUEUED || wq >= WQ_HIGH)) {
        c->paused = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
    } else if (c->paused && c->queued < MAX_QUEUED / 2 && wq < WQ_LOW) {
        c->paused = 0;
        conn_read_start(c);
        if (c->rlen && !c->big) conn_process(c); /* requests read before the pause */
    }
}

/* Writes every completed response at the head of the queue. */
static void conn_flush(kafka_conn_t *c)
{
    c->unflushed = 0;
    c->refs++; /* released below: writes completing inline may drop the last */
    while (c->head && c->head->done) {
        write_batch_t *wb = xmalloc(sizeof *wb);
        uv_buf_t bufs[MAX_IOV];
        int nb = 0;
        wb->conn = c;
        wb->n = 0;
        while (c->head && c->head->done && wb->n < MAX_RESP) {
            kreq_t *rq = c->head;
            if (nb + 2 * rq->splices.n + 1 > MAX_IOV && wb->n > 0) break;
            c->head = rq->next;
            if (!c->head) c->tail = NULL;
            c->queued--;
            wb->done[wb->n++] = rq;
            if (rq->no_response || !rq->resp.len) continue;
            c->bytes_out += rq->resp.len + rq->splices.bytes;
            if (nb + 2 * rq->splices.n + 1 > MAX_IOV) {
                /* Too many pieces for one write: flatten (rare). */
                wbuf_t flat;
                wbuf_init(&flat);
                size_t prev = 0;
                for (int i = 0; i < rq->splices.n; i++) {
                    wbuf_put(&flat, rq->resp.p + prev, rq->splices.v[i].at - prev);
                    wbuf_put(&flat, rq->splices.v[i].p, rq->splices.v[i].len);
                    prev = rq->splices.v[i].at;
                }
                wbuf_put(&flat, rq->resp.p + prev, rq->resp.len - prev);
                wbuf_destroy(&rq->resp);
                rq->resp = flat;
                rq->splices.n = 0;
            }
            size_t prev = 0;
            for (int i = 0; i < rq->splices.n; i++) {
                const kcodec_splice_t *sp = &rq->splices.v[i];
                if (sp->at > prev) bufs[nb++] = uv_buf_init((char *)rq->resp.p + prev, (unsigned)(sp->at - prev));
                bufs[nb++] = uv_buf_init((char *)sp->p, (unsigned)sp->len);
                prev = sp->at;
            }
            if (rq->resp.len > prev) bufs[nb++] = uv_buf_init((char *)rq->resp.p + prev, (unsigned)(rq->resp.len - prev));
        }
        if (c->closing || nb == 0) {
            /* Nothing to send (acks=0, or the client is gone): release now. */
            c->writes_inflight++;
            on_write(&wb->req, 0);
            continue;
        }
        c->writes_inflight++;
        int rc = uv_write(&wb->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)nb, on_write);
        if (rc < 0) {
            LOG_I("kafka %s: write failed: %s", c->peer, uv_strerror(rc));
            on_write(&wb->req, rc);
        }
    }
    conn_backpressure(c);
    conn_unref(c);
}

void kreq_begin_response(kreq_t *rq)
{
    wbuf_reset(&rq->resp);
    wbuf_reserve(&rq->resp, 4);
    kafka_resp_header_encode(&rq->resp, rq->hdr.api_key, rq->hdr.api_version, rq->hdr.correlation_id);
}

void kreq_splice_begin(kreq_t *rq, wbuf_t *backing)
{
    wbuf_destroy(&rq->hold);
    rq->hold = *backing;
    wbuf_init(backing);
    kcodec_splice_begin(&rq->splices, &rq->resp);
}

void kreq_splice_end(kreq_t *rq)
{
    (void)rq;
    kcodec_splice_end();
}

static void on_flush_prep(uv_prepare_t *h)
{
    (void)h;
    while (g_dirty) {
        kafka_conn_t *c = g_dirty;
        g_dirty = c->dirty_next;
        c->dirty = 0;
        conn_flush(c);
        conn_unref(c);
    }
}

void kreq_done(kreq_t *rq)
{
    if (!rq->no_response) {
        if (rq->resp.len < 4) kreq_begin_response(rq); /* defensive: empty body */
        wbuf_patch_u32(&rq->resp, 0, (uint32_t)(rq->resp.len - 4 + rq->splices.bytes));
    }
    rq->done = 1;
    kafka_conn_t *c = rq->conn;
    broker_observe_request(c->broker, rq->hdr.api_key, clock_mono_ns() - rq->start_ns);
    c->unflushed += rq->resp.len + rq->splices.bytes;
    if (c->unflushed >= FLUSH_NOW || c->closing || !g_flush_prep_on) {
        /* Large answers (fetches) go at once, so backpressure sees them; a
         * closing connection (or one past shutdown) only releases. */
        conn_flush(c);
        return;
    }
    if (c->dirty || c->head != rq) return; /* written with the responses before it */
    c->dirty = 1;
    c->refs++;
    c->dirty_next = g_dirty;
    g_dirty = c;
}

int kreq_conn_closed(const kreq_t *rq) { return rq->conn->closing; }

const char *kreq_client_host(const kreq_t *rq) { return rq->conn->host; }

/* Hands one complete frame to the dispatcher. Takes ownership of frame. */
static void conn_dispatch(kafka_conn_t *c, uint8_t *frame, size_t len)
{
    kreq_t *rq = xcalloc(1, sizeof *rq);
    rq->conn = c;
    rq->frame = frame;
    rq->start_ns = clock_mono_ns();
    arena_init(&rq->arena);
    wbuf_init(&rq->resp);
    rbuf_init(&rq->body, frame, len);
    int rc = kafka_req_header_decode(&rq->body, &rq->hdr);
    if (rc < 0 || rq->body.err) {
        LOG_W("kafka %s: malformed request header (%u bytes), closing", c->peer, (unsigned)len);
        kreq_free(rq);
        conn_close(c);
        return;
    }
    c->requests++;
    if (rq->hdr.client_id.len > 0) {
        size_t n = (size_t)rq->hdr.client_id.len < sizeof c->client_id - 1 ? (size_t)rq->hdr.client_id.len
                                                                           : sizeof c->client_id - 1;
        for (size_t i = 0; i < n; i++) {
            char ch = rq->hdr.client_id.p[i];
            c->client_id[i] = ch >= 0x20 && ch < 0x7f ? ch : '?';
        }
        c->client_id[n] = '\0';
    }
    c->refs++;
    if (c->tail) c->tail->next = rq;
    else c->head = rq;
    c->tail = rq;
    c->queued++;
    if (kafka_dispatch(c->broker, rq) < 0) {
        /* The handler judged the request unanswerable (malformed body,
         * unknown API): Kafka's rule is to close the connection. */
        LOG_W("kafka %s: closing after bad request api_key=%d version=%d", c->peer, rq->hdr.api_key,
              rq->hdr.api_version);
        rq->no_response = 1;
        kreq_done(rq);
        conn_close(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    kafka_conn_t *c = h->data;
    (void)suggested;
    if (c->big) { /* the rest of a large frame goes straight into place */
        *buf = uv_buf_init((char *)c->big + c->big_have, (unsigned)(c->big_len - c->big_have));
        return;
    }
    if (c->rcap - c->rlen < READ_CHUNK / 4) {
        size_t cap = c->rcap ? c->rcap : READ_CHUNK;
        while (cap - c->rlen < READ_CHUNK / 4) cap *= 2;
        c->rbuf = xrealloc(c->rbuf, cap);
        c->rcap = cap;
    }
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

/* Frames the buffered bytes and dispatches complete requests while the
 * connection is neither closing nor paused; what is left waits in rbuf (a
 * paused connection resumes here from conn_backpressure). Not re-entrant:
 * a handler answering at once may resume the connection, and the loop
 * below then simply goes on. */
static void conn_process(kafka_conn_t *c)
{
    if (c->processing) return;
    c->processing = 1;
    c->refs++;
    size_t pos = 0;
    int64_t limit = broker_config(c->broker)->max_request_bytes;
    while (!c->closing && !c->paused && c->rlen - pos >= 4) {
        uint32_t size = buf_get_be32(c->rbuf + pos);
        if (size > (uint64_t)limit || size < MIN_FRAME) {
            LOG_W("kafka %s: request size %u outside [%d, %lld], closing", c->peer, size, MIN_FRAME,
                  (long long)limit);
            conn_close(c);
            break;
        }
        if (c->rlen - pos - 4 < size) {
            if (size >= BIG_FRAME) {
                /* A large frame (a produce batch): give it its own buffer
                 * now and read the rest directly into it, so its bytes are
                 * never copied out of the read buffer. */
                size_t have = c->rlen - pos - 4;
                c->big = xmalloc(size);
                memcpy(c->big, c->rbuf + pos + 4, have);
                c->big_len = size;
                c->big_have = have;
                pos = c->rlen;
            }
            break;
        }
        uint8_t *frame = xmalloc(size);
        memcpy(frame, c->rbuf + pos + 4, size);
        pos += 4 + (size_t)size;
        conn_dispatch(c, frame, size);
        conn_backpressure(c);
    }
    if (pos) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
    /* Give back a large buffer once it is drained. */
    if (c->rlen == 0 && c->rcap > 4 * READ_CHUNK) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
    }
    c->processing = 0;
    conn_unref(c);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    kafka_conn_t *c = s->data;
    (void)buf;
    if (n < 0) {
        if (n != UV_EOF) LOG_I("kafka %s: read error: %s", c->peer, uv_strerror((int)n));
        else LOG_D("kafka %s: closed by peer", c->peer);
        conn_close(c);
        return;
    }
    c->bytes_in += (uint64_t)n;
    if (c->big) {
        c->big_have += (size_t)n;
        if (c->big_have == c->big_len) {
            uint8_t *frame = c->big;
            c->big = NULL;
            conn_dispatch(c, frame, c->big_len);
        }
    } else {
        c->rlen += (size_t)n;
        conn_process(c);
    }
    conn_backpressure(c);
}

static void conn_read_start(kafka_conn_t *c)
{
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        LOG_W("kafka %s: read start failed: %s", c->peer, uv_strerror(rc));
        conn_close(c);
    }
}

int kafka_conn_accept(broker_t *b, uv_stream_t *server)
{
    kafka_conn_t *c = xcalloc(1, sizeof *c);
    c->broker = b;
    c->refs = 1;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return rc;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (!g_flush_prep_on) {
        uv_prepare_init(server->loop, &g_flush_prep);
        uv_prepare_start(&g_flush_prep, on_flush_prep);
        uv_unref((uv_handle_t *)&g_flush_prep);
        g_flush_prep_on = 1;
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[48];
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            snprintf(c->host, sizeof c->host, "/%s", ip);
            snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            snprintf(c->host, sizeof c->host, "/%s", ip);
            snprintf(c->peer, sizeof c->peer, "%s:%d", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
        }
    }
    if (g_nconns >= broker_config(b)->max_connections) {
        LOG_W("kafka %s: connection limit %d reached, refusing", c->peer, broker_config(b)->max_connections);
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return 0;
    }
    c->connected_at_ms = clock_wall_ms();
    c->next = g_conns;
    if (g_conns) g_conns->prev = c;
    g_conns = c;
    g_nconns++;
    LOG_D("kafka %s: connected", c->peer);
    conn_read_start(c);
    return 0;
}

void kafka_conn_close_all(broker_t *b)
{
    (void)b;
    while (g_conns) conn_close(g_conns);
    on_flush_prep(NULL); /* releases the dirty connections' references */
    if (g_flush_prep_on) {
        uv_close((uv_handle_t *)&g_flush_prep, NULL);
        g_flush_prep_on = 0;
    }
}

void kafka_conn_foreach(void (*fn)(void *ctx, const kafka_conn_info_t *info), void *ctx)
{
    for (kafka_conn_t *c = g_conns; c; c = c->next) {
        if (c->closing) continue;
        kafka_conn_info_t i = {c->peer, c->client_id, c->connected_at_ms, c->requests, c->bytes_in, c->bytes_out};
        fn(ctx, &i);
    }
}
