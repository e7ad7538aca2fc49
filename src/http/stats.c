/* Rates and history. See stats.h.
 *
 * Every second the sampler walks the queues, the partitions and (every
 * 5 s) the consumer groups. Per object it keeps the totals last seen and a
 * rate per total: r += a * (delta / dt - r) with a = 1 - exp(-dt / 5 s), an
 * exponentially weighted average whose memory is about 5 seconds. Entries
 * are keyed by queue id, partition pointer and group id; an entry not seen
 * in a pass belongs to a deleted object and is dropped. A total that went
 * down (a partition deleted and another allocated at the same address)
 * starts over.
 *
 * History rings hold STATS_HISTORY points taken every STATS_HISTORY_MS;
 * a queue's ring (8 bytes a point) is allocated only once it has held a
 * message, so idle queues cost nothing.
 */
#include "http/stats.h"

#include <ftw.h>
#include <math.h>
#include <sys/statvfs.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "base/clock.h"
#include "base/mem.h"
#include "broker/group.h"
#include "broker/vhost.h"

#define NQ 10 /* queue_counters_t fields */
#define NP 4  /* partition_counters_t fields */
#define NO 7  /* overview rates */
#define TAU_S 5.0
#define OV_COLS 6

_Static_assert(sizeof(queue_counters_t) == NQ * sizeof(uint64_t), "queue_counters_t is NQ totals");
_Static_assert(sizeof(queue_rates_t) == NQ * sizeof(double), "queue_rates_t is NQ rates");
_Static_assert(sizeof(partition_rates_t) == NP * sizeof(double), "partition_rates_t is NP rates");
_Static_assert(sizeof(overview_rates_t) == NO * sizeof(double), "overview_rates_t is NO rates");

typedef struct {
    uint32_t ready, unacked;
} qpoint_t;

typedef struct {
    uint64_t id;
    uint64_t seen;
    uint64_t last[NQ];
    double rate[NQ];
    int primed;
    qpoint_t *hist;   /* STATS_HISTORY points, NULL until the queue held a message */
    int hn, hhead;    /* points kept, next slot */
    UT_hash_handle hh;
} qstat_t;

typedef struct {
    const partition_t *p;
    uint64_t seen;
    uint64_t last[NP];
    double rate[NP];
    int primed;
    UT_hash_handle hh;
} pstat_t;

typedef struct {
    char *id;         /* owned */
    uint64_t seen;
    int64_t hist[STATS_HISTORY];
    int hn, hhead;
    UT_hash_handle hh;
} gstat_t;

struct http_stats {
    broker_t *b;
    uv_timer_t timer;
    uint64_t pass;
    int64_t last_ms;       /* monotonic time of the last pass */
    int64_t hist_wall_ms;  /* wall time of the newest history point */
    int since_hist;        /* passes since the last history point */
    qstat_t *queues;
    pstat_t *parts;
    gstat_t *groups;
    int64_t started_ms;    /* wall clock */
    uv_work_t disk_work;   /* walks the data directory off the loop */
    int disk_busy;
    int closing;
    uint64_t du_used;      /* written by the worker, published in after_disk */
    struct statvfs du_vfs;
    int du_ok;
    http_disk_t disk;      /* the last result (loop) */
    double ov[NO];         /* overview rates */
    double ov_hist[STATS_HISTORY][OV_COLS];
    int ohn, ohhead;
};

static void ewma(double *rate, uint64_t *last, const uint64_t *cur, int n, int primed, double dt, double a)
{
    for (int i = 0; i < n; i++) {
        double inst = primed && cur[i] >= last[i] && dt > 0 ? (double)(cur[i] - last[i]) / dt : 0;
        rate[i] = primed ? rate[i] + a * (inst - rate[i]) : 0;
        last[i] = cur[i];
    }
}

