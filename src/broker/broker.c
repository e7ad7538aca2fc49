/*
 * Broker lifecycle: the data directory, recovery of the catalog, topics and
 * offsets, the flusher glue (durability wakes waiters), periodic retention,
 * and producer-id allocation.
 *
 * Data directory layout:
 *   <data>/__catalog/        the topic catalog log (catalog.c)
 *   <data>/__offsets/        committed consumer-group offsets (group coordinator)
 *   <data>/topics/<name>-<n>/  one log per partition (store/plog.c)
 */
#include "broker/broker.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "broker/group.h"
#include "broker/internal.h"
#include "broker/stream.h"
#include "broker/vhost.h"
#include "store/deleter.h"

#define PID_BLOCK 1000

int mkdir_p(const char *path)
{
    char tmp[1024];
    size_t n = strlen(path);
    if (n >= sizeof tmp) return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -errno;
    return 0;
}

/* The flusher finished a sync round for one log: wake its waiters. */
static void on_synced(void *ctx, plog_t *log, int status)
{
    broker_t *b = ctx;
    partition_t *p;
    HASH_FIND(hh_log, b->by_log, &log, sizeof log, p);
    if (!p) return;
    if (status < 0 && !p->failed) {
        p->failed = 1;
        LOG_E("log %s: sync failed (%s); partition is read-only until restart", p->dir, herald_strerror(status));
    }
    partition_hw_advanced(p, status < 0 ? status : 0);
}

static void on_maint(uv_timer_t *t)
{
    broker_t *b = t->data;
    int64_t wall = clock_wall_ms();
    for (topic_t *tp = b->first; tp; tp = tp->next) {
        /* A partition whose log could not be opened (EMFILE, EIO) is
         * unavailable; try it again now. */
        for (int32_t i = 0; i < tp->npart; i++)
            if (!tp->parts[i]) {
                int rc = topic_open_partitions(b, tp, i);
                if (rc < 0) LOG_W("topic %s: partitions still unavailable: %s", tp->name, herald_strerror(rc));
                break;
            }
        for (int32_t i = 0; i < tp->npart; i++) {
            if (!tp->parts[i]) continue;
            int n = plog_maintain(tp->parts[i]->log, wall);
            if (n > 0) LOG_I("retention: %s-%d deleted %d segment(s)", tp->name, i, n);
        }
    }
}

static int open_internal(broker_t *b, const char *name, partition_t **out)
{
    int err = 0;
    char *dir = xasprintf("%s/%s", b->cfg.data_dir, name);
    *out = partition_open(b, NULL, 0, dir, &err);
    return *out ? 0 : err;
}

broker_t *broker_new(uv_loop_t *loop, const config_t *cfg, int *err)
{
    broker_t *b = xcalloc(1, sizeof *b);
    b->loop = loop;
    b->cfg = *cfg;
    int rc = mkdir_p(cfg->data_dir);
    if (rc < 0) {
        LOG_E("cannot create data directory %s: %s", cfg->data_dir, herald_strerror(rc));
        goto fail;
    }
    store_deleter_install(loop);
    char *topics_dir = xasprintf("%s/topics", cfg->data_dir);
    rc = mkdir_p(topics_dir);
    if (rc == 0) store_sweep_deleting(topics_dir);
    free(topics_dir);
    if (rc < 0) goto fail;

    flush_mode_t fm = cfg->flush_mode == CONFIG_FLUSH_ALWAYS     ? FLUSH_ALWAYS
                      : cfg->flush_mode == CONFIG_FLUSH_INTERVAL ? FLUSH_INTERVAL
                                                                 : FLUSH_NEVER;
    b->flusher = flusher_new(loop, fm, cfg->flush_interval_ms, on_synced, b);
    flusher_set_round_gap(b->flusher, cfg->flush_round_gap_us);

    const char *adv = cfg->kafka_advertised[0] ? cfg->kafka_advertised : cfg->kafka_listen;
    const char *colon = strrchr(adv, ':');
    size_t hl = colon ? (size_t)(colon - adv) : strlen(adv);
    if (hl >= sizeof b->adv_host) hl = sizeof b->adv_host - 1;
    memcpy(b->adv_host, adv, hl);
    b->adv_host[hl] = '\0';
    if (!strcmp(b->adv_host, "0.0.0.0") || !strcmp(b->adv_host, "::") || !strcmp(b->adv_host, "[::]"))
        snprintf(b->adv_host, sizeof b->adv_host, "127.0.0.1");
    b->adv_port = colon ? atoi(colon + 1) : 9092;

    b->vhost = vhost_new(b);
    if ((rc = open_internal(b, "__catalog", &b->catalog)) < 0) goto fail;
    if ((rc = catalog_replay(b)) < 0) {
        LOG_E("cannot replay the topic catalog: %s", herald_strerror(rc));
        goto fail;
    }
    for (topic_t *t = b->first; t; t = t->next) {
        if ((rc = topic_open_partitions(b, t, 0)) < 0) goto fail;
    }
    if ((rc = vhost_open(b->vhost)) < 0) {
        LOG_E("cannot open the AMQP queues: %s", herald_strerror(rc));
        goto fail;
    }
    if ((rc = open_internal(b, "__offsets", &b->offsets)) < 0) goto fail;
    b->groups = group_coord_new(b, b->offsets);
    if (!b->groups) {
        rc = HE_CORRUPT;
        goto fail;
    }

    b->alarm = alarm_new(loop, &b->cfg);
    uv_timer_init(loop, &b->maint_timer);
    b->maint_timer.data = b;
    uv_timer_start(&b->maint_timer, on_maint, (uint64_t)cfg->retention_check_ms, (uint64_t)cfg->retention_check_ms);
    uv_unref((uv_handle_t *)&b->maint_timer);
    LOG_I("data directory %s: %d topic(s), cluster id %s", cfg->data_dir, b->ntopics, b->cluster_id);
    return b;
fail:
    *err = rc ? rc : HE_STORAGE;
    broker_free(b);
    return NULL;
}

