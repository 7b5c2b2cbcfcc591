/* lookup.c - auth = api-lookup: the provider's API, asked for the event by
 * its id, says whether the webhook is one of the account's events.
 * Owns: the method's settings and their checks, the URL template and the
 * escaping of ids, the TLS context (certificates verified, the URL's host
 * checked), the positive caches (one per provider, shared by the workers),
 * and each worker's HTTP/1.1 client (libh2o's, on the worker's loop: never
 * blocking it), its bounded concurrency, its wait queue and its time bound.
 * Must not: log, put the credential into a reason, or keep a negative answer
 * (a refusal is asked again on the next retry).
 *
 *   auth.url = https://api.example.com/v1/events/{id}
 *       Every {id} (path or query) is replaced by the event's id (the
 *       provider's id pointer), percent-encoded. https:// (certificate and
 *       host name verified), or http:// to a loopback address only.
 *   auth.header = Authorization, auth.scheme = Bearer,
 *   auth.secret_env / auth.secret_file (auth.c): the credential sent, as
 *       "<header>: [<scheme> ]<secret>" (the first secret; none if unset).
 *   auth.match = /topic, /id=/data/id
 *       Checks of the answer: the webhook's value at the first pointer must
 *       equal the answer's at the second (the same pointer if only one).
 *   auth.cache_s = 300, auth.cache_max = 10000
 *       Confirmed events are remembered this long, at most this many per
 *       provider (0 s: never), so that retries and bursts ask once.
 *   auth.timeout_ms = 2000      the whole look-up, queue wait included
 *   auth.max_concurrent = 16    look-ups at once per worker and provider;
 *       the others wait in order (bounded by the in-flight bound)
 *   auth.ca_file = /path.pem    the CAs to trust (default: the system's)
 *
 * Results: 2xx with every match equal -> confirmed; 404, 410, 401, 403 or a
 * match that differs -> refused; anything else (5xx, 429, a connection or
 * TLS error, a timeout, an answer that is not JSON or lacks a matched field,
 * over 64 KiB) -> failed. */
#include "lookup.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_MATCH 4
#define MAX_URL 2048
#define MAX_PTR 256
#define MAX_VALUE 1024    /* a matched value, decoded */
#define MAX_ANSWER 65536  /* the API's answer body */
#define MAX_REQUEST 16384 /* the request's bytes */
#define KEY_LEN 32        /* SHA-256 of the id and the matched values */

struct wb_lookup_conf {
    int https;
    char *host; /* connection, SNI, certificate name */
    uint16_t port;
    char *authority; /* Host header */
    char *path;      /* path and query, with {id} */
    struct {
        char *hook, *answer;
    } match[MAX_MATCH];
    unsigned nmatch;
    unsigned cache_s, cache_max, timeout_ms, max_concurrent;
    char *ca_file;
    char *scheme; /* "Bearer", ... or NULL */
    const char *first_key;
    char *cred_line; /* "Header: value\r\n" or NULL; cleansed before free */
    size_t cred_line_len;
    SSL_CTX *ssl;
};

static const char *const keys[] = {"url",        "match",          "cache_s", "cache_max",
                                   "timeout_ms", "max_concurrent", "ca_file", "scheme"};

int wb_lookup_conf_key(const char *name)
{
    for (size_t i = 0; i < WB_ARRAY_SIZE(keys); i++)
        if (strcmp(name, keys[i]) == 0)
            return 1;
    return 0;
}

const char *wb_lookup_conf_first_key(const wb_lookup_conf_t *lc)
{
    return lc != NULL ? lc->first_key : NULL;
}

unsigned wb_lookup_conf_timeout_ms(const wb_lookup_conf_t *lc)
{
    return lc->timeout_ms;
}

static int dup_to(char **slot, const char *p, size_t len, char *err, size_t errsz)
{
    char *s = malloc(len + 1);
    if (s == NULL)
        return wb_errf(err, errsz, WB_ERR_NOMEM, "out of memory");
    memcpy(s, p, len);
    s[len] = '\0';
    free(*slot);
    *slot = s;
    return WB_OK;
}

static int parse_uint(wb_str_t v, unsigned lo, unsigned hi, unsigned *out)
{
    unsigned long n = 0;
    if (v.len == 0 || v.len > 9)
        return -1;
    for (size_t i = 0; i < v.len; i++) {
        if (!isdigit((unsigned char)v.p[i]))
            return -1;
        n = n * 10 + (unsigned long)(v.p[i] - '0');
    }
    if (n < lo || n > hi)
        return -1;
    *out = (unsigned)n;
    return 0;
}

