/* test_auth.c - unit tests of auth.c: every method accepts a correct
 * request and refuses the bad ones; configuration errors; the network
 * allow-list with X-Forwarded-For.
 *
 * The signatures below were computed by implementations nobody here wrote:
 *
 * HMAC (Python 3.11 standard library):
 *   python3 -c 'import hmac,hashlib,base64
 *   body=b"{\"event\":\"payment.created\",\"object_id\":\"pay_123\"}"
 *   for k in (b"hmac-secret-one", b"hmac-secret-two"):
 *       d=hmac.new(k,body,hashlib.sha256)
 *       print(d.hexdigest(), base64.b64encode(d.digest()).decode())'
 *
 * Standard Webhooks (npm standardwebhooks 1.1.1, tests/node_modules):
 *   cd tests && node -e 'const {Webhook}=require("standardwebhooks");
 *   const k="whsec_"+Buffer.from("bridge-test-key-number-1").toString("base64");
 *   console.log(new Webhook(k).sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
 *       new Date(1700000000*1000),
 *       "{\"type\":\"invoice.paid\",\"data\":{\"id\":\"inv_1\",\"amount\":1250}}"))'
 *   and the same with "bridge-test-key-number-2", with an empty body, and
 *   with key "bridge-test-key-padded-25" (base64 ending in "==") over
 *   id "msg_p" and body {"a":1}. Python's hmac gave the same values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"

/* ---- vectors ---- */

#define HMAC_BODY "{\"event\":\"payment.created\",\"object_id\":\"pay_123\"}"
#define HMAC_K1 "hmac-secret-one"
#define HMAC_K2 "hmac-secret-two"
#define HMAC_K1_HEX "b1c294b33a8b933a7f61c2a514eb9bf93f02f5021ba0bab6cec4873d19f7bd03"
#define HMAC_K1_B64 "scKUszqLkzp/YcKlFOub+T8C9QIboLq2zsSHPRn3vQM="
#define HMAC_K2_HEX "f1bf206e325fea7b20fdfdadc67c26e69d4ad91387deeef78e9eb72633e17123"

#define SW_K1 "whsec_YnJpZGdlLXRlc3Qta2V5LW51bWJlci0x"
#define SW_K2 "whsec_YnJpZGdlLXRlc3Qta2V5LW51bWJlci0y"
#define SW_ID "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
#define SW_TS "1700000000"
#define SW_NOW 1700000000
#define SW_BODY "{\"type\":\"invoice.paid\",\"data\":{\"id\":\"inv_1\",\"amount\":1250}}"
#define SW_K1_SIG "v1,PpO7azZrq8tsmXZGQZpO+CGjAv0G+GvyFtHHCBybJ1s="
#define SW_K2_SIG "v1,73Y06ssWR9dUBneSCuRBr+YzlJu6ehRScwnZAek6uSo="
#define SW_K1_EMPTY_SIG "v1,P/MekJH+G/vV9mB3mXUIJrNBLMEV60U6f9n/gT/NqrU="
#define SW_KPAD "whsec_YnJpZGdlLXRlc3Qta2V5LXBhZGRlZC0yNQ=="
#define SW_KPAD_SIG "v1,FT6Z/vUxmBSwBuyI5f+pJ1jbgakq17Df/7D3uuUv6dQ="

#define PATH_TOKEN "k3Jd9-QzL2mX_8pVt4wR"
#define PATH_TOKEN2 "Zr71_newer-token.abcdEF"

/* ---- a fake request ---- */

typedef struct {
    const char *name, *value;
} hdr_t;

typedef struct {
    hdr_t h[16];
    size_t n;
    struct sockaddr_storage peer;
    int has_peer;
    wb_auth_req_t req;
} fake_t;

static int fake_header(void *ctx, const char *name, size_t idx, wb_str_t *value)
{
    fake_t *f = ctx;
    for (size_t i = 0; i < f->n; i++) {
        if (strcasecmp(f->h[i].name, name) != 0)
            continue;
        if (idx-- == 0) {
            value->p = f->h[i].value;
            value->len = strlen(f->h[i].value);
            return 1;
        }
    }
    return 0;
}

static void fake_init(fake_t *f, const char *body)
{
    memset(f, 0, sizeof(*f));
    f->req.body.p = body;
    f->req.body.len = strlen(body);
    f->req.path_token.p = "";
    f->req.header = fake_header;
    f->req.header_ctx = f;
    f->req.now = SW_NOW;
}

static void fake_add(fake_t *f, const char *name, const char *value)
{
    assert_true(f->n < 16);
    f->h[f->n].name = name;
    f->h[f->n].value = value;
    f->n++;
}

static void fake_peer(fake_t *f, const char *ip)
{
    memset(&f->peer, 0, sizeof(f->peer));
    struct sockaddr_in *in4 = (struct sockaddr_in *)&f->peer;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&f->peer;
    if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
    }
    f->req.peer = (const struct sockaddr *)&f->peer;
}

/* ---- helpers ---- */

/* Secrets that must never show in a reason. */
static const char *const all_secrets[] = {HMAC_K1,
                                          HMAC_K2,
                                          HMAC_K1_HEX,
                                          HMAC_K1_B64,
                                          "YnJpZGdlLXRlc3Qta2V5",
                                          "PpO7azZrq8tsmXZGQZpO",
                                          PATH_TOKEN,
                                          PATH_TOKEN2,
                                          "payment.created",
                                          "invoice.paid",
                                          "s3cr3t-token-value"};

static void assert_no_secret(const char *err)
{
    for (size_t i = 0; i < WB_ARRAY_SIZE(all_secrets); i++)
        if (strstr(err, all_secrets[i]) != NULL)
            fail_msg("reason '%s' holds secret '%s'", err, all_secrets[i]);
}

