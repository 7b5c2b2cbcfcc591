/* config.c - the settings table, the INI file (inih), environment
 * overrides, validation. Every error names its location: file and line, or
 * the environment variable. The result is a snapshot that is never written
 * after start-up. Must not: log (main.c prints what this collects). */
#include "config.h"
#include "lookup.h"
#include "provider.h"

#include <errno.h>
#include <ini.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { T_STR, T_UINT, T_U64, T_BOOL, T_LEVEL, T_ADDR, T_TOPIC } wb_setting_type_t;

/* The [server] and [kafka] settings: one typed row each. */
static const struct setting {
    const char *section, *key, *env;
    wb_setting_type_t type;
    size_t off;
    unsigned long long min, max;
    const char *help; /* one line, for --help-config and deploy/CONFIGURATION.md */
} settings[] = {
#define S(sec, key, env, type, field, min, max, help)                                              \
    {                                                                                              \
        sec, key, env, type, offsetof(wb_config_t, field), min, max, help                          \
    }
    S("server", "listen", "BRIDGE_LISTEN", T_ADDR, listen, 0, 0,
      "the webhook listener: `host:port`, `[v6]:port` or `:port`"),
    S("server", "admin_listen", "BRIDGE_ADMIN_LISTEN", T_ADDR, admin_listen, 0, 0,
      "`/healthz`, `/readyz` and `/metrics`, on their own thread; keep it off the webhook Service"),
    S("server", "threads", "BRIDGE_THREADS", T_UINT, threads, 1, 64,
      "event loops, each with its own producer, sharing the port (`SO_REUSEPORT`)"),
    S("server", "max_inflight", "BRIDGE_MAX_INFLIGHT", T_UINT, max_inflight, 1, 1000000,
      "requests waiting for their Kafka ack (split evenly over threads); over it: `overloaded`"),
    S("server", "drain_timeout_ms", "BRIDGE_DRAIN_TIMEOUT_MS", T_UINT, drain_timeout_ms, 0, 600000,
      "on SIGTERM, how long in-flight requests may still take before they get `503`"),
    S("server", "log_level", "BRIDGE_LOG_LEVEL", T_LEVEL, log_level, 0, 0,
      "`debug`, `info` (one access line per webhook), `warn`, `error`"),
    S("server", "max_json_depth", "BRIDGE_MAX_JSON_DEPTH", T_UINT, max_depth, 1, 1000,
      "a body nested deeper is `400 invalid_json`"),
    S("server", "max_json_tokens", "BRIDGE_MAX_JSON_TOKENS", T_UINT, max_tokens, 16, 10000000,
      "a body with more JSON values is `413 payload_too_large`"),
    S("server", "ready_requires_kafka", "BRIDGE_READY_REQUIRES_KAFKA", T_BOOL, ready_requires_kafka,
      0, 0,
      "`/readyz` also wants a broker connection up (off: Kafka's health is in the body, a "
      "metric and an alert)"),
    S("server", "max_connections", "BRIDGE_MAX_CONNECTIONS", T_UINT, max_connections, 1, 1000000,
      "webhook connections open at once (split evenly over threads), lowered to what "
      "`RLIMIT_NOFILE` allows; at it, new ones wait in the backlog"),
    S("server", "http2", "BRIDGE_HTTP2", T_BOOL, http2, 0, 0,
      "off: HTTP/1.1 only (the HTTP/2 preface gets `400`, `Upgrade: h2c` is ignored)"),
    S("server", "http2_max_resets", "BRIDGE_HTTP2_MAX_RESETS", T_UINT, http2_max_resets, 0,
      1000000,
      "streams an HTTP/2 connection may end before their answer; over it: `GOAWAY` and close; "
      "0: no bound"),
    S("server", "http2_reset_ratio", "BRIDGE_HTTP2_RESET_RATIO", T_UINT, http2_reset_ratio, 0,
      1000,
      "resets each answered stream earns back, up to `http2_max_resets`"),
    S("kafka", "brokers", "BRIDGE_KAFKA_BROKERS", T_STR, brokers, 0, 0,
      "bootstrap list; empty: the embedded in-memory cluster, nothing durable"),
    S("kafka", "mock_brokers", "BRIDGE_KAFKA_MOCK_BROKERS", T_UINT, mock_brokers, 1, 9,
      "brokers of the embedded cluster (only with `brokers` empty)"),
    S("kafka", "topic_prefix", "BRIDGE_KAFKA_TOPIC_PREFIX", T_TOPIC, topic_prefix, 1, 0,
      "topics are `<topic_prefix>.<type>` unless a `[routes]` glob matches"),
    S("kafka", "deadletter_topic", "BRIDGE_KAFKA_DEADLETTER_TOPIC", T_TOPIC, deadletter_topic, 0,
      0,
      "where dead letters go; empty: `<topic_prefix>.deadletter`"),
    S("kafka", "min_replication_factor", "BRIDGE_KAFKA_MIN_REPLICATION_FACTOR", T_UINT,
      min_replication_factor, 1, 100,
      "a topic written to with fewer replicas is reported (log line, "
      "`webhook_bridge_topic_unsafe`)"),
    S("kafka", "min_insync_replicas", "BRIDGE_KAFKA_MIN_INSYNC_REPLICAS", T_UINT,
      min_insync_replicas, 1, 100,
      "the same for a topic's `min.insync.replicas`"),
    S("kafka", "refuse_unsafe_topics", "BRIDGE_KAFKA_REFUSE_UNSAFE_TOPICS", T_BOOL,
      refuse_unsafe_topics, 0, 0,
      "records for a topic under that floor get a failure answer (`topic_unsafe`)"),
    S("spool", "dir", "BRIDGE_SPOOL_DIR", T_STR, spool_dir, 0, 0,
      "the spool's directory (file `spool.db`, made `0700`); empty: no spool"),
    S("spool", "max_bytes", "BRIDGE_SPOOL_MAX_BYTES", T_U64, spool_max_bytes, 1ull << 16,
      1ull << 42,
      "bound on the spooled keys and values; over it: `spool_full`"),
#undef S
};

