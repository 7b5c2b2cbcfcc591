/* replay.c - `webhook-bridge replay` and `webhook-bridge deadletters`
 * (replay.h, CONTRACT.md "Replay of dead letters").
 *
 * replay: a consumer of its own group reads the dead-letter topic from the
 * group's committed offsets (or --from-offset) up to the end offsets it saw
 * at start. A selected dead letter's original body (its data) goes through
 * the listener's own functions: wb_json_parse, wb_event_replay (the current
 * provider description and routing), with the dead letter's id and
 * receivedat. What passes is produced, by the bridge's producer settings
 * (acks=all, idempotence), to its topic if that topic exists; what still
 * fails is counted by reason and left where it is. Batches: the offsets
 * after a batch are committed only once every record it produced is
 * acknowledged; before its records are produced, the batch's last offset is
 * committed as metadata ("pending:<offset>") beside the unchanged offset,
 * so a run after an interrupted one knows which of its records the
 * interrupted run may already have written (reported as possibly twice).
 * deadletters: the same reading, from the start of the topic, nothing
 * produced or committed: counts by provider and reason, oldest and newest.
 * Owns: its consumer, its producer, the counts. */
#include "replay.h"
#include "config.h"
#include "event.h"
#include "json.h"
#include "kafka.h"
#include "log.h"

#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PENDING_PREFIX "pending:"

typedef struct {
    const char *config, *provider, *reason, *group;
    int64_t since_ms, until_ms; /* -1: no bound */
    int64_t from_offset;        /* -1: the group's committed offsets */
    int partition;              /* -1: every partition */
    int dry_run, json, list;
    unsigned batch;
    int timeout_ms;
} opts_t;

/* A small table of names and counts (topics, reasons). */
typedef struct {
    char *name;
    unsigned long n;
} count_t;

typedef struct {
    count_t *v;
    size_t n, cap;
} counts_t;

typedef struct {
    unsigned long read, selected, replayed, would_pass, failing, possibly_twice;
    counts_t by_topic, by_reason; /* replayed (or would be), still failing */
    counts_t listing;             /* deadletters: "provider\treason" */
    char oldest[40], newest[40];  /* receivedat of what was selected */
} summary_t;

/* One dead-letter partition being read. */
typedef struct {
    int32_t id;
    int64_t start, end, next; /* next: the offset after the last one processed */
    int64_t pending_end;      /* an interrupted run's batch ended here (-1: none) */
    int done;
} part_t;

/* A record produced in this batch, until its delivery report. */
typedef struct {
    const char *topic; /* in by_topic's names: stable for the run */
    int reported;
    rd_kafka_resp_err_t err;
} slot_t;

typedef struct {
    opts_t o;
    wb_config_t cfg;
    rd_kafka_t *consumer;
    wb_kafka_t *producer;
    wb_json_t dl_js, body_js;
    wb_buf_t body;
    part_t *parts;
    int nparts;
    counts_t topics_known; /* n: 1 exists, 0 missing */
    summary_t s;
    int64_t last_progress_ms;
} replay_t;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static count_t *count_find(counts_t *c, const char *name, size_t len, int add)
{
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->v[i].name) == len && memcmp(c->v[i].name, name, len) == 0)
            return &c->v[i];
    if (!add)
        return NULL;
    if (c->n == c->cap) {
        size_t cap = c->cap != 0 ? c->cap * 2 : 16;
        count_t *v = realloc(c->v, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        c->v = v;
        c->cap = cap;
    }
    if ((c->v[c->n].name = strndup(name, len)) == NULL)
        return NULL;
    c->v[c->n].n = 0;
    return &c->v[c->n++];
}

static const char *count_add(counts_t *c, const char *name, unsigned long k)
{
    count_t *e = count_find(c, name, strlen(name), 1);
    if (e == NULL)
        return "?";
    e->n += k;
    return e->name;
}

static void counts_free(counts_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].name);
    free(c->v);
}

/* RFC 3339 (2026-12-01T10:00:00Z, fractions and offsets allowed, or a bare
 * date) to ms since the epoch; -1 when it is not one. */
static int64_t parse_time(const char *s)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%d", &tm);
    if (p == NULL)
        return -1;
    int64_t ms = 0, off_s = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if ((p = strptime(p + 1, "%H:%M:%S", &tm)) == NULL)
            return -1;
        if (*p == '.') {
            int64_t scale = 100;
            for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
                ms += scale > 0 ? (*p - '0') * scale : 0;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int h, m;
            if (sscanf(p + 1, "%2d:%2d", &h, &m) != 2)
                return -1;
            off_s = (h * 3600 + m * 60) * (*p == '+' ? 1 : -1);
            p += 6;
        } else {
            return -1;
        }
    }
    if (*p != '\0')
        return -1;
    return ((int64_t)timegm(&tm) - off_s) * 1000 + ms;
}

