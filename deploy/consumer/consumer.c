/* consumer.c - webhook-consumer, an example service that reads what
 * webhook-bridge writes to Kafka.
 *
 * It shows the four things every consuming microservice has to get right:
 *   1. its own consumer group (one group per service: every service sees
 *      every event, the replicas of one service share the partitions);
 *   2. a subscription by pattern (^webhooks\..*), so that topics created
 *      later for new event types are picked up without a restart;
 *   3. deduplication by the CloudEvents (source, id) pair, because the
 *      bridge delivers at least once: a provider that did not get its 200
 *      (timeout, broker failover) sends the same event again;
 *   4. offsets committed only after the record was processed, so that a
 *      crash replays records instead of losing them.
 *
 * The dedup memory here is a bounded LRU set in memory: enough to absorb
 * provider retries that arrive close together. A real service keeps the ids
 * it has applied in its own database (a unique key on source+id, written in
 * the same transaction as the effect), which survives restarts.
 *
 * Output: one line per record on stdout,
 *   event topic=T partition=P offset=O key=K id=I type=Y subject=S source=R time=Z
 *   duplicate topic=T partition=P offset=O key=K id=I type=Y
 *   invalid topic=T partition=P offset=O key=K reason=...
 * values that hold spaces, quotes or control characters are written as JSON
 * strings. With --print-data the CloudEvent follows, as one line of JSON.
 * Diagnostics and the closing summary go to stderr. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, strndup */
#endif
#include <errno.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JSMN_STRICT
#include <jsmn.h>

#define DEFAULT_BROKERS "localhost:9092"
#define DEFAULT_GROUP "webhook-consumer-example"
#define DEFAULT_TOPICS "^webhooks\\..*"
#define DEFAULT_DEDUP 10000

static volatile sig_atomic_t stop;
static long long assigned_at; /* when partitions were last assigned, ms; 0 = never */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* ---- bounded LRU set of event keys ------------------------------------ */

typedef struct dedup_entry {
    char *key;
    uint64_t hash;
    struct dedup_entry *hnext;       /* bucket chain */
    struct dedup_entry *prev, *next; /* recency list, head = most recent */
} dedup_entry_t;

typedef struct {
    dedup_entry_t **buckets;
    size_t nbuckets; /* power of two */
    size_t size, cap;
    dedup_entry_t *head, *tail;
} dedup_t;

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int dedup_init(dedup_t *d, size_t cap)
{
    memset(d, 0, sizeof(*d));
    d->cap = cap;
    d->nbuckets = 16;
    while (d->nbuckets < cap * 2)
        d->nbuckets <<= 1;
    d->buckets = calloc(d->nbuckets, sizeof(*d->buckets));
    return d->buckets != NULL ? 0 : -1;
}