/* 127.0.0.0/8, ::1, localhost: where http:// may go (a sidecar, tests). */
static int is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int set_url(wb_lookup_conf_t *lc, wb_str_t v, char *err, size_t errsz)
{
    h2o_url_t u;
    if (v.len == 0 || v.len > MAX_URL)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.url: 1 to %d bytes", MAX_URL);
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.p[i] <= 0x20 || (unsigned char)v.p[i] >= 0x7f)
            return wb_errf(err, errsz, WB_ERR_CONFIG,
                           "auth.url: printable ASCII without spaces only");
    if (h2o_url_parse(v.p, v.len, &u) != 0 || u.host.len == 0)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.url: not an http:// or https:// URL");
    if (memmem(u.path.base, u.path.len, "{id}", 4) == NULL)
        return wb_errf(err, errsz, WB_ERR_CONFIG,
                       "auth.url: no {id} (where the event's id goes) in its path or query");
    if (memchr(u.path.base, '#', u.path.len) != NULL)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.url: no fragment (#)");
    const char *host = u.host.base;
    size_t host_len = u.host.len;
    if (host_len > 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    int r;
    if ((r = dup_to(&lc->host, host, host_len, err, errsz)) != WB_OK ||
        (r = dup_to(&lc->authority, u.authority.base, u.authority.len, err, errsz)) != WB_OK ||
        (r = dup_to(&lc->path, u.path.base, u.path.len, err, errsz)) != WB_OK)
        return r;
    lc->https = u.scheme == &H2O_URL_SCHEME_HTTPS;
    lc->port = h2o_url_get_port(&u);
    if (!lc->https && !is_loopback(lc->host))
        return wb_errf(err, errsz, WB_ERR_CONFIG,
                       "auth.url: http:// only to a loopback address (127.0.0.1, ::1, "
                       "localhost); the provider's API is reached over https://");
    return WB_OK;
}

static int valid_ptr(wb_str_t p)
{
    if (p.len == 0 || p.len > MAX_PTR || p.p[0] != '/')
        return 0;
    for (size_t i = 0; i < p.len; i++)
        if ((unsigned char)p.p[i] <= 0x20 || p.p[i] == ',' || p.p[i] == '=')
            return 0;
    return 1;
}

static int set_match(wb_lookup_conf_t *lc, wb_str_t v, char *err, size_t errsz)
{
    for (unsigned i = 0; i < lc->nmatch; i++) {
        free(lc->match[i].hook);
        free(lc->match[i].answer);
        lc->match[i].hook = lc->match[i].answer = NULL;
    }
    lc->nmatch = 0;
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (v.p[i] == ',' || v.p[i] == ' ' || v.p[i] == '\t'))
            i++;
        if (i == v.len)
            break;
        size_t start = i;
        while (i < v.len && v.p[i] != ',' && v.p[i] != ' ' && v.p[i] != '\t')
            i++;
        wb_str_t item = {v.p + start, i - start}, hook = item, answer = item;
        const char *eq = memchr(item.p, '=', item.len);
        if (eq != NULL) {
            hook.len = (size_t)(eq - item.p);
            answer = (wb_str_t){eq + 1, item.len - hook.len - 1};
        }
        if (!valid_ptr(hook) || !valid_ptr(answer))
            return wb_errf(err, errsz, WB_ERR_CONFIG,
                           "auth.match: '%.*s' is not a JSON Pointer or POINTER=POINTER "
                           "(e.g. /topic, /id=/data/id)",
                           (int)(item.len > 80 ? 80 : item.len), item.p);
        if (lc->nmatch == MAX_MATCH)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.match: at most %d checks", MAX_MATCH);
        int r;
        if ((r = dup_to(&lc->match[lc->nmatch].hook, hook.p, hook.len, err, errsz)) != WB_OK ||
            (r = dup_to(&lc->match[lc->nmatch].answer, answer.p, answer.len, err, errsz)) !=
                WB_OK) {
            lc->nmatch++; /* freed with the rest */
            return r;
        }
        lc->nmatch++;
    }
    return WB_OK;
}