static void usage(FILE *f, int list)
{
    if (list)
        fprintf(f, "Usage: webhook-bridge deadletters [--config FILE] [selection] [--json]\n"
                   "\n"
                   "What the dead-letter topic holds, from its start: counts by provider and\n"
                   "reason, the oldest and newest. Reads only; commits nothing.\n");
    else
        fprintf(f, "Usage: webhook-bridge replay [--config FILE] [selection] [--dry-run] [--json]\n"
                   "\n"
                   "Runs each selected dead letter's original body through the current provider\n"
                   "descriptions and routing, and produces what now passes to its topic (its\n"
                   "id and receivedat kept; attribute replayedfrom). What still fails stays.\n"
                   "Offsets are committed (group --group) only after Kafka acknowledged every\n"
                   "record of a batch: a second run replays nothing twice.\n"
                   "\n"
                   "  -n, --dry-run          produce and commit nothing; print what would happen\n"
                   "      --group ID         consumer group (default webhook-bridge-replay)\n"
                   "      --batch N          dead letters per batch (default 100)\n");
    fprintf(f, "\n"
               "  -c, --config FILE      the bridge's configuration (also BRIDGE_CONFIG); the\n"
               "                         environment overrides it as for the bridge\n"
               "      --provider NAME    only this provider's dead letters\n"
               "      --reason TEXT      reason code (invalid_shape, unknown_topic, or a refusal:\n"
               "                         record_too_large, topic_authorization_failed, ...) or text\n"
               "      --since TIME       received at or after TIME (RFC 3339, or a date)\n"
               "      --until TIME       received before TIME\n"
               "      --from-offset N    from offset N of each partition (else: where the\n"
               "                         group stopped%s)\n"
               "      --partition P      only partition P\n"
               "      --timeout-ms MS    Kafka's patience for each step (default 30000)\n"
               "      --json             the summary as one JSON object on stdout\n"
               "  -h, --help             this text\n"
               "\n"
               "Exit status: 0 when everything selected was replayed or reported as still\n"
               "failing, 1 on a Kafka or configuration error, 2 on a usage error.\n",
            list ? "; deadletters: the topic's start" : "");
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    enum { O_GROUP = 256, O_BATCH, O_PROVIDER, O_REASON, O_SINCE, O_UNTIL, O_FROM, O_PART,
           O_TIMEOUT, O_JSON };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},      {"dry-run", no_argument, NULL, 'n'},
        {"group", required_argument, NULL, O_GROUP},   {"batch", required_argument, NULL, O_BATCH},
        {"provider", required_argument, NULL, O_PROVIDER},
        {"reason", required_argument, NULL, O_REASON}, {"since", required_argument, NULL, O_SINCE},
        {"until", required_argument, NULL, O_UNTIL},
        {"from-offset", required_argument, NULL, O_FROM},
        {"partition", required_argument, NULL, O_PART},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"json", no_argument, NULL, O_JSON},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    *o = (opts_t){.config = getenv("BRIDGE_CONFIG"), .group = "webhook-bridge-replay",
                  .since_ms = -1, .until_ms = -1, .from_offset = -1, .partition = -1,
                  .batch = 100, .timeout_ms = 30000};
    o->list = strcmp(argv[0], "deadletters") == 0;
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:nh", opts, NULL)) != -1) {
        long long v = 0;
        if (c == O_BATCH || c == O_FROM || c == O_PART || c == O_TIMEOUT) {
            v = strtoll(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 0 || v > INT32_MAX ||
                ((c == O_BATCH || c == O_TIMEOUT) && v == 0)) {
                fprintf(stderr, "webhook-bridge %s: not a valid number: %s\n", argv[0], optarg);
                return 2;
            }
        }
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case 'n':
            o->dry_run = 1;
            break;
        case O_GROUP:
            o->group = optarg;
            break;
        case O_BATCH:
            o->batch = (unsigned)v;
            break;
        case O_PROVIDER:
            o->provider = optarg;
            break;
        case O_REASON:
            o->reason = optarg;
            break;
        case O_SINCE:
        case O_UNTIL:
            if (parse_time(optarg) < 0) {
                fprintf(stderr, "webhook-bridge %s: not an RFC 3339 time: %s\n", argv[0], optarg);
                return 2;
            }
            *(c == O_SINCE ? &o->since_ms : &o->until_ms) = parse_time(optarg);
            break;
        case O_FROM:
            o->from_offset = v;
            break;
        case O_PART:
            o->partition = (int)v;
            break;
        case O_TIMEOUT:
            o->timeout_ms = (int)v;
            break;
        case O_JSON:
            o->json = 1;
            break;
        case 'h':
            usage(stdout, o->list);
            exit(0);
        default:
            usage(stderr, o->list);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "webhook-bridge %s: unexpected argument '%s'\n", argv[0], argv[optind]);
        return 2;
    }
    if (o->config != NULL && *o->config == '\0')
        o->config = NULL;
    if (o->list)
        o->dry_run = 1;
    return 0;
}

/* ---- Kafka ---- */

