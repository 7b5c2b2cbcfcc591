/* server.c - listeners and worker threads. Each worker owns an h2o event
 * loop, a listening socket bound to the same port (SO_REUSEPORT: the kernel
 * spreads connections), a producer and its counters; nothing is shared on
 * the hot path. Owns the drain: stop accepting, let in-flight requests get
 * their true answer, 503 what is left at the bound, flush, stop.
 * Must not: know webhooks (ingest.c) or metrics text (admin.c). */
#include "server.h"
#include "conn.h"
#include "ingest.h"
#include "log.h"
#include "worker.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct wb_server {
    const wb_config_t *cfg;
    h2o_globalconf_t globalconf;
    unsigned nworkers;
    wb_worker_t *workers;
    wb_shared_t shared;
    wb_stats_t **stats; /* &workers[i].stats, for the view */
    wb_stats_view_t view;
};

static atomic_int drain_requested;

void wb_server_request_drain(void)
{
    atomic_store(&drain_requested, 1);
}

const wb_stats_view_t *wb_server_stats(const wb_server_t *srv)
{
    return &srv->view;
}

int wb_server_listen(const char *addr, int reuseport, char *err, size_t errsz)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res = NULL;
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= sizeof(host))
        return wb_errf(err, errsz, -1, "%s: host too long", addr);
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') { /* [::1]:8080 */
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    int gai = getaddrinfo(host[0] != '\0' ? host : NULL, colon + 1, &hints, &res);
    if (gai != 0)
        return wb_errf(err, errsz, -1, "%s: %s", addr, gai_strerror(gai));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        wb_errf(err, errsz, -1, "%s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Stops reading the listener: the kernel keeps what comes in its backlog
 * (listen(2)'s 4096) until a connection closes (wb_conn_tick's caller
 * resumes) or, out of descriptors, for a while. */
static void pause_accepting(wb_worker_t *w, uint64_t retry_ms)
{
    if (!w->accept_paused) {
        h2o_socket_read_stop(w->listener);
        w->accept_paused = 1;
        atomic_fetch_add_explicit(&w->stats.accept_paused, 1, memory_order_relaxed);
    }
    w->accept_retry_ms = retry_ms;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    wb_worker_t *w = listener->data;
    h2o_socket_t *sock;
    if (err != NULL)
        return;
    /* accept a few at once: cheaper under a connection storm */
    for (int i = 0; i < 16; i++) {
        if (w->nconns >= w->max_connections) {
            pause_accepting(w, 0);
            return;
        }
        errno = 0;
        if ((sock = h2o_evloop_socket_accept(listener)) == NULL) {
            /* out of descriptors: the listener would stay readable and the
             * loop spin on it; the connection waits in the backlog instead */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                wb_logf(WB_LOG_WARN, "accept: %s; not accepting for 100 ms", strerror(errno));
                pause_accepting(w, wb_mono_ms() + 100);
            }
            return;
        }
        if (wb_conn_open(w, sock) != WB_OK) {
            h2o_socket_close(sock);
            continue;
        }
        h2o_accept(&w->accept_ctx, sock);
    }
}

/* Reads the listener again once under the cap (and past an fd shortage). */
static void resume_accepting(wb_worker_t *w)
{
    if (!w->accept_paused || w->listener == NULL || w->nconns >= w->max_connections ||
        (w->accept_retry_ms != 0 && wb_mono_ms() < w->accept_retry_ms))
        return;
    w->accept_paused = 0;
    w->accept_retry_ms = 0;
    h2o_socket_read_start(w->listener, on_accept);
}

static void stop_accepting(wb_worker_t *w)
{
    if (w->listener == NULL)
        return;
    h2o_socket_read_stop(w->listener);
    h2o_socket_close(w->listener);
    w->listener = NULL;
}

/* Connections still open, counting h2o's pending GOAWAY resend (linked for
 * one second by h2o_context_request_shutdown) so that the context can be
 * disposed once this is 0. */
int wb_server_connections_open(h2o_context_t *ctx)
{
    int n = h2o_timeout_is_linked(&ctx->http2._graceful_shutdown_timeout);
    for (h2o_linklist_t *l = ctx->http1._conns.next; l != &ctx->http1._conns; l = l->next)
        n++;
    for (h2o_linklist_t *l = ctx->http2._conns.next; l != &ctx->http2._conns; l = l->next)
        n++;
    return n;
}