static void add_error(wb_config_errors_t *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_error(wb_config_errors_t *errs, const char *fmt, ...)
{
    if (errs->n == WB_MAX_ERRORS) {
        errs->dropped++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errs->msg[errs->n++], sizeof(errs->msg[0]), fmt, ap);
    va_end(ap);
}

/* Kafka topic names: [a-zA-Z0-9._-], 1..249. */
static int topic_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 249)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
              (t[i] >= '0' && t[i] <= '9') || t[i] == '.' || t[i] == '_' || t[i] == '-'))
            return 0;
    return 1;
}

/* host:port, [v6]:port or :port (all addresses); checked here, resolved by server.c. */
static int addr_valid(const char *v)
{
    const char *colon = strrchr(v, ':');
    char *end;
    if (colon == NULL)
        return 0;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    return errno == 0 && *end == '\0' && colon[1] != '\0' && port >= 1 && port <= 65535;
}

static int apply_setting(wb_config_t *cfg, const struct setting *s, const char *value, char *err,
                         size_t errsz)
{
    void *field = (char *)cfg + s->off;
    char *end;

    switch (s->type) {
    case T_UINT:
    case T_U64: {
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (*value == '\0' || *value == '-' || errno != 0 || *end != '\0')
            return wb_errf(err, errsz, WB_ERR_CONFIG, "'%s' is not a number", value);
        if (v < s->min || v > s->max)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "%llu is outside [%llu, %llu]", v, s->min,
                           s->max);
        if (s->type == T_U64)
            *(unsigned long long *)field = v;
        else
            *(unsigned *)field = (unsigned)v;
        return WB_OK;
    }
    case T_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "on") == 0)
            *(int *)field = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 ||
                 strcmp(value, "off") == 0)
            *(int *)field = 0;
        else
            return wb_errf(err, errsz, WB_ERR_CONFIG, "'%s' is not on, off, true or false", value);
        return WB_OK;
    case T_LEVEL: {
        static const char *const names[] = {"debug", "info", "warn", "error"};
        for (unsigned i = 0; i < WB_ARRAY_SIZE(names); i++)
            if (strcasecmp(value, names[i]) == 0) {
                *(wb_log_level_t *)field = (wb_log_level_t)i;
                return WB_OK;
            }
        return wb_errf(err, errsz, WB_ERR_CONFIG, "'%s' is not one of debug, info, warn, error",
                       value);
    }
    case T_ADDR:
        if (!addr_valid(value))
            return wb_errf(err, errsz, WB_ERR_CONFIG,
                           "'%s' is not an address host:port with port 1-65535", value);
        break;
    case T_TOPIC: /* min = 1: must not be empty */
        if (*value == '\0' && s->min > 0)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "must not be empty");
        if (*value != '\0' && !topic_valid(value))
            return wb_errf(err, errsz, WB_ERR_CONFIG,
                           "'%s' is not a Kafka topic name ([a-zA-Z0-9._-], at most 249)", value);
        break;
    case T_STR:
        break;
    }
    char **dst = field, *copy = NULL;
    if (*value != '\0' && (copy = strdup(value)) == NULL)
        return WB_ERR_NOMEM;
    free(*dst);
    *dst = copy;
    return WB_OK;
}