static rd_kafka_t *consumer_new(const replay_t *rp, char *err, size_t errsz)
{
    /* [librdkafka] (security, TLS, SASL) as every client of the bridge
     * takes it; producer-only names are ignored by a consumer; then what
     * this consumer needs */
    rd_kafka_conf_t *conf = wb_kafka_client_conf(
        &rp->cfg, rp->cfg.brokers, rp->o.list ? WB_CLIENT_DEADLETTERS : WB_CLIENT_REPLAY, NULL, 0,
        err, errsz);
    if (conf == NULL)
        return NULL;
    const char *set[][2] = {{"group.id", rp->o.group},
                            {"enable.auto.commit", "false"},
                            {"enable.auto.offset.store", "false"},
                            {"auto.offset.reset", "earliest"},
                            {"enable.partition.eof", "true"},
                            {"isolation.level", "read_committed"},
                            /* the routed topic's existence is asked with this
                             * client: as the bridge's producers do, a real run
                             * lets a cluster that creates topics on first use
                             * create it (librdkafka >= 2.x and its mock honour
                             * the flag; Debian's 2.0.2 mock created it anyway);
                             * a dry run creates nothing */
                            {"allow.auto.create.topics", rp->o.dry_run ? "false" : "true"},
                            /* errors only: [librdkafka]'s producer settings
                             * would each warn that a consumer ignores them */
                            {"log_level", "3"}};
    for (size_t i = 0; i < WB_ARRAY_SIZE(set); i++)
        if (rd_kafka_conf_set(conf, set[i][0], set[i][1], err, errsz) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errsz);
    if (rk == NULL)
        rd_kafka_conf_destroy(conf);
    return rk;
}

/* Waits (up to the timeout) for the cluster to answer the consumer; a
 * cluster that refuses the login (SASL, TLS: the log's "kafka authentication
 * failed" line says why) is an error at once, not at the timeout. */
static int connected(replay_t *rp, char *err, size_t errsz)
{
    wb_client_role_t role = rp->o.list ? WB_CLIENT_DEADLETTERS : WB_CLIENT_REPLAY;
    int64_t until = wall_ms() + rp->o.timeout_ms;
    do {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(rp->consumer, 0, NULL, &md, 250);
        if (md != NULL)
            rd_kafka_metadata_destroy(md);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return WB_OK;
        rd_kafka_poll(rp->consumer, 0); /* its error callback, which sees a refusal */
        if (wb_kafka_client_refused(role))
            return wb_errf(err, errsz, WB_ERR_KAFKA,
                           "the Kafka cluster refused the login (credentials or certificate: "
                           "see the \"kafka authentication failed\" line)");
    } while (wall_ms() < until);
    return wb_errf(err, errsz, WB_ERR_KAFKA, "no answer from Kafka within %d ms",
                   rp->o.timeout_ms);
}

/* 1 when topic exists, 0 when the cluster says it does not, -1 no answer. */
static int topic_exists(replay_t *rp, const char *topic)
{
    count_t *known = count_find(&rp->topics_known, topic, strlen(topic), 0);
    if (known != NULL)
        return (int)known->n;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rp->consumer, topic, NULL);
    int r = -1;
    if (rkt != NULL &&
        rd_kafka_metadata(rp->consumer, 0, rkt, &md, rp->o.timeout_ms) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1) {
        if (md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0)
            r = 1;
        else if (md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            r = 0;
    }
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    if (rkt != NULL)
        rd_kafka_topic_destroy(rkt);
    if (r >= 0)
        count_add(&rp->topics_known, topic, (unsigned long)r);
    return r;
}

/* A new group's coordinator may still be loading (a fresh cluster):
 * retried, within the timeout. */
static int coordinator_busy(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
           e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS ||
           e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE || e == RD_KAFKA_RESP_ERR__TIMED_OUT ||
           e == RD_KAFKA_RESP_ERR__WAIT_COORD || e == RD_KAFKA_RESP_ERR__TRANSPORT;
}

static rd_kafka_resp_err_t committed(replay_t *rp, rd_kafka_topic_partition_list_t *l)
{
    int64_t until = wall_ms() + rp->o.timeout_ms;
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_committed(rp->consumer, l, rp->o.timeout_ms)) !=
               RD_KAFKA_RESP_ERR_NO_ERROR &&
           coordinator_busy(e) && wall_ms() < until)
        usleep(200 * 1000);
    return e;
}

