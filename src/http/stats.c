/* Rates and history. See stats.h. (First cut: no sampling yet.) */
#include "http/stats.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

struct http_stats {
    broker_t *b;
};

http_stats_t *http_stats_new(broker_t *b)
{
    http_stats_t *s = xcalloc(1, sizeof *s);
    s->b = b;
    return s;
}

void http_stats_free(http_stats_t *s) { free(s); }

void http_stats_queue_rates(http_stats_t *s, const queue_t *q, queue_rates_t *out) { memset(out, 0, sizeof *out); }
void http_stats_partition_rates(http_stats_t *s, const partition_t *p, partition_rates_t *out)
{
    memset(out, 0, sizeof *out);
}
void http_stats_overview_rates(http_stats_t *s, overview_rates_t *out) { memset(out, 0, sizeof *out); }
json_t *http_stats_queue_history(http_stats_t *s, const queue_t *q) { return json_array(); }
json_t *http_stats_group_history(http_stats_t *s, const char *group_id) { return json_array(); }
json_t *http_stats_overview_history(http_stats_t *s) { return json_array(); }
