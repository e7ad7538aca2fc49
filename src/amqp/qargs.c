/*
 * Queue arguments at queue.declare: validation with RabbitMQ's codes and
 * texts (checked against RabbitMQ 3.10.8), and the equivalence check of a
 * redeclare. What each argument does is in docs/queues.md; the broker's
 * queue.c parses the values once they passed here.
 */
#include <stdio.h>
#include <string.h>

#include "amqp/ftable.h"
#include "amqp/internal.h"
#include "amqp/admin.h"
#include "amqp/qargs.h"

#define NAME(b) (int)(b).len, (const char *)(b).p

typedef enum {
    QA_HINT,        /* accepted, no meaning on one node */
    QA_NONNEG,      /* integer >= 0 */
    QA_POSITIVE,    /* integer > 0 */
    QA_PRIORITY,    /* integer 0..255 */
    QA_PERCENT,     /* integer 0..100 */
    QA_STR,         /* longstr */
    QA_DLRK,        /* longstr, only with x-dead-letter-exchange */
    QA_BOOL,
    QA_OVERFLOW,    /* drop-head | reject-publish | reject-publish-dlx */
    QA_QUEUE_TYPE,  /* classic | quorum */
    QA_BACKOFF,     /* "1s,5s,30s" */
    QA_DL_STRATEGY, /* at-most-once | at-least-once */
    QA_LIMIT,       /* x-delivery-limit: an integer (< 0: none) or a numeric string */
    QA_UNSUPPORTED,
} qa_kind_t;

typedef struct {
    const char *name;
    qa_kind_t kind;
    int equiv; /* compared on redeclare (RabbitMQ's list) */
} qa_t;

static const qa_t g_args[] = {
    {"x-message-ttl", QA_NONNEG, 1},
    {"x-expires", QA_POSITIVE, 1},
    {"x-max-length", QA_NONNEG, 1},
    {"x-max-length-bytes", QA_NONNEG, 1},
    {"x-overflow", QA_OVERFLOW, 1},
    {"x-dead-letter-exchange", QA_STR, 1},
    {"x-dead-letter-routing-key", QA_DLRK, 1},
    {"x-max-priority", QA_PRIORITY, 1},
    {"x-single-active-consumer", QA_BOOL, 1},
    {"x-delivery-limit", QA_LIMIT, 1},
    {"x-consumer-timeout", QA_POSITIVE, 0},
    {"x-queue-type", QA_QUEUE_TYPE, 1},
    {"x-dead-letter-strategy", QA_DL_STRATEGY, 0},
    {"x-retry-backoff", QA_BACKOFF, 1},
    {"x-retry-jitter", QA_PERCENT, 1},
    {"x-message-deduplication", QA_BOOL, 1},
    {"x-cache-size", QA_POSITIVE, 1},
    {"x-cache-ttl", QA_POSITIVE, 1},
    {"x-queue-mode", QA_HINT, 0},           /* lazy/default: every Herald queue is on disk already */
    {"x-queue-version", QA_HINT, 0},        /* RabbitMQ's on-disk format */
    {"x-queue-master-locator", QA_HINT, 0}, /* cluster placement: one node */
    {"x-queue-leader-locator", QA_HINT, 0},
    {"x-initial-cluster-size", QA_HINT, 0},
    {"x-quorum-initial-group-size", QA_HINT, 0},
    {"x-max-age", QA_UNSUPPORTED, 0},
    {"x-stream-max-segment-size-bytes", QA_UNSUPPORTED, 0},
    {NULL, QA_HINT, 0},
};


static int is_int(const fvalue_t *v) { return fvalue_is_int(v->type); }

