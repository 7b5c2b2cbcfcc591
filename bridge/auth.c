/* auth.c - verifies a provider's credentials on the raw request, before
 * anything is parsed or produced.
 * Owns: the per-provider authentication settings, loading their secrets
 * (environment, files), secret comparison in constant time, the Standard
 * Webhooks timestamp tolerance, the source network allow-list.
 * Must not: log (reasons go to the caller's buffer), put a secret, a
 * signature or a body byte into a reason, keep state between requests.
 *
 * Configuration: keys of a provider's [provider.NAME] section, each also an
 * environment override BRIDGE_PROVIDER_<NAME>_<KEY> (key upper-cased, '.'
 * -> '_'). After "auth." the characters '.', '-' and '_' are the same, so
 * auth.secret_env, auth.secret.env and AUTH_SECRET_ENV are one key.
 *
 *   auth = none | header | hmac | standard-webhooks | path | api-lookup
 *       The method. Unset means none, except that start-up fails when real
 *       Kafka brokers are configured: "none" must then be chosen explicitly.
 *   auth.secret_env = VAR
 *       Name of an environment variable holding the secret(s), separated by
 *       commas or white space (so such a secret cannot hold either).
 *   auth.secret_file = /path
 *       A file (Kubernetes Secret mount) with one secret per line; blank
 *       lines are skipped, spaces around a line are trimmed.
 *       Both may be given; every secret they hold is accepted, so a secret
 *       is rotated by adding the new one, then removing the old one. A
 *       literal secret in the configuration (auth.secret) is refused.
 *   auth.header = Header-Name
 *       header: the header holding the token (one of the secrets).
 *       hmac:   the header holding the signature.
 *   auth.header_N, auth.secret_env_N, auth.secret_file_N (N = 2..8)
 *       header only: more header/secret pairs; a request must carry every
 *       configured header, each with one of its own secrets.
 *   auth.encoding = hex | base64      hmac: the signature's encoding (hex)
 *   auth.prefix = sha256=             hmac: text before the signature (none)
 *   auth.tolerance_s = 300            standard-webhooks: how far webhook-
 *       timestamp may be from the bridge's clock, in seconds (1..86400).
 *       Secrets are "whsec_<base64>" (the prefix is optional).
 *   api-lookup: the provider's API confirms each event (lookup.c, its
 *       keys auth.url, auth.match, auth.cache_s, ...); auth.header (default
 *       Authorization) and the first secret are the credential it sends.
 *       Here only the source network is checked; ingest.c runs the look-up.
 *   path: the secrets are the accepted tokens of /webhooks/NAME/<token>,
 *       16 to 256 characters from A-Z a-z 0-9 - . _ ~
 *   auth.allow_cidrs = 10.0.0.0/8, 2001:db8::/32
 *       With any method: only these source networks get in (an address
 *       alone is a /32 or /128). Empty means no restriction.
 *   auth.trusted_proxies = 10.1.0.0/16
 *       When the TCP peer is one of these, X-Forwarded-For is read from
 *       the right: the first hop that is not a trusted proxy is the source.
 *       X-Forwarded-For from any other peer is ignored.
 *
 * A key the chosen method does not use, or auth.* keys without auth, stop
 * start-up, so that a mistyped method is never silently weaker.
 *
 * Refusals (401 from ingest.c): auth_missing (credential absent or empty),
 * auth_invalid (present but wrong, malformed, repeated or over a cap),
 * auth_timestamp (webhook-timestamp outside the tolerance),
 * auth_forbidden_network (source outside auth.allow_cidrs).
 *
 * HMAC-SHA256 is computed over the raw body (hmac) or over
 * "{webhook-id}.{webhook-timestamp}.{body}" (standard-webhooks), keyed by
 * the secret's bytes (hmac) or its base64-decoded part (standard-webhooks).
 * Signatures are decoded and compared as bytes with CRYPTO_memcmp after
 * their length is checked; every configured secret is tried. */
#include "auth.h"
#include "lookup.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define MAX_PAIRS 8           /* header/secret pairs of the header method */
#define MAX_SECRETS 16        /* per pair: bounds the HMACs per request */
#define MAX_SECRET_LEN 1024   /* bytes, as written */
#define MAX_SECRET_FILE 65536 /* bytes */
#define MAX_HEADER_NAME 128
#define MAX_ENV_NAME 128
#define MAX_PREFIX 64
#define MAX_CIDRS 64
#define MAX_VALUE 4096     /* any credential header value, bytes */
#define MAX_SIGS 16        /* entries in webhook-signature */
#define MAX_WEBHOOK_ID 256 /* bytes */
#define MAX_XFF_HEADERS 8
#define MAX_XFF_HOPS 64
#define MIN_PATH_TOKEN 16
#define MAX_PATH_TOKEN 256
#define MAC_LEN 32 /* SHA-256 */
#define DEFAULT_TOLERANCE 300
#define MAX_TOLERANCE 86400

typedef enum {
    M_UNSET = 0,
    M_NONE,
    M_HEADER,
    M_HMAC,
    M_STANDARD,
    M_PATH,
    M_LOOKUP,
} method_t;

static const char *const method_names[] = {
    "none", "none", "header", "hmac", "standard-webhooks", "path", "api-lookup"};

typedef enum { ENC_HEX = 0, ENC_BASE64 } encoding_t;

typedef struct {
    unsigned char *p; /* malloc'ed, cleansed before free */
    size_t len;
} secret_t;

typedef struct {
    char *header;      /* header name, or NULL */
    char *secret_env;  /* variable name, or NULL */
    char *secret_file; /* path, or NULL */
    secret_t secrets[MAX_SECRETS];
    size_t nsecrets;
} pair_t;

typedef struct {
    int v6;
    unsigned char a[16]; /* IPv4 in the first 4 bytes */
} ip_t;

typedef struct {
    ip_t ip;
    unsigned bits;
} cidr_t;

struct wb_auth_conf {
    method_t method;
    pair_t pairs[MAX_PAIRS];
    encoding_t encoding;
    int encoding_set;
    char *prefix; /* NULL: none */
    long tolerance_s;
    int tolerance_set;
    cidr_t allow[MAX_CIDRS];
    size_t nallow;
    cidr_t proxies[MAX_CIDRS];
    size_t nproxies;
    EVP_MAC *mac;             /* HMAC, fetched once; shared read-only by threads */
    wb_lookup_conf_t *lookup; /* api-lookup's own keys, or NULL */
    int finished;
};

