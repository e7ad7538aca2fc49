/*
 * GET /metrics: the Prometheus text exposition format (version 0.0.4) of
 * everything the broker knows, read on the event loop in one pass, so the
 * figures are consistent with each other and with the admin API. The
 * metric list is in docs/http-api.md ("Metrics"); the alert rules that use
 * them in docs/alerts.yml.
 *
 * Format: every family is "# HELP", "# TYPE", then its samples, all
 * contiguous; label values are escaped (\\, \", \n) and made valid UTF-8
 * (an invalid byte becomes U+FFFD), since queue names and group ids are
 * whatever the clients chose. Counters end in _total, units are base units
 * (seconds, bytes). Histograms share the fixed buckets of base/histo.h.
 *
 * The only figures not read straight from memory are the disk usage of the
 * data directory, which the HTTP sampler (stats.c) measures on the worker
 * pool every 10 s (shared with /api/overview, so both show the same), and
 * the process's CPU time and resident set (a few system calls).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_methods.h"
#include "amqp/conn.h"
#include "amqp/ftable.h"
#include "base/buf.h"
#include "base/histo.h"
#include "base/mem.h"
#include "broker/alarm.h"
#include "broker/broker.h"
#include "broker/exchange.h"
#include "broker/group.h"
#include "broker/queue.h"
#include "broker/sysinfo.h"
#include "broker/vhost.h"
#include "http/router.h"
#include "http/stats.h"
#include "kafka/conn.h"
#include "kafka/kafka_msgs.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define DLX_MAX_DEPTH 8 /* exchange-to-exchange hops followed to find dead-letter queues */

/* ---- writing the format ---- */

static void put_s(wbuf_t *w, const char *s) { wbuf_put(w, s, strlen(s)); }

static void put_f(wbuf_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_f(wbuf_t *w, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    char buf[128];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n > 0 && (size_t)n < sizeof buf) {
        wbuf_put(w, buf, (size_t)n);
    } else if (n > 0) { /* longer than the usual line: format in place */
        wbuf_grow(w, (size_t)n + 1);
        vsnprintf((char *)w->p + w->len, (size_t)n + 1, fmt, again);
        w->len += (size_t)n;
    }
    va_end(again);
    va_end(ap);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* A label value: escaped, valid UTF-8, without the quotes. */
static void put_label_value(wbuf_t *w, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c == '\\') put_s(w, "\\\\"), i++;
        else if (c == '"') put_s(w, "\\\""), i++;
        else if (c == '\n') put_s(w, "\\n"), i++;
        else {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                put_s(w, "\xef\xbf\xbd"); /* U+FFFD for a byte that is not UTF-8 */
                i++;
            } else {
                wbuf_put(w, p + i, l);
                i += l;
            }
        }
    }
}

static void put_label(wbuf_t *w, int first, const char *name, const void *val, size_t len)
{
    if (!first) wbuf_u8(w, ',');
    put_s(w, name);
    put_s(w, "=\"");
    put_label_value(w, val, len);
    wbuf_u8(w, '"');
}

static void put_label_s(wbuf_t *w, int first, const char *name, const char *val)
{
    put_label(w, first, name, val, strlen(val));
}

static void family(wbuf_t *w, const char *name, const char *type, const char *help)
{
    put_f(w, "# HELP %s ", name);
    put_s(w, help);
    put_f(w, "\n# TYPE %s %s\n", name, type);
}

/* "name 12\n" or, with labels already written after name by the caller,
 * the value part only: these two write " value\n". */
static void val_u(wbuf_t *w, uint64_t v) { put_f(w, " %" PRIu64 "\n", v); }
static void val_i(wbuf_t *w, int64_t v) { put_f(w, " %" PRId64 "\n", v); }
static void val_d(wbuf_t *w, double v) { put_f(w, " %.9g\n", v); }

/* A sample without labels. */
static void sample_i(wbuf_t *w, const char *name, int64_t v)
{
    put_s(w, name);
    val_i(w, v);
}

static void gauge_i(wbuf_t *w, const char *name, const char *help, int64_t v)
{
    family(w, name, "gauge", help);
    sample_i(w, name, v);
}

/* The samples of one histogram: name_bucket{labels,le=...}, name_sum,
 * name_count. labels: already formatted ("a=\"b\"") or "". */