static void sample_queues(http_stats_t *s, double dt, double a, uint64_t deltas[NQ], int hist,
                          uint64_t *depth)
{
    vhost_t *v = broker_vhost(s->b, (amqp_bytes_t){(const uint8_t *)"/", 1});
    if (!v) return;
    for (queue_t *q = vhost_queue_first(v); q; q = vhost_queue_next(v, q)) {
        uint64_t id = queue_id(q);
        qstat_t *e;
        HASH_FIND(hh, s->queues, &id, sizeof id, e);
        if (!e) {
            e = xcalloc(1, sizeof *e);
            e->id = id;
            HASH_ADD(hh, s->queues, id, sizeof e->id, e);
        }
        e->seen = s->pass;
        uint64_t cur[NQ];
        memcpy(cur, queue_counters(q), sizeof cur);
        for (int i = 0; i < NQ; i++)
            if (e->primed && cur[i] >= e->last[i]) deltas[i] += cur[i] - e->last[i];
        ewma(e->rate, e->last, cur, NQ, e->primed, dt, a);
        e->primed = 1;
        uint32_t ready = queue_ready_count(q), unacked = queue_unacked_count(q);
        *depth += (uint64_t)ready + unacked;
        if (hist && (e->hist || ready || unacked)) {
            if (!e->hist) e->hist = xcalloc(STATS_HISTORY, sizeof *e->hist);
            e->hist[e->hhead] = (qpoint_t){ready, unacked};
            e->hhead = (e->hhead + 1) % STATS_HISTORY;
            if (e->hn < STATS_HISTORY) e->hn++;
        }
    }
    qstat_t *e, *tmp;
    HASH_ITER(hh, s->queues, e, tmp) {
        if (e->seen == s->pass) continue;
        HASH_DEL(s->queues, e);
        free(e->hist);
        free(e);
    }
}

static void sample_partitions(http_stats_t *s, double dt, double a, uint64_t deltas[NP])
{
    for (topic_t *t = broker_topic_first(s->b); t; t = topic_next(t)) {
        for (int32_t i = 0; i < topic_partition_count(t); i++) {
            const partition_t *p = topic_partition(t, i);
            if (!p) continue; /* its log could not be opened (yet) */
            pstat_t *e;
            HASH_FIND(hh, s->parts, &p, sizeof p, e);
            if (!e) {
                e = xcalloc(1, sizeof *e);
                e->p = p;
                HASH_ADD(hh, s->parts, p, sizeof e->p, e);
            }
            e->seen = s->pass;
            const partition_counters_t *c = partition_counters(p);
            uint64_t cur[NP] = {c->msgs_in, c->bytes_in, c->msgs_out, c->bytes_out};
            for (int k = 0; k < NP; k++)
                if (e->primed && cur[k] >= e->last[k]) deltas[k] += cur[k] - e->last[k];
            ewma(e->rate, e->last, cur, NP, e->primed, dt, a);
            e->primed = 1;
        }
    }
    pstat_t *e, *tmp;
    HASH_ITER(hh, s->parts, e, tmp) {
        if (e->seen == s->pass) continue;
        HASH_DEL(s->parts, e);
        free(e);
    }
}

typedef struct {
    broker_t *b;
    int64_t lag;
} lag_ctx_t;

static void add_lag(void *ctx, const char *topic, int32_t partition, int64_t offset, int32_t leader_epoch,
                    group_str_t meta)
{
    lag_ctx_t *lc = ctx;
    topic_t *t = broker_topic_find(lc->b, topic, strlen(topic));
    partition_t *p = t ? topic_partition(t, partition) : NULL;
    if (!p) return;
    int64_t lag = partition_high_watermark(p) - offset;
    if (lag > 0) lc->lag += lag;
}

int64_t http_stats_group_lag(broker_t *b, const char *group_id)
{
    lag_ctx_t lc = {b, 0};
    group_str_t gid = {group_id, (int32_t)strlen(group_id)};
    group_offsets_each(broker_groups(b), gid, add_lag, &lc);
    return lc.lag;
}

static int64_t sample_groups(http_stats_t *s)
{
    int64_t total = 0;
    for (group_t *g = group_first(broker_groups(s->b)); g; g = group_next(g)) {
        const char *id = group_id(g);
        gstat_t *e;
        HASH_FIND_STR(s->groups, id, e);
        if (!e) {
            e = xcalloc(1, sizeof *e);
            e->id = xstrdup(id);
            HASH_ADD_KEYPTR(hh, s->groups, e->id, strlen(e->id), e);
        }
        e->seen = s->pass;
        int64_t lag = http_stats_group_lag(s->b, id);
        total += lag;
        e->hist[e->hhead] = lag;
        e->hhead = (e->hhead + 1) % STATS_HISTORY;
        if (e->hn < STATS_HISTORY) e->hn++;
    }
    gstat_t *e, *tmp;
    HASH_ITER(hh, s->groups, e, tmp) {
        if (e->seen == s->pass) continue;
        HASH_DEL(s->groups, e);
        free(e->id);
        free(e);
    }
    return total;
}