/* ---- small helpers ---- */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static wb_str_t trim(wb_str_t s)
{
    while (s.len > 0 && is_space(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len > 0 && is_space(s.p[s.len - 1]))
        s.len--;
    return s;
}

static int str_ieq(wb_str_t a, const char *b)
{
    size_t n = strlen(b);
    if (a.len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)a.p[i]) != tolower((unsigned char)b[i]))
            return 0;
    return 1;
}

static char *dup_str(wb_str_t s)
{
    char *p = malloc(s.len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s.p, s.len);
    p[s.len] = '\0';
    return p;
}

static void secret_clear(secret_t *s)
{
    if (s->p != NULL) {
        OPENSSL_cleanse(s->p, s->len);
        free(s->p);
    }
    s->p = NULL;
    s->len = 0;
}

static void pair_clear_secrets(pair_t *pr)
{
    for (size_t i = 0; i < pr->nsecrets; i++)
        secret_clear(&pr->secrets[i]);
    pr->nsecrets = 0;
}

static int pair_is_set(const pair_t *pr)
{
    return pr->header != NULL || pr->secret_env != NULL || pr->secret_file != NULL;
}

static int pair_has_source(const pair_t *pr)
{
    return pr->secret_env != NULL || pr->secret_file != NULL;
}

/* Replaces *slot with a copy of v (NULL when v is empty). */
static int set_string(char **slot, wb_str_t v, char *err, size_t errsz)
{
    char *p = NULL;
    if (v.len > 0 && (p = dup_str(v)) == NULL)
        return wb_errf(err, errsz, WB_ERR_NOMEM, "out of memory");
    free(*slot);
    *slot = p;
    return WB_OK;
}

