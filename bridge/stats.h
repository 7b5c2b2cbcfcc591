/* stats.h - the counters and gauges of the process: ingest.c and server.c
 * write them (each worker its own, relaxed atomics), admin.c sums and renders
 * them. Owns the fixed label sets (statuses, latency buckets, Kafka errors,
 * dead-letter reasons), so that every label of /metrics is bounded. */
#ifndef WB_STATS_H
#define WB_STATS_H

#include "config.h"
#include "topics.h"

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>

/* Answer statuses counted per provider; the last slot is "any other". */
#define WB_STATUS_SLOTS 12
extern const int wb_status_codes[WB_STATUS_SLOTS];
/* Kafka write latency histogram bounds, in milliseconds. */
#define WB_LAT_BUCKETS 14
extern const double wb_latency_bounds_ms[WB_LAT_BUCKETS];
/* Kafka errors counted by name; the last slot is "any other". */
#define WB_KERR_SLOTS 13
extern const rd_kafka_resp_err_t wb_kafka_errors[WB_KERR_SLOTS - 1];

/* Why a record went to the dead-letter topic. */
typedef enum { WB_DL_SHAPE = 0, WB_DL_UNKNOWN_TOPIC, WB_DL_REFUSED, WB_DL_REASONS } wb_dl_reason_t;
extern const char *const wb_dl_reason_names[WB_DL_REASONS];
/* Why Kafka refused a record for good (kafka.c's wb_kafka_err_refused
 * names); the last slot is "any other". */
#define WB_REFUSED_SLOTS 7
extern const char *const wb_refused_names[WB_REFUSED_SLOTS];

/* One worker's: written by that worker only, read by the admin thread.
 * Provider index WB_MAX_PROVIDERS counts requests for no known provider. */
typedef struct {
    atomic_ulong requests[WB_MAX_PROVIDERS + 1][WB_STATUS_SLOTS];
    atomic_ulong produced[WB_MAX_PROVIDERS];
    atomic_ulong deadlettered[WB_MAX_PROVIDERS];
    atomic_ulong deadletters[WB_MAX_PROVIDERS][WB_DL_REASONS];
    atomic_ulong refused[WB_MAX_PROVIDERS][WB_REFUSED_SLOTS]; /* refused for good, by reason */
    atomic_ulong auth_failures[WB_MAX_PROVIDERS];
    atomic_ulong spooled[WB_MAX_PROVIDERS];           /* answered 200 "spooled" */
    atomic_ulong latency_buckets[WB_LAT_BUCKETS + 1]; /* last: +Inf */
    atomic_ulong latency_sum_us;
    atomic_ulong kafka_errors[WB_KERR_SLOTS];
    atomic_long inflight;
    atomic_long connections;    /* webhook connections open */
    atomic_ulong http2_refused; /* HTTP/2 connections closed for their resets */
    atomic_ulong http2_resets;  /* streams ended before their answer */
    atomic_ulong accept_paused; /* times the listener paused (cap, fds) */
    /* gauges of the worker's producer, refreshed by its loop */
    atomic_long producer_queue; /* records queued or in flight */
    atomic_int brokers_up;      /* connections up to brokers known from metadata */
    atomic_int brokers_known;   /* brokers known from metadata */
    atomic_int kafka_reachable; /* some connection up, bootstrap ones included */
    atomic_int producer_fatal;  /* 1 while the producer must be replaced */
} wb_stats_t;

/* What admin.c reads: every worker's counters and the process's state.
 * The pointers stay valid until the server is freed. */
typedef struct {
    unsigned nworkers;
    wb_stats_t *const *workers;
    const atomic_int *draining;
    long producer_queue_max; /* queue.buffering.max.messages per producer */
    wb_topics_t *topics;     /* the topic registry, for the unsafe topics */
    struct wb_spool *spool;  /* NULL: no spool */
    const atomic_long *spooled_pending; /* per provider: in the spool, not yet acknowledged */
    struct wb_lookup *lookup;           /* api-lookup's counts; NULL: no provider uses it */
} wb_stats_view_t;

void wb_stats_count_status(wb_stats_t *st, unsigned prov_index, int status);
void wb_stats_count_kafka_error(wb_stats_t *st, rd_kafka_resp_err_t err);
void wb_stats_observe_latency(wb_stats_t *st, double ms);
/* A record of provider prov_index refused for good, reason a
 * wb_kafka_err_refused name. */
void wb_stats_count_refused(wb_stats_t *st, unsigned prov_index, const char *reason);

/* Kafka is reachable from this process: some producer has a broker
 * connection up (a dead or paused broker among live ones does not count). */
int wb_stats_kafka_reachable(const wb_stats_view_t *v);
/* Every producer usable (none waiting to be replaced after a fatal error). */
int wb_stats_producers_usable(const wb_stats_view_t *v);

#endif
