/*
 * The configuration table. Each entry: key, kind, offset into config_t,
 * default (as text, parsed by the same code as user input), bounds, help.
 * Adding a key = adding one line here and one field in config_t.
 */
#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"

typedef enum { K_STR, K_I32, K_I64, K_BOOL, K_FLUSH, K_LEVEL, K_ADDR, K_ADDR_OFF, K_SIZE, K_MS, K_SHARE } kind_t;

typedef struct {
    const char *key;
    kind_t kind;
    size_t off;
    size_t size; /* for K_STR/K_ADDR: buffer size */
    const char *def;
    int64_t min, max;
    const char *help;
} entry_t;

#define F(field) offsetof(config_t, field), sizeof(((config_t *)0)->field)
#define NOLIM INT64_MIN, INT64_MAX

static const entry_t table[] = {
    {"data", K_STR, F(data_dir), "./herald-data", NOLIM, "data directory (created if missing)"},
    {"kafka", K_ADDR, F(kafka_listen), "127.0.0.1:9092", NOLIM, "Kafka listener, HOST:PORT (port 0 picks a free one)"},
    {"kafka.advertised", K_STR, F(kafka_advertised), "", NOLIM,
     "HOST:PORT given to Kafka clients in Metadata; empty = the listen address"},
    {"amqp", K_ADDR, F(amqp_listen), "loopback:5672", NOLIM,
     "AMQP 0-9-1 listener, HOST:PORT; host \"loopback\" listens on 127.0.0.1 and ::1 (port 0 picks a free one)"},
    {"http", K_ADDR_OFF, F(http_listen), "127.0.0.1:8080", NOLIM,
     "HTTP listener for the admin API, /metrics and the dashboard, HOST:PORT (port 0 picks a free one), "
     "or off"},
    {"http.max.body.bytes", K_SIZE, F(http_max_body_bytes), "10485760", 1024, 1LL << 30,
     "largest HTTP request body accepted; bigger ones get 413"},
    {"amqp.users", K_STR, F(amqp_users), "guest:guest", NOLIM,
     "AMQP users, USER:PASSWORD[,USER:PASSWORD...]; the user guest may connect from loopback only"},
    {"amqp.frame.max", K_SIZE, F(amqp_frame_max), "131072", 4096, 1LL << 24,
     "largest AMQP frame offered in connection.tune"},
    {"amqp.channel.max", K_I32, F(amqp_channel_max), "2047", 1, 65535, "most channels per AMQP connection"},
    {"amqp.heartbeat", K_I32, F(amqp_heartbeat_s), "60", 0, 65535,
     "heartbeat interval offered in connection.tune, seconds (0 = none)"},
    {"amqp.max.message.bytes", K_SIZE, F(amqp_max_message_bytes), "134217728", 0, 1LL << 31,
     "largest AMQP message body accepted; larger ones close the channel with PRECONDITION_FAILED"},
    {"amqp.consumer.timeout", K_MS, F(amqp_consumer_timeout_ms), "1800000", 0, INT64_MAX,
     "how long a delivery may stay unacknowledged before its channel is closed with PRECONDITION_FAILED, "
     "ms (0 = never)"},
    {"memory.high.watermark", K_SHARE, F(memory_high_watermark), "0.4", NOLIM,
     "memory alarm: the broker's resident memory above which AMQP publishers are blocked, a fraction of "
     "physical RAM (0.4) or a size (512MiB, 2GB)"},
    {"disk.free.limit", K_SIZE, F(disk_free_limit), "50MB", 0, INT64_MAX,
     "disk alarm: free space on the data directory's file system below which AMQP publishers are blocked "
     "(MB = 10^6 bytes, MiB = 2^20)"},
    {"flush", K_FLUSH, F(flush_mode), "always", NOLIM,
     "always (ack after fdatasync) | interval:MS | never"},
    {"flush.round.gap.us", K_I32, F(flush_round_gap_us), "1000", 0, 1000000,
     "with flush always: least time between the starts of two group-commit sync rounds, microseconds "
     "(0 = back to back); bounds fdatasyncs to one per gap under light steady load"},
    {"due.pass.gap.ms", K_I32, F(due_pass_gap_ms), "5", 0, 10000,
     "least time between two timer passes over due work (delayed messages, retry backoffs, TTL expiries) "
     "while it keeps coming, ms (0 = each on its millisecond); a pass after a quiet spell is on time"},
    {"delay.memory.bytes", K_SIZE, F(delay_memory_bytes), "128MiB", 0, 1LL << 40,
     "memory each queue (and each durable delayed exchange) may hold in messages waiting for their x-delay or "
     "a retry backoff (a durable queue: its persistent ones for a retry; soonest due first); the rest wait on "
     "disk (a non-durable queue's in its spill log), 32 bytes each in memory"},
    {"log.level", K_LEVEL, F(log_level), "info", NOLIM, "debug | info | warn | error | off"},
    {"max.request.bytes", K_SIZE, F(max_request_bytes), "104857600", 1024, 1LL << 31,
     "largest request frame accepted; bigger ones close the connection"},
    {"fetch.max.bytes", K_SIZE, F(fetch_max_bytes), "57671680", 1024, 1LL << 30,
     "most record bytes one fetch response carries, whatever the client asks (one batch may exceed it)"},
    {"auto.create.topics", K_BOOL, F(auto_create_topics), "true", NOLIM,
     "create a topic on first Metadata/Produce for it"},
    {"num.partitions", K_I32, F(num_partitions), "1", 1, 10000, "partitions of auto-created topics"},
    {"segment.bytes", K_SIZE, F(segment_bytes), "1073741824", 1024, 1LL << 40,
     "default segment size before a roll (topic config segment.bytes)"},
    {"segment.ms", K_MS, F(segment_ms), "604800000", -1, INT64_MAX,
     "default segment age before a roll (topic config segment.ms)"},
    {"retention.ms", K_MS, F(retention_ms), "604800000", -1, INT64_MAX,
     "default time retention, -1 unlimited (topic config retention.ms)"},
    {"retention.bytes", K_I64, F(retention_bytes), "-1", -1, INT64_MAX,
     "default size retention per partition, -1 unlimited (topic config retention.bytes)"},
    {"retention.check.interval.ms", K_I32, F(retention_check_ms), "300000", 10, 86400000,
     "how often retention and time-based rolls run"},
    {"node.id", K_I32, F(node_id), "1", 0, INT32_MAX, "broker id reported to Kafka clients"},
    {"group.initial.rebalance.delay.ms", K_I32, F(group_initial_delay_ms), "0", 0, 300000,
     "wait for more members before the first rebalance of an empty group"},
    {"group.min.session.timeout.ms", K_I32, F(group_min_session_ms), "1000", 1, INT32_MAX,
     "smallest session timeout a consumer may ask for"},
    {"group.max.session.timeout.ms", K_I32, F(group_max_session_ms), "1800000", 1, INT32_MAX,
     "largest session timeout a consumer may ask for"},
    {"max.connections", K_I32, F(max_connections), "10000", 1, 1000000, "connections accepted at once"},
};

