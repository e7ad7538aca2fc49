/*
 * The consumer-group coordinator (classic rebalance protocol) and the
 * committed-offsets log. See group.c.
 */
#ifndef HERALD_BROKER_GROUP_H
#define HERALD_BROKER_GROUP_H

#include "broker/broker.h"

/* Creates the coordinator and replays committed offsets from offsets_log
 * (an internal partition owned by the broker). Returns NULL on a corrupt log. */
group_coord_t *group_coord_new(broker_t *b, partition_t *offsets_log);
/* Frees all group state (no callbacks fire). NULL is a no-op. */
void group_coord_free(group_coord_t *g);

#endif
