/* Consumer-group coordinator: placeholder until the classic protocol lands. */
#include "broker/group.h"

#include <stdlib.h>

#include "base/mem.h"
#include "broker/internal.h"

struct group_coord {
    broker_t *b;
    partition_t *log;
};

group_coord_t *group_coord_new(broker_t *b, partition_t *offsets_log)
{
    group_coord_t *g = xcalloc(1, sizeof *g);
    g->b = b;
    g->log = offsets_log;
    return g;
}

void group_coord_free(group_coord_t *g) { free(g); }
