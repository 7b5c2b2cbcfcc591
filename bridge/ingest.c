/* ingest.c - one webhook from request to answer: route, method, limits,
 * authentication, JSON validation, the record, the produce, and the answer
 * that waits for the Kafka delivery report (the ack gate).
 * Owns: the error table (stable codes), the pending object's lifetime, the
 * access log line. A 2xx leaves only from on_report with err == 0.
 *
 * Lifetime: the pending object is malloc'ed here and freed only when its
 * delivery report arrives. The request side holds a small link in req->pool
 * (h2o_mem_alloc_shared); when h2o frees the pool (client gone), its dispose
 * callback detaches the pending, so the report never touches the request.
 * Detach before any h2o_send*, which may free the request at once. */
#include "ingest.h"
#include "auth.h"
#include "conn.h"
#include "event.h"
#include "log.h"
#include "lookup.h"
#include "spool.h"
#include "stats.h"
#include "topics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The stable error codes of every non-2xx answer. */
typedef enum {
    E_NOT_FOUND,
    E_METHOD,
    E_TOO_LARGE,
    E_MEDIA_TYPE,
    E_INVALID_JSON,
    E_INVALID_SHAPE,
    E_AUTH,
    E_KAFKA,
    E_TIMEOUT,
    E_OVERLOADED,
    E_DRAINING,
    E_UNSAFE_TOPIC,
    E_SPOOL,
    E_RESETS,
    E_AUTH_UNAVAILABLE,
    E_KAFKA_AUTH,
} wb_ingest_err_t;

/* status 0: a failure answer, whose code comes from the provider's
 * failure_statuses (failure_status()); all carry Retry-After. */
static const struct {
    int status;
    const char *reason, *code, *message;
} errors[] = {
    [E_NOT_FOUND] = {404, "Not Found", "not_found", "no webhook at this path"},
    [E_METHOD] = {405, "Method Not Allowed", "method_not_allowed", "webhooks are POSTed"},
    [E_TOO_LARGE] = {413, "Payload Too Large", "payload_too_large", "body over the size limit"},
    [E_MEDIA_TYPE] = {415, "Unsupported Media Type", "unsupported_media_type",
                      "the body must be JSON"},
    [E_INVALID_JSON] = {400, "Bad Request", "invalid_json", "body is not JSON (RFC 8259)"},
    [E_INVALID_SHAPE] = {400, "Bad Request", "invalid_shape",
                         "body is not this provider's shape; kept in the dead-letter topic"},
    [E_AUTH] = {401, "Unauthorized", "auth_invalid", "authentication failed"},
    [E_KAFKA] = {0, NULL, "kafka_unavailable", "Kafka did not take the event"},
    [E_TIMEOUT] = {0, NULL, "kafka_timeout", "Kafka did not acknowledge the event in time"},
    [E_OVERLOADED] = {0, NULL, "overloaded", "too many requests in flight"},
    [E_DRAINING] = {0, NULL, "draining", "shutting down, retry"},
    [E_SPOOL] = {0, NULL, "spool_full", "the spool could not keep the event (full, or the disk)"},
    [E_RESETS] = {0, NULL, "too_many_resets",
                  "this HTTP/2 connection reset too many streams and is being closed"},
    [E_AUTH_UNAVAILABLE] = {0, NULL, "auth_unavailable",
                            "the provider's API could not confirm the event; retry"},
    [E_KAFKA_AUTH] = {0, NULL, "kafka_authentication_failed",
                      "the Kafka cluster refuses the bridge's credentials; retry"},
    [E_UNSAFE_TOPIC] = {0, NULL, "topic_unsafe",
                        "the event's topic has too few replicas to keep it (refuse_unsafe_topics)"},
};

/* A record whose topic the registry does not know yet waits this long, at
 * most, for it to find out (a metadata round trip, usually milliseconds);
 * then it is produced as is and librdkafka decides. */
#define WB_TOPIC_HOLD_MS 500
/* ... and on a cluster that creates topics on first use (or may: not known
 * yet), while it creates the topic: produced before, the record would find
 * no topic (topic.metadata.propagation.max.ms 0) and become a dead letter */
#define WB_TOPIC_HOLD_CREATE_MS 3000
/* A record Kafka refused as too large becomes a dead letter that keeps this
 * much of its data (and the whole data's size and SHA-256); if even that is
 * refused, one with none of it. */
#define WB_REFUSED_KEEP (64 * 1024)

static const char *failure_reason(int status)
{
    switch (status) {
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 504:
        return "Gateway Timeout";
    default:
        return "Service Unavailable";
    }
}

typedef struct wb_pending wb_pending_t;

typedef struct {
    wb_pending_t *pend; /* NULL once answered */
} wb_link_t;

#define WB_PENDING_KIND 0x50454e44 /* tells a pending from a replay in a report */

struct wb_pending {
    int kind;       /* WB_PENDING_KIND */
    h2o_req_t *req; /* NULL once answered or gone */
    wb_link_t *link;
    wb_worker_t *worker;
    const wb_provider_t *prov;
    unsigned prov_index;
    int deadletter;
    wb_dl_reason_t dl_reason;
    const char *fallback; /* the topic written instead (config-owned), or NULL */
    const char *refused;  /* why Kafka refused the record for good (static), or NULL */
    int refused_tries;    /* dead letters of the refused record produced */
    struct timespec start;
    h2o_timeout_entry_t deadline;
    h2o_linklist_t node; /* in worker->pending while attached */
    /* a record held until its topic is known (worker->held), or while the
     * provider's API is asked about it (looking_up), not yet produced */
    h2o_linklist_t held_node;
    char *held_value, *held_key, *held_reason;
    int looking_up;
    size_t held_len, held_key_len;
    /* a spooling provider's record: its copy until spooled, then its place */
    char *sp_value, *sp_key, *sp_reason;
    size_t sp_value_len, sp_key_len;
    int64_t sp_seq; /* 0: not in the spool */
    uint64_t sp_batch;
    h2o_timeout_entry_t sp_timer; /* spool_after_ms */
    h2o_linklist_t sp_node;       /* in worker->spooling until its batch is durable */
    int reported;                 /* its delivery report came, or none will */
    size_t id_len, type_len, topic_len;
    char strs[]; /* id NUL type NUL topic NUL */
};

static int64_t now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double elapsed_ms(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) * 1e3 +
           (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static wb_worker_t *worker_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(wb_worker_t, ctx, req->conn->ctx);
}

static void access_log(const wb_provider_t *prov, int status, double ms, const char *code,
                       const char *id, const char *topic, int32_t partition, int64_t offset)
{
    wb_log_t l;
    wb_log_begin(&l, status < 500 ? WB_LOG_INFO : WB_LOG_WARN, "webhook");
    wb_log_cstr(&l, "provider", prov != NULL ? prov->name : "");
    wb_log_int(&l, "status", status);
    wb_log_int(&l, "latency_us", (long long)(ms * 1000));
    if (code != NULL)
        wb_log_cstr(&l, "error", code);
    if (id != NULL)
        wb_log_cstr(&l, "id", id);
    if (topic != NULL) {
        wb_log_cstr(&l, "topic", topic);
        wb_log_int(&l, "partition", partition);
        wb_log_int(&l, "offset", offset);
    }
    wb_log_end(&l);
}

