/* GET /api/overview (docs/http-api.md, "Overview"). */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "amqp/conn.h"
#include "base/clock.h"
#include "broker/alarm.h"
#include "broker/group.h"
#include "broker/vhost.h"
#include "http/router.h"
#include "http/stats.h"
#include "kafka/conn.h"

/* Resident set size from /proc/self/statm, 0 if unreadable. */
static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, res = 0;
    int n = fscanf(f, "%llu %llu", &size, &res);
    fclose(f);
    return n == 2 ? res * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0) return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static void get_overview(http_req_t *r)
{
    broker_t *b = http_req_broker(r);
    http_stats_t *st = http_stats(r);
    int ntopics = 0, nparts = 0, ngroups = 0, nqueues = 0, nex = 0;
    for (topic_t *t = broker_topic_first(b); t; t = topic_next(t)) {
        ntopics++;
        nparts += topic_partition_count(t);
    }
    int64_t lag = 0;
    for (group_t *g = group_first(broker_groups(b)); g; g = group_next(g)) {
        ngroups++;
        lag += http_stats_group_lag(b, group_id(g));
    }
    uint64_t ready = 0, unacked = 0, delayed = 0;
    vhost_t *v = broker_vhost(b, (amqp_bytes_t){(const uint8_t *)"/", 1});
    if (v) {
        for (queue_t *q = vhost_queue_first(v); q; q = vhost_queue_next(v, q)) {
            nqueues++;
            ready += queue_ready_count(q);
            unacked += queue_unacked_count(q);
            delayed += queue_delayed_count(q);
        }
        for (exchange_t *e = xregistry_first(vhost_exchanges(v)); e; e = exchange_next(e)) nex++;
    }
    overview_rates_t rt;
    http_stats_overview_rates(st, &rt);
    http_disk_t disk;
    http_stats_disk(st, &disk);
    const char *ah;
    int ap;
    broker_kafka_advertised(b, &ah, &ap);
    char kafka[300];
    snprintf(kafka, sizeof kafka, "%s:%d", ah, ap);
    unsigned alarms = alarm_active(broker_alarm(b));
    int64_t now = clock_wall_ms();
    json_t *j = json_object();
    json_object_set_new(j, "version", json_string(HERALD_VERSION));
    json_object_set_new(j, "node_id", json_integer(broker_node_id(b)));
    json_object_set_new(j, "cluster_id", json_string(broker_cluster_id(b)));
    json_object_set_new(j, "uptime_ms", json_integer(now - http_stats_started_ms(st)));
    json_object_set_new(j, "now_ms", json_integer(now));
    json_object_set_new(j, "kafka_advertised", json_string(kafka));
    json_object_set_new(j, "connections",
                        json_pack("{s:i, s:i}", "kafka", kafka_conn_count(), "amqp", amqp_conn_count()));
    json_object_set_new(j, "channels", json_integer(amqp_channel_count()));
    json_object_set_new(j, "topics", json_integer(ntopics));
    json_object_set_new(j, "partitions", json_integer(nparts));
    json_object_set_new(j, "groups", json_integer(ngroups));
    json_object_set_new(j, "queues", json_integer(nqueues));
    json_object_set_new(j, "exchanges", json_integer(nex));
    json_object_set_new(j, "messages", json_pack("{s:I, s:I, s:I}", "ready", (json_int_t)ready, "unacked",
                                                 (json_int_t)unacked, "delayed", (json_int_t)delayed));
    json_object_set_new(j, "consumer_lag", json_integer(lag));
    json_object_set_new(j, "rates",
                        json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "kafka_in", rt.kafka_in, "kafka_in_bytes",
                                  rt.kafka_in_bytes, "kafka_out", rt.kafka_out, "kafka_out_bytes", rt.kafka_out_bytes,
                                  "amqp_publish", rt.amqp_publish, "amqp_deliver", rt.amqp_deliver, "amqp_ack",
                                  rt.amqp_ack));
    json_t *dj = json_pack("{s:s}", "data_dir", broker_config(b)->data_dir);
    if (disk.valid) {
        json_object_set_new(dj, "used_bytes", json_integer((json_int_t)disk.used_bytes));
        json_object_set_new(dj, "free_bytes", json_integer((json_int_t)disk.free_bytes));
        json_object_set_new(dj, "total_bytes", json_integer((json_int_t)disk.total_bytes));
    }
    json_object_set_new(j, "disk", dj);
    json_object_set_new(j, "process",
                        json_pack("{s:I, s:f}", "rss_bytes", (json_int_t)rss_bytes(), "cpu_seconds", cpu_seconds()));
    json_object_set_new(j, "alarms", json_pack("{s:b, s:b}", "memory", (alarms & ALARM_MEMORY) != 0, "disk",
                                               (alarms & ALARM_DISK) != 0));
    json_object_set_new(j, "history", http_stats_overview_history(st));
    http_reply_json(r, 200, j);
}

const http_route_t api_overview_routes[] = {
    {"GET", "/api/overview", get_overview},
    {NULL, NULL, NULL},
};