/* The numeric keys: bounds, where they go, what the error says. */
static const struct {
    const char *name;
    unsigned lo, hi;
    size_t off;
    const char *range;
} uints[] = {
    {"cache_s", 0, 86400, offsetof(wb_lookup_conf_t, cache_s), "seconds from 0 to 86400"},
    {"cache_max", 1, 1000000, offsetof(wb_lookup_conf_t, cache_max), "1 to 1000000 entries"},
    {"timeout_ms", 50, 60000, offsetof(wb_lookup_conf_t, timeout_ms), "50 to 60000"},
    {"max_concurrent", 1, 1024, offsetof(wb_lookup_conf_t, max_concurrent), "1 to 1024"},
};

int wb_lookup_conf_set(wb_lookup_conf_t **lcp, const char *name, wb_str_t v, char *err,
                       size_t errsz)
{
    if (*lcp == NULL) {
        if ((*lcp = calloc(1, sizeof(**lcp))) == NULL)
            return wb_errf(err, errsz, WB_ERR_NOMEM, "out of memory");
        (*lcp)->cache_s = 300;
        (*lcp)->cache_max = 10000;
        (*lcp)->timeout_ms = 2000;
        (*lcp)->max_concurrent = 16;
    }
    wb_lookup_conf_t *lc = *lcp;
    for (size_t i = 0; i < WB_ARRAY_SIZE(keys) && lc->first_key == NULL; i++)
        if (strcmp(name, keys[i]) == 0)
            lc->first_key = keys[i];
    if (strcmp(name, "url") == 0)
        return set_url(lc, v, err, errsz);
    if (strcmp(name, "match") == 0)
        return set_match(lc, v, err, errsz);
    for (size_t i = 0; i < WB_ARRAY_SIZE(uints); i++)
        if (strcmp(name, uints[i].name) == 0)
            return parse_uint(v, uints[i].lo, uints[i].hi,
                              (unsigned *)((char *)lc + uints[i].off)) == 0
                       ? WB_OK
                       : wb_errf(err, errsz, WB_ERR_CONFIG, "auth.%s: %s", name, uints[i].range);
    if (strcmp(name, "scheme") == 0) {
        if (v.len == 0 || v.len > 32)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.scheme: 1 to 32 characters");
        for (size_t i = 0; i < v.len; i++)
            if (!isalnum((unsigned char)v.p[i]) && v.p[i] != '-' && v.p[i] != '_')
                return wb_errf(err, errsz, WB_ERR_CONFIG,
                               "auth.scheme: a word such as Bearer or Token");
        return dup_to(&lc->scheme, v.p, v.len, err, errsz);
    }
    if (strcmp(name, "ca_file") == 0) {
        if (v.len == 0 || v.len > 4096)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.ca_file: a path");
        return dup_to(&lc->ca_file, v.p, v.len, err, errsz);
    }
    return wb_errf(err, errsz, WB_ERR_CONFIG, "not a key of auth = api-lookup");
}

/* The TLS context: TLS 1.2 or later, the peer's chain verified against the
 * system's CAs (or auth.ca_file), and its name checked against the URL's
 * host by OpenSSL (X509_VERIFY_PARAM: DNS names, IP addresses) on top of
 * libh2o's own name check. */
static int make_ssl(wb_lookup_conf_t *lc, char *err, size_t errsz)
{
    struct in6_addr a6;
    struct in_addr a4;
    if ((lc->ssl = SSL_CTX_new(TLS_client_method())) == NULL)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "OpenSSL: cannot make a TLS context");
    SSL_CTX_set_min_proto_version(lc->ssl, TLS1_2_VERSION);
    SSL_CTX_set_verify(lc->ssl, SSL_VERIFY_PEER, NULL);
    if (lc->ca_file != NULL ? SSL_CTX_load_verify_locations(lc->ssl, lc->ca_file, NULL) != 1
                            : SSL_CTX_set_default_verify_paths(lc->ssl) != 1)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.ca_file: cannot load %s",
                       lc->ca_file != NULL ? lc->ca_file : "the system's CAs");
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(lc->ssl);
    int ip = inet_pton(AF_INET, lc->host, &a4) == 1 || inet_pton(AF_INET6, lc->host, &a6) == 1;
    if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(param, lc->host)
            : X509_VERIFY_PARAM_set1_host(param, lc->host, 0)) != 1)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "OpenSSL: cannot check the name %s", lc->host);
    return WB_OK;
}

