/* kafka.c - the producer side of the ack gate. librdkafka writes a byte to
 * a pipe when its main queue becomes non-empty; the read end is an h2o
 * socket of the worker's loop, whose callback calls rd_kafka_poll(): every
 * delivery report runs on the thread that owns the request, with no lock and
 * no extra thread. Owns: the producer, its pipe, the mock cluster.
 * Must not: touch HTTP requests (ingest.c does, through the report callback). */
#include "kafka.h"
#include "json.h"
#include "log.h"

#include <librdkafka/rdkafka_mock.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <pthread.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

struct wb_kafka {
    wb_client_role_t role; /* first: what every client's opaque starts with (role_of) */
    rd_kafka_t *rk;        /* replaced after a fatal error, under lock */
    pthread_mutex_t lock; /* for the admin thread's reads of rk */
    const wb_config_t *cfg;
    char *bootstrap;
    int pipefd[2];
    h2o_socket_t *sock;
    wb_kafka_report_cb cb;
    void *cb_ctx;
    atomic_int fatal;
    wb_json_t stats_json;                         /* parses the statistics, on the loop's thread */
    rd_kafka_topic_t *warm[WB_MAX_PROVIDERS + 1]; /* topics known before their first record */
    unsigned nwarm;
    atomic_int brokers_up, brokers_known, reachable, measured;
    int down_stats;         /* statistics in a row with no connection up (on_stats) */
};

struct wb_kafka_mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
};

/* A success without an offset is not an acknowledgement here. librdkafka
 * reports one when a produce request's answer was an error it takes for a
 * success (DUPLICATE_SEQUENCE_NUMBER: "an earlier attempt was written"; the
 * answer carries no offset): seen once on real Kafka after a leader was
 * SIGKILLed (offset -1001, the record was in Kafka), and on the mock cluster
 * with that error injected (offset -1, the record was not written); still
 * so in librdkafka 2.14.2 (tests/integration/test_kafka_failures.py). No
 * receipt without an offset: it becomes WB_KAFKA_ERR_NO_OFFSET, a failure
 * (the provider retries; consumers deduplicate) or, for a spooling
 * provider, a record for the spool. */
const char *wb_kafka_err_str(rd_kafka_resp_err_t err)
{
    return err == WB_KAFKA_ERR_NO_OFFSET
               ? "Kafka reported the write as done without an offset: not taken as an ack"
               : rd_kafka_err2str(err);
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    wb_kafka_t *k = opaque;
    wb_report_t rep = {m->err, m->partition, m->offset, m->key, m->payload, m->key_len, m->len};
    if (rep.err == RD_KAFKA_RESP_ERR_NO_ERROR && rep.offset < 0)
        rep.err = WB_KAFKA_ERR_NO_OFFSET;
    k->cb(m->_private, &rep, k->cb_ctx);
}

static int str_is(const wb_json_val_t *v, const char *lit)
{
    size_t n = strlen(lit);
    return v->kind == WB_JSON_STRING && v->raw.len == n && memcmp(v->raw.p, lit, n) == 0;
}

/* librdkafka's statistics (statistics.interval.ms): each broker handle's
 * connection state. Readiness and the reachability metric come from here,
 * the producer's own connections, not from a fresh round trip to one broker:
 * a broker that is dead or paused among live ones does not make the bridge
 * look cut off. A paused broker's connection stays UP until its requests
 * time out (socket.timeout.ms): that is right, the others still take writes. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    wb_kafka_t *k = opaque;
    int up = 0, known = 0, reachable = 0;
    if (wb_json_parse(&k->stats_json, json, len, 16, NULL, 0) != WB_OK)
        return 0; /* librdkafka frees json */
    wb_json_val_t brokers = wb_json_get(&k->stats_json, "/brokers"), name, b;
    for (unsigned it = 0; wb_json_next_member(&k->stats_json, &brokers, &it, &name, &b);) {
        wb_json_val_t source = wb_json_get_in(&k->stats_json, &b, "/source");
        wb_json_val_t state = wb_json_get_in(&k->stats_json, &b, "/state");
        wb_json_val_t nodeid = wb_json_get_in(&k->stats_json, &b, "/nodeid");
        if (str_is(&source, "internal"))
            continue;
        int is_up = str_is(&state, "UP");
        reachable |= is_up;
        if (nodeid.kind == WB_JSON_NUMBER && nodeid.raw.len > 0 && nodeid.raw.p[0] != '-') {
            known++;
            up += is_up;
        }
    }
    atomic_store(&k->brokers_up, up);
    atomic_store(&k->brokers_known, known);
    /* unreachable after two statistics in a row with nothing up: librdkafka
     * (>= 2.10) drops its bootstrap connections once it knows the brokers,
     * a second with no connection up right after the start */
    k->down_stats = reachable ? 0 : k->down_stats + 1;
    if (reachable || k->down_stats >= 2 || !atomic_load(&k->measured))
        atomic_store(&k->reachable, reachable);
    if (reachable)
        wb_kafka_client_connected(WB_CLIENT_PRODUCER);
    atomic_store(&k->measured, 1);
    return 0;
}