static wb_provider_t *find_provider(wb_config_t *cfg, const char *name, size_t len)
{
    for (unsigned i = 0; i < cfg->nproviders; i++)
        if (strlen(cfg->providers[i].name) == len && memcmp(cfg->providers[i].name, name, len) == 0)
            return &cfg->providers[i];
    return NULL;
}

const wb_provider_t *wb_config_provider(const wb_config_t *cfg, const char *name, size_t len)
{
    return find_provider((wb_config_t *)cfg, name, len);
}

static wb_provider_t *add_provider(wb_config_t *cfg, const char *name, char *err, size_t errsz)
{
    if (!wb_provider_name_valid(name, strlen(name))) {
        wb_errf(err, errsz, WB_ERR_CONFIG, "provider name '%s' must be [a-z0-9]+ (at most 32)",
                name);
        return NULL;
    }
    if (cfg->nproviders == WB_MAX_PROVIDERS) {
        wb_errf(err, errsz, WB_ERR_CONFIG, "at most %d providers", WB_MAX_PROVIDERS);
        return NULL;
    }
    wb_provider_t *prov = &cfg->providers[cfg->nproviders];
    if (wb_provider_init(prov, name) != WB_OK) {
        wb_provider_free(prov);
        wb_errf(err, errsz, WB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    cfg->nproviders++;
    return prov;
}

static int set_provider_key(wb_provider_t *prov, const char *key, const char *value, char *err,
                            size_t errsz)
{
    if (strcmp(key, "auth") == 0 || strncmp(key, "auth.", 5) == 0)
        return wb_auth_conf_set(&prov->auth, key, value, err, errsz);
    return wb_provider_set(prov, key, value, err, errsz);
}

/* librdkafka knows its own property names and values: ask it, so that a
 * typo is reported with its location instead of at producer creation. */
static int rdkafka_check(const char *name, const char *value, char *err, size_t errsz)
{
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, name, value, e, sizeof(e));
    rd_kafka_conf_destroy(conf);
    if (r != RD_KAFKA_CONF_OK) {
        e[strcspn(e, "\n")] = '\0';
        return wb_errf(err, errsz, WB_ERR_CONFIG, "%s", e);
    }
    return WB_OK;
}

static int set_kv(wb_kv_t *arr, unsigned *n, unsigned max, const char *name, const char *value,
                  const char *origin)
{
    wb_kv_t *kv = NULL;
    for (unsigned i = 0; i < *n; i++)
        if (strcmp(arr[i].name, name) == 0)
            kv = &arr[i];
    if (kv == NULL) {
        if (*n == max)
            return WB_ERR_TOO_LARGE;
        kv = &arr[*n];
        if ((kv->name = strdup(name)) == NULL)
            return WB_ERR_NOMEM;
        (*n)++;
    }
    char *v = strdup(value), *o = strdup(origin);
    if (v == NULL || o == NULL) {
        free(v);
        free(o);
        return WB_ERR_NOMEM;
    }
    free(kv->value);
    free(kv->origin);
    kv->value = v;
    kv->origin = o;
    return WB_OK;
}

/* One key = value of any section; the location is the caller's. */
static int set_any(wb_config_t *cfg, const char *section, const char *key, const char *value,
                   const char *where, char *err, size_t errsz)
{
    for (unsigned i = 0; i < WB_ARRAY_SIZE(settings); i++)
        if (strcmp(settings[i].section, section) == 0 && strcmp(settings[i].key, key) == 0)
            return apply_setting(cfg, &settings[i], value, err, errsz);
    if (strcmp(section, "librdkafka") == 0) {
        if (rdkafka_check(key, value, err, errsz) != WB_OK)
            return WB_ERR_CONFIG;
        if (set_kv(cfg->rdkafka, &cfg->nrdkafka, WB_MAX_RDKAFKA, key, value, where) != WB_OK)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "too many properties");
        return WB_OK;
    }
    if (strcmp(section, "routes") == 0) {
        if (!topic_valid(value))
            return wb_errf(err, errsz, WB_ERR_CONFIG, "'%s' is not a Kafka topic name", value);
        if (cfg->nroutes == WB_MAX_ROUTES)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "at most %d routes", WB_MAX_ROUTES);
        wb_route_t *rt = &cfg->routes[cfg->nroutes];
        if ((rt->glob = strdup(key)) == NULL || (rt->topic = strdup(value)) == NULL) {
            free(rt->glob);
            return WB_ERR_NOMEM;
        }
        cfg->nroutes++;
        return WB_OK;
    }
    if (strncmp(section, "provider.", 9) == 0) {
        const char *name = section + 9;
        wb_provider_t *prov = find_provider(cfg, name, strlen(name));
        if (prov == NULL && (prov = add_provider(cfg, name, err, errsz)) == NULL)
            return WB_ERR_CONFIG;
        return set_provider_key(prov, key, value, err, errsz);
    }
    if (strcmp(section, "server") == 0 || strcmp(section, "kafka") == 0 ||
        strcmp(section, "spool") == 0)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "unknown key");
    return wb_errf(err, errsz, WB_ERR_CONFIG, "unknown section");
}