/* Checks one value; on failure writes RabbitMQ's error term into err. */
static int check_value(const qa_t *a, const fvalue_t *v, amqp_bytes_t args, char *err, size_t n)
{
    switch (a->kind) {
    case QA_HINT:
        return 0;
    case QA_NONNEG:
    case QA_POSITIVE:
    case QA_PRIORITY:
    case QA_PERCENT:
        if (!is_int(v)) {
            snprintf(err, n, "\"expected integer, got %s\"", fvalue_type_name(v->type));
            return -1;
        }
        if (v->v.i < 0) {
            snprintf(err, n, "{value_negative,%lld}", (long long)v->v.i);
            return -1;
        }
        if (a->kind == QA_POSITIVE && v->v.i == 0) {
            snprintf(err, n, "{value_zero,0}");
            return -1;
        }
        if ((a->kind == QA_PRIORITY && v->v.i > 255) || (a->kind == QA_PERCENT && v->v.i > 100)) {
            snprintf(err, n, "{max_value_exceeded,%lld}", (long long)v->v.i);
            return -1;
        }
        return 0;
    case QA_BOOL:
        if (v->type != FV_BOOL) break;
        return 0;
    case QA_STR:
    case QA_DLRK:
    case QA_OVERFLOW:
    case QA_QUEUE_TYPE:
    case QA_BACKOFF:
    case QA_DL_STRATEGY:
        if (v->type != FV_LONGSTR) break;
        if (a->kind == QA_DLRK) {
            fvalue_t dlx;
            if (ftable_get(args, "x-dead-letter-exchange", &dlx) != 1) {
                snprintf(err, n, "routing_key_but_no_dlx_defined");
                return -1;
            }
        } else if (a->kind == QA_OVERFLOW) {
            if (!amqp_bytes_eq(v->v.str, "drop-head") && !amqp_bytes_eq(v->v.str, "reject-publish") &&
                !amqp_bytes_eq(v->v.str, "reject-publish-dlx")) {
                snprintf(err, n, "invalid_overflow");
                return -1;
            }
        } else if (a->kind == QA_DL_STRATEGY) {
            if (!amqp_bytes_eq(v->v.str, "at-most-once") && !amqp_bytes_eq(v->v.str, "at-least-once")) {
                snprintf(err, n, "{unacceptable_value,<<\"%.*s\">>}", NAME(v->v.str));
                return -1;
            }
        } else if (a->kind == QA_BACKOFF) {
            int64_t d[QUEUE_BACKOFF_MAX];
            if (queue_parse_backoff(v->v.str, d, QUEUE_BACKOFF_MAX) < 0) {
                snprintf(err, n, "{invalid_schedule,<<\"%.*s\">>}", NAME(v->v.str));
                return -1;
            }
        }
        return 0;
    case QA_LIMIT:
        if (is_int(v)) return 0;
        if (v->type == FV_LONGSTR && v->v.str.len && v->v.str.len < 12) {
            uint32_t i = v->v.str.p[0] == '-';
            while (i < v->v.str.len && v->v.str.p[i] >= '0' && v->v.str.p[i] <= '9') i++;
            if (i == v->v.str.len) return 0;
        }
        snprintf(err, n, "{unacceptable_type,%s}", fvalue_type_name(v->type));
        return -1;
    case QA_UNSUPPORTED:
        return 0;
    }
    snprintf(err, n, "{unacceptable_type,%s}", fvalue_type_name(v->type));
    return -1;
}

int amqp_qargs_validate(amqp_bytes_t qname, unsigned flags, amqp_bytes_t args, char *out, size_t outn)
{
    ftable_iter_t it = {args};
    amqp_bytes_t name;
    fvalue_t v;
    char err[160];
    int quorum = 0;
    while (ftable_next(&it, &name, &v)) {
        const qa_t *a = g_args;
        while (a->name && !amqp_bytes_eq(name, a->name)) a++;
        if (!a->name) continue; /* unknown arguments are kept and ignored, as RabbitMQ */
        if (a->kind == QA_UNSUPPORTED) {
            snprintf(out, outn,
                               "PRECONDITION_FAILED - queue argument '%.*s' is not supported by Herald yet",
                               NAME(name));
            return -1;
        }
        if (a->kind == QA_QUEUE_TYPE && v.type == FV_LONGSTR && !amqp_bytes_eq(v.v.str, "classic")) {
            if (!amqp_bytes_eq(v.v.str, "quorum")) {
                snprintf(out, outn,
                                   "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '%.*s' in vhost '/': "
                                   "\"unsupported queue type '%.*s'\"",
                                   NAME(qname), NAME(v.v.str));
                return -1;
            }
            quorum = 1;
        }
        if (!strcmp(a->name, "x-dead-letter-exchange") && v.type != FV_LONGSTR) {
            /* RabbitMQ words this one differently */
            snprintf(out, outn,
                               "PRECONDITION_FAILED - invalid type '%s' for arg 'x-dead-letter-exchange' in queue "
                               "'%.*s' in vhost '/'",
                               fvalue_type_name(v.type), NAME(qname));
            return -1;
        }
        if (check_value(a, &v, args, err, sizeof err) < 0) {
            snprintf(out, outn,
                               "PRECONDITION_FAILED - invalid arg '%.*s' for queue '%.*s' in vhost '/': %s", NAME(name),
                               NAME(qname), err);
            return -1;
        }
    }
    if (quorum) {
        /* RabbitMQ's rules for quorum queues: durable, shared, kept; no
         * priorities or classic storage modes. */
        static const char *const not_quorum[] = {"x-max-priority", "x-queue-mode", "x-queue-version", NULL};
        for (size_t i = 0; not_quorum[i]; i++) {
            fvalue_t x;
            if (ftable_get(args, not_quorum[i], &x) == 1) {
                snprintf(out, outn,
                                   "PRECONDITION_FAILED - invalid arg '%s' for queue '%.*s' in vhost '/' of queue "
                                   "type rabbit_quorum_queue",
                                   not_quorum[i], NAME(qname));
                return -1;
            }
        }
        const char *bad = !(flags & QF_DURABLE)      ? "non-durable"
                          : (flags & QF_EXCLUSIVE)   ? "exclusive-owner"
                          : (flags & QF_AUTO_DELETE) ? "auto-delete"
                                                     : NULL;
        if (bad) {
            snprintf(out, outn,
                               "PRECONDITION_FAILED - invalid property '%s' for queue '%.*s' in vhost '/'", bad,
                               NAME(qname));
            return -1;
        }
    }
    return 0;
}