/* The dead-letter topic's partitions, where to start and where to stop. */
static int plan(replay_t *rp, char *err, size_t errsz)
{
    const char *topic = rp->cfg.deadletter_topic;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rp->consumer, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rp->consumer, 0, rkt, &md, rp->o.timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 ||
        md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        wb_errf(err, errsz, WB_ERR_KAFKA, "dead-letter topic %s: %s", topic,
                rd_kafka_err2str(e != RD_KAFKA_RESP_ERR_NO_ERROR ? e : md->topics[0].err));
        if (md != NULL)
            rd_kafka_metadata_destroy(md);
        return WB_ERR_KAFKA;
    }
    int n = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) {
        int32_t id = md->topics[0].partitions[i].id;
        if (rp->o.partition < 0 || rp->o.partition == id)
            rd_kafka_topic_partition_list_add(l, topic, id);
    }
    rd_kafka_metadata_destroy(md);
    if (l->cnt == 0) {
        rd_kafka_topic_partition_list_destroy(l);
        return wb_errf(err, errsz, WB_ERR_CONFIG, "%s has no partition %d", topic,
                       rp->o.partition);
    }
    if (!rp->o.list && (e = committed(rp, l)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_topic_partition_list_destroy(l);
        return wb_errf(err, errsz, WB_ERR_KAFKA, "committed offsets of group %s: %s",
                       rp->o.group, rd_kafka_err2str(e));
    }
    rp->parts = calloc((size_t)l->cnt, sizeof(*rp->parts));
    if (rp->parts == NULL) {
        rd_kafka_topic_partition_list_destroy(l);
        return WB_ERR_NOMEM;
    }
    int r = WB_OK;
    for (int i = 0; i < l->cnt && r == WB_OK; i++) {
        rd_kafka_topic_partition_t *tp = &l->elems[i];
        part_t *p = &rp->parts[rp->nparts++];
        int64_t lo, hi;
        if ((e = rd_kafka_query_watermark_offsets(rp->consumer, topic, tp->partition, &lo, &hi,
                                                  rp->o.timeout_ms)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            r = wb_errf(err, errsz, WB_ERR_KAFKA, "end offsets of %s/%d: %s", topic,
                        tp->partition, rd_kafka_err2str(e));
            break;
        }
        int64_t committed = rp->o.list ? -1 : tp->offset;
        p->id = tp->partition;
        p->end = hi;
        p->pending_end = -1;
        if (rp->o.from_offset >= 0)
            p->start = rp->o.from_offset;
        else
            p->start = committed >= 0 ? committed : lo;
        if (p->start < lo)
            p->start = lo; /* gone by retention */
        p->next = p->start;
        p->done = p->start >= p->end;
        if (committed >= 0 && tp->metadata_size > strlen(PENDING_PREFIX) &&
            memcmp(tp->metadata, PENDING_PREFIX, strlen(PENDING_PREFIX)) == 0) {
            char num[32];
            size_t len = tp->metadata_size - strlen(PENDING_PREFIX);
            if (len < sizeof(num)) {
                memcpy(num, (const char *)tp->metadata + strlen(PENDING_PREFIX), len);
                num[len] = '\0';
                p->pending_end = strtoll(num, NULL, 10);
            }
        }
    }
    if (r == WB_OK) {
        rd_kafka_topic_partition_list_t *a = rd_kafka_topic_partition_list_new(rp->nparts);
        for (int i = 0; i < rp->nparts; i++)
            if (!rp->parts[i].done)
                rd_kafka_topic_partition_list_add(a, topic, rp->parts[i].id)->offset =
                    rp->parts[i].start;
        if (a->cnt > 0 && (e = rd_kafka_assign(rp->consumer, a)) != RD_KAFKA_RESP_ERR_NO_ERROR)
            r = wb_errf(err, errsz, WB_ERR_KAFKA, "assign: %s", rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(a);
    }
    rd_kafka_topic_partition_list_destroy(l);
    return r;
}

static part_t *part_of(replay_t *rp, int32_t id)
{
    for (int i = 0; i < rp->nparts; i++)
        if (rp->parts[i].id == id)
            return &rp->parts[i];
    return NULL;
}

static int all_done(const replay_t *rp)
{
    for (int i = 0; i < rp->nparts; i++)
        if (!rp->parts[i].done)
            return 0;
    return 1;
}

/* Commits each partition's next offset. With ends: only the partitions of
 * the batch about to be produced, with metadata "pending:<ends[i]>"; without:
 * every partition read, with none. */
static int commit(replay_t *rp, const int64_t *ends, char *err, size_t errsz)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(rp->nparts);
    char meta[64];
    for (int i = 0; i < rp->nparts; i++) {
        if (ends != NULL ? ends[i] < 0 : rp->parts[i].next == rp->parts[i].start)
            continue; /* not in this batch; nothing read there */
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_add(l, rp->cfg.deadletter_topic, rp->parts[i].id);
        tp->offset = rp->parts[i].next;
        if (ends != NULL && ends[i] >= 0) {
            int n = snprintf(meta, sizeof(meta), PENDING_PREFIX "%lld", (long long)ends[i]);
            tp->metadata = malloc((size_t)n);
            if (tp->metadata != NULL) {
                memcpy(tp->metadata, meta, (size_t)n);
                tp->metadata_size = (size_t)n;
            }
        }
    }
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int64_t until = wall_ms() + rp->o.timeout_ms;
         l->cnt > 0 && (e = rd_kafka_commit(rp->consumer, l, 0)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
         coordinator_busy(e) && wall_ms() < until;)
        usleep(200 * 1000);
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return wb_errf(err, errsz, WB_ERR_KAFKA, "commit: %s", rd_kafka_err2str(e));
    return WB_OK;
}

static void on_report(void *opaque, const wb_report_t *rep, void *ctx)
{
    slot_t *slot = opaque;
    (void)ctx;
    slot->reported = 1;
    slot->err = rep->err;
}

/* ---- one dead letter ---- */

/* The decoded string at ptr of the dead letter into out (NUL-terminated,
 * at most outsz - 1 bytes); 0 when absent, not a string or too long. */
static int get_string(replay_t *rp, const char *ptr, char *out, size_t outsz)
{
    wb_json_val_t v = wb_json_get(&rp->dl_js, ptr);
    wb_buf_t b;
    if (v.kind != WB_JSON_STRING)
        return 0;
    wb_buf_init(&b, outsz - 1);
    int ok = wb_json_decode(&v, &b) == WB_OK;
    if (ok) {
        memcpy(out, b.p != NULL ? b.p : "", b.len);
        out[b.len] = '\0';
    }
    wb_buf_free(&b);
    return ok;
}

static void failing(replay_t *rp, const char *reason)
{
    rp->s.failing++;
    count_add(&rp->s.by_reason, reason, 1);
}

static void seen_time(summary_t *s, const char *t)
{
    if (s->oldest[0] == '\0' || strcmp(t, s->oldest) < 0)
        snprintf(s->oldest, sizeof(s->oldest), "%s", t);
    if (strcmp(t, s->newest) > 0)
        snprintf(s->newest, sizeof(s->newest), "%s", t);
}

/* Selects, rebuilds and (unless dry) produces one dead letter. slot gets
 * the record's report. Returns 1 when it was produced, 0 when not, a
 * negative wb_err_t on a Kafka error. */
static int one(replay_t *rp, const rd_kafka_message_t *m, slot_t *slot)
{
    char provider[64], reason[512], id[WB_ID_MAX + 1], received[40], from[300];
    const wb_config_t *cfg = &rp->cfg;
    rp->s.read++;
    if (m->payload == NULL ||
        wb_json_parse(&rp->dl_js, m->payload, m->len, cfg->max_depth + 1, NULL, 0) != WB_OK ||
        wb_json_root(&rp->dl_js).kind != WB_JSON_OBJECT) {
        if (rp->o.provider == NULL && rp->o.reason == NULL) { /* selected, never replayable */
            rp->s.selected++;
            failing(rp, "not a dead letter of this bridge");
        }
        return 0;
    }
    if (!get_string(rp, "/provider", provider, sizeof(provider)))
        provider[0] = '\0';
    /* the reason: its header, else the attribute */
    const void *hv = NULL;
    size_t hlen = 0;
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(hdrs, "deadletter-reason", &hv, &hlen) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        hv != NULL && hlen < sizeof(reason)) {
        memcpy(reason, hv, hlen);
        reason[hlen] = '\0';
    } else if (!get_string(rp, "/deadletterreason", reason, sizeof(reason))) {
        reason[0] = '\0';
    }
    const char *code = strcmp(reason, "unknown_topic") == 0 ? "unknown_topic" : "invalid_shape";
    if (!get_string(rp, "/receivedat", received, sizeof(received)))
        received[0] = '\0';
    int64_t received_ms = parse_time(received);

    /* the selection */
    if (rp->o.provider != NULL && strcmp(rp->o.provider, provider) != 0)
        return 0;
    if (rp->o.reason != NULL && strcmp(rp->o.reason, code) != 0 && !strstr(reason, rp->o.reason))
        return 0;
    if (rp->o.since_ms >= 0 && (received_ms < 0 || received_ms < rp->o.since_ms))
        return 0;
    if (rp->o.until_ms >= 0 && (received_ms < 0 || received_ms >= rp->o.until_ms))
        return 0;
    rp->s.selected++;
    if (received_ms >= 0)
        seen_time(&rp->s, received);
    if (rp->o.list) {
        char key[sizeof(provider) + sizeof(reason) + 2];
        snprintf(key, sizeof(key), "%s\t%s", provider[0] ? provider : "?", reason);
        count_add(&rp->s.listing, key, 1);
        return 0;
    }

    /* the original body, through the current description and routing */
    const wb_provider_t *prov = wb_config_provider(cfg, provider, strlen(provider));
    if (prov == NULL)
        return failing(rp, "no such provider in the configuration"), 0;
    if (!get_string(rp, "/id", id, sizeof(id)) || id[0] == '\0')
        return failing(rp, "dead letter without an id"), 0;
    if (received_ms < 0)
        return failing(rp, "dead letter without receivedat"), 0;
    wb_json_val_t data = wb_json_get(&rp->dl_js, "/data");
    /* a record too large for Kafka was kept as its size, digest and head
     * (ingest.c, produce_refused): the body is not here to replay */
    if (strncmp(reason, "record_too_large", 16) == 0 &&
        wb_json_get(&rp->dl_js, "/data/sha256").kind == WB_JSON_STRING)
        return failing(rp, "record_too_large: only its size, digest and head were kept"), 0;
    const char *body;
    size_t body_len;
    wb_buf_reset(&rp->body);
    if (data.kind == WB_JSON_OBJECT) {
        body = data.raw.p;
        body_len = data.raw.len;
    } else if (data.kind == WB_JSON_STRING && wb_json_decode(&data, &rp->body) == WB_OK) {
        body = rp->body.p != NULL ? rp->body.p : "";
        body_len = rp->body.len;
    } else {
        return failing(rp, "dead letter without data"), 0;
    }
    if (body_len > prov->max_body)
        return failing(rp, "body over max_body"), 0;
    if (wb_json_parse(&rp->body_js, body, body_len, cfg->max_depth, NULL, 0) != WB_OK)
        return failing(rp, "body is not JSON within max_depth"), 0;
    snprintf(from, sizeof(from), "%s/%d/%lld", rd_kafka_topic_name(m->rkt), (int)m->partition,
             (long long)m->offset);
    wb_event_t ev;
    int r = wb_event_replay(cfg, prov, &rp->body_js, received_ms, id, strlen(id), from, &ev);
    if (r != WB_OK) {
        wb_event_free(&ev);
        return failing(rp, wb_err2str(r)), 0;
    }
    if (ev.deadletter) {
        failing(rp, ev.reason);
        wb_event_free(&ev);
        return 0;
    }
    int exists = topic_exists(rp, ev.topic);
    if (exists <= 0) {
        wb_event_free(&ev);
        if (exists < 0)
            return WB_ERR_KAFKA;
        return failing(rp, "unknown_topic"), 0;
    }
    slot->topic = count_add(&rp->s.by_topic, ev.topic, 0);
    if (m->partition >= 0 && part_of(rp, m->partition) != NULL &&
        m->offset < part_of(rp, m->partition)->pending_end)
        rp->s.possibly_twice++;
    if (rp->o.dry_run) {
        rp->s.would_pass++;
        count_add(&rp->s.by_topic, ev.topic, 1);
        wb_event_free(&ev);
        return 0;
    }
    size_t len;
    char *value = wb_buf_steal(&ev.value, &len);
    wb_record_t rec = {ev.topic, ev.key, ev.key_len, value, len, NULL, NULL};
    rd_kafka_resp_err_t kerr;
    if (wb_kafka_produce(rp->producer, &rec, 0, slot, &kerr) != WB_OK) {
        free(value);
        wb_event_free(&ev);
        fprintf(stderr, "webhook-bridge replay: produce to %s: %s\n", ev.topic,
                rd_kafka_err2str(kerr));
        return WB_ERR_KAFKA;
    }
    wb_event_free(&ev);
    return 1;
}

