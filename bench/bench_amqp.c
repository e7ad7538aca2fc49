/* See bench_amqp.h. */
#include "bench_amqp.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <amqp_tcp_socket.h>

#include "bench_common.h"

void bench_reply_check(amqp_rpc_reply_t r, const char *who, const char *op)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return;
    if (r.reply_type == AMQP_RESPONSE_NONE)
        bench_die("%s: %s: connection closed", who, op);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        bench_die("%s: %s: %s", who, op, amqp_error_string2(r.library_error));
    if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *m = r.reply.decoded;
        bench_die("%s: %s: broker closed the connection: %u %.*s", who, op, m->reply_code,
                  (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    }
    if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *m = r.reply.decoded;
        bench_die("%s: %s: broker closed the channel: %u %.*s", who, op, m->reply_code,
                  (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    }
    bench_die("%s: %s: unexpected reply 0x%08x", who, op, (unsigned)r.reply.id);
}

void bench_frame_other(bench_conn_t *bc, const amqp_frame_t *f)
{
    if (f->frame_type == AMQP_FRAME_METHOD && (f->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
                                               f->payload.method.id == AMQP_CHANNEL_CLOSE_METHOD))
        bench_reply_check((amqp_rpc_reply_t){.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION,
                                             .reply = f->payload.method},
                          bc->who, "reading");
}

void bench_conn_open(bench_conn_t *bc, const char *who, const char *host, int port, int timeout_s)
{
    bc->who = who;
    bc->c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(bc->c);
    struct timeval connect_tv = {.tv_sec = 10}, rpc_tv = {.tv_sec = timeout_s};
    int rc = s ? amqp_socket_open_noblock(s, host, port, &connect_tv) : AMQP_STATUS_NO_MEMORY;
    if (rc != AMQP_STATUS_OK)
        bench_die("%s: connect %s:%d: %s", who, host, port, amqp_error_string2(rc));
    amqp_set_handshake_timeout(bc->c, &rpc_tv);
    amqp_set_rpc_timeout(bc->c, &rpc_tv);
    bench_reply_check(amqp_login(bc->c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), who,
                      "login");
    amqp_channel_open(bc->c, 1);
    bench_reply_check(amqp_get_rpc_reply(bc->c), who, "channel.open");
    bc->fd = amqp_get_sockfd(bc->c);
}

void bench_conn_close(bench_conn_t *bc)
{
    amqp_connection_close(bc->c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(bc->c);
    bc->c = NULL;
}

int bench_send_all(int fd, const uint8_t *p, size_t n, uint64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            uint64_t now = bench_now_ns();
            if (now >= deadline)
                return -ETIMEDOUT;
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            uint64_t ms = (deadline - now) / 1000000 + 1;
            poll(&pfd, 1, ms > 1000 ? 1000 : (int)ms);
            continue;
        }
        return w < 0 ? -errno : -EPIPE;
    }
    return 0;
}

uint8_t *bench_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

uint8_t *bench_put32(uint8_t *p, uint32_t v) { return bench_put16(bench_put16(p, (uint16_t)(v >> 16)), (uint16_t)v); }

uint8_t *bench_put64(uint8_t *p, uint64_t v) { return bench_put32(bench_put32(p, (uint32_t)(v >> 32)), (uint32_t)v); }
