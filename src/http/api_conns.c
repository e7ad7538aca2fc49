/*
 * The admin API's connections and channels (docs/http-api.md,
 * "Connections"): AMQP connections and channels (amqp/admin.h) and Kafka
 * connections (kafka/conn.h), as the loop sees them.
 */
#include <stdio.h>

#include "amqp/admin.h"
#include "http/router.h"
#include "kafka/conn.h"

static void add_amqp(void *ctx, const amqp_conn_info_t *i)
{
    char client[128];
    snprintf(client, sizeof client, "%s%s%s", i->product, *i->product && *i->version ? " " : "", i->version);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "name", i->peer, "protocol", "amqp", "peer",
                          i->peer, "client", client, "user", i->user, "channels", (json_int_t)i->channels,
                          "connected_at_ms", (json_int_t)i->connected_at_ms, "bytes_in", (json_int_t)i->bytes_in,
                          "bytes_out", (json_int_t)i->bytes_out);
    json_object_set_new(o, "connection_name", *i->conn_name ? json_string(i->conn_name) : json_null());
    json_array_append_new(ctx, o);
}

static void add_kafka(void *ctx, const kafka_conn_info_t *i)
{
    json_array_append_new(ctx, json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I}", "name", i->peer,
                                         "protocol", "kafka", "peer", i->peer, "client", i->client_id, "channels", 0,
                                         "connected_at_ms", (json_int_t)i->connected_at_ms, "bytes_in",
                                         (json_int_t)i->bytes_in, "bytes_out", (json_int_t)i->bytes_out, "requests",
                                         (json_int_t)i->requests));
}

static void h_connections(http_req_t *r)
{
    json_t *a = json_array();
    amqp_admin_conns(add_amqp, a);
    kafka_conn_foreach(add_kafka, a);
    http_reply_json(r, 200, a);
}

static void add_channel(void *ctx, const amqp_channel_info_t *i)
{
    json_array_append_new(ctx, json_pack("{s:s, s:i, s:I, s:I, s:I, s:b}", "connection", i->conn_peer, "number",
                                         (int)i->number, "consumers", (json_int_t)i->consumers, "unacked",
                                         (json_int_t)i->unacked, "prefetch", (json_int_t)i->prefetch, "confirm",
                                         i->confirm));
}

static void h_channels(http_req_t *r)
{
    json_t *a = json_array();
    amqp_admin_channels(add_channel, a);
    http_reply_json(r, 200, a);
}

const http_route_t api_conn_routes[] = {
    {"GET", "/api/connections", h_connections},
    {"GET", "/api/channels", h_channels},
    {NULL, NULL, NULL},
};