/* The maintenance timer lives in b: b is freed once it has closed (libuv
 * still reads the handle until its close callback). */
static void on_timer_closed(uv_handle_t *h) { free(h->data); }

void broker_free(broker_t *b)
{
    if (!b) return;
    alarm_free(b->alarm);
    group_coord_free(b->groups);
    vhost_free(b->vhost);
    free(b->due_queues); /* (every queue was closed: none is in it) */
    b->due_queues = NULL;
    b->ndue = b->capdue = 0;
    while (b->first) topic_free(b, b->first);
    if (b->offsets) partition_close(b, b->offsets);
    if (b->catalog) partition_close(b, b->catalog);
    flusher_free(b->flusher);
    /* Deletions already queued finish while the server drains the loop. */
    store_deleter_uninstall();
    histo_map_destroy(&b->kafka_histos);
    histo_map_destroy(&b->amqp_histos);
    if (b->maint_timer.data) {
        uv_timer_stop(&b->maint_timer);
        uv_close((uv_handle_t *)&b->maint_timer, on_timer_closed);
    } else {
        free(b);
    }
}

const config_t *broker_config(const broker_t *b) { return &b->cfg; }
uv_loop_t *broker_loop(const broker_t *b) { return b->loop; }
group_coord_t *broker_groups(const broker_t *b) { return b->groups; }
alarm_t *broker_alarm(const broker_t *b) { return b->alarm; }
const char *broker_cluster_id(const broker_t *b) { return b->cluster_id; }
int32_t broker_node_id(const broker_t *b) { return b->cfg.node_id; }

void broker_kafka_advertised(const broker_t *b, const char **host, int *port)
{
    *host = b->adv_host;
    *port = b->adv_port;
}

void broker_set_kafka_port(broker_t *b, int port)
{
    if (!b->cfg.kafka_advertised[0]) b->adv_port = port;
}

void broker_observe_request(broker_t *b, int16_t api_key, int64_t ns)
{
    b->requests_total++;
    histo_map_observe(&b->kafka_histos, (uint32_t)(uint16_t)api_key, ns);
}

void broker_observe_amqp_method(broker_t *b, uint32_t method_id, int64_t ns)
{
    histo_map_observe(&b->amqp_histos, method_id, ns);
}

const histo_map_t *broker_kafka_histos(const broker_t *b) { return &b->kafka_histos; }
const histo_map_t *broker_amqp_histos(const broker_t *b) { return &b->amqp_histos; }
const histo_t *broker_fsync_histo(const broker_t *b) { return flusher_sync_histo(b->flusher); }

/* ---- topics ---- */

int broker_topic_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > TOPIC_NAME_MAX) return HE_INVALID;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) return HE_INVALID;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return HE_INVALID;
    }
    return 0;
}

topic_t *broker_topic_find(broker_t *b, const char *name, size_t len)
{
    topic_t *t;
    HASH_FIND(hh, b->topics, name, len, t);
    return t;
}

topic_t *broker_topic_first(broker_t *b) { return b->first; }
int broker_topic_count(const broker_t *b) { return b->ntopics; }