/* Messages of auth.c start with their key; the location already names it. */
static const char *skip_key(const char *err, const char *key)
{
    size_t n = strlen(key);
    return strncmp(err, key, n) == 0 && err[n] == ':' && err[n + 1] == ' ' ? err + n + 2 : err;
}

/* inih calls the reader once per line, so counting calls gives the line of
 * the key the handler sees next. */
struct ini_ctx {
    FILE *f;
    const char *path;
    unsigned line;
    int after_key;    /* the previous line was a key: an indented line continues it */
    unsigned nsyntax; /* lines reported here as not INI */
    wb_config_t *cfg;
    wb_config_errors_t *errs;
};

static char *cfg_ini_reader(char *str, int num, void *stream)
{
    struct ini_ctx *ctx = stream;
    char *r = fgets(str, num, ctx->f);
    if (r != NULL) {
        ctx->line++;
        size_t n = strlen(str);
        if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(ctx->f)) {
            add_error(ctx->errs, "%s:%u: line longer than %d bytes", ctx->path, ctx->line, num - 2);
            int c;
            while ((c = fgetc(ctx->f)) != EOF && c != '\n')
                ;
            str[0] = '#'; /* the rest of the line is dropped; make inih skip it */
            str[1] = '\0';
        }
        /* inih reports only its first bad line: judge each one here, as it does */
        const char *p = str;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        int bad = 0;
        if (*p == '\0' || *p == '#' || *p == ';') {
            /* blank or comment: a continuation may still follow */
        } else if (p > str && ctx->after_key) {
            /* continuation of the previous value (inih's multi-line values) */
        } else if (*p == '[') {
            bad = strchr(p, ']') == NULL;
            ctx->after_key = 0;
        } else {
            bad = strpbrk(p, "=:") == NULL;
            ctx->after_key = !bad;
        }
        if (bad) {
            add_error(ctx->errs, "%s:%u: not 'key = value', '[section]' or a comment", ctx->path,
                      ctx->line);
            ctx->nsyntax++;
            str[0] = '#';
            str[1] = '\0';
        }
    }
    return r;
}

static int cfg_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *ctx = user;
    char err[200], where[512];
    if (name == NULL) /* section header alone (INI_CALL_HANDLER_ON_NEW_SECTION) */
        return 1;
    snprintf(where, sizeof(where), "%s:%u: [%s] %s", ctx->path, ctx->line, section, name);
    if (set_any(ctx->cfg, section, name, value, where, err, sizeof(err)) != WB_OK)
        add_error(ctx->errs, "%s: %s", where, skip_key(err, name));
    return 1;
}

/* BRIDGE_PROVIDER_<NAME>_<KEY> -> provider NAME, key <key> ('_' -> '.' only
 * after "auth"), matched against the providers that exist. */
