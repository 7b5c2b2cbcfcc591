/* fuzz_auth.c - libFuzzer target for auth.c.
 * One input is a provider's authentication settings (method, secret,
 * auth.prefix, auth.encoding, auth.allow_cidrs, auth.trusted_proxies,
 * auth.tolerance_s) and a request (headers, body, path token, peer).
 * Checks, for any input: configuring and verifying never crash and answer
 * one of their codes; a refusal's reason holds no secret.
 * And a differential check against OpenSSL called here: with a secret this
 * harness makes from the input, a credential it computes itself (HMAC-SHA256
 * of the body, Standard Webhooks' "id.timestamp.body", the token, the path
 * segment) is accepted, and the same with one byte flipped (in the MAC, in
 * the body, in the token) is refused.
 *
 * Input: [method][flags][flip position][flip mask] then NUL-separated
 * fields: secret, prefix, allow_cidrs, trusted_proxies, tolerance_s, peer
 * address, path token, webhook-id, headers ("name: value" lines); the rest
 * is the body. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "fuzz_common.h"

#define MAX_HDRS 32
#define NOW 1700000000
#define SECRET_VAR "WBFZ_SECRET"

enum { F_BASE64 = 1, F_PREFIX = 2, F_ALLOW = 4, F_PROXIES = 8, F_PEER = 16, F_GENERATED = 32,
       F_TOLERANCE = 64, F_EXTRA = 128 };

static const char *const methods[] = {"none", "header", "hmac", "standard-webhooks", "path"};

typedef struct {
    wb_str_t name, value;
} hdr_t;

typedef struct {
    hdr_t h[MAX_HDRS + 4];
    size_t n;
} hdrs_t;

static int get_header(void *ctx, const char *name, size_t idx, wb_str_t *value)
{
    const hdrs_t *hs = ctx;
    size_t nl = strlen(name);
    for (size_t i = 0; i < hs->n; i++) {
        if (hs->h[i].name.len != nl || strncasecmp(hs->h[i].name.p, name, nl) != 0)
            continue;
        if (idx-- == 0) {
            *value = hs->h[i].value;
            return 1;
        }
    }
    return 0;
}

static void add_header(hdrs_t *hs, const char *name, const char *value, size_t len)
{
    CHECK(hs->n < WB_ARRAY_SIZE(hs->h));
    hs->h[hs->n].name = (wb_str_t){name, strlen(name)};
    hs->h[hs->n].value = (wb_str_t){value, len};
    hs->n++;
}

/* "name: value" lines; a line without a colon is a name with an empty value. */
static void parse_headers(wb_str_t s, hdrs_t *hs)
{
    size_t i = 0;
    while (i < s.len && hs->n < MAX_HDRS) {
        const char *nl = memchr(s.p + i, '\n', s.len - i);
        size_t end = nl != NULL ? (size_t)(nl - s.p) : s.len;
        const char *colon = memchr(s.p + i, ':', end - i);
        size_t ne = colon != NULL ? (size_t)(colon - s.p) : end;
        size_t vs = colon != NULL ? ne + 1 : end;
        hs->h[hs->n].name = (wb_str_t){s.p + i, ne - i};
        hs->h[hs->n].value = (wb_str_t){s.p + vs, end - vs};
        hs->n++;
        i = end + 1;
    }
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* What auth.c makes of a value it trims. */
static wb_str_t trim(wb_str_t s)
{
    while (s.len > 0 && is_space(s.p[0]))
        s.p++, s.len--;
    while (s.len > 0 && is_space(s.p[s.len - 1]))
        s.len--;
    return s;
}

static int contains(wb_str_t hay, const char *needle, size_t n)
{
    if (n == 0 || hay.len < n)
        return 0;
    for (size_t i = 0; i + n <= hay.len; i++)
        if (memcmp(hay.p + i, needle, n) == 0)
            return 1;
    return 0;
}

static int has_high_byte(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 0x80)
            return 1;
    return 0;
}

static size_t hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    return 2 * n;
}