/* Sends a JSON answer; body is copied into the request's pool. */
static void send_json(h2o_req_t *req, int status, const char *reason, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    req->res.content_length = len;
    wb_conn_answered(req);
    h2o_send_inline(req, body, len);
}

/* The next code of the provider's rotation: consecutive failure answers to
 * one provider differ, whichever worker gives them. */
static int failure_status(wb_worker_t *w, const wb_provider_t *prov, unsigned prov_index)
{
    if (prov == NULL || prov->nfailure_statuses == 0)
        return 503;
    unsigned seq =
        atomic_fetch_add_explicit(&w->shared->failure_seq[prov_index], 1, memory_order_relaxed);
    return prov->failure_statuses[seq % prov->nfailure_statuses];
}

static void send_error(h2o_req_t *req, wb_ingest_err_t e, int status, const char *code,
                       const char *message)
{
    char body[512];
    wb_buf_t b;
    wb_buf_init(&b, sizeof(body));
    code = code != NULL ? code : errors[e].code;
    message = message != NULL ? message : errors[e].message;
    if (wb_buf_append(&b, "{\"error\":", 9) != WB_OK ||
        wb_json_write_string(&b, code, strlen(code)) != WB_OK ||
        wb_buf_append(&b, ",\"message\":", 11) != WB_OK ||
        wb_json_write_string(&b, message, strlen(message)) != WB_OK || wb_buf_appendc(&b, '}'))
        b.len = 0;
    const char *reason = errors[e].reason;
    if (errors[e].status == 0) {
        reason = failure_reason(status);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("5"));
    } else if (status == 405) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
    }
    if (b.len == 0)
        send_json(req, status, reason, "{}", 2);
    else
        send_json(req, status, reason, b.p, b.len);
    wb_buf_free(&b);
}

/* Answers an error before anything was produced, with its count and log line. */
static int reject(h2o_req_t *req, const wb_provider_t *prov, unsigned prov_index, wb_ingest_err_t e,
                  const char *code, const char *message)
{
    wb_worker_t *w = worker_of(req);
    int status = errors[e].status != 0 ? errors[e].status : failure_status(w, prov, prov_index);
    wb_stats_count_status(&w->stats, prov_index, status);
    access_log(prov, status, 0, code != NULL ? code : errors[e].code, NULL, NULL, 0, 0);
    if (w->draining)
        req->http1_is_persistent = 0;
    send_error(req, e, status, code, message);
    return 0;
}

static void detach(wb_pending_t *pend)
{
    if (pend->link != NULL)
        pend->link->pend = NULL;
    pend->link = NULL;
    pend->req = NULL;
    h2o_timeout_unlink(&pend->deadline);
    h2o_timeout_unlink(&pend->sp_timer);
    if (h2o_linklist_is_linked(&pend->node))
        h2o_linklist_unlink(&pend->node);
    atomic_fetch_sub_explicit(&pend->worker->stats.inflight, 1, memory_order_relaxed);
}

/* The request's pool is going away (client gone, or answered and done). */
static void on_link_dispose(void *p)
{
    wb_link_t *link = p;
    if (link->pend != NULL) {
        link->pend->link = NULL;
        detach(link->pend);
    }
}

static const char *pend_id(const wb_pending_t *pend)
{
    return pend->strs;
}
static const char *pend_type(const wb_pending_t *pend)
{
    return pend->strs + pend->id_len + 1;
}
/* The topic the event was routed to. */
static const char *pend_topic(const wb_pending_t *pend)
{
    return pend->strs + pend->id_len + 1 + pend->type_len + 1;
}

/* The topic the record was written to. */
static const char *pend_written_topic(const wb_pending_t *pend)
{
    return pend->fallback != NULL ? pend->fallback : pend_topic(pend);
}

/* Answers a pending request with an error: a failure (deadline, drain, the
 * Kafka error: from the rotation) or one of a fixed status (a refusal). */
static void answer_error(wb_pending_t *pend, wb_ingest_err_t e, const char *code,
                         const char *detail)
{
    h2o_req_t *req = pend->req;
    wb_worker_t *w = pend->worker;
    int status =
        errors[e].status != 0 ? errors[e].status : failure_status(w, pend->prov, pend->prov_index);
    detach(pend);
    wb_stats_count_status(&w->stats, pend->prov_index, status);
    access_log(pend->prov, status, elapsed_ms(&pend->start), code != NULL ? code : errors[e].code,
               pend_id(pend), NULL, 0, 0);
    send_error(req, e, status, code, detail);
}

static void answer_failure(wb_pending_t *pend, wb_ingest_err_t e, const char *detail)
{
    answer_error(pend, e, NULL, detail);
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    wb_pending_t *pend = H2O_STRUCT_FROM_MEMBER(wb_pending_t, deadline, entry);
    if (pend->req != NULL)
        answer_failure(pend, pend->looking_up ? E_AUTH_UNAVAILABLE : E_TIMEOUT, NULL);
}

static void spool_copy_free(wb_pending_t *pend)
{
    free(pend->sp_value);
    free(pend->sp_key);
    free(pend->sp_reason);
    pend->sp_value = pend->sp_key = pend->sp_reason = NULL;
}

static void pending_free(wb_pending_t *pend)
{
    free(pend->held_value);
    free(pend->held_key);
    free(pend->held_reason);
    spool_copy_free(pend);
    free(pend);
}

static void free_held(wb_pending_t *pend)
{
    h2o_linklist_unlink(&pend->held_node);
    pending_free(pend);
}

void wb_ingest_abort_pending(wb_worker_t *w)
{
    while (!h2o_linklist_is_empty(&w->pending)) {
        wb_pending_t *pend = H2O_STRUCT_FROM_MEMBER(wb_pending_t, node, w->pending.next);
        answer_failure(pend, E_DRAINING, NULL);
    }
    while (!h2o_linklist_is_empty(&w->held)) /* never produced: no report will come */
        free_held(H2O_STRUCT_FROM_MEMBER(wb_pending_t, held_node, w->held.next));
    wb_ingest_spool_turn(w); /* what is being spooled: durable, or a failure */
}

/* Hands a dead letter (dl's bytes, taken in every case) to the producer as
 * rec's value, with opaque for its report. WB_OK if the producer took it. */
static int produce_dead(wb_worker_t *w, void *opaque, wb_record_t *rec, wb_buf_t *dl,
                        rd_kafka_resp_err_t *kerr)
{
    int r;
    rec->value_len = dl->len;
    rec->value = wb_buf_steal(dl, NULL);
    if ((r = wb_kafka_produce(w->kafka, rec, 0, opaque, kerr)) != WB_OK)
        free(rec->value);
    return r;
}

/* The record's topic does not exist (and the cluster does not create it):
 * rather than a failure on every retry, the record goes where the provider's
 * unknown_topic says, with the intended topic in a header. A second report
 * comes for pend. WB_OK if the record was handed to the producer. */
