/*
 * AMQP over stream queues (broker/stream.h, docs/streams.md): declaring
 * them, consuming with x-stream-offset, and the methods a stream refuses;
 * also the declare check of a queue fed from a topic (x-source-topic,
 * broker/feed.h).
 * Codes and texts follow RabbitMQ 3.10.8, checked against it; where
 * RabbitMQ crashes the channel (541 INTERNAL_ERROR) Herald refuses with
 * 406 or 540 and a text, as docs/streams.md lists.
 *
 * A stream consumer is an ordinary channel consumer (channel.c creates
 * it, its prefetch and acks work as for any queue); the broker's reader
 * feeds it records from the topic partition instead of a ready list. This
 * file reads the channel's prefetch, so it includes channel_int.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "amqp/admin.h"
#include "amqp/channel_int.h"
#include "amqp/ftable.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "broker/stream.h"

#define NAME(b) (int)(b).len, (const char *)(b).p

/* Arguments a stream queue refuses, as RabbitMQ does ("of queue type"). */
static const char *const refused_args[] = {
    "x-max-length", "x-message-ttl", "x-expires", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-max-priority", "x-single-active-consumer", "x-overflow", "x-delivery-limit", "x-dead-letter-strategy",
    "x-queue-mode",
    /* Herald's queue extensions: a stream has no per-message delivery state */
    "x-retry-backoff", "x-retry-jitter", "x-message-deduplication", "x-cache-size", "x-cache-ttl",
    "x-source-topic", NULL,
};

/* Arguments whose difference makes a redeclare inequivalent. */
static const char *const equiv_args[] = {"x-max-age", "x-max-length-bytes", "x-stream-max-segment-size-bytes",
                                         NULL};


/* "the value 'V' of type 'T'" or "none", as RabbitMQ words an argument. */
static void describe(char *out, size_t cap, int present, const fvalue_t *v)
{
    if (!present) {
        snprintf(out, cap, "none");
    } else if (v->type == FV_LONGSTR) {
        snprintf(out, cap, "the value '%.*s' of type 'longstr'", (int)(v->v.str.len > 100 ? 100 : v->v.str.len),
                 (const char *)v->v.str.p);
    } else if (fvalue_is_int(v->type) || v->type == FV_BOOL || v->type == FV_TIMESTAMP) {
        snprintf(out, cap, "the value '%" PRId64 "' of type '%s'", v->v.i, fvalue_type_name(v->type));
    } else {
        snprintf(out, cap, "a value of type '%s'", fvalue_type_name(v->type));
    }
}

/* ---- declare ---- */

static void after_catalog(amqp_conn_t *c)
{
    if (c->waiting) return;
    c->wait.cb = NULL;
    if (broker_catalog_wait(c->b, &c->wait) == 0) amqp_conn_hold(c, NULL);
}

static void declare_ok(amqp_channel_t *ch, queue_t *q, int no_wait)
{
    amqp_channel_set_last_queue(ch, queue_name(q));
    if (no_wait) return;
    amqp_method_t ok = {.id = AMQP_QUEUE_DECLARE_OK};
    ok.m.queue_declare_ok.queue = queue_name(q);
    ok.m.queue_declare_ok.message_count = queue_ready_count(q); /* the messages in the stream */
    ok.m.queue_declare_ok.consumer_count = queue_consumer_count(q);
    amqp_ch_send(ch, &ok);
}

/* 406 "invalid arg '<arg>' for queue '<name>' in vhost '/'<tail>". */
static int invalid_arg(amqp_channel_t *ch, const char *arg, amqp_bytes_t name, const char *tail)
{
    amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_QUEUE_DECLARE,
                       "PRECONDITION_FAILED - invalid arg '%s' for queue '%.*s' in vhost '/'%s", arg, NAME(name), tail);
    return -1;
}