int wb_lookup_conf_finish(wb_lookup_conf_t *lc, const char *header, const unsigned char *cred,
                          size_t cred_len, char *err, size_t errsz)
{
    const char *scheme = lc != NULL ? lc->scheme : NULL;
    if (lc == NULL || lc->host == NULL)
        return wb_errf(
            err, errsz, WB_ERR_CONFIG,
            "auth = api-lookup needs auth.url (e.g. https://api.example.com/events/{id})");
    if (lc->ca_file != NULL && !lc->https)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.ca_file needs an https:// auth.url");
    if (lc->https && lc->ssl == NULL) {
        int r = make_ssl(lc, err, errsz);
        if (r != WB_OK)
            return r;
    }
    if (lc->scheme != NULL && cred == NULL)
        return wb_errf(err, errsz, WB_ERR_CONFIG,
                       "auth.scheme needs the credential (auth.secret_env or auth.secret_file)");
    if (cred != NULL && lc->cred_line == NULL) {
        size_t hl = strlen(header), sl = scheme != NULL ? strlen(scheme) + 1 : 0;
        lc->cred_line_len = hl + 2 + sl + cred_len + 2;
        if ((lc->cred_line = malloc(lc->cred_line_len + 1)) == NULL)
            return wb_errf(err, errsz, WB_ERR_NOMEM, "out of memory");
        char *p = lc->cred_line;
        memcpy(p, header, hl);
        p += hl;
        memcpy(p, ": ", 2);
        p += 2;
        if (sl > 0) {
            memcpy(p, scheme, sl - 1);
            p[sl - 1] = ' ';
            p += sl;
        }
        memcpy(p, cred, cred_len);
        p += cred_len;
        memcpy(p, "\r\n", 3);
    }
    return WB_OK;
}

void wb_lookup_conf_free(wb_lookup_conf_t *lc)
{
    if (lc == NULL)
        return;
    free(lc->host);
    free(lc->authority);
    free(lc->path);
    for (unsigned i = 0; i < lc->nmatch; i++) {
        free(lc->match[i].hook);
        free(lc->match[i].answer);
    }
    free(lc->ca_file);
    free(lc->scheme);
    if (lc->cred_line != NULL) {
        OPENSSL_cleanse(lc->cred_line, lc->cred_line_len);
        free(lc->cred_line);
    }
    SSL_CTX_free(lc->ssl);
    free(lc);
}

static int unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

long wb_lookup_expand(const char *tmpl, size_t tmpl_len, const char *id, size_t id_len, char *out,
                      size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < tmpl_len;) {
        if (tmpl_len - i >= 4 && memcmp(tmpl + i, "{id}", 4) == 0) {
            for (size_t j = 0; j < id_len; j++) {
                unsigned char c = (unsigned char)id[j];
                if (unreserved(c)) {
                    if (n + 1 >= outsz)
                        return -1;
                    out[n++] = (char)c;
                } else {
                    if (n + 3 >= outsz)
                        return -1;
                    out[n++] = '%';
                    out[n++] = hex[c >> 4];
                    out[n++] = hex[c & 15];
                }
            }
            i += 4;
            continue;
        }
        if (n + 1 >= outsz)
            return -1;
        out[n++] = tmpl[i++];
    }
    if (n >= outsz)
        return -1;
    out[n] = '\0';
    return (long)n;
}

/* ---- the caches ---- */

typedef struct {
    h2o_cache_t *cache; /* NULL: no cache (cache_s 0) or no look-up */
    atomic_ulong confirmed, refused, failed, cache_hits;
} provider_state_t;

struct wb_lookup {
    unsigned n;
    const wb_lookup_conf_t **confs; /* [n] */
    provider_state_t prov[];        /* [n] */
};

static void cache_value_free(h2o_iovec_t v)
{
    (void)v; /* a static byte */
}

wb_lookup_t *wb_lookup_new(const wb_lookup_conf_t *const *confs, unsigned n)
{
    wb_lookup_t *lk = calloc(1, sizeof(*lk) + n * sizeof(lk->prov[0]));
    if (lk == NULL)
        return NULL;
    if ((lk->confs = calloc(n > 0 ? n : 1, sizeof(*lk->confs))) == NULL) {
        free(lk);
        return NULL;
    }
    lk->n = n;
    for (unsigned i = 0; i < lk->n; i++) {
        lk->confs[i] = confs[i];
        if (confs[i] != NULL && confs[i]->cache_s > 0)
            /* capacity counts value bytes: one per entry */
            lk->prov[i].cache =
                h2o_cache_create(H2O_CACHE_FLAG_MULTITHREADED, confs[i]->cache_max,
                                 (uint64_t)confs[i]->cache_s * 1000, cache_value_free);
    }
    return lk;
}

