/* stats.c - the fixed label sets and the writers of the counters (stats.h).
 * Must not: render text (admin.c) or know requests (ingest.c). */
#include "stats.h"

#include <string.h>

const int wb_status_codes[WB_STATUS_SLOTS] = {200, 400, 401, 404, 405, 413,
                                              415, 500, 502, 503, 504, 0};
const double wb_latency_bounds_ms[WB_LAT_BUCKETS] = {1,   2,   5,    10,   25,   50,    100,
                                                     250, 500, 1000, 2500, 5000, 10000, 30000};
const rd_kafka_resp_err_t wb_kafka_errors[WB_KERR_SLOTS - 1] = {
    RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
    RD_KAFKA_RESP_ERR__QUEUE_FULL,
    RD_KAFKA_RESP_ERR__TRANSPORT,
    RD_KAFKA_RESP_ERR__FATAL,
    RD_KAFKA_RESP_ERR__PURGE_QUEUE,
    RD_KAFKA_RESP_ERR__PURGE_INFLIGHT,
    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
    RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
    RD_KAFKA_RESP_ERR__INCONSISTENT, /* WB_KAFKA_ERR_NO_OFFSET: a success without an offset */
};
const char *const wb_dl_reason_names[WB_DL_REASONS] = {"invalid_shape", "unknown_topic",
                                                        "refused"};
const char *const wb_refused_names[WB_REFUSED_SLOTS] = {
    "record_too_large", "invalid_record",      "invalid_topic", "topic_authorization_failed",
    "policy_violation", "unsupported_version", "other"};

void wb_stats_count_refused(wb_stats_t *st, unsigned prov_index, const char *reason)
{
    unsigned slot = WB_REFUSED_SLOTS - 1;
    for (unsigned i = 0; i < WB_REFUSED_SLOTS - 1; i++)
        if (strcmp(wb_refused_names[i], reason) == 0)
            slot = i;
    atomic_fetch_add_explicit(&st->refused[prov_index][slot], 1, memory_order_relaxed);
}

void wb_stats_count_status(wb_stats_t *st, unsigned prov_index, int status)
{
    unsigned slot = WB_STATUS_SLOTS - 1;
    for (unsigned i = 0; i < WB_STATUS_SLOTS - 1; i++)
        if (wb_status_codes[i] == status)
            slot = i;
    atomic_fetch_add_explicit(&st->requests[prov_index][slot], 1, memory_order_relaxed);
}

void wb_stats_count_kafka_error(wb_stats_t *st, rd_kafka_resp_err_t err)
{
    unsigned slot = WB_KERR_SLOTS - 1;
    for (unsigned i = 0; i < WB_KERR_SLOTS - 1; i++)
        if (wb_kafka_errors[i] == err)
            slot = i;
    atomic_fetch_add_explicit(&st->kafka_errors[slot], 1, memory_order_relaxed);
}

void wb_stats_observe_latency(wb_stats_t *st, double ms)
{
    unsigned i = 0;
    while (i < WB_LAT_BUCKETS && ms > wb_latency_bounds_ms[i])
        i++;
    atomic_fetch_add_explicit(&st->latency_buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->latency_sum_us, (unsigned long)(ms * 1000),
                              memory_order_relaxed);
}

int wb_stats_kafka_reachable(const wb_stats_view_t *v)
{
    for (unsigned i = 0; i < v->nworkers; i++)
        if (atomic_load(&v->workers[i]->kafka_reachable))
            return 1;
    return 0;
}

int wb_stats_producers_usable(const wb_stats_view_t *v)
{
    for (unsigned i = 0; i < v->nworkers; i++)
        if (atomic_load(&v->workers[i]->producer_fatal))
            return 0;
    return 1;
}