static void list_unlink(dedup_t *d, dedup_entry_t *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        d->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        d->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(dedup_t *d, dedup_entry_t *e)
{
    e->prev = NULL;
    e->next = d->head;
    if (d->head != NULL)
        d->head->prev = e;
    d->head = e;
    if (d->tail == NULL)
        d->tail = e;
}

static void bucket_remove(dedup_t *d, dedup_entry_t *e)
{
    dedup_entry_t **pp = &d->buckets[e->hash & (d->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
}

/* Returns 1 if key was already in the set (and marks it most recent), 0 if
 * it was added, -1 when out of memory. Capacity 0 disables deduplication. */
static int dedup_check_add(dedup_t *d, const char *key, size_t len)
{
    if (d->cap == 0)
        return 0;
    uint64_t h = fnv1a(key, len);
    for (dedup_entry_t *e = d->buckets[h & (d->nbuckets - 1)]; e != NULL; e = e->hnext) {
        if (e->hash == h && strlen(e->key) == len && memcmp(e->key, key, len) == 0) {
            list_unlink(d, e);
            list_push_front(d, e);
            return 1;
        }
    }
    dedup_entry_t *e;
    if (d->size == d->cap) { /* evict the least recently seen key, reuse its entry */
        e = d->tail;
        list_unlink(d, e);
        bucket_remove(d, e);
        free(e->key);
        d->size--;
    } else if ((e = malloc(sizeof(*e))) == NULL) {
        return -1;
    }
    if ((e->key = strndup(key, len)) == NULL) {
        free(e);
        return -1;
    }
    e->hash = h;
    e->hnext = d->buckets[h & (d->nbuckets - 1)];
    d->buckets[h & (d->nbuckets - 1)] = e;
    list_push_front(d, e);
    d->size++;
    return 0;
}

static void dedup_free(dedup_t *d)
{
    dedup_entry_t *e = d->head;
    while (e != NULL) {
        dedup_entry_t *n = e->next;
        free(e->key);
        free(e);
        e = n;
    }
    free(d->buckets);
    memset(d, 0, sizeof(*d));
}

/* ---- CloudEvent fields ------------------------------------------------- */

/* The attributes this example reads; each is a malloc'ed UTF-8 string or
 * NULL when absent. */
typedef struct {
    char *specversion, *id, *source, *type, *subject, *time;
} cloudevent_t;

static void cloudevent_free(cloudevent_t *ce)
{
    free(ce->specversion);
    free(ce->id);
    free(ce->source);
    free(ce->type);
    free(ce->subject);
    free(ce->time);
    memset(ce, 0, sizeof(*ce));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_u16(const char *p, const char *end, unsigned *out)
{
    if (end - p < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

/* Decodes the body of a JSON string (without its quotes) into UTF-8.
 * Returns a malloc'ed string, or NULL on a malformed escape or no memory. */
static char *json_unescape(const char *p, size_t n)
{
    char *out = malloc(n + 1), *o = out; /* the decoded form is never longer */
    const char *end = p + n;
    if (out == NULL)
        return NULL;
    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        if (++p == end)
            goto bad;
        switch (*p++) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '/':
            *o++ = '/';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            unsigned cp, lo;
            if (read_u16(p, end, &cp) != 0)
                goto bad;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* high surrogate: a low one must follow */
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || read_u16(p + 2, end, &lo) != 0 ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    goto bad;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                goto bad;
            }
            /* \uXXXX takes 6 bytes (12 for a pair), its UTF-8 form at most 4 */
            if (cp < 0x80) {
                *o++ = (char)cp;
            } else if (cp < 0x800) {
                *o++ = (char)(0xC0 | cp >> 6);
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *o++ = (char)(0xE0 | cp >> 12);
                *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *o++ = (char)(0xF0 | cp >> 18);
                *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
                *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            goto bad;
        }
    }
    *o = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

/* Index of the token after the subtree rooted at tokens[i]. */
static int skip_token(const jsmntok_t *t, int i)
{
    int pending = t[i].size, j = i + 1;
    while (pending > 0) {
        pending += t[j].size - 1;
        j++;
    }
    return j;
}

/* Parses a structured-mode CloudEvent and picks its context attributes.
 * Returns NULL on success, else a short reason. */
static const char *cloudevent_parse(const char *json, size_t len, cloudevent_t *ce)
{
    static const struct {
        const char *name;
        size_t off;
    } attrs[] = {
        {"specversion", offsetof(cloudevent_t, specversion)},
        {"id", offsetof(cloudevent_t, id)},
        {"source", offsetof(cloudevent_t, source)},
        {"type", offsetof(cloudevent_t, type)},
        {"subject", offsetof(cloudevent_t, subject)},
        {"time", offsetof(cloudevent_t, time)},
    };
    jsmn_parser parser;
    memset(ce, 0, sizeof(*ce));
    if (json == NULL || len == 0)
        return "empty value";
    jsmn_init(&parser);
    int n = jsmn_parse(&parser, json, len, NULL, 0);
    if (n <= 0)
        return "value is not JSON";
    jsmntok_t *t = malloc(sizeof(*t) * (size_t)n);
    if (t == NULL)
        return "out of memory";
    jsmn_init(&parser);
    const char *reason = NULL;
    if (jsmn_parse(&parser, json, len, t, (unsigned)n) != n) {
        reason = "value is not JSON";
        goto out;
    }
    if (t[0].type != JSMN_OBJECT) {
        reason = "value is not a JSON object";
        goto out;
    }
    for (int i = 1, k = 0; k < t[0].size; k++) {
        const jsmntok_t *key = &t[i], *val = &t[i + 1];
        size_t klen = (size_t)(key->end - key->start);
        for (size_t a = 0; a < sizeof(attrs) / sizeof(attrs[0]); a++) {
            if (strlen(attrs[a].name) != klen ||
                memcmp(json + key->start, attrs[a].name, klen) != 0)
                continue;
            char **slot = (char **)((char *)ce + attrs[a].off);
            if (val->type != JSMN_STRING) {
                reason = "a context attribute is not a string";
                goto out;
            }
            free(*slot); /* a repeated member: the last one wins, as most parsers do */
            *slot = json_unescape(json + val->start, (size_t)(val->end - val->start));
            if (*slot == NULL) {
                reason = "bad string escape";
                goto out;
            }
        }
        i = skip_token(t, i + 1);
    }
    if (ce->specversion == NULL || strcmp(ce->specversion, "1.0") != 0)
        reason = "not a CloudEvents 1.0 event (specversion)";
    else if (ce->id == NULL || ce->id[0] == '\0')
        reason = "CloudEvent without id";
    else if (ce->source == NULL || ce->type == NULL)
        reason = "CloudEvent without source or type";
out:
    free(t);
    if (reason != NULL)
        cloudevent_free(ce);
    return reason;
}

/* ---- output ------------------------------------------------------------ */

/* Writes " name=value"; the value bare when it is plain printable text,
 * else as a JSON string. NULL values are skipped. */
static void put_field(FILE *f, const char *name, const char *v, size_t len)
{
    if (v == NULL)
        return;
    int bare = len > 0;
    for (size_t i = 0; i < len && bare; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= 0x20 || c == '"' || c == '\\' || c == 0x7F)
            bare = 0;
    }
    fprintf(f, " %s=", name);
    if (bare) {
        fwrite(v, 1, len, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7F)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* Writes a JSON text on one line: whitespace outside strings dropped (the
 * bridge embeds the provider's body as it came, newlines included). */
static void put_json_line(FILE *f, const char *p, size_t n)
{
    int in_string = 0, escaped = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_string) {
            if (escaped)
                escaped = 0;
            else if (c == '\\')
                escaped = 1;
            else if (c == '"')
                in_string = 0;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        } else if (c == '"') {
            in_string = 1;
        }
        fputc(c, f);
    }
    fputc('\n', f);
}

static void put_str(FILE *f, const char *name, const char *v)
{
    if (v != NULL)
        put_field(f, name, v, strlen(v));
}

static void put_position(FILE *f, const char *what, const rd_kafka_message_t *m)
{
    fprintf(f, "%s topic=%s partition=%d offset=%lld", what, rd_kafka_topic_name(m->rkt),
            (int)m->partition, (long long)m->offset);
    if (m->key != NULL)
        put_field(f, "key", m->key, m->key_len);
}

/* ---- options ----------------------------------------------------------- */

typedef struct {
    const char *brokers, *group, *topics;
    long dedup_size;
    long max_records;  /* 0 = no limit */
    long idle_exit_ms; /* 0 = never */
    int print_data;
    int nprops;
    char **props; /* "name=value" strings from -X */
} options_t;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: webhook-consumer [options]\n"
            "Reads the CloudEvents that webhook-bridge writes to Kafka, prints one line\n"
            "per record, skips events already seen (same CloudEvents source and id) and\n"
            "commits offsets only after a record was handled.\n"
            "\n"
            "  -b, --brokers LIST      bootstrap servers (env WEBHOOK_CONSUMER_BROKERS,\n"
            "                          default " DEFAULT_BROKERS ")\n"
            "  -g, --group ID          consumer group: one per service (env\n"
            "                          WEBHOOK_CONSUMER_GROUP, default " DEFAULT_GROUP ")\n"
            "  -t, --topics REGEX      subscription: a regular expression starting with ^,\n"
            "                          or a comma-separated list of topic names (env\n"
            "                          WEBHOOK_CONSUMER_TOPICS, default " DEFAULT_TOPICS ")\n"
            "  -d, --dedup-size N      remember the last N event ids, 0 disables (env\n"
            "                          WEBHOOK_CONSUMER_DEDUP_SIZE, default %d)\n"
            "  -p, --print-data        also print each new event (the whole CloudEvent) on\n"
            "                          the next line, as one line of JSON\n"
            "  -X NAME=VALUE           any librdkafka consumer property (repeatable)\n"
            "  -n, --max-records N     exit after N records (for tests)\n"
            "  -i, --idle-exit-ms N    exit once no record came for N ms after partitions\n"
            "                          were assigned (for tests)\n"
            "  -h, --help              this text\n"
            "  -V, --version           librdkafka version\n"
            "\n"
            "Exits 0 on SIGINT/SIGTERM after committing what it processed.\n",
            DEFAULT_DEDUP);
}

static int parse_long(const char *s, long min, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min)
        return -1;
    *out = v;
    return 0;
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : def;
}

static int parse_options(int argc, char **argv, options_t *o)
{
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"group", required_argument, NULL, 'g'},
        {"topics", required_argument, NULL, 't'},
        {"dedup-size", required_argument, NULL, 'd'},
        {"print-data", no_argument, NULL, 'p'},
        {"max-records", required_argument, NULL, 'n'},
        {"idle-exit-ms", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->brokers = env_or("WEBHOOK_CONSUMER_BROKERS", DEFAULT_BROKERS);
    o->group = env_or("WEBHOOK_CONSUMER_GROUP", DEFAULT_GROUP);
    o->topics = env_or("WEBHOOK_CONSUMER_TOPICS", DEFAULT_TOPICS);
    o->dedup_size = DEFAULT_DEDUP;
    const char *ds = getenv("WEBHOOK_CONSUMER_DEDUP_SIZE");
    if (ds != NULL && ds[0] != '\0' && parse_long(ds, 0, &o->dedup_size) != 0) {
        fprintf(stderr, "webhook-consumer: WEBHOOK_CONSUMER_DEDUP_SIZE: not a number >= 0: %s\n",
                ds);
        return 2;
    }
    o->props = calloc((size_t)argc, sizeof(char *));
    if (o->props == NULL)
        return 2;
    int c;
    while ((c = getopt_long(argc, argv, "b:g:t:d:pX:n:i:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o->brokers = optarg;
            break;
        case 'g':
            o->group = optarg;
            break;
        case 't':
            o->topics = optarg;
            break;
        case 'p':
            o->print_data = 1;
            break;
        case 'd':
            if (parse_long(optarg, 0, &o->dedup_size) != 0) {
                fprintf(stderr, "webhook-consumer: --dedup-size: not a number >= 0: %s\n", optarg);
                return 2;
            }
            break;
        case 'n':
            if (parse_long(optarg, 1, &o->max_records) != 0) {
                fprintf(stderr, "webhook-consumer: --max-records: not a number >= 1: %s\n", optarg);
                return 2;
            }
            break;
        case 'i':
            if (parse_long(optarg, 1, &o->idle_exit_ms) != 0) {
                fprintf(stderr, "webhook-consumer: --idle-exit-ms: not a number >= 1: %s\n",
                        optarg);
                return 2;
            }
            break;
        case 'X':
            if (strchr(optarg, '=') == NULL) {
                fprintf(stderr, "webhook-consumer: -X expects NAME=VALUE, got %s\n", optarg);
                return 2;
            }
            o->props[o->nprops++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        case 'V':
            printf("webhook-consumer (librdkafka %s)\n", rd_kafka_version_str());
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "webhook-consumer: unexpected argument: %s\n", argv[optind]);
        return 2;
    }
    if (o->dedup_size > 10000000) {
        fprintf(stderr, "webhook-consumer: --dedup-size: at most 10000000\n");
        return 2;
    }
    return 0;
}

/* ---- Kafka ------------------------------------------------------------- */

/* Commits what was processed before partitions are taken away, so that the
 * next owner starts after them instead of replaying them. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        fprintf(stderr, "webhook-consumer: assigned %d partition(s)\n", parts->cnt);
        assigned_at = now_ms();
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0 /* sync */);
        if (cerr != RD_KAFKA_RESP_ERR_NO_ERROR && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
            fprintf(stderr, "webhook-consumer: commit on revoke: %s\n", rd_kafka_err2str(cerr));
        fprintf(stderr, "webhook-consumer: revoked %d partition(s)\n", parts->cnt);
    } else {
        fprintf(stderr, "webhook-consumer: rebalance error: %s\n", rd_kafka_err2str(err));
    }
    if (cooperative)
        rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
    else
        rd_kafka_assign(rk, NULL);
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "webhook-consumer: %s: %s\n", name, err);
        return -1;
    }
    return 0;
}

