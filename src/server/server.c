/* The broker process: loop, listeners, signals. See server.h. */
#include "server/server.h"

#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/err.h"
#include "base/log.h"
#include "broker/broker.h"
#include "amqp/conn.h"
#include "kafka/conn.h"
#include "http/http.h"

typedef struct {
    uv_loop_t loop;
    broker_t *broker;
    uv_tcp_t kafka_listener;
    uv_tcp_t amqp_listeners[2]; /* "loopback" = IPv4 and IPv6 */
    int n_amqp;
    uv_signal_t sigint, sigterm;
    http_server_t *http;
    int stopping;
} server_t;

static void on_kafka_connection(uv_stream_t *server, int status)
{
    server_t *s = server->data;
    if (status < 0) {
        LOG_W("kafka accept: %s", uv_strerror(status));
        return;
    }
    int rc = kafka_conn_accept(s->broker, server);
    if (rc < 0) LOG_W("kafka accept: %s", uv_strerror(rc));
}

static void on_amqp_connection(uv_stream_t *server, int status)
{
    server_t *s = server->data;
    if (status < 0) {
        LOG_W("amqp accept: %s", uv_strerror(status));
        return;
    }
    int rc = amqp_conn_accept(s->broker, server);
    if (rc < 0) LOG_W("amqp accept: %s", uv_strerror(rc));
}

/* Parses HOST:PORT ("[::1]:9092" for IPv6) into a sockaddr. */
static int resolve(const char *addr, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon) return HE_INVALID;
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof host) return HE_INVALID;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    int port = atoi(colon + 1);
    char *h = host;
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
    }
    if (!strcmp(h, "localhost")) h = "127.0.0.1";
    if (uv_ip4_addr(h, port, (struct sockaddr_in *)ss) == 0) return 0;
    if (uv_ip6_addr(h, port, (struct sockaddr_in6 *)ss) == 0) return 0;
    return HE_INVALID;
}

static int listen_on(server_t *s, uv_tcp_t *tcp, const char *addr, uv_connection_cb cb, int *bound_port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (resolve(addr, &ss) < 0) {
        LOG_E("cannot parse listen address %s", addr);
        return HE_INVALID;
    }
    uv_tcp_init(&s->loop, tcp);
    tcp->data = s;
    int rc = uv_tcp_bind(tcp, (struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)tcp, 1024, cb);
    if (rc < 0) {
        LOG_E("cannot listen on %s: %s", addr, uv_strerror(rc));
        return rc;
    }
    struct sockaddr_storage got;
    int gl = sizeof got;
    uv_tcp_getsockname(tcp, (struct sockaddr *)&got, &gl);
    *bound_port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                  : ((struct sockaddr_in *)&got)->sin_port);
    return 0;
}

static void on_closed(uv_handle_t *h) { (void)h; }

/* Every partition keeps a few files open (segment, two indexes, directory),
 * so the soft descriptor limit (often 1024) is raised to the hard one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max) return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        LOG_I("open-file limit raised from %llu to %llu", (unsigned long long)old, (unsigned long long)rl.rlim_max);
}

static void server_stop(server_t *s)
{
    if (s->stopping) return;
    s->stopping = 1;
    LOG_I("shutting down");
    if (uv_is_active((uv_handle_t *)&s->kafka_listener) || s->kafka_listener.data)
        uv_close((uv_handle_t *)&s->kafka_listener, on_closed);
    for (int i = 0; i < s->n_amqp; i++) uv_close((uv_handle_t *)&s->amqp_listeners[i], on_closed);
    s->n_amqp = 0;
    http_server_free(s->http);
    s->http = NULL;
    amqp_conn_close_all(s->broker);
    uv_close((uv_handle_t *)&s->sigint, on_closed);
    uv_close((uv_handle_t *)&s->sigterm, on_closed);
    kafka_conn_close_all(s->broker);
}

/* The AMQP listener(s): host "loopback" binds 127.0.0.1 and, when the
 * machine has IPv6, [::1] on the same port. Returns 0 or <0. */