int broker_topic_create(broker_t *b, const char *name, size_t len, int32_t partitions, const topic_kv_t *configs,
                        size_t nconfigs, topic_t **out, const char **bad_config)
{
    if (broker_topic_name_valid(name, len) < 0) return HE_INVALID;
    if (broker_topic_find(b, name, len)) return HE_EXISTS;
    if (partitions < 1 || partitions > 100000) return HE_OUT_OF_RANGE;
    for (size_t i = 0; i < nconfigs; i++) {
        int rc = broker_topic_config_valid(configs[i].key, configs[i].value);
        if (rc < 0) {
            if (bad_config) *bad_config = configs[i].key;
            return rc == HE_NOT_FOUND ? HE_NOT_FOUND : HE_UNSUPPORTED;
        }
    }
    uint8_t id[16];
    uv_random(NULL, NULL, id, sizeof id, 0, NULL);
    id[6] = (uint8_t)((id[6] & 0x0f) | 0x40); /* a version-4 UUID, never all-zero */
    topic_t *t = topic_alloc(name, len, id, partitions);
    for (size_t i = 0; i < nconfigs; i++) topic_set_config_raw(t, configs[i].key, configs[i].value);
    int64_t target;
    int rc = catalog_put_topic(b, t, &target);
    if (rc < 0) {
        t->npart = 0;
        free(t->parts);
        t->parts = NULL;
        topic_configs_clear(t);
        free(t->name);
        free(t);
        return rc;
    }
    HASH_ADD_KEYPTR(hh, b->topics, t->name, strlen(t->name), t);
    t->prev = b->last;
    if (b->last) b->last->next = t;
    else b->first = t;
    b->last = t;
    b->ntopics++;
    rc = topic_open_partitions(b, t, 0);
    if (rc < 0) return rc;
    LOG_I("topic %s created with %d partition(s)", t->name, partitions);
    if (out) *out = t;
    return 0;
}

int broker_topic_delete(broker_t *b, topic_t *t)
{
    stream_topic_deleting(b, t); /* a stream queue on it goes too */
    int64_t target;
    int rc = catalog_delete_topic(b, t->name, &target);
    if (rc < 0) return rc;
    LOG_I("topic %s deleted", t->name);
    char **dirs = xcalloc((size_t)t->npart + 1, sizeof *dirs);
    for (int32_t i = 0; i < t->npart; i++) dirs[i] = xasprintf("%s/topics/%s-%d", b->cfg.data_dir, t->name, i);
    int32_t n = t->npart;
    topic_free(b, t);
    for (int32_t i = 0; i < n; i++) {
        int drc = plog_destroy_dir(dirs[i]);
        if (drc < 0) LOG_W("cannot remove %s: %s", dirs[i], herald_strerror(drc));
        free(dirs[i]);
    }
    free(dirs);
    return 0;
}

int broker_topic_add_partitions(broker_t *b, topic_t *t, int32_t total)
{
    if (total <= t->npart) return HE_INVALID;
    if (stream_queue_of_topic(b, t)) return HE_OUT_OF_RANGE; /* a stream queue is one partition */
    if (total > 100000) return HE_OUT_OF_RANGE;
    int32_t from = t->npart;
    t->parts = xrealloc(t->parts, sizeof *t->parts * (size_t)total);
    for (int32_t i = from; i < total; i++) t->parts[i] = NULL;
    t->npart = total;
    int64_t target;
    int rc = catalog_put_topic(b, t, &target);
    if (rc < 0) {
        t->npart = from;
        return rc;
    }
    return topic_open_partitions(b, t, from);
}

int broker_topic_set_configs(broker_t *b, topic_t *t, const topic_kv_t *configs, size_t n, int replace,
                             const char **bad_config)
{
    for (size_t i = 0; i < n; i++) {
        if (!configs[i].value) continue; /* a delete */
        int rc = broker_topic_config_valid(configs[i].key, configs[i].value);
        if (rc < 0) {
            if (bad_config) *bad_config = configs[i].key;
            return rc;
        }
    }
    if (replace) topic_configs_clear(t);
    for (size_t i = 0; i < n; i++) {
        if (configs[i].value) {
            topic_set_config_raw(t, configs[i].key, configs[i].value);
            continue;
        }
        for (topic_cfg_entry_t **pp = &t->configs; *pp; pp = &(*pp)->next) {
            if (!strcmp((*pp)->key, configs[i].key)) {
                topic_cfg_entry_t *e = *pp;
                *pp = e->next;
                free(e->key);
                free(e->value);
                free(e);
                break;
            }
        }
    }
    int64_t target;
    int rc = catalog_put_topic(b, t, &target);
    if (rc < 0) return rc;
    plog_config_t pc;
    topic_plog_config(b, t, &pc);
    for (int32_t i = 0; i < t->npart; i++)
        if (t->parts[i]) plog_set_config(t->parts[i]->log, &pc);
    return 0;
}

void broker_set_tick_hook(broker_t *b, void (*fn)(broker_t *b)) { b->tick_hook = fn; }

int broker_catalog_wait(broker_t *b, pwaiter_t *w)
{
    w->target = plog_end_offset(b->catalog->log);
    return partition_wait(b->catalog, w);
}

/* ---- producer ids ---- */

int broker_next_producer_id(broker_t *b, int64_t *pid)
{
    if (b->next_pid >= b->pid_block_end) {
        int64_t end = b->pid_block_end + PID_BLOCK, target;
        int rc = catalog_put_pid_block(b, end, &target);
        if (rc < 0) return rc;
        b->pid_block_end = end;
    }
    *pid = b->next_pid++;
    return 0;
}