#define NENTRIES (sizeof table / sizeof table[0])

static const entry_t *find(const char *key)
{
    for (size_t i = 0; i < NENTRIES; i++)
        if (strcmp(table[i].key, key) == 0) return &table[i];
    return NULL;
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return HE_INVALID;
    *out = v;
    return 0;
}

/* Accepts a plain number or one with a unit suffix: sizes k/m/g/t (KiB..,
 * binary, also written KiB/MiB/GiB/TiB) or kB/MB/GB/TB (decimal, as
 * RabbitMQ's disk_free_limit), durations ms/s/m/h/d. */
static int parse_scaled(const char *s, kind_t kind, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s) return HE_INVALID;
    int64_t mul = 1;
    if (*end) {
        if (kind == K_SIZE) {
            if (!strcmp(end, "k") || !strcmp(end, "K") || !strcmp(end, "KiB")) mul = 1024;
            else if (!strcmp(end, "m") || !strcmp(end, "M") || !strcmp(end, "MiB")) mul = 1024 * 1024;
            else if (!strcmp(end, "g") || !strcmp(end, "G") || !strcmp(end, "GiB")) mul = 1024LL * 1024 * 1024;
            else if (!strcmp(end, "t") || !strcmp(end, "T") || !strcmp(end, "TiB")) mul = 1024LL * 1024 * 1024 * 1024;
            else if (!strcmp(end, "kB") || !strcmp(end, "KB")) mul = 1000;
            else if (!strcmp(end, "MB")) mul = 1000 * 1000;
            else if (!strcmp(end, "GB")) mul = 1000LL * 1000 * 1000;
            else if (!strcmp(end, "TB")) mul = 1000LL * 1000 * 1000 * 1000;
            else return HE_INVALID;
        } else {
            if (!strcmp(end, "ms")) mul = 1;
            else if (!strcmp(end, "s")) mul = 1000;
            else if (!strcmp(end, "m")) mul = 60000;
            else if (!strcmp(end, "h")) mul = 3600000;
            else if (!strcmp(end, "d")) mul = 86400000;
            else return HE_INVALID;
        }
    }
    if (v > 0 && v > INT64_MAX / mul) return HE_INVALID;
    *out = v * mul;
    return 0;
}

static int parse_addr(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return HE_INVALID;
    int64_t port;
    if (parse_i64(colon + 1, &port) || port < 0 || port > 65535) return HE_INVALID;
    return 0;
}