/* Builds a configuration from "key", "value" pairs ending with NULL. */
static int conf_build(wb_auth_conf_t **ac, int real_brokers, char *err, size_t errsz, ...)
{
    va_list ap;
    int r = WB_OK;
    *ac = NULL;
    err[0] = '\0';
    va_start(ap, errsz);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (k == NULL)
            break;
        const char *v = va_arg(ap, const char *);
        if ((r = wb_auth_conf_set(ac, k, v, err, errsz)) != WB_OK)
            break;
    }
    va_end(ap);
    if (r == WB_OK)
        r = wb_auth_conf_finish(ac, "piriod", real_brokers, err, errsz);
    assert_no_secret(err);
    return r;
}

#define BUILD(ac, ...)                                                                             \
    do {                                                                                           \
        char berr_[512];                                                                           \
        int br_ = conf_build(&(ac), 1, berr_, sizeof(berr_), __VA_ARGS__, NULL);                   \
        if (br_ != WB_OK)                                                                          \
            fail_msg("configuration refused: %s", berr_);                                          \
    } while (0)

static void expect_ok(const wb_auth_conf_t *ac, fake_t *f)
{
    char err[256] = "";
    const char *code = "unset";
    int r = wb_auth_verify(ac, &f->req, &code, err, sizeof(err));
    if (r != WB_OK)
        fail_msg("refused (%s): %s", code != NULL ? code : "?", err);
    assert_null(code);
}

static void expect_deny(const wb_auth_conf_t *ac, fake_t *f, const char *want)
{
    char err[256] = "";
    const char *code = NULL;
    int r = wb_auth_verify(ac, &f->req, &code, err, sizeof(err));
    assert_int_equal(r, WB_ERR_AUTH);
    assert_non_null(code);
    assert_string_equal(code, want);
    assert_true(err[0] != '\0');
    assert_no_secret(err);
}

static char tmpdir[] = "/tmp/wb-test-auth-XXXXXX";

static const char *write_file(const char *name, const char *content)
{
    static char path[8][256];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
    return p;
}

static int setup_all(void **state)
{
    (void)state;
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    setenv("T_HDR", "s3cr3t-token-value", 1);
    setenv("T_HDR_ROT", "old-token-1111, new-token-2222", 1);
    setenv("T_HDR2", "store-42", 1);
    setenv("T_HMAC1", HMAC_K1, 1);
    setenv("T_HMAC12", HMAC_K1 " " HMAC_K2, 1);
    setenv("T_HMAC2", HMAC_K2, 1);
    setenv("T_SW1", SW_K1, 1);
    setenv("T_SW12", SW_K2 "," SW_K1, 1);
    setenv("T_SWPAD", SW_KPAD, 1);
    setenv("T_SWRAW", "YnJpZGdlLXRlc3Qta2V5LW51bWJlci0x", 1);
    setenv("T_SWBAD", "whsec_not*base64", 1);
    setenv("T_PATH", PATH_TOKEN, 1);
    setenv("T_PATH12", PATH_TOKEN " " PATH_TOKEN2, 1);
    setenv("T_SHORT", "short", 1);
    setenv("T_SLASH", "abcdefgh/ijklmnopq", 1);
    setenv("T_EMPTY", " , ", 1);
    unsetenv("T_UNSET");
    return 0;
}

static int teardown_all(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- static header ---- */

static void test_header_accepts(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    BUILD(ac, "auth", "header", "auth.header", "X-Bonifiq-Token", "auth.secret_env", "T_HDR");
    assert_string_equal(wb_auth_method_name(ac), "header");
    assert_false(wb_auth_is_none(ac));
    assert_false(wb_auth_uses_path(ac));

    fake_init(&f, "{}");
    fake_add(&f, "x-bonifiq-token", "s3cr3t-token-value");
    expect_ok(ac, &f);

    fake_init(&f, "{}"); /* surrounding spaces are not part of a value */
    fake_add(&f, "X-BONIFIQ-TOKEN", "  s3cr3t-token-value\t");
    expect_ok(ac, &f);
    wb_auth_conf_free(ac);
}

static void test_header_refuses(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    BUILD(ac, "auth", "header", "auth.header", "X-Bonifiq-Token", "auth.secret_env", "T_HDR");

    fake_init(&f, "{}");
    expect_deny(ac, &f, WB_AUTH_MISSING);

    fake_init(&f, "{}");
    fake_add(&f, "X-Bonifiq-Token", "");
    expect_deny(ac, &f, WB_AUTH_MISSING);

    fake_init(&f, "{}"); /* wrong secret */
    fake_add(&f, "X-Bonifiq-Token", "s3cr3t-token-valuf");
    expect_deny(ac, &f, WB_AUTH_INVALID);

    fake_init(&f, "{}"); /* a prefix of the secret */
    fake_add(&f, "X-Bonifiq-Token", "s3cr3t-token-valu");
    expect_deny(ac, &f, WB_AUTH_INVALID);

    fake_init(&f, "{}"); /* the secret and more */
    fake_add(&f, "X-Bonifiq-Token", "s3cr3t-token-value1");
    expect_deny(ac, &f, WB_AUTH_INVALID);

    fake_init(&f, "{}"); /* another header holding the secret */
    fake_add(&f, "X-Other", "s3cr3t-token-value");
    expect_deny(ac, &f, WB_AUTH_MISSING);

    fake_init(&f, "{}"); /* repeated: no guessing which copy counts */
    fake_add(&f, "X-Bonifiq-Token", "wrong");
    fake_add(&f, "X-Bonifiq-Token", "s3cr3t-token-value");
    expect_deny(ac, &f, WB_AUTH_INVALID);

    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    fake_init(&f, "{}");
    fake_add(&f, "X-Bonifiq-Token", big);
    expect_deny(ac, &f, WB_AUTH_INVALID);
    wb_auth_conf_free(ac);
}

static void test_header_rotation_and_pairs(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    const char *file = write_file("hdr2", "\n  store-43 \r\n\n");
    BUILD(ac, "auth", "header", "auth.header", "X-Token", "auth.secret_env", "T_HDR_ROT",
          "auth.header2", "X-Store", "auth.secret_env2", "T_HDR2", "auth.secret_file_2", file);

    static const char *const tokens[] = {"old-token-1111", "new-token-2222"};
    static const char *const stores[] = {"store-42", "store-43"};
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 0; j < 2; j++) {
            fake_init(&f, "{}");
            fake_add(&f, "X-Token", tokens[i]);
            fake_add(&f, "X-Store", stores[j]);
            expect_ok(ac, &f);
        }

    fake_init(&f, "{}"); /* every configured header is required */
    fake_add(&f, "X-Token", "new-token-2222");
    expect_deny(ac, &f, WB_AUTH_MISSING);

    fake_init(&f, "{}"); /* one pair's secret is not another's */
    fake_add(&f, "X-Token", "store-42");
    fake_add(&f, "X-Store", "new-token-2222");
    expect_deny(ac, &f, WB_AUTH_INVALID);

    fake_init(&f, "{}"); /* the separator is not part of a secret */
    fake_add(&f, "X-Token", "old-token-1111,");
    fake_add(&f, "X-Store", "store-42");
    expect_deny(ac, &f, WB_AUTH_INVALID);

    wb_str_t n1 = WB_STR("x-token"), n2 = WB_STR("X-STORE"), n3 = WB_STR("content-type");
    assert_true(wb_auth_is_secret_header(ac, n1));
    assert_true(wb_auth_is_secret_header(ac, n2));
    assert_false(wb_auth_is_secret_header(ac, n3));
    wb_auth_conf_free(ac);
}