static rd_kafka_t *make_consumer(const options_t *o)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    static const char *const defaults[][2] = {
        {"client.id", "webhook-consumer"},
        /* a new group reads what was written before it first joined */
        {"auto.offset.reset", "earliest"},
        /* at-least-once: an offset is stored only once its record was
         * handled (see handle()), and the auto-commit thread commits only
         * stored offsets */
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "1000"},
        /* how soon a new topic that matches the pattern is picked up */
        {"topic.metadata.refresh.interval.ms", "10000"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (conf_set(conf, defaults[i][0], defaults[i][1]) != 0)
            goto fail;
    if (conf_set(conf, "bootstrap.servers", o->brokers) != 0 ||
        conf_set(conf, "group.id", o->group) != 0)
        goto fail;
    for (int i = 0; i < o->nprops; i++) {
        char *eq = strchr(o->props[i], '=');
        *eq = '\0';
        int r = conf_set(conf, o->props[i], eq + 1);
        *eq = '=';
        if (r != 0)
            goto fail;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "webhook-consumer: %s\n", err);
        goto fail;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static int subscribe(rd_kafka_t *rk, const char *topics)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
    char *copy = strdup(topics), *save = NULL;
    if (copy == NULL)
        return -1;
    if (topics[0] == '^') { /* librdkafka treats a leading ^ as a regex */
        rd_kafka_topic_partition_list_add(list, topics, RD_KAFKA_PARTITION_UA);
    } else {
        for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
            rd_kafka_topic_partition_list_add(list, t, RD_KAFKA_PARTITION_UA);
    }
    free(copy);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "webhook-consumer: subscribe %s: %s\n", topics, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

typedef struct {
    long records, events, duplicates, invalid;
} counters_t;

/* The work of the example: print the event unless it was already seen. A
 * real service applies the event here (and records its id in the same
 * transaction) before returning. */
static int handle(const rd_kafka_message_t *m, dedup_t *seen, const options_t *o, counters_t *n)
{
    cloudevent_t ce;
    const char *reason = cloudevent_parse(m->payload, m->len, &ce);
    n->records++;
    if (reason != NULL) {
        /* Not ours to fix: report it and move on, so one bad record does not
         * stop the partition. */
        n->invalid++;
        put_position(stdout, "invalid", m);
        put_str(stdout, "reason", reason);
        fputc('\n', stdout);
        return 0;
    }
    /* CloudEvents: source + id identify an event; the bridge's ids are
     * the provider's delivery ids where it has them. */
    size_t ls = strlen(ce.source), li = strlen(ce.id);
    char *key = malloc(ls + li + 2);
    if (key == NULL) {
        cloudevent_free(&ce);
        return -1;
    }
    memcpy(key, ce.source, ls);
    key[ls] = '\n';
    memcpy(key + ls + 1, ce.id, li + 1);
    int dup = dedup_check_add(seen, key, ls + 1 + li);
    free(key);
    if (dup < 0) {
        cloudevent_free(&ce);
        return -1;
    }
    if (dup) {
        n->duplicates++;
        put_position(stdout, "duplicate", m);
        put_str(stdout, "id", ce.id);
        put_str(stdout, "type", ce.type);
    } else {
        n->events++;
        put_position(stdout, "event", m);
        put_str(stdout, "id", ce.id);
        put_str(stdout, "type", ce.type);
        put_str(stdout, "subject", ce.subject);
        put_str(stdout, "source", ce.source);
        put_str(stdout, "time", ce.time);
        rd_kafka_headers_t *hdrs;
        const void *ct;
        size_t ctlen;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(hdrs, "content-type", &ct, &ctlen) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            ct != NULL)
            put_field(stdout, "contenttype", ct, ctlen);
    }
    fputc('\n', stdout);
    if (o->print_data && !dup)
        put_json_line(stdout, m->payload, m->len);
    cloudevent_free(&ce);
    return 0;
}