static size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* The secret this harness knows, made from the input's bytes so that the
 * method accepts it: printable without ',' (header, hmac), A-Z a-z 0-9
 * -._~ and 16..256 long (path), whsec_<base64> of the bytes (standard). */
typedef struct {
    char text[1100]; /* what goes into the environment */
    unsigned char key[1100];
    size_t keylen; /* the HMAC key, or the token */
} secret_t;

static void make_secret(int method, wb_str_t in, int whsec_prefix, secret_t *s)
{
    static const char path_chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    size_t n = in.len;
    if (method == 3) {
        if (n > 700)
            n = 700;
        if (n == 0)
            in = (wb_str_t){"k", 1}, n = 1;
        memcpy(s->key, in.p, n);
        s->keylen = n;
        size_t off = whsec_prefix ? 6 : 0;
        memcpy(s->text, "whsec_", off);
        s->text[off + b64_encode(s->key, n, s->text + off)] = '\0';
        return;
    }
    if (method == 4) {
        if (n > 256)
            n = 256;
        size_t len = n < 16 ? 16 : n;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = n > 0 ? (unsigned char)in.p[i % n] : 'a';
            s->key[i] = (unsigned char)path_chars[(c + i / (n > 0 ? n : 1)) % 66];
        }
        s->keylen = len;
    } else {
        if (n > 1024)
            n = 1024;
        if (n == 0)
            in = (wb_str_t){"k", 1}, n = 1;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)in.p[i];
            if (c <= 0x20 || c == 0x7f || c == ',')
                c = (unsigned char)('a' + c % 26);
            s->key[i] = c;
        }
        s->keylen = n;
    }
    memcpy(s->text, s->key, s->keylen);
    s->text[s->keylen] = '\0';
}

static int set(wb_auth_conf_t **ac, const char *key, wb_str_t v)
{
    char err[256];
    char *c = wb_fz_cstr(v, 8192);
    int r = wb_auth_conf_set(ac, key, c, err, sizeof(err));
    CHECK(r == WB_OK || r == WB_ERR_CONFIG);
    free(c);
    return r;
}

static void set_peer(wb_str_t s, struct sockaddr_storage *ss, int *has)
{
    char buf[64];
    size_t n = s.len < sizeof(buf) - 1 ? s.len : sizeof(buf) - 1;
    memcpy(buf, s.p, n);
    buf[n] = '\0';
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    *has = 1;
    if (inet_pton(AF_INET, buf, &in4->sin_addr) == 1)
        in4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1)
        in6->sin6_family = AF_INET6;
    else if (n == 0)
        *has = 0;
    else
        ss->ss_family = AF_UNIX; /* neither: the source is unknown */
}

/* Verifies and checks what any answer must be; returns the result. */
static int verify(const wb_auth_conf_t *ac, const wb_auth_req_t *req, const secret_t *sec,
                  int secret_private, const char **code)
{
    char err[512];
    memset(err, 'x', sizeof(err));
    int r = wb_auth_verify(ac, req, code, err, sizeof(err));
    CHECK(r == WB_OK || r == WB_ERR_AUTH);
    if (r == WB_OK)
        return r;
    CHECK(*code != NULL);
    CHECK(strcmp(*code, WB_AUTH_MISSING) == 0 || strcmp(*code, WB_AUTH_INVALID) == 0 ||
          strcmp(*code, WB_AUTH_TIMESTAMP) == 0 || strcmp(*code, WB_AUTH_FORBIDDEN_NETWORK) == 0);
    CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (secret_private)
        CHECK(!contains((wb_str_t){err, strlen(err)}, (const char *)sec->key, sec->keylen));
    return r;
}

static int is_forbidden(int r, const char *code)
{
    return r == WB_ERR_AUTH && strcmp(code, WB_AUTH_FORBIDDEN_NETWORK) == 0;
}

/* A request carrying only what the harness computed (and the input's
 * X-Forwarded-For, which the network check reads). */
