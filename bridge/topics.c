/* topics.c - the topic registry (topics.h). A fixed table of the topics the
 * workers asked about, under one mutex; a thread that answers the questions
 * with a client of its own (metadata for existence and replication factor,
 * DescribeConfigs for min.insync.replicas and max.message.bytes), so that no event loop ever waits
 * for the network. On a cluster that creates topics on first use
 * (auto.create.topics.enable, read from a broker's configuration), an
 * "unknown topic" answer is the creation under way, never "missing": the
 * record goes to its topic. Missing topics are asked again every few seconds (an
 * operator may create them), known ones every few minutes (settings change).
 * Owns: the table, the thread, its client. Must not: produce records. */
#include "topics.h"
#include "kafka.h"
#include "log.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOPICS_MAX 1024         /* more: not tracked (produced as is, never refused) */
#define RECHECK_MISSING_MS 5000 /* a topic created by an operator is used this soon */
#define RECHECK_KNOWN_MS 300000
#define RECHECK_UNANSWERED_MS 1000 /* the cluster did not answer: not hammered */
#define RECHECK_CREATING_MS 150    /* a topic the cluster is creating: its records wait */
#define ASK_TIMEOUT_MS 3000
/* A cluster whose auto.create.topics.enable the bridge may not read (no
 * DescribeConfigs on the cluster): an unknown topic asked this many times
 * in a row (RECHECK_CREATING_MS apart) was not created: missing. */
#define CREATING_ASKS_MAX 3

typedef struct {
    char *name;
    wb_topic_state_t state;
    int rf, min_isr;  /* -1: not known */
    int unsafe;       /* 1: under the floor */
    uint64_t checked; /* monotonic ms of the last answer */
    uint64_t asked;   /* monotonic ms of the last question, 0: never */
    int logged;       /* the unsafe warning was written */
    int creating;     /* the last answer: unknown, on a cluster that creates topics */
    int unknowns;     /* "unknown" answers in a row while auto_create is not known */
    long max_bytes;   /* max.message.bytes, -1: not known */
    int small;        /* 1: max_bytes under the largest record max_body makes */
    int small_logged; /* the "too small" warning was written */
} entry_t;