/* ---- what every client of the bridge shares: its configuration, its logs ---- */

/* The configuration whose secrets are kept out of librdkafka's log lines.
 * One per process (set by the first client made), read by every client's
 * threads: it lives as long as the process. */
static const wb_config_t *secrets_cfg;

static int secret_name(const char *name)
{
    return strstr(name, "password") != NULL || strstr(name, "secret") != NULL ||
           strcmp(name, "ssl.key.pem") == 0 || strcmp(name, "sasl.oauthbearer.config") == 0;
}

/* in with every [librdkafka] secret's value replaced by "[redacted]" (and
 * cut to fit out). */
static void redact(const char *in, char *out, size_t outsz)
{
    size_t o = 0;
    const wb_config_t *cfg = secrets_cfg;
    while (*in != '\0' && o + 1 < outsz) {
        size_t skip = 0;
        for (unsigned i = 0; cfg != NULL && i < cfg->nrdkafka && skip == 0; i++) {
            size_t n = strlen(cfg->rdkafka[i].value);
            if (n >= 3 && secret_name(cfg->rdkafka[i].name) &&
                strncmp(in, cfg->rdkafka[i].value, n) == 0)
                skip = n;
        }
        if (skip > 0) {
            int w = snprintf(out + o, outsz - o, "[redacted]");
            o = w > 0 && (size_t)w < outsz - o ? o + (size_t)w : outsz - 1;
            in += skip;
        } else {
            out[o++] = *in++;
        }
    }
    out[o] = '\0';
}

static const char *const role_names[WB_CLIENT_ROLES] = {"producer", "topics", "replay",
                                                        "deadletters"};
static const char *const role_ids[WB_CLIENT_ROLES] = {"webhook-bridge", "webhook-bridge-topics",
                                                      "webhook-bridge-replay",
                                                      "webhook-bridge-deadletters"};
/* the opaque of a client that has no object of its own: its role */
static const wb_client_role_t role_of_client[WB_CLIENT_ROLES] = {
    WB_CLIENT_PRODUCER, WB_CLIENT_TOPICS, WB_CLIENT_REPLAY, WB_CLIENT_DEADLETTERS};
/* per role: refused since its last connection; when that was last said */
static atomic_int refused[WB_CLIENT_ROLES];
static _Atomic uint64_t refused_said[WB_CLIENT_ROLES];

/* Every client's opaque starts with its role (a wb_kafka_t, or one of
 * role_of_client); the embedded cluster's handle has none. */
static int role_of(const rd_kafka_t *rk)
{
    const wb_client_role_t *r = rd_kafka_opaque(rk);
    return r != NULL ? (int)*r : -1;
}

static const char *role_name(const rd_kafka_t *rk)
{
    int r = role_of(rk);
    return r >= 0 ? role_names[r] : "embedded";
}

int wb_kafka_client_refused(wb_client_role_t role)
{
    return atomic_load(&refused[role]);
}

void wb_kafka_client_connected(wb_client_role_t role)
{
    atomic_store(&refused[role], 0);
}

static int err_auth(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM:
    case RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE:
        return 1;
    default:
        return 0;
    }
}

/* The cluster refused the client: SASL, a TLS handshake, or a TLS alert the
 * broker sent about the client's certificate after the handshake (TLS 1.3:
 * an expired or unknown client certificate is "Receive failed: ... SSL
 * alert number 45/46" at the first read, reported as _TRANSPORT). */
