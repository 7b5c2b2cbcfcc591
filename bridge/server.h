/* server.h - the worker threads (one h2o event loop and one producer each,
 * sharing the port with SO_REUSEPORT), their counters, and the drain. */
#ifndef WB_SERVER_H
#define WB_SERVER_H

#include "config.h"
#include "json.h"
#include "kafka.h"

#include <pthread.h>
#include <stdatomic.h>

/* Answer statuses counted per provider; the last slot is "any other". */
#define WB_STATUS_SLOTS 10
extern const int wb_status_codes[WB_STATUS_SLOTS];
/* Kafka write latency histogram bounds, in milliseconds. */
#define WB_LAT_BUCKETS 14
extern const double wb_latency_bounds_ms[WB_LAT_BUCKETS];
/* Kafka errors counted by name; the last slot is "any other". */
#define WB_KERR_SLOTS 10
extern const rd_kafka_resp_err_t wb_kafka_errors[WB_KERR_SLOTS - 1];

/* Written by the owning worker only (relaxed atomics); summed by admin.c.
 * Provider index WB_MAX_PROVIDERS counts requests for no known provider. */
typedef struct {
    atomic_ulong requests[WB_MAX_PROVIDERS + 1][WB_STATUS_SLOTS];
    atomic_ulong produced[WB_MAX_PROVIDERS];
    atomic_ulong deadlettered[WB_MAX_PROVIDERS];
    atomic_ulong auth_failures[WB_MAX_PROVIDERS];
    atomic_ulong latency_buckets[WB_LAT_BUCKETS + 1]; /* last: +Inf */
    atomic_ulong latency_sum_us;
    atomic_ulong kafka_errors[WB_KERR_SLOTS];
    atomic_long inflight;
} wb_stats_t;

/* A worker's h2o objects (loop, context, sockets) are created on the
 * worker's own thread: libh2o's socket buffer allocator is thread-local. */
typedef struct wb_worker {
    unsigned id;
    const wb_config_t *cfg;
    h2o_globalconf_t *globalconf;
    int listen_fd; /* bound at start-up, wrapped by the worker's thread */
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    wb_kafka_t *kafka;
    wb_json_t json;
    h2o_timeout_t deadlines[WB_MAX_PROVIDERS];
    h2o_linklist_t pending; /* wb_pending_t still attached to a request */
    unsigned max_inflight;
    int draining;
    wb_stats_t stats;
    pthread_t tid;
} wb_worker_t;

typedef struct wb_server wb_server_t;

/* Binds the listeners and creates the workers (one producer each on
 * bootstrap). Returns NULL with err on failure. */
wb_server_t *wb_server_new(const wb_config_t *cfg, const char *bootstrap, char *err, size_t errsz);
/* Runs the workers and the admin listener until a drain completes. */
int wb_server_run(wb_server_t *srv);
/* Async-signal-safe: starts the drain. */
void wb_server_request_drain(void);
int wb_server_draining(void);
void wb_server_free(wb_server_t *srv);

/* For admin.c */
unsigned wb_server_nworkers(const wb_server_t *srv);
wb_worker_t *wb_server_worker(wb_server_t *srv, unsigned i);

void wb_stats_count_kafka_error(wb_stats_t *st, rd_kafka_resp_err_t err);

/* Connections (and h2o shutdown timers) still alive on ctx. */
int wb_server_connections_open(h2o_context_t *ctx);

/* Opens a listening TCP socket (SO_REUSEPORT when reuseport). -1 with err. */
int wb_server_listen(const char *addr, int reuseport, char *err, size_t errsz);

#endif