/* ---- encodings ---- */

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex (either case) into out; returns the length or -1. */
static long hex_decode(wb_str_t in, unsigned char *out, size_t outsz)
{
    if (in.len % 2 != 0 || in.len / 2 > outsz)
        return -1;
    for (size_t i = 0; i < in.len; i += 2) {
        int hi = hex_val((unsigned char)in.p[i]), lo = hex_val((unsigned char)in.p[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(in.len / 2);
}

static int is_b64_char(unsigned char c)
{
    return isalnum(c) || c == '+' || c == '/';
}

/* Decodes standard base64, padded or not, into out; returns the length or
 * -1. EVP_DecodeBlock wants a multiple of 4 characters and counts padding
 * as zero bytes, so the input is checked and padded here, and the padding
 * is taken off the result. */
static long b64_decode(wb_str_t in, unsigned char *out, size_t outsz)
{
    unsigned char tmp[MAX_VALUE + 4];
    size_t n = 0, pad = 0;

    while (n < in.len && is_b64_char((unsigned char)in.p[n]))
        n++;
    while (n + pad < in.len && in.p[n + pad] == '=')
        pad++;
    if (n + pad != in.len || pad > 2 || n % 4 == 1 || n == 0 || n > MAX_VALUE)
        return -1;
    if (pad > 0 && (n + pad) % 4 != 0)
        return -1;
    /* canonical form only: the bits under the padding are zero, so that
     * one signature has one spelling (as with the reference libraries,
     * which compare strings) */
    if (n % 4 != 0) {
        static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        unsigned last = (unsigned)(strchr(alphabet, in.p[n - 1]) - alphabet);
        if ((n % 4 == 2 && (last & 0x0f) != 0) || (n % 4 == 3 && (last & 0x03) != 0))
            return -1;
    }
    memcpy(tmp, in.p, n);
    size_t padded = n;
    while (padded % 4 != 0)
        tmp[padded++] = '=';
    pad = padded - n;
    if (padded / 4 * 3 > outsz)
        return -1;
    int r = EVP_DecodeBlock(out, tmp, (int)padded);
    if (r < 0 || (size_t)r < pad)
        return -1;
    return (long)((size_t)r - pad);
}

/* ---- addresses ---- */

static void ip_unmap(ip_t *ip)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (ip->v6 && memcmp(ip->a, mapped, sizeof(mapped)) == 0) {
        memmove(ip->a, ip->a + 12, 4);
        memset(ip->a + 4, 0, 12);
        ip->v6 = 0;
    }
}

/* Parses an address (no port) of at most 63 characters. */
static int ip_parse_plain(wb_str_t s, ip_t *ip)
{
    char buf[64];
    if (s.len == 0 || s.len >= sizeof(buf))
        return -1;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    memset(ip, 0, sizeof(*ip));
    if (inet_pton(AF_INET, buf, ip->a) == 1)
        return 0;
    if (inet_pton(AF_INET6, buf, ip->a) == 1) {
        ip->v6 = 1;
        ip_unmap(ip);
        return 0;
    }
    return -1;
}

static int all_digits(wb_str_t s)
{
    if (s.len == 0)
        return 0;
    for (size_t i = 0; i < s.len; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return 0;
    return 1;
}

/* Parses an X-Forwarded-For hop: "1.2.3.4", "1.2.3.4:5678", "2001:db8::1",
 * "[2001:db8::1]" or "[2001:db8::1]:5678". */
static int ip_parse_hop(wb_str_t s, ip_t *ip)
{
    if (s.len > 0 && s.p[0] == '[') {
        const char *close = memchr(s.p, ']', s.len);
        if (close == NULL)
            return -1;
        wb_str_t rest = {close + 1, s.len - (size_t)(close + 1 - s.p)};
        if (rest.len > 0 && (rest.p[0] != ':' || !all_digits((wb_str_t){rest.p + 1, rest.len - 1})))
            return -1;
        if (ip_parse_plain((wb_str_t){s.p + 1, (size_t)(close - s.p - 1)}, ip) != 0 || !ip->v6)
            return -1;
        return 0;
    }
    if (ip_parse_plain(s, ip) == 0)
        return 0;
    /* IPv4 with a port: exactly one colon */
    const char *colon = memchr(s.p, ':', s.len);
    if (colon == NULL || memchr(colon + 1, ':', s.len - (size_t)(colon + 1 - s.p)) != NULL)
        return -1;
    if (!all_digits((wb_str_t){colon + 1, s.len - (size_t)(colon + 1 - s.p)}))
        return -1;
    if (ip_parse_plain((wb_str_t){s.p, (size_t)(colon - s.p)}, ip) != 0 || ip->v6)
        return -1;
    return 0;
}

static int ip_from_sockaddr(const struct sockaddr *sa, ip_t *ip)
{
    memset(ip, 0, sizeof(*ip));
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;
        memcpy(ip->a, &in4->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(ip->a, &in6->sin6_addr, 16);
        ip->v6 = 1;
        ip_unmap(ip);
        return 0;
    }
    return -1;
}

static int cidr_contains(const cidr_t *c, const ip_t *ip)
{
    if (c->ip.v6 != ip->v6)
        return 0;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->ip.a, ip->a, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (c->ip.a[full] & mask) == (ip->a[full] & mask);
}

static int cidrs_contain(const cidr_t *list, size_t n, const ip_t *ip)
{
    for (size_t i = 0; i < n; i++)
        if (cidr_contains(&list[i], ip))
            return 1;
    return 0;
}

/* Parses "a, b c" (commas or white space) into list; an empty value gives
 * an empty list. */
static int parse_cidrs(wb_str_t v, cidr_t *list, size_t *n, char *err, size_t errsz)
{
    cidr_t tmp[MAX_CIDRS];
    size_t cnt = 0, i = 0;

    while (i < v.len) {
        while (i < v.len && (v.p[i] == ',' || is_space(v.p[i])))
            i++;
        size_t start = i;
        while (i < v.len && v.p[i] != ',' && !is_space(v.p[i]))
            i++;
        if (i == start)
            break;
        wb_str_t item = {v.p + start, i - start};
        if (cnt == MAX_CIDRS)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "more than %d networks", MAX_CIDRS);
        const char *slash = memchr(item.p, '/', item.len);
        wb_str_t addr = item;
        cidr_t *c = &tmp[cnt];
        if (slash != NULL)
            addr.len = (size_t)(slash - item.p);
        if (ip_parse_plain(addr, &c->ip) != 0)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "'%.*s' is not an IP address or CIDR",
                           (int)item.len, item.p);
        unsigned maxbits = c->ip.v6 ? 128 : 32;
        c->bits = maxbits;
        if (slash != NULL) {
            wb_str_t b = {slash + 1, item.len - addr.len - 1};
            if (!all_digits(b) || b.len > 3)
                return wb_errf(err, errsz, WB_ERR_CONFIG, "bad prefix length in '%.*s'",
                               (int)item.len, item.p);
            unsigned bits = 0;
            for (size_t k = 0; k < b.len; k++)
                bits = bits * 10 + (unsigned)(b.p[k] - '0');
            /* an IPv4-mapped IPv6 network was unmapped to IPv4 above */
            if (c->ip.v6 == 0 && memchr(addr.p, ':', addr.len) != NULL) {
                if (bits < 96)
                    return wb_errf(err, errsz, WB_ERR_CONFIG,
                                   "'%.*s': write IPv4-mapped networks as IPv4", (int)item.len,
                                   item.p);
                bits -= 96;
            }
            if (bits > maxbits)
                return wb_errf(err, errsz, WB_ERR_CONFIG, "prefix length over %u in '%.*s'",
                               maxbits, (int)item.len, item.p);
            c->bits = bits;
        }
        for (unsigned bit = c->bits; bit < maxbits; bit++)
            if (c->ip.a[bit / 8] & (0x80 >> (bit % 8)))
                return wb_errf(err, errsz, WB_ERR_CONFIG,
                               "'%.*s' has address bits set after the prefix length", (int)item.len,
                               item.p);
        cnt++;
    }
    memcpy(list, tmp, cnt * sizeof(tmp[0]));
    *n = cnt;
    return WB_OK;
}

/* ---- configuration ---- */

static int parse_method(wb_str_t v, method_t *m)
{
    if (str_ieq(v, "none"))
        *m = M_NONE;
    else if (str_ieq(v, "header"))
        *m = M_HEADER;
    else if (str_ieq(v, "hmac"))
        *m = M_HMAC;
    else if (str_ieq(v, "standard-webhooks") || str_ieq(v, "standard_webhooks") ||
             str_ieq(v, "standardwebhooks"))
        *m = M_STANDARD;
    else if (str_ieq(v, "path"))
        *m = M_PATH;
    else if (str_ieq(v, "api-lookup") || str_ieq(v, "api_lookup") || str_ieq(v, "apilookup"))
        *m = M_LOOKUP;
    else
        return -1;
    return 0;
}

static int is_tchar(unsigned char c)
{
    return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Splits "header_2" into base "header" and index 1 (0-based); returns -1
 * on a bad index. No suffix is index 0. */
static int split_index(const char *name, char *base, size_t basesz, size_t *idx)
{
    size_t n = strlen(name), d = n;
    while (d > 0 && isdigit((unsigned char)name[d - 1]))
        d--;
    size_t b = d;
    *idx = 0;
    if (d < n) {
        if (n - d > 2)
            return -1;
        unsigned v = (unsigned)atoi(name + d);
        if (v < 1 || v > MAX_PAIRS)
            return -1;
        *idx = v - 1;
        if (b > 0 && name[b - 1] == '_')
            b--;
    }
    if (b >= basesz)
        return -1;
    memcpy(base, name, b);
    base[b] = '\0';
    return 0;
}

int wb_auth_conf_set(wb_auth_conf_t **acp, const char *key, const char *value, char *err,
                     size_t errsz)
{
    char name[64];
    size_t klen = key != NULL ? strlen(key) : 0;

    if (key == NULL || value == NULL)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "auth: missing key or value");
    if (klen >= sizeof(name) || klen < 4 || strncasecmp(key, "auth", 4) != 0 ||
        (klen > 4 && (klen == 5 || (key[4] != '.' && key[4] != '_'))))
        return wb_errf(err, errsz, WB_ERR_CONFIG, "not an authentication key");
    /* canonical form of what follows "auth.": lower case, '_' for '.' and '-' */
    size_t nl = 0;
    for (size_t i = 5; i < klen; i++) {
        char c = (char)tolower((unsigned char)key[i]);
        name[nl++] = (c == '.' || c == '-') ? '_' : c;
    }
    name[nl] = '\0';

    if (*acp == NULL) {
        if ((*acp = calloc(1, sizeof(**acp))) == NULL)
            return wb_errf(err, errsz, WB_ERR_NOMEM, "out of memory");
        (*acp)->tolerance_s = DEFAULT_TOLERANCE;
    }
    wb_auth_conf_t *ac = *acp;
    wb_str_t v = trim((wb_str_t){value, strlen(value)});

    if (klen == 4) {
        if (parse_method(v, &ac->method) != 0)
            return wb_errf(err, errsz, WB_ERR_CONFIG,
                           "auth: unknown method '%.40s' (none, header, hmac, standard-webhooks, "
                           "path, api-lookup)",
                           value);
        return WB_OK;
    }

    char base[32];
    size_t idx;
    if (split_index(name, base, sizeof(base), &idx) == 0) {
        if (strcmp(base, "secret") == 0 || strcmp(base, "secrets") == 0 ||
            strcmp(base, "token") == 0)
            return wb_errf(err, errsz, WB_ERR_CONFIG,
                           "secrets are never written in the configuration; name an "
                           "environment variable (auth.secret_env) or a file (auth.secret_file)");
        pair_t *pr = &ac->pairs[idx];
        if (strcmp(base, "header") == 0) {
            if (v.len > MAX_HEADER_NAME)
                return wb_errf(err, errsz, WB_ERR_CONFIG, "header name too long");
            for (size_t i = 0; i < v.len; i++)
                if (!is_tchar((unsigned char)v.p[i]))
                    return wb_errf(err, errsz, WB_ERR_CONFIG, "'%.*s' is not a header name",
                                   (int)v.len, v.p);
            return set_string(&pr->header, v, err, errsz);
        }
        if (strcmp(base, "secret_env") == 0) {
            if (v.len > MAX_ENV_NAME)
                return wb_errf(err, errsz, WB_ERR_CONFIG, "variable name too long");
            for (size_t i = 0; i < v.len; i++) {
                unsigned char c = (unsigned char)v.p[i];
                if (!(isalpha(c) || c == '_' || (i > 0 && isdigit(c))))
                    /* the value is not echoed: it may be a misplaced secret */
                    return wb_errf(err, errsz, WB_ERR_CONFIG,
                                   "not an environment variable name (the secret itself "
                                   "goes into that variable)");
            }
            return set_string(&pr->secret_env, v, err, errsz);
        }
        if (strcmp(base, "secret_file") == 0) {
            if (v.len > 4096)
                return wb_errf(err, errsz, WB_ERR_CONFIG, "path too long");
            return set_string(&pr->secret_file, v, err, errsz);
        }
    }
    if (strcmp(name, "encoding") == 0) {
        if (str_ieq(v, "hex"))
            ac->encoding = ENC_HEX;
        else if (str_ieq(v, "base64"))
            ac->encoding = ENC_BASE64;
        else
            return wb_errf(err, errsz, WB_ERR_CONFIG, "expected hex or base64");
        ac->encoding_set = 1;
        return WB_OK;
    }
    if (strcmp(name, "prefix") == 0) {
        if (v.len > MAX_PREFIX)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "longer than %d bytes", MAX_PREFIX);
        for (size_t i = 0; i < v.len; i++)
            if ((unsigned char)v.p[i] < 0x21 || (unsigned char)v.p[i] > 0x7e)
                return wb_errf(err, errsz, WB_ERR_CONFIG, "printable ASCII only");
        return set_string(&ac->prefix, v, err, errsz);
    }
    if (strcmp(name, "tolerance_s") == 0 || strcmp(name, "tolerance") == 0) {
        long t = 0;
        if (!all_digits(v) || v.len > 6 || (t = strtol(v.p, NULL, 10)) < 1 || t > MAX_TOLERANCE)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "expected seconds from 1 to %d",
                           MAX_TOLERANCE);
        ac->tolerance_s = t;
        ac->tolerance_set = 1;
        return WB_OK;
    }
    if (strcmp(name, "allow_cidrs") == 0)
        return parse_cidrs(v, ac->allow, &ac->nallow, err, errsz);
    if (wb_lookup_conf_key(name))
        return wb_lookup_conf_set(&ac->lookup, name, v, err, errsz);
    if (strcmp(name, "trusted_proxies") == 0)
        return parse_cidrs(v, ac->proxies, &ac->nproxies, err, errsz);
    return wb_errf(err, errsz, WB_ERR_CONFIG,
                   "unknown key (the auth.* keys are listed in deploy/README.md, Authentication: "
                   "auth.header, auth.secret_env, auth.secret_file, auth.url, ...)");
}

