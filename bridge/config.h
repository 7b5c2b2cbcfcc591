/* config.h - every setting of the bridge, read once from the built-in
 * defaults, the INI file and the environment (in that order), validated,
 * then frozen: after wb_config_load() the snapshot is only read, from every
 * thread. Owns the settings table and the provider and route lists. */
#ifndef WB_CONFIG_H
#define WB_CONFIG_H

#include "common.h"
#include "provider.h"

#include <stdio.h>

#define WB_MAX_PROVIDERS 16
#define WB_MAX_ROUTES 64
#define WB_MAX_RDKAFKA 64
#define WB_MAX_ERRORS 64
typedef struct {
    char *glob; /* fnmatch(3) pattern over the event type */
    char *topic;
} wb_route_t;

typedef struct {
    char *name;
    char *value;
    char *origin; /* where it was set, for error messages */
} wb_kv_t;

typedef enum { WB_LOG_DEBUG = 0, WB_LOG_INFO, WB_LOG_WARN, WB_LOG_ERROR } wb_log_level_t;

typedef struct {
    /* [server] */
    char *listen;
    char *admin_listen;
    unsigned threads;
    unsigned max_inflight; /* whole process */
    unsigned drain_timeout_ms;
    wb_log_level_t log_level;
    unsigned max_depth;
    unsigned max_tokens;
    int ready_requires_kafka; /* /readyz also wants a broker connection up */
    unsigned max_connections; /* webhook connections open at once, whole process */
    int http2;                /* serve HTTP/2 (prior knowledge, h2c upgrade) */
    /* an HTTP/2 connection may end this many streams before their answer,
     * earning http2_reset_ratio more per stream answered (0: no bound) */
    unsigned http2_max_resets;
    unsigned http2_reset_ratio;
    /* [kafka] */
    char *brokers; /* NULL: embedded mock cluster */
    unsigned mock_brokers;
    char *topic_prefix;
    char *deadletter_topic;
    /* the floor a topic must meet to keep the promise (topics.c) */
    unsigned min_replication_factor, min_insync_replicas;
    int refuse_unsafe_topics; /* a failure answer for a topic under the floor */
    /* [spool] */
    char *spool_dir; /* NULL: no spool */
    unsigned long long spool_max_bytes;
    /* [librdkafka] pass-through, in order (later entries win) */
    wb_kv_t rdkafka[WB_MAX_RDKAFKA];
    unsigned nrdkafka;
    /* [routes] */
    wb_route_t routes[WB_MAX_ROUTES];
    unsigned nroutes;
    /* [provider.NAME] */
    wb_provider_t providers[WB_MAX_PROVIDERS];
    unsigned nproviders;
} wb_config_t;

/* Every problem found while loading, each with its location. */
typedef struct {
    char msg[WB_MAX_ERRORS][256];
    unsigned n;
    unsigned dropped;
} wb_config_errors_t;

/* Fills cfg from defaults, then path (may be NULL), then env (a NULL-
 * terminated "NAME=value" array, normally environ). Returns WB_OK, or
 * WB_ERR_CONFIG with every error in errs. cfg is usable (and must be freed
 * with wb_config_free) in both cases. */
int wb_config_load(wb_config_t *cfg, const char *path, char *const *env, wb_config_errors_t *errs);
void wb_config_free(wb_config_t *cfg);

const wb_provider_t *wb_config_provider(const wb_config_t *cfg, const char *name, size_t len);
/* The largest deadline and body limit over the enabled providers. */
unsigned wb_config_max_deadline(const wb_config_t *cfg);
size_t wb_config_max_body(const wb_config_t *cfg);

/* Prints to f, in Markdown, every setting of the table (section, key,
 * environment variable, type, default, bounds, meaning) and the built-in
 * provider descriptions, as wb_config_load() gives them with no file and no
 * environment: webhook-bridge --help-config, deploy/CONFIGURATION.md. */
void wb_config_help(FILE *f);

#endif