static void progress(replay_t *rp, int final)
{
    if (rp->o.json || !isatty(STDERR_FILENO))
        return;
    int64_t now = wall_ms();
    if (!final && now - rp->last_progress_ms < 1000)
        return;
    rp->last_progress_ms = now;
    fprintf(stderr, "\rreplay: read %lu, %s %lu, still failing %lu%s", rp->s.read,
            rp->o.dry_run ? "would pass" : "replayed",
            rp->o.dry_run ? rp->s.would_pass : rp->s.replayed, rp->s.failing, final ? "\n" : "");
}

/* Reads one batch, produces what passes, waits for every report, commits.
 * Returns WB_OK, or an error (nothing of the failed batch is committed). */
static int batch(replay_t *rp, char *err, size_t errsz)
{
    rd_kafka_message_t **msgs = calloc(rp->o.batch, sizeof(*msgs));
    slot_t *slots = calloc(rp->o.batch, sizeof(*slots));
    int64_t *ends = malloc((size_t)rp->nparts * sizeof(*ends));
    unsigned n = 0, produced = 0;
    int r = WB_OK;
    if (msgs == NULL || slots == NULL || ends == NULL) {
        r = WB_ERR_NOMEM;
        goto out;
    }
    int64_t idle_since = wall_ms();
    while (n < rp->o.batch && !all_done(rp)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rp->consumer, n > 0 ? 0 : 200);
        if (m == NULL) {
            if (n > 0)
                break;
            rd_kafka_poll(rp->consumer, 0); /* errors: logged */
            if (wall_ms() - idle_since > rp->o.timeout_ms) {
                r = wb_errf(err, errsz, WB_ERR_KAFKA, "no message from %s in %d ms",
                            rp->cfg.deadletter_topic, rp->o.timeout_ms);
                goto out;
            }
            continue;
        }
        part_t *p = part_of(rp, m->partition);
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (p != NULL && m->offset >= p->end)
                p->done = 1;
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            r = wb_errf(err, errsz, WB_ERR_KAFKA, "reading %s: %s", rp->cfg.deadletter_topic,
                        rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            goto out;
        }
        if (p == NULL || p->done || m->offset >= p->end) {
            if (p != NULL)
                p->done = 1;
            rd_kafka_message_destroy(m);
            continue;
        }
        msgs[n++] = m;
        if (m->offset + 1 >= p->end)
            p->done = 1;
    }
    /* before anything is produced: where this batch ends, for a run after an interrupted one */
    for (int i = 0; i < rp->nparts; i++)
        ends[i] = -1;
    for (unsigned i = 0; i < n; i++) {
        int idx = (int)(part_of(rp, msgs[i]->partition) - rp->parts);
        ends[idx] = msgs[i]->offset + 1;
    }
    if (!rp->o.dry_run && n > 0 && (r = commit(rp, ends, err, errsz)) != WB_OK)
        goto out;
    for (unsigned i = 0; i < n; i++) {
        int one_r = one(rp, msgs[i], &slots[i]);
        if (one_r < 0) {
            r = wb_errf(err, errsz, WB_ERR_KAFKA, "Kafka did not answer (%s)",
                        wb_err2str(one_r));
            break;
        }
        produced += (unsigned)one_r;
        if (one_r == 0)
            slots[i].topic = NULL; /* nothing to wait for */
    }
    if (produced > 0 && wb_kafka_flush(rp->producer, rp->o.timeout_ms) > 0 && r == WB_OK)
        r = wb_errf(err, errsz, WB_ERR_KAFKA, "records not acknowledged within %d ms",
                    rp->o.timeout_ms);
    for (unsigned i = 0; i < n && r == WB_OK && !rp->o.dry_run; i++) {
        const slot_t *sl = &slots[i];
        if (sl->topic == NULL) /* not produced: skipped, or still failing */
            continue;
        if (sl->reported && sl->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rp->s.replayed++;
            count_add(&rp->s.by_topic, sl->topic, 1);
        } else if (sl->reported && wb_kafka_err_unknown_topic(sl->err)) {
            failing(rp, "unknown_topic"); /* deleted since it was checked */
        } else if (sl->reported && wb_kafka_err_refused(sl->err) != NULL) {
            /* refused for good (too large for its topic, not allowed, ...):
             * the same on every run, so it stays a dead letter, counted as
             * still failing, and the run goes on past it */
            failing(rp, wb_kafka_err_refused(sl->err));
        } else {
            r = wb_errf(err, errsz, WB_ERR_KAFKA, "producing to %s: %s", sl->topic,
                        sl->reported ? wb_kafka_err_str(sl->err) : "no delivery report");
        }
    }
    if (r == WB_OK) {
        for (unsigned i = 0; i < n; i++)
            part_of(rp, msgs[i]->partition)->next = msgs[i]->offset + 1;
        if (!rp->o.dry_run && n > 0)
            r = commit(rp, NULL, err, errsz);
    }
    progress(rp, 0);