static int produce_fallback(wb_worker_t *w, wb_pending_t *pend, const char *key, size_t key_len,
                            const char *value, size_t value_len, rd_kafka_resp_err_t *kerr)
{
    const wb_provider_t *prov = pend->prov;
    const char *intended = pend_topic(pend);
    char reason[WB_TOPIC_MAX + 32];
    wb_record_t rec = {.key = key, .key_len = key_len, .intended = intended};
    wb_buf_t dl;
    int r;

    *kerr = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (pend->fallback != NULL || pend->deadletter || prov->unknown_topic == WB_UNKNOWN_TOPIC_FAIL)
        return WB_ERR_KAFKA;
    if (prov->unknown_topic == WB_UNKNOWN_TOPIC_TOPIC) {
        rec.topic = prov->unknown_topic_name;
        rec.value = (char *)value;
        rec.value_len = value_len;
        if ((r = wb_kafka_produce(w->kafka, &rec, 1, pend, kerr)) == WB_OK)
            pend->fallback = rec.topic;
        return r;
    }
    snprintf(reason, sizeof(reason), "unknown_topic: %s", intended);
    wb_buf_init(&dl, value_len + sizeof(reason) + 256);
    if ((r = wb_event_to_deadletter(w->cfg, prov, &w->json, value, value_len, reason, &dl)) !=
        WB_OK) {
        wb_buf_free(&dl);
        return r;
    }
    rec.topic = w->cfg->deadletter_topic;
    rec.reason = "unknown_topic";
    if ((r = produce_dead(w, pend, &rec, &dl, kerr)) != WB_OK)
        return r;
    pend->fallback = rec.topic;
    pend->deadletter = 1;
    pend->dl_reason = WB_DL_UNKNOWN_TOPIC;
    return WB_OK;
}

/* Kafka refused the record for good (too large, invalid, a topic the bridge
 * may not write, a policy): the same bytes would be refused on every retry,
 * so the record goes to the dead-letter topic with the reason and is
 * answered as a dead letter, never a failure (deploy/README.md, "Limits and refusals for good").
 * A too-large one keeps what fits: its data's size, SHA-256 and first
 * WB_REFUSED_KEEP bytes (then none, if that too is refused). A second report
 * comes for pend. WB_OK if the producer took the dead letter. */
/* The dead letter of a record (value) Kafka refused for good with why
 * (reason: its wb_kafka_err_refused name), into dl (initialised here): whole,
 * or a too-large one with its first WB_REFUSED_KEEP bytes of data, or with
 * none (bare). */
static int refused_deadletter(wb_worker_t *w, const wb_provider_t *prov, const char *value,
                              size_t value_len, rd_kafka_resp_err_t why, const char *reason,
                              int bare, wb_buf_t *dl)
{
    char text[256];
    size_t keep = strcmp(reason, "record_too_large") != 0 ? SIZE_MAX
                  : bare                                 ? 0
                                                         : WB_REFUSED_KEEP;
    snprintf(text, sizeof(text), "%s: %s", reason, rd_kafka_err2str(why));
    wb_buf_init(dl, (keep < value_len ? keep * 6 : value_len) + sizeof(text) + 1024);
    int r = wb_event_to_refused(w->cfg, prov, &w->json, value, value_len, text, keep, dl);
    if (r != WB_OK)
        wb_buf_free(dl);
    return r;
}

static int produce_refused(wb_worker_t *w, wb_pending_t *pend, const char *key, size_t key_len,
                           const char *value, size_t value_len, rd_kafka_resp_err_t why,
                           rd_kafka_resp_err_t *kerr)
{
    const char *reason = wb_kafka_err_refused(why);
    wb_record_t rec = {.topic = w->cfg->deadletter_topic, .key = key, .key_len = key_len,
                       .reason = reason, .intended = pend_topic(pend)};
    wb_buf_t dl;
    int r;
    *kerr = why;
    if (reason == NULL || pend->refused_tries >= 2)
        return WB_ERR_KAFKA; /* the dead-letter topic refuses it too: an outage */
    if ((r = refused_deadletter(w, pend->prov, value, value_len, why, reason,
                                pend->refused_tries++ > 0, &dl)) != WB_OK)
        return r;
    if ((r = produce_dead(w, pend, &rec, &dl, kerr)) != WB_OK)
        return r;
    pend->fallback = rec.topic;
    pend->deadletter = 1;
    pend->dl_reason = WB_DL_REFUSED;
    pend->refused = reason;
    return WB_OK;
}

/* Hands the record to the producer, or to the provider's fallback when its
 * topic does not exist. Takes value (malloc'ed) in every case. WB_OK: a
 * report will come for pend. */
static int dispatch(wb_worker_t *w, wb_pending_t *pend, char *value, size_t len, const char *key,
                    size_t key_len, const char *reason, wb_topic_state_t ts,
                    rd_kafka_resp_err_t *kerr)
{
    wb_record_t rec = {pend->deadletter ? w->cfg->deadletter_topic : pend_topic(pend),
                       key,
                       key_len,
                       value,
                       len,
                       reason,
                       NULL};
    int r = WB_ERR_KAFKA;
    *kerr = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (ts != WB_TOPIC_MISSING && (r = wb_kafka_produce(w->kafka, &rec, 0, pend, kerr)) == WB_OK)
        return WB_OK; /* the producer frees value */
    if (wb_kafka_err_unknown_topic(*kerr)) {
        r = produce_fallback(w, pend, key, key_len, value, len, kerr);
    } else if (wb_kafka_err_refused(*kerr) != NULL) { /* librdkafka's own refusal */
        wb_stats_count_refused(&w->stats, pend->prov_index, wb_kafka_err_refused(*kerr));
        r = produce_refused(w, pend, key, key_len, value, len, *kerr, kerr);
    }
    free(value);
    return r;
}

/* ---- the spool (spool.c): a 2xx before the provider's patience runs out ----
 * A spooling provider's record is produced as any other, with a copy kept.
 * If Kafka has not acknowledged it within spool_after_ms (or refused it for
 * a reason that passes: brokers down, timeouts), the copy is added to the
 * spool; the spool's batch is made durable once per loop turn (one fsync for
 * every record of the turn), and only then is the answer 200 "spooled". If
 * the original's report later succeeds, the spooled copy is removed; if not,
 * the replayer produces it. While a provider has records in the spool, its
 * new records go to the spool directly, behind them: one key, one order. */

static int spooling(const wb_worker_t *w, const wb_provider_t *prov)
{
    return prov->spool && w->shared->spool != NULL;
}

/* A new record of provider pi must go through the spool while the spool
 * holds records of pi that Kafka has not acknowledged, so that it cannot
 * overtake them. The first worker's producer is the replayer's: once it has
 * been handed every spooled record, a record it produces comes after them in
 * their partition's queue, and the provider is back on the direct path
 * (under a steady load the spool would otherwise never run empty). */
static int behind_spool(wb_worker_t *w, unsigned pi)
{
    if (atomic_load(&w->shared->spooled_pending[pi]) == 0)
        return 0;
    return w->id != 0 || !wb_spool_caught_up(w->shared->spool);
}