struct wb_topics {
    const wb_config_t *cfg;
    rd_kafka_t *rk;
    rd_kafka_queue_t *configs; /* DescribeConfigs answers (ask_config) */
    /* the cluster's auto.create.topics.enable: -1 not known (yet), 0, 1. With
     * it on, "unknown topic" means "being created by this very question" */
    int auto_create;
    uint64_t broker_asked; /* monotonic ms, 0: never */
    int broker_config_denied; /* said once: the broker's configuration is not readable */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t tid;
    int stop, started;
    entry_t table[TOPICS_MAX];
    unsigned n;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot of name, or the empty slot where it would go; NULL when full. */
static entry_t *slot(wb_topics_t *t, const char *name)
{
    for (unsigned i = 0, j = (unsigned)(hash(name) % TOPICS_MAX); i < TOPICS_MAX;
         i++, j = (j + 1) % TOPICS_MAX) {
        entry_t *e = &t->table[j];
        if (e->name == NULL || strcmp(e->name, name) == 0)
            return e;
    }
    return NULL;
}

wb_topic_state_t wb_topics_state(wb_topics_t *t, const char *topic, int *unsafe)
{
    wb_topic_state_t st = WB_TOPIC_UNKNOWN;
    *unsafe = 0;
    pthread_mutex_lock(&t->lock);
    entry_t *e = slot(t, topic);
    if (e != NULL && e->name != NULL) {
        st = e->state;
        *unsafe = e->unsafe;
    } else if (e != NULL && t->n < TOPICS_MAX * 3 / 4 && (e->name = strdup(topic)) != NULL) {
        e->rf = e->min_isr = -1;
        e->max_bytes = -1;
        t->n++;
        pthread_cond_signal(&t->wake);
    } else {
        st = WB_TOPIC_EXISTS; /* not tracked: produced as is */
    }
    pthread_mutex_unlock(&t->lock);
    return st;
}

int wb_topics_auto_create(wb_topics_t *t)
{
    pthread_mutex_lock(&t->lock);
    int r = t->auto_create;
    pthread_mutex_unlock(&t->lock);
    return r;
}

unsigned wb_topics_small(wb_topics_t *t, void (*fn)(void *, const char *, long), void *ctx)
{
    unsigned n = 0;
    pthread_mutex_lock(&t->lock);
    for (unsigned i = 0; i < TOPICS_MAX; i++) {
        const entry_t *e = &t->table[i];
        if (e->name != NULL && e->small) {
            n++;
            if (fn != NULL)
                fn(ctx, e->name, e->max_bytes);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

unsigned wb_topics_unsafe(wb_topics_t *t, void (*fn)(void *, const char *, int, int), void *ctx)
{
    unsigned n = 0;
    pthread_mutex_lock(&t->lock);
    for (unsigned i = 0; i < TOPICS_MAX; i++) {
        const entry_t *e = &t->table[i];
        if (e->name != NULL && e->unsafe) {
            n++;
            if (fn != NULL)
                fn(ctx, e->name, e->rf, e->min_isr);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

/* Asks for one resource's configuration without waiting: the answer comes
 * on t->configs (read_configs). A cluster without DescribeConfigs (the
 * embedded mock) answers with an error after ASK_TIMEOUT_MS; existence
 * questions never wait behind it. Registry thread only. */
static void ask_config(wb_topics_t *t, rd_kafka_ResourceType_t type, const char *name)
{
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(type, name);
    rd_kafka_AdminOptions_t *opt =
        rd_kafka_AdminOptions_new(t->rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_AdminOptions_set_request_timeout(opt, ASK_TIMEOUT_MS, NULL, 0);
    rd_kafka_DescribeConfigs(t->rk, &res, 1, opt, t->configs);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_ConfigResource_destroy(res);
}

/* Asks one broker's configuration (auto.create.topics.enable) without
 * waiting, at start and every RECHECK_KNOWN_MS. Registry thread only. */
static void ask_broker(wb_topics_t *t, uint64_t now)
{
    const struct rd_kafka_metadata *md = NULL;
    char id[16];
    if (t->broker_asked != 0 && now - t->broker_asked < RECHECK_KNOWN_MS)
        return;
    t->broker_asked = now - RECHECK_KNOWN_MS + RECHECK_UNANSWERED_MS; /* again soon if no broker */
    if (rd_kafka_metadata(t->rk, 0, NULL, &md, ASK_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (md->broker_cnt > 0) {
        snprintf(id, sizeof(id), "%d", (int)md->brokers[0].id);
        ask_config(t, RD_KAFKA_RESOURCE_BROKER, id);
        t->broker_asked = now;
    }
    rd_kafka_metadata_destroy(md);
}

static void publish_min_isr(wb_topics_t *t, const char *name, int min_isr);

/* max.message.bytes of an existing topic, from read_configs: under the
 * largest record a body of max_body makes, some bodies the door takes can
 * only be written if they compress enough (the broker checks the compressed
 * batch); the others become dead letters (record_too_large). Said once. */
static void publish_max_bytes(wb_topics_t *t, const char *name, long max_bytes)
{
    size_t need = wb_kafka_record_max(t->cfg);
    int warn = 0;
    pthread_mutex_lock(&t->lock);
    entry_t *e = slot(t, name);
    if (e != NULL && e->name != NULL) {
        e->max_bytes = max_bytes;
        e->small = max_bytes >= 0 && (size_t)max_bytes < need;
        warn = e->small && !e->small_logged;
        e->small_logged |= warn;
    }
    pthread_mutex_unlock(&t->lock);
    if (warn) {
        wb_log_t l;
        wb_log_begin(&l, WB_LOG_WARN,
                     "topic cannot take every body under max_body: a record that does not "
                     "compress under its max.message.bytes becomes a dead letter");
        wb_log_cstr(&l, "topic", name);
        wb_log_int(&l, "max_message_bytes", max_bytes);
        wb_log_int(&l, "largest_record", (long long)need);
        wb_log_end(&l);
    }
}

/* The answers ask_config's questions got so far.
 * Registry thread only. */
static void read_configs(wb_topics_t *t)
{
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(t->configs, 0)) != NULL) {
        const rd_kafka_DescribeConfigs_result_t *r = rd_kafka_event_DescribeConfigs_result(ev);
        size_t nres = 0, ncfg;
        const rd_kafka_ConfigResource_t **rs =
            r != NULL && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR_NO_ERROR
                ? rd_kafka_DescribeConfigs_result_resources(r, &nres)
                : NULL;
        for (size_t i = 0; i < nres; i++) {
            if (rd_kafka_ConfigResource_error(rs[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                if (rd_kafka_ConfigResource_type(rs[i]) == RD_KAFKA_RESOURCE_BROKER &&
                    !t->broker_config_denied) {
                    t->broker_config_denied = 1;
                    wb_log_t l;
                    wb_log_begin(&l, WB_LOG_INFO,
                                 "topics: the cluster's auto.create.topics.enable cannot be read "
                                 "(DescribeConfigs on the cluster): a topic still unknown after a "
                                 "few questions is taken as missing");
                    wb_log_cstr(&l, "error",
                                rd_kafka_err2name(rd_kafka_ConfigResource_error(rs[i])));
                    wb_log_end(&l);
                }
                continue;
            }
            const rd_kafka_ConfigEntry_t **cs = rd_kafka_ConfigResource_configs(rs[i], &ncfg);
            int broker = rd_kafka_ConfigResource_type(rs[i]) == RD_KAFKA_RESOURCE_BROKER;
            for (size_t j = 0; j < ncfg; j++) {
                const char *v = rd_kafka_ConfigEntry_value(cs[j]);
                const char *name = rd_kafka_ConfigEntry_name(cs[j]);
                if (v == NULL)
                    continue;
                if (!broker && strcmp(name, "min.insync.replicas") == 0)
                    publish_min_isr(t, rd_kafka_ConfigResource_name(rs[i]), atoi(v));
                else if (!broker && strcmp(name, "max.message.bytes") == 0)
                    publish_max_bytes(t, rd_kafka_ConfigResource_name(rs[i]), atol(v));
                else if (broker && strcmp(name, "auto.create.topics.enable") == 0) {
                    pthread_mutex_lock(&t->lock);
                    t->auto_create = strcmp(v, "true") == 0;
                    pthread_mutex_unlock(&t->lock);
                }
            }
        }
        rd_kafka_event_destroy(ev);
    }
}

/* Records an answer of the cluster about name (min_isr -1: not known yet). */
static void publish(wb_topics_t *t, const char *name, wb_topic_state_t st, int rf, int min_isr)
{
    const wb_config_t *cfg = t->cfg;
    if (st == WB_TOPIC_UNKNOWN)
        return; /* no answer: asked again later */
    pthread_mutex_lock(&t->lock);
    entry_t *e = slot(t, name);
    int warn = 0;
    if (e != NULL && e->name != NULL) {
        e->state = st;
        e->rf = rf;
        if (st == WB_TOPIC_EXISTS)
            e->unknowns = 0;
        if (min_isr >= 0 || st != WB_TOPIC_EXISTS) /* keep what an earlier answer said */
            e->min_isr = min_isr;
        min_isr = e->min_isr;
        e->unsafe = st == WB_TOPIC_EXISTS &&
                    ((rf >= 0 && (unsigned)rf < cfg->min_replication_factor) ||
                     (min_isr >= 0 && (unsigned)min_isr < cfg->min_insync_replicas));
        e->checked = wb_mono_ms();
        warn = e->unsafe && !e->logged;
        e->logged |= warn;
    }
    pthread_mutex_unlock(&t->lock);
    wb_log_t l;
    wb_log_begin(&l, WB_LOG_DEBUG, "topic");
    wb_log_cstr(&l, "topic", name);
    wb_log_cstr(&l, "state", st == WB_TOPIC_EXISTS ? "exists" : "missing");
    wb_log_int(&l, "replication_factor", rf);
    wb_log_int(&l, "min_insync_replicas", min_isr);
    wb_log_end(&l);
    if (warn) {
        wb_log_begin(&l, WB_LOG_WARN,
                     "topic cannot keep the promise: a 200 for it is not on enough brokers");
        wb_log_cstr(&l, "topic", name);
        wb_log_int(&l, "replication_factor", rf);
        wb_log_int(&l, "min_insync_replicas", min_isr);
        wb_log_int(&l, "refused", cfg->refuse_unsafe_topics);
        wb_log_end(&l);
    }
}

/* Asks the cluster about one topic. Blocking; registry thread only. */
static void ask(wb_topics_t *t, const char *name)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(t->rk, name, NULL);
    wb_topic_state_t st = WB_TOPIC_UNKNOWN;
    int rf = -1;
    if (rkt != NULL &&
        rd_kafka_metadata(t->rk, 0, rkt, &md, ASK_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1) {
        const struct rd_kafka_metadata_topic *mt = &md->topics[0];
        wb_kafka_client_connected(WB_CLIENT_TOPICS);
        if (mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            /* a cluster that creates topics (or may: not known yet) creates
             * it now; its records go to it. Missing only where it would not,
             * or where it did not after a few questions */
            pthread_mutex_lock(&t->lock);
            entry_t *e = slot(t, name);
            int unknowns = e != NULL && e->name != NULL ? ++e->unknowns : CREATING_ASKS_MAX;
            st = t->auto_create == 0 || (t->auto_create < 0 && unknowns >= CREATING_ASKS_MAX)
                     ? WB_TOPIC_MISSING
                     : WB_TOPIC_UNKNOWN;
            if (e != NULL && e->name != NULL)
                e->creating = st == WB_TOPIC_UNKNOWN;
            pthread_mutex_unlock(&t->lock);
        } else if (mt->err == RD_KAFKA_RESP_ERR_NO_ERROR && mt->partition_cnt > 0) {
            st = WB_TOPIC_EXISTS;
            for (int p = 0; p < mt->partition_cnt; p++)
                if (rf < 0 || mt->partitions[p].replica_cnt < rf)
                    rf = mt->partitions[p].replica_cnt;
        } else if (mt->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                   mt->err == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION) {
            /* the bridge may not see it, or the name is invalid: its records
             * are produced and Kafka's refusal makes them dead letters
             * (ingest.c), at once instead of after the topic hold */
            st = WB_TOPIC_EXISTS;
        }
    }
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    if (rkt != NULL)
        rd_kafka_topic_destroy(rkt);
    /* whether it exists is what held records wait for: tell them now */
    publish(t, name, st, rf, -1);
    if (st == WB_TOPIC_EXISTS)
        ask_config(t, RD_KAFKA_RESOURCE_TOPIC, name); /* min.insync.replicas */
}

/* min.insync.replicas of an existing topic, from read_configs. */
static void publish_min_isr(wb_topics_t *t, const char *name, int min_isr)
{
    wb_topic_state_t st = WB_TOPIC_UNKNOWN;
    int rf = -1;
    pthread_mutex_lock(&t->lock);
    entry_t *e = slot(t, name);
    if (e != NULL && e->name != NULL) {
        st = e->state;
        rf = e->rf;
    }
    pthread_mutex_unlock(&t->lock);
    if (st == WB_TOPIC_EXISTS)
        publish(t, name, st, rf, min_isr);
}

/* The next topic to ask about, copied (the table may move on), or NULL.
 * Called with the lock held. */
static char *next_question(wb_topics_t *t, uint64_t now)
{
    for (unsigned i = 0; i < TOPICS_MAX; i++) {
        entry_t *e = &t->table[i];
        if (e->name == NULL)
            continue;
        uint64_t age = now - e->asked;
        if (e->asked == 0 || (e->state == WB_TOPIC_UNKNOWN && age >= RECHECK_UNANSWERED_MS) ||
            (e->state == WB_TOPIC_UNKNOWN && e->creating && age >= RECHECK_CREATING_MS) ||
            (e->state == WB_TOPIC_MISSING && age >= RECHECK_MISSING_MS) ||
            age >= RECHECK_KNOWN_MS) {
            e->asked = now;
            return strdup(e->name);
        }
    }
    return NULL;
}

static void *registry_main(void *arg)
{
    wb_topics_t *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        char *name = next_question(t, wb_mono_ms());
        pthread_mutex_unlock(&t->lock);
        read_configs(t);
        ask_broker(t, wb_mono_ms());
        if (name != NULL)
            ask(t, name);
        pthread_mutex_lock(&t->lock);
        if (name == NULL) { /* until a new topic, or 200 ms for the answers */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 200 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&t->wake, &t->lock, &until);
        }
        free(name);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

wb_topics_t *wb_topics_new(const wb_config_t *cfg, const char *bootstrap, char *err, size_t errsz)
{
    char e[512];
    wb_topics_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->cfg = cfg;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    /* the producers' security settings ([librdkafka]): on a TLS or SASL
     * cluster a client without them never connects, and every webhook would
     * wait for its topic's answer (WB_TOPIC_HOLD_MS) */
    rd_kafka_conf_t *conf =
        wb_kafka_client_conf(cfg, bootstrap, WB_CLIENT_TOPICS, NULL, 0, e, sizeof(e));
    if (conf == NULL || (t->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e))) == NULL) {
        if (conf != NULL)
            rd_kafka_conf_destroy(conf);
        wb_errf(err, errsz, WB_ERR_KAFKA, "topic registry: %s", e);
        wb_topics_free(t);
        return NULL;
    }
    t->configs = rd_kafka_queue_new(t->rk);
    t->auto_create = -1;
    if (pthread_create(&t->tid, NULL, registry_main, t) != 0) {
        wb_errf(err, errsz, WB_ERR_NOMEM, "topic registry: no thread");
        wb_topics_free(t);
        return NULL;
    }
    t->started = 1;
    return t;
}

void wb_topics_free(wb_topics_t *t)
{
    if (t == NULL)
        return;
    if (t->started) {
        pthread_mutex_lock(&t->lock);
        t->stop = 1;
        pthread_cond_signal(&t->wake);
        pthread_mutex_unlock(&t->lock);
        pthread_join(t->tid, NULL);
    }
    if (t->configs != NULL)
        rd_kafka_queue_destroy(t->configs);
    if (t->rk != NULL)
        rd_kafka_destroy(t->rk);
    for (unsigned i = 0; i < TOPICS_MAX; i++)
        free(t->table[i].name);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