typedef struct {
    hdrs_t hs;
    char sig[2][2048];
    char ts[32];
    long delta; /* webhook-timestamp - now */
    char id[300];
    wb_auth_req_t req;
} good_t;

static void good_init(good_t *g, const hdrs_t *in, const wb_auth_req_t *base)
{
    memset(g, 0, sizeof(*g));
    for (size_t i = 0; i < in->n; i++)
        if (in->h[i].name.len == 15 && strncasecmp(in->h[i].name.p, "x-forwarded-for", 15) == 0)
            add_header(&g->hs, "X-Forwarded-For", in->h[i].value.p, in->h[i].value.len);
    g->req = *base;
    g->req.header_ctx = &g->hs;
    g->req.path_token = (wb_str_t){"", 0};
}

/* HMAC-SHA256 through OpenSSL's one-shot HMAC() (auth.c uses EVP_MAC) over
 * the parts laid end to end. */
static void hmac(const secret_t *sec, const wb_str_t *parts, size_t n, unsigned char mac[32])
{
    static unsigned char msg[(1 << 16) + 1024];
    unsigned int len = 0;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(off + parts[i].len <= sizeof(msg));
        memcpy(msg + off, parts[i].p, parts[i].len);
        off += parts[i].len;
    }
    CHECK(HMAC(EVP_sha256(), sec->key, (int)sec->keylen, msg, off, mac, &len) != NULL);
    CHECK(len == 32);
}

/* Writes the credential of method into g (flipped: one byte of the MAC or
 * token xor mask, at pos). */
static void credential(good_t *g, int method, const secret_t *sec, int base64, wb_str_t prefix,
                       wb_str_t id, int extra, size_t pos, unsigned mask, int flip)
{
    unsigned char mac[32];
    size_t n = 0;
    if (method == 1 || method == 4) {
        memcpy(g->sig[0], sec->key, sec->keylen);
        if (flip)
            g->sig[0][pos % sec->keylen] ^= (char)mask;
        if (method == 4) {
            g->req.path_token = (wb_str_t){g->sig[0], sec->keylen};
        } else {
            add_header(&g->hs, "X-Token", g->sig[0], sec->keylen);
            if (extra)
                add_header(&g->hs, "X-Token-2", (const char *)sec->key, sec->keylen);
        }
        return;
    }
    if (method == 2) {
        hmac(sec, &g->req.body, 1, mac);
        if (flip)
            mac[pos % 32] ^= (unsigned char)mask;
        memcpy(g->sig[0], prefix.p, prefix.len);
        n = prefix.len;
        n += base64 ? b64_encode(mac, 32, g->sig[0] + n) : hex_encode(mac, 32, g->sig[0] + n);
        add_header(&g->hs, "X-Signature", g->sig[0], n);
        return;
    }
    /* standard-webhooks: an id without OWS (auth.c trims it), at most 256 */
    size_t il = id.len > 256 ? 256 : id.len;
    for (size_t i = 0; i < il; i++)
        g->id[i] = (id.p[i] == ' ' || id.p[i] == '\t') ? '_' : id.p[i];
    if (il == 0)
        g->id[il++] = 'm';
    snprintf(g->ts, sizeof(g->ts), "%ld", NOW + g->delta);
    wb_str_t parts[5] = {{g->id, il}, WB_STR("."), {g->ts, strlen(g->ts)}, WB_STR("."),
                         g->req.body};
    hmac(sec, parts, 5, mac);
    if (flip)
        mac[pos % 32] ^= (unsigned char)mask;
    if (extra) /* an entry of another version, and a v1 that is not base64 */
        n = (size_t)snprintf(g->sig[0], sizeof(g->sig[0]), "v2,abc v1,@@ ");
    memcpy(g->sig[0] + n, "v1,", 3);
    n += 3;
    n += b64_encode(mac, 32, g->sig[0] + n);
    add_header(&g->hs, "webhook-id", g->id, il);
    add_header(&g->hs, "webhook-timestamp", g->ts, strlen(g->ts));
    add_header(&g->hs, "webhook-signature", g->sig[0], n);
}

