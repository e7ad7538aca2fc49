/*
 * rabbitmq-c helpers shared by the AMQP benchmark tools (amqp_bench.c,
 * amqp_features.c): a connection with channel 1 open, reply checks that
 * die with what the broker said, non-blocking writes of pre-encoded frames
 * and big-endian writers for them.
 */
#ifndef HERALD_BENCH_AMQP_H
#define HERALD_BENCH_AMQP_H

#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

typedef struct bench_conn {
    amqp_connection_state_t c;
    int fd;
    const char *who; /* "publisher", "consumer", "admin": for messages */
} bench_conn_t;

/* Dies unless r is a normal reply; says what the broker or library said. */
void bench_reply_check(amqp_rpc_reply_t r, const char *who, const char *op);
/* A frame other than a confirm or a delivery: dies on channel.close or
 * connection.close, ignores anything else. */
void bench_frame_other(bench_conn_t *bc, const amqp_frame_t *f);
/* Opens a connection as guest (frame-max 128 KiB, no heartbeats) and
 * channel 1; the handshake and every RPC wait at most timeout_s. */
void bench_conn_open(bench_conn_t *bc, const char *who, const char *host, int port, int timeout_s);
void bench_conn_close(bench_conn_t *bc);

/* Writes n bytes to a socket rabbitmq-c has made non-blocking. Returns 0,
 * -ETIMEDOUT past deadline (ns, monotonic), or -errno. */
int bench_send_all(int fd, const uint8_t *p, size_t n, uint64_t deadline);

/* Big-endian writers; each returns the end of what it wrote. */
uint8_t *bench_put16(uint8_t *p, uint16_t v);
uint8_t *bench_put32(uint8_t *p, uint32_t v);
uint8_t *bench_put64(uint8_t *p, uint64_t v);

#endif
