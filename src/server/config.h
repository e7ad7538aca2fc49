/*
 * Broker configuration: one table (config.c) names every key, its type,
 * default, bounds and help text. The same table drives the config file
 * parser, the command-line flags, `herald --help` and docs/configuration.md.
 *
 * Precedence: embedded defaults < config file < command-line flags.
 */
#ifndef HERALD_SERVER_CONFIG_H
#define HERALD_SERVER_CONFIG_H

#include <stdint.h>
#include <stdio.h>

typedef enum { CONFIG_FLUSH_ALWAYS, CONFIG_FLUSH_INTERVAL, CONFIG_FLUSH_NEVER } config_flush_t;

/* A limit given either as a share of something the broker measures at run
 * time (physical RAM) or as an absolute size: "0.4" (a decimal point makes
 * it a share) or "512MiB". */
typedef struct {
    int relative;    /* 1: `fraction` applies, 0: `bytes` does */
    double fraction; /* 0.0 .. 1.0 */
    int64_t bytes;   /* >= 0 */
} config_share_t;

typedef struct {
    char data_dir[1024];           /* "data" */
    char kafka_listen[256];        /* "kafka": HOST:PORT */
    char kafka_advertised[256];    /* "kafka.advertised": HOST:PORT; empty = the listen address */
    char amqp_listen[256];         /* "amqp": HOST:PORT, host "loopback" = 127.0.0.1 and ::1 */
    char http_listen[256];         /* "http": HOST:PORT of the admin API, metrics and dashboard, or "off" */
    int64_t http_max_body_bytes;   /* "http.max.body.bytes": largest request body accepted */
    char amqp_users[1024];         /* "amqp.users": USER:PASS[,USER:PASS...] */
    int64_t amqp_frame_max;        /* "amqp.frame.max": bytes */
    int32_t amqp_channel_max;      /* "amqp.channel.max" */
    int32_t amqp_heartbeat_s;      /* "amqp.heartbeat": seconds, 0 none */
    int64_t amqp_max_message_bytes; /* "amqp.max.message.bytes" */
    int64_t amqp_consumer_timeout_ms; /* "amqp.consumer.timeout": ms a delivery may stay unacked, 0 off */
    config_share_t memory_high_watermark; /* "memory.high.watermark": of physical RAM, or bytes of RSS */
    int64_t disk_free_limit;       /* "disk.free.limit": bytes free on the data directory's file system */
    config_flush_t flush_mode;     /* "flush" */
    int32_t flush_interval_ms;     /* from "flush = interval:MS" */
    int32_t flush_round_gap_us;    /* "flush.round.gap.us": least time between sync round starts */
    int32_t due_pass_gap_ms;       /* "due.pass.gap.ms": least time between timer passes over due work */
    int64_t delay_memory_bytes;    /* "delay.memory.bytes": bytes of pending delayed messages kept in memory per delay queue */
    int32_t log_level;             /* "log.level", a log_level_t */
    int64_t max_request_bytes;     /* "max.request.bytes" */
    int64_t fetch_max_bytes;       /* "fetch.max.bytes": cap on one fetch response's records */
    int32_t auto_create_topics;    /* "auto.create.topics", bool */
    int32_t num_partitions;        /* "num.partitions" for auto-created topics */
    int64_t segment_bytes;         /* "segment.bytes" */
    int64_t segment_ms;            /* "segment.ms" */
    int64_t retention_ms;          /* "retention.ms", -1 unlimited */
    int64_t retention_bytes;       /* "retention.bytes", -1 unlimited */
    int32_t node_id;               /* "node.id" */
    int32_t group_initial_delay_ms;   /* "group.initial.rebalance.delay.ms" */
    int32_t group_min_session_ms;     /* "group.min.session.timeout.ms" */
    int32_t group_max_session_ms;     /* "group.max.session.timeout.ms" */
    int32_t retention_check_ms;       /* "retention.check.interval.ms" */
    int32_t max_connections;          /* "max.connections" */
} config_t;

/* Fills every field with its embedded default. */
void config_defaults(config_t *c);

/* Sets one key from its textual value. Returns 0, or HE_NOT_FOUND for an
 * unknown key, HE_INVALID for a bad value; on error writes a message naming
 * the key (and the value) into err. */
int config_set(config_t *c, const char *key, const char *value, char *err, size_t errlen);

/* Reads a "key = value" file (# comments, blank lines). Returns 0 or <0 with
 * a message naming the file, line and key in err. */
int config_load_file(config_t *c, const char *path, char *err, size_t errlen);

/* Prints the flag list with defaults and help (for --help). */
void config_print_help(FILE *out);

/* Prints the reference table in Markdown (docs/configuration.md is checked
 * against this output by a test). */
void config_print_markdown(FILE *out);

#endif