static void histo_samples(wbuf_t *w, const char *name, const char *labels, const histo_t *h)
{
    const char *sep = labels[0] ? "," : "";
    uint64_t cum = 0;
    for (int i = 0; i < HISTO_NBOUNDS; i++) {
        cum += h->buckets[i];
        put_f(w, "%s_bucket{", name);
        put_s(w, labels);
        put_f(w, "%sle=\"%s\"}", sep, histo_bounds_text[i]);
        val_u(w, cum);
    }
    put_f(w, "%s_bucket{", name);
    put_s(w, labels);
    put_f(w, "%sle=\"+Inf\"}", sep);
    val_u(w, h->count);
    put_f(w, "%s_sum%s%s%s", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "");
    put_f(w, " %.9f\n", (double)h->sum_ns / 1e9);
    put_f(w, "%s_count%s%s%s", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "");
    val_u(w, h->count);
}

/* ---- process, disk, alarms, connections ---- */

static void write_process(wbuf_t *w, broker_t *b, const http_disk_t *disk)
{
    family(w, "herald_build_info", "gauge", "Herald's version: always 1, the version is the label.");
    put_s(w, "herald_build_info{");
    put_label_s(w, 1, "version", HERALD_VERSION);
    put_s(w, "}");
    val_i(w, 1);

    sysinfo_proc_t p;
    sysinfo_proc_sample(&p);
    family(w, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    put_s(w, "process_cpu_seconds_total");
    val_d(w, p.cpu_seconds);
    if (p.rss_bytes >= 0) gauge_i(w, "process_resident_memory_bytes", "Resident memory size in bytes.", p.rss_bytes);
    if (p.start_time_s > 0) {
        family(w, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
        put_f(w, "process_start_time_seconds %.2f\n", p.start_time_s);
    }
    if (p.open_fds >= 0) gauge_i(w, "process_open_fds", "Number of open file descriptors.", p.open_fds);
    if (p.max_fds >= 0) gauge_i(w, "process_max_fds", "Maximum number of open file descriptors.", p.max_fds);

    if (disk->valid) { /* the sampler's walk of the data directory (every 10 s) has come back */
        gauge_i(w, "herald_disk_used_bytes", "Bytes allocated to the files of the data directory.",
                (int64_t)disk->used_bytes);
        gauge_i(w, "herald_disk_free_bytes",
                "Bytes available to the broker on the file system of the data directory.",
                (int64_t)disk->free_bytes);
        gauge_i(w, "herald_disk_size_bytes", "Size in bytes of the file system of the data directory.",
                (int64_t)disk->total_bytes);
    }

    alarm_t *a = broker_alarm(b);
    unsigned on = alarm_active(a);
    alarm_limits_t lim = alarm_limits(a);
    family(w, "herald_alarm", "gauge",
           "1 while a resource alarm is on (AMQP publishers are blocked): memory over its high watermark, "
           "or free disk under its limit.");
    put_s(w, "herald_alarm{resource=\"memory\"}");
    val_i(w, (on & ALARM_MEMORY) ? 1 : 0);
    put_s(w, "herald_alarm{resource=\"disk\"}");
    val_i(w, (on & ALARM_DISK) ? 1 : 0);
    gauge_i(w, "herald_memory_limit_bytes", "The memory alarm's limit on the resident set, in bytes.",
            lim.memory_limit);
    gauge_i(w, "herald_disk_free_limit_bytes", "The disk alarm goes on when free disk space falls below this, in bytes.",
            lim.disk_limit);

    family(w, "herald_connections", "gauge", "Open client connections by protocol.");
    put_s(w, "herald_connections{protocol=\"kafka\"}");
    val_i(w, kafka_conn_count());
    put_s(w, "herald_connections{protocol=\"amqp\"}");
    val_i(w, amqp_conn_count());
    gauge_i(w, "herald_amqp_channels", "Open AMQP channels over all connections.", amqp_channel_count());
}

/* ---- latency histograms ---- */

static void write_histograms(wbuf_t *w, broker_t *b)
{
    char labels[96];
    const histo_map_t *m = broker_kafka_histos(b);
    family(w, "herald_kafka_request_duration_seconds", "histogram",
           "Kafka requests by API, from arrival to the complete response (a produce waits for durability).");
    for (size_t i = 0; i < m->n; i++) {
        const kafka_api_info_t *api = kafka_api_lookup((int16_t)m->e[i].key);
        if (api) snprintf(labels, sizeof labels, "api=\"%s\"", api->name);
        else snprintf(labels, sizeof labels, "api=\"unknown_%d\"", (int16_t)m->e[i].key);
        histo_samples(w, "herald_kafka_request_duration_seconds", labels, &m->e[i].h);
    }
    m = broker_amqp_histos(b);
    family(w, "herald_amqp_method_duration_seconds", "histogram",
           "AMQP methods received, by class.method, from the frame parsed to the handler's return.");
    for (size_t i = 0; i < m->n; i++) {
        const char *name = amqp_method_name(m->e[i].key);
        if (name) snprintf(labels, sizeof labels, "method=\"%s\"", name);
        else snprintf(labels, sizeof labels, "method=\"%u.%u\"", m->e[i].key >> 16, m->e[i].key & 0xffff);
        histo_samples(w, "herald_amqp_method_duration_seconds", labels, &m->e[i].h);
    }
    family(w, "herald_fsync_duration_seconds", "histogram",
           "Log syncs (fdatasync of a log's files on the worker pool), one per log per group-commit round.");
    histo_samples(w, "herald_fsync_duration_seconds", "", broker_fsync_histo(b));
}

/* ---- topics and partitions ---- */

typedef struct {
    const char *name, *type, *help;
    int64_t (*get)(const partition_t *p);
} part_family_t;

static int64_t p_msgs_in(const partition_t *p) { return (int64_t)partition_counters(p)->msgs_in; }
static int64_t p_bytes_in(const partition_t *p) { return (int64_t)partition_counters(p)->bytes_in; }
static int64_t p_msgs_out(const partition_t *p) { return (int64_t)partition_counters(p)->msgs_out; }
static int64_t p_bytes_out(const partition_t *p) { return (int64_t)partition_counters(p)->bytes_out; }
static int64_t p_segments(const partition_t *p) { return partition_segment_count(p); }

static const part_family_t part_families[] = {
    {"herald_partition_messages_in_total", "counter", "Records appended to the partition since the broker started.",
     p_msgs_in},
    {"herald_partition_bytes_in_total", "counter", "Record batch bytes appended since the broker started.", p_bytes_in},
    {"herald_partition_messages_out_total", "counter", "Records read by consumers since the broker started.",
     p_msgs_out},
    {"herald_partition_bytes_out_total", "counter", "Record batch bytes read by consumers since the broker started.",
     p_bytes_out},
    {"herald_partition_log_start_offset", "gauge", "First offset still in the partition's log.",
     partition_start_offset},
    {"herald_partition_log_end_offset", "gauge", "Offset the next record appended will get.", partition_end_offset},
    {"herald_partition_high_watermark", "gauge", "Offsets below this are visible to consumers (durable).",
     partition_high_watermark},
    {"herald_partition_size_bytes", "gauge", "Bytes of the partition's log segments.", partition_size_bytes},
    {"herald_partition_segments", "gauge", "Segment files of the partition's log.", p_segments},
};

static void part_labels(wbuf_t *w, const char *name, partition_t *p)
{
    put_s(w, name);
    wbuf_u8(w, '{');
    put_label_s(w, 1, "topic", topic_name(partition_topic(p)));
    put_f(w, ",partition=\"%d\"}", partition_index(p));
}

static void write_partitions(wbuf_t *w, broker_t *b)
{
    for (size_t f = 0; f < sizeof part_families / sizeof part_families[0]; f++) {
        const part_family_t *pf = &part_families[f];
        family(w, pf->name, pf->type, pf->help);
        for (topic_t *t = broker_topic_first(b); t; t = topic_next(t))
            for (int32_t i = 0; i < topic_partition_count(t); i++) {
                partition_t *p = topic_partition(t, i);
                if (!p) continue; /* its log could not be opened (yet) */
                part_labels(w, pf->name, p);
                val_i(w, pf->get(p));
            }
    }
}

/* ---- consumer groups ---- */

typedef struct {
    broker_t *b;
    wbuf_t *w;
    const char *gid;
    int what;    /* 0: per-partition lag, 1: committed offset, 2: sum of the lags into total */
    int64_t total;
} group_walk_t;

/* High watermark − committed, at least 0; -1 when the partition is gone. */
static int64_t lag_of(broker_t *b, const char *topic, int32_t part, int64_t committed)
{
    topic_t *t = broker_topic_find(b, topic, strlen(topic));
    partition_t *p = t ? topic_partition(t, part) : NULL;
    if (!p) return -1;
    int64_t lag = partition_high_watermark(p) - committed;
    return lag > 0 ? lag : 0;
}

static void group_visit(void *ctx, const char *topic, int32_t partition, int64_t offset, int32_t leader_epoch,
                        group_str_t meta)
{
    (void)leader_epoch;
    (void)meta;
    group_walk_t *gw = ctx;
    int64_t lag = lag_of(gw->b, topic, partition, offset);
    if (gw->what == 2) {
        if (lag > 0) gw->total += lag;
        return;
    }
    if (gw->what == 0 && lag < 0) return;
    put_s(gw->w, gw->what == 0 ? "herald_group_partition_lag{" : "herald_group_committed_offset{");
    put_label_s(gw->w, 1, "group", gw->gid);
    put_label_s(gw->w, 0, "topic", topic);
    put_f(gw->w, ",partition=\"%d\"}", partition);
    val_i(gw->w, gw->what == 0 ? lag : offset);
}

static void group_label(wbuf_t *w, const char *name, const group_t *g)
{
    put_s(w, name);
    wbuf_u8(w, '{');
    put_label_s(w, 1, "group", group_id(g));
}

static void write_groups(wbuf_t *w, broker_t *b)
{
    group_coord_t *c = broker_groups(b);
    static const char *const names[] = {"herald_group_partition_lag", "herald_group_committed_offset",
                                        "herald_group_lag"};
    static const char *const helps[] = {
        "Consumer lag of a group on one partition: high watermark minus committed offset (at least 0).",
        "The group's committed offset on the partition.",
        "Consumer lag of a group over all partitions it committed offsets on.",
    };
    for (int what = 0; what < 3; what++) {
        family(w, names[what], "gauge", helps[what]);
        for (group_t *g = group_first(c); g; g = group_next(g)) {
            group_walk_t gw = {b, w, group_id(g), what, 0};
            group_str_t gid = {gw.gid, (int32_t)strlen(gw.gid)};
            group_offsets_each(c, gid, group_visit, &gw);
            if (what == 2) {
                group_label(w, names[what], g);
                put_s(w, "}");
                val_i(w, gw.total);
            }
        }
    }
    family(w, "herald_group_members", "gauge", "Members of the consumer group.");
    for (group_t *g = group_first(c); g; g = group_next(g)) {
        group_label(w, "herald_group_members", g);
        put_s(w, "}");
        val_i(w, group_member_count(g));
    }
    static const group_state_t states[] = {GROUP_EMPTY, GROUP_PREPARING, GROUP_COMPLETING, GROUP_STABLE, GROUP_DEAD};
    family(w, "herald_group_state", "gauge", "1 for the state the consumer group is in, 0 for the others.");
    for (group_t *g = group_first(c); g; g = group_next(g))
        for (size_t s = 0; s < sizeof states / sizeof states[0]; s++) {
            group_label(w, "herald_group_state", g);
            put_label_s(w, 0, "state", group_state_name(states[s]));
            put_s(w, "}");
            val_i(w, group_state(g) == states[s]);
        }
}

/* ---- queues ---- */

typedef struct {
    const queue_t *q;
    size_t i; /* its index in queue_set_t.q */
} queue_ref_t;

typedef struct {
    queue_t **q;        /* every queue of the vhost (hidden delay queues are not in it) */
    size_t n;
    uint8_t *dlq;       /* per q[i]: 1 if dead letters of some queue can reach it */
    queue_ref_t *by_ptr; /* the same queues sorted by address, to find a binding's queue */
} queue_set_t;

static int ref_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const queue_ref_t *)a)->q, y = (uintptr_t)((const queue_ref_t *)b)->q;
    return x < y ? -1 : x > y;
}