/* Errors after which Kafka may take the record later: spooled, not failed. */
static int kafka_unavailable(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case WB_KAFKA_ERR_NO_OFFSET: /* may be in Kafka, may not: the spool makes sure */
        return 1;
    default:
        return 0;
    }
}

static int spool_copy(wb_pending_t *pend, const char *value, size_t len, const char *key,
                      size_t key_len, const char *reason)
{
    pend->sp_value = malloc(len > 0 ? len : 1);
    pend->sp_key = malloc(key_len + 1);
    pend->sp_reason = reason != NULL ? strdup(reason) : NULL;
    if (pend->sp_value == NULL || pend->sp_key == NULL || (reason != NULL && !pend->sp_reason)) {
        spool_copy_free(pend);
        return WB_ERR_NOMEM;
    }
    memcpy(pend->sp_value, value, len);
    memcpy(pend->sp_key, key, key_len);
    pend->sp_value_len = len;
    pend->sp_key_len = key_len;
    return WB_OK;
}

/* Adds pend's copy to the spool's batch of this turn (answered at its
 * commit, wb_ingest_spool_turn). in_flight: its original is in the producer. */
static int spool_add(wb_worker_t *w, wb_pending_t *pend, int in_flight)
{
    wb_spool_rec_t rec = {.provider = pend->prov->name,
                          .topic = pend_topic(pend),
                          .key = pend->sp_key,
                          .key_len = pend->sp_key_len,
                          .value = pend->sp_value,
                          .value_len = pend->sp_value_len,
                          .reason = pend->sp_reason};
    if (pend->sp_value == NULL)
        return WB_ERR_NOMEM;
    int r = wb_spool_add(w->shared->spool, &rec, &pend->sp_seq, &pend->sp_batch);
    if (r != WB_OK) {
        pend->sp_seq = 0;
        return r;
    }
    if (in_flight)
        wb_spool_hold(w->shared->spool, pend->sp_seq);
    atomic_fetch_add(&w->shared->spooled_pending[pend->prov_index], 1);
    spool_copy_free(pend); /* the spool has it */
    h2o_timeout_unlink(&pend->sp_timer);
    h2o_linklist_insert(&w->spooling, &pend->sp_node);
    return WB_OK;
}

static void on_spool_after(h2o_timeout_entry_t *entry)
{
    wb_pending_t *pend = H2O_STRUCT_FROM_MEMBER(wb_pending_t, sp_timer, entry);
    if (pend->req != NULL && pend->sp_seq == 0 && !pend->reported)
        spool_add(pend->worker, pend, 1); /* full: Kafka may still answer by the deadline */
}

static void answer_spooled(wb_pending_t *pend)
{
    h2o_req_t *req = pend->req;
    wb_worker_t *w = pend->worker;
    char body[600];
    wb_buf_t b;
    detach(pend);
    wb_buf_init(&b, sizeof(body));
    wb_buf_append(&b, "{\"id\":", 6);
    wb_json_write_string(&b, pend_id(pend), pend->id_len);
    wb_buf_append(&b, ",\"type\":", 8);
    wb_json_write_string(&b, pend_type(pend), pend->type_len);
    wb_buf_append(&b, ",\"spooled\":true}", 16);
    wb_stats_count_status(&w->stats, pend->prov_index, 200);
    atomic_fetch_add_explicit(&w->stats.spooled[pend->prov_index], 1, memory_order_relaxed);
    access_log(pend->prov, 200, elapsed_ms(&pend->start), "spooled", pend_id(pend), NULL, 0, 0);
    send_json(req, 200, "OK", b.p, b.len);
    wb_buf_free(&b);
}

void wb_ingest_spool_turn(wb_worker_t *w)
{
    wb_spool_t *sp = w->shared->spool;
    char err[256];
    if (sp == NULL)
        return;
    while (!h2o_linklist_is_empty(&w->spooling)) {
        wb_pending_t *pend = H2O_STRUCT_FROM_MEMBER(wb_pending_t, sp_node, w->spooling.next);
        h2o_linklist_unlink(&pend->sp_node);
        if (wb_spool_commit(sp, pend->sp_batch, err, sizeof(err)) == WB_OK) {
            if (pend->req != NULL)
                answer_spooled(pend);
        } else {
            /* not kept: the provider gets a failure and retries */
            wb_spool_release(sp, pend->sp_seq);
            atomic_fetch_sub(&w->shared->spooled_pending[pend->prov_index], 1);
            pend->sp_seq = 0;
            if (pend->req != NULL)
                answer_failure(pend, E_SPOOL, err);
        }
        if (pend->reported)
            pending_free(pend);
    }
    /* removals of acknowledged records; and, on the first worker, those a
     * failed commit (the disk full) undid, once a second until they hold */
    if (w->spool_dirty || (w->id == 0 && wb_spool_needs_commit(sp))) {
        if (wb_spool_commit(sp, 0, err, sizeof(err)) != WB_OK) {
            wb_log_t l;
            wb_log_begin(&l, WB_LOG_ERROR, "spool: removals not committed, retried in a second");
            wb_log_cstr(&l, "error", err);
            wb_log_end(&l);
        }
        w->spool_dirty = 0;
    }
}

static int replay_produce(void *ctx, const wb_spool_rec_t *rec, wb_spool_replay_t *rp)
{
    wb_worker_t *w = ctx;
    int unsafe;
    rd_kafka_resp_err_t kerr;
    wb_record_t r = {rec->topic,     rec->key,    rec->key_len, (char *)rec->value,
                     rec->value_len, rec->reason, rec->intended};
    /* its topic is gone (or never was): a dead letter, as a new record would be */
    if (rec->reason == NULL &&
        wb_topics_state(w->shared->topics, rec->topic, &unsafe) == WB_TOPIC_MISSING) {
        r.topic = w->cfg->deadletter_topic;
        r.reason = "unknown_topic";
        r.intended = rec->topic;
    }
    return wb_kafka_produce(w->kafka, &r, 1, rp, &kerr) == WB_OK ? 0 : -1;
}

/* A spooled record Kafka refused for good leaves the spool for the
 * dead-letter topic (with what fits of it), under the same replay: its
 * dead letter's report removes it, and the records behind it go on. 0 if
 * the producer took the dead letter. */
static int replay_refused(wb_worker_t *w, wb_spool_replay_t *rp, const wb_report_t *rep)
{
    const char *reason = wb_kafka_err_refused(rep->err);
    const wb_provider_t *prov = wb_config_provider(w->cfg, rp->provider, strlen(rp->provider));
    rd_kafka_resp_err_t kerr;
    wb_buf_t dl;
    if (reason == NULL || prov == NULL || rp->refused)
        return -1;
    rp->refused = 1;
    wb_stats_count_refused(&w->stats, (unsigned)(prov - w->cfg->providers), reason);
    if (refused_deadletter(w, prov, rep->value, rep->value_len, rep->err, reason, 0, &dl) != WB_OK)
        return -1;
    wb_record_t r = {.topic = w->cfg->deadletter_topic, .key = rep->key, .key_len = rep->key_len,
                     .reason = reason, .intended = NULL};
    return produce_dead(w, rp, &r, &dl, &kerr) == WB_OK ? 0 : -1;
}

