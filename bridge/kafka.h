/* kafka.h - one idempotent producer per event loop, its delivery reports
 * served on that loop's thread, and the embedded mock cluster. */
#ifndef WB_KAFKA_H
#define WB_KAFKA_H

#include "config.h"

#include <librdkafka/rdkafka.h>

#define H2O_USE_LIBUV 0
#include <h2o.h>

/* What a record adds to its body, at most: the CloudEvents attributes (id,
 * subject, type, time, the extensions: each bounded, escaped at worst 6x),
 * the dead-letter reason, the key, the headers and Kafka's record framing.
 * The producer's message.max.bytes is max_body plus this (kafka.c). */
#define WB_RECORD_ENVELOPE_MAX (16 * 1024)
/* Record batches' compression by default (deploy/README.md, "Limits and
 * refusals for good"). */
#define WB_KAFKA_COMPRESSION "zstd"

/* A delivery report that said success without an offset (kafka.c, on_dr). */
#define WB_KAFKA_ERR_NO_OFFSET RD_KAFKA_RESP_ERR__INCONSISTENT

/* rd_kafka_err2str, and what WB_KAFKA_ERR_NO_OFFSET means. */
const char *wb_kafka_err_str(rd_kafka_resp_err_t err);

typedef struct {
    rd_kafka_resp_err_t err; /* 0: the record is in Kafka at offset (never < 0) */
    int32_t partition;
    int64_t offset;
    /* the record as produced, valid only during the report callback */
    const void *key, *value;
    size_t key_len, value_len;
} wb_report_t;

/* One record to produce. */
typedef struct {
    const char *topic;
    const char *key;
    size_t key_len;
    char *value;
    size_t value_len;
    const char *reason;   /* "deadletter-reason" header, or NULL */
    const char *intended; /* "intended-topic" header (a dead letter's lost topic), or NULL */
} wb_record_t;

/* Broker connections of a producer, from its statistics (once a second). */
typedef struct {
    int up;        /* connections up to brokers known from metadata */
    int known;     /* brokers known from metadata */
    int reachable; /* some connection up, bootstrap ones included */
    int measured;  /* 0 until the first statistics: the fields above say nothing yet */
    int auth_failed; /* the cluster refused the client (SASL, TLS) and no broker is up */
} wb_kafka_brokers_t;

/* Called on the loop's thread, once per produced record, with the opaque
 * given to wb_kafka_produce. */
typedef void (*wb_kafka_report_cb)(void *opaque, const wb_report_t *rep, void *ctx);

typedef struct wb_kafka wb_kafka_t;

/* What a Kafka client of the bridge is for: its client.id and the "client"
 * of its log lines. */
typedef enum {
    WB_CLIENT_PRODUCER = 0, /* client.id webhook-bridge: the workers', the spool's, replay's */
    WB_CLIENT_TOPICS,       /* webhook-bridge-topics: the topic registry */
    WB_CLIENT_REPLAY,       /* webhook-bridge-replay: `replay`'s consumer */
    WB_CLIENT_DEADLETTERS,  /* webhook-bridge-deadletters: `deadletters`' consumer */
    WB_CLIENT_ROLES
} wb_client_role_t;
/* The one place a Kafka client's configuration is made, for every client of
 * the bridge and its commands (producers, the topic registry, replay,
 * deadletters): client.id, the role's defaults, then [librdkafka] as written
 * (security: TLS, SASL), bootstrap.servers; librdkafka's log lines and
 * errors go to the bridge's JSON log with [librdkafka]'s secrets redacted.
 * Its opaque is the role; a caller that sets another opaque must make it
 * start with the role (a wb_kafka_t does). The caller adds its role's own
 * settings and owns the result. NULL with err on error. */
rd_kafka_conf_t *wb_kafka_client_conf(const wb_config_t *cfg, const char *bootstrap,
                                      wb_client_role_t role, const char *const (*defaults)[2],
                                      unsigned ndefaults, char *err, size_t errsz);
/* 1 once a client of role was refused by the cluster (SASL, TLS) and has
 * not said it connected since (wb_kafka_client_connected). Thread-safe. */
int wb_kafka_client_refused(wb_client_role_t role);
void wb_kafka_client_connected(wb_client_role_t role);
/* A Kafka error that is the same on every retry of the same record (too
 * large, invalid, topic not allowed, policy): the reason name for its dead
 * letter and metrics, e.g. "record_too_large"; NULL for an error that may
 * pass on a retry (brokers down, timeouts, not enough replicas). */
