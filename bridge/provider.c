/* provider.c - the three providers as data, and the keys of a
 * [provider.NAME] section. Where each provider keeps its event type, id,
 * subject and time comes from its own documents (../shared/seeds):
 *   Piriod   {"event": "payment.created", "object_id": "..."}; gives up at 6 s.
 *   Shoperti its API Event object: id, topic (or type, event), created_at,
 *            data.id. An assumption, hence configurable.
 *   BonifiQ  {"Uuid", "Timestamp" (UTC, no zone), "Topic", "TopicName",
 *            "Payload": {"Customer": {"Id"}}}; gives up at 30 s.
 * Must not: parse bodies (ingest.c and event.c do). */
#include "provider.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const wb_provider_builtins[] = {"piriod", "shoperti", "bonifiq", NULL};

struct builtin {
    const char *name;
    const char *source;
    const char *type; /* comma-separated pointers */
    const char *id, *subject, *time;
    unsigned required;
    wb_time_format_t time_format;
    unsigned deadline_ms;
    const char *failure_statuses;
};

/* Piriod disables a webhook when its last 3 calls got the same failing
 * status: its failure answers rotate through four codes, so one bridge never
 * gives it the same one twice in a row, and replicas that each rotate from a
 * random place line up rarely (deploy/README.md, "Several replicas"). */
static const struct builtin builtins[] = {
    {"piriod", "https://api.piriod.com", "/event", NULL, "/object_id", NULL, WB_REQ_SUBJECT,
     WB_TIME_AUTO, 5000, "503,502,504,500"},
    {"shoperti", "https://api.shoperti.com", "/topic,/type,/event", "/id", "/data/id",
     "/created_at", WB_REQ_ID, WB_TIME_AUTO, 10000, "503"},
    {"bonifiq", "https://api.bonifiq.com.br", "/TopicName", "/Uuid", "/Payload/Customer/Id",
     "/Timestamp", WB_REQ_ID | WB_REQ_TIME, WB_TIME_NAIVE_UTC, 25000, "503"},
};

static int set_str(char **dst, const char *value);

/* The failure codes senders retry (any 5xx would do for Piriod; these four
 * are the ones every HTTP client and load balancer knows). */
static int failure_status_valid(long v)
{
    return v == 500 || v == 502 || v == 503 || v == 504;
}

static int set_failure_statuses(wb_provider_t *prov, const char *value, char *err, size_t errsz)
{
    int codes[WB_MAX_FAILURE_STATUSES];
    unsigned n = 0;
    const char *p = value;
    while (*p != '\0') {
        while (*p == ',' || *p == ' ')
            p++;
        if (*p == '\0')
            break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno != 0 || (*end != '\0' && *end != ',' && *end != ' ') ||
            !failure_status_valid(v))
            return wb_errf(err, errsz, WB_ERR_CONFIG, "'%s' is not a list of 500, 502, 503, 504",
                           value);
        if (n == WB_MAX_FAILURE_STATUSES)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "at most %d codes", WB_MAX_FAILURE_STATUSES);
        codes[n++] = (int)v;
        p = end;
    }
    if (n == 0)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "at least one code (500, 502, 503, 504)");
    memcpy(prov->failure_statuses, codes, n * sizeof(codes[0]));
    prov->nfailure_statuses = n;
    return WB_OK;
}

/* deadletter | fail | the name of a catch-all topic */
static int set_unknown_topic(wb_provider_t *prov, const char *value, char *err, size_t errsz)
{
    if (strcmp(value, "deadletter") == 0) {
        prov->unknown_topic = WB_UNKNOWN_TOPIC_DEADLETTER;
    } else if (strcmp(value, "fail") == 0) {
        prov->unknown_topic = WB_UNKNOWN_TOPIC_FAIL;
    } else {
        size_t n = strlen(value);
        if (n == 0 || n > 249 ||
            strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789._-") != n)
            return wb_errf(err, errsz, WB_ERR_CONFIG,
                           "'%s' is not deadletter, fail or a Kafka topic name", value);
        prov->unknown_topic = WB_UNKNOWN_TOPIC_TOPIC;
        return set_str(&prov->unknown_topic_name, value);
    }
    return set_str(&prov->unknown_topic_name, NULL);
}

int wb_provider_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > 32)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9')))
            return 0;
    return 1;
}

static int set_str(char **dst, const char *value)
{
    char *s = NULL;
    if (value != NULL && *value != '\0' && (s = strdup(value)) == NULL)
        return WB_ERR_NOMEM;
    free(*dst);
    *dst = s;
    return WB_OK;
}