/* A redeclare of an existing queue where either side is a stream. */
static int redeclare(amqp_channel_t *ch, const amqp_queue_declare_t *a, queue_t *q, int want_stream, int has_type,
                     amqp_bytes_t type)
{
    amqp_bytes_t name = queue_name(q);
    int is_stream = (queue_flags(q) & QF_STREAM) != 0;
    if (want_stream != is_stream) {
        char got[160], cur[160];
        amqp_bytes_t cur_type = {NULL, 0};
        int cur_has = ftable_get_str(queue_args(q), "x-queue-type", &cur_type) == 1;
        if (has_type && cur_has) { /* both named a type: RabbitMQ's short form */
            snprintf(got, sizeof got, "'%.*s'", NAME(type));
            snprintf(cur, sizeof cur, "'%.*s'", NAME(cur_type));
        } else {
            fvalue_t gv = {.type = FV_LONGSTR, .v.str = type}, cv = {.type = FV_LONGSTR, .v.str = cur_type};
            describe(got, sizeof got, has_type, &gv);
            describe(cur, sizeof cur, cur_has, &cv);
        }
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_QUEUE_DECLARE,
                           "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '%.*s' in vhost '/': "
                           "received %s but current is %s",
                           NAME(name), got, cur);
        return -1;
    }
    unsigned flags = (a->durable ? QF_DURABLE : 0) | (a->exclusive ? QF_EXCLUSIVE : 0) |
                     (a->auto_delete ? QF_AUTO_DELETE : 0);
    unsigned diff = (queue_flags(q) & ~QF_STREAM) ^ flags;
    if (diff & QF_EXCLUSIVE) {
        amqp_channel_error(ch, AMQP_RESOURCE_LOCKED, AMQP_QUEUE_DECLARE,
                           "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%.*s' in vhost '/'. "
                           "It could be originally declared on another connection or the exclusive property value "
                           "does not match that of the original declaration.",
                           NAME(name));
        return -1;
    }
    if (diff & (QF_DURABLE | QF_AUTO_DELETE)) {
        unsigned bit = diff & QF_DURABLE ? QF_DURABLE : QF_AUTO_DELETE;
        int cur = (queue_flags(q) & bit) != 0;
        char what[64];
        snprintf(what, sizeof what, "%s", bit == QF_DURABLE ? "durable" : "auto_delete");
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_QUEUE_DECLARE,
                           "PRECONDITION_FAILED - inequivalent arg '%s' for queue '%.*s' in vhost '/': received "
                           "'%s' but current is '%s'",
                           what, NAME(name), cur ? "false" : "true", cur ? "true" : "false");
        return -1;
    }
    for (size_t i = 0; equiv_args[i]; i++) {
        fvalue_t gv, cv;
        int gh = ftable_get(a->arguments, equiv_args[i], &gv), chs = ftable_get(queue_args(q), equiv_args[i], &cv);
        if (gh == chs && (!gh || fvalue_equal(&gv, &cv))) continue;
        char got[160], cur[160];
        describe(got, sizeof got, gh, &gv);
        describe(cur, sizeof cur, chs, &cv);
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_QUEUE_DECLARE,
                           "PRECONDITION_FAILED - inequivalent arg '%s' for queue '%.*s' in vhost '/': received %s "
                           "but current is %s",
                           equiv_args[i], NAME(name), got, cur);
        return -1;
    }
    queue_touch(q);
    declare_ok(ch, q, a->no_wait);
    return 0;
}

/* Checks the arguments of a new stream queue. Returns 0 or raises. */
static int check_args(amqp_channel_t *ch, amqp_bytes_t name, amqp_bytes_t args)
{
    ftable_iter_t it = {args};
    amqp_bytes_t an;
    fvalue_t v;
    while (ftable_next(&it, &an, &v)) {
        char arg[64];
        snprintf(arg, sizeof arg, "%.*s", (int)(an.len > 60 ? 60 : an.len), (const char *)an.p);
        for (size_t i = 0; refused_args[i]; i++)
            if (amqp_bytes_eq(an, refused_args[i]))
                return invalid_arg(ch, arg, name, " of queue type rabbit_stream_queue");
        if (amqp_bytes_eq(an, "x-max-age")) {
            int64_t ms;
            if (v.type != FV_LONGSTR) {
                char why[64];
                snprintf(why, sizeof why, ": {unacceptable_type,%s}", fvalue_type_name(v.type));
                return invalid_arg(ch, arg, name, why);
            }
            if (stream_parse_interval(v.v.str, &ms) < 0)
                return invalid_arg(ch, arg, name, ": invalid_max_age");
        } else if (amqp_bytes_eq(an, "x-max-length-bytes") || amqp_bytes_eq(an, "x-stream-max-segment-size-bytes")) {
            char why[64];
            if (!fvalue_is_int(v.type))
                snprintf(why, sizeof why, ": \"expected integer, got %s\"", fvalue_type_name(v.type));
            else if (v.v.i < 0) snprintf(why, sizeof why, ": {value_negative,%" PRId64 "}", v.v.i);
            else continue;
            return invalid_arg(ch, arg, name, why);
        }
    }
    return 0;
}