static int refused_by_cluster(int err, const char *reason)
{
    return err_auth((rd_kafka_resp_err_t)err) ||
           (err == RD_KAFKA_RESP_ERR__TRANSPORT && reason != NULL &&
            strstr(reason, "SSL alert number") != NULL);
}

/* One line for an error a client's callback got: "kafka authentication
 * failed" (the cluster refused the bridge: a credential or a certificate;
 * the client's role is marked refused; said when it starts, then once a
 * minute per role while it lasts), else "kafka state". */
static void log_client_error(const rd_kafka_t *rk, int err, const char *reason)
{
    char detail[512];
    wb_log_t l;
    int auth = refused_by_cluster(err, reason), role = role_of(rk);
    if (auth && role >= 0) {
        uint64_t now = wb_mono_ms(), said = atomic_load(&refused_said[role]);
        int was = atomic_exchange(&refused[role], 1);
        if (was && now - said < 60000)
            return;
        atomic_store(&refused_said[role], now);
    }
    redact(reason, detail, sizeof(detail));
    wb_log_begin(&l,
                 auth ? WB_LOG_ERROR
                 : err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? WB_LOG_WARN
                                                              : WB_LOG_INFO,
                 auth ? "kafka authentication failed" : "kafka state");
    wb_log_cstr(&l, "client", role_name(rk));
    wb_log_cstr(&l, "error", rd_kafka_err2name((rd_kafka_resp_err_t)err));
    wb_log_cstr(&l, "detail", detail);
    wb_log_end(&l);
}

static void on_client_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    log_client_error(rk, err, reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    char detail[1024];
    wb_log_t l;
    redact(buf, detail, sizeof(detail));
    wb_log_begin(&l,
                 level <= 3   ? WB_LOG_ERROR
                 : level <= 5 ? WB_LOG_WARN
                              : WB_LOG_DEBUG,
                 "librdkafka");
    wb_log_cstr(&l, "client", role_name(rk));
    wb_log_cstr(&l, "facility", fac);
    wb_log_cstr(&l, "detail", detail);
    wb_log_end(&l);
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                    size_t errsz)
{
    char e[256];
    if (rd_kafka_conf_set(conf, name, value, e, sizeof(e)) != RD_KAFKA_CONF_OK)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "[librdkafka] %s: %s", name, e);
    return WB_OK;
}

rd_kafka_conf_t *wb_kafka_client_conf(const wb_config_t *cfg, const char *bootstrap,
                                      wb_client_role_t role, const char *const (*defaults)[2],
                                      unsigned ndefaults, char *err, size_t errsz)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (secrets_cfg == NULL)
        secrets_cfg = cfg;
    rd_kafka_conf_set_opaque(conf, (void *)&role_of_client[role]);
    if (conf_set(conf, "client.id", role_ids[role], err, errsz) != WB_OK)
        goto fail;
    for (unsigned i = 0; i < ndefaults; i++)
        if (conf_set(conf, defaults[i][0], defaults[i][1], err, errsz) != WB_OK)
            goto fail;
    /* [librdkafka] as the operator wrote it: security (TLS, SASL), and the
     * producer's tuning, which a consumer or the registry ignores */
    for (unsigned i = 0; i < cfg->nrdkafka; i++)
        if (conf_set(conf, cfg->rdkafka[i].name, cfg->rdkafka[i].value, err, errsz) != WB_OK)
            goto fail;
    if (bootstrap != NULL && conf_set(conf, "bootstrap.servers", bootstrap, err, errsz) != WB_OK)
        goto fail;
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_client_error);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* ---- the producer ---- */

size_t wb_kafka_record_max(const wb_config_t *cfg)
{
    return wb_config_max_body(cfg) + WB_RECORD_ENVELOPE_MAX;
}