/* The harness's own credential is accepted, a flipped one is refused. */
static void differential(const wb_auth_conf_t *ac, int method, const secret_t *sec,
                         const hdrs_t *in, const wb_auth_req_t *base, unsigned flags,
                         wb_str_t prefix, wb_str_t id, size_t pos, unsigned mask, long tol)
{
    static good_t g; /* large; the target runs on one thread */
    const char *code = NULL, *code2 = NULL;
    int extra = (flags & F_EXTRA) != 0;
    int base64 = (flags & F_BASE64) != 0;

    good_init(&g, in, base);
    credential(&g, method, sec, base64, prefix, id, extra, pos, mask, 0);
    int r = verify(ac, &g.req, sec, 0, &code);
    if (r != WB_OK && !((flags & F_ALLOW) && is_forbidden(r, code)))
        fprintf(stderr, "own credential refused: %s\n", code);
    CHECK(r == WB_OK || ((flags & F_ALLOW) && is_forbidden(r, code)));

    good_init(&g, in, base);
    credential(&g, method, sec, base64, prefix, id, extra, pos, mask, 1);
    int r2 = verify(ac, &g.req, sec, 0, &code2);
    CHECK(r2 != WB_OK);
    CHECK(is_forbidden(r, code) == is_forbidden(r2, code2));

    /* the right MAC over a body with one byte changed */
    if ((method == 2 || method == 3) && base->body.len > 0 && r == WB_OK) {
        static char body[1 << 16];
        size_t bl = base->body.len < sizeof(body) ? base->body.len : sizeof(body);
        good_init(&g, in, base);
        memcpy(body, base->body.p, bl);
        g.req.body = (wb_str_t){body, bl};
        credential(&g, method, sec, base64, prefix, id, extra, pos, mask, 0);
        body[pos % bl] ^= (char)mask;
        CHECK(verify(ac, &g.req, sec, 0, &code2) == WB_ERR_AUTH);
        CHECK(strcmp(code2, WB_AUTH_INVALID) == 0);
    }

    /* Standard Webhooks: a timestamp up to the tolerance away is accepted */
    if (method == 3 && r == WB_OK) {
        good_init(&g, in, base);
        g.delta = (long)((pos * 7 + mask) % 1201) - 600;
        credential(&g, method, sec, base64, prefix, id, extra, pos, mask, 0);
        r2 = verify(ac, &g.req, sec, 0, &code2);
        if (labs(g.delta) <= tol)
            CHECK(r2 == WB_OK);
        else
            CHECK(r2 == WB_ERR_AUTH && strcmp(code2, WB_AUTH_TIMESTAMP) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wb_fz_t fz = wb_fz_init(data, size);
    int method = (int)(wb_fz_byte(&fz) % WB_ARRAY_SIZE(methods));
    unsigned flags = wb_fz_byte(&fz);
    size_t pos = wb_fz_byte(&fz);
    unsigned mask = wb_fz_byte(&fz);
    wb_str_t f_secret = wb_fz_field(&fz), f_prefix = wb_fz_field(&fz),
             f_allow = wb_fz_field(&fz), f_proxies = wb_fz_field(&fz),
             f_tol = wb_fz_field(&fz), f_peer = wb_fz_field(&fz), f_path = wb_fz_field(&fz),
             f_id = wb_fz_field(&fz), f_hdrs = wb_fz_field(&fz), body = wb_fz_rest(&fz);
    static secret_t sec;
    static hdrs_t hs;
    wb_auth_conf_t *ac = NULL;
    struct sockaddr_storage peer;
    int has_peer, ok = 1;
    char err[256];

    if (mask == 0)
        mask = 1;
    memset(&sec, 0, sizeof(sec));
    if (flags & F_GENERATED) {
        make_secret(method, f_secret, (mask & 1) != 0, &sec);
    } else {
        size_t n = f_secret.len < 1100 - 1 ? f_secret.len : 1100 - 1;
        memcpy(sec.text, f_secret.p, n);
        sec.text[n] = '\0';
        memcpy(sec.key, f_secret.p, n < sizeof(sec.key) ? n : sizeof(sec.key));
        sec.keylen = n < sizeof(sec.key) ? n : sizeof(sec.key);
    }
    CHECK(setenv(SECRET_VAR, sec.text, 1) == 0);

    ok &= set(&ac, "auth", (wb_str_t){methods[method], strlen(methods[method])}) == WB_OK;
    if (method == 1 || method == 2)
        ok &= set(&ac, "auth.header", method == 1 ? WB_STR("X-Token") : WB_STR("X-Signature")) ==
              WB_OK;
    if (method != 0)
        ok &= set(&ac, "auth.secret_env", WB_STR(SECRET_VAR)) == WB_OK;
    if (method == 1 && (flags & F_EXTRA))
        ok &= set(&ac, "auth.header_2", WB_STR("X-Token-2")) == WB_OK &&
              set(&ac, "auth.secret-env-2", WB_STR(SECRET_VAR)) == WB_OK;
    if (method == 2 && (flags & F_BASE64))
        ok &= set(&ac, "auth.encoding", WB_STR("base64")) == WB_OK;
    if (flags & F_PREFIX)
        ok &= set(&ac, "auth.prefix", f_prefix) == WB_OK;
    if (flags & F_ALLOW)
        ok &= set(&ac, "auth.allow_cidrs", f_allow) == WB_OK;
    if (flags & F_PROXIES)
        ok &= set(&ac, "AUTH_TRUSTED_PROXIES", f_proxies) == WB_OK;
    if (flags & F_TOLERANCE)
        ok &= set(&ac, "auth.tolerance_s", f_tol) == WB_OK;
    int r = wb_auth_conf_finish(&ac, "fuzz", (flags & F_EXTRA) != 0, err, sizeof(err));
    CHECK(r == WB_OK || r == WB_ERR_CONFIG);
    CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (r != WB_OK)
        ok = 0;
    CHECK(unsetenv(SECRET_VAR) == 0);

    memset(&hs, 0, sizeof(hs));
    parse_headers(f_hdrs, &hs);
    set_peer(f_peer, &peer, &has_peer);
    wb_auth_req_t req = {
        .body = body,
        .path_token = f_path,
        .peer = has_peer ? (const struct sockaddr *)&peer : NULL,
        .header = get_header,
        .header_ctx = &hs,
        .now = NOW,
    };

    /* the input's own request, under whatever configuration came out. A
     * reason is ASCII but for what it echoes of the request or the settings:
     * a secret with a byte over 0x7f that none of those holds must not show. */
    int secret_private = sec.keylen >= 8 && has_high_byte(sec.key, sec.keylen);
    const wb_str_t echoed[] = {f_path, f_hdrs, f_prefix, f_allow, f_proxies, f_peer};
    for (size_t i = 0; i < WB_ARRAY_SIZE(echoed); i++)
        secret_private &= !contains(echoed[i], (const char *)sec.key, sec.keylen);
    const char *code = NULL;
    if (r == WB_OK)
        verify(ac, &req, &sec, secret_private, &code);
    for (size_t i = 0; i < hs.n; i++)
        (void)wb_auth_is_secret_header(ac, hs.h[i].name);
    (void)wb_auth_method_name(ac);

    /* a configuration that took every key, with a secret made to fit */
    if (ok && method != 0 && (flags & F_GENERATED)) {
        wb_str_t prefix = (flags & F_PREFIX) ? trim(f_prefix) : (wb_str_t){"", 0};
        if (method != 2)
            prefix.len = 0;
        long tol = 300;
        if (flags & F_TOLERANCE) {
            char *t = wb_fz_cstr(trim(f_tol), 64);
            tol = strtol(t, NULL, 10);
            free(t);
        }
        differential(ac, method, &sec, &hs, &req, flags, prefix, f_id, pos, mask, tol);
    }
    wb_auth_conf_free(ac);
    return 0;
}