static int set_pointer(char **dst, const char *value, char *err, size_t errsz)
{
    if (value != NULL && *value != '\0' && *value != '/')
        return wb_errf(err, errsz, WB_ERR_CONFIG,
                       "'%s' is not a JSON Pointer (RFC 6901, e.g. /data/id)", value);
    return set_str(dst, value);
}

static int set_type_ptrs(wb_provider_t *prov, const char *value, char *err, size_t errsz)
{
    char *copy = strdup(value), *save = NULL, *tok;
    unsigned n = 0;
    int r = WB_OK;
    if (copy == NULL)
        return WB_ERR_NOMEM;
    for (unsigned i = 0; i < prov->ntype_ptrs; i++) {
        free(prov->type_ptrs[i]);
        prov->type_ptrs[i] = NULL;
    }
    prov->ntype_ptrs = 0;
    for (tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        if (n == WB_MAX_PTRS) {
            r = wb_errf(err, errsz, WB_ERR_CONFIG, "at most %d pointers", WB_MAX_PTRS);
            break;
        }
        if ((r = set_pointer(&prov->type_ptrs[n], tok, err, errsz)) != WB_OK)
            break;
        prov->ntype_ptrs = ++n;
    }
    free(copy);
    if (r == WB_OK && n == 0)
        r = wb_errf(err, errsz, WB_ERR_CONFIG, "at least one JSON Pointer is required");
    return r;
}

static int parse_uint(const char *value, unsigned long long min, unsigned long long max,
                      unsigned long long *out, char *err, size_t errsz)
{
    char *end;
    errno = 0;
    if (*value == '-' || *value == '\0')
        return wb_errf(err, errsz, WB_ERR_CONFIG, "'%s' is not a number", value);
    unsigned long long v = strtoull(value, &end, 10);
    if (errno != 0 || *end != '\0')
        return wb_errf(err, errsz, WB_ERR_CONFIG, "'%s' is not a number", value);
    if (v < min || v > max)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "%llu is outside [%llu, %llu]", v, min, max);
    *out = v;
    return WB_OK;
}