/* 1 when name's value in conf, times unit, is under need (the value in v). */
static int conf_under(const rd_kafka_conf_t *conf, const char *name, unsigned long long unit,
                      size_t need, char *v, size_t vsz)
{
    return rd_kafka_conf_get(conf, name, v, &vsz) == RD_KAFKA_CONF_OK &&
           strtoull(v, NULL, 10) * unit < need;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    wb_kafka_t *k = opaque;
    wb_log_t l;
    char fatal[256];
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        atomic_store(&k->fatal, 1);
        wb_log_begin(&l, WB_LOG_ERROR, "kafka fatal error: the producer is replaced");
        wb_log_cstr(&l, "error", rd_kafka_err2name(ferr));
        wb_log_cstr(&l, "reason", fatal);
        wb_log_end(&l);
        return;
    }
    /* a refusal marks the producers' role refused until a broker takes one
     * of them (on_stats): answers say so at once (wb_kafka_brokers) */
    log_client_error(rk, err, reason);
}

rd_kafka_conf_t *wb_kafka_conf_new(const wb_config_t *cfg, const char *bootstrap, char *err,
                                   size_t errsz)
{
    char timeout[32], msgmax[32], qkbytes[32];
    /* Every answer must leave before the provider's deadline: a record may
     * wait at most the longest deadline; ingest.c answers 503 at each
     * provider's own deadline even if the record is still queued. */
    snprintf(timeout, sizeof(timeout), "%u", wb_config_max_deadline(cfg));
    /* every body the door takes fits the producer (deploy/README.md, "Limits and refusals for good"):
     * librdkafka's own default, 1,000,000, is under max_body's 1 MiB */
    size_t need = wb_kafka_record_max(cfg);
    snprintf(msgmax, sizeof(msgmax), "%zu", need > 1000000 ? need : 1000000);
    /* ... and its queue: room for two of the largest records at least (a
     * record larger than the queue is "queue full" on every retry) */
    size_t qk = 2 * need / 1024 + 1;
    snprintf(qkbytes, sizeof(qkbytes), "%zu", qk > 32768 ? qk : 32768);
    const char *const defaults[][2] = {
        {"linger.ms", "0.5"},
        {"socket.nagle.disable", "true"},
        {"partitioner", "murmur2_random"},
        {"queue.buffering.max.kbytes", qkbytes},
        {"queue.buffering.max.messages", "100000"},
        {"message.max.bytes", msgmax},
        /* record batches compressed with zstd: what fits the brokers' limit
         * (checked on the compressed batch) and costs the least on the wire
         * (deploy/README.md, "Limits and refusals for good";
         * tests/bench prints the comparison) */
        {"compression.type", WB_KAFKA_COMPRESSION},
        /* a topic the cluster says does not exist fails its records at once
         * (_UNKNOWN_TOPIC, then ingest.c's fallback) instead of at
         * message.timeout.ms; librdkafka's default waits 30 s for a topic
         * just created to reach every broker, KRaft needs milliseconds */
        {"topic.metadata.propagation.max.ms", "0"},
        /* failover: a broker that stops answering (SIGSTOP, a GC pause, a
         * black-holed path) holds its in-flight produce requests until they
         * time out, and its partitions until the client learns their new
         * leaders, which nothing tells it but a metadata refresh. Measured on
         * three real brokers (broker.session.timeout.ms 3000, compose file):
         * a paused leader's partitions took writes again 15.6 s after the
         * pause with librdkafka's defaults (30 s, 5 min), 9.8 s with a 3 s
         * request timeout and a 10 s refresh, 3.3 s with a 2 s refresh. A
         * refresh is one small metadata request per producer every 2 s. */
        {"request.timeout.ms", "3000"},
        {"socket.connection.setup.timeout.ms", "3000"},
        {"topic.metadata.refresh.interval.ms", "2000"},
        /* broker connection states for readiness and metrics (on_stats) */
        {"statistics.interval.ms", "1000"},
        {"message.timeout.ms", timeout},
    };
    rd_kafka_conf_t *conf = wb_kafka_client_conf(cfg, bootstrap, WB_CLIENT_PRODUCER, defaults,
                                                 WB_ARRAY_SIZE(defaults), err, errsz);
    if (conf == NULL)
        return NULL;
    if (conf_set(conf, "acks", "all", err, errsz) != WB_OK ||
        conf_set(conf, "enable.idempotence", "true", err, errsz) != WB_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* an operator's limit under what max_body makes would refuse some
     * bodies the door takes, the same way on every retry */
    char v[32];
    if (conf_under(conf, "queue.buffering.max.kbytes", 1024, need, v, sizeof(v)))
        wb_errf(err, errsz, WB_ERR_CONFIG,
                "[librdkafka] queue.buffering.max.kbytes = %s cannot hold the largest record a "
                "body of max_body makes (%zu bytes): raise it or lower max_body",
                v, need);
    else if (conf_under(conf, "message.max.bytes", 1, need, v, sizeof(v)))
        wb_errf(err, errsz, WB_ERR_CONFIG,
                "[librdkafka] message.max.bytes = %s is under the largest record a body of "
                "max_body makes (%zu + %d bytes of envelope = %zu): raise it or lower max_body",
                v, wb_config_max_body(cfg), WB_RECORD_ENVELOPE_MAX, need);
    else
        return conf;
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static void on_wakeup(h2o_socket_t *sock, const char *err)
{
    wb_kafka_t *k = sock->data;
    if (err != NULL)
        return;
    h2o_buffer_consume(&sock->input, sock->input->size);
    rd_kafka_poll(k->rk, 0);
}

/* A producer whose main queue wakes k's pipe. NULL with err on failure. */
static rd_kafka_t *producer_new(wb_kafka_t *k, char *err, size_t errsz)
{
    char e[512];
    rd_kafka_conf_t *conf = wb_kafka_conf_new(k->cfg, k->bootstrap, err, errsz);
    rd_kafka_t *rk;
    if (conf == NULL)
        return NULL;
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e))) == NULL) {
        rd_kafka_conf_destroy(conf); /* still ours on failure */
        wb_errf(err, errsz, WB_ERR_CONFIG, "producer: %s", e);
        return NULL;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_get_main(rk);
    rd_kafka_queue_io_event_enable(q, k->pipefd[1], "1", 1);
    rd_kafka_queue_destroy(q);
    return rk;
}