int amqp_qargs_source_topic(broker_t *b, amqp_bytes_t name, amqp_bytes_t args, char *out, size_t outn)
{
    fvalue_t v;
    if (!ftable_get(args, "x-source-topic", &v)) return 0;
    if (v.type != FV_LONGSTR) {
        snprintf(out, outn,
                 "PRECONDITION_FAILED - invalid arg 'x-source-topic' for queue '%.*s' in vhost '/': "
                 "{unacceptable_type,%s}",
                 NAME(name), fvalue_type_name(v.type));
        return AMQP_PRECONDITION_FAILED;
    }
    if (!broker_topic_find(b, (const char *)v.v.str.p, v.v.str.len)) {
        snprintf(out, outn, "NOT_FOUND - x-source-topic of queue '%.*s': no topic '%.*s'", NAME(name), NAME(v.v.str));
        return AMQP_NOT_FOUND;
    }
    int64_t mr;
    int r = ftable_get_int(args, "x-source-max-ready", &mr);
    if (r < 0 || (r == 1 && mr <= 0)) {
        snprintf(out, outn,
                 "PRECONDITION_FAILED - invalid arg 'x-source-max-ready' for queue '%.*s' in vhost '/': "
                 "a positive integer is required",
                 NAME(name));
        return AMQP_PRECONDITION_FAILED;
    }
    return 0;
}

/* x-source-topic (feed.h) on a new classic or quorum queue: the topic must
 * exist. Returns 1 (go on with the classic path) or -1 after raising. */
static int check_source_topic(amqp_channel_t *ch, amqp_bytes_t name, amqp_bytes_t args)
{
    char err[512];
    int code = amqp_qargs_source_topic(amqp_channel_conn(ch)->b, name, args, err, sizeof err);
    if (!code) return 1;
    amqp_channel_error(ch, (uint16_t)code, AMQP_QUEUE_DECLARE, "%s", err);
    return -1;
}

int amqp_stream_declare(amqp_channel_t *ch, const amqp_queue_declare_t *a)
{
    amqp_conn_t *c = amqp_channel_conn(ch);
    amqp_bytes_t name = a->queue, type = {NULL, 0};
    int has_type = ftable_get_str(a->arguments, "x-queue-type", &type) == 1;
    int want = has_type && amqp_bytes_eq(type, "stream");
    queue_t *q = name.len ? vhost_queue_find(c->vh, name) : NULL;
    if (q && ((queue_flags(q) & QF_STREAM) || want)) return redeclare(ch, a, q, want, has_type, type);
    if (!want) return check_source_topic(ch, name, a->arguments); /* not a stream: the classic path */
    if (!name.len) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_QUEUE_DECLARE,
                           "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_stream_queue");
        return -1;
    }
    if (name.len >= 4 && !memcmp(name.p, "amq.", 4)) {
        amqp_channel_error(ch, AMQP_ACCESS_REFUSED, AMQP_QUEUE_DECLARE,
                           "ACCESS_REFUSED - queue name '%.*s' contains reserved prefix 'amq.*'", NAME(name));
        return -1;
    }
    const char *bad_prop = !a->durable ? "non-durable" : a->exclusive ? "exclusive-owner"
                           : a->auto_delete                         ? "auto-delete"
                                                                    : NULL;
    if (bad_prop) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_QUEUE_DECLARE,
                           "PRECONDITION_FAILED - invalid property '%s' for queue '%.*s' in vhost '/'", bad_prop,
                           NAME(name));
        return -1;
    }
    if (check_args(ch, name, a->arguments) < 0) return -1;
    if (broker_topic_name_valid((const char *)name.p, name.len) < 0) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_QUEUE_DECLARE,
                           "PRECONDITION_FAILED - stream queue '%.*s': a stream is a Kafka topic, and topic names are "
                           "1-249 characters of [a-zA-Z0-9._-], not '.' or '..'",
                           NAME(name));
        return -1;
    }
    topic_t *t = broker_topic_find(c->b, (const char *)name.p, name.len);
    if (t && topic_partition_count(t) != 1) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_QUEUE_DECLARE,
                           "PRECONDITION_FAILED - stream queue '%.*s': topic '%.*s' has %d partitions; a stream is a "
                           "topic with one partition",
                           NAME(name), NAME(name), topic_partition_count(t));
        return -1;
    }
    if (t && stream_queue_of_topic(c->b, t)) { /* cannot happen: the queue would exist */
        amqp_channel_error(ch, AMQP_INTERNAL_ERROR, AMQP_QUEUE_DECLARE, "INTERNAL_ERROR - topic already bound");
        return -1;
    }
    int rc = vhost_queue_create(c->vh, name, QF_DURABLE | QF_STREAM, a->arguments, NULL, &q);
    if (rc < 0) {
        amqp_channel_error(ch, AMQP_INTERNAL_ERROR, AMQP_QUEUE_DECLARE, "INTERNAL_ERROR - cannot create stream: %s",
                           herald_strerror(rc));
        return -1;
    }
    after_catalog(c);
    declare_ok(ch, q, a->no_wait);
    return 0;
}