static int env_provider(wb_config_t *cfg, const char *rest, const char *value, char *err,
                        size_t errsz)
{
    for (unsigned i = 0; i < cfg->nproviders; i++) {
        wb_provider_t *prov = &cfg->providers[i];
        size_t n = strlen(prov->name);
        if (strncasecmp(rest, prov->name, n) != 0 || rest[n] != '_')
            continue;
        char key[64];
        const char *k = rest + n + 1;
        size_t j = 0;
        for (; k[j] != '\0' && j < sizeof(key) - 1; j++)
            key[j] = (char)(k[j] >= 'A' && k[j] <= 'Z' ? k[j] - 'A' + 'a' : k[j]);
        key[j] = '\0';
        if (strncmp(key, "auth_", 5) == 0)
            key[4] = '.';
        return set_provider_key(prov, key, value, err, errsz);
    }
    return wb_errf(err, errsz, WB_ERR_CONFIG, "no such provider");
}

static void apply_env(wb_config_t *cfg, char *const *env, wb_config_errors_t *errs)
{
    char err[200], name[128];
    for (; env != NULL && *env != NULL; env++) {
        const char *eq = strchr(*env, '=');
        if (eq == NULL || strncmp(*env, "BRIDGE_", 7) != 0)
            continue;
        size_t n = (size_t)(eq - *env);
        if (n >= sizeof(name))
            continue;
        memcpy(name, *env, n);
        name[n] = '\0';
        const char *value = eq + 1;
        int r = WB_ERR_NOTFOUND;
        for (unsigned i = 0; i < WB_ARRAY_SIZE(settings); i++)
            if (strcmp(settings[i].env, name) == 0)
                r = apply_setting(cfg, &settings[i], value, err, sizeof(err));
        if (r == WB_ERR_NOTFOUND && strncmp(name, "BRIDGE_RDKAFKA_", 15) == 0) {
            char prop[128];
            size_t j = 0;
            for (const char *p = name + 15; *p != '\0' && j < sizeof(prop) - 1; p++, j++)
                prop[j] = *p == '_' ? '.' : (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
            prop[j] = '\0';
            char where[160];
            snprintf(where, sizeof(where), "environment %s", name);
            if ((r = rdkafka_check(prop, value, err, sizeof(err))) != WB_OK) {
                char e[sizeof(err) + sizeof(prop) + 4];
                snprintf(e, sizeof(e), "%s: %s", prop, err);
                size_t elen = strnlen(e, sizeof(err) - 1);
                memcpy(err, e, elen);
                err[elen] = '\0';
            } else if ((r = set_kv(cfg->rdkafka, &cfg->nrdkafka, WB_MAX_RDKAFKA, prop, value,
                                   where)) != WB_OK) {
                wb_errf(err, sizeof(err), WB_ERR_CONFIG, "too many properties");
            }
        } else if (r == WB_ERR_NOTFOUND && strncmp(name, "BRIDGE_PROVIDER_", 16) == 0) {
            r = env_provider(cfg, name + 16, value, err, sizeof(err));
        }
        /* Other BRIDGE_* names are ignored: Kubernetes injects BRIDGE_SERVICE_HOST
         * and the like for a Service called "bridge". */
        if (r != WB_OK && r != WB_ERR_NOTFOUND)
            add_error(errs, "environment %s: %s", name, err);
    }
}

static int set_defaults(wb_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->threads = 1;
    cfg->max_inflight = 10000;
    cfg->max_connections = 10000;
    cfg->http2 = 1;
    cfg->http2_max_resets = 200;
    cfg->http2_reset_ratio = 2;
    cfg->drain_timeout_ms = 20000;
    cfg->log_level = WB_LOG_INFO;
    cfg->max_depth = 64;
    cfg->max_tokens = 1000000;
    cfg->mock_brokers = 3;
    cfg->spool_max_bytes = 1ull << 30;
    cfg->min_replication_factor = 3;
    cfg->min_insync_replicas = 2;
    if ((cfg->listen = strdup("0.0.0.0:8080")) == NULL ||
        (cfg->admin_listen = strdup("0.0.0.0:9090")) == NULL ||
        (cfg->topic_prefix = strdup("webhooks")) == NULL)
        return WB_ERR_NOMEM;
    for (const char *const *n = wb_provider_builtins; *n != NULL; n++)
        if (add_provider(cfg, *n, NULL, 0) == NULL)
            return WB_ERR_NOMEM;
    return WB_OK;
}

int wb_config_load(wb_config_t *cfg, const char *path, char *const *env, wb_config_errors_t *errs)
{
    char err[200];
    memset(errs, 0, sizeof(*errs));
    if (set_defaults(cfg) != WB_OK) {
        add_error(errs, "out of memory");
        return WB_ERR_CONFIG;
    }
    if (path != NULL) {
        struct ini_ctx ctx = {.path = path, .cfg = cfg, .errs = errs};
        if ((ctx.f = fopen(path, "r")) == NULL) {
            add_error(errs, "%s: %s", path, strerror(errno));
        } else {
            int r = ini_parse_stream(cfg_ini_reader, &ctx, cfg_ini_handler, &ctx);
            fclose(ctx.f);
            if (r > 0 && ctx.nsyntax == 0) /* a case the reader did not see */
                add_error(errs, "%s:%d: not 'key = value', '[section]' or a comment", path, r);
        }
    }
    apply_env(cfg, env, errs);

    if (cfg->deadletter_topic == NULL) {
        snprintf(err, sizeof(err), "%s.deadletter", cfg->topic_prefix);
        if (!topic_valid(err) || (cfg->deadletter_topic = strdup(err)) == NULL)
            add_error(errs, "[kafka] deadletter_topic: cannot derive from topic_prefix");
    }
    for (unsigned i = 0; i < cfg->nrdkafka; i++) {
        /* the ack gate is the product's promise: it is not a setting */
        const wb_kv_t *kv = &cfg->rdkafka[i];
        if ((strcmp(kv->name, "acks") == 0 || strcmp(kv->name, "request.required.acks") == 0) &&
            strcmp(kv->value, "all") != 0 && strcmp(kv->value, "-1") != 0)
            add_error(errs, "%s: must be all (a 200 means every in-sync replica has the record)",
                      kv->origin);
        if (strcmp(kv->name, "enable.idempotence") == 0 && strcmp(kv->value, "true") != 0)
            add_error(errs, "%s: must be true", kv->origin);
    }
    int real_brokers = cfg->brokers != NULL;
    for (unsigned i = 0; i < cfg->nproviders; i++) {
        wb_provider_t *prov = &cfg->providers[i];
        if (!prov->enabled)
            continue;
        if (wb_auth_conf_finish(&prov->auth, prov->name, real_brokers, err, sizeof(err)) != WB_OK)
            add_error(errs, "[provider.%s] auth: %s", prov->name, err);
        if (prov->spool_after_ms == 0)
            prov->spool_after_ms = prov->deadline_ms / 5 * 3;
        if (prov->spool && cfg->spool_dir == NULL)
            add_error(errs, "[provider.%s] spool = on needs [spool] dir (BRIDGE_SPOOL_DIR)",
                      prov->name);
        if (prov->spool && prov->spool_after_ms + 500 > prov->deadline_ms)
            add_error(errs,
                      "[provider.%s] spool_after_ms (%u) must leave 500 ms under deadline_ms (%u) "
                      "for the fsync",
                      prov->name, prov->spool_after_ms, prov->deadline_ms);
        const wb_lookup_conf_t *lc = wb_auth_lookup(prov->auth);
        if (lc != NULL && prov->id_ptr == NULL)
            add_error(errs,
                      "[provider.%s] auth = api-lookup needs the event's id (id = a JSON "
                      "Pointer): the API is asked for it",
                      prov->name);
        if (lc != NULL && wb_lookup_conf_timeout_ms(lc) + 500 > prov->deadline_ms)
            add_error(errs,
                      "[provider.%s] auth.timeout_ms (%u) must leave 500 ms under deadline_ms "
                      "(%u) for Kafka",
                      prov->name, wb_lookup_conf_timeout_ms(lc), prov->deadline_ms);
        if (lc != NULL && prov->spool &&
            wb_lookup_conf_timeout_ms(lc) + prov->spool_after_ms + 500 > prov->deadline_ms)
            add_error(errs,
                      "[provider.%s] auth.timeout_ms (%u) + spool_after_ms (%u) must leave 500 ms "
                      "under deadline_ms (%u): the look-up comes before the record is written",
                      prov->name, wb_lookup_conf_timeout_ms(lc), prov->spool_after_ms,
                      prov->deadline_ms);
    }
    return errs->n == 0 ? WB_OK : WB_ERR_CONFIG;
}

void wb_config_free(wb_config_t *cfg)
{
    free(cfg->listen);
    free(cfg->admin_listen);
    free(cfg->brokers);
    free(cfg->topic_prefix);
    free(cfg->deadletter_topic);
    free(cfg->spool_dir);
    for (unsigned i = 0; i < cfg->nrdkafka; i++) {
        free(cfg->rdkafka[i].name);
        free(cfg->rdkafka[i].value);
        free(cfg->rdkafka[i].origin);
    }
    for (unsigned i = 0; i < cfg->nroutes; i++) {
        free(cfg->routes[i].glob);
        free(cfg->routes[i].topic);
    }
    for (unsigned i = 0; i < cfg->nproviders; i++)
        wb_provider_free(&cfg->providers[i]);
    memset(cfg, 0, sizeof(*cfg));
}

unsigned wb_config_max_deadline(const wb_config_t *cfg)
{
    unsigned m = 0;
    for (unsigned i = 0; i < cfg->nproviders; i++)
        if (cfg->providers[i].enabled && cfg->providers[i].deadline_ms > m)
            m = cfg->providers[i].deadline_ms;
    return m;
}

size_t wb_config_max_body(const wb_config_t *cfg)
{
    size_t m = 0;
    for (unsigned i = 0; i < cfg->nproviders; i++)
        if (cfg->providers[i].enabled && cfg->providers[i].max_body > m)
            m = cfg->providers[i].max_body;
    return m;
}

/* --help-config: the settings table and the built-in provider descriptions
 * as wb_config_load() leaves them with no file and no environment, in
 * Markdown (deploy/CONFIGURATION.md holds this output; tests/style/
 * test_docs.py fails when the two differ). */
static void help_value(FILE *f, const wb_config_t *cfg, const struct setting *s)
{
    const void *field = (const char *)cfg + s->off;
    switch (s->type) {
    case T_UINT:
        fprintf(f, "`%u`", *(const unsigned *)field);
        break;
    case T_U64:
        fprintf(f, "`%llu`", *(const unsigned long long *)field);
        break;
    case T_BOOL:
        fprintf(f, "`%s`", *(const int *)field ? "true" : "false");
        break;
    case T_LEVEL: {
        static const char *const names[] = {"debug", "info", "warn", "error"};
        fprintf(f, "`%s`", names[*(const wb_log_level_t *)field]);
        break;
    }
    case T_STR:
    case T_ADDR:
    case T_TOPIC: {
        const char *v = *(char *const *)field;
        fprintf(f, v != NULL ? "`%s`" : "empty", v);
        break;
    }
    }
}

static void help_bounds(FILE *f, const struct setting *s)
{
    switch (s->type) {
    case T_UINT:
    case T_U64:
        fprintf(f, "%llu to %llu", s->min, s->max);
        break;
    case T_BOOL:
        fputs("`true`, `false`, `on`, `off`, `1`, `0`", f);
        break;
    case T_LEVEL:
        fputs("`debug`, `info`, `warn`, `error`", f);
        break;
    case T_ADDR:
        fputs("port 1 to 65535", f);
        break;
    case T_TOPIC:
        fprintf(f, "`[a-zA-Z0-9._-]`, at most 249%s", s->min > 0 ? ", not empty" : "");
        break;
    case T_STR:
        fputs("-", f);
        break;
    }
}

/* One cell of the provider table: prov's value of a [provider.NAME] key. */
static void help_provider_cell(FILE *f, const wb_provider_t *prov, const char *key)
{
    static const char *const formats[] = {"auto", "rfc3339", "naive-utc", "unix", "unix-ms"};
    static const char *const unknown[] = {"deadletter", "(a topic)", "fail"};
    const char *ptr = NULL, *none = "none";

    if (strcmp(key, "source") == 0)
        ptr = prov->source;
    else if (strcmp(key, "id") == 0)
        ptr = prov->id_ptr, none = "none: a UUID";
    else if (strcmp(key, "subject") == 0)
        ptr = prov->subject_ptr;
    else if (strcmp(key, "time") == 0)
        ptr = prov->time_ptr, none = "none: the receive time";
    else
        none = NULL;
    if (none != NULL) {
        fprintf(f, ptr != NULL ? " `%s` |" : " %s |", ptr != NULL ? ptr : none);
        return;
    }
    fputs(" `", f);
    if (strcmp(key, "type") == 0) {
        for (unsigned j = 0; j < prov->ntype_ptrs; j++)
            fprintf(f, "%s%s", j > 0 ? "," : "", prov->type_ptrs[j]);
    } else if (strcmp(key, "time_format") == 0) {
        fputs(formats[prov->time_format], f);
    } else if (strcmp(key, "required") == 0) {
        fprintf(f, "type%s%s%s", prov->required & WB_REQ_ID ? ",id" : "",
                prov->required & WB_REQ_SUBJECT ? ",subject" : "",
                prov->required & WB_REQ_TIME ? ",time" : "");
    } else if (strcmp(key, "key") == 0) {
        fputs(prov->key_by == WB_KEY_ID ? "id" : "subject", f);
    } else if (strcmp(key, "deadline_ms") == 0) {
        fprintf(f, "%u", prov->deadline_ms);
    } else if (strcmp(key, "spool") == 0) {
        fputs(prov->spool ? "on" : "off", f);
    } else if (strcmp(key, "spool_after_ms") == 0) {
        fprintf(f, "%u", prov->spool_after_ms);
    } else if (strcmp(key, "max_body") == 0) {
        fprintf(f, "%zu", prov->max_body);
    } else if (strcmp(key, "deadletter_status") == 0) {
        fprintf(f, "%d", prov->deadletter_status);
    } else if (strcmp(key, "failure_statuses") == 0) {
        for (unsigned j = 0; j < prov->nfailure_statuses; j++)
            fprintf(f, "%s%d", j > 0 ? "," : "", prov->failure_statuses[j]);
    } else if (strcmp(key, "unknown_topic") == 0) {
        fputs(unknown[prov->unknown_topic], f);
    } else if (strcmp(key, "enabled") == 0) {
        fputs(prov->enabled ? "true" : "false", f);
    }
    fputs("` |", f);
}

void wb_config_help(FILE *f)
{
    static const char *const types[] = {
        [T_STR] = "text",    [T_UINT] = "integer", [T_U64] = "integer",      [T_BOOL] = "boolean",
        [T_LEVEL] = "level", [T_ADDR] = "address", [T_TOPIC] = "topic name",
    };
    static const char *const keys[] = {
        "source",   "type",        "id",          "subject",  "time",
        "time_format", "required", "key",         "deadline_ms", "spool",
        "spool_after_ms", "max_body", "deadletter_status", "failure_statuses",
        "unknown_topic", "enabled",
    };
    char *const no_env[] = {NULL};
    wb_config_t cfg;
    wb_config_errors_t errs;
    wb_provider_t added = {0}; /* what a [provider.NAME] of a new name starts from */

    if (wb_config_load(&cfg, NULL, no_env, &errs) != WB_OK ||
        wb_provider_init(&added, "name") != WB_OK) {
        fprintf(f, "webhook-bridge: cannot load the defaults\n");
        wb_provider_free(&added);
        wb_config_free(&cfg);
        return;
    }
    added.spool_after_ms = added.deadline_ms / 5 * 3; /* as wb_config_load does */
    fputs("| section | key | environment | type | default | bounds | meaning |\n"
          "| --- | --- | --- | --- | --- | --- | --- |\n",
          f);
    for (unsigned i = 0; i < WB_ARRAY_SIZE(settings); i++) {
        const struct setting *s = &settings[i];
        fprintf(f, "| `[%s]` | `%s` | `%s` | %s | ", s->section, s->key, s->env, types[s->type]);
        help_value(f, &cfg, s);
        fputs(" | ", f);
        help_bounds(f, s);
        fprintf(f, " | %s |\n", s->help);
    }

    fputs("\n| `[provider.NAME]` key |", f);
    for (unsigned i = 0; i < cfg.nproviders; i++)
        fprintf(f, " `%s` |", cfg.providers[i].name);
    fputs(" a new NAME |\n| --- |", f);
    for (unsigned i = 0; i <= cfg.nproviders; i++)
        fputs(" --- |", f);
    fputc('\n', f);
    for (unsigned k = 0; k < WB_ARRAY_SIZE(keys); k++) {
        fprintf(f, "| `%s` |", keys[k]);
        for (unsigned i = 0; i <= cfg.nproviders; i++)
            help_provider_cell(f, i < cfg.nproviders ? &cfg.providers[i] : &added, keys[k]);
        fputc('\n', f);
    }
    wb_provider_free(&added);
    wb_config_free(&cfg);
}
