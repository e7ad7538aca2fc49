/* Kafka API handlers, one file per API family (h_*.c). See dispatch.h for
 * the handler contract. */
#ifndef HERALD_KAFKA_HANDLERS_H
#define HERALD_KAFKA_HANDLERS_H

#include "kafka/dispatch.h"

int kafka_h_api_versions(broker_t *b, kreq_t *rq);
int kafka_h_metadata(broker_t *b, kreq_t *rq);
int kafka_h_produce(broker_t *b, kreq_t *rq);
int kafka_h_fetch(broker_t *b, kreq_t *rq);
int kafka_h_list_offsets(broker_t *b, kreq_t *rq);
int kafka_h_create_topics(broker_t *b, kreq_t *rq);
int kafka_h_delete_topics(broker_t *b, kreq_t *rq);
int kafka_h_create_partitions(broker_t *b, kreq_t *rq);
int kafka_h_describe_configs(broker_t *b, kreq_t *rq);
int kafka_h_alter_configs(broker_t *b, kreq_t *rq);
int kafka_h_incremental_alter_configs(broker_t *b, kreq_t *rq);
int kafka_h_delete_records(broker_t *b, kreq_t *rq);
int kafka_h_init_producer_id(broker_t *b, kreq_t *rq);
int kafka_h_describe_cluster(broker_t *b, kreq_t *rq);
int kafka_h_sasl_handshake(broker_t *b, kreq_t *rq);
/* Group coordinator APIs (h_group.c). */
int kafka_h_find_coordinator(broker_t *b, kreq_t *rq);
int kafka_h_join_group(broker_t *b, kreq_t *rq);
int kafka_h_sync_group(broker_t *b, kreq_t *rq);
int kafka_h_heartbeat(broker_t *b, kreq_t *rq);
int kafka_h_leave_group(broker_t *b, kreq_t *rq);
int kafka_h_offset_commit(broker_t *b, kreq_t *rq);
int kafka_h_offset_fetch(broker_t *b, kreq_t *rq);
int kafka_h_list_groups(broker_t *b, kreq_t *rq);
int kafka_h_describe_groups(broker_t *b, kreq_t *rq);
int kafka_h_delete_groups(broker_t *b, kreq_t *rq);

/* Answers rq once every catalog change made so far (topics, configs,
 * producer-id blocks) is durable: encode(rq, resp) then writes the body.
 * resp must live in rq->arena (it is used after the handler returns). */
typedef void (*kafka_encode_fn)(kreq_t *rq, void *resp);
void kafka_answer_after_catalog(broker_t *b, kreq_t *rq, void *resp, kafka_encode_fn encode);

/* Finds a topic by a wire name, creating it when auto-creation is on and
 * `create` is set. Returns NULL with *err set to a Kafka error code. */
topic_t *kafka_topic_lookup(broker_t *b, kstr_t name, int create, int16_t *err);

#endif