const char *wb_kafka_err_refused(rd_kafka_resp_err_t err);
/* The largest record a body of max_body makes (max_body + envelope). */
size_t wb_kafka_record_max(const wb_config_t *cfg);

/* The producer configuration every producer of the bridge uses (and the
 * benchmark's Kafka ceiling): client defaults, then [librdkafka], then
 * acks=all and idempotence forced. The caller owns the result. NULL with err
 * on error. */
rd_kafka_conf_t *wb_kafka_conf_new(const wb_config_t *cfg, const char *bootstrap, char *err,
                                   size_t errsz);

/* Creates a producer whose reports wake loop; loop may be NULL, to attach
 * later with wb_kafka_attach. NULL with err on error. */
wb_kafka_t *wb_kafka_new(const wb_config_t *cfg, const char *bootstrap, h2o_loop_t *loop,
                         wb_kafka_report_cb cb, void *cb_ctx, char *err, size_t errsz);

/* Enqueues one record. With copy, the producer copies the value; without,
 * on WB_OK the producer owns rec->value (malloc'ed). On WB_OK the report
 * callback will run exactly once for opaque; on error the caller keeps the
 * value and no report will come. */
int wb_kafka_produce(wb_kafka_t *k, const wb_record_t *rec, int copy, void *opaque,
                     rd_kafka_resp_err_t *kerr);

/* Serves the reports on loop from now on. Call on the thread that runs
 * loop: an h2o socket takes the buffer allocator of the thread that creates
 * it (h2o_socket_buffer_prototype is thread-local and not thread-safe). */
void wb_kafka_attach(wb_kafka_t *k, h2o_loop_t *loop);
/* Closes the wake-up socket, on the loop's thread; the producer stays. */
void wb_kafka_detach(wb_kafka_t *k);
/* Makes the producer learn topic's partitions now, not at its first record
 * (a first dead letter waited ~700 ms for them). */
void wb_kafka_warm(wb_kafka_t *k, const char *topic);
/* Serves what is queued (delivery reports, errors) without blocking. */
void wb_kafka_poll(wb_kafka_t *k);
/* Waits up to timeout_ms for every record to be reported; returns how many remain. */
int wb_kafka_flush(wb_kafka_t *k, int timeout_ms);
/* Drops every record not yet acknowledged, each with its report
 * (_PURGE_QUEUE, _PURGE_INFLIGHT) served here; returns how many remain.
 * Only for a stop: none of them was answered with a 2xx. */
int wb_kafka_purge(wb_kafka_t *k);
/* The broker connections as the last statistics saw them (all 0 before the
 * first). Thread-safe. */
void wb_kafka_brokers(wb_kafka_t *k, wb_kafka_brokers_t *out);
/* The producer's bound on records waiting (queue.buffering.max.messages). */
long wb_kafka_queue_max(const wb_config_t *cfg);
/* 1 for the errors of a record whose topic does not exist. */
int wb_kafka_err_unknown_topic(rd_kafka_resp_err_t err);
/* Records waiting in the producer (queue + in flight). Thread-safe. */
int wb_kafka_queue_len(wb_kafka_t *k);
/* 1 once the producer hit a fatal (idempotence) error and must not be used. */
int wb_kafka_fatal(wb_kafka_t *k);
/* After a fatal error, replaces the producer: the old one's records are
 * reported as failed. Call on the loop's thread, outside any callback.
 * WB_OK when there was nothing to do or it worked. */
int wb_kafka_recover(wb_kafka_t *k, char *err, size_t errsz);
void wb_kafka_destroy(wb_kafka_t *k);

/* The embedded cluster: an in-memory librdkafka mock with n brokers on
 * 127.0.0.1. Nothing is durable. bootstrap receives its address list. */
typedef struct wb_kafka_mock wb_kafka_mock_t;
wb_kafka_mock_t *wb_kafka_mock_start(unsigned n, char *bootstrap, size_t bootstrapsz, char *err,
                                     size_t errsz);
void wb_kafka_mock_stop(wb_kafka_mock_t *m);
/* Turns Nagle's algorithm off for what the mock brokers of bootstrap (a
 * "host:port,..." list of this process's mock cluster) accept from now on,
 * as real brokers do. wb_kafka_mock_start does it; call it again after a
 * broker is set down (the mock re-creates its listener then, and starts it
 * when the broker is set up). Returns how many listeners were changed. */
int wb_kafka_mock_nodelay(const char *bootstrap);

#endif