/* The index of q in s->q, s->n if it is not there. */
static size_t queue_index(const queue_set_t *s, const queue_t *q)
{
    queue_ref_t key = {q, 0};
    const queue_ref_t *r = q ? bsearch(&key, s->by_ptr, s->n, sizeof key, ref_cmp) : NULL;
    return r ? r->i : s->n;
}

/* Marks every queue the exchange routes to, following exchange-to-
 * exchange bindings (bounded: bindings may form cycles). */
static void mark_reachable(queue_set_t *s, exchange_t *ex, int depth)
{
    if (depth > DLX_MAX_DEPTH) return;
    for (xbinding_t *bd = exchange_bindings(ex); bd; bd = xbinding_next(bd)) {
        xdest_t d = xbinding_dest(bd);
        if (d.kind == XDEST_EXCHANGE) {
            mark_reachable(s, d.ptr, depth + 1);
        } else {
            size_t i = queue_index(s, d.ptr);
            if (i < s->n) s->dlq[i] = 1;
        }
    }
}

/* Dead-letter queues: those bound (directly or through exchanges) to an
 * exchange some queue names in x-dead-letter-exchange, and, for the
 * default exchange, the queue named by x-dead-letter-routing-key. */
static void find_dead_letter_queues(queue_set_t *s, vhost_t *v)
{
    for (size_t i = 0; i < s->n; i++) {
        amqp_bytes_t dlx, dlrk;
        amqp_bytes_t args = queue_args(s->q[i]);
        if (ftable_get_str(args, "x-dead-letter-exchange", &dlx) != 1) continue;
        if (dlx.len == 0) {
            if (ftable_get_str(args, "x-dead-letter-routing-key", &dlrk) != 1) continue;
            size_t j = queue_index(s, vhost_queue_find(v, dlrk));
            if (j < s->n) s->dlq[j] = 1;
            continue;
        }
        exchange_t *ex = xregistry_find(vhost_exchanges(v), dlx);
        if (ex) mark_reachable(s, ex, 0);
    }
}