static void replay_report(wb_worker_t *w, wb_spool_replay_t *rp, const wb_report_t *rep)
{
    char name[40];
    if (rep->err != RD_KAFKA_RESP_ERR_NO_ERROR && wb_kafka_err_refused(rep->err) != NULL &&
        replay_refused(w, rp, rep) == 0) {
        wb_stats_count_kafka_error(&w->stats, rep->err);
        return; /* its dead letter's report comes with rp */
    }
    if (wb_spool_replayed(w->shared->spool, rp, rep->err == RD_KAFKA_RESP_ERR_NO_ERROR, name)) {
        const wb_provider_t *prov = wb_config_provider(w->cfg, name, strlen(name));
        if (prov != NULL)
            atomic_fetch_sub(&w->shared->spooled_pending[prov - w->cfg->providers], 1);
        w->spool_dirty = 1;
    } else {
        wb_stats_count_kafka_error(&w->stats, rep->err);
    }
}

/* A damaged spooled record: never produced wrong, kept in the spool file's
 * table corrupt for whoever investigates; its provider no longer waits for it. */
static void replay_moved(void *ctx, int64_t seq, const char *provider)
{
    wb_worker_t *w = ctx;
    const wb_provider_t *prov =
        provider != NULL ? wb_config_provider(w->cfg, provider, strlen(provider)) : NULL;
    if (prov != NULL)
        atomic_fetch_sub(&w->shared->spooled_pending[prov - w->cfg->providers], 1);
    wb_log_t l;
    wb_log_begin(&l, WB_LOG_ERROR,
                 "spool: a damaged record was moved aside (table corrupt), not produced");
    wb_log_int(&l, "seq", seq);
    wb_log_cstr(&l, "provider", provider != NULL ? provider : "?");
    wb_log_end(&l);
}

/* The first worker replays while some broker connection is up, and from
 * its start (before the first statistics, a second in: a restarted bridge
 * replays at once; if Kafka is down, the replays fail and are retried). */
static void replay(wb_worker_t *w)
{
    wb_kafka_brokers_t b;
    long pending = 0;
    if (w->id != 0 || w->shared->spool == NULL)
        return;
    for (unsigned i = 0; i < w->cfg->nproviders; i++)
        pending += atomic_load_explicit(&w->shared->spooled_pending[i], memory_order_relaxed);
    if (pending == 0) /* nothing to replay: no query on every loop turn */
        return;
    wb_kafka_brokers(w->kafka, &b);
    if (b.reachable || !b.measured)
        wb_spool_replay(w->shared->spool, 256, replay_produce, replay_moved, w);
}

int wb_ingest_drained(wb_worker_t *w)
{
    wb_spool_stats_t st;
    if (atomic_load_explicit(&w->stats.inflight, memory_order_relaxed) != 0)
        return 0;
    if (w->id != 0 || w->shared->spool == NULL)
        return 1;
    wb_spool_stats(w->shared->spool, &st); /* the replayer goes on while it can */
    return st.records == 0;
}

void wb_ingest_tick(wb_worker_t *w)
{
    h2o_linklist_t *l, *next;
    wb_ingest_spool_turn(w);
    replay(w);
    for (l = w->held.next; l != &w->held; l = next) {
        next = l->next;
        wb_pending_t *pend = H2O_STRUCT_FROM_MEMBER(wb_pending_t, held_node, l);
        int unsafe;
        wb_topic_state_t ts = wb_topics_state(w->shared->topics, pend_topic(pend), &unsafe);
        if (pend->req != NULL && ts == WB_TOPIC_UNKNOWN &&
            elapsed_ms(&pend->start) < (wb_topics_auto_create(w->shared->topics) != 0
                                            ? WB_TOPIC_HOLD_CREATE_MS
                                            : WB_TOPIC_HOLD_MS))
            continue;
        if (pend->req == NULL) { /* answered (deadline, drain) or gone: nothing to write */
            free_held(pend);
            continue;
        }
        h2o_linklist_unlink(&pend->held_node);
        char *value = pend->held_value;
        pend->held_value = NULL;
        rd_kafka_resp_err_t kerr;
        if (unsafe && w->cfg->refuse_unsafe_topics) {
            free(value);
            answer_failure(pend, E_UNSAFE_TOPIC, NULL);
        } else if (dispatch(w, pend, value, pend->held_len, pend->held_key, pend->held_key_len,
                            NULL, ts, &kerr) != WB_OK) {
            wb_stats_count_kafka_error(&w->stats, kerr);
            answer_failure(pend, kerr == RD_KAFKA_RESP_ERR__QUEUE_FULL ? E_OVERLOADED : E_KAFKA,
                           rd_kafka_err2str(kerr));
        } else {
            free(pend->held_key);
            pend->held_key = NULL;
            continue; /* its report answers and frees it */
        }
        pending_free(pend);
    }
}

static void answer_receipt(wb_pending_t *pend, const wb_report_t *rep, double ms)
{
    h2o_req_t *req = pend->req;
    wb_worker_t *w = pend->worker;
    /* refused for good: the receipt of its dead letter, whatever the
     * provider's deadletter_status (a 4xx repeated to Piriod disables it) */
    int status = pend->deadletter && pend->refused == NULL ? pend->prov->deadletter_status : 200;
    char body[1024], dltype[64];
    const char *type = pend_type(pend);
    size_t type_len = pend->type_len;
    wb_buf_t b;
    detach(pend);
    if (pend->dl_reason == WB_DL_UNKNOWN_TOPIC || pend->dl_reason == WB_DL_REFUSED) {
        /* the record's type, as for every dead letter */
        type_len = (size_t)snprintf(dltype, sizeof(dltype), "%s.deadletter", pend->prov->name);
        type = dltype;
    }
    wb_buf_init(&b, sizeof(body));
    wb_buf_append(&b, "{\"id\":", 6);
    wb_json_write_string(&b, pend_id(pend), pend->id_len);
    wb_buf_append(&b, ",\"type\":", 8);
    wb_json_write_string(&b, type, type_len);
    wb_buf_append(&b, ",\"topic\":", 9);
    wb_json_write_string(&b, pend_written_topic(pend), strlen(pend_written_topic(pend)));
    wb_buf_append(&b, ",\"partition\":", 13);
    wb_buf_append_int(&b, rep->partition);
    wb_buf_append(&b, ",\"offset\":", 10);
    wb_buf_append_int(&b, rep->offset);
    if (pend->deadletter)
        wb_buf_append(&b, ",\"deadletter\":true", 18);
    if (pend->refused != NULL) {
        wb_buf_append(&b, ",\"refused\":", 11);
        wb_json_write_string(&b, pend->refused, strlen(pend->refused));
    }
    if (pend->fallback != NULL) {
        wb_buf_append(&b, ",\"intended_topic\":", 18);
        wb_json_write_string(&b, pend_topic(pend), pend->topic_len);
    }
    wb_buf_appendc(&b, '}');
    wb_stats_count_status(&w->stats, pend->prov_index, status);
    access_log(pend->prov, status, ms,
               pend->dl_reason == WB_DL_UNKNOWN_TOPIC ? "unknown_topic"
               : pend->refused != NULL                ? pend->refused
               : pend->deadletter                     ? "deadletter"
                                                      : NULL,
               pend_id(pend), pend_written_topic(pend), rep->partition, rep->offset);
    if (status != 200)
        send_error(req, E_INVALID_SHAPE, status, NULL, NULL);
    else
        send_json(req, 200, "OK", b.p, b.len);
    wb_buf_free(&b);
}