/* Adds one secret to pr, checking it for the method. what names its
 * source for the reason, never the secret itself. */
static int add_secret(wb_auth_conf_t *ac, pair_t *pr, wb_str_t s, const char *what, char *err,
                      size_t errsz)
{
    unsigned char *p;
    size_t len;

    if (pr->nsecrets == MAX_SECRETS)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "%s: more than %d secrets", what, MAX_SECRETS);
    if (s.len > MAX_SECRET_LEN)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "%s: a secret is longer than %d bytes", what,
                       MAX_SECRET_LEN);
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return wb_errf(err, errsz, WB_ERR_CONFIG, "%s: a secret holds a control character",
                           what);
    }
    if (ac->method == M_PATH) {
        if (s.len < MIN_PATH_TOKEN || s.len > MAX_PATH_TOKEN)
            return wb_errf(err, errsz, WB_ERR_CONFIG,
                           "%s: a path token must have %d to %d characters", what, MIN_PATH_TOKEN,
                           MAX_PATH_TOKEN);
        for (size_t i = 0; i < s.len; i++) {
            unsigned char c = (unsigned char)s.p[i];
            if (!isalnum(c) && c != '-' && c != '.' && c != '_' && c != '~')
                return wb_errf(err, errsz, WB_ERR_CONFIG,
                               "%s: a path token may hold only A-Z a-z 0-9 - . _ ~", what);
        }
    }
    if (ac->method == M_STANDARD) {
        wb_str_t b = s;
        if (b.len > 6 && memcmp(b.p, "whsec_", 6) == 0) {
            b.p += 6;
            b.len -= 6;
        }
        unsigned char key[MAX_SECRET_LEN];
        long n = b64_decode(b, key, sizeof(key));
        if (n <= 0) {
            OPENSSL_cleanse(key, sizeof(key));
            return wb_errf(err, errsz, WB_ERR_CONFIG,
                           "%s: a secret is not of the form whsec_<base64>", what);
        }
        len = (size_t)n;
        if ((p = malloc(len)) == NULL) {
            OPENSSL_cleanse(key, sizeof(key));
            return wb_errf(err, errsz, WB_ERR_NOMEM, "out of memory");
        }
        memcpy(p, key, len);
        OPENSSL_cleanse(key, sizeof(key));
    } else {
        if (s.len == 0)
            return WB_OK;
        len = s.len;
        if ((p = malloc(len)) == NULL)
            return wb_errf(err, errsz, WB_ERR_NOMEM, "out of memory");
        memcpy(p, s.p, len);
    }
    pr->secrets[pr->nsecrets].p = p;
    pr->secrets[pr->nsecrets].len = len;
    pr->nsecrets++;
    return WB_OK;
}