enum { QV_READY, QV_UNACKED, QV_DELAYED, QV_READY_BYTES, QV_CONSUMERS, QV_DLQ, QV_COUNTER };

typedef struct {
    const char *name, *type, *help;
    int what;          /* QV_* */
    size_t counter;    /* QV_COUNTER: offset in queue_counters_t */
} queue_family_t;

#define QC(field) QV_COUNTER, offsetof(queue_counters_t, field)

static const queue_family_t queue_families[] = {
    {"herald_queue_messages_ready", "gauge", "Messages ready for delivery.", QV_READY, 0},
    {"herald_queue_messages_unacked", "gauge", "Messages delivered and not yet acknowledged.", QV_UNACKED, 0},
    {"herald_queue_messages_delayed", "gauge", "Messages waiting for a retry delay or x-delay.", QV_DELAYED, 0},
    {"herald_queue_messages_ready_bytes", "gauge", "Body bytes of the ready messages.", QV_READY_BYTES, 0},
    {"herald_queue_consumers", "gauge", "Consumers attached to the queue.", QV_CONSUMERS, 0},
    {"herald_queue_dead_letter_target", "gauge",
     "1 if the queue receives dead letters: it is reached through some queue's x-dead-letter-exchange.", QV_DLQ, 0},
    {"herald_queue_messages_published_total", "counter", "Messages enqueued (not duplicates, not refused).",
     QC(published)},
    {"herald_queue_messages_delivered_total", "counter", "Messages handed to consumers and basic.get, redeliveries "
     "included.", QC(delivered)},
    {"herald_queue_messages_redelivered_total", "counter", "Deliveries of messages handed out before.",
     QC(redelivered)},
    {"herald_queue_messages_acked_total", "counter", "Messages acknowledged (no-ack deliveries included).", QC(acked)},
    {"herald_queue_messages_returned_total", "counter",
     "Messages given back unacknowledged: nack/reject with requeue, recover, consumer gone.", QC(returned)},
    {"herald_queue_messages_dead_lettered_total", "counter", "Messages sent to the dead-letter exchange (any reason).",
     QC(dead_lettered)},
    {"herald_queue_messages_expired_total", "counter", "Messages whose TTL expired (dead-lettered or dropped).",
     QC(expired)},
    {"herald_queue_messages_dropped_total", "counter",
     "Messages discarded: rejected, expired or overflowed without a dead-letter exchange, or purged.", QC(dropped)},
    {"herald_queue_messages_refused_total", "counter", "Publishes refused by x-overflow reject-publish(-dlx).",
     QC(refused)},
    {"herald_queue_messages_duplicate_total", "counter", "Publishes dropped as duplicates (x-message-deduplication).",
     QC(duplicates)},
};

