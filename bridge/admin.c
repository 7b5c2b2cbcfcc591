/* admin.c - the admin listener on its own thread and event loop, so that
 * probes and scrapes answer even when the webhook loops are saturated.
 * /healthz: the process serves. /readyz: this process can take webhooks (not
 * draining, producers usable; with ready_requires_kafka also some broker
 * connection up). It does not follow the shared cluster's health: every
 * replica shares it, and a Service with no ready replica makes the load
 * balancer answer every provider itself. /metrics: the Prometheus text
 * format, summed over the workers' counters (stats.h).
 * Must not: write to the workers' state. */
#include "admin.h"
#include "kafka.h"
#include "lookup.h"
#include "server.h"
#include "log.h"
#include "spool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct wb_admin {
    const wb_config_t *cfg;
    const wb_stats_view_t *view;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int listen_fd; /* bound at start-up, wrapped by the admin thread */
    pthread_t tid;
    int started;
    atomic_int stop;
    int was_reachable; /* admin thread only: for the log line on a change */
};

typedef struct {
    h2o_handler_t super;
    wb_admin_t *admin;
} wb_admin_handler_t;

static void send_text(h2o_req_t *req, int status, const char *reason, const char *ctype,
                      const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype,
                   strlen(ctype));
    h2o_send_inline(req, body, len);
}

static int on_healthz(h2o_handler_t *self, h2o_req_t *req)
{
    send_text(req, 200, "OK", "application/json", H2O_STRLIT("{\"status\":\"ok\"}"));
    return 0;
}

/* The cluster refuses the producers' credentials (SASL, TLS) and none of
 * them has a broker connection up. */
static int kafka_auth_failed(const wb_stats_view_t *v)
{
    return wb_kafka_client_refused(WB_CLIENT_PRODUCER) && !wb_stats_kafka_reachable(v);
}

static int on_readyz(h2o_handler_t *self, h2o_req_t *req)
{
    wb_admin_t *a = ((wb_admin_handler_t *)self)->admin;
    const wb_stats_view_t *v = a->view;
    int reachable = wb_stats_kafka_reachable(v), usable = wb_stats_producers_usable(v);
    int auth_failed = kafka_auth_failed(v);
    const char *status = "ready";
    if (atomic_load(v->draining))
        status = "draining";
    else if (!usable)
        status = "producer_unusable";
    else if (a->cfg->ready_requires_kafka && !reachable)
        status = "kafka_unreachable";
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"kafka\":\"%s\"}", status,
                     reachable     ? "reachable"
                     : auth_failed ? "authentication_failed"
                                   : "unreachable");
    char *copy = h2o_mem_alloc_pool(&req->pool, (size_t)n);
    memcpy(copy, body, (size_t)n);
    if (strcmp(status, "ready") == 0)
        send_text(req, 200, "OK", "application/json", copy, (size_t)n);
    else
        send_text(req, 503, "Service Unavailable", "application/json", copy, (size_t)n);
    return 0;
}

#define SUM(field)                                                                                 \
    ({                                                                                             \
        unsigned long s_ = 0;                                                                      \
        for (unsigned w_ = 0; w_ < a->view->nworkers; w_++)                                        \
            s_ += (unsigned long)atomic_load_explicit(&a->view->workers[w_]->field,                \
                                                      memory_order_relaxed);                       \
        s_;                                                                                        \
    })

static void render_unsafe(void *ctx, const char *topic, int rf, int min_isr)
{
    wb_buf_printf(ctx,
                  "webhook_bridge_topic_unsafe{topic=\"%s\",replication_factor=\"%d\","
                  "min_insync_replicas=\"%d\"} 1\n",
                  topic, rf, min_isr);
}

static void render_small(void *ctx, const char *topic, long max_bytes)
{
    wb_buf_printf(ctx, "webhook_bridge_topic_too_small{topic=\"%s\",max_message_bytes=\"%ld\"} 1\n",
                  topic, max_bytes);
}