/* Stops a producer: every record it still holds is reported (as purged). */
static void producer_destroy(rd_kafka_t *rk)
{
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 20 && rd_kafka_outq_len(rk) > 0; i++)
        rd_kafka_poll(rk, 50);
    rd_kafka_queue_t *q = rd_kafka_queue_get_main(rk);
    rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

wb_kafka_t *wb_kafka_new(const wb_config_t *cfg, const char *bootstrap, h2o_loop_t *loop,
                         wb_kafka_report_cb cb, void *cb_ctx, char *err, size_t errsz)
{
    wb_kafka_t *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    k->role = WB_CLIENT_PRODUCER;
    k->pipefd[0] = k->pipefd[1] = -1;
    k->cb = cb;
    k->cb_ctx = cb_ctx;
    k->cfg = cfg;
    wb_json_init(&k->stats_json, 1u << 20);
    pthread_mutex_init(&k->lock, NULL);
    if (bootstrap != NULL && (k->bootstrap = strdup(bootstrap)) == NULL)
        goto fail;
    if (pipe2(k->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
        wb_errf(err, errsz, WB_ERR_NOMEM, "pipe: %m");
        goto fail;
    }
    if ((k->rk = producer_new(k, err, errsz)) == NULL)
        goto fail;
    if (loop != NULL)
        wb_kafka_attach(k, loop);
    return k;
fail:
    wb_kafka_destroy(k);
    return NULL;
}

void wb_kafka_attach(wb_kafka_t *k, h2o_loop_t *loop)
{
    k->sock = h2o_evloop_socket_create(loop, k->pipefd[0], 0);
    k->sock->data = k;
    h2o_socket_read_start(k->sock, on_wakeup);
}

void wb_kafka_detach(wb_kafka_t *k)
{
    if (k->sock == NULL)
        return;
    h2o_socket_read_stop(k->sock);
    h2o_socket_close(k->sock); /* closes pipefd[0] */
    k->sock = NULL;
    k->pipefd[0] = -1;
}

int wb_kafka_recover(wb_kafka_t *k, char *err, size_t errsz)
{
    if (!atomic_load(&k->fatal))
        return WB_OK;
    /* A fatal (idempotence) error: this producer can write nothing more.
     * Its records are reported as failed (their requests get a 503, the
     * providers retry) and a new producer, with a new producer id, takes over. */
    rd_kafka_t *rk = producer_new(k, err, errsz);
    if (rk == NULL)
        return WB_ERR_KAFKA;
    pthread_mutex_lock(&k->lock);
    rd_kafka_t *old = k->rk;
    k->rk = rk;
    pthread_mutex_unlock(&k->lock);
    for (unsigned i = 0; i < k->nwarm; i++) { /* the same topics, on the new producer */
        if (k->warm[i] == NULL)
            continue;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, rd_kafka_topic_name(k->warm[i]), NULL);
        rd_kafka_topic_destroy(k->warm[i]);
        k->warm[i] = rkt;
    }
    producer_destroy(old);
    atomic_store(&k->fatal, 0);
    wb_logf(WB_LOG_WARN, "kafka producer replaced after a fatal error");
    return WB_OK;
}