void wb_lookup_free(wb_lookup_t *lk)
{
    if (lk == NULL)
        return;
    for (unsigned i = 0; i < lk->n; i++)
        if (lk->prov[i].cache != NULL)
            h2o_cache_destroy(lk->prov[i].cache);
    free(lk->confs);
    free(lk);
}

void wb_lookup_counts(const wb_lookup_t *lk, unsigned pi, wb_lookup_counts_t *out)
{
    memset(out, 0, sizeof(*out));
    if (lk == NULL || pi >= lk->n)
        return;
    const provider_state_t *p = &lk->prov[pi];
    out->confirmed = atomic_load_explicit(&p->confirmed, memory_order_relaxed);
    out->refused = atomic_load_explicit(&p->refused, memory_order_relaxed);
    out->failed = atomic_load_explicit(&p->failed, memory_order_relaxed);
    out->cache_hits = atomic_load_explicit(&p->cache_hits, memory_order_relaxed);
}

/* ---- the client ---- */

typedef struct {
    const wb_lookup_conf_t *lc; /* NULL: provider without look-ups */
    h2o_http1client_ctx_t ctx;
    h2o_timeout_t io_timeout, bound;
    h2o_socketpool_t pool;
    unsigned active;
    int starting; /* in start_next: a look-up that ends inside it does not recurse */
    h2o_linklist_t waiting, running;
} slot_t;

struct wb_lookup_client {
    wb_lookup_t *lk;
    h2o_loop_t *loop;
    wb_json_t json; /* parses answers */
    slot_t slots[]; /* one per provider of lk */
};

typedef struct {
    wb_lookup_client_t *c;
    unsigned pi;
    h2o_http1client_t *client; /* NULL when no request is on the wire */
    h2o_timeout_entry_t timer;
    h2o_linklist_t node; /* in its slot's waiting or running list */
    int running, attempts, status;
    /* inside wb_lookup_start: an end reached at once (libh2o fails a
     * connect synchronously, e.g. out of descriptors) is returned there,
     * never given to the callback before the caller knows it waits */
    int starting;
    wb_lookup_result_t sync_res;
    char sync_reason[200];
    wb_lookup_cb cb;
    void *data;
    wb_buf_t body;
    h2o_iovec_t request;
    unsigned char key[KEY_LEN];
    unsigned nexp;
    wb_buf_t exp[MAX_MATCH]; /* the webhook's values to match */
} req_t;

wb_lookup_client_t *wb_lookup_client_new(wb_lookup_t *lk, h2o_loop_t *loop,
                                         h2o_multithread_receiver_t *getaddr)
{
    wb_lookup_client_t *c = calloc(1, sizeof(*c) + lk->n * sizeof(c->slots[0]));
    if (c == NULL)
        return NULL;
    c->lk = lk;
    c->loop = loop;
    wb_json_init(&c->json, 100000);
    for (unsigned i = 0; i < lk->n; i++) {
        slot_t *s = &c->slots[i];
        const wb_lookup_conf_t *lc = lk->confs[i];
        h2o_linklist_init_anchor(&s->waiting);
        h2o_linklist_init_anchor(&s->running);
        if (lc == NULL)
            continue;
        s->lc = lc;
        h2o_timeout_init(loop, &s->io_timeout, lc->timeout_ms);
        h2o_timeout_init(loop, &s->bound, lc->timeout_ms);
        s->ctx = (h2o_http1client_ctx_t){loop, getaddr, &s->io_timeout, NULL, lc->ssl};
        h2o_socketpool_init_by_hostport(&s->pool, h2o_iovec_init(lc->host, strlen(lc->host)),
                                        lc->port, lc->https, lc->max_concurrent);
        /* idle connections are closed before a server's usual keep-alive
         * timeout, so that a request rarely meets one the server closed */
        h2o_socketpool_set_timeout(&s->pool, loop, 2000);
    }
    return c;
}

static void req_free(req_t *r)
{
    for (unsigned i = 0; i < r->nexp; i++)
        wb_buf_free(&r->exp[i]);
    wb_buf_free(&r->body);
    free(r->request.base);
    free(r);
}