static int load_env(wb_auth_conf_t *ac, pair_t *pr, const char *key, char *err, size_t errsz)
{
    char what[MAX_ENV_NAME + 64];
    const char *val = getenv(pr->secret_env);
    size_t before = pr->nsecrets;

    snprintf(what, sizeof(what), "%s (environment variable %s)", key, pr->secret_env);
    if (val == NULL)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "%s is not set", what);
    size_t n = strlen(val), i = 0;
    while (i < n) {
        while (i < n && (val[i] == ',' || is_space(val[i])))
            i++;
        size_t start = i;
        while (i < n && val[i] != ',' && !is_space(val[i]))
            i++;
        if (i > start) {
            int r = add_secret(ac, pr, (wb_str_t){val + start, i - start}, what, err, errsz);
            if (r != WB_OK)
                return r;
        }
    }
    if (pr->nsecrets == before)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "%s is empty", what);
    return WB_OK;
}

static int load_file(wb_auth_conf_t *ac, pair_t *pr, const char *key, char *err, size_t errsz)
{
    char what[4096 + 64];
    char *buf = NULL;
    size_t len = 0, before = pr->nsecrets;
    int r = WB_OK, fd;
    struct stat st;

    snprintf(what, sizeof(what), "%s (%s)", key, pr->secret_file);
    if ((fd = open(pr->secret_file, O_RDONLY | O_CLOEXEC)) < 0)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "%s: cannot open: %s", what, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        r = wb_errf(err, errsz, WB_ERR_CONFIG, "%s: not a regular file", what);
        goto done;
    }
    if ((buf = malloc(MAX_SECRET_FILE + 1)) == NULL) {
        r = wb_errf(err, errsz, WB_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, MAX_SECRET_FILE + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = wb_errf(err, errsz, WB_ERR_CONFIG, "%s: cannot read: %s", what, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > MAX_SECRET_FILE) {
            r = wb_errf(err, errsz, WB_ERR_CONFIG, "%s: larger than %d bytes", what,
                        MAX_SECRET_FILE);
            goto done;
        }
    }
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t end = nl != NULL ? (size_t)(nl - buf) : len;
        wb_str_t line = trim((wb_str_t){buf + i, end - i});
        if (line.len > 0 && (r = add_secret(ac, pr, line, what, err, errsz)) != WB_OK)
            goto done;
        i = end + 1;
    }
    if (pr->nsecrets == before)
        r = wb_errf(err, errsz, WB_ERR_CONFIG, "%s: holds no secret", what);
done:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    close(fd);
    return r;
}

static void key_name(char *out, size_t outsz, const char *base, size_t idx)
{
    if (idx == 0)
        snprintf(out, outsz, "auth.%s", base);
    else
        snprintf(out, outsz, "auth.%s_%zu", base, idx + 1);
}

/* Checks which keys the method uses; the first key set that it does not
 * use is an error, so that a typo in the method is not silently weaker. */
static int check_keys(const wb_auth_conf_t *ac, char *err, size_t errsz)
{
    const char *m = method_names[ac->method];
    char k[64];
    int wants_header = ac->method == M_HEADER || ac->method == M_HMAC || ac->method == M_LOOKUP;
    int wants_secret = ac->method >= M_HEADER;
    size_t npairs = ac->method == M_HEADER ? MAX_PAIRS : 1;
    const char *lk = wb_lookup_conf_first_key(ac->lookup);

    for (size_t i = 0; i < MAX_PAIRS; i++) {
        const pair_t *pr = &ac->pairs[i];
        const char *bad = NULL;
        if (pr->header != NULL && (!wants_header || i >= npairs))
            bad = "header";
        else if (pr->secret_env != NULL && (!wants_secret || i >= npairs))
            bad = "secret_env";
        else if (pr->secret_file != NULL && (!wants_secret || i >= npairs))
            bad = "secret_file";
        if (bad != NULL) {
            key_name(k, sizeof(k), bad, i);
            return wb_errf(err, errsz, WB_ERR_CONFIG, "%s does not apply to auth = %s", k, m);
        }
    }
    if (ac->encoding_set && ac->method != M_HMAC)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.encoding does not apply to auth = %s", m);
    if (ac->prefix != NULL && ac->method != M_HMAC)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.prefix does not apply to auth = %s", m);
    if (ac->tolerance_set && ac->method != M_STANDARD)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.tolerance_s does not apply to auth = %s",
                       m);
    if (lk != NULL && ac->method != M_LOOKUP)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.%s does not apply to auth = %s", lk, m);
    if (ac->nproxies > 0 && ac->nallow == 0)
        return wb_errf(err, errsz, WB_ERR_CONFIG, "auth.trusted_proxies needs auth.allow_cidrs");
    if (ac->method == M_LOOKUP) /* the credential is optional: a sidecar may need none */
        return ac->pairs[0].header != NULL && !pair_has_source(&ac->pairs[0])
                   ? wb_errf(err, errsz, WB_ERR_CONFIG,
                             "auth.header needs auth.secret_env or auth.secret_file")
                   : WB_OK;
    if (!wants_secret)
        return WB_OK;
    for (size_t i = 0; i < npairs; i++) {
        const pair_t *pr = &ac->pairs[i];
        if (i > 0 && !pair_is_set(pr))
            continue;
        if (wants_header && pr->header == NULL) {
            key_name(k, sizeof(k), "header", i);
            return wb_errf(err, errsz, WB_ERR_CONFIG, "auth = %s needs %s", m, k);
        }
        if (!pair_has_source(pr)) {
            char k2[64];
            key_name(k, sizeof(k), "secret_env", i);
            key_name(k2, sizeof(k2), "secret_file", i);
            return wb_errf(err, errsz, WB_ERR_CONFIG, "auth = %s needs %s or %s", m, k, k2);
        }
    }
    return WB_OK;
}

