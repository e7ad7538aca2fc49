/*
 * The AMQP 0-9-1 connection handshake, server side (the spec's connection class):
 *
 *   client                          server
 *   protocol header  ------------>
 *                    <------------  connection.start   (capabilities, mechanisms)
 *   start-ok         ------------>                     (client capabilities, PLAIN/AMQPLAIN)
 *                    <------------  connection.tune    (channel-max, frame-max, heartbeat)
 *   tune-ok          ------------>                     (the values agreed)
 *   open             ------------>                     (virtual host)
 *                    <------------  connection.open-ok
 *
 * conn.c parses the frames and calls these in order (it checks the method
 * expected in each state).
 */
#include <stdio.h>
#include <string.h>

#include "amqp/ftable.h"
#include "amqp/internal.h"
#include "base/log.h"

static void put_bool(wbuf_t *w, const char *name, int v)
{
    ftable_put_name(w, name);
    ftable_put_bool(w, v);
}

static void put_str(wbuf_t *w, const char *name, const char *v)
{
    ftable_put_name(w, name);
    ftable_put_longstr(w, v, strlen(v));
}

void amqp_handshake_start(amqp_conn_t *c)
{
    wbuf_t props;
    wbuf_init(&props);
    size_t mark = ftable_begin(&props);
    ftable_put_name(&props, "capabilities");
    size_t caps = ftable_put_table_begin(&props);
    put_bool(&props, "publisher_confirms", 1);
    put_bool(&props, "exchange_exchange_bindings", 1);
    put_bool(&props, "basic.nack", 1);
    put_bool(&props, "consumer_cancel_notify", 1);
    put_bool(&props, "connection.blocked", 1);
    put_bool(&props, "authentication_failure_close", 1);
    put_bool(&props, "per_consumer_qos", 1);
    put_bool(&props, "direct_reply_to", 1);
    ftable_end(&props, caps);
    put_str(&props, "cluster_name", broker_cluster_id(c->b));
    put_str(&props, "product", "Herald");
    put_str(&props, "version", HERALD_VERSION);
    put_str(&props, "platform", "C");
    put_str(&props, "information", "Herald message broker: Kafka and AMQP 0-9-1 on one durable log");
    ftable_end(&props, mark);
    amqp_method_t m = {.id = AMQP_CONNECTION_START};
    m.m.connection_start.version_major = 0;
    m.m.connection_start.version_minor = 9;
    /* The method carries the table content; strip the length prefix. */
    m.m.connection_start.server_properties = (amqp_bytes_t){props.p + 4, (uint32_t)props.len - 4};
    m.m.connection_start.mechanisms = amqp_cstr("PLAIN AMQPLAIN");
    m.m.connection_start.locales = amqp_cstr("en_US");
    amqp_send_method(c, 0, &m);
    wbuf_destroy(&props);
    c->state = AC_START_OK;
}