static int listen_amqp(server_t *s, const char *addr, int *port)
{
    const char *colon = strrchr(addr, ':');
    if (colon && (size_t)(colon - addr) == 8 && !strncmp(addr, "loopback", 8)) {
        char a4[64], a6[64];
        snprintf(a4, sizeof a4, "127.0.0.1%s", colon);
        int rc = listen_on(s, &s->amqp_listeners[0], a4, on_amqp_connection, port);
        if (rc < 0) {
            uv_close((uv_handle_t *)&s->amqp_listeners[0], on_closed);
            return rc;
        }
        s->n_amqp = 1;
        snprintf(a6, sizeof a6, "[::1]:%d", *port);
        int p6;
        if (listen_on(s, &s->amqp_listeners[1], a6, on_amqp_connection, &p6) == 0) s->n_amqp = 2;
        else uv_close((uv_handle_t *)&s->amqp_listeners[1], on_closed);
        return 0;
    }
    int rc = listen_on(s, &s->amqp_listeners[0], addr, on_amqp_connection, port);
    if (rc < 0) {
        uv_close((uv_handle_t *)&s->amqp_listeners[0], on_closed);
        return rc;
    }
    s->n_amqp = 1;
    return 0;
}

static void on_signal(uv_signal_t *sig, int signum)
{
    server_t *s = sig->data;
    LOG_I("received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    server_stop(s);
}

int server_run(const config_t *cfg)
{
    server_t s;
    memset(&s, 0, sizeof s);
    log_set_level((log_level_t)cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    uv_loop_init(&s.loop);
    int err = 0;
    s.broker = broker_new(&s.loop, cfg, &err);
    if (!s.broker) {
        LOG_E("cannot start: %s", herald_strerror(err));
        uv_run(&s.loop, UV_RUN_DEFAULT);
        uv_loop_close(&s.loop);
        return 1;
    }
    int port = 0, code = 0, aport = 0;
    amqp_conn_watch_alarms(s.broker);
    if (listen_amqp(&s, cfg->amqp_listen, &aport) < 0) {
        code = 1;
        s.stopping = 1;
    } else if (listen_on(&s, &s.kafka_listener, cfg->kafka_listen, on_kafka_connection, &port) < 0) {
        code = 1;
        s.stopping = 1;
        uv_close((uv_handle_t *)&s.kafka_listener, on_closed);
        for (int i = 0; i < s.n_amqp; i++) uv_close((uv_handle_t *)&s.amqp_listeners[i], on_closed);
    } else {
        /* Signals first: a script may send SIGINT as soon as it reads the
         * port lines below, and a signal before the handlers would be lost. */
        uv_signal_init(&s.loop, &s.sigint);
        uv_signal_init(&s.loop, &s.sigterm);
        s.sigint.data = s.sigterm.data = &s;
        uv_signal_start(&s.sigint, on_signal, SIGINT);
        uv_signal_start(&s.sigterm, on_signal, SIGTERM);
        LOG_I("amqp listening on %s (port %d)", cfg->amqp_listen, aport);
        fprintf(stdout, "herald: amqp port %d\n", aport);
        if (strcmp(cfg->http_listen, "off")) {
            int hport = 0, herr = 0;
            struct sockaddr_storage hss;
            memset(&hss, 0, sizeof hss);
            if (resolve(cfg->http_listen, &hss) < 0) LOG_E("cannot parse the HTTP listen address %s", cfg->http_listen);
            else s.http = http_server_new(s.broker, (struct sockaddr *)&hss, cfg->http_listen, &hport, &herr);
            if (s.http) {
                LOG_I("http listening on %s (port %d)", cfg->http_listen, hport);
                fprintf(stdout, "herald: http port %d\n", hport);
            } else {
                code = 1;
            }
        }
        broker_set_kafka_port(s.broker, port);
        const char *ah;
        int ap;
        broker_kafka_advertised(s.broker, &ah, &ap);
        LOG_I("kafka listening on %s (port %d), advertised as %s:%d", cfg->kafka_listen, port, ah, ap);
        /* Tests and scripts read the bound port from this line. */
        fprintf(stdout, "herald: kafka port %d\n", port);
        fflush(stdout);
        if (code) server_stop(&s); /* the HTTP listener failed */
        uv_run(&s.loop, UV_RUN_DEFAULT);
    }
    broker_free(s.broker);
    /* Let close callbacks of the broker's handles run. */
    uv_run(&s.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&s.loop);
    if (rc != 0) LOG_W("event loop closed with handles still open");
    LOG_I("stopped");
    return code;
}
