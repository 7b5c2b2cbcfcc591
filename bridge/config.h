/* config.h - every setting of the bridge, read once from the built-in
 * defaults, the INI file and the environment (in that order), validated,
 * then frozen: after wb_config_load() the snapshot is only read, from every
 * thread. Owns the settings table and the provider and route lists. */
#ifndef WB_CONFIG_H
#define WB_CONFIG_H

#include "common.h"
#include "auth.h"

#define WB_MAX_PROVIDERS 16
#define WB_MAX_ROUTES 64
#define WB_MAX_RDKAFKA 64
#define WB_MAX_PTRS 4
#define WB_MAX_ERRORS 64
#define WB_MAX_FAILURE_STATUSES 8

/* What becomes of a record whose topic does not exist (and is not created). */
enum {
    WB_UNKNOWN_TOPIC_DEADLETTER = 0, /* the dead-letter topic, reason unknown_topic */
    WB_UNKNOWN_TOPIC_TOPIC,          /* a catch-all topic of the provider's */
    WB_UNKNOWN_TOPIC_FAIL,           /* a failure answer, as any Kafka error */
};

typedef enum {
    WB_TIME_AUTO = 0,  /* RFC 3339; without a zone taken as UTC; a number as unix seconds */
    WB_TIME_RFC3339,   /* must carry Z or an offset */
    WB_TIME_NAIVE_UTC, /* no zone, UTC (BonifiQ) */
    WB_TIME_UNIX,      /* number of seconds since the epoch */
    WB_TIME_UNIX_MS,   /* number of milliseconds since the epoch */
} wb_time_format_t;

typedef enum { WB_KEY_SUBJECT = 0, WB_KEY_ID } wb_key_by_t;

/* Which extracted fields must be present (else dead letter). */
enum { WB_REQ_ID = 1, WB_REQ_SUBJECT = 2, WB_REQ_TIME = 4 };

/* A provider is a description, not code: where its fields are in the body
 * (JSON Pointers, RFC 6901), how to read them, how it authenticates. */
typedef struct {
    char *name;                   /* [a-z0-9]+, path /webhooks/<name> and type prefix */
    char *source;                 /* CloudEvents source */
    char *type_ptrs[WB_MAX_PTRS]; /* tried in order; first present wins */
    unsigned ntype_ptrs;
    char *id_ptr;      /* NULL: a UUID is generated */
    char *subject_ptr; /* NULL: no subject */
    char *time_ptr;    /* NULL: receive time */
    unsigned required; /* WB_REQ_* */
    wb_time_format_t time_format;
    wb_key_by_t key_by;
    unsigned deadline_ms; /* every answer leaves before this */
    size_t max_body;
    int deadletter_status; /* 200 (default) or 400 */
    /* failure answers rotate through these (5xx), one process-wide sequence
     * per provider, so that a provider sees a different code each time */
    int failure_statuses[WB_MAX_FAILURE_STATUSES];
    unsigned nfailure_statuses;
    /* a record whose topic does not exist: WB_UNKNOWN_TOPIC_* */
    int unknown_topic;
    char *unknown_topic_name; /* WB_UNKNOWN_TOPIC_TOPIC: the catch-all topic */
    int enabled;
    wb_auth_conf_t *auth; /* NULL: no method configured */
} wb_provider_t;

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
    /* [kafka] */
    char *brokers; /* NULL: embedded mock cluster */
    unsigned mock_brokers;
    char *topic_prefix;
    char *deadletter_topic;
    /* the floor a topic must meet to keep the promise (topics.c) */
    unsigned min_replication_factor, min_insync_replicas;
    int refuse_unsafe_topics; /* a failure answer for a topic under the floor */
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

#endif