static void env_name(char *out, size_t outsz, const char *provider)
{
    size_t n = 0;
    for (const char *p = provider; *p != '\0' && n + 1 < outsz; p++)
        out[n++] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    out[n] = '\0';
}

int wb_auth_conf_finish(wb_auth_conf_t **acp, const char *provider, int real_brokers, char *err,
                        size_t errsz)
{
    wb_auth_conf_t *ac = *acp;
    char k[64];
    int r;

    /* reasons name keys, not the provider: the caller adds the location */
    if (ac == NULL || ac->method == M_UNSET) {
        int keys = 0;
        for (size_t i = 0; ac != NULL && i < MAX_PAIRS; i++)
            keys |= pair_is_set(&ac->pairs[i]);
        if (ac != NULL && (keys || ac->encoding_set || ac->prefix != NULL || ac->tolerance_set ||
                           ac->lookup != NULL))
            return wb_errf(err, errsz, WB_ERR_CONFIG,
                           "auth.* keys are set but auth (the method) is not");
        if (real_brokers) {
            char up[64];
            env_name(up, sizeof(up), provider != NULL ? provider : "NAME");
            return wb_errf(err, errsz, WB_ERR_CONFIG,
                           "no method, and real brokers are configured: choose one (header, hmac, "
                           "standard-webhooks, path, api-lookup) or auth = none "
                           "(BRIDGE_PROVIDER_%s_AUTH=none)",
                           up);
        }
        if (ac != NULL && (r = check_keys(ac, err, errsz)) != WB_OK)
            return r;
        if (ac != NULL)
            ac->finished = 1;
        return WB_OK;
    }
    if ((r = check_keys(ac, err, errsz)) != WB_OK)
        return r;

    for (size_t i = 0; i < MAX_PAIRS; i++) {
        pair_t *pr = &ac->pairs[i];
        pair_clear_secrets(pr);
        if (pr->secret_env != NULL) {
            key_name(k, sizeof(k), "secret_env", i);
            if ((r = load_env(ac, pr, k, err, errsz)) != WB_OK)
                goto fail;
        }
        if (pr->secret_file != NULL) {
            key_name(k, sizeof(k), "secret_file", i);
            if ((r = load_file(ac, pr, k, err, errsz)) != WB_OK)
                goto fail;
        }
    }
    if ((ac->method == M_HMAC || ac->method == M_STANDARD) && ac->mac == NULL &&
        (ac->mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL)) == NULL) {
        r = wb_errf(err, errsz, WB_ERR_CONFIG, "OpenSSL offers no HMAC");
        goto fail;
    }
    if (ac->method == M_LOOKUP) {
        const pair_t *pr = &ac->pairs[0];
        if ((r = wb_lookup_conf_finish(
                 ac->lookup, pr->header != NULL ? pr->header : "Authorization",
                 pr->nsecrets > 0 ? pr->secrets[0].p : NULL,
                 pr->nsecrets > 0 ? pr->secrets[0].len : 0, err, errsz)) != WB_OK)
            goto fail;
    }
    ac->finished = 1;
    return WB_OK;

fail:
    for (size_t i = 0; i < MAX_PAIRS; i++)
        pair_clear_secrets(&ac->pairs[i]);
    return r;
}

void wb_auth_conf_free(wb_auth_conf_t *ac)
{
    if (ac == NULL)
        return;
    for (size_t i = 0; i < MAX_PAIRS; i++) {
        pair_clear_secrets(&ac->pairs[i]);
        free(ac->pairs[i].header);
        free(ac->pairs[i].secret_env);
        free(ac->pairs[i].secret_file);
    }
    free(ac->prefix);
    EVP_MAC_free(ac->mac);
    wb_lookup_conf_free(ac->lookup);
    free(ac);
}

const char *wb_auth_method_name(const wb_auth_conf_t *ac)
{
    return ac == NULL ? "none" : method_names[ac->method];
}

int wb_auth_is_none(const wb_auth_conf_t *ac)
{
    return ac == NULL || ac->method == M_UNSET || ac->method == M_NONE;
}

const wb_lookup_conf_t *wb_auth_lookup(const wb_auth_conf_t *ac)
{
    return ac != NULL && ac->method == M_LOOKUP && ac->finished ? ac->lookup : NULL;
}

int wb_auth_uses_path(const wb_auth_conf_t *ac)
{
    return ac != NULL && ac->method == M_PATH;
}

int wb_auth_is_secret_header(const wb_auth_conf_t *ac, wb_str_t name)
{
    if (ac == NULL)
        return 0;
    if (ac->method == M_STANDARD)
        return str_ieq(name, "webhook-signature");
    if (ac->method != M_HEADER && ac->method != M_HMAC)
        return 0;
    for (size_t i = 0; i < MAX_PAIRS; i++)
        if (ac->pairs[i].header != NULL && str_ieq(name, ac->pairs[i].header))
            return 1;
    return 0;
}

/* ---- verification ---- */

static int deny(const char **code, const char *c, char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int deny(const char **code, const char *c, char *err, size_t errsz, const char *fmt, ...)
{
    if (code != NULL)
        *code = c;
    if (err != NULL && errsz > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return WB_ERR_AUTH;
}

static int get_header(const wb_auth_req_t *in, const char *name, size_t idx, wb_str_t *v)
{
    if (in->header == NULL)
        return 0;
    return in->header(in->header_ctx, name, idx, v);
}

/* Fetches the single header called name, trimmed; a repeated one is
 * refused rather than guessing which copy counts. */
static int get_one(const wb_auth_req_t *in, const char *name, size_t max, wb_str_t *v,
                   const char **code, char *err, size_t errsz)
{
    wb_str_t extra;
    if (!get_header(in, name, 0, v))
        return deny(code, WB_AUTH_MISSING, err, errsz, "header %s is missing", name);
    if (get_header(in, name, 1, &extra))
        return deny(code, WB_AUTH_INVALID, err, errsz, "header %s is repeated", name);
    while (v->len > 0 && is_ows(v->p[0])) {
        v->p++;
        v->len--;
    }
    while (v->len > 0 && is_ows(v->p[v->len - 1]))
        v->len--;
    if (v->len == 0)
        return deny(code, WB_AUTH_MISSING, err, errsz, "header %s is empty", name);
    if (v->len > max)
        return deny(code, WB_AUTH_INVALID, err, errsz, "header %s is longer than %zu bytes", name,
                    max);
    return WB_OK;
}

/* 1 if v equals one of the secrets. Every secret is compared, so the time
 * taken does not depend on which one matched. */
static int match_secret(const pair_t *pr, wb_str_t v)
{
    int ok = 0;
    for (size_t i = 0; i < pr->nsecrets; i++) {
        const secret_t *s = &pr->secrets[i];
        ok |= s->len == v.len && CRYPTO_memcmp(s->p, v.p, v.len) == 0;
    }
    return ok;
}

static int hmac_sha256(EVP_MAC *mac, const secret_t *key, const wb_str_t *parts, size_t nparts,
                       unsigned char out[MAC_LEN])
{
    OSSL_PARAM params[2];
    size_t outl = 0;
    int ok = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);

    if (ctx == NULL)
        return -1;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(ctx, key->p, key->len, params) != 1)
        goto done;
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].len > 0 &&
            EVP_MAC_update(ctx, (const unsigned char *)parts[i].p, parts[i].len) != 1)
            goto done;
    ok = EVP_MAC_final(ctx, out, &outl, MAC_LEN) == 1 && outl == MAC_LEN;