out:
    for (unsigned i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    free(msgs);
    free(slots);
    free(ends);
    return r;
}

/* ---- the summary ---- */

static void json_str(wb_buf_t *b, const char *s)
{
    wb_json_write_string(b, s, strlen(s));
}

static void json_counts(wb_buf_t *b, const char *name, const counts_t *c)
{
    wb_buf_printf(b, ",\"%s\":{", name);
    for (size_t i = 0; i < c->n; i++) {
        if (i > 0)
            wb_buf_appendc(b, ',');
        json_str(b, c->v[i].name);
        wb_buf_printf(b, ":%lu", c->v[i].n);
    }
    wb_buf_appendc(b, '}');
}

static void print_summary(replay_t *rp)
{
    const summary_t *s = &rp->s;
    if (rp->o.json) {
        wb_buf_t b;
        wb_buf_init(&b, 1 << 24);
        wb_buf_printf(&b, "{\"command\":\"%s\",\"dry_run\":%s,\"group\":",
                      rp->o.list ? "deadletters" : "replay", rp->o.dry_run ? "true" : "false");
        json_str(&b, rp->o.group);
        wb_buf_printf(&b, ",\"read\":%lu,\"selected\":%lu,\"replayed\":%lu,\"would_pass\":%lu,"
                          "\"still_failing\":%lu,\"possibly_twice\":%lu",
                      s->read, s->selected, s->replayed, s->would_pass, s->failing,
                      s->possibly_twice);
        json_counts(&b, "by_topic", &s->by_topic);
        json_counts(&b, "still_failing_by_reason", &s->by_reason);
        if (rp->o.list) {
            wb_buf_append(&b, ",\"by_provider_and_reason\":[", 27);
            for (size_t i = 0; i < s->listing.n; i++) {
                const char *tab = strchr(s->listing.v[i].name, '\t');
                if (i > 0)
                    wb_buf_appendc(&b, ',');
                wb_buf_append(&b, "{\"provider\":", 12);
                wb_json_write_string(&b, s->listing.v[i].name,
                                     (size_t)(tab - s->listing.v[i].name));
                wb_buf_append(&b, ",\"reason\":", 10);
                json_str(&b, tab + 1);
                wb_buf_printf(&b, ",\"count\":%lu}", s->listing.v[i].n);
            }
            wb_buf_appendc(&b, ']');
        }
        wb_buf_append(&b, ",\"oldest\":", 10);
        json_str(&b, s->oldest);
        wb_buf_append(&b, ",\"newest\":", 10);
        json_str(&b, s->newest);
        wb_buf_append(&b, "}\n", 2);
        fwrite(b.p, 1, b.len, stdout);
        wb_buf_free(&b);
        return;
    }
    if (rp->o.list) {
        printf("%-12s %8s  %s\n", "provider", "count", "reason");
        for (size_t i = 0; i < s->listing.n; i++) {
            const char *tab = strchr(s->listing.v[i].name, '\t');
            printf("%-12.*s %8lu  %s\n", (int)(tab - s->listing.v[i].name), s->listing.v[i].name,
                   s->listing.v[i].n, tab + 1);
        }
        printf("deadletters: %lu dead letters in %s (%lu selected), oldest %s, newest %s\n",
               s->read, rp->cfg.deadletter_topic, s->selected, s->oldest[0] ? s->oldest : "-",
               s->newest[0] ? s->newest : "-");
        return;
    }
    if (rp->o.dry_run) {
        printf("%-48s %8s\n", "would pass, to topic", "count");
        for (size_t i = 0; i < s->by_topic.n; i++)
            printf("%-48s %8lu\n", s->by_topic.v[i].name, s->by_topic.v[i].n);
    }
    if (s->by_reason.n > 0) {
        printf("%-48s %8s\n", "still failing, by reason", "count");
        for (size_t i = 0; i < s->by_reason.n; i++)
            printf("%-48s %8lu\n", s->by_reason.v[i].name, s->by_reason.v[i].n);
    }
    printf("replay%s: %lu dead letters read from %s, %lu selected, %lu %s to %zu topic(s), "
           "%lu still failing (left where they are)%s",
           rp->o.dry_run ? " (dry run)" : "", s->read, rp->cfg.deadletter_topic, s->selected,
           rp->o.dry_run ? s->would_pass : s->replayed,
           rp->o.dry_run ? "would pass" : "replayed", s->by_topic.n, s->failing,
           rp->o.dry_run ? "; nothing produced, nothing committed" : "");
    if (!rp->o.dry_run)
        printf("; offsets committed (group %s)", rp->o.group);
    if (s->possibly_twice > 0)
        printf("; %lu of them possibly replayed twice (the last batch of an interrupted run)",
               s->possibly_twice);
    printf("\n");
}