void wb_ingest_on_report(void *opaque, const wb_report_t *rep, void *ctx)
{
    if (*(const int *)opaque == WB_SPOOL_REPLAY_KIND) {
        replay_report(ctx, opaque, rep);
        return;
    }
    wb_pending_t *pend = opaque;
    wb_worker_t *w = pend->worker;
    double ms = elapsed_ms(&pend->start);
    rd_kafka_resp_err_t kerr;

    if (pend->sp_seq != 0) {        /* spooled while it was in the producer */
        int64_t seq = pend->sp_seq; /* removed before it is released to the replayer */
        if (rep->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
            wb_spool_remove(w->shared->spool, pend->sp_seq) == WB_OK) {
            atomic_fetch_sub(&w->shared->spooled_pending[pend->prov_index], 1);
            w->spool_dirty = 1;
            pend->sp_seq = 0;
            if (h2o_linklist_is_linked(&pend->sp_node)) /* not answered yet: the receipt */
                h2o_linklist_unlink(&pend->sp_node);
        }
        wb_spool_release(w->shared->spool, seq);
    }
    if (h2o_linklist_is_linked(&pend->sp_node)) { /* answered when its batch is durable */
        pend->reported = 1;
        return;
    }
    if (rep->err != RD_KAFKA_RESP_ERR_NO_ERROR && pend->req != NULL && spooling(w, pend->prov) &&
        pend->sp_seq == 0 && kafka_unavailable(rep->err) && spool_add(w, pend, 0) == WB_OK) {
        pend->reported = 1; /* Kafka refused it now: the spool takes it */
        return;
    }
    h2o_timeout_unlink(&pend->sp_timer);
    if (wb_kafka_err_refused(rep->err) != NULL && pend->sp_seq == 0) {
        /* refused for good: a dead letter (a spooled copy: the replayer's) */
        wb_stats_count_kafka_error(&w->stats, rep->err);
        wb_stats_count_refused(&w->stats, pend->prov_index, wb_kafka_err_refused(rep->err));
        if (produce_refused(w, pend, rep->key, rep->key_len, rep->value, rep->value_len, rep->err,
                            &kerr) == WB_OK)
            return; /* its own report answers */
    }
    if (wb_kafka_err_unknown_topic(rep->err) &&
        produce_fallback(w, pend, rep->key, rep->key_len, rep->value, rep->value_len, &kerr) ==
            WB_OK)
        return; /* its own report answers */
    wb_stats_observe_latency(&w->stats, ms);
    if (rep->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (pend->deadletter) {
            atomic_fetch_add_explicit(&w->stats.deadlettered[pend->prov_index], 1,
                                      memory_order_relaxed);
            atomic_fetch_add_explicit(&w->stats.deadletters[pend->prov_index][pend->dl_reason], 1,
                                      memory_order_relaxed);
        } else {
            atomic_fetch_add_explicit(&w->stats.produced[pend->prov_index], 1,
                                      memory_order_relaxed);
        }
    } else {
        wb_stats_count_kafka_error(&w->stats, rep->err);
    }
    if (pend->req != NULL) {
        if (rep->err != RD_KAFKA_RESP_ERR_NO_ERROR)
            answer_failure(pend, E_KAFKA, wb_kafka_err_str(rep->err));
        else
            answer_receipt(pend, rep, ms);
    }
    pending_free(pend);
}

/* "application/json", "text/json", "application/<x>+json", with parameters. */
static int content_type_ok(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return 1;
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t n = 0;
    while (n < v.len && v.base[n] != ';' && v.base[n] != ' ' && v.base[n] != '\t')
        n++;
    if ((n == 16 && strncasecmp(v.base, "application/json", 16) == 0) ||
        (n == 9 && strncasecmp(v.base, "text/json", 9) == 0))
        return 1;
    return n > 17 && strncasecmp(v.base, "application/", 12) == 0 &&
           strncasecmp(v.base + n - 5, "+json", 5) == 0;
}

static int header_lookup(void *ctx, const char *name, size_t idx, wb_str_t *value)
{
    h2o_req_t *req = ctx;
    size_t n = strlen(name);
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (h->name->len == n && strncasecmp(h->name->base, name, n) == 0 && idx-- == 0) {
            value->p = h->value.base;
            value->len = h->value.len;
            return 1;
        }
    }
    return 0;
}

/* Bytes (a pipelined request) or EOF while an HTTP/1 answer waits: stop
 * reading; h2o serves what was read when it restarts reading after the answer. */
static void on_read_while_waiting(h2o_socket_t *sock, const char *err)
{
    h2o_socket_read_stop(sock);
}

/* A connection's input buffer starts at the prototype's capacity (libh2o:
 * 8 KiB) and each read wants 4 KiB free in it, so with 8 KiB keep_reading
 * lost its room for requests above about 4 KiB (a 4 KiB body) and those paid
 * the two epoll_ctl: at 256 connections, 4 KiB bodies, 49.9k -> 63.9k req/s
 * and 24.3 -> 17.7 us a request with 16 KiB, which keeps requests up to
 * 12 KiB reading. It costs memory only while a connection has a request in
 * hand (a connection frees its buffer once consumed): RSS at 1024 busy
 * connections, 1 KiB bodies, 24.1 -> 31.6 MiB. 12 KiB was as fast at 4 KiB
 * but made 64 KiB HTTP/2 bodies 2.7 times slower (libh2o's frame reads and
 * a buffer doubling from 12 KiB). h2o recycles freed buffers by the
 * prototype's capacity: change it only while its thread has none recycled. */
#define WB_SOCKET_BUFFER 16384

void wb_ingest_thread_init(void)
{
    if (h2o_socket_buffer_prototype.allocator.cnt == 0 &&
        h2o_socket_buffer_prototype._initial_buf.capacity < WB_SOCKET_BUFFER)
        h2o_socket_buffer_prototype._initial_buf.capacity = WB_SOCKET_BUFFER;
}

/* libh2o 2.2 stops reading an HTTP/1 connection while its request is handled
 * and starts again once the answer is written: with an answer that waits for
 * Kafka, each is an epoll_ctl (two per request, about 8 % of the worker's CPU
 * at 256 connections). Reading on, with a callback that only stops, leaves the
 * socket's registration as it is; h2o's own callback replaces ours when it
 * restarts reading. Only while the buffer can take a read without moving:
 * the request's headers and body point into it. (Nothing reads them after
 * this handler, the pending holds what the answer needs; only a client that
 * pipelines more than the free space before its answer could make h2o move
 * the buffer on a second read.) */