static int parse_required(const char *value, unsigned *out, char *err, size_t errsz)
{
    char buf[128], *save = NULL, *tok;
    unsigned req = 0;
    if (snprintf(buf, sizeof(buf), "%s", value) >= (int)sizeof(buf))
        return wb_errf(err, errsz, WB_ERR_CONFIG, "value too long");
    for (tok = strtok_r(buf, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        if (strcmp(tok, "type") == 0)
            continue; /* always required */
        else if (strcmp(tok, "id") == 0)
            req |= WB_REQ_ID;
        else if (strcmp(tok, "subject") == 0)
            req |= WB_REQ_SUBJECT;
        else if (strcmp(tok, "time") == 0)
            req |= WB_REQ_TIME;
        else
            return wb_errf(err, errsz, WB_ERR_CONFIG, "'%s' is not one of type, id, subject, time",
                           tok);
    }
    *out = req;
    return WB_OK;
}

int wb_provider_set(wb_provider_t *prov, const char *key, const char *value, char *err,
                    size_t errsz)
{
    unsigned long long v;
    int r;

    if (strcmp(key, "type") == 0)
        return set_type_ptrs(prov, value, err, errsz);
    if (strcmp(key, "id") == 0)
        return set_pointer(&prov->id_ptr, value, err, errsz);
    if (strcmp(key, "subject") == 0)
        return set_pointer(&prov->subject_ptr, value, err, errsz);
    if (strcmp(key, "time") == 0)
        return set_pointer(&prov->time_ptr, value, err, errsz);
    if (strcmp(key, "required") == 0)
        return parse_required(value, &prov->required, err, errsz);
    if (strcmp(key, "source") == 0) {
        if (*value == '\0')
            return wb_errf(err, errsz, WB_ERR_CONFIG, "must not be empty");
        return set_str(&prov->source, value);
    }
    if (strcmp(key, "time_format") == 0) {
        static const char *const names[] = {"auto", "rfc3339", "naive-utc", "unix", "unix-ms"};
        for (unsigned i = 0; i < WB_ARRAY_SIZE(names); i++)
            if (strcmp(value, names[i]) == 0) {
                prov->time_format = (wb_time_format_t)i;
                return WB_OK;
            }
        return wb_errf(err, errsz, WB_ERR_CONFIG,
                       "'%s' is not one of auto, rfc3339, naive-utc, unix, unix-ms", value);
    }
    if (strcmp(key, "key") == 0) {
        if (strcmp(value, "subject") == 0)
            prov->key_by = WB_KEY_SUBJECT;
        else if (strcmp(value, "id") == 0)
            prov->key_by = WB_KEY_ID;
        else
            return wb_errf(err, errsz, WB_ERR_CONFIG, "'%s' is not one of subject, id", value);
        return WB_OK;
    }
    if (strcmp(key, "deadline_ms") == 0) {
        if ((r = parse_uint(value, 100, 120000, &v, err, errsz)) == WB_OK)
            prov->deadline_ms = (unsigned)v;
        return r;
    }
    if (strcmp(key, "max_body") == 0) {
        if ((r = parse_uint(value, 64, 64 * 1024 * 1024, &v, err, errsz)) == WB_OK)
            prov->max_body = (size_t)v;
        return r;
    }
    if (strcmp(key, "deadletter_status") == 0) {
        if (strcmp(value, "200") == 0)
            prov->deadletter_status = 200;
        else if (strcmp(value, "400") == 0)
            prov->deadletter_status = 400;
        else
            return wb_errf(err, errsz, WB_ERR_CONFIG, "'%s' is not 200 or 400", value);
        return WB_OK;
    }
    if (strcmp(key, "failure_statuses") == 0)
        return set_failure_statuses(prov, value, err, errsz);
    if (strcmp(key, "unknown_topic") == 0)
        return set_unknown_topic(prov, value, err, errsz);
    if (strcmp(key, "spool") == 0) {
        if (strcmp(value, "on") == 0 || strcmp(value, "true") == 0)
            prov->spool = 1;
        else if (strcmp(value, "off") == 0 || strcmp(value, "false") == 0)
            prov->spool = 0;
        else
            return wb_errf(err, errsz, WB_ERR_CONFIG, "'%s' is not on or off", value);
        return WB_OK;
    }
    if (strcmp(key, "spool_after_ms") == 0) {
        if ((r = parse_uint(value, 50, 120000, &v, err, errsz)) == WB_OK)
            prov->spool_after_ms = (unsigned)v;
        return r;
    }
    if (strcmp(key, "enabled") == 0) {
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
            prov->enabled = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
            prov->enabled = 0;
        else
            return wb_errf(err, errsz, WB_ERR_CONFIG, "'%s' is not true or false", value);
        return WB_OK;
    }
    return wb_errf(err, errsz, WB_ERR_CONFIG, "unknown key");
}

int wb_provider_init(wb_provider_t *prov, const char *name)
{
    const struct builtin *b = NULL;
    char source[128];
    int r;

    memset(prov, 0, sizeof(*prov));
    for (unsigned i = 0; i < WB_ARRAY_SIZE(builtins); i++)
        if (strcmp(builtins[i].name, name) == 0)
            b = &builtins[i];
    prov->enabled = 1;
    prov->deadletter_status = 200;
    prov->max_body = 1024 * 1024;
    prov->key_by = WB_KEY_SUBJECT;
    if ((prov->name = strdup(name)) == NULL)
        return WB_ERR_NOMEM;
    set_failure_statuses(prov, b != NULL ? b->failure_statuses : "503", NULL, 0);
    if (b == NULL) {
        /* a provider added in the configuration: generic defaults, type at /type */
        snprintf(source, sizeof(source), "urn:webhook-bridge:%s", name);
        prov->deadline_ms = 10000;
        if ((r = set_str(&prov->source, source)) != WB_OK)
            return r;
        return set_type_ptrs(prov, "/type", NULL, 0);
    }
    prov->required = b->required;
    prov->time_format = b->time_format;
    prov->deadline_ms = b->deadline_ms;
    if ((r = set_str(&prov->source, b->source)) != WB_OK ||
        (r = set_type_ptrs(prov, b->type, NULL, 0)) != WB_OK ||
        (r = set_str(&prov->id_ptr, b->id)) != WB_OK ||
        (r = set_str(&prov->subject_ptr, b->subject)) != WB_OK ||
        (r = set_str(&prov->time_ptr, b->time)) != WB_OK)
        return r;
    return WB_OK;
}

void wb_provider_free(wb_provider_t *prov)
{
    free(prov->name);
    free(prov->source);
    for (unsigned i = 0; i < prov->ntype_ptrs; i++)
        free(prov->type_ptrs[i]);
    free(prov->id_ptr);
    free(prov->subject_ptr);
    free(prov->time_ptr);
    free(prov->unknown_topic_name);
    wb_auth_conf_free(prov->auth);
    memset(prov, 0, sizeof(*prov));
}