/* On the worker's thread: its loop, context, listener and wake-up socket. */
static void worker_start(wb_worker_t *w)
{
    const wb_config_t *cfg = w->cfg;
    h2o_context_init(&w->ctx, h2o_evloop_create(), w->globalconf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = w->globalconf->hosts;
    for (unsigned i = 0; i < cfg->nproviders; i++) {
        h2o_timeout_init(w->ctx.loop, &w->deadlines[i], cfg->providers[i].deadline_ms);
        h2o_timeout_init(w->ctx.loop, &w->spool_timers[i], cfg->providers[i].spool_after_ms);
    }
    w->listener = h2o_evloop_socket_create(w->ctx.loop, w->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listen_fd = -1; /* the socket owns it */
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    wb_kafka_attach(w->kafka, w->ctx.loop);
    if (w->shared->lookup != NULL &&
        (w->lookup = wb_lookup_client_new(w->shared->lookup, w->ctx.loop,
                                          &w->ctx.receivers.hostinfo_getaddr)) == NULL)
        wb_logf(WB_LOG_ERROR, "worker %u: no memory for the api-lookup client: its look-ups fail",
                w->id);
}

/* On the worker's thread, before it ends: its h2o objects go with it (their
 * buffers belong to this thread's allocator). The producer stays, for the
 * admin thread, until wb_server_free. */
static void worker_stop(wb_worker_t *w)
{
    h2o_evloop_t *loop = w->ctx.loop;
    stop_accepting(w);
    wb_kafka_detach(w->kafka);
    wb_lookup_client_free(w->lookup); /* what still waits for an API: cancelled */
    w->lookup = NULL;
    h2o_evloop_run(loop, 0); /* let the closed sockets go */
    for (unsigned p = 0; p < w->cfg->nproviders; p++) {
        h2o_timeout_dispose(loop, &w->deadlines[p]);
        h2o_timeout_dispose(loop, &w->spool_timers[p]);
    }
    /* a context with open connections cannot be disposed (h2o asserts) */
    if (wb_server_connections_open(&w->ctx) > 0)
        return;
    h2o_context_dispose(&w->ctx);
    h2o_evloop_destroy(loop);
}

/* The producer's state as the admin thread shows it. */
static void publish_gauges(wb_worker_t *w)
{
    wb_kafka_brokers_t b;
    wb_kafka_brokers(w->kafka, &b);
    atomic_store_explicit(&w->stats.brokers_up, b.up, memory_order_relaxed);
    atomic_store_explicit(&w->stats.brokers_known, b.known, memory_order_relaxed);
    atomic_store_explicit(&w->stats.kafka_reachable, b.reachable, memory_order_relaxed);
    atomic_store_explicit(&w->stats.producer_queue, wb_kafka_queue_len(w->kafka),
                          memory_order_relaxed);
    atomic_store_explicit(&w->stats.producer_fatal, wb_kafka_fatal(w->kafka), memory_order_relaxed);
}

static void *worker_main(void *arg)
{
    wb_worker_t *w = arg;
    wb_ingest_thread_init();
    worker_start(w);
    wb_log_batch_begin();
    h2o_evloop_t *loop = w->ctx.loop;
    uint64_t drain_deadline = 0;

    for (;;) {
        /* Delivery reports are served only by the wake-up socket's callback,
         * inside the loop, so that an answer's write completion runs in the
         * same turn (ingest.c keep_reading relies on it). librdkafka writes
         * a wake-up byte each time its queue is non-empty after a poll: none
         * is lost. A record held until the registry knows its topic
         * (ingest.c) is looked at again every 2 ms, not at the next 50 ms
         * turn: the registry answers in milliseconds (a first webhook to a
         * new topic took 55 ms, measured, tests/README.md). */
        h2o_evloop_run(loop, h2o_linklist_is_empty(&w->held) ? 50 : 2);
        wb_conn_tick(w);
        resume_accepting(w);
        wb_ingest_tick(w);
        wb_log_flush();
        publish_gauges(w);
        if (wb_kafka_fatal(w->kafka)) {
            char err[256];
            if (wb_kafka_recover(w->kafka, err, sizeof(err)) != WB_OK)
                wb_logf(WB_LOG_ERROR, "cannot replace the producer: %s", err);
        }
        if (!w->draining && atomic_load(&drain_requested)) {
            w->draining = 1;
            stop_accepting(w);
            /* HTTP/2 connections get a GOAWAY; idle HTTP/1 keep-alive ones
             * expire at once (h2o 2.2 has no call for it: the timeout list
             * computes each expiry from its current value); requests waiting
             * for their report are not on that list */
            h2o_context_request_shutdown(&w->ctx);
            w->ctx.http1.req_timeout.timeout = 0;
            drain_deadline = wb_mono_ms() + w->cfg->drain_timeout_ms;
        }
        if (w->draining && (wb_ingest_drained(w) || wb_mono_ms() >= drain_deadline))
            break;
    }
    /* the bound is reached: whoever still waits gets a 503 now */
    wb_ingest_abort_pending(w);
    /* let the last answers leave and the connections close */
    uint64_t until = wb_mono_ms() + 2000;
    while (wb_mono_ms() < until && wb_server_connections_open(&w->ctx) > 0)
        h2o_evloop_run(loop, 10);
    uint64_t now = wb_mono_ms();
    int left_ms = drain_deadline > now + 1000 ? (int)(drain_deadline - now) : 1000;
    int left = wb_kafka_flush(w->kafka, left_ms);
    if (left > 0) /* no answer waits for these any more: their requests got a 503 */
        wb_kafka_purge(w->kafka);
    wb_log_t l;
    wb_log_begin(&l, left == 0 ? WB_LOG_INFO : WB_LOG_WARN, "worker drained");
    wb_log_int(&l, "worker", w->id);
    wb_log_int(&l, "unflushed_records", left);
    wb_log_int(&l, "open_connections", wb_server_connections_open(&w->ctx));
    wb_log_end(&l);
    worker_stop(w);
    wb_log_flush();
    return NULL;
}

static int worker_init(wb_server_t *srv, wb_worker_t *w, unsigned id, const char *bootstrap,
                       char *err, size_t errsz)
{
    const wb_config_t *cfg = srv->cfg;
    w->id = id;
    w->cfg = cfg;
    w->globalconf = &srv->globalconf;
    w->shared = &srv->shared;
    w->listen_fd = -1;
    w->max_inflight = (cfg->max_inflight + srv->nworkers - 1) / srv->nworkers;
    h2o_linklist_init_anchor(&w->pending);
    h2o_linklist_init_anchor(&w->held);
    h2o_linklist_init_anchor(&w->spooling);
    h2o_linklist_init_anchor(&w->conns);
    h2o_linklist_init_anchor(&w->refused);
    wb_json_init(&w->json, cfg->max_tokens);
    w->kafka = wb_kafka_new(cfg, bootstrap, NULL, wb_ingest_on_report, w, err, errsz);
    if (w->kafka == NULL)
        return -1;
    /* where records go when their own topic is missing: known before that day */
    wb_kafka_warm(w->kafka, cfg->deadletter_topic);
    for (unsigned i = 0; i < cfg->nproviders; i++)
        if (cfg->providers[i].unknown_topic_name != NULL)
            wb_kafka_warm(w->kafka, cfg->providers[i].unknown_topic_name);
    if ((w->listen_fd = wb_server_listen(cfg->listen, 1, err, errsz)) < 0)
        return -1;
    return 0;
}

/* Descriptors left under RLIMIT_NOFILE once start-up has opened its own
 * (producers, their broker sockets, the spool, the listeners). */
static long fd_headroom(void)
{
    struct rlimit rl;
    long open_fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || d == NULL) {
        if (d != NULL)
            closedir(d);
        return -1;
    }
    while (readdir(d) != NULL)
        open_fds++;
    closedir(d);
    return (long)rl.rlim_cur - (open_fds - 2); /* "." and ".." */
}

/* max_connections, split over the workers; lowered to what the descriptor
 * limit allows, keeping some for Kafka (a broker connection each, more
 * brokers learnt later) and the admin listener's clients, so that the
 * bridge stops accepting before accept(2) fails. */
static void set_connection_caps(wb_server_t *srv)
{
    unsigned cap = srv->cfg->max_connections;
    long headroom = fd_headroom();
    if (headroom >= 0) {
        long reserve = headroom / 2 < 64 ? headroom / 2 : 64;
        long allowed = headroom - reserve < 1 ? 1 : headroom - reserve;
        if ((long)cap > allowed) {
            wb_log_t l;
            wb_log_begin(&l, WB_LOG_WARN,
                         "max_connections lowered to what the file descriptor limit allows");
            wb_log_int(&l, "max_connections", cap);
            wb_log_int(&l, "lowered_to", allowed);
            wb_log_int(&l, "fds_free", headroom);
            wb_log_end(&l);
            cap = (unsigned)allowed;
        }
    }
    for (unsigned i = 0; i < srv->nworkers; i++)
        srv->workers[i].max_connections = (cap + srv->nworkers - 1) / srv->nworkers;
}

wb_server_t *wb_server_new(const wb_config_t *cfg, const char *bootstrap, char *err, size_t errsz)
{
    wb_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return NULL;
    srv->cfg = cfg;
    srv->nworkers = cfg->threads;
    h2o_config_init(&srv->globalconf);
    /* over this h2o itself answers 413 (plain text); up to it ingest.c
     * answers with the JSON error of the provider's own limit */
    srv->globalconf.max_request_entity_size = wb_config_max_body(cfg) * 2 + 4096;
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("webhook-bridge"));
    /* off: the HTTP/2 preface is a bad HTTP/1 request (400), Upgrade: h2c ignored */
    srv->globalconf.http1.upgrade_to_http2 = cfg->http2;
    h2o_hostconf_t *host =
        h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/webhooks/", 0);
    h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = wb_ingest_on_req;
    pc = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = wb_ingest_not_found;

    if ((srv->workers = calloc(srv->nworkers, sizeof(*srv->workers))) == NULL ||
        (srv->stats = calloc(srv->nworkers, sizeof(*srv->stats))) == NULL)
        goto fail;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        srv->workers[i].listen_fd = -1;
        srv->stats[i] = &srv->workers[i].stats;
    }
    /* each process starts its rotations of failure codes somewhere else */
    unsigned seed[WB_MAX_PROVIDERS];
    if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
        for (unsigned i = 0; i < WB_MAX_PROVIDERS; i++)
            seed[i] = (unsigned)getpid() * 2654435761u + i;
    for (unsigned i = 0; i < WB_MAX_PROVIDERS; i++)
        atomic_init(&srv->shared.failure_seq[i], seed[i]);
    if ((srv->shared.topics = wb_topics_new(cfg, bootstrap, err, errsz)) == NULL)
        goto fail;
    if (cfg->spool_dir != NULL) {
        char path[4096];
        if (mkdir(cfg->spool_dir, 0700) != 0 && errno != EEXIST) {
            wb_errf(err, errsz, WB_ERR_CONFIG, "spool dir %s: %s", cfg->spool_dir, strerror(errno));
            goto fail;
        }
        snprintf(path, sizeof(path), "%s/spool.db", cfg->spool_dir);
        if ((srv->shared.spool = wb_spool_open(path, cfg->spool_max_bytes, err, errsz)) == NULL)
            goto fail;
        /* what a provider left in the spool goes first, before its new records */
        for (unsigned i = 0; i < cfg->nproviders; i++)
            atomic_init(&srv->shared.spooled_pending[i],
                        (long)wb_spool_count(srv->shared.spool, cfg->providers[i].name));
    }
    const wb_lookup_conf_t *lookups[WB_MAX_PROVIDERS] = {NULL};
    int any_lookup = 0;
    for (unsigned i = 0; i < cfg->nproviders; i++)
        if (cfg->providers[i].enabled &&
            (lookups[i] = wb_auth_lookup(cfg->providers[i].auth)) != NULL)
            any_lookup = 1;
    if (any_lookup && (srv->shared.lookup = wb_lookup_new(lookups, cfg->nproviders)) == NULL) {
        wb_errf(err, errsz, WB_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < srv->nworkers; i++)
        if (worker_init(srv, &srv->workers[i], i, bootstrap, err, errsz) != 0)
            goto fail;
    set_connection_caps(srv);
    srv->view.nworkers = srv->nworkers;
    srv->view.workers = srv->stats;
    srv->view.draining = &drain_requested;
    srv->view.producer_queue_max = wb_kafka_queue_max(cfg);
    srv->view.topics = srv->shared.topics;
    srv->view.spool = srv->shared.spool;
    srv->view.spooled_pending = srv->shared.spooled_pending;
    srv->view.lookup = srv->shared.lookup;
    return srv;
fail:
    wb_server_free(srv);
    return NULL;
}

int wb_server_run(wb_server_t *srv)
{
    for (unsigned i = 1; i < srv->nworkers; i++)
        pthread_create(&srv->workers[i].tid, NULL, worker_main, &srv->workers[i]);
    worker_main(&srv->workers[0]);
    for (unsigned i = 1; i < srv->nworkers; i++)
        pthread_join(srv->workers[i].tid, NULL);
    return 0;
}

void wb_server_free(wb_server_t *srv)
{
    if (srv == NULL)
        return;
    for (unsigned i = 0; srv->workers != NULL && i < srv->nworkers; i++) {
        wb_worker_t *w = &srv->workers[i];
        if (w->listen_fd >= 0)
            close(w->listen_fd);
        wb_kafka_destroy(w->kafka); /* its h2o socket is gone already (worker_stop) */
        wb_json_free(&w->json);
    }
    wb_topics_free(srv->shared.topics);
    wb_spool_close(srv->shared.spool);
    wb_lookup_free(srv->shared.lookup);
    h2o_config_dispose(&srv->globalconf);
    free(srv->workers);
    free(srv->stats);
    free(srv);
}