static void keep_reading(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || h2o_socket_is_reading(sock))
        return;
    h2o_buffer_t *in = sock->input;
    if (in->bytes == NULL)
        return;
    size_t free_bytes = in->capacity - in->size - (size_t)(in->bytes - in->_buf);
    if (free_bytes < H2O_SOCKET_INITIAL_INPUT_BUFFER_SIZE)
        return;
    h2o_socket_read_start(sock, on_read_while_waiting);
}

/* Keeps pend's record (value taken) while it waits: for its topic to be
 * known, or for the provider's API. */
static int hold_record(wb_pending_t *pend, char *value, size_t value_len, const char *key,
                       size_t key_len, const char *reason)
{
    if ((pend->held_key = malloc(key_len + 1)) == NULL ||
        (reason != NULL && (pend->held_reason = strdup(reason)) == NULL)) {
        free(value);
        return WB_ERR_NOMEM;
    }
    memcpy(pend->held_key, key, key_len);
    pend->held_key_len = key_len;
    pend->held_value = value;
    pend->held_len = value_len;
    return WB_OK;
}

/* A spooling provider's record waits spool_after_ms for its ack, then the
 * spool takes it (on_spool_after). */
static void spool_timer_start(wb_worker_t *w, wb_pending_t *pend)
{
    if (spooling(w, pend->prov) && pend->sp_seq == 0 && !pend->reported)
        h2o_timeout_link(w->ctx.loop, &w->spool_timers[pend->prov_index], &pend->sp_timer);
}

/* Hands pend's record (value malloc'ed, taken) to the spool, to the wait for
 * its topic, or to the producer. Returns -1 when it went (a report, the
 * spool or the tick answers), else the error to answer (*detail set or
 * NULL); pend is the caller's to free then. */
static int send_record(wb_worker_t *w, wb_pending_t *pend, char *value, size_t value_len,
                       const char *key, size_t key_len, const char *reason, const char **detail)
{
    rd_kafka_resp_err_t kerr;
    int unsafe = 0, spool_it = spooling(w, pend->prov);
    /* the topic: one the cluster has, one it does not (the fallback), or
     * one not known yet (held until the registry finds out, tick) */
    wb_topic_state_t ts = wb_topics_state(w->shared->topics, pend_topic(pend), &unsafe);
    *detail = NULL;
    if (unsafe && w->cfg->refuse_unsafe_topics) {
        free(value);
        return E_UNSAFE_TOPIC;
    }
    /* the cluster refuses the bridge's credentials (SASL, TLS): said at once,
     * not at the provider's deadline; a spooling provider's record is spooled */
    wb_kafka_brokers_t b;
    wb_kafka_brokers(w->kafka, &b);
    if (b.auth_failed && !spool_it) {
        free(value);
        *detail = "the cluster refused the bridge's credentials (see the log)";
        return E_KAFKA_AUTH;
    }
    if (spool_it && spool_copy(pend, value, value_len, key, key_len, reason) != WB_OK) {
        free(value);
        *detail = "out of memory";
        return E_OVERLOADED;
    }
    if (spool_it && (behind_spool(w, pend->prov_index) || b.auth_failed)) {
        /* behind its provider's spooled records: the same way, in order */
        free(value);
        pend->reported = 1;
        if (spool_add(w, pend, 0) != WB_OK)
            return E_SPOOL;
    } else if (ts == WB_TOPIC_UNKNOWN && !pend->deadletter) {
        if (hold_record(pend, value, value_len, key, key_len, NULL) != WB_OK) {
            *detail = "out of memory";
            return E_OVERLOADED;
        }
        h2o_linklist_insert(&w->held, &pend->held_node);
    } else if (dispatch(w, pend, value, value_len, key, key_len, reason, ts, &kerr) != WB_OK) {
        wb_stats_count_kafka_error(&w->stats, kerr);
        if (spool_it && kafka_unavailable(kerr) && spool_add(w, pend, 0) == WB_OK) {
            pend->reported = 1; /* refused at once (queue full): the spool takes it */
        } else {
            *detail = rd_kafka_err2str(kerr);
            return kerr == RD_KAFKA_RESP_ERR__QUEUE_FULL ? E_OVERLOADED : E_KAFKA;
        }
    }
    return -1;
}

/* The provider's API has answered about pend's event (lookup.c). */
static void on_looked_up(void *data, wb_lookup_result_t res, const char *why)
{
    wb_pending_t *pend = data;
    wb_worker_t *w = pend->worker;
    char *value = pend->held_value, *key = pend->held_key, *reason = pend->held_reason;
    const char *detail = NULL;
    pend->held_value = pend->held_key = pend->held_reason = NULL;
    pend->looking_up = 0;
    if (pend->req != NULL && res == WB_LOOKUP_CONFIRMED) {
        int e =
            send_record(w, pend, value, pend->held_len, key, pend->held_key_len, reason, &detail);
        free(key);
        free(reason);
        if (e < 0) { /* its report (or the spool) answers and frees it */
            spool_timer_start(w, pend);
            return;
        }
        answer_error(pend, (wb_ingest_err_t)e, NULL, detail);
        pending_free(pend);
        return;
    }
    free(value);
    free(key);
    free(reason);
    if (pend->req == NULL) { /* answered (deadline, drain) or gone: nothing to write */
    } else if (res == WB_LOOKUP_REFUSED) {
        atomic_fetch_add_explicit(&w->stats.auth_failures[pend->prov_index], 1,
                                  memory_order_relaxed);
        answer_error(pend, E_AUTH, WB_AUTH_INVALID, why);
    } else {
        answer_error(pend, res == WB_LOOKUP_CANCELLED ? E_DRAINING : E_AUTH_UNAVAILABLE, NULL, why);
    }
    pending_free(pend);
}

int wb_ingest_not_found(h2o_handler_t *self, h2o_req_t *req)
{
    return reject(req, NULL, WB_MAX_PROVIDERS, E_NOT_FOUND, NULL, NULL);
}

static wb_pending_t *pending_new(wb_worker_t *w, const wb_provider_t *prov, unsigned prov_index,
                                 const wb_event_t *ev, const struct timespec *start)
{
    size_t type_len = strlen(ev->type), topic_len = strlen(ev->topic);
    wb_pending_t *pend = malloc(sizeof(*pend) + ev->id_len + type_len + topic_len + 3);
    if (pend == NULL)
        return NULL;
    memset(pend, 0, sizeof(*pend));
    pend->kind = WB_PENDING_KIND;
    pend->worker = w;
    pend->prov = prov;
    pend->prov_index = prov_index;
    pend->deadletter = ev->deadletter;
    pend->start = *start;
    pend->id_len = ev->id_len;
    pend->type_len = type_len;
    pend->topic_len = topic_len;
    memcpy(pend->strs, ev->id, ev->id_len + 1);
    memcpy(pend->strs + ev->id_len + 1, ev->type, type_len + 1);
    memcpy(pend->strs + ev->id_len + 1 + type_len + 1, ev->topic, topic_len + 1);
    pend->deadline.cb = on_deadline;
    pend->sp_timer.cb = on_spool_after;
    return pend;
}

