/* topics.h - what the bridge knows of the topics it writes to: whether each
 * exists (so that a record for a topic the cluster does not have becomes a
 * dead letter at once instead of a failure on every retry) and whether it can
 * keep the promise (replication factor and min.insync.replicas). Learned from
 * the cluster's metadata and configs by a thread of its own, with a client of
 * its own; the workers only read the table. */
#ifndef WB_TOPICS_H
#define WB_TOPICS_H

#include "config.h"

typedef enum {
    WB_TOPIC_UNKNOWN = 0, /* not asked yet, or the cluster did not answer */
    WB_TOPIC_EXISTS,
    WB_TOPIC_MISSING, /* the cluster says it does not exist (and did not create it) */
} wb_topic_state_t;

typedef struct wb_topics wb_topics_t;

/* A registry for the cluster at bootstrap. NULL with err on failure. */
wb_topics_t *wb_topics_new(const wb_config_t *cfg, const char *bootstrap, char *err, size_t errsz);
void wb_topics_free(wb_topics_t *t);

/* What is known of topic; a topic not known yet is looked up in the
 * background (wb_topics_state again later says what was found). *unsafe is
 * set to 1 when the topic's replication factor or min.insync.replicas is
 * under the configured floor. Thread-safe, never blocks on the network. */
wb_topic_state_t wb_topics_state(wb_topics_t *t, const char *topic, int *unsafe);

/* The cluster's auto.create.topics.enable as a broker said it: 1, 0, or -1
 * while not known (the embedded mock never says; it creates topics). */
int wb_topics_auto_create(wb_topics_t *t);

/* For /metrics: how many topics are unsafe; calls fn for each (thread-safe). */
unsigned wb_topics_unsafe(wb_topics_t *t,
                          void (*fn)(void *ctx, const char *topic, int rf, int min_isr), void *ctx);

/* For /metrics: how many topics' max.message.bytes is under the largest
 * record a body of max_body makes; calls fn for each (thread-safe). */
unsigned wb_topics_small(wb_topics_t *t, void (*fn)(void *ctx, const char *topic, long max_bytes),
                         void *ctx);

#endif