static void render(wb_admin_t *a, wb_buf_t *b)
{
    const wb_config_t *cfg = a->cfg;
    wb_buf_printf(b,
                  "# HELP webhook_bridge_build_info Build information.\n"
                  "# TYPE webhook_bridge_build_info gauge\n"
                  "webhook_bridge_build_info{version=\"%s\",librdkafka=\"%s\",h2o=\"%s\"} 1\n",
                  WB_VERSION, rd_kafka_version_str(), H2O_VERSION);

    wb_buf_printf(b, "# HELP webhook_bridge_requests_total Webhook requests by provider and "
                     "answer status.\n# TYPE webhook_bridge_requests_total counter\n");
    for (unsigned p = 0; p <= cfg->nproviders; p++) {
        unsigned pi = p < cfg->nproviders ? p : WB_MAX_PROVIDERS;
        const char *name = p < cfg->nproviders ? cfg->providers[p].name : "none";
        for (unsigned s = 0; s < WB_STATUS_SLOTS; s++) {
            unsigned long v = SUM(requests[pi][s]);
            if (v == 0 && (s == WB_STATUS_SLOTS - 1 || pi == WB_MAX_PROVIDERS))
                continue;
            if (wb_status_codes[s] != 0)
                wb_buf_printf(b, "webhook_bridge_requests_total{provider=\"%s\",code=\"%d\"} %lu\n",
                              name, wb_status_codes[s], v);
            else
                wb_buf_printf(b,
                              "webhook_bridge_requests_total{provider=\"%s\",code=\"other\"} %lu\n",
                              name, v);
        }
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } per_provider[] = {
        {"webhook_bridge_records_produced_total", "Records acknowledged by Kafka.",
         offsetof(wb_stats_t, produced)},
        {"webhook_bridge_records_deadlettered_total",
         "Records of the wrong shape acknowledged in the dead-letter topic.",
         offsetof(wb_stats_t, deadlettered)},
        {"webhook_bridge_auth_failures_total", "Requests refused by authentication.",
         offsetof(wb_stats_t, auth_failures)},
        {"webhook_bridge_spooled_total", "Webhooks answered 200 once in the spool.",
         offsetof(wb_stats_t, spooled)},
    };
    for (unsigned m = 0; m < WB_ARRAY_SIZE(per_provider); m++) {
        wb_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", per_provider[m].name,
                      per_provider[m].help, per_provider[m].name);
        for (unsigned p = 0; p < cfg->nproviders; p++) {
            unsigned long v = 0;
            for (unsigned w = 0; w < a->view->nworkers; w++) {
                const atomic_ulong *arr =
                    (const atomic_ulong *)((const char *)a->view->workers[w] + per_provider[m].off);
                v += atomic_load_explicit(&arr[p], memory_order_relaxed);
            }
            wb_buf_printf(b, "%s{provider=\"%s\"} %lu\n", per_provider[m].name,
                          cfg->providers[p].name, v);
        }
    }

    wb_buf_printf(b, "# HELP webhook_bridge_kafka_write_latency_seconds Time from request to "
                     "Kafka delivery report.\n"
                     "# TYPE webhook_bridge_kafka_write_latency_seconds histogram\n");
    unsigned long cum = 0;
    for (unsigned i = 0; i <= WB_LAT_BUCKETS; i++) {
        cum += SUM(latency_buckets[i]);
        if (i < WB_LAT_BUCKETS)
            wb_buf_printf(b, "webhook_bridge_kafka_write_latency_seconds_bucket{le=\"%g\"} %lu\n",
                          wb_latency_bounds_ms[i] / 1000.0, cum);
        else
            wb_buf_printf(b, "webhook_bridge_kafka_write_latency_seconds_bucket{le=\"+Inf\"} %lu\n",
                          cum);
    }
    wb_buf_printf(b,
                  "webhook_bridge_kafka_write_latency_seconds_sum %.6f\n"
                  "webhook_bridge_kafka_write_latency_seconds_count %lu\n",
                  (double)SUM(latency_sum_us) / 1e6, cum);

    wb_buf_printf(b, "# HELP webhook_bridge_deadletters_total Records acknowledged in the "
                     "dead-letter topic, by reason.\n"
                     "# TYPE webhook_bridge_deadletters_total counter\n");
    for (unsigned p = 0; p < cfg->nproviders; p++)
        for (unsigned r = 0; r < WB_DL_REASONS; r++)
            wb_buf_printf(b,
                          "webhook_bridge_deadletters_total{provider=\"%s\",reason=\"%s\"} %lu\n",
                          cfg->providers[p].name, wb_dl_reason_names[r], SUM(deadletters[p][r]));

    wb_buf_printf(b, "# HELP webhook_bridge_refused_total Records Kafka refused for good (too "
                     "large, invalid, topic not allowed, policy), dead-lettered: never a retry.\n"
                     "# TYPE webhook_bridge_refused_total counter\n");
    for (unsigned p = 0; p < cfg->nproviders; p++)
        for (unsigned r = 0; r < WB_REFUSED_SLOTS; r++)
            wb_buf_printf(b, "webhook_bridge_refused_total{provider=\"%s\",reason=\"%s\"} %lu\n",
                          cfg->providers[p].name, wb_refused_names[r], SUM(refused[p][r]));

    wb_buf_printf(b,
                  "# HELP webhook_bridge_record_max_bytes The largest record a body of max_body "
                  "makes (the producer's message.max.bytes at least).\n"
                  "# TYPE webhook_bridge_record_max_bytes gauge\n"
                  "webhook_bridge_record_max_bytes %zu\n"
                  "# HELP webhook_bridge_topic_too_small Topics written to whose "
                  "max.message.bytes is under webhook_bridge_record_max_bytes: a body that does "
                  "not compress under it becomes a dead letter.\n"
                  "# TYPE webhook_bridge_topic_too_small gauge\n",
                  wb_kafka_record_max(cfg));
    wb_topics_small(a->view->topics, render_small, b);

    /* topics are few and bounded (topics.c tracks at most 1024) */
    wb_buf_printf(b, "# HELP webhook_bridge_topic_unsafe Topics written to whose replication "
                     "factor or min.insync.replicas is under the floor (-1: not known).\n"
                     "# TYPE webhook_bridge_topic_unsafe gauge\n");
    unsigned unsafe = wb_topics_unsafe(a->view->topics, render_unsafe, b);
    wb_buf_printf(b,
                  "# HELP webhook_bridge_topics_unsafe How many topics written to cannot keep "
                  "the promise.\n# TYPE webhook_bridge_topics_unsafe gauge\n"
                  "webhook_bridge_topics_unsafe %u\n",
                  unsafe);

    if (a->view->spool != NULL) {
        wb_spool_stats_t st;
        wb_spool_stats(a->view->spool, &st);
        int64_t now = (int64_t)time(NULL) * 1000;
        wb_buf_printf(b,
                      "# HELP webhook_bridge_spool_records Records in the spool, not yet "
                      "acknowledged by Kafka.\n# TYPE webhook_bridge_spool_records gauge\n"
                      "webhook_bridge_spool_records %llu\n"
                      "# HELP webhook_bridge_spool_bytes Keys and values in the spool.\n"
                      "# TYPE webhook_bridge_spool_bytes gauge\nwebhook_bridge_spool_bytes %llu\n"
                      "# HELP webhook_bridge_spool_oldest_seconds Age of the oldest spooled "
                      "record (0: empty).\n# TYPE webhook_bridge_spool_oldest_seconds gauge\n"
                      "webhook_bridge_spool_oldest_seconds %.3f\n"
                      "# HELP webhook_bridge_spool_replayed_total Spooled records acknowledged "
                      "by Kafka through the replayer.\n"
                      "# TYPE webhook_bridge_spool_replayed_total counter\n"
                      "webhook_bridge_spool_replayed_total %llu\n"
                      "# HELP webhook_bridge_spool_corrupt_total Spooled records found damaged "
                      "and moved aside (table corrupt of the spool file).\n"
                      "# TYPE webhook_bridge_spool_corrupt_total counter\n"
                      "webhook_bridge_spool_corrupt_total %llu\n"
                      "# HELP webhook_bridge_spool_commits_total Spool transactions committed "
                      "(each one fsync of the write-ahead log, or more).\n"
                      "# TYPE webhook_bridge_spool_commits_total counter\n"
                      "webhook_bridge_spool_commits_total %llu\n",
                      (unsigned long long)st.records, (unsigned long long)st.bytes,
                      st.oldest_ms > 0 && now > st.oldest_ms ? (double)(now - st.oldest_ms) / 1e3
                                                             : 0.0,
                      (unsigned long long)wb_spool_replayed_total(a->view->spool),
                      (unsigned long long)st.corrupt, (unsigned long long)st.commits);
        wb_buf_printf(b, "# HELP webhook_bridge_spool_provider_records A spooling provider's "
                         "records in the spool, not yet acknowledged by Kafka (its new records "
                         "go through the spool while this is not 0).\n"
                         "# TYPE webhook_bridge_spool_provider_records gauge\n");
        for (unsigned i = 0; i < a->cfg->nproviders; i++)
            if (a->cfg->providers[i].spool)
                wb_buf_printf(b, "webhook_bridge_spool_provider_records{provider=\"%s\"} %ld\n",
                              a->cfg->providers[i].name, atomic_load(&a->view->spooled_pending[i]));
    }

    if (a->view->lookup != NULL) {
        wb_buf_printf(b, "# HELP webhook_bridge_auth_lookups_total auth = api-lookup: events the "
                         "provider's API confirmed, refused (401), could not confirm (failed: "
                         "a failure answer), or the cache confirmed.\n"
                         "# TYPE webhook_bridge_auth_lookups_total counter\n");
        for (unsigned i = 0; i < a->cfg->nproviders; i++) {
            wb_lookup_counts_t lc;
            if (wb_auth_lookup(a->cfg->providers[i].auth) == NULL)
                continue;
            wb_lookup_counts(a->view->lookup, i, &lc);
            const char *name = a->cfg->providers[i].name;
            wb_buf_printf(
                b,
                "webhook_bridge_auth_lookups_total{provider=\"%s\",result=\"confirmed\"} %lu\n"
                "webhook_bridge_auth_lookups_total{provider=\"%s\",result=\"refused\"} %lu\n"
                "webhook_bridge_auth_lookups_total{provider=\"%s\",result=\"failed\"} %lu\n"
                "webhook_bridge_auth_lookups_total{provider=\"%s\",result=\"cached\"} %lu\n",
                name, lc.confirmed, name, lc.refused, name, lc.failed, name, lc.cache_hits);
        }
    }

    int reachable = wb_stats_kafka_reachable(a->view);
    wb_buf_printf(b,
                  "# HELP webhook_bridge_inflight_requests Requests waiting for their Kafka "
                  "acknowledgement.\n# TYPE webhook_bridge_inflight_requests gauge\n"
                  "webhook_bridge_inflight_requests %lu\n"
                  "# HELP webhook_bridge_producer_queue_messages Records in the producers' "
                  "queues, in flight included.\n"
                  "# TYPE webhook_bridge_producer_queue_messages gauge\n"
                  "webhook_bridge_producer_queue_messages %lu\n"
                  "# HELP webhook_bridge_producer_queue_max_messages The producers' bound on "
                  "records waiting (queue.buffering.max.messages, summed).\n"
                  "# TYPE webhook_bridge_producer_queue_max_messages gauge\n"
                  "webhook_bridge_producer_queue_max_messages %ld\n",
                  SUM(inflight), SUM(producer_queue),
                  a->view->producer_queue_max * (long)a->view->nworkers);
    wb_buf_printf(b,
                  "# HELP webhook_bridge_connections Webhook connections open.\n"
                  "# TYPE webhook_bridge_connections gauge\nwebhook_bridge_connections %lu\n"
                  "# HELP webhook_bridge_accept_paused_total Times the webhook listener stopped "
                  "accepting (max_connections reached, or no file descriptor left).\n"
                  "# TYPE webhook_bridge_accept_paused_total counter\n"
                  "webhook_bridge_accept_paused_total %lu\n"
                  "# HELP webhook_bridge_http2_resets_total HTTP/2 streams that ended before "
                  "their answer (client reset).\n"
                  "# TYPE webhook_bridge_http2_resets_total counter\n"
                  "webhook_bridge_http2_resets_total %lu\n"
                  "# HELP webhook_bridge_http2_refused_total HTTP/2 connections closed (GOAWAY "
                  "ENHANCE_YOUR_CALM) for resetting streams faster than they let them finish.\n"
                  "# TYPE webhook_bridge_http2_refused_total counter\n"
                  "webhook_bridge_http2_refused_total %lu\n",
                  SUM(connections), SUM(accept_paused), SUM(http2_resets), SUM(http2_refused));
    wb_buf_printf(b, "# HELP webhook_bridge_kafka_errors_total Failed Kafka writes by error.\n"
                     "# TYPE webhook_bridge_kafka_errors_total counter\n");
    for (unsigned i = 0; i < WB_KERR_SLOTS; i++)
        wb_buf_printf(b, "webhook_bridge_kafka_errors_total{error=\"%s\"} %lu\n",
                      i < WB_KERR_SLOTS - 1 ? rd_kafka_err2name(wb_kafka_errors[i]) : "other",
                      SUM(kafka_errors[i]));
    /* brokers: the first worker's producer (every producer talks to the same cluster) */
    wb_buf_printf(b,
                  "# HELP webhook_bridge_kafka_reachable 1 while a producer has a broker "
                  "connection up.\n# TYPE webhook_bridge_kafka_reachable gauge\n"
                  "webhook_bridge_kafka_reachable %d\n"
                  "# HELP webhook_bridge_kafka_authentication_failed 1 while the cluster refuses "
                  "the bridge's credentials or certificates (SASL, TLS) and no broker takes it.\n"
                  "# TYPE webhook_bridge_kafka_authentication_failed gauge\n"
                  "webhook_bridge_kafka_authentication_failed %d\n"
                  "# HELP webhook_bridge_kafka_brokers_up Brokers known from metadata whose "
                  "connection is up.\n# TYPE webhook_bridge_kafka_brokers_up gauge\n"
                  "webhook_bridge_kafka_brokers_up %d\n"
                  "# HELP webhook_bridge_kafka_brokers_known Brokers known from metadata.\n"
                  "# TYPE webhook_bridge_kafka_brokers_known gauge\n"
                  "webhook_bridge_kafka_brokers_known %d\n"
                  "# HELP webhook_bridge_producer_usable 0 while a producer waits to be "
                  "replaced after a fatal error.\n# TYPE webhook_bridge_producer_usable gauge\n"
                  "webhook_bridge_producer_usable %d\n"
                  "# HELP webhook_bridge_draining 1 while the bridge drains.\n"
                  "# TYPE webhook_bridge_draining gauge\nwebhook_bridge_draining %d\n",
                  reachable, kafka_auth_failed(a->view),
                  atomic_load(&a->view->workers[0]->brokers_up),
                  atomic_load(&a->view->workers[0]->brokers_known),
                  wb_stats_producers_usable(a->view), atomic_load(a->view->draining));
}