int wb_ingest_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    wb_worker_t *w = worker_of(req);
    const wb_config_t *cfg = w->cfg;
    struct timespec start;
    char err[256];
    wb_event_t ev;

    clock_gettime(CLOCK_MONOTONIC, &start);

    /* /webhooks/NAME or /webhooks/NAME/TOKEN, nothing deeper */
    h2o_iovec_t path = req->path_normalized;
    if (path.len < 10 || memcmp(path.base, "/webhooks/", 10) != 0)
        return reject(req, NULL, WB_MAX_PROVIDERS, E_NOT_FOUND, NULL, NULL);
    const char *name = path.base + 10, *end = path.base + path.len;
    const char *slash = memchr(name, '/', (size_t)(end - name));
    size_t name_len = (size_t)((slash != NULL ? slash : end) - name);
    wb_str_t token = {slash != NULL ? slash + 1 : "",
                      slash != NULL ? (size_t)(end - slash - 1) : 0};
    if (token.len > 0 && memchr(token.p, '/', token.len) != NULL)
        return reject(req, NULL, WB_MAX_PROVIDERS, E_NOT_FOUND, NULL, NULL);
    const wb_provider_t *prov = wb_config_provider(cfg, name, name_len);
    if (prov == NULL || !prov->enabled)
        return reject(req, NULL, WB_MAX_PROVIDERS, E_NOT_FOUND, NULL, NULL);
    unsigned pi = (unsigned)(prov - cfg->providers);
    if (token.len > 0 && !wb_auth_uses_path(prov->auth))
        return reject(req, prov, pi, E_NOT_FOUND, NULL, NULL);
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        return reject(req, prov, pi, E_METHOD, NULL, NULL);
    if (w->draining)
        return reject(req, prov, pi, E_DRAINING, NULL, NULL);
    /* a connection over its reset budget: nothing of it reaches Kafka */
    if (wb_conn_admit(req) != 0)
        return reject(req, prov, pi, E_RESETS, NULL, NULL);
    if (req->entity.len > prov->max_body)
        return reject(req, prov, pi, E_TOO_LARGE, NULL, NULL);
    if (!content_type_ok(req))
        return reject(req, prov, pi, E_MEDIA_TYPE, NULL, NULL);

    /* authentication, on the raw request, before anything is parsed */
    struct sockaddr_storage peer;
    socklen_t peerlen = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&peer);
    wb_auth_req_t ar = {
        .body = {req->entity.base != NULL ? req->entity.base : "", req->entity.len},
        .path_token = token,
        .peer = peerlen > 0 ? (struct sockaddr *)&peer : NULL,
        .header = header_lookup,
        .header_ctx = req,
        .now = now_unix_ms() / 1000,
    };
    const char *code = NULL;
    int ar_r = wb_auth_verify(prov->auth, &ar, &code, err, sizeof(err));
    if (ar_r == WB_ERR_AUTH) {
        atomic_fetch_add_explicit(&w->stats.auth_failures[pi], 1, memory_order_relaxed);
        return reject(req, prov, pi, E_AUTH, code, err);
    }
    if (ar_r != WB_OK) /* could not verify (e.g. OpenSSL failed): the provider retries */
        return reject(req, prov, pi, E_OVERLOADED, code, err);

    if (atomic_load_explicit(&w->stats.inflight, memory_order_relaxed) >= (long)w->max_inflight)
        return reject(req, prov, pi, E_OVERLOADED, NULL, NULL);

    int r = wb_json_parse(&w->json, ar.body.p, ar.body.len, cfg->max_depth, err, sizeof(err));
    if (r == WB_ERR_TOO_LARGE)
        return reject(req, prov, pi, E_TOO_LARGE, NULL, "body has too many JSON tokens");
    if (r == WB_ERR_NOMEM)
        return reject(req, prov, pi, E_OVERLOADED, NULL, "out of memory");
    if (r != WB_OK)
        return reject(req, prov, pi, E_INVALID_JSON, NULL, err);

    r = wb_event_build(cfg, prov, &w->json, now_unix_ms(), &ev);
    if (r != WB_OK) {
        wb_event_free(&ev);
        return reject(req, prov, pi, r == WB_ERR_TOO_LARGE ? E_TOO_LARGE : E_OVERLOADED, NULL,
                      NULL);
    }
    wb_pending_t *pend = pending_new(w, prov, pi, &ev, &start);
    if (pend == NULL) {
        wb_event_free(&ev);
        return reject(req, prov, pi, E_OVERLOADED, NULL, "out of memory");
    }
    size_t value_len = ev.value.len;
    char *value = wb_buf_steal(&ev.value, NULL);
    const char *reason = ev.deadletter ? ev.reason : NULL;
    const char *detail = NULL;

    /* auth = api-lookup: the provider's API confirms the event first; the
     * record waits in pend (on_looked_up sends it), unless the cache knows */
    const wb_lookup_conf_t *lc = wb_auth_lookup(prov->auth);
    wb_lookup_result_t lr = WB_LOOKUP_CONFIRMED;
    if (lc != NULL) {
        if (hold_record(pend, value, value_len, ev.key, ev.key_len, reason) != WB_OK) {
            pending_free(pend);
            return reject(req, prov, pi, E_OVERLOADED, NULL, "out of memory");
        }
        /* a made-up id (the body has none that can be used) is no event of the API's */
        lr = wb_lookup_start(w->lookup, pi, lc, &w->json, ev.id, ev.id_generated ? 0 : ev.id_len,
                             on_looked_up, pend, err, sizeof(err));
        if (lr != WB_LOOKUP_PENDING) { /* decided at once: the record is back here */
            value = pend->held_value;
            free(pend->held_key);
            free(pend->held_reason);
            pend->held_value = pend->held_key = pend->held_reason = NULL;
        }
    }
    if (lr == WB_LOOKUP_PENDING) {
        pend->looking_up = 1;
    } else if (lr != WB_LOOKUP_CONFIRMED) {
        free(value);
        pending_free(pend);
        if (lr == WB_LOOKUP_REFUSED) {
            atomic_fetch_add_explicit(&w->stats.auth_failures[pi], 1, memory_order_relaxed);
            return reject(req, prov, pi, E_AUTH, WB_AUTH_INVALID, err);
        }
        return reject(req, prov, pi, E_AUTH_UNAVAILABLE, NULL, err);
    } else {
        int e = send_record(w, pend, value, value_len, ev.key, ev.key_len, reason, &detail);
        if (e >= 0) {
            pending_free(pend);
            return reject(req, prov, pi, (wb_ingest_err_t)e, NULL, detail);
        }
    }

    /* from here the report callback owns pend; the request holds a link */
    wb_link_t *link = h2o_mem_alloc_shared(&req->pool, sizeof(*link), on_link_dispose);
    link->pend = pend;
    pend->link = link;
    pend->req = req;
    h2o_linklist_insert(&w->pending, &pend->node);
    h2o_timeout_link(w->ctx.loop, &w->deadlines[pi], &pend->deadline);
    if (!pend->looking_up)
        spool_timer_start(w, pend);
    atomic_fetch_add_explicit(&w->stats.inflight, 1, memory_order_relaxed);
    if (req->version < 0x200)
        keep_reading(req);
    return 0;
}