/* "0.4" (a share: a decimal point, 0..1) or a size ("512MiB", "2GB"). */
static int parse_share(const char *s, config_share_t *out)
{
    if (strchr(s, '.')) {
        char *end;
        errno = 0;
        double f = strtod(s, &end);
        if (errno || end == s || *end || !(f >= 0.0 && f <= 1.0)) return HE_INVALID;
        *out = (config_share_t){.relative = 1, .fraction = f};
        return 0;
    }
    int64_t v;
    if (parse_scaled(s, K_SIZE, &v) || v < 0) return HE_INVALID;
    *out = (config_share_t){.relative = 0, .bytes = v};
    return 0;
}

static int apply(config_t *c, const entry_t *e, const char *value)
{
    char *field = (char *)c + e->off;
    int64_t v = 0;
    switch (e->kind) {
    case K_ADDR_OFF:
    case K_ADDR:
        if (!(e->kind == K_ADDR_OFF && !strcmp(value, "off")) && parse_addr(value)) return HE_INVALID;
        /* fallthrough */
    case K_STR:
        if (strlen(value) >= e->size) return HE_INVALID;
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case K_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes")) v = 1;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no")) v = 0;
        else return HE_INVALID;
        *(int32_t *)field = (int32_t)v;
        return 0;
    case K_LEVEL: {
        log_level_t l;
        if (log_parse_level(value, &l)) return HE_INVALID;
        *(int32_t *)field = (int32_t)l;
        return 0;
    }
    case K_FLUSH:
        if (!strcmp(value, "always")) {
            c->flush_mode = CONFIG_FLUSH_ALWAYS;
        } else if (!strcmp(value, "never")) {
            c->flush_mode = CONFIG_FLUSH_NEVER;
        } else if (!strncmp(value, "interval:", 9)) {
            if (parse_scaled(value + 9, K_MS, &v) || v < 1 || v > 3600000) return HE_INVALID;
            c->flush_mode = CONFIG_FLUSH_INTERVAL;
            c->flush_interval_ms = (int32_t)v;
        } else {
            return HE_INVALID;
        }
        return 0;
    case K_SHARE:
        return parse_share(value, (config_share_t *)field);
    case K_I32:
    case K_I64:
        if (parse_i64(value, &v)) return HE_INVALID;
        break;
    case K_SIZE:
    case K_MS:
        if (parse_scaled(value, e->kind, &v)) return HE_INVALID;
        break;
    }
    if (v < e->min || v > e->max) return HE_INVALID;
    if (e->size == sizeof(int32_t)) {
        if (v < INT32_MIN || v > INT32_MAX) return HE_INVALID;
        *(int32_t *)field = (int32_t)v;
    } else {
        *(int64_t *)field = v;
    }
    return 0;
}

void config_defaults(config_t *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NENTRIES; i++) {
        int rc = apply(c, &table[i], table[i].def);
        (void)rc;
    }
}

int config_set(config_t *c, const char *key, const char *value, char *err, size_t errlen)
{
    const entry_t *e = find(key);
    if (!e) {
        snprintf(err, errlen, "unknown configuration key '%s'", key);
        return HE_NOT_FOUND;
    }
    if (apply(c, e, value)) {
        if (e->min != INT64_MIN && (e->kind == K_I32 || e->kind == K_I64 || e->kind == K_SIZE || e->kind == K_MS))
            snprintf(err, errlen, "bad value '%s' for '%s' (expected %lld..%lld: %s)", value, key,
                     (long long)e->min, (long long)e->max, e->help);
        else
            snprintf(err, errlen, "bad value '%s' for '%s' (%s)", value, key, e->help);
        return HE_INVALID;
    }
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

int config_load_file(config_t *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return -errno;
    }
    char line[2048];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            rc = HE_INVALID;
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected 'key = value', got '%.80s'", path, lineno, s);
            rc = HE_INVALID;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        char msg[512];
        if ((rc = config_set(c, key, value, msg, sizeof msg)) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
            break;
        }
    }
    fclose(f);
    return rc;
}

void config_print_help(FILE *out)
{
    for (size_t i = 0; i < NENTRIES; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", table[i].key);
        for (char *p = flag + 2; *p; p++)
            if (*p == '.') *p = '-';
        fprintf(out, "  %-36s %s (default: %s)\n", flag, table[i].help,
                table[i].def[0] ? table[i].def : "\"\"");
    }
}

void config_print_markdown(FILE *out)
{
    fprintf(out, "| key | flag | default | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < NENTRIES; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", table[i].key);
        for (char *p = flag + 2; *p; p++)
            if (*p == '.') *p = '-';
        fprintf(out, "| `%s` | `%s` | `%s` | ", table[i].key, flag, table[i].def);
        for (const char *h = table[i].help; *h; h++) {
            if (*h == '|') fputc('\\', out);
            fputc(*h, out);
        }
        fputs(" |\n", out);
    }
}