static int on_metrics(h2o_handler_t *self, h2o_req_t *req)
{
    wb_admin_t *a = ((wb_admin_handler_t *)self)->admin;
    wb_buf_t b;
    wb_buf_init(&b, 1 << 20);
    render(a, &b);
    char *body = h2o_mem_alloc_pool(&req->pool, b.len + 1);
    memcpy(body, b.p, b.len);
    send_text(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, b.len);
    wb_buf_free(&b);
    return 0;
}

static int on_other(h2o_handler_t *self, h2o_req_t *req)
{
    send_text(req, 404, "Not Found", "application/json",
              H2O_STRLIT("{\"error\":\"not_found\",\"message\":\"/healthz, /readyz, /metrics\"}"));
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    wb_admin_t *a = listener->data;
    h2o_socket_t *sock;
    if (err == NULL && (sock = h2o_evloop_socket_accept(listener)) != NULL)
        h2o_accept(&a->accept_ctx, sock);
}

static void add_route(wb_admin_t *a, h2o_hostconf_t *host, const char *path,
                      int (*cb)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pc = h2o_config_register_path(host, path, 0);
    wb_admin_handler_t *h = (wb_admin_handler_t *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = cb;
    h->admin = a;
}

wb_admin_t *wb_admin_new(const wb_config_t *cfg, const wb_stats_view_t *view, char *err,
                         size_t errsz)
{
    wb_admin_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->cfg = cfg;
    a->view = view;
    a->was_reachable = 0;
    a->listen_fd = -1;
    h2o_config_init(&a->globalconf);
    h2o_hostconf_t *host =
        h2o_config_register_host(&a->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    add_route(a, host, "/healthz", on_healthz);
    add_route(a, host, "/readyz", on_readyz);
    add_route(a, host, "/metrics", on_metrics);
    add_route(a, host, "/", on_other);
    if ((a->listen_fd = wb_server_listen(cfg->admin_listen, 0, err, errsz)) < 0) {
        wb_admin_free(a);
        return NULL;
    }
    return a;
}

static void *admin_main(void *arg)
{
    wb_admin_t *a = arg;
    /* h2o objects on the thread that runs them (thread-local allocators) */
    h2o_context_init(&a->ctx, h2o_evloop_create(), &a->globalconf);
    a->accept_ctx.ctx = &a->ctx;
    a->accept_ctx.hosts = a->globalconf.hosts;
    a->listener = h2o_evloop_socket_create(a->ctx.loop, a->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    a->listen_fd = -1;
    a->listener->data = a;
    h2o_socket_read_start(a->listener, on_accept);
    while (!atomic_load(&a->stop)) {
        h2o_evloop_run(a->ctx.loop, 100);
        int reachable = wb_stats_kafka_reachable(a->view);
        if (reachable != a->was_reachable)
            wb_logf(reachable ? WB_LOG_INFO : WB_LOG_WARN,
                    reachable ? "kafka reachable" : "kafka unreachable: no broker connection up");
        a->was_reachable = reachable;
    }
    h2o_context_request_shutdown(&a->ctx);
    for (int i = 0; i < 200 && wb_server_connections_open(&a->ctx) > 0; i++)
        h2o_evloop_run(a->ctx.loop, 10);
    /* the h2o objects go on this thread, whose allocator their buffers use */
    h2o_socket_read_stop(a->listener);
    h2o_socket_close(a->listener);
    a->listener = NULL;
    h2o_evloop_run(a->ctx.loop, 0);
    if (wb_server_connections_open(&a->ctx) == 0) {
        h2o_evloop_t *loop = a->ctx.loop;
        h2o_context_dispose(&a->ctx);
        h2o_evloop_destroy(loop);
    }
    return NULL;
}

void wb_admin_start(wb_admin_t *a)
{
    pthread_create(&a->tid, NULL, admin_main, a);
    a->started = 1;
}

void wb_admin_stop(wb_admin_t *a)
{
    if (!a->started)
        return;
    atomic_store(&a->stop, 1);
    pthread_join(a->tid, NULL);
    a->started = 0;
}

void wb_admin_free(wb_admin_t *a)
{
    if (a == NULL)
        return;
    wb_admin_stop(a);
    if (a->listen_fd >= 0)
        close(a->listen_fd);
    h2o_config_dispose(&a->globalconf);
    free(a);
}