/* A value as RabbitMQ prints it in an inequivalence message. */
static void describe(const fvalue_t *v, int present, char *out, size_t n)
{
    if (!present) {
        snprintf(out, n, "none");
    } else if (is_int(v) || v->type == FV_TIMESTAMP) {
        snprintf(out, n, "the value '%lld' of type '%s'", (long long)v->v.i, fvalue_type_name(v->type));
    } else if (v->type == FV_BOOL) {
        snprintf(out, n, "the value '%s' of type 'bool'", v->v.i ? "true" : "false");
    } else if (v->type == FV_LONGSTR) {
        snprintf(out, n, "the value '%.*s' of type 'longstr'", (int)(v->v.str.len > 100 ? 100 : v->v.str.len),
                 (const char *)v->v.str.p);
    } else {
        snprintf(out, n, "a value of type '%s'", fvalue_type_name(v->type));
    }
}

static int same_value(const fvalue_t *a, const fvalue_t *b)
{
    if (is_int(a) && is_int(b)) return a->v.i == b->v.i;
    return a->type == b->type && fvalue_equal(a, b);
}

int amqp_qargs_compare(const queue_t *q, amqp_bytes_t args, char *out, size_t outn)
{
    for (const qa_t *a = g_args; a->name; a++) {
        if (!a->equiv) continue;
        fvalue_t x, y;
        int hx = ftable_get(args, a->name, &x) == 1, hy = ftable_get(queue_args(q), a->name, &y) == 1;
        if (hx == hy && (!hx || same_value(&x, &y))) continue;
        if (!strcmp(a->name, "x-queue-type")) {
            /* "classic" and no type are the same queue type */
            int cx = !hx || (x.type == FV_LONGSTR && amqp_bytes_eq(x.v.str, "classic"));
            int cy = !hy || (y.type == FV_LONGSTR && amqp_bytes_eq(y.v.str, "classic"));
            if (cx && cy) continue;
        }
        char rx[160], ry[160];
        if (hx && hy && x.type == y.type) { /* RabbitMQ's short form: the values alone */
            describe(&x, hx, rx, sizeof rx);
            describe(&y, hy, ry, sizeof ry);
            char *vx = strchr(rx, '\''), *vy = strchr(ry, '\'');
            char *ex = vx ? strchr(vx + 1, '\'') : NULL, *ey = vy ? strchr(vy + 1, '\'') : NULL;
            if (ex && ey) {
                ex[1] = ey[1] = '\0';
                snprintf(out, outn,
                                   "PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in vhost '/': received "
                                   "%s but current is %s",
                                   a->name, queue_name_cstr(q), vx, vy);
                return 0;
            }
        }
        describe(&x, hx, rx, sizeof rx);
        describe(&y, hy, ry, sizeof ry);
        snprintf(out, outn,
                           "PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in vhost '/': received %s but "
                           "current is %s",
                           a->name, queue_name_cstr(q), rx, ry);
        return 0;
    }
    return 1;
}

int amqp_qargs_check(amqp_channel_t *ch, amqp_bytes_t qname, unsigned flags, amqp_bytes_t args)
{
    char err[512];
    if (amqp_qargs_validate(qname, flags, args, err, sizeof err) == 0) return 0;
    amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_QUEUE_DECLARE, "%s", err);
    return -1;
}

int amqp_qargs_equivalent(amqp_channel_t *ch, queue_t *q, amqp_bytes_t args)
{
    char err[512];
    if (amqp_qargs_compare(q, args, err, sizeof err)) return 1;
    amqp_channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_QUEUE_DECLARE, "%s", err);
    return 0;
}