int wb_kafka_produce(wb_kafka_t *k, const wb_record_t *rec, int copy, void *opaque,
                     rd_kafka_resp_err_t *kerr)
{
    static const char ct[] = "application/cloudevents+json; charset=utf-8";
    if (atomic_load(&k->fatal)) {
        *kerr = RD_KAFKA_RESP_ERR__FATAL;
        return WB_ERR_KAFKA;
    }
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(3);
    rd_kafka_header_add(hdrs, "content-type", -1, ct, sizeof(ct) - 1);
    if (rec->reason != NULL)
        rd_kafka_header_add(hdrs, "deadletter-reason", -1, rec->reason, -1);
    if (rec->intended != NULL)
        rd_kafka_header_add(hdrs, "intended-topic", -1, rec->intended, -1);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        k->rk, RD_KAFKA_V_TOPIC(rec->topic), RD_KAFKA_V_KEY(rec->key, rec->key_len),
        RD_KAFKA_V_VALUE(rec->value, rec->value_len),
        RD_KAFKA_V_MSGFLAGS(copy ? RD_KAFKA_MSG_F_COPY : RD_KAFKA_MSG_F_FREE),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(hdrs); /* ours unless producev succeeded */
        *kerr = e;
        return WB_ERR_KAFKA;
    }
    return WB_OK;
}

void wb_kafka_warm(wb_kafka_t *k, const char *topic)
{
    for (unsigned i = 0; i < k->nwarm; i++)
        if (k->warm[i] != NULL && strcmp(rd_kafka_topic_name(k->warm[i]), topic) == 0)
            return;
    if (k->nwarm < WB_ARRAY_SIZE(k->warm) &&
        (k->warm[k->nwarm] = rd_kafka_topic_new(k->rk, topic, NULL)) != NULL)
        k->nwarm++;
}

void wb_kafka_poll(wb_kafka_t *k)
{
    rd_kafka_poll(k->rk, 0);
}

int wb_kafka_flush(wb_kafka_t *k, int timeout_ms)
{
    rd_kafka_flush(k->rk, timeout_ms);
    return rd_kafka_outq_len(k->rk);
}

int wb_kafka_purge(wb_kafka_t *k)
{
    rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(k->rk, 1000); /* serves the purge reports */
    return rd_kafka_outq_len(k->rk);
}

void wb_kafka_brokers(wb_kafka_t *k, wb_kafka_brokers_t *out)
{
    out->up = atomic_load(&k->brokers_up);
    out->known = atomic_load(&k->brokers_known);
    out->reachable = atomic_load(&k->reachable);
    out->measured = atomic_load(&k->measured);
    out->auth_failed = wb_kafka_client_refused(WB_CLIENT_PRODUCER) && !out->reachable;
}

long wb_kafka_queue_max(const wb_config_t *cfg)
{
    long max = 100000; /* the default below */
    for (unsigned i = 0; i < cfg->nrdkafka; i++)
        if (strcmp(cfg->rdkafka[i].name, "queue.buffering.max.messages") == 0)
            max = strtol(cfg->rdkafka[i].value, NULL, 10);
    return max;
}

const char *wb_kafka_err_refused(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: /* librdkafka's own check, or a broker's */
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return "record_too_large";
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return "invalid_record";
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        return "invalid_topic";
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        return "topic_authorization_failed";
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        return "policy_violation";
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
        return "unsupported_version";
    default:
        return NULL;
    }
}

int wb_kafka_err_unknown_topic(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
           err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
}