done:
    EVP_MAC_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* Computes the MAC of parts under every secret of pr and compares each
 * with each of the nsigs signatures. Returns 1 on a match, 0 on none, -1
 * when OpenSSL failed. */
static int match_mac(const wb_auth_conf_t *ac, const pair_t *pr, const wb_str_t *parts,
                     size_t nparts, unsigned char (*sigs)[MAC_LEN], size_t nsigs)
{
    unsigned char mac[MAC_LEN];
    int ok = 0;
    for (size_t i = 0; i < pr->nsecrets; i++) {
        if (hmac_sha256(ac->mac, &pr->secrets[i], parts, nparts, mac) != 0) {
            OPENSSL_cleanse(mac, sizeof(mac));
            return -1;
        }
        for (size_t j = 0; j < nsigs; j++)
            ok |= CRYPTO_memcmp(mac, sigs[j], MAC_LEN) == 0;
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok;
}

static int internal(const char **code, char *err, size_t errsz)
{
    if (code != NULL)
        *code = WB_AUTH_INTERNAL;
    return wb_errf(err, errsz, WB_ERR_NOMEM, "could not compute the signature");
}

static int verify_header(const wb_auth_conf_t *ac, const wb_auth_req_t *in, const char **code,
                         char *err, size_t errsz)
{
    for (size_t i = 0; i < MAX_PAIRS; i++) {
        const pair_t *pr = &ac->pairs[i];
        wb_str_t v;
        if (pr->header == NULL)
            continue;
        int r = get_one(in, pr->header, MAX_VALUE, &v, code, err, errsz);
        if (r != WB_OK)
            return r;
        if (!match_secret(pr, v))
            return deny(code, WB_AUTH_INVALID, err, errsz,
                        "header %s does not hold an accepted value", pr->header);
    }
    return WB_OK;
}

static int verify_hmac(const wb_auth_conf_t *ac, const wb_auth_req_t *in, const char **code,
                       char *err, size_t errsz)
{
    const pair_t *pr = &ac->pairs[0];
    unsigned char sig[1][MAC_LEN];
    unsigned char raw[MAX_VALUE];
    wb_str_t v;
    long n;
    int r = get_one(in, pr->header, MAX_VALUE, &v, code, err, errsz);

    if (r != WB_OK)
        return r;
    if (ac->prefix != NULL) {
        size_t pl = strlen(ac->prefix);
        if (v.len < pl || memcmp(v.p, ac->prefix, pl) != 0)
            return deny(code, WB_AUTH_INVALID, err, errsz, "header %s does not start with '%s'",
                        pr->header, ac->prefix);
        v.p += pl;
        v.len -= pl;
    }
    if (ac->encoding == ENC_HEX)
        n = hex_decode(v, raw, sizeof(raw));
    else
        n = b64_decode(v, raw, sizeof(raw));
    if (n != MAC_LEN)
        return deny(code, WB_AUTH_INVALID, err, errsz,
                    "header %s is not a %s HMAC-SHA256 signature", pr->header,
                    ac->encoding == ENC_HEX ? "hex" : "base64");
    memcpy(sig[0], raw, MAC_LEN);
    wb_str_t part = in->body;
    r = match_mac(ac, pr, &part, 1, sig, 1);
    if (r < 0)
        return internal(code, err, errsz);
    if (r == 0)
        return deny(code, WB_AUTH_INVALID, err, errsz,
                    "header %s: the signature does not match the body", pr->header);
    return WB_OK;
}

static int verify_standard(const wb_auth_conf_t *ac, const wb_auth_req_t *in, const char **code,
                           char *err, size_t errsz)
{
    static const char H_ID[] = "webhook-id", H_TS[] = "webhook-timestamp",
                      H_SIG[] = "webhook-signature";
    unsigned char sigs[MAX_SIGS][MAC_LEN];
    unsigned char raw[MAX_VALUE];
    size_t nsigs = 0, nentries = 0, nv1 = 0;
    wb_str_t id, ts, sv;
    int r;

    if ((r = get_one(in, H_ID, MAX_WEBHOOK_ID, &id, code, err, errsz)) != WB_OK ||
        (r = get_one(in, H_TS, 20, &ts, code, err, errsz)) != WB_OK ||
        (r = get_one(in, H_SIG, MAX_VALUE, &sv, code, err, errsz)) != WB_OK)
        return r;

    /* unix seconds; 12 digits reach year 33658 and cannot overflow */
    if (!all_digits(ts) || ts.len > 12)
        return deny(code, WB_AUTH_INVALID, err, errsz, "header %s is not unix seconds", H_TS);
    int64_t t = 0;
    for (size_t i = 0; i < ts.len; i++)
        t = t * 10 + (ts.p[i] - '0');
    if (in->now - t > ac->tolerance_s)
        return deny(code, WB_AUTH_TIMESTAMP, err, errsz,
                    "header %s is %lld s old, more than the %ld s allowed", H_TS,
                    (long long)(in->now - t), ac->tolerance_s);
    if (t - in->now > ac->tolerance_s)
        return deny(code, WB_AUTH_TIMESTAMP, err, errsz,
                    "header %s is %lld s in the future, more than the %ld s allowed", H_TS,
                    (long long)(t - in->now), ac->tolerance_s);

    /* space-separated "version,base64" entries; only v1 counts */
    for (size_t i = 0; i < sv.len;) {
        while (i < sv.len && sv.p[i] == ' ')
            i++;
        size_t start = i;
        while (i < sv.len && sv.p[i] != ' ')
            i++;
        if (i == start)
            break;
        if (++nentries > MAX_SIGS)
            return deny(code, WB_AUTH_INVALID, err, errsz, "header %s holds more than %d entries",
                        H_SIG, MAX_SIGS);
        wb_str_t e = {sv.p + start, i - start};
        if (e.len < 3 || memcmp(e.p, "v1,", 3) != 0)
            continue;
        nv1++;
        long n = b64_decode((wb_str_t){e.p + 3, e.len - 3}, raw, sizeof(raw));
        if (n == MAC_LEN)
            memcpy(sigs[nsigs++], raw, MAC_LEN);
    }
    if (nv1 == 0)
        return deny(code, WB_AUTH_INVALID, err, errsz, "header %s holds no v1 signature", H_SIG);

    wb_str_t parts[5] = {id, WB_STR("."), ts, WB_STR("."), in->body};
    r = nsigs > 0 ? match_mac(ac, &ac->pairs[0], parts, 5, sigs, nsigs) : 0;
    if (r < 0)
        return internal(code, err, errsz);
    if (r == 0)
        return deny(code, WB_AUTH_INVALID, err, errsz, "no v1 signature in %s matches the message",
                    H_SIG);
    return WB_OK;
}

static int verify_path(const wb_auth_conf_t *ac, const wb_auth_req_t *in, const char **code,
                       char *err, size_t errsz)
{
    if (in->path_token.len == 0)
        return deny(code, WB_AUTH_MISSING, err, errsz, "the secret path segment is missing");
    if (!match_secret(&ac->pairs[0], in->path_token))
        return deny(code, WB_AUTH_INVALID, err, errsz, "the secret path segment is wrong");
    return WB_OK;
}

/* Finds the source address: the peer, or, when the peer is a trusted
 * proxy, the rightmost X-Forwarded-For hop that is not a trusted proxy
 * (hops left of it could be written by anyone). */
static int source_ip(const wb_auth_conf_t *ac, const wb_auth_req_t *in, ip_t *src,
                     const char **code, char *err, size_t errsz)
{
    static const char XFF[] = "x-forwarded-for";
    wb_str_t vals[MAX_XFF_HEADERS];
    size_t nvals = 0, hops = 0;

    if (ip_from_sockaddr(in->peer, src) != 0)
        return deny(code, WB_AUTH_FORBIDDEN_NETWORK, err, errsz, "the source address is unknown");
    if (!cidrs_contain(ac->proxies, ac->nproxies, src))
        return WB_OK;
    for (wb_str_t v; get_header(in, XFF, nvals, &v);) {
        if (nvals == MAX_XFF_HEADERS)
            return deny(code, WB_AUTH_FORBIDDEN_NETWORK, err, errsz,
                        "more than %d X-Forwarded-For headers", MAX_XFF_HEADERS);
        vals[nvals++] = v;
    }
    for (size_t h = nvals; h-- > 0;) {
        wb_str_t v = vals[h];
        if (v.len > MAX_VALUE)
            return deny(code, WB_AUTH_FORBIDDEN_NETWORK, err, errsz,
                        "X-Forwarded-For is longer than %d bytes", MAX_VALUE);
        size_t end = v.len;
        for (;;) {
            size_t start = end;
            while (start > 0 && v.p[start - 1] != ',')
                start--;
            wb_str_t hop = trim((wb_str_t){v.p + start, end - start});
            ip_t ip;
            if (++hops > MAX_XFF_HOPS)
                return deny(code, WB_AUTH_FORBIDDEN_NETWORK, err, errsz,
                            "X-Forwarded-For holds more than %d hops", MAX_XFF_HOPS);
            if (ip_parse_hop(hop, &ip) != 0)
                return deny(code, WB_AUTH_FORBIDDEN_NETWORK, err, errsz,
                            "X-Forwarded-For holds '%.*s', not an IP address",
                            (int)(hop.len > 64 ? 64 : hop.len), hop.p);
            *src = ip;
            if (!cidrs_contain(ac->proxies, ac->nproxies, &ip))
                return WB_OK;
            if (start == 0)
                break;
            end = start - 1;
        }
    }
    return WB_OK; /* every hop is a trusted proxy: the leftmost is the source */
}

static void ip_format(const ip_t *ip, char *out, size_t outsz)
{
    if (inet_ntop(ip->v6 ? AF_INET6 : AF_INET, ip->a, out, (socklen_t)outsz) == NULL)
        snprintf(out, outsz, "?");
}

int wb_auth_verify(const wb_auth_conf_t *ac, const wb_auth_req_t *in, const char **code, char *err,
                   size_t errsz)
{
    if (code != NULL)
        *code = NULL;
    if (ac == NULL)
        return WB_OK;
    if (!ac->finished) {
        if (code != NULL)
            *code = WB_AUTH_INTERNAL;
        return wb_errf(err, errsz, WB_ERR_CONFIG, "authentication is not configured");
    }
    if (ac->nallow > 0) {
        ip_t src;
        int r = source_ip(ac, in, &src, code, err, errsz);
        if (r != WB_OK)
            return r;
        if (!cidrs_contain(ac->allow, ac->nallow, &src)) {
            char buf[INET6_ADDRSTRLEN];
            ip_format(&src, buf, sizeof(buf));
            return deny(code, WB_AUTH_FORBIDDEN_NETWORK, err, errsz,
                        "source %s is not in auth.allow_cidrs", buf);
        }
    }
    switch (ac->method) {
    case M_UNSET:
    case M_NONE:
        return WB_OK;
    case M_HEADER:
        return verify_header(ac, in, code, err, errsz);
    case M_HMAC:
        return verify_hmac(ac, in, code, err, errsz);
    case M_STANDARD:
        return verify_standard(ac, in, code, err, errsz);
    case M_PATH:
        return verify_path(ac, in, code, err, errsz);
    case M_LOOKUP: /* the provider's API decides (wb_auth_lookup, ingest.c) */
        return WB_OK;
    }
    return deny(code, WB_AUTH_INVALID, err, errsz, "unknown method");
}