static uint64_t queue_value(const queue_set_t *s, size_t i, const queue_family_t *f)
{
    const queue_t *q = s->q[i];
    switch (f->what) {
    case QV_READY: return queue_ready_count(q);
    case QV_UNACKED: return queue_unacked_count(q);
    case QV_DELAYED: return queue_delayed_count(q);
    case QV_READY_BYTES: return queue_ready_bytes(q);
    case QV_CONSUMERS: return queue_consumer_count(q);
    case QV_DLQ: return s->dlq[i];
    default: {
        uint64_t v;
        memcpy(&v, (const uint8_t *)queue_counters(q) + f->counter, sizeof v);
        return v;
    }
    }
}

/* The hidden delay queues of x-delayed-message exchanges are not queues
 * anyone declared: their messages are shown per exchange. */
static void write_delayed_exchanges(wbuf_t *w, vhost_t *v)
{
    family(w, "herald_exchange_messages_delayed", "gauge",
           "Messages an x-delayed-message exchange holds until their x-delay passes.");
    for (exchange_t *ex = xregistry_first(vhost_exchanges(v)); ex; ex = exchange_next(ex)) {
        const queue_t *dq = (exchange_flags(ex) & EXF_DELAYED) ? exchange_ext(ex) : NULL;
        if (!dq) continue;
        amqp_bytes_t name = exchange_name(ex);
        put_s(w, "herald_exchange_messages_delayed{");
        put_label(w, 1, "exchange", name.p, name.len);
        wbuf_u8(w, '}');
        val_u(w, (uint64_t)queue_ready_count(dq) + queue_delayed_count(dq)); /* ready: due, being forwarded */
    }
}

