/*
 * An AMQP 0-9-1 client connection: the protocol header, frames (see
 * wire.h for the layout), connection.close, heartbeats, resource alarms
 * and the write path. The handshake (connection.start .. open-ok) is in
 * handshake.c, channel frames go to channel.c.
 *
 * Input is parsed frame by frame from one buffer. A frame's size is checked
 * against the negotiated frame-max as soon as its 7-byte header arrives,
 * before anything is allocated for it. Output frames are appended to `out`
 * and written with one uv_write per callback; while one write is in
 * flight, later frames accumulate and go in the next.
 *
 * Resource alarms (broker/alarm.h) block publishers as RabbitMQ does: while
 * an alarm is on, a connection stops being read right after its next
 * content frame (the header or a body frame of a basic.publish), and one
 * that advertised the "connection.blocked" capability is told so. Output
 * goes on (deliveries, confirms, heartbeats), connections that do not
 * publish are never blocked, and the missed-heartbeat check is paused while
 * input is. When every alarm has cleared, blocked connections get
 * connection.unblocked and are read again.
 */
#include "amqp/conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/internal.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/alarm.h"

#define AMQP_READ_CHUNK (64 * 1024)
#define AMQP_INPUT_PAUSE (16u << 20) /* stop reading while this much output is unsent */
#define AMQP_CLOSE_TIMEOUT_MS 3000

