/* worker.h - one worker thread's state: its h2o event loop, its producer, its
 * parser, the requests waiting for their delivery reports and its counters;
 * and what the workers of a process share. server.c creates and runs the
 * workers; ingest.c serves their requests. A header only: it owns no code. */
#ifndef WB_WORKER_H
#define WB_WORKER_H

#include "config.h"
#include "json.h"
#include "kafka.h"
#include "lookup.h"
#include "spool.h"
#include "stats.h"
#include "topics.h"

#include <pthread.h>
#include <stdatomic.h>

/* Shared by every worker of the process (atomics only). */
typedef struct {
    /* per provider: the failure answers given so far, which picks the next
     * code of failure_statuses; starts at a random place in each process so
     * that replicas behind one load balancer do not rotate in step */
    atomic_uint failure_seq[WB_MAX_PROVIDERS];
    wb_topics_t *topics; /* what is known of the topics written to */
    wb_spool_t *spool;   /* NULL: no [spool] dir */
    /* per provider: its records in the spool, not yet acknowledged */
    atomic_long spooled_pending[WB_MAX_PROVIDERS];
    wb_lookup_t *lookup; /* api-lookup's caches; NULL: no provider uses it */
} wb_shared_t;

/* Peers remembered per worker after a refusal (the oldest is forgotten). */
#define WB_REFUSED_PEERS 64

/* A worker's h2o objects (loop, context, sockets) are created on the
 * worker's own thread: libh2o's socket buffer allocator is thread-local. */
typedef struct wb_worker {
    unsigned id;
    const wb_config_t *cfg;
    wb_shared_t *shared;
    h2o_globalconf_t *globalconf;
    int listen_fd; /* bound at start-up, wrapped by the worker's thread */
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    wb_kafka_t *kafka;
    wb_lookup_client_t *lookup; /* api-lookup's client on this loop, or NULL */
    wb_json_t json;
    h2o_timeout_t deadlines[WB_MAX_PROVIDERS];
    h2o_linklist_t pending; /* wb_pending_t still attached to a request */
    h2o_linklist_t held;    /* wb_pending_t waiting for their topic to be known */
    h2o_timeout_t spool_timers[WB_MAX_PROVIDERS]; /* spool_after_ms, per provider */
    h2o_linklist_t spooling; /* wb_pending_t added to the spool, until durable */
    int spool_dirty;         /* removals to commit */
    unsigned max_inflight;
    /* conn.c: every accepted connection (wb_conn_t), those refused for their
     * resets and waiting to be closed, and the cap (server.c pauses the
     * listener at it) */
    h2o_linklist_t conns, refused;
    unsigned nconns, max_connections;
    uint64_t conn_scan_ms;    /* the last look at every HTTP/2 connection */
    int accept_paused;        /* the listener is not read: at the cap, or out of fds */
    uint64_t accept_retry_ms; /* out of fds: when to try again */
    /* conn.c: peers whose HTTP/2 connection was refused lately; their new
     * connections start without a reset budget */
    struct wb_conn_peer {
        unsigned char addr[16];
        int family;
        uint64_t until_ms;
    } refused_peers[WB_REFUSED_PEERS];
    unsigned refused_peer_seq; /* entries ever added: the ring's next slot */
    int draining;
    wb_stats_t stats;
    pthread_t tid;
} wb_worker_t;

#endif
