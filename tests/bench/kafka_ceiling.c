/* kafka_ceiling.c - the benchmark's Kafka ceiling: the bridge's own producer
 * (wb_kafka_new: the same configuration from wb_kafka_conf_new, the same
 * headers, the same wake-up pipe on an h2o event loop) writing the same
 * records the bridge would write for the benchmark bodies (built once with
 * wb_event_build), with a fixed number in flight as the bridge has with that
 * many connections, and no HTTP at all. Each delivery report frees a slot
 * that is refilled at once (a closed loop, like a keep-alive client).
 * Settings come from the same environment as the bridge (BRIDGE_RDKAFKA_*,
 * BRIDGE_PROVIDER_*, ...), so both run with identical producer settings.
 * Prints one JSON line with the rate, latency percentiles (produce to
 * delivery report), CPU time and peak RSS.
 * Usage: bench-kafka-ceiling --brokers LIST --bodies MANIFEST --inflight N
 *          [--threads T] [--warmup S] [--duration S]
 * MANIFEST: one "provider path-of-body" per line. */
#include "config.h"
#include "event.h"
#include "json.h"
#include "kafka.h"
#include "log.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    char topic[WB_TOPIC_MAX + 1];
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
} record_t;

typedef struct {
    record_t *v;
    size_t n;
} records_t;

enum { PHASE_WARMUP, PHASE_MEASURE, PHASE_STOP };
static atomic_int phase;

typedef struct {
    unsigned id;
    const wb_config_t *cfg;
    const char *bootstrap;
    const records_t *recs;
    unsigned inflight;
    h2o_evloop_t *loop;
    wb_kafka_t *k;
    unsigned outstanding;
    size_t next;
    unsigned long ok_total, ok, failed, produce_errors, queue_full;
    unsigned deferred; /* slots waiting for room in the producer's queue */
    uint32_t *lat_us;  /* one per report in the measured window */
    size_t nlat, caplat;
    char err[512];
    pthread_t tid;
} kthread_t;

/* The bridge mallocs a pending object per record; so does the ceiling. */
typedef struct {
    kthread_t *t;
    struct timespec start;
} kpending_t;

static uint64_t elapsed_us(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (uint64_t)((b.tv_sec - a->tv_sec) * 1000000 + (b.tv_nsec - a->tv_nsec) / 1000);
}

/* 0: produced; 1: the producer's queue is full (queue.buffering.max.*, the
 * bridge would answer 503): retried after the next report; -1: error. */
static int produce_one(kthread_t *t)
{
    const record_t *r = &t->recs->v[(t->next++ + t->id * 7) % t->recs->n];
    kpending_t *p = malloc(sizeof(*p));
    char *value = malloc(r->value_len);
    rd_kafka_resp_err_t kerr;
    if (p == NULL || value == NULL)
        abort();
    memcpy(value, r->value, r->value_len);
    p->t = t;
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    wb_record_t rec = {r->topic, r->key, r->key_len, value, r->value_len, NULL, NULL};
    if (wb_kafka_produce(t->k, &rec, 0, p, &kerr) !=
        WB_OK) {
        free(value);
        free(p);
        if (kerr == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            t->deferred++;
            t->queue_full++;
            return 1;
        }
        t->produce_errors++;
        return -1;
    }
    t->outstanding++;
    return 0;
}

/* Refills the slots a full queue left empty, while the queue takes them. */
static void produce_deferred(kthread_t *t)
{
    while (t->deferred > 0) {
        t->deferred--;
        if (produce_one(t) == 1)
            break;
    }
}