/* ---- consume ---- */

/* Parses x-stream-offset. Returns 0, or -1 with a RabbitMQ-style reason. */
static int parse_offset(amqp_bytes_t args, stream_start_t *out, char *why, size_t cap)
{
    fvalue_t v;
    out->kind = STREAM_FROM_NEXT;
    out->value = 0;
    if (!ftable_get(args, "x-stream-offset", &v)) return 0;
    if (fvalue_is_int(v.type)) {
        out->kind = STREAM_FROM_OFFSET;
        out->value = v.v.i;
        return 0;
    }
    if (v.type == FV_TIMESTAMP) { /* seconds */
        out->kind = STREAM_FROM_TIME;
        out->value = v.v.i > INT64_MAX / 1000 ? INT64_MAX : v.v.i * 1000;
        return 0;
    }
    if (v.type == FV_LONGSTR) {
        int64_t ms;
        if (amqp_bytes_eq(v.v.str, "first")) out->kind = STREAM_FROM_FIRST;
        else if (amqp_bytes_eq(v.v.str, "last")) out->kind = STREAM_FROM_LAST;
        else if (amqp_bytes_eq(v.v.str, "next")) out->kind = STREAM_FROM_NEXT;
        else if (stream_parse_interval(v.v.str, &ms) == 0) {
            out->kind = STREAM_FROM_TIME;
            int64_t now = clock_wall_ms();
            out->value = ms > now ? 0 : now - ms;
        } else {
            snprintf(why, cap, "{invalid_stream_offset_arg,{longstr,<<\"%.*s\">>}}",
                     (int)(v.v.str.len > 64 ? 64 : v.v.str.len), (const char *)v.v.str.p);
            return -1;
        }
        return 0;
    }
    snprintf(why, cap, "{invalid_stream_offset_arg,{%s,...}}", fvalue_type_name(v.type));
    return -1;
}

int amqp_stream_consume_check(amqp_channel_t *ch, const amqp_basic_consume_t *a, queue_t *q)
{
    if (a->no_ack) {
        amqp_conn_error(ch->c, AMQP_NOT_IMPLEMENTED, AMQP_BASIC_CONSUME,
                        "NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues queue '%s' in "
                        "vhost '/'",
                        queue_name_cstr(q));
        return -1;
    }
    if (!ch->prefetch_next) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_CONSUME,
                           "PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '%s' in vhost '/''",
                           queue_name_cstr(q));
        return -1;
    }
    stream_start_t from;
    char why[128];
    if (parse_offset(a->arguments, &from, why, sizeof why) < 0) {
        amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_CONSUME,
                           "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '%s' in vhost '/': %s",
                           queue_name_cstr(q), why);
        return -1;
    }
    return 0;
}

void amqp_stream_consume_start(amqp_channel_t *ch, queue_t *q, qconsumer_t *qc, amqp_bytes_t args)
{
    (void)ch;
    stream_start_t from;
    char why[128];
    if (parse_offset(args, &from, why, sizeof why) < 0) return; /* checked by amqp_stream_consume_check */
    stream_reader_add(q, qc, from);
}

/* ---- refused methods ---- */

int amqp_stream_refuse(amqp_channel_t *ch, queue_t *q, uint32_t method)
{
    if (!(queue_flags(q) & QF_STREAM)) return 0;
    amqp_conn_error(ch->c, AMQP_NOT_IMPLEMENTED, method,
                    "NOT_IMPLEMENTED - %s not supported by stream queues queue '%s' in vhost '/'",
                    method == AMQP_BASIC_GET ? "basic.get" : "queue.purge", queue_name_cstr(q));
    return 1;
}

int amqp_stream_settle_refused(amqp_channel_t *ch, uint32_t method, qentry_t **es, size_t n)
{
    queue_t *sq = NULL;
    for (size_t i = 0; i < n && !sq; i++)
        if (stream_entry_is(es[i])) sq = es[i]->q;
    if (!sq) return 0;
    char name[256];
    snprintf(name, sizeof name, "%s", queue_name_cstr(sq)); /* the entries pin the queue until dropped */
    size_t rest = stream_drop_entries(es, n);
    queue_requeue(es, rest);
    amqp_conn_error(ch->c, AMQP_NOT_IMPLEMENTED, method,
                    "NOT_IMPLEMENTED - %s not supported by stream queues queue '%s' in vhost '/'",
                    method == AMQP_BASIC_RECOVER ? "basic.recover" : "basic.nack and basic.reject", name);
    return 1;
}