static void start_next(slot_t *s);

/* The look-up is over: the slot is freed for the next, the caller told. */
static void finish(req_t *r, wb_lookup_result_t res, const char *reason)
{
    slot_t *s = &r->c->slots[r->pi];
    provider_state_t *ps = &r->c->lk->prov[r->pi];
    if (r->client != NULL) {
        h2o_http1client_cancel(r->client);
        r->client = NULL;
    }
    h2o_timeout_unlink(&r->timer);
    h2o_linklist_unlink(&r->node);
    if (r->running)
        s->active--;
    if (res == WB_LOOKUP_CONFIRMED && ps->cache != NULL)
        h2o_cache_set(ps->cache, wb_mono_ms(), h2o_iovec_init(r->key, KEY_LEN), 0,
                      h2o_iovec_init("1", 1));
    atomic_ulong *counter = res == WB_LOOKUP_CONFIRMED ? &ps->confirmed
                            : res == WB_LOOKUP_REFUSED ? &ps->refused
                                                       : &ps->failed;
    if (res != WB_LOOKUP_CANCELLED)
        atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    if (r->starting) { /* wb_lookup_start returns it and frees r */
        r->running = 0;
        r->sync_res = res;
        snprintf(r->sync_reason, sizeof(r->sync_reason), "%s", reason != NULL ? reason : "");
    } else {
        r->cb(r->data, res, reason);
        req_free(r);
    }
    if (res != WB_LOOKUP_CANCELLED)
        start_next(s);
}

/* Appends a value as compared: a string decoded, any other kind as written. */
static int value_of(const wb_json_val_t *v, wb_buf_t *out)
{
    if (v->kind == WB_JSON_MISSING || v->kind == WB_JSON_OBJECT || v->kind == WB_JSON_ARRAY)
        return -1;
    return wb_json_decode(v, out) == WB_OK ? 0 : -1;
}

/* What the API's answer says: r->status and r->body are complete. */
static void judge(req_t *r)
{
    const wb_lookup_conf_t *lc = r->c->slots[r->pi].lc;
    char reason[200];
    int st = r->status;
    if (st == 404 || st == 410 || st == 401 || st == 403) {
        snprintf(reason, sizeof(reason), "the provider's API answered %d for this event", st);
        finish(r, WB_LOOKUP_REFUSED, reason);
        return;
    }
    if (st < 200 || st > 299) {
        snprintf(reason, sizeof(reason), "the provider's API answered %d", st);
        finish(r, WB_LOOKUP_FAILED, reason);
        return;
    }
    if (wb_json_parse(&r->c->json, r->body.p != NULL ? r->body.p : "", r->body.len, 64, NULL, 0) !=
        WB_OK) {
        finish(r, WB_LOOKUP_FAILED, "the provider's API answered with something that is not JSON");
        return;
    }
    for (unsigned i = 0; i < lc->nmatch; i++) {
        wb_json_val_t v = wb_json_get(&r->c->json, lc->match[i].answer);
        wb_buf_t got;
        wb_buf_init(&got, MAX_VALUE);
        if (value_of(&v, &got) != 0) {
            wb_buf_free(&got);
            snprintf(reason, sizeof(reason), "the provider's API answer has no value at %.100s",
                     lc->match[i].answer);
            finish(r, WB_LOOKUP_FAILED, reason);
            return;
        }
        int same =
            got.len == r->exp[i].len && (got.len == 0 || memcmp(got.p, r->exp[i].p, got.len) == 0);
        wb_buf_free(&got);
        if (!same) {
            snprintf(reason, sizeof(reason), "the provider's API knows this id with another %.100s",
                     lc->match[i].answer);
            finish(r, WB_LOOKUP_REFUSED, reason);
            return;
        }
    }
    finish(r, WB_LOOKUP_CONFIRMED, NULL);
}

static void begin(req_t *r);

/* A request that failed before any answer on a connection from the pool
 * may have met one the server had closed: tried once more on a new one. */