/* ---- HMAC ---- */

static void test_hmac_hex(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    BUILD(ac, "auth", "hmac", "auth.header", "X-Signature", "auth.secret_env", "T_HMAC1");
    assert_string_equal(wb_auth_method_name(ac), "hmac");

    fake_init(&f, HMAC_BODY);
    fake_add(&f, "X-Signature", HMAC_K1_HEX);
    expect_ok(ac, &f);

    /* hex digits in upper case are the same signature */
    char upper[65];
    for (size_t i = 0; i < 64; i++)
        upper[i] = (char)toupper((unsigned char)HMAC_K1_HEX[i]);
    upper[64] = '\0';
    fake_init(&f, HMAC_BODY);
    fake_add(&f, "x-signature", upper);
    expect_ok(ac, &f);

    fake_init(&f, HMAC_BODY); /* wrong secret */
    fake_add(&f, "X-Signature", HMAC_K2_HEX);
    expect_deny(ac, &f, WB_AUTH_INVALID);

    fake_init(&f, "{\"event\":\"payment.created\",\"object_id\":\"pay_124\"}"); /* tampered */
    fake_add(&f, "X-Signature", HMAC_K1_HEX);
    expect_deny(ac, &f, WB_AUTH_INVALID);

    fake_init(&f, HMAC_BODY " "); /* one byte more */
    fake_add(&f, "X-Signature", HMAC_K1_HEX);
    expect_deny(ac, &f, WB_AUTH_INVALID);

    fake_init(&f, HMAC_BODY);
    expect_deny(ac, &f, WB_AUTH_MISSING);

    fake_init(&f, HMAC_BODY); /* truncated */
    fake_add(&f, "X-Signature", "b1c294b33a8b933a7f61c2a514eb9bf93f02f5021ba0bab6cec4873d19f7bd");
    expect_deny(ac, &f, WB_AUTH_INVALID);

    fake_init(&f, HMAC_BODY); /* not hex */
    fake_add(&f, "X-Signature", "g1c294b33a8b933a7f61c2a514eb9bf93f02f5021ba0bab6cec4873d19f7bd03");
    expect_deny(ac, &f, WB_AUTH_INVALID);

    fake_init(&f, HMAC_BODY); /* base64 where hex is configured */
    fake_add(&f, "X-Signature", HMAC_K1_B64);
    expect_deny(ac, &f, WB_AUTH_INVALID);
    wb_auth_conf_free(ac);
}

static void test_hmac_base64_prefix(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    BUILD(ac, "auth", "hmac", "auth.header", "X-Hub-Signature-256", "auth.encoding", "base64",
          "auth.prefix", "sha256=", "auth.secret_env", "T_HMAC1");

    fake_init(&f, HMAC_BODY);
    fake_add(&f, "X-Hub-Signature-256", "sha256=" HMAC_K1_B64);
    expect_ok(ac, &f);

    fake_init(&f, HMAC_BODY); /* unpadded base64 is the same signature */
    fake_add(&f, "X-Hub-Signature-256", "sha256=scKUszqLkzp/YcKlFOub+T8C9QIboLq2zsSHPRn3vQM");
    expect_ok(ac, &f);

    fake_init(&f, HMAC_BODY); /* prefix missing */
    fake_add(&f, "X-Hub-Signature-256", HMAC_K1_B64);
    expect_deny(ac, &f, WB_AUTH_INVALID);

    fake_init(&f, HMAC_BODY); /* bad padding */
    fake_add(&f, "X-Hub-Signature-256", "sha256=scKUszqLkzp/YcKlFOub+T8C9QIboLq2zsSHPRn3vQM==");
    expect_deny(ac, &f, WB_AUTH_INVALID);

    fake_init(&f, HMAC_BODY); /* one character changed */
    fake_add(&f, "X-Hub-Signature-256", "sha256=scKUszqLkzp/YcKlFOub+T8C9QIboLq2zsSHPRn3vQN=");
    expect_deny(ac, &f, WB_AUTH_INVALID);

    fake_init(&f, "");
    fake_add(&f, "X-Hub-Signature-256", "sha256=" HMAC_K1_B64);
    expect_deny(ac, &f, WB_AUTH_INVALID);
    wb_auth_conf_free(ac);
}