/* Checks user:password against amqp.users. guest only from loopback. */
static int auth_ok(amqp_conn_t *c, amqp_bytes_t user, amqp_bytes_t pass)
{
    const char *users = broker_config(c->b)->amqp_users;
    const char *p = users;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        if (colon) {
            size_t ul = (size_t)(colon - p), pl = n - ul - 1;
            if (ul == user.len && !memcmp(p, user.p, ul) && pl == pass.len && !memcmp(colon + 1, pass.p, pl)) {
                if (ul == 5 && !memcmp(p, "guest", 5) && !c->loopback) return 0;
                return 1;
            }
        }
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

static void read_caps(amqp_conn_t *c, amqp_bytes_t client_props)
{
    fvalue_t caps, v;
    if (!ftable_get(client_props, "capabilities", &caps) || caps.type != FV_TABLE) return;
    if (ftable_get(caps.v.table, "consumer_cancel_notify", &v) && v.type == FV_BOOL && v.v.i)
        c->caps |= CAP_CANCEL_NOTIFY;
    if (ftable_get(caps.v.table, "connection.blocked", &v) && v.type == FV_BOOL && v.v.i) c->caps |= CAP_BLOCKED;
    if (ftable_get(caps.v.table, "authentication_failure_close", &v) && v.type == FV_BOOL && v.v.i)
        c->caps |= CAP_AUTH_FAILURE_CLOSE;
}

/* A client property (longstr) copied printable into out, for the admin API. */
static void read_prop(amqp_bytes_t client_props, const char *name, char *out, size_t n)
{
    amqp_bytes_t v;
    out[0] = '\0';
    if (ftable_get_str(client_props, name, &v) != 1) return;
    size_t k = v.len < n - 1 ? v.len : n - 1;
    for (size_t i = 0; i < k; i++) out[i] = v.p[i] >= 0x20 && v.p[i] < 0x7f ? (char)v.p[i] : '?';
    out[k] = '\0';
}

int amqp_handshake_start_ok(amqp_conn_t *c, const amqp_connection_start_ok_t *so)
{
    read_caps(c, so->client_properties);
    read_prop(so->client_properties, "product", c->client_product, sizeof c->client_product);
    read_prop(so->client_properties, "version", c->client_version, sizeof c->client_version);
    read_prop(so->client_properties, "connection_name", c->conn_name, sizeof c->conn_name);
    amqp_bytes_t user = {NULL, 0}, pass = {NULL, 0};
    if (amqp_bytes_eq(so->mechanism, "PLAIN")) {
        /* authzid NUL authcid NUL password */
        const uint8_t *r = so->response.p, *e = r + so->response.len;
        const uint8_t *z1 = r ? memchr(r, 0, so->response.len) : NULL;
        const uint8_t *z2 = z1 ? memchr(z1 + 1, 0, (size_t)(e - z1 - 1)) : NULL;
        if (z2) {
            user = (amqp_bytes_t){z1 + 1, (uint32_t)(z2 - z1 - 1)};
            pass = (amqp_bytes_t){z2 + 1, (uint32_t)(e - z2 - 1)};
        }
    } else if (amqp_bytes_eq(so->mechanism, "AMQPLAIN")) {
        /* A field table without its length prefix. */
        if (ftable_validate(so->response) == 0) {
            ftable_get_str(so->response, "LOGIN", &user);
            ftable_get_str(so->response, "PASSWORD", &pass);
        }
    } else {
        amqp_conn_error(c, AMQP_ACCESS_REFUSED, AMQP_CONNECTION_START_OK,
                        "ACCESS_REFUSED - unsupported authentication mechanism '%.*s'", (int)so->mechanism.len,
                        (const char *)so->mechanism.p);
        return -1;
    }
    if (!user.p || !auth_ok(c, user, pass)) {
        LOG_W("amqp %s: login refused for user '%.*s'", c->peer, (int)(user.len > 64 ? 64 : user.len),
              user.p ? (const char *)user.p : "");
        if (c->caps & CAP_AUTH_FAILURE_CLOSE) {
            amqp_conn_error(c, AMQP_ACCESS_REFUSED, AMQP_CONNECTION_START_OK,
                            "ACCESS_REFUSED - Login was refused using authentication mechanism %.*s. For "
                            "details see the broker logfile.",
                            (int)so->mechanism.len, (const char *)so->mechanism.p);
        } else {
            amqp_conn_close(c);
        }
        return -1;
    }
    snprintf(c->user, sizeof c->user, "%.*s", (int)user.len, (const char *)user.p);
    const config_t *cfg = broker_config(c->b);
    amqp_method_t m = {.id = AMQP_CONNECTION_TUNE};
    m.m.connection_tune.channel_max = (uint16_t)cfg->amqp_channel_max;
    m.m.connection_tune.frame_max = (uint32_t)cfg->amqp_frame_max;
    m.m.connection_tune.heartbeat = (uint16_t)cfg->amqp_heartbeat_s;
    amqp_send_method(c, 0, &m);
    c->state = AC_TUNE_OK;
    return 0;
}

int amqp_handshake_tune_ok(amqp_conn_t *c, const amqp_connection_tune_ok_t *t)
{
    const config_t *cfg = broker_config(c->b);
    uint32_t fmax = t->frame_max ? t->frame_max : (uint32_t)cfg->amqp_frame_max;
    if (fmax < AMQP_FRAME_MIN_SIZE) {
        amqp_conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE_OK,
                        "NOT_ALLOWED - frame_max=%u < %u min size", fmax, AMQP_FRAME_MIN_SIZE);
        return -1;
    }
    if (fmax > (uint32_t)cfg->amqp_frame_max) {
        amqp_conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE_OK,
                        "NOT_ALLOWED - frame_max=%u > %u max size", fmax, (uint32_t)cfg->amqp_frame_max);
        return -1;
    }
    uint16_t chmax = t->channel_max ? t->channel_max : (uint16_t)cfg->amqp_channel_max;
    if (chmax > cfg->amqp_channel_max) {
        amqp_conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE_OK,
                        "NOT_ALLOWED - channel_max=%u > %d max", chmax, cfg->amqp_channel_max);
        return -1;
    }
    c->frame_max = fmax;
    c->channel_max = chmax;
    c->heartbeat_s = t->heartbeat;
    c->state = AC_OPEN;
    amqp_conn_heartbeats_start(c);
    return 0;
}

int amqp_handshake_open(amqp_conn_t *c, const amqp_connection_open_t *o)
{
    c->vh = broker_vhost(c->b, o->virtual_host);
    if (!c->vh) {
        amqp_conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
                        "NOT_ALLOWED - vhost %.*s not found", (int)o->virtual_host.len,
                        (const char *)o->virtual_host.p);
        return -1;
    }
    amqp_method_t m = {.id = AMQP_CONNECTION_OPEN_OK};
    amqp_send_method(c, 0, &m);
    c->state = AC_RUNNING;
    return 0;
}