int wb_kafka_queue_len(wb_kafka_t *k)
{
    pthread_mutex_lock(&k->lock);
    int n = rd_kafka_outq_len(k->rk);
    pthread_mutex_unlock(&k->lock);
    return n;
}

int wb_kafka_fatal(wb_kafka_t *k)
{
    return atomic_load(&k->fatal);
}

void wb_kafka_destroy(wb_kafka_t *k)
{
    if (k == NULL)
        return;
    for (unsigned i = 0; i < k->nwarm; i++)
        if (k->warm[i] != NULL)
            rd_kafka_topic_destroy(k->warm[i]);
    if (k->rk != NULL) {
        rd_kafka_queue_t *q = rd_kafka_queue_get_main(k->rk);
        rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(k->rk);
    }
    wb_kafka_detach(k);
    if (k->pipefd[0] >= 0)
        close(k->pipefd[0]);
    if (k->pipefd[1] >= 0)
        close(k->pipefd[1]);
    pthread_mutex_destroy(&k->lock);
    wb_json_free(&k->stats_json);
    free(k->bootstrap);
    free(k);
}

wb_kafka_mock_t *wb_kafka_mock_start(unsigned n, char *bootstrap, size_t bootstrapsz, char *err,
                                     size_t errsz)
{
    char e[256];
    wb_kafka_mock_t *m = calloc(1, sizeof(*m));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (m == NULL) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, on_log);
    /* this handle only hosts the cluster: its "no bootstrap.servers" warning is noise */
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    if ((m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e))) == NULL) {
        rd_kafka_conf_destroy(conf);
        wb_errf(err, errsz, WB_ERR_KAFKA, "mock cluster handle: %s", e);
        free(m);
        return NULL;
    }
    if ((m->mc = rd_kafka_mock_cluster_new(m->rk, (int)n)) == NULL) {
        wb_errf(err, errsz, WB_ERR_KAFKA, "mock cluster: could not start %u brokers", n);
        rd_kafka_destroy(m->rk);
        free(m);
        return NULL;
    }
    snprintf(bootstrap, bootstrapsz, "%s", rd_kafka_mock_cluster_bootstraps(m->mc));
    wb_kafka_mock_nodelay(bootstrap);
    return m;
}

/* librdkafka (2.0.2, and 2.14.2 still: rdkafka_mock.c sets no TCP_NODELAY)
 * sets TCP_NODELAY only on the sockets it connects, not on those its mock
 * brokers accept: a response sent while an earlier one is
 * still unacknowledged then waits for the client's delayed ACK (40 ms on
 * Linux), which showed as a 40 ms p99 under load. Kafka's own brokers set
 * TCP_NODELAY on every connection. Linux copies the option from a listener
 * to the sockets it accepts, and the mock keeps its listeners private: find
 * them among this process's descriptors, unconnected TCP sockets bound to
 * one of the bootstrap ports. */
static int is_listener_of(int fd, const unsigned short *ports, unsigned nports)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int type = 0;
    socklen_t tlen = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0 || sin.sin_family != AF_INET)
        return 0;
    len = sizeof(sin);
    struct sockaddr_in peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0)
        return 0; /* a connection, not a listener */
    for (unsigned i = 0; i < nports; i++)
        if (ntohs(sin.sin_port) == ports[i])
            return 1;
    return 0;
}

int wb_kafka_mock_nodelay(const char *bootstrap)
{
    unsigned short ports[64];
    unsigned nports = 0;
    for (const char *p = bootstrap; p != NULL && *p != '\0' && nports < WB_ARRAY_SIZE(ports);) {
        const char *comma = strchr(p, ',');
        const char *colon = memchr(p, ':', comma != NULL ? (size_t)(comma - p) : strlen(p));
        if (colon != NULL) {
            long port = strtol(colon + 1, NULL, 10);
            if (port > 0 && port < 65536)
                ports[nports++] = (unsigned short)port;
        }
        p = comma != NULL ? comma + 1 : NULL;
    }
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    int changed = 0, one = 1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd != dirfd(d) &&
            is_listener_of(fd, ports, nports) &&
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
            changed++;
    }
    closedir(d);
    return changed;
}

void wb_kafka_mock_stop(wb_kafka_mock_t *m)
{
    if (m == NULL)
        return;
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
    free(m);
}
