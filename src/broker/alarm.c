/* Resource alarms: memory high-water mark and free-disk low-water mark. See alarm.h. */
#include "broker/alarm.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"

#define ALARM_TICK_MS 1000
#define ALARM_LISTENERS_MAX 4

struct alarm {
    uv_timer_t timer;
    alarm_limits_t limits;
    unsigned active;       /* ALARM_* */
    char *dir;             /* the data directory, for statvfs */
    int statm_fd;          /* /proc/self/statm, -1 if unavailable */
    long page_size;
    void (*probe)(void *ctx, alarm_sample_t *out);
    void *probe_ctx;
    struct {
        alarm_cb cb;
        void *ctx;
    } listeners[ALARM_LISTENERS_MAX];
    int nlisteners;
    alarm_sample_t last;   /* the latest sample, for the log lines */
};

unsigned alarm_eval(const alarm_limits_t *l, const alarm_sample_t *s, unsigned prev)
{
    unsigned on = prev;
    if (s->rss_bytes >= 0) on = s->rss_bytes > l->memory_limit ? on | ALARM_MEMORY : on & ~(unsigned)ALARM_MEMORY;
    if (s->disk_free_bytes >= 0)
        on = s->disk_free_bytes < l->disk_limit ? on | ALARM_DISK : on & ~(unsigned)ALARM_DISK;
    return on;
}

int64_t alarm_memory_limit(const config_share_t *wm, uint64_t physical_bytes)
{
    if (!wm->relative) return wm->bytes;
    double v = wm->fraction * (double)physical_bytes;
    return v >= (double)INT64_MAX ? INT64_MAX : (int64_t)v;
}

const char *alarm_reason(unsigned active)
{
    /* RabbitMQ joins the reasons of its sorted set: disk before memory. */
    switch (active & (ALARM_MEMORY | ALARM_DISK)) {
    case ALARM_MEMORY: return "low on memory";
    case ALARM_DISK: return "low on disk";
    case ALARM_MEMORY | ALARM_DISK: return "low on disk & memory";
    default: return "";
    }
}

/* ---- sampling ---- */

/* Resident set in bytes: the second field of /proc/self/statm (pages), or
 * libuv's portable reading where /proc is missing. -1 on failure. */
static int64_t read_rss(alarm_t *a)
{
    if (a->statm_fd >= 0) {
        char buf[128];
        ssize_t n = pread(a->statm_fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            unsigned long long size, resident;
            if (sscanf(buf, "%llu %llu", &size, &resident) == 2) return (int64_t)resident * a->page_size;
        }
    }
    size_t rss;
    return uv_resident_set_memory(&rss) == 0 ? (int64_t)rss : -1;
}

static void real_probe(void *ctx, alarm_sample_t *out)
{
    alarm_t *a = ctx;
    out->rss_bytes = read_rss(a);
    struct statvfs st;
    out->disk_free_bytes = statvfs(a->dir, &st) == 0 ? (int64_t)st.f_bavail * (int64_t)st.f_frsize : -1;
}

static double mib(int64_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

static void log_change(const alarm_t *a, unsigned before, unsigned after)
{
    unsigned set = after & ~before, cleared = before & ~after;
    if (set & ALARM_MEMORY)
        LOG_W("memory alarm on: resident memory %.1f MiB is over the high watermark %.1f MiB; "
              "AMQP connections that publish are blocked",
              mib(a->last.rss_bytes), mib(a->limits.memory_limit));
    if (set & ALARM_DISK)
        LOG_W("disk alarm on: %.1f MiB free on the data directory's file system, under the limit %.1f MiB; "
              "AMQP connections that publish are blocked",
              mib(a->last.disk_free_bytes), mib(a->limits.disk_limit));
    if (cleared & ALARM_MEMORY)
        LOG_I("memory alarm cleared: resident memory %.1f MiB (high watermark %.1f MiB)", mib(a->last.rss_bytes),
              mib(a->limits.memory_limit));
    if (cleared & ALARM_DISK)
        LOG_I("disk alarm cleared: %.1f MiB free (limit %.1f MiB)", mib(a->last.disk_free_bytes),
              mib(a->limits.disk_limit));
}

void alarm_check(alarm_t *a)
{
    alarm_sample_t s = {-1, -1};
    a->probe(a->probe_ctx, &s);
    if (s.rss_bytes >= 0) a->last.rss_bytes = s.rss_bytes;
    if (s.disk_free_bytes >= 0) a->last.disk_free_bytes = s.disk_free_bytes;
    unsigned before = a->active, after = alarm_eval(&a->limits, &s, before);
    if (after == before) return;
    a->active = after;
    log_change(a, before, after);
    for (int i = 0; i < a->nlisteners; i++) a->listeners[i].cb(a->listeners[i].ctx, after);
}

static void on_tick(uv_timer_t *t) { alarm_check(t->data); }

/* ---- lifecycle ---- */

/* Physical memory, or the cgroup's limit when it is lower (a container
 * counts what it may use, not what the host has). */
static uint64_t physical_memory(void)
{
    uint64_t total = uv_get_total_memory(), limit = uv_get_constrained_memory();
    return limit > 0 && limit < total ? limit : total;
}

alarm_t *alarm_new(uv_loop_t *loop, const config_t *cfg)
{
    alarm_t *a = xcalloc(1, sizeof *a);
    uint64_t ram = physical_memory();
    a->limits.memory_limit = alarm_memory_limit(&cfg->memory_high_watermark, ram);
    a->limits.disk_limit = cfg->disk_free_limit;
    a->dir = xstrdup(cfg->data_dir);
    a->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    a->page_size = sysconf(_SC_PAGESIZE);
    if (a->page_size <= 0) a->page_size = 4096;
    a->probe = real_probe;
    a->probe_ctx = a;
    a->last = (alarm_sample_t){0, 0};
    if (cfg->memory_high_watermark.relative)
        LOG_I("memory high watermark %.1f MiB (%.2f of %.1f MiB of RAM); disk free limit %.1f MiB",
              mib(a->limits.memory_limit), cfg->memory_high_watermark.fraction, mib((int64_t)ram),
              mib(a->limits.disk_limit));
    else
        LOG_I("memory high watermark %.1f MiB; disk free limit %.1f MiB", mib(a->limits.memory_limit),
              mib(a->limits.disk_limit));
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
    uv_timer_start(&a->timer, on_tick, ALARM_TICK_MS, ALARM_TICK_MS);
    uv_unref((uv_handle_t *)&a->timer);
    alarm_check(a);
    return a;
}

static void on_closed(uv_handle_t *h) { free(h->data); }

void alarm_free(alarm_t *a)
{
    if (!a) return;
    if (a->statm_fd >= 0) close(a->statm_fd);
    free(a->dir);
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, on_closed);
}

unsigned alarm_active(const alarm_t *a) { return a ? a->active : 0; }

alarm_limits_t alarm_limits(const alarm_t *a) { return a->limits; }

void alarm_listen(alarm_t *a, alarm_cb cb, void *ctx)
{
    assert(a->nlisteners < ALARM_LISTENERS_MAX); /* each front end registers once */
    if (a->nlisteners == ALARM_LISTENERS_MAX) return;
    a->listeners[a->nlisteners].cb = cb;
    a->listeners[a->nlisteners].ctx = ctx;
    a->nlisteners++;
}

void alarm_set_probe(alarm_t *a, void (*probe)(void *ctx, alarm_sample_t *out), void *ctx)
{
    a->probe = probe ? probe : real_probe;
    a->probe_ctx = probe ? ctx : a;
}