int wb_replay_main(int argc, char **argv, char *const *env)
{
    replay_t rp = {0};
    wb_config_errors_t errs;
    char err[512];
    int rc = parse_opts(argc, argv, &rp.o);
    if (rc != 0)
        return rc;
    const char *cmd = rp.o.list ? "deadletters" : "replay";
    wb_log_to_stderr(); /* the summary is stdout */
    if (wb_config_load(&rp.cfg, rp.o.config, env, &errs) != WB_OK) {
        for (unsigned i = 0; i < errs.n; i++)
            fprintf(stderr, "webhook-bridge %s: %s\n", cmd, errs.msg[i]);
        fprintf(stderr, "webhook-bridge %s: configuration invalid\n", cmd);
        wb_config_free(&rp.cfg);
        return 1;
    }
    if (rp.cfg.brokers == NULL) {
        fprintf(stderr, "webhook-bridge %s: no brokers: set BRIDGE_KAFKA_BROKERS (or [kafka] "
                        "brokers); for the embedded cluster, the address the bridge logged\n",
                cmd);
        wb_config_free(&rp.cfg);
        return 1;
    }
    wb_json_init(&rp.dl_js, rp.cfg.max_tokens + 64);
    wb_json_init(&rp.body_js, rp.cfg.max_tokens);
    wb_buf_init(&rp.body, 64u << 20);
    rc = 1;
    if ((rp.consumer = consumer_new(&rp, err, sizeof(err))) == NULL ||
        (!rp.o.dry_run && (rp.producer = wb_kafka_new(&rp.cfg, rp.cfg.brokers, NULL, on_report,
                                                      &rp, err, sizeof(err))) == NULL)) {
        fprintf(stderr, "webhook-bridge %s: %s\n", cmd, err);
        goto out;
    }
    if (connected(&rp, err, sizeof(err)) != WB_OK || plan(&rp, err, sizeof(err)) != WB_OK) {
        fprintf(stderr, "webhook-bridge %s: %s\n", cmd, err);
        goto out;
    }
    while (!all_done(&rp))
        if (batch(&rp, err, sizeof(err)) != WB_OK) {
            progress(&rp, 1);
            fprintf(stderr, "webhook-bridge %s: %s; the offsets of the failed batch are not "
                            "committed (a new run resumes before it)\n",
                    cmd, err);
            goto out;
        }
    progress(&rp, 1);
    print_summary(&rp);
    rc = 0;
out:
    if (rp.consumer != NULL) {
        rd_kafka_consumer_close(rp.consumer);
        rd_kafka_destroy(rp.consumer);
    }
    if (rp.producer != NULL)
        wb_kafka_destroy(rp.producer);
    free(rp.parts);
    counts_free(&rp.s.by_topic);
    counts_free(&rp.s.by_reason);
    counts_free(&rp.s.listing);
    counts_free(&rp.topics_known);
    wb_json_free(&rp.dl_js);
    wb_json_free(&rp.body_js);
    wb_buf_free(&rp.body);
    wb_config_free(&rp.cfg);
    return rc;
}