static void write_queues(wbuf_t *w, broker_t *b)
{
    vhost_t *v = broker_vhost(b, amqp_cstr("/"));
    queue_set_t s = {0};
    size_t cap = 0;
    for (queue_t *q = v ? vhost_queue_first(v) : NULL; q; q = vhost_queue_next(v, q)) {
        if (s.n == cap) {
            cap = cap ? cap * 2 : 64;
            s.q = xrealloc(s.q, cap * sizeof *s.q);
        }
        s.q[s.n++] = q;
    }
    s.dlq = xcalloc(s.n ? s.n : 1, 1);
    s.by_ptr = xmalloc((s.n ? s.n : 1) * sizeof *s.by_ptr);
    for (size_t i = 0; i < s.n; i++) s.by_ptr[i] = (queue_ref_t){s.q[i], i};
    qsort(s.by_ptr, s.n, sizeof *s.by_ptr, ref_cmp);
    if (v) find_dead_letter_queues(&s, v);
    for (size_t f = 0; f < sizeof queue_families / sizeof queue_families[0]; f++) {
        const queue_family_t *qf = &queue_families[f];
        family(w, qf->name, qf->type, qf->help);
        for (size_t i = 0; i < s.n; i++) {
            amqp_bytes_t name = queue_name(s.q[i]);
            put_s(w, qf->name);
            wbuf_u8(w, '{');
            put_label(w, 1, "queue", name.p, name.len);
            wbuf_u8(w, '}');
            val_u(w, queue_value(&s, i, qf));
        }
    }
    free(s.q);
    free(s.dlq);
    free(s.by_ptr);
    if (v) write_delayed_exchanges(w, v);
}

/* ---- the handler ---- */

static void get_metrics(http_req_t *r)
{
    broker_t *b = http_req_broker(r);
    http_disk_t disk;
    http_stats_disk(http_stats(r), &disk);
    wbuf_t w;
    wbuf_init(&w);
    write_process(&w, b, &disk);
    write_histograms(&w, b);
    write_partitions(&w, b);
    write_groups(&w, b);
    write_queues(&w, b);
    size_t len;
    char *page = (char *)wbuf_release(&w, &len);
    http_reply_owned(r, 200, METRICS_CONTENT_TYPE, page, len);
}

const http_route_t metrics_routes[] = {
    {"GET", "/metrics", get_metrics},
    {NULL, NULL, NULL},
};