static void test_hmac_rotation(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;

    /* both secrets in one variable */
    BUILD(ac, "auth", "hmac", "auth.header", "X-Signature", "auth.secret_env", "T_HMAC12");
    fake_init(&f, HMAC_BODY);
    fake_add(&f, "X-Signature", HMAC_K1_HEX);
    expect_ok(ac, &f);
    fake_init(&f, HMAC_BODY);
    fake_add(&f, "X-Signature", HMAC_K2_HEX);
    expect_ok(ac, &f);
    wb_auth_conf_free(ac);

    /* old one in the environment, new one in a file */
    const char *file = write_file("hmac", HMAC_K2 "\n");
    BUILD(ac, "auth", "hmac", "auth.header", "X-Signature", "auth.secret_env", "T_HMAC1",
          "auth.secret_file", file);
    fake_init(&f, HMAC_BODY);
    fake_add(&f, "X-Signature", HMAC_K1_HEX);
    expect_ok(ac, &f);
    fake_init(&f, HMAC_BODY);
    fake_add(&f, "X-Signature", HMAC_K2_HEX);
    expect_ok(ac, &f);
    wb_auth_conf_free(ac);

    /* the old one removed: only the new one gets in */
    BUILD(ac, "auth", "hmac", "auth.header", "X-Signature", "auth.secret_file", file);
    fake_init(&f, HMAC_BODY);
    fake_add(&f, "X-Signature", HMAC_K1_HEX);
    expect_deny(ac, &f, WB_AUTH_INVALID);
    fake_init(&f, HMAC_BODY);
    fake_add(&f, "X-Signature", HMAC_K2_HEX);
    expect_ok(ac, &f);
    wb_auth_conf_free(ac);
}

/* ---- Standard Webhooks ---- */

static void sw_request(fake_t *f, const char *body, const char *id, const char *ts, const char *sig)
{
    fake_init(f, body);
    if (id != NULL)
        fake_add(f, "webhook-id", id);
    if (ts != NULL)
        fake_add(f, "webhook-timestamp", ts);
    if (sig != NULL)
        fake_add(f, "webhook-signature", sig);
}

static void test_standard_accepts(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    BUILD(ac, "auth", "standard-webhooks", "auth.secret_env", "T_SW1");
    assert_string_equal(wb_auth_method_name(ac), "standard-webhooks");

    sw_request(&f, SW_BODY, SW_ID, SW_TS, SW_K1_SIG);
    expect_ok(ac, &f);

    /* several entries; other versions and broken v1 entries are skipped */
    sw_request(&f, SW_BODY, SW_ID, SW_TS,
               "v1a,PpO7azZrq8tsmXZGQZpO+CGjAv0G+GvyFtHHCBybJ1s= v1,@@@ " SW_K2_SIG " " SW_K1_SIG
               " v2,abc");
    expect_ok(ac, &f);

    /* header names are case-insensitive */
    fake_init(&f, SW_BODY);
    fake_add(&f, "Webhook-Id", SW_ID);
    fake_add(&f, "WEBHOOK-TIMESTAMP", SW_TS);
    fake_add(&f, "Webhook-Signature", SW_K1_SIG);
    expect_ok(ac, &f);

    sw_request(&f, "", SW_ID, SW_TS, SW_K1_EMPTY_SIG);
    expect_ok(ac, &f);

    /* tolerance is inclusive: exactly 300 s either way is accepted */
    sw_request(&f, SW_BODY, SW_ID, SW_TS, SW_K1_SIG);
    f.req.now = SW_NOW + 300;
    expect_ok(ac, &f);
    f.req.now = SW_NOW - 300;
    expect_ok(ac, &f);

    wb_str_t n = WB_STR("Webhook-Signature");
    assert_true(wb_auth_is_secret_header(ac, n));
    wb_auth_conf_free(ac);

    /* a secret whose base64 ends in "==" */
    BUILD(ac, "auth", "standard-webhooks", "auth.secret_env", "T_SWPAD");
    sw_request(&f, "{\"a\":1}", "msg_p", SW_TS, SW_KPAD_SIG);
    expect_ok(ac, &f);
    wb_auth_conf_free(ac);

    /* the whsec_ prefix is optional, as in the reference library */
    BUILD(ac, "auth", "standard_webhooks", "auth.secret_env", "T_SWRAW");
    sw_request(&f, SW_BODY, SW_ID, SW_TS, SW_K1_SIG);
    expect_ok(ac, &f);
    wb_auth_conf_free(ac);
}