static void failed_on_wire(req_t *r, const char *what, const char *errstr)
{
    char reason[200];
    r->client = NULL; /* h2o closes it after this callback */
    if (r->attempts == 1 && errstr != NULL && strncmp(errstr, "I/O error", 9) == 0) {
        begin(r);
        return;
    }
    snprintf(reason, sizeof(reason), "the provider's API: %s: %.120s", what, errstr);
    finish(r, WB_LOOKUP_FAILED, reason);
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    req_t *r = client->data;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        r->client = NULL;
        finish(r, WB_LOOKUP_FAILED, "the provider's API: the answer was cut short");
        return -1;
    }
    h2o_buffer_t *in = client->sock->input;
    if (in->size > 0) {
        if (wb_buf_append(&r->body, in->bytes, in->size) != WB_OK) {
            r->client = NULL;
            finish(r, WB_LOOKUP_FAILED, "the provider's API answer is over 64 KiB");
            return -1;
        }
        h2o_buffer_consume(&client->sock->input, in->size);
    }
    if (errstr == h2o_http1client_error_is_eos) {
        r->client = NULL; /* h2o closes it (or pools it) on return */
        judge(r);
    }
    return 0;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr,
                                       int minor_version, int status, h2o_iovec_t msg,
                                       h2o_header_t *headers, size_t num_headers, int rlen)
{
    req_t *r = client->data;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        failed_on_wire(r, "no answer", errstr);
        return NULL;
    }
    r->status = status;
    if (errstr == h2o_http1client_error_is_eos) {
        r->client = NULL;
        judge(r);
        return NULL;
    }
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    req_t *r = client->data;
    if (errstr != NULL) {
        r->client = NULL;
        char reason[200];
        snprintf(reason, sizeof(reason), "the provider's API: cannot connect: %.120s", errstr);
        finish(r, WB_LOOKUP_FAILED, reason);
        return NULL;
    }
    *reqbufs = &r->request;
    *reqbufcnt = 1;
    *method_is_head = 0;
    return on_head;
}

static void begin(req_t *r)
{
    slot_t *s = &r->c->slots[r->pi];
    r->attempts++;
    r->status = 0;
    wb_buf_reset(&r->body);
    h2o_http1client_connect_with_pool(&r->client, r, &s->ctx, &s->pool, on_connect);
}

/* Starts waiting look-ups while there is room. A start that fails at once
 * ends inside begin() and calls here again: that call returns, and this
 * loop goes on (no recursion as deep as the queue is long). */
static void start_next(slot_t *s)
{
    if (s->starting)
        return;
    s->starting = 1;
    while (s->lc != NULL && s->active < s->lc->max_concurrent &&
           !h2o_linklist_is_empty(&s->waiting)) {
        req_t *r = H2O_STRUCT_FROM_MEMBER(req_t, node, s->waiting.next);
        h2o_linklist_unlink(&r->node);
        h2o_linklist_insert(&s->running, &r->node);
        r->running = 1;
        s->active++;
        begin(r);
    }
    s->starting = 0;
}

static void on_bound(h2o_timeout_entry_t *entry)
{
    req_t *r = H2O_STRUCT_FROM_MEMBER(req_t, timer, entry);
    char reason[120];
    snprintf(reason, sizeof(reason), "the provider's API did not answer within %u ms%s",
             r->c->slots[r->pi].lc->timeout_ms, r->running ? "" : " (waiting for a free look-up)");
    finish(r, WB_LOOKUP_FAILED, reason);
}

/* GET <path with the id> HTTP/1.1, the Host, the credential. */
static int build_request(req_t *r, const wb_lookup_conf_t *lc, const char *id, size_t id_len)
{
    char path[MAX_URL * 2];
    long pl = wb_lookup_expand(lc->path, strlen(lc->path), id, id_len, path, sizeof(path));
    if (pl < 0)
        return -1;
    wb_buf_t b;
    wb_buf_init(&b, MAX_REQUEST);
    if (wb_buf_printf(&b,
                      "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n"
                      "User-Agent: webhook-bridge\r\n",
                      path, lc->authority) != WB_OK ||
        (lc->cred_line != NULL && wb_buf_append(&b, lc->cred_line, lc->cred_line_len) != WB_OK) ||
        wb_buf_append(&b, "\r\n", 2) != WB_OK) {
        if (b.p != NULL)
            OPENSSL_cleanse(b.p, b.len);
        wb_buf_free(&b);
        return -1;
    }
    r->request.len = b.len;
    r->request.base = wb_buf_steal(&b, NULL);
    return 0;
}

