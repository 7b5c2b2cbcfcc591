/* provider.h - what a provider is (wb_provider_t), the built-in descriptions (Piriod, Shoperti,
 * BonifiQ) and the settings a [provider.NAME] section may change.
 * A provider is data: adding one is a configuration entry, never code. */
#ifndef WB_PROVIDER_H
#define WB_PROVIDER_H

#include "auth.h"
#include "common.h"

#define WB_MAX_PTRS 4
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
    /* the spool (CONTRACT.md, "The one exception"): a record Kafka has not
     * acknowledged within spool_after_ms is kept on disk and answered 200 */
    int spool;
    unsigned spool_after_ms; /* 0: 3/5 of deadline_ms */
    int enabled;
    wb_auth_conf_t *auth; /* NULL: no method configured */
} wb_provider_t;

/* Fills prov with the defaults of the named built-in provider, or with the
 * generic defaults for a new one. Returns WB_OK or WB_ERR_NOMEM. */
int wb_provider_init(wb_provider_t *prov, const char *name);
void wb_provider_free(wb_provider_t *prov);

/* Names of the built-in providers, NULL-terminated. */
extern const char *const wb_provider_builtins[];

/* Applies one key of a [provider.NAME] section (auth keys go to auth.c).
 * Returns WB_OK, or WB_ERR_CONFIG with the reason in err. */
int wb_provider_set(wb_provider_t *prov, const char *key, const char *value, char *err,
                    size_t errsz);

/* Returns 1 if name is a valid provider name ([a-z0-9]+, at most 32). */
int wb_provider_name_valid(const char *name, size_t len);

#endif