static void test_standard_refuses(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    BUILD(ac, "auth", "standard-webhooks", "auth.secret_env", "T_SW1");

    sw_request(&f, SW_BODY, SW_ID, SW_TS, SW_K2_SIG); /* wrong secret */
    expect_deny(ac, &f, WB_AUTH_INVALID);

    /* tampered body: one byte changed */
    sw_request(&f, "{\"type\":\"invoice.paid\",\"data\":{\"id\":\"inv_1\",\"amount\":1251}}", SW_ID,
               SW_TS, SW_K1_SIG);
    expect_deny(ac, &f, WB_AUTH_INVALID);

    sw_request(&f, SW_BODY, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X", SW_TS, SW_K1_SIG); /* other id */
    expect_deny(ac, &f, WB_AUTH_INVALID);

    /* the timestamp is signed: moving it inside the tolerance is refused */
    sw_request(&f, SW_BODY, SW_ID, "1700000001", SW_K1_SIG);
    expect_deny(ac, &f, WB_AUTH_INVALID);

    sw_request(&f, SW_BODY, NULL, SW_TS, SW_K1_SIG);
    expect_deny(ac, &f, WB_AUTH_MISSING);
    sw_request(&f, SW_BODY, SW_ID, NULL, SW_K1_SIG);
    expect_deny(ac, &f, WB_AUTH_MISSING);
    sw_request(&f, SW_BODY, SW_ID, SW_TS, NULL);
    expect_deny(ac, &f, WB_AUTH_MISSING);

    /* stale and future */
    sw_request(&f, SW_BODY, SW_ID, SW_TS, SW_K1_SIG);
    f.req.now = SW_NOW + 301;
    expect_deny(ac, &f, WB_AUTH_TIMESTAMP);
    f.req.now = SW_NOW - 301;
    expect_deny(ac, &f, WB_AUTH_TIMESTAMP);
    f.req.now = SW_NOW + 86400 * 365;
    expect_deny(ac, &f, WB_AUTH_TIMESTAMP);

    sw_request(&f, SW_BODY, SW_ID, "17e8", SW_K1_SIG);
    expect_deny(ac, &f, WB_AUTH_INVALID);
    sw_request(&f, SW_BODY, SW_ID, "-1700000000", SW_K1_SIG);
    expect_deny(ac, &f, WB_AUTH_INVALID);
    sw_request(&f, SW_BODY, SW_ID, "99999999999999999999", SW_K1_SIG);
    expect_deny(ac, &f, WB_AUTH_INVALID);

    /* only other versions */
    sw_request(&f, SW_BODY, SW_ID, SW_TS, "v1a,PpO7azZrq8tsmXZGQZpO+CGjAv0G+GvyFtHHCBybJ1s=");
    expect_deny(ac, &f, WB_AUTH_INVALID);
    /* the base64 without its version */
    sw_request(&f, SW_BODY, SW_ID, SW_TS, "PpO7azZrq8tsmXZGQZpO+CGjAv0G+GvyFtHHCBybJ1s=");
    expect_deny(ac, &f, WB_AUTH_INVALID);

    /* bounded work: more than 16 entries, even with the right one first */
    char many[2048];
    int n = snprintf(many, sizeof(many), "%s", SW_K1_SIG);
    for (int i = 0; i < 16; i++)
        n += snprintf(many + n, sizeof(many) - (size_t)n, " %s", SW_K2_SIG);
    sw_request(&f, SW_BODY, SW_ID, SW_TS, many);
    expect_deny(ac, &f, WB_AUTH_INVALID);

    /* a repeated signature header is refused */
    sw_request(&f, SW_BODY, SW_ID, SW_TS, SW_K2_SIG);
    fake_add(&f, "webhook-signature", SW_K1_SIG);
    expect_deny(ac, &f, WB_AUTH_INVALID);
    wb_auth_conf_free(ac);
}

static void test_standard_rotation_tolerance(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    BUILD(ac, "auth", "standard-webhooks", "auth.secret_env", "T_SW12", "auth.tolerance_s", "60");

    sw_request(&f, SW_BODY, SW_ID, SW_TS, SW_K1_SIG);
    expect_ok(ac, &f);
    sw_request(&f, SW_BODY, SW_ID, SW_TS, SW_K2_SIG);
    expect_ok(ac, &f);

    sw_request(&f, SW_BODY, SW_ID, SW_TS, SW_K1_SIG);
    f.req.now = SW_NOW + 61;
    expect_deny(ac, &f, WB_AUTH_TIMESTAMP);
    f.req.now = SW_NOW - 61;
    expect_deny(ac, &f, WB_AUTH_TIMESTAMP);
    f.req.now = SW_NOW + 60;
    expect_ok(ac, &f);
    wb_auth_conf_free(ac);
}

/* ---- secret path segment ---- */

static void path_request(fake_t *f, const char *token)
{
    fake_init(f, "{}");
    f->req.path_token.p = token;
    f->req.path_token.len = strlen(token);
}

static void test_path(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    char tok[64];
    BUILD(ac, "auth", "path", "auth.secret_env", "T_PATH12");
    assert_true(wb_auth_uses_path(ac));
    assert_string_equal(wb_auth_method_name(ac), "path");
    wb_str_t n = WB_STR("x-token");
    assert_false(wb_auth_is_secret_header(ac, n));

    path_request(&f, PATH_TOKEN);
    expect_ok(ac, &f);
    path_request(&f, PATH_TOKEN2); /* rotated: both active */
    expect_ok(ac, &f);

    path_request(&f, "");
    expect_deny(ac, &f, WB_AUTH_MISSING);

    /* wrong by one character, at every position */
    for (size_t i = 0; i < strlen(PATH_TOKEN); i++) {
        snprintf(tok, sizeof(tok), "%s", PATH_TOKEN);
        tok[i] = tok[i] == 'A' ? 'B' : 'A';
        path_request(&f, tok);
        expect_deny(ac, &f, WB_AUTH_INVALID);
    }
    snprintf(tok, sizeof(tok), "%s", PATH_TOKEN); /* one character short */
    tok[strlen(tok) - 1] = '\0';
    path_request(&f, tok);
    expect_deny(ac, &f, WB_AUTH_INVALID);
    snprintf(tok, sizeof(tok), "%sx", PATH_TOKEN); /* one character more */
    path_request(&f, tok);
    expect_deny(ac, &f, WB_AUTH_INVALID);
    wb_auth_conf_free(ac);

    /* a rotation finished: the old token no longer gets in */
    BUILD(ac, "auth", "path", "auth.secret_file", write_file("path", PATH_TOKEN2 "\n"));
    path_request(&f, PATH_TOKEN);
    expect_deny(ac, &f, WB_AUTH_INVALID);
    path_request(&f, PATH_TOKEN2);
    expect_ok(ac, &f);
    wb_auth_conf_free(ac);
}

/* ---- none ---- */

static void test_none(void **state)
{
    (void)state;
    wb_auth_conf_t *ac = NULL;
    fake_t f;
    char err[512];
    const char *code = "x";

    /* nothing configured, embedded Kafka: accepted, reported as none */
    assert_int_equal(wb_auth_conf_finish(&ac, "piriod", 0, err, sizeof(err)), WB_OK);
    assert_null(ac);
    assert_true(wb_auth_is_none(ac));
    assert_false(wb_auth_uses_path(ac));
    assert_string_equal(wb_auth_method_name(ac), "none");
    fake_init(&f, "{}");
    assert_int_equal(wb_auth_verify(ac, &f.req, &code, err, sizeof(err)), WB_OK);
    assert_null(code);

    /* explicit none with real brokers */
    assert_int_equal(conf_build(&ac, 1, err, sizeof(err), "auth", "NONE", NULL), WB_OK);
    assert_true(wb_auth_is_none(ac));
    assert_string_equal(wb_auth_method_name(ac), "none");
    expect_ok(ac, &f);
    wb_auth_conf_free(ac);
}

/* ---- network allow-list ---- */

static void test_cidr_direct(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    BUILD(ac, "auth", "none", "auth.allow_cidrs",
          "10.0.0.0/8, 192.168.1.0/24 2001:db8::/32 ,"
          "198.51.100.7");

    static const char *const ok[] = {"10.1.2.3",     "192.168.1.200",   "2001:db8::42",
                                     "198.51.100.7", "::ffff:10.9.8.7", "10.255.255.255"};
    static const char *const no[] = {"11.0.0.1",     "192.168.2.1", "2001:db9::1",
                                     "198.51.100.8", "::1",         "::ffff:11.0.0.1"};
    for (size_t i = 0; i < WB_ARRAY_SIZE(ok); i++) {
        fake_init(&f, "{}");
        fake_peer(&f, ok[i]);
        expect_ok(ac, &f);
    }
    for (size_t i = 0; i < WB_ARRAY_SIZE(no); i++) {
        fake_init(&f, "{}");
        fake_peer(&f, no[i]);
        expect_deny(ac, &f, WB_AUTH_FORBIDDEN_NETWORK);
    }

    /* no trusted proxies: X-Forwarded-For is ignored either way */
    fake_init(&f, "{}");
    fake_peer(&f, "203.0.113.9");
    fake_add(&f, "X-Forwarded-For", "10.0.0.1");
    expect_deny(ac, &f, WB_AUTH_FORBIDDEN_NETWORK);
    fake_init(&f, "{}");
    fake_peer(&f, "10.0.0.1");
    fake_add(&f, "X-Forwarded-For", "203.0.113.9");
    expect_ok(ac, &f);

    fake_init(&f, "{}"); /* unknown peer: fail closed */
    expect_deny(ac, &f, WB_AUTH_FORBIDDEN_NETWORK);
    wb_auth_conf_free(ac);
}

static void test_cidr_proxies(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    BUILD(ac, "auth", "none", "auth.allow_cidrs", "198.51.100.0/24", "auth.trusted_proxies",
          "10.1.0.0/16, fd00::/8");

    fake_init(&f, "{}"); /* the load balancer forwards an allowed client */
    fake_peer(&f, "10.1.0.5");
    fake_add(&f, "X-Forwarded-For", "198.51.100.20");
    expect_ok(ac, &f);

    fake_init(&f, "{}"); /* two trusted hops, ports and IPv6 hops */
    fake_peer(&f, "fd00::1");
    fake_add(&f, "X-Forwarded-For", "198.51.100.20:5555, [fd00::9]:443 , 10.1.3.4");
    expect_ok(ac, &f);

    fake_init(&f, "{}"); /* split over two headers */
    fake_peer(&f, "10.1.0.5");
    fake_add(&f, "X-Forwarded-For", "198.51.100.20");
    fake_add(&f, "X-Forwarded-For", "10.1.9.9");
    expect_ok(ac, &f);

    fake_init(&f, "{}"); /* the client itself is not allowed */
    fake_peer(&f, "10.1.0.5");
    fake_add(&f, "X-Forwarded-For", "203.0.113.9");
    expect_deny(ac, &f, WB_AUTH_FORBIDDEN_NETWORK);

    /* a client writing an allowed address in front of its own: the proxy
     * appends the real one, which is what counts */
    fake_init(&f, "{}");
    fake_peer(&f, "10.1.0.5");
    fake_add(&f, "X-Forwarded-For", "198.51.100.20, 203.0.113.9");
    expect_deny(ac, &f, WB_AUTH_FORBIDDEN_NETWORK);

    fake_init(&f, "{}"); /* an untrusted peer cannot claim an address */
    fake_peer(&f, "203.0.113.9");
    fake_add(&f, "X-Forwarded-For", "198.51.100.20");
    expect_deny(ac, &f, WB_AUTH_FORBIDDEN_NETWORK);

    fake_init(&f, "{}"); /* trusted proxy, no header: the proxy is the source */
    fake_peer(&f, "10.1.0.5");
    expect_deny(ac, &f, WB_AUTH_FORBIDDEN_NETWORK);

    fake_init(&f, "{}"); /* garbage from a trusted proxy */
    fake_peer(&f, "10.1.0.5");
    fake_add(&f, "X-Forwarded-For", "198.51.100.20, unknown");
    expect_deny(ac, &f, WB_AUTH_FORBIDDEN_NETWORK);
    fake_init(&f, "{}");
    fake_peer(&f, "10.1.0.5");
    fake_add(&f, "X-Forwarded-For", "198.51.100.20,,");
    expect_deny(ac, &f, WB_AUTH_FORBIDDEN_NETWORK);

    fake_init(&f, "{}"); /* bounded: too many headers */
    fake_peer(&f, "10.1.0.5");
    for (int i = 0; i < 9; i++)
        fake_add(&f, "X-Forwarded-For", "10.1.0.1");
    expect_deny(ac, &f, WB_AUTH_FORBIDDEN_NETWORK);

    char hops[1024];
    int n = snprintf(hops, sizeof(hops), "198.51.100.20");
    for (int i = 0; i < 70; i++)
        n += snprintf(hops + n, sizeof(hops) - (size_t)n, ",10.1.0.1");
    fake_init(&f, "{}"); /* bounded: too many hops */
    fake_peer(&f, "10.1.0.5");
    fake_add(&f, "X-Forwarded-For", hops);
    expect_deny(ac, &f, WB_AUTH_FORBIDDEN_NETWORK);
    wb_auth_conf_free(ac);
}

static void test_cidr_with_method(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    BUILD(ac, "auth", "header", "auth.header", "X-Token", "auth.secret_env", "T_HDR",
          "auth.allow_cidrs", "192.168.1.0/24");

    fake_init(&f, "{}");
    fake_peer(&f, "192.168.1.10");
    fake_add(&f, "X-Token", "s3cr3t-token-value");
    expect_ok(ac, &f);

    fake_init(&f, "{}"); /* the right token from the wrong network */
    fake_peer(&f, "192.168.2.10");
    fake_add(&f, "X-Token", "s3cr3t-token-value");
    expect_deny(ac, &f, WB_AUTH_FORBIDDEN_NETWORK);

    fake_init(&f, "{}"); /* the right network without the token */
    fake_peer(&f, "192.168.1.10");
    expect_deny(ac, &f, WB_AUTH_MISSING);
    wb_auth_conf_free(ac);
}

/* ---- configuration errors ---- */

typedef struct {
    const char *kv[12]; /* key, value, ..., NULL */
    int real_brokers;
    const char *needle; /* in the reason */
} bad_conf_t;

static void test_config_errors(void **state)
{
    (void)state;
    static const bad_conf_t cases[] = {
        {{"auth", "basic", NULL}, 0, "unknown method"},
        {{"auth", "", NULL}, 0, "unknown method"},
        {{"auth", "hmac", "auth.secret_env", "T_HMAC1", NULL}, 0, "needs auth.header"},
        {{"auth", "header", "auth.secret_env", "T_HDR", NULL}, 0, "needs auth.header"},
        {{"auth", "hmac", "auth.header", "X-Sig", NULL}, 0, "needs auth.secret_env"},
        {{"auth", "hmac", "auth.header", "X-Sig", "auth.secret_env", "T_UNSET", NULL},
         0,
         "T_UNSET) is not set"},
        {{"auth", "hmac", "auth.header", "X-Sig", "auth.secret_env", "T_EMPTY", NULL},
         0,
         "is empty"},
        {{"auth", "path", "auth.secret_file", "/nonexistent/secret", NULL}, 0, "cannot open"},
        {{"auth", "path", "auth.secret_env", "T_SHORT", NULL}, 0, "16 to 256"},
        {{"auth", "path", "auth.secret_env", "T_SLASH", NULL}, 0, "A-Z a-z 0-9"},
        {{"auth", "standard-webhooks", "auth.secret_env", "T_SWBAD", NULL}, 0, "whsec_"},
        {{"auth", "standard-webhooks", "auth.header", "X-Sig", "auth.secret_env", "T_SW1", NULL},
         0,
         "auth.header does not apply"},
        {{"auth", "hmac", "auth.header", "X-Sig", "auth.secret_env", "T_HMAC1", "auth.header2",
          "X-Other", NULL},
         0,
         "auth.header_2 does not apply"},
        {{"auth", "header", "auth.header", "X-T", "auth.secret_env", "T_HDR", "auth.prefix",
          "a=", NULL},
         0,
         "auth.prefix does not apply"},
        {{"auth", "path", "auth.secret_env", "T_PATH", "auth.tolerance_s", "10", NULL},
         0,
         "auth.tolerance_s does not apply"},
        {{"auth", "none", "auth.secret_env", "T_HDR", NULL}, 0, "does not apply"},
        {{"auth", "header", "auth.header", "X-T", "auth.secret_env", "T_HDR", "auth.header3", "X-U",
          NULL},
         0,
         "auth = header needs auth.secret_env_3"},
        {{"auth", "hmac", "auth.header", "X-Sig", "auth.secret", "s3cr3t-token-value", NULL},
         0,
         "never written in the configuration"},
        {{"auth", "header", "auth.header", "X-T", "auth.secret_env", "s3cr3t-token-value", NULL},
         0,
         "not an environment variable name"},
        {{"auth", "hmac", "auth.header", "X Sig", NULL}, 0, "not a header name"},
        {{"auth", "hmac", "auth.header", "X-Sig", "auth.encoding", "base32", NULL},
         0,
         "hex or base64"},
        {{"auth", "standard-webhooks", "auth.tolerance_s", "0", NULL}, 0, "1 to 86400"},
        {{"auth", "standard-webhooks", "auth.tolerance_s", "5m", NULL}, 0, "1 to 86400"},
        {{"auth", "standard-webhooks", "auth.tolerance_s", "", NULL}, 0, "1 to 86400"},
        {{"auth", "none", "auth.allow_cidrs", "10.0.0.0/33", NULL}, 0, "prefix length"},
        {{"auth", "none", "auth.allow_cidrs", "10.0.0.1/8", NULL}, 0, "bits set"},
        {{"auth", "none", "auth.allow_cidrs", "example.com", NULL}, 0, "not an IP address"},
        {{"auth", "none", "auth.trusted_proxies", "10.0.0.0/8", NULL}, 0, "needs auth.allow_"},
        {{"auth", "header", "auth.header9", "X-T", NULL}, 0, "unknown key"},
        {{"auth", "header", "auth.colour", "blue", NULL}, 0, "unknown key"},
        {{"auth.header", "X-T", NULL}, 0, "auth (the method) is not"},
        {{"auth.header", "X-T", NULL}, 1, "auth (the method) is not"},
        {{"auth.allow_cidrs", "10.0.0.0/8", NULL}, 1, "BRIDGE_PROVIDER_PIRIOD_AUTH=none"},
    };
    for (size_t i = 0; i < WB_ARRAY_SIZE(cases); i++) {
        const bad_conf_t *c = &cases[i];
        wb_auth_conf_t *ac = NULL;
        char err[512] = "";
        int r = WB_OK;
        for (size_t k = 0; c->kv[k] != NULL && r == WB_OK; k += 2)
            r = wb_auth_conf_set(&ac, c->kv[k], c->kv[k + 1], err, sizeof(err));
        if (r == WB_OK)
            r = wb_auth_conf_finish(&ac, "piriod", c->real_brokers, err, sizeof(err));
        if (r != WB_ERR_CONFIG)
            fail_msg("case %zu (%s): accepted or wrong code %d", i, c->needle, r);
        if (strstr(err, c->needle) == NULL)
            fail_msg("case %zu: reason '%s' lacks '%s'", i, err, c->needle);
        assert_no_secret(err);
        /* config.c writes the reason and its location into 200 bytes */
        if (strlen(err) > 160)
            fail_msg("case %zu: reason too long for config.c: '%s'", i, err);
        wb_auth_conf_free(ac);
    }
}

static void test_real_brokers_need_method(void **state)
{
    (void)state;
    wb_auth_conf_t *ac = NULL;
    char err[512];

    assert_int_equal(wb_auth_conf_finish(&ac, "piriod", 1, err, sizeof(err)), WB_ERR_CONFIG);
    assert_non_null(strstr(err, "auth = none"));
    assert_true(strlen(err) <= 160); /* config.c adds the location to a 200-byte buffer */
    assert_non_null(strstr(err, "BRIDGE_PROVIDER_PIRIOD_AUTH=none"));

    assert_int_equal(wb_auth_conf_finish(&ac, "piriod", 0, err, sizeof(err)), WB_OK);
}

static void test_key_spellings_ok(void **state)
{
    (void)state;
    wb_auth_conf_t *ac;
    fake_t f;
    BUILD(ac, "AUTH", " Hmac ", "auth.header", "X-Old", "auth.HEADER", "X-Signature",
          "auth.secret.env", "T_UNSET", "auth.secret-env", "T_HMAC1");
    fake_init(&f, HMAC_BODY);
    fake_add(&f, "X-Signature", HMAC_K1_HEX);
    expect_ok(ac, &f);
    fake_init(&f, HMAC_BODY);
    fake_add(&f, "X-Old", HMAC_K1_HEX);
    expect_deny(ac, &f, WB_AUTH_MISSING);
    wb_auth_conf_free(ac);
}

static void test_unfinished_is_refused(void **state)
{
    (void)state;
    wb_auth_conf_t *ac = NULL;
    char err[256];
    const char *code = NULL;
    fake_t f;
    assert_int_equal(wb_auth_conf_set(&ac, "auth", "header", err, sizeof(err)), WB_OK);
    fake_init(&f, "{}");
    assert_int_not_equal(wb_auth_verify(ac, &f.req, &code, err, sizeof(err)), WB_OK);
    assert_string_equal(code, WB_AUTH_INTERNAL);
    wb_auth_conf_free(ac);
}

/* ---- several threads at once, as ingest.c calls it ---- */

static void *verify_many(void *arg)
{
    const wb_auth_conf_t *const *acs = arg;
    for (int i = 0; i < 200; i++) {
        fake_t f;
        char err[256];
        const char *code;
        fake_init(&f, HMAC_BODY);
        fake_add(&f, "X-Signature", i % 2 ? HMAC_K1_HEX : HMAC_K2_HEX);
        if (wb_auth_verify(acs[0], &f.req, &code, err, sizeof(err)) !=
            (i % 2 ? WB_OK : WB_ERR_AUTH))
            return "hmac";
        fake_init(&f, SW_BODY);
        fake_add(&f, "webhook-id", SW_ID);
        fake_add(&f, "webhook-timestamp", SW_TS);
        fake_add(&f, "webhook-signature", i % 2 ? SW_K1_SIG : SW_K2_SIG);
        if (wb_auth_verify(acs[1], &f.req, &code, err, sizeof(err)) !=
            (i % 2 ? WB_OK : WB_ERR_AUTH))
            return "standard-webhooks";
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    wb_auth_conf_t *acs[2];
    pthread_t t[4];
    BUILD(acs[0], "auth", "hmac", "auth.header", "X-Signature", "auth.secret_env", "T_HMAC1");
    BUILD(acs[1], "auth", "standard-webhooks", "auth.secret_env", "T_SW1");
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, verify_many, acs), 0);
    for (size_t i = 0; i < 4; i++) {
        void *r;
        assert_int_equal(pthread_join(t[i], &r), 0);
        if (r != NULL)
            fail_msg("a thread saw a wrong answer for %s", (const char *)r);
    }
    wb_auth_conf_free(acs[0]);
    wb_auth_conf_free(acs[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_accepts),
        cmocka_unit_test(test_header_refuses),
        cmocka_unit_test(test_header_rotation_and_pairs),
        cmocka_unit_test(test_hmac_hex),
        cmocka_unit_test(test_hmac_base64_prefix),
        cmocka_unit_test(test_hmac_rotation),
        cmocka_unit_test(test_standard_accepts),
        cmocka_unit_test(test_standard_refuses),
        cmocka_unit_test(test_standard_rotation_tolerance),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_cidr_direct),
        cmocka_unit_test(test_cidr_proxies),
        cmocka_unit_test(test_cidr_with_method),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_real_brokers_need_method),
        cmocka_unit_test(test_key_spellings_ok),
        cmocka_unit_test(test_unfinished_is_refused),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