static void make_key(req_t *r, const char *id, size_t id_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned len = 0;
    memset(r->key, 0, sizeof(r->key));
    if (md == NULL)
        return;
    size_t n = id_len;
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, &n, sizeof(n)); /* lengths first: no two lists give one key */
    EVP_DigestUpdate(md, id, id_len);
    for (unsigned i = 0; i < r->nexp; i++) {
        n = r->exp[i].len;
        EVP_DigestUpdate(md, &n, sizeof(n));
        if (n > 0)
            EVP_DigestUpdate(md, r->exp[i].p, n);
    }
    EVP_DigestFinal_ex(md, r->key, &len);
    EVP_MD_CTX_free(md);
}

wb_lookup_result_t wb_lookup_start(wb_lookup_client_t *c, unsigned pi, const wb_lookup_conf_t *lc,
                                   const wb_json_t *js, const char *id, size_t id_len,
                                   wb_lookup_cb cb, void *data, char *err, size_t errsz)
{
    if (c == NULL || pi >= c->lk->n || c->slots[pi].lc != lc) {
        wb_errf(err, errsz, WB_ERR_CONFIG, "no look-up client for this provider");
        return WB_LOOKUP_FAILED;
    }
    slot_t *s = &c->slots[pi];
    provider_state_t *ps = &c->lk->prov[pi];
    if (id_len == 0) {
        wb_errf(err, errsz, WB_ERR_AUTH, "the webhook has no event id to look up");
        return WB_LOOKUP_REFUSED;
    }
    req_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        wb_errf(err, errsz, WB_ERR_NOMEM, "out of memory");
        return WB_LOOKUP_FAILED;
    }
    r->c = c;
    r->pi = pi;
    r->cb = cb;
    r->data = data;
    r->timer.cb = on_bound;
    wb_buf_init(&r->body, MAX_ANSWER);
    for (unsigned i = 0; i < lc->nmatch; i++, r->nexp++) {
        wb_json_val_t v = wb_json_get(js, lc->match[i].hook);
        wb_buf_init(&r->exp[i], MAX_VALUE);
        if (value_of(&v, &r->exp[i]) != 0) {
            r->nexp++;
            req_free(r);
            wb_errf(err, errsz, WB_ERR_AUTH, "the webhook has no value at %s to check",
                    lc->match[i].hook);
            return WB_LOOKUP_REFUSED;
        }
    }
    make_key(r, id, id_len);
    if (ps->cache != NULL) {
        h2o_cache_ref_t *ref =
            h2o_cache_fetch(ps->cache, wb_mono_ms(), h2o_iovec_init(r->key, KEY_LEN), 0);
        if (ref != NULL) {
            h2o_cache_release(ps->cache, ref);
            req_free(r);
            atomic_fetch_add_explicit(&ps->cache_hits, 1, memory_order_relaxed);
            return WB_LOOKUP_CONFIRMED;
        }
    }
    if (build_request(r, lc, id, id_len) != 0) {
        req_free(r);
        wb_errf(err, errsz, WB_ERR_AUTH, "the event id is too long to look up");
        return WB_LOOKUP_REFUSED;
    }
    h2o_linklist_insert(&s->waiting, &r->node);
    h2o_timeout_link(c->loop, &s->bound, &r->timer);
    r->starting = 1;
    start_next(s);
    if (r->sync_res != WB_LOOKUP_PENDING) {
        wb_lookup_result_t res = r->sync_res;
        wb_errf(err, errsz, WB_ERR_AUTH, "%s", r->sync_reason);
        req_free(r);
        return res;
    }
    r->starting = 0;
    return WB_LOOKUP_PENDING;
}

void wb_lookup_client_free(wb_lookup_client_t *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->lk->n; i++) {
        slot_t *s = &c->slots[i];
        if (s->lc == NULL)
            continue;
        while (!h2o_linklist_is_empty(&s->running))
            finish(H2O_STRUCT_FROM_MEMBER(req_t, node, s->running.next), WB_LOOKUP_CANCELLED,
                   "shutting down");
        while (!h2o_linklist_is_empty(&s->waiting))
            finish(H2O_STRUCT_FROM_MEMBER(req_t, node, s->waiting.next), WB_LOOKUP_CANCELLED,
                   "shutting down");
        h2o_socketpool_dispose(&s->pool);
        h2o_timeout_dispose(c->loop, &s->io_timeout);
        h2o_timeout_dispose(c->loop, &s->bound);
    }
    wb_json_free(&c->json);
    free(c);
}