static const uint8_t protocol_header[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

static amqp_conn_t *all_conns;
static int nconns;
/* Output appended outside a connection's own callbacks (a delivery caused
 * by another client's publish or ack) is written once per loop turn, by a
 * prepare handle, for every connection that has some. */
static amqp_conn_t *dirty_conns;
static uv_prepare_t flush_prep;
static int flush_prep_on;
/* ALARM_* bits of the broker's alarms that are on. */
static unsigned alarms_on;

static void mark_dirty(amqp_conn_t *c)
{
    if (c->dirty || c->state == AC_CLOSED) return;
    c->dirty = 1;
    c->dirty_next = dirty_conns;
    dirty_conns = c;
}

static void unmark_dirty(amqp_conn_t *c)
{
    if (!c->dirty) return;
    for (amqp_conn_t **pp = &dirty_conns; *pp; pp = &(*pp)->dirty_next)
        if (*pp == c) {
            *pp = c->dirty_next;
            break;
        }
    c->dirty = 0;
}

static void on_flush_prep(uv_prepare_t *h)
{
    (void)h;
    while (dirty_conns) {
        amqp_conn_t *c = dirty_conns;
        dirty_conns = c->dirty_next;
        c->dirty = 0;
        amqp_conn_flush(c);
    }
}

int amqp_conn_count(void) { return nconns; }

int amqp_channel_count(void)
{
    int n = 0;
    for (amqp_conn_t *c = all_conns; c; c = c->next) n += (int)c->nchan;
    return n;
}

amqp_conn_t *amqp_conn_next(amqp_conn_t *c) { return c ? c->next : all_conns; }

amqp_conn_t *amqp_conn_by_id(uint64_t id)
{
    for (amqp_conn_t *c = all_conns; c; c = c->next)
        if (c->id == id && c->state == AC_RUNNING) return c;
    return NULL;
}

static void free_channels(amqp_conn_t *c)
{
    for (uint32_t i = 1; i < c->chan_cap; i++)
        if (c->channels[i]) {
            amqp_channel_t *ch = c->channels[i];
            c->channels[i] = NULL;
            amqp_channel_free(ch);
        }
    c->nchan = 0;
}

void amqp_conn_drop_channel(amqp_conn_t *c, uint16_t id)
{
    if (id < c->chan_cap && c->channels[id]) {
        c->channels[id] = NULL;
        c->nchan--;
    }
}

static void conn_unref(amqp_conn_t *c)
{
    if (--c->refs > 0) return;
    wbuf_destroy(&c->out);
    wbuf_destroy(&c->inflight);
    free(c->in);
    free(c->channels);
    free(c);
}

static void on_closed(uv_handle_t *h) { conn_unref(h->data); }

void amqp_conn_close(amqp_conn_t *c)
{
    if (c->state == AC_CLOSED) return;
    c->state = AC_CLOSED;
    unmark_dirty(c);
    if (c->waiting) { /* the hold's reference: its callback will not run now */
        pwaiter_cancel(&c->wait);
        c->waiting = 0;
        c->wait_done = NULL;
        c->refs--;
    }
    free_channels(c);
    if (c->vh) vhost_owner_gone(c->vh, c);
    if (c->prev) c->prev->next = c->next;
    else all_conns = c->next;
    if (c->next) c->next->prev = c->prev;
    nconns--;
    uv_timer_stop(&c->timer);
    c->refs++;
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void amqp_conn_close_all(broker_t *b)
{
    (void)b;
    while (all_conns) amqp_conn_close(all_conns);
    if (flush_prep_on) {
        uv_close((uv_handle_t *)&flush_prep, NULL);
        flush_prep_on = 0;
    }
}

/* ---- output ---- */

static void frame_begin(wbuf_t *w, uint8_t type, uint16_t ch, size_t *size_at)
{
    wbuf_u8(w, type);
    wbuf_u16(w, ch);
    *size_at = w->len;
    wbuf_u32(w, 0);
}

static void frame_end(wbuf_t *w, size_t size_at)
{
    wbuf_patch_u32(w, size_at, (uint32_t)(w->len - size_at - 4));
    wbuf_u8(w, AMQP_FRAME_END);
}

void amqp_send_method(amqp_conn_t *c, uint16_t ch, const amqp_method_t *m)
{
    if (c->state == AC_CLOSED) return;
    size_t at;
    frame_begin(&c->out, AMQP_FRAME_METHOD, ch, &at);
    amqp_method_encode(&c->out, m);
    frame_end(&c->out, at);
    mark_dirty(c);
}

void amqp_send_content(amqp_conn_t *c, uint16_t ch, const amqp_method_t *m, amqp_bytes_t props,
                       const uint8_t *body, uint64_t body_len)
{
    if (c->state == AC_CLOSED) return;
    amqp_send_method(c, ch, m);
    size_t at;
    frame_begin(&c->out, AMQP_FRAME_HEADER, ch, &at);
    amqp_header_encode(&c->out, body_len, props);
    frame_end(&c->out, at);
    uint64_t max = c->frame_max - AMQP_FRAME_OVERHEAD;
    for (uint64_t off = 0; off < body_len; off += max) {
        uint64_t n = body_len - off < max ? body_len - off : max;
        frame_begin(&c->out, AMQP_FRAME_BODY, ch, &at);
        wbuf_put(&c->out, body + off, (size_t)n);
        frame_end(&c->out, at);
    }
}

size_t amqp_conn_backlog(const amqp_conn_t *c) { return c->out.len + c->inflight.len; }

static void start_reading(amqp_conn_t *c);

static void on_written(uv_write_t *req, int status)
{
    amqp_conn_t *c = req->data;
    c->writing = 0;
    wbuf_reset(&c->inflight);
    if (status < 0 && c->state != AC_CLOSED) {
        LOG_I("amqp %s: write failed: %s", c->peer, uv_strerror(status));
        amqp_conn_close(c);
    }
    if (c->state != AC_CLOSED) {
        amqp_conn_flush(c);
        /* Consumers held back by the backlog may go on. */
        if (c->state == AC_RUNNING)
            for (uint32_t i = 1; i < c->chan_cap && amqp_conn_backlog(c) < AMQP_BACKLOG_MAX; i++)
                if (c->channels[i]) amqp_channel_kick(c->channels[i]);
        amqp_conn_flush(c);
        start_reading(c);
    }
    conn_unref(c);
}

void amqp_conn_flush(amqp_conn_t *c)
{
    /* While a reply waits for durability, nothing after it may go out. */
    if (c->writing || c->waiting || c->state == AC_CLOSED) return;
    if (!c->out.len) {
        if (c->close_when_flushed) amqp_conn_close(c);
        return;
    }
    wbuf_t t = c->inflight;
    c->inflight = c->out;
    c->out = t;
    wbuf_reset(&c->out);
    uv_buf_t buf = uv_buf_init((char *)c->inflight.p, (unsigned)c->inflight.len);
    c->bytes_out += c->inflight.len;
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
    if (rc < 0) {
        LOG_I("amqp %s: write failed: %s", c->peer, uv_strerror(rc));
        wbuf_reset(&c->inflight);
        amqp_conn_close(c);
        return;
    }
    c->writing = 1;
    c->refs++;
    c->last_send_ms = clock_mono_ms();
}

static void on_close_timeout(uv_timer_t *t)
{
    amqp_conn_t *c = t->data;
    LOG_I("amqp %s: no close-ok, closing", c->peer);
    amqp_conn_close(c);
}

void amqp_conn_error(amqp_conn_t *c, uint16_t code, uint32_t method_id, const char *fmt, ...)
{
    if (c->state == AC_CLOSING || c->state == AC_CLOSED) return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    LOG_I("amqp %s: closing connection: %u %s", c->peer, code, text);
    amqp_method_t m = {.id = AMQP_CONNECTION_CLOSE};
    m.m.connection_close.reply_code = code;
    m.m.connection_close.reply_text = amqp_cstr(text);
    m.m.connection_close.class_id = (uint16_t)(method_id >> 16);
    m.m.connection_close.method_id = (uint16_t)method_id;
    amqp_send_method(c, 0, &m);
    free_channels(c);
    c->state = AC_CLOSING;
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_close_timeout, AMQP_CLOSE_TIMEOUT_MS, 0);
    amqp_conn_flush(c);
    if (c->blocked) { /* the close-ok must be read (RabbitMQ reads a closing connection too) */
        c->blocked = 0;
        start_reading(c);
    }
}

/* ---- heartbeats ---- */

static void on_timer(uv_timer_t *t)
{
    amqp_conn_t *c = t->data;
    int64_t now = clock_mono_ms(), hb = (int64_t)c->heartbeat_s * 1000;
    /* While an alarm blocks its input, a client's heartbeats are not read:
     * the check waits (RabbitMQ pauses its heartbeat monitor too). */
    if (!c->blocked && now - c->last_recv_ms > 2 * hb) {
        LOG_I("amqp %s: missed heartbeats from client, timeout: %ds", c->peer, c->heartbeat_s);
        amqp_conn_close(c);
        return;
    }
    if (now - c->last_send_ms >= hb / 2) {
        static const uint8_t frame[8] = {AMQP_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, AMQP_FRAME_END};
        wbuf_put(&c->out, frame, sizeof frame);
        amqp_conn_flush(c);
    }
}

void amqp_conn_heartbeats_start(amqp_conn_t *c)
{
    uv_timer_stop(&c->timer); /* the handshake deadline */
    if (c->heartbeat_s) {
        uint64_t ms = (uint64_t)c->heartbeat_s * 1000 / 2;
        uv_timer_start(&c->timer, on_timer, ms, ms);
    }
}

/* ---- input ---- */

static int conn_method(amqp_conn_t *c, const uint8_t *p, uint32_t len)
{
    amqp_method_t m;
    int rc = amqp_method_decode(p, len, &m);
    if (rc == HE_NOT_FOUND) {
        amqp_conn_error(c, AMQP_NOT_IMPLEMENTED, m.id, "NOT_IMPLEMENTED - unknown method %u.%u", m.id >> 16,
                        m.id & 0xffff);
        return -1;
    }
    if (rc < 0) {
        /* RabbitMQ reports an undecodable method as a frame error. */
        amqp_conn_error(c, AMQP_FRAME_ERROR, len >= 4 ? m.id : 0, "FRAME_ERROR - cannot decode %s",
                        amqp_method_name(m.id) ? amqp_method_name(m.id) : "method frame");
        return -1;
    }
    if (c->state == AC_CLOSING) {
        if (m.id == AMQP_CONNECTION_CLOSE_OK) amqp_conn_close(c);
        else if (m.id == AMQP_CONNECTION_CLOSE) {
            amqp_method_t ok = {.id = AMQP_CONNECTION_CLOSE_OK};
            amqp_send_method(c, 0, &ok);
            amqp_conn_flush(c);
        }
        return -1;
    }
    uint32_t want = c->state == AC_START_OK ? AMQP_CONNECTION_START_OK
                    : c->state == AC_TUNE_OK ? AMQP_CONNECTION_TUNE_OK
                    : c->state == AC_OPEN    ? AMQP_CONNECTION_OPEN
                                             : 0;
    if (want && m.id != want) {
        amqp_conn_error(c, AMQP_COMMAND_INVALID, m.id, "COMMAND_INVALID - expected %s, got %s",
                        amqp_method_name(want), amqp_method_name(m.id) ? amqp_method_name(m.id) : "?");
        return -1;
    }
    switch (m.id) {
    case AMQP_CONNECTION_START_OK: return amqp_handshake_start_ok(c, &m.m.connection_start_ok);
    case AMQP_CONNECTION_TUNE_OK: return amqp_handshake_tune_ok(c, &m.m.connection_tune_ok);
    case AMQP_CONNECTION_OPEN: return amqp_handshake_open(c, &m.m.connection_open);
    case AMQP_CONNECTION_CLOSE: {
        amqp_method_t ok = {.id = AMQP_CONNECTION_CLOSE_OK};
        amqp_send_method(c, 0, &ok);
        /* Channels go now; the socket closes once close-ok is written. */
        if (c->channels)
            free_channels(c);
        c->state = AC_CLOSING;
        c->close_when_flushed = 1;
        amqp_conn_flush(c);
        return -1;
    }
    case AMQP_CONNECTION_CLOSE_OK: return 0;
    case AMQP_CONNECTION_BLOCKED:
    case AMQP_CONNECTION_UNBLOCKED: return 0;
    case AMQP_CONNECTION_UPDATE_SECRET: {
        amqp_method_t ok = {.id = AMQP_CONNECTION_UPDATE_SECRET_OK};
        amqp_send_method(c, 0, &ok);
        return 0;
    }
    default:
        amqp_conn_error(c, AMQP_CHANNEL_ERROR, m.id, "CHANNEL_ERROR - %s on channel 0",
                        amqp_method_name(m.id) ? amqp_method_name(m.id) : "method");
        return -1;
    }
}

static int conn_frame(amqp_conn_t *c, uint8_t type, uint16_t chan, const uint8_t *p, uint32_t len)
{
    if (type == AMQP_FRAME_HEARTBEAT) {
        if (chan != 0) {
            amqp_conn_error(c, AMQP_UNEXPECTED_FRAME, 0, "UNEXPECTED_FRAME - heartbeat frame on channel %u", chan);
            return -1;
        }
        if (len) {
            amqp_conn_error(c, AMQP_FRAME_ERROR, 0, "FRAME_ERROR - heartbeat frame with a %u-byte payload", len);
            return -1;
        }
        return 0;
    }
    if (type != AMQP_FRAME_METHOD && type != AMQP_FRAME_HEADER && type != AMQP_FRAME_BODY) {
        amqp_conn_error(c, AMQP_FRAME_ERROR, 0, "FRAME_ERROR - unknown frame type %u", type);
        return -1;
    }
    if (chan == 0) {
        if (type != AMQP_FRAME_METHOD) {
            amqp_conn_error(c, AMQP_UNEXPECTED_FRAME, 0, "UNEXPECTED_FRAME - content frame on channel 0");
            return -1;
        }
        /* Timed for /metrics when the codec knows the method (conn_method
         * may free c). */
        uint32_t id = len >= 4 ? buf_get_be32(p) : 0;
        broker_t *b = c->b;
        int64_t t0 = clock_mono_ns();
        int rc = conn_method(c, p, len);
        if (amqp_method_name(id)) broker_observe_amqp_method(b, id, clock_mono_ns() - t0);
        return rc;
    }
    if (c->state == AC_CLOSING) return 0; /* only close-ok matters now */
    if (c->state != AC_RUNNING) {
        amqp_conn_error(c, AMQP_COMMAND_INVALID, 0, "COMMAND_INVALID - channel frame before connection.open");
        return -1;
    }
    amqp_channel_t *ch = amqp_conn_channel(c, chan);
    if (!ch) {
        /* Only channel.open may address a channel that is not open. */
        uint32_t id = type == AMQP_FRAME_METHOD && len >= 4 ? buf_get_be32(p) : 0;
        if (id != AMQP_CHANNEL_OPEN) {
            amqp_conn_error(c, AMQP_CHANNEL_ERROR, id, "CHANNEL_ERROR - expected 'channel.open' on channel %u",
                            chan);
            return -1;
        }
        if (c->nchan >= c->channel_max) {
            amqp_conn_error(c, AMQP_NOT_ALLOWED, 0,
                            "NOT_ALLOWED - number of channels opened (%u) has reached the negotiated channel_max (%u)",
                            c->nchan, c->channel_max);
            return -1;
        }
        if (chan >= c->chan_cap) {
            uint32_t cap = c->chan_cap ? c->chan_cap : 16;
            while (cap <= chan) cap *= 2;
            if (cap > 65536) cap = 65536;
            c->channels = xrealloc(c->channels, cap * sizeof *c->channels);
            memset(c->channels + c->chan_cap, 0, (cap - c->chan_cap) * sizeof *c->channels);
            c->chan_cap = cap;
        }
        ch = c->channels[chan] = amqp_channel_new(c, chan);
        c->nchan++;
    }
    return amqp_channel_frame(ch, type, p, len);
}

static void after_input(amqp_conn_t *c)
{
    if (c->state == AC_RUNNING)
        for (uint32_t i = 1; i < c->chan_cap; i++)
            if (c->channels[i]) amqp_channel_after_input(c->channels[i]);
    amqp_conn_flush(c);
}

/* ---- resource alarms ---- */

/* Stops parsing and reading c (a publisher while an alarm is on). */
static void conn_block(amqp_conn_t *c)
{
    c->blocked = 1;
    if ((c->caps & CAP_BLOCKED) && !c->blocked_sent) {
        amqp_method_t m = {.id = AMQP_CONNECTION_BLOCKED};
        m.m.connection_blocked.reason = amqp_cstr(alarm_reason(alarms_on));
        amqp_send_method(c, 0, &m);
        c->blocked_sent = 1;
    }
}

static void parse_input(amqp_conn_t *c);

static void conn_unblock(amqp_conn_t *c)
{
    c->blocked = 0;
    c->last_recv_ms = clock_mono_ms(); /* the heartbeat check resumes from now */
    if (c->blocked_sent) {
        amqp_method_t m = {.id = AMQP_CONNECTION_UNBLOCKED};
        amqp_send_method(c, 0, &m);
        c->blocked_sent = 0;
    }
    parse_input(c); /* frames read before the block */
    start_reading(c);
}

/* The broker's alarms changed. A connection blocked by one alarm stays
 * blocked, without a second connection.blocked, while another is on
 * (RabbitMQ sends one blocked and one unblocked per episode). */
static void on_alarm(void *ctx, unsigned active)
{
    (void)ctx;
    alarms_on = active;
    if (active) return;
    /* Unblocking parses input, which may close connections: take them
     * first, each with a reference, then go through them. */
    size_t n = 0;
    for (amqp_conn_t *c = all_conns; c; c = c->next) n += c->blocked;
    if (!n) return;
    amqp_conn_t **v = xmalloc(n * sizeof *v);
    size_t i = 0;
    for (amqp_conn_t *c = all_conns; c; c = c->next)
        if (c->blocked) {
            c->refs++;
            v[i++] = c;
        }
    for (i = 0; i < n; i++) {
        if (v[i]->state != AC_CLOSED && v[i]->blocked) conn_unblock(v[i]);
        conn_unref(v[i]);
    }
    free(v);
}

void amqp_conn_watch_alarms(broker_t *b)
{
    alarm_t *a = broker_alarm(b);
    alarms_on = alarm_active(a);
    alarm_listen(a, on_alarm, b);
}

/* Parses whole frames from the input buffer. */
static void parse_input(amqp_conn_t *c)
{
    size_t pos = 0;
    c->parse_passes++;
    while (c->state != AC_CLOSED && !c->waiting && !c->blocked) {
        size_t avail = c->in_len - pos;
        const uint8_t *p = c->in + pos;
        if (c->state == AC_HEADER) {
            if (avail < 8) break;
            if (memcmp(p, protocol_header, 8) != 0) {
                LOG_I("amqp %s: bad protocol header, answering with ours", c->peer);
                wbuf_put(&c->out, protocol_header, 8);
                c->state = AC_CLOSING;
                c->close_when_flushed = 1;
                amqp_conn_flush(c);
                break;
            }
            pos += 8;
            amqp_handshake_start(c);
            continue;
        }
        if (avail < 7) break;
        uint8_t type = p[0];
        uint16_t chan = (uint16_t)(p[1] << 8 | p[2]);
        uint32_t size = buf_get_be32(p + 3);
        uint32_t limit = c->frame_max;
        if ((uint64_t)size + AMQP_FRAME_OVERHEAD > limit) {
            amqp_conn_error(c, AMQP_FRAME_ERROR, 0, "FRAME_ERROR - type %u, size %u > frame_max %u", type,
                            size + AMQP_FRAME_OVERHEAD, limit);
            break;
        }
        if (avail < (size_t)size + AMQP_FRAME_OVERHEAD) {
            if (c->in_cap < (size_t)size + AMQP_FRAME_OVERHEAD && pos == 0) {
                c->in_cap = (size_t)size + AMQP_FRAME_OVERHEAD;
                c->in = xrealloc(c->in, c->in_cap);
            }
            break;
        }
        if (p[7 + size] != AMQP_FRAME_END) {
            amqp_conn_error(c, AMQP_FRAME_ERROR, 0, "FRAME_ERROR - bad frame end octet 0x%02x", p[7 + size]);
            break;
        }
        pos += (size_t)size + AMQP_FRAME_OVERHEAD;
        int rc = conn_frame(c, type, chan, p + 7, size);
        if (rc < 0 && c->state != AC_RUNNING) break;
        /* Content frames come only with basic.publish: this connection
         * publishes, and stops here while an alarm is on. */
        if (rc == 0 && alarms_on && (type == AMQP_FRAME_HEADER || type == AMQP_FRAME_BODY) &&
            c->state == AC_RUNNING)
            conn_block(c);
    }
    if (c->state == AC_CLOSED) return;
    if (pos) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    after_input(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    amqp_conn_t *c = h->data;
    size_t want = c->in_len + AMQP_READ_CHUNK;
    if (c->in_cap < want) {
        size_t cap = c->in_cap ? c->in_cap : AMQP_READ_CHUNK;
        while (cap < want) cap *= 2;
        c->in = xrealloc(c->in, cap);
        c->in_cap = cap;
    }
    *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    amqp_conn_t *c = s->data;
    if (n < 0) {
        if (n != UV_EOF) LOG_I("amqp %s: read failed: %s", c->peer, uv_strerror((int)n));
        else if (c->state == AC_RUNNING) LOG_I("amqp %s: client closed the connection", c->peer);
        amqp_conn_close(c);
        return;
    }
    if (n == 0) return;
    c->in_len += (size_t)n;
    c->bytes_in += (uint64_t)n;
    c->last_recv_ms = clock_mono_ms();
    c->recv_wall_ms = clock_wall_ms();
    if (c->state == AC_CLOSED) return;
    parse_input(c);
    /* Input waits while a reply waits for durability, while an alarm blocks
     * a publisher, or while the client does not read what it is sent. */
    if (c->state != AC_CLOSED && (c->waiting || c->blocked || amqp_conn_backlog(c) > AMQP_INPUT_PAUSE) &&
        c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void start_reading(amqp_conn_t *c)
{
    if (c->reading || c->state == AC_CLOSED || c->waiting || c->blocked || amqp_conn_backlog(c) > AMQP_INPUT_PAUSE)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
}

static void on_wait_fired(pwaiter_t *w, int status)
{
    amqp_conn_t *c = w->ctx;
    c->waiting = 0;
    void (*done)(amqp_conn_t *, int) = c->wait_done;
    c->wait_done = NULL;
    if (c->state == AC_CLOSED) {
        conn_unref(c);
        return;
    }
    if (done) done(c, status);
    if (c->waiting) { /* done() waits again */
        conn_unref(c);
        return;
    }
    amqp_conn_flush(c);
    parse_input(c); /* frames that arrived meanwhile */
    start_reading(c);
    conn_unref(c);
}

void amqp_conn_hold(amqp_conn_t *c, void (*done)(amqp_conn_t *c, int status))
{
    c->waiting = 1;
    c->wait_done = done;
    c->wait.cb = on_wait_fired;
    c->wait.ctx = c;
    c->refs++;
}

/* ---- accept ---- */

int amqp_conn_accept(broker_t *b, uv_stream_t *server)
{
    amqp_conn_t *c = xcalloc(1, sizeof *c);
    c->b = b;
    c->refs = 1;
    c->connected_at_ms = clock_wall_ms();
    c->frame_max = AMQP_FRAME_MIN_SIZE; /* until tune-ok: the spec's minimum */
    wbuf_init(&c->out);
    wbuf_init(&c->inflight);
    uv_tcp_init(broker_loop(b), &c->tcp);
    c->tcp.data = c;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return rc;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_init(broker_loop(b), &c->timer);
    c->timer.data = c;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char host[48] = "";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, host, sizeof host);
            port = ntohs(a->sin_port);
            c->loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, host, sizeof host);
            port = ntohs(a->sin6_port);
            c->loopback = !strcmp(host, "::1") || !strncmp(host, "::ffff:127.", 11);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
    }
    if (!flush_prep_on) {
        uv_prepare_init(broker_loop(b), &flush_prep);
        uv_prepare_start(&flush_prep, on_flush_prep);
        uv_unref((uv_handle_t *)&flush_prep);
        flush_prep_on = 1;
    }
    c->last_recv_ms = c->last_send_ms = clock_mono_ms();
    uv_random(NULL, NULL, &c->id, sizeof c->id, 0, NULL);
    c->next = all_conns;
    if (all_conns) all_conns->prev = c;
    all_conns = c;
    nconns++;
    /* A client that never sends the header is dropped after a while. */
    uv_timer_start(&c->timer, on_close_timeout, 10000, 0);
    start_reading(c);
    return 0;
}