/* ---- disk use, measured on the worker pool every 10 s ---- */

static __thread uint64_t du_acc;

static int du_visit(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)path;
    (void)f;
    if (flag == FTW_F) du_acc += (uint64_t)st->st_blocks * 512;
    return 0;
}

static void disk_run(uv_work_t *w)
{
    http_stats_t *s = w->data;
    const char *dir = broker_config(s->b)->data_dir;
    du_acc = 0;
    nftw(dir, du_visit, 32, FTW_PHYS);
    s->du_used = du_acc;
    s->du_ok = statvfs(dir, &s->du_vfs) == 0;
}

static void free_stats(http_stats_t *s);

static void disk_done(uv_work_t *w, int status)
{
    http_stats_t *s = w->data;
    s->disk_busy = 0;
    if (s->closing) {
        free_stats(s);
        return;
    }
    if (status < 0) return;
    s->disk.valid = 1;
    s->disk.used_bytes = s->du_used;
    if (s->du_ok) {
        s->disk.free_bytes = (uint64_t)s->du_vfs.f_bavail * s->du_vfs.f_frsize;
        s->disk.total_bytes = (uint64_t)s->du_vfs.f_blocks * s->du_vfs.f_frsize;
    }
}

static void disk_start(http_stats_t *s)
{
    if (s->disk_busy) return;
    s->disk_busy = 1;
    s->disk_work.data = s;
    if (uv_queue_work(broker_loop(s->b), &s->disk_work, disk_run, disk_done) < 0) s->disk_busy = 0;
}

void http_stats_disk(http_stats_t *s, http_disk_t *out)
{
    memset(out, 0, sizeof *out);
    if (s) *out = s->disk;
}

int64_t http_stats_started_ms(http_stats_t *s) { return s ? s->started_ms : 0; }

static void on_tick(uv_timer_t *t)
{
    http_stats_t *s = t->data;
    int64_t now = (int64_t)(clock_mono_ns() / 1000000);
    double dt = s->last_ms ? (double)(now - s->last_ms) / 1000.0 : 0;
    double a = dt > 0 ? 1.0 - exp(-dt / TAU_S) : 0;
    int primed = s->last_ms != 0;
    s->last_ms = now;
    s->pass++;
    if (s->pass % 10 == 1) disk_start(s);
    int hist = ++s->since_hist * 1000 >= STATS_HISTORY_MS;
    uint64_t qd[NQ] = {0}, pd[NP] = {0}, depth = 0;
    sample_queues(s, dt, a, qd, hist, &depth);
    sample_partitions(s, dt, a, pd);
    /* Overview: kafka in, in bytes, out, out bytes; amqp publish, deliver, ack. */
    uint64_t d[NO] = {pd[0], pd[1], pd[2], pd[3], qd[0], qd[3], qd[5]};
    for (int i = 0; i < NO; i++) {
        double inst = primed && dt > 0 ? (double)d[i] / dt : 0;
        s->ov[i] = primed ? s->ov[i] + a * (inst - s->ov[i]) : 0;
    }
    if (hist) {
        s->since_hist = 0;
        int64_t lag = sample_groups(s);
        double *row = s->ov_hist[s->ohhead];
        row[0] = s->ov[0];
        row[1] = s->ov[2];
        row[2] = s->ov[4];
        row[3] = s->ov[5];
        row[4] = (double)depth;
        row[5] = (double)lag;
        s->ohhead = (s->ohhead + 1) % STATS_HISTORY;
        if (s->ohn < STATS_HISTORY) s->ohn++;
        s->hist_wall_ms = clock_wall_ms();
    }
}

http_stats_t *http_stats_new(broker_t *b)
{
    http_stats_t *s = xcalloc(1, sizeof *s);
    s->b = b;
    s->started_ms = clock_wall_ms();
    uv_timer_init(broker_loop(b), &s->timer);
    s->timer.data = s;
    s->since_hist = STATS_HISTORY_MS / 1000 - 1; /* the first history point comes with the first pass */
    on_tick(&s->timer);
    uv_timer_start(&s->timer, on_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&s->timer);
    return s;
}