static void on_report(void *opaque, const wb_report_t *rep, void *ctx)
{
    kpending_t *p = opaque;
    kthread_t *t = p->t;
    int ph = atomic_load_explicit(&phase, memory_order_relaxed);
    t->outstanding--;
    if (rep->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        t->ok_total++;
    if (ph == PHASE_MEASURE) {
        if (rep->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            t->ok++;
            if (t->nlat == t->caplat) {
                t->caplat = t->caplat ? t->caplat * 2 : 65536;
                if ((t->lat_us = realloc(t->lat_us, t->caplat * sizeof(*t->lat_us))) == NULL)
                    abort();
            }
            uint64_t us = elapsed_us(&p->start);
            t->lat_us[t->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        } else {
            t->failed++;
        }
    }
    free(p);
    if (ph != PHASE_STOP) {
        produce_deferred(t);
        produce_one(t);
    }
}

static atomic_uint ready, failed_start;

/* The loop and the producer are made here, on the thread that runs them: an
 * h2o socket takes the (thread-local, not thread-safe) buffer allocator of
 * the thread that creates it. */
static void *thread_main(void *arg)
{
    kthread_t *t = arg;
    t->loop = h2o_evloop_create();
    t->k = wb_kafka_new(t->cfg, t->bootstrap, t->loop, on_report, t, t->err, sizeof(t->err));
    if (t->k == NULL) {
        atomic_fetch_add(&failed_start, 1);
        atomic_fetch_add(&ready, 1);
        return NULL;
    }
    atomic_fetch_add(&ready, 1);
    for (unsigned i = 0; i < t->inflight; i++)
        if (produce_one(t) == 1)
            break;
    t->deferred = t->inflight - t->outstanding - (unsigned)t->produce_errors;
    while (atomic_load(&phase) != PHASE_STOP || t->outstanding > 0) {
        h2o_evloop_run(t->loop, 10);
        wb_kafka_poll(t->k);
        if (atomic_load(&phase) == PHASE_STOP && wb_kafka_flush(t->k, 10000) == 0)
            break;
    }
    /* on this thread too: the socket's buffer goes back to this thread's allocator */
    wb_kafka_destroy(t->k);
    h2o_evloop_destroy(t->loop);
    return NULL;
}

static int load_records(const wb_config_t *cfg, const char *manifest, records_t *recs)
{
    FILE *f = fopen(manifest, "r");
    char line[4096], prov_name[64], path[4000], err[256];
    wb_json_t js;
    size_t cap = 0;
    if (f == NULL) {
        fprintf(stderr, "kafka-ceiling: %s: %m\n", manifest);
        return -1;
    }
    wb_json_init(&js, cfg->max_tokens);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%63s %3999s", prov_name, path) != 2)
            continue;
        const wb_provider_t *prov = wb_config_provider(cfg, prov_name, strlen(prov_name));
        FILE *b = fopen(path, "rb");
        if (prov == NULL || b == NULL) {
            fprintf(stderr, "kafka-ceiling: %s %s: no such provider or file\n", prov_name, path);
            return -1;
        }
        fseek(b, 0, SEEK_END);
        long len = ftell(b);
        fseek(b, 0, SEEK_SET);
        char *doc = malloc((size_t)len + 1);
        if (doc == NULL || fread(doc, 1, (size_t)len, b) != (size_t)len)
            return -1;
        fclose(b);
        wb_event_t ev;
        if (wb_json_parse(&js, doc, (size_t)len, cfg->max_depth, err, sizeof(err)) != WB_OK ||
            wb_event_build(cfg, prov, &js, (int64_t)time(NULL) * 1000, &ev) != WB_OK ||
            ev.deadletter) {
            fprintf(stderr, "kafka-ceiling: %s does not give a record: %s\n", path, err);
            return -1;
        }
        if (recs->n == cap) {
            cap = cap ? cap * 2 : 64;
            if ((recs->v = realloc(recs->v, cap * sizeof(*recs->v))) == NULL)
                return -1;
        }
        record_t *r = &recs->v[recs->n++];
        snprintf(r->topic, sizeof(r->topic), "%s", ev.topic);
        r->key_len = ev.key_len;
        if ((r->key = malloc(ev.key_len + 1)) == NULL)
            return -1;
        memcpy(r->key, ev.key, ev.key_len + 1);
        r->value = wb_buf_steal(&ev.value, &r->value_len);
        wb_event_free(&ev);
        free(doc);
    }
    fclose(f);
    wb_json_free(&js);
    if (recs->n == 0) {
        fprintf(stderr, "kafka-ceiling: %s lists no body\n", manifest);
        return -1;
    }
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static long vmhwm_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"brokers", required_argument, NULL, 'b'},
                                         {"bodies", required_argument, NULL, 'm'},
                                         {"inflight", required_argument, NULL, 'n'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"warmup", required_argument, NULL, 'w'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {NULL, 0, NULL, 0}};
    const char *brokers = NULL, *manifest = NULL;
    unsigned inflight = 64, nthreads = 1;
    double warmup = 1, duration = 5;
    int c;
    while ((c = getopt_long(argc, argv, "b:m:n:t:w:d:", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            brokers = optarg;
            break;
        case 'm':
            manifest = optarg;
            break;
        case 'n':
            inflight = (unsigned)atoi(optarg);
            break;
        case 't':
            nthreads = (unsigned)atoi(optarg);
            break;
        case 'w':
            warmup = atof(optarg);
            break;
        case 'd':
            duration = atof(optarg);
            break;
        default:
            return 2;
        }
    }
    if (brokers == NULL || manifest == NULL || inflight < 1 || nthreads < 1 || nthreads > 64 ||
        duration <= 0) {
        fprintf(stderr,
                "usage: %s --brokers LIST --bodies MANIFEST --inflight N [--threads T] "
                "[--warmup S] [--duration S]\n",
                argv[0]);
        return 2;
    }

    wb_config_t cfg;
    wb_config_errors_t errs;
    if (wb_config_load(&cfg, NULL, environ, &errs) != WB_OK) {
        for (unsigned i = 0; i < errs.n; i++)
            fprintf(stderr, "kafka-ceiling: %s\n", errs.msg[i]);
        return 1;
    }
    wb_log_set_level(cfg.log_level);
    records_t recs = {0};
    if (load_records(&cfg, manifest, &recs) != 0)
        return 1;

    kthread_t *threads = calloc(nthreads, sizeof(*threads));
    for (unsigned i = 0; i < nthreads; i++) {
        kthread_t *t = &threads[i];
        t->id = i;
        t->cfg = &cfg;
        t->recs = &recs;
        t->bootstrap = brokers;
        t->inflight = inflight / nthreads + (i < inflight % nthreads);
    }
    /* every producer exists before the clock starts */
    atomic_store(&phase, PHASE_WARMUP);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_create(&threads[i].tid, NULL, thread_main, &threads[i]);
    while (atomic_load(&ready) < nthreads)
        sleep_s(0.01);
    if (atomic_load(&failed_start) > 0) {
        for (unsigned i = 0; i < nthreads; i++)
            if (threads[i].k == NULL)
                fprintf(stderr, "kafka-ceiling: %s\n", threads[i].err);
        return 1;
    }

    sleep_s(warmup);
    double c0 = cpu_s(), t0 = mono_s();
    atomic_store(&phase, PHASE_MEASURE);
    sleep_s(duration);
    atomic_store(&phase, PHASE_STOP);
    double c1 = cpu_s(), t1 = mono_s();
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(threads[i].tid, NULL);

    unsigned long ok = 0, ok_total = 0, failed = 0, perr = 0, qfull = 0;
    size_t nlat = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        ok += threads[i].ok;
        ok_total += threads[i].ok_total;
        failed += threads[i].failed;
        perr += threads[i].produce_errors;
        qfull += threads[i].queue_full;
        nlat += threads[i].nlat;
    }
    uint32_t *lat = malloc((nlat ? nlat : 1) * sizeof(*lat));
    size_t at = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        if (threads[i].nlat > 0)
            memcpy(lat + at, threads[i].lat_us, threads[i].nlat * sizeof(*lat));
        at += threads[i].nlat;
    }
    qsort(lat, nlat, sizeof(*lat), cmp_u32);
#define PCT(p) (nlat ? lat[(size_t)((double)(nlat - 1) * (p))] / 1000.0 : -1.0)
    printf(
        "{\"threads\":%u,\"inflight\":%u,\"records\":%zu,\"window_s\":%.3f,\"ok\":%lu,"
        "\"failed\":%lu,\"produce_errors\":%lu,\"queue_full\":%lu,\"ok_total\":%lu,\"rate\":%.1f,"
        "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"cpu_ms_per_1k\":%.3f,"
        "\"vmhwm_kb\":%ld}\n",
        nthreads, inflight, recs.n, t1 - t0, ok, failed, perr, qfull, ok_total,
        (double)ok / (t1 - t0), PCT(0.50), PCT(0.99), PCT(0.999),
        ok ? (c1 - c0) * 1e6 / (double)ok : -1.0, vmhwm_kb());
    fflush(stdout);
    for (unsigned i = 0; i < nthreads; i++)
        free(threads[i].lat_us);
    for (size_t i = 0; i < recs.n; i++) {
        free(recs.v[i].key);
        free(recs.v[i].value);
    }
    free(recs.v);
    free(lat);
    free(threads);
    wb_config_free(&cfg);
    return failed > 0 || perr > 0 ? 3 : 0;
}