/* Marks the record as done: its offset + 1 is what the next commit writes. */
static void store_offset(rd_kafka_t *rk, const rd_kafka_message_t *m)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
        m->offset + 1;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(rk, l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__STATE)
        fprintf(stderr, "webhook-consumer: store offset: %s\n", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

int main(int argc, char **argv)
{
    options_t o;
    int r = parse_options(argc, argv, &o);
    if (r != 0) {
        free(o.props);
        return r == 1 ? 0 : 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line per record, even into a pipe */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    dedup_t seen;
    if (dedup_init(&seen, (size_t)o.dedup_size) != 0) {
        fprintf(stderr, "webhook-consumer: out of memory\n");
        return 1;
    }
    rd_kafka_t *rk = make_consumer(&o);
    if (rk == NULL || subscribe(rk, o.topics) != 0) {
        if (rk != NULL)
            rd_kafka_destroy(rk);
        dedup_free(&seen);
        free(o.props);
        return 1;
    }
    fprintf(stderr, "webhook-consumer: group %s subscribed to %s on %s\n", o.group, o.topics,
            o.brokers);

    counters_t n = {0};
    int status = 0;
    long long last = 0;
    while (!stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL) {
            /* idle: nothing came since the later of the last record and the
             * last assignment (joining the group does not count) */
            long long since = last > assigned_at ? last : assigned_at;
            if (o.idle_exit_ms > 0 && since != 0 && now_ms() - since >= o.idle_exit_ms)
                break;
            continue;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            /* Broker and network errors are retried by librdkafka; report them.
             * A fatal error means the client cannot go on. */
            fprintf(stderr, "webhook-consumer: %s\n", rd_kafka_message_errstr(m));
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                status = 1;
                stop = 1;
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        last = now_ms();
        if (handle(m, &seen, &o, &n) != 0) {
            /* not processed: do not store its offset, stop, and let the next
             * run (or the next member of the group) take it again */
            fprintf(stderr, "webhook-consumer: out of memory\n");
            rd_kafka_message_destroy(m);
            status = 1;
            break;
        }
        store_offset(rk, m);
        rd_kafka_message_destroy(m);
        if (o.max_records > 0 && n.records >= o.max_records)
            break;
    }

    /* Leaves the group cleanly: the rebalance callback commits the stored
     * offsets on revoke, and close commits what is left. */
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(rk);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "webhook-consumer: close: %s\n", rd_kafka_err2str(err));
        status = 1;
    }
    rd_kafka_destroy(rk);
    fprintf(stderr,
            "webhook-consumer: %ld record(s): %ld event(s), %ld duplicate(s), %ld invalid\n",
            n.records, n.events, n.duplicates, n.invalid);
    dedup_free(&seen);
    free(o.props);
    return status;
}