static void free_stats(http_stats_t *s)
{
    qstat_t *q, *qt;
    HASH_ITER(hh, s->queues, q, qt) {
        HASH_DEL(s->queues, q);
        free(q->hist);
        free(q);
    }
    pstat_t *p, *pt;
    HASH_ITER(hh, s->parts, p, pt) {
        HASH_DEL(s->parts, p);
        free(p);
    }
    gstat_t *g, *gt;
    HASH_ITER(hh, s->groups, g, gt) {
        HASH_DEL(s->groups, g);
        free(g->id);
        free(g);
    }
    free(s);
}

static void on_closed(uv_handle_t *h)
{
    http_stats_t *s = h->data;
    s->closing = 1;
    if (!s->disk_busy) free_stats(s); /* else when the walk comes back */
}

void http_stats_free(http_stats_t *s)
{
    if (!s) return;
    uv_close((uv_handle_t *)&s->timer, on_closed);
}

void http_stats_queue_rates(http_stats_t *s, const queue_t *q, queue_rates_t *out)
{
    memset(out, 0, sizeof *out);
    if (!s) return;
    uint64_t id = queue_id(q);
    qstat_t *e;
    HASH_FIND(hh, s->queues, &id, sizeof id, e);
    if (e) memcpy(out, e->rate, sizeof e->rate);
}

void http_stats_partition_rates(http_stats_t *s, const partition_t *p, partition_rates_t *out)
{
    memset(out, 0, sizeof *out);
    if (!s) return;
    pstat_t *e;
    HASH_FIND(hh, s->parts, &p, sizeof p, e);
    if (e) memcpy(out, e->rate, sizeof e->rate);
}

void http_stats_overview_rates(http_stats_t *s, overview_rates_t *out)
{
    memset(out, 0, sizeof *out);
    if (s) memcpy(out, s->ov, sizeof s->ov);
}

/* Time of the i-th of n points (oldest first). */
static int64_t point_ms(const http_stats_t *s, int i, int n)
{
    return s->hist_wall_ms - (int64_t)(n - 1 - i) * STATS_HISTORY_MS;
}

json_t *http_stats_queue_history(http_stats_t *s, const queue_t *q)
{
    json_t *arr = json_array();
    if (!s) return arr;
    uint64_t id = queue_id(q);
    qstat_t *e;
    HASH_FIND(hh, s->queues, &id, sizeof id, e);
    if (!e || !e->hist) return arr;
    for (int i = 0; i < e->hn; i++) {
        const qpoint_t *pt = &e->hist[(e->hhead - e->hn + i + STATS_HISTORY) % STATS_HISTORY];
        json_array_append_new(arr, json_pack("[I, I, I]", (json_int_t)point_ms(s, i, e->hn), (json_int_t)pt->ready,
                                             (json_int_t)pt->unacked));
    }
    return arr;
}

json_t *http_stats_group_history(http_stats_t *s, const char *group_id)
{
    json_t *arr = json_array();
    if (!s) return arr;
    gstat_t *e;
    HASH_FIND_STR(s->groups, group_id, e);
    if (!e) return arr;
    for (int i = 0; i < e->hn; i++) {
        int64_t v = e->hist[(e->hhead - e->hn + i + STATS_HISTORY) % STATS_HISTORY];
        json_array_append_new(arr, json_pack("[I, I]", (json_int_t)point_ms(s, i, e->hn), (json_int_t)v));
    }
    return arr;
}

json_t *http_stats_overview_history(http_stats_t *s)
{
    json_t *arr = json_array();
    if (!s) return arr;
    for (int i = 0; i < s->ohn; i++) {
        const double *r = s->ov_hist[(s->ohhead - s->ohn + i + STATS_HISTORY) % STATS_HISTORY];
        json_array_append_new(arr, json_pack("[I, f, f, f, f, I, I]", (json_int_t)point_ms(s, i, s->ohn), r[0], r[1],
                                             r[2], r[3], (json_int_t)r[4], (json_int_t)r[5]));
    }
    return arr;
}
