/* test_lookup.c - unit tests of lookup.c and of auth = api-lookup's
 * settings through auth.c: the URL template's escaping (vectors from
 * Python's urllib.parse.quote(id, safe="-._~")), the keys' checks, and
 * which methods the keys apply to. The client itself is tested over HTTP
 * (tests/auth/test_api_lookup.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "lookup.h"

static void test_expand(void **state)
{
    /* python3 -c 'import urllib.parse as u; print(u.quote("evt/1?x=%41 é😀", safe="-._~"))' */
    static const struct {
        const char *tmpl, *id, *want;
    } v[] = {
        {"/v1/events/{id}", "evt_1001", "/v1/events/evt_1001"},
        {"/v1/events/{id}", "evt/1?x=%41 \xc3\xa9\xf0\x9f\x98\x80",
         "/v1/events/evt%2F1%3Fx%3D%2541%20%C3%A9%F0%9F%98%80"},
        {"/e/{id}?again={id}", "a&b", "/e/a%26b?again=a%26b"},
        {"/e/{id}", "-._~AZaz09", "/e/-._~AZaz09"},
        {"/e/{id", "x", "/e/{id"},
        {"/e/{{id}}", "x", "/e/{x}"},
        {"/e/{id}", "", "/e/"},
    };
    char out[256];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        long n = wb_lookup_expand(v[i].tmpl, strlen(v[i].tmpl), v[i].id, strlen(v[i].id), out,
                                  sizeof(out));
        assert_int_equal(n, (long)strlen(v[i].want));
        assert_string_equal(out, v[i].want);
    }
    /* a NUL byte in the id is escaped too */
    assert_int_equal(wb_lookup_expand("{id}", 4, "a\0b", 3, out, sizeof(out)), 5);
    assert_string_equal(out, "a%00b");
    /* exactly fits, one byte short */
    assert_int_equal(wb_lookup_expand("/{id}", 5, "a/", 2, out, 6), 5);
    assert_int_equal(wb_lookup_expand("/{id}", 5, "a/", 2, out, 5), -1);
    assert_int_equal(wb_lookup_expand("/{id}", 5, "a/", 2, out, 0), -1);
}

/* Sets the keys of kv (NULL-terminated pairs) on a fresh configuration and
 * finishes it; returns the first error's code and leaves its text in err. */
static int conf(const char *const *kv, wb_auth_conf_t **out, char *err, size_t errsz)
{
    wb_auth_conf_t *ac = NULL;
    int r = WB_OK;
    err[0] = '\0';
    for (size_t i = 0; kv[i] != NULL && r == WB_OK; i += 2)
        r = wb_auth_conf_set(&ac, kv[i], kv[i + 1], err, errsz);
    if (r == WB_OK)
        r = wb_auth_conf_finish(&ac, "shoperti", 1, err, errsz);
    if (out != NULL && r == WB_OK)
        *out = ac;
    else
        wb_auth_conf_free(ac);
    return r;
}

static void test_settings(void **state)
{
    char err[512];
    wb_auth_conf_t *ac = NULL;
    setenv("WB_TEST_LOOKUP_TOKEN", "tok_123", 1);
    const char *ok[] = {"auth",           "api-lookup",
                        "auth.url",       "https://api.example.com/v1/events/{id}",
                        "auth.match",     "/topic, /id=/data/id",
                        "auth.scheme",    "Bearer",
                        "auth.secret_env", "WB_TEST_LOOKUP_TOKEN",
                        "auth.cache_s",   "0",
                        "auth.timeout_ms", "800",
                        NULL};
    assert_int_equal(conf(ok, &ac, err, sizeof(err)), WB_OK);
    assert_string_equal(wb_auth_method_name(ac), "api-lookup");
    assert_non_null(wb_auth_lookup(ac));
    assert_int_equal(wb_lookup_conf_timeout_ms(wb_auth_lookup(ac)), 800);
    assert_false(wb_auth_is_none(ac));
    /* verification on the request itself passes: the API decides */
    wb_auth_req_t in = {.body = {"{}", 2}};
    const char *code = NULL;
    assert_int_equal(wb_auth_verify(ac, &in, &code, err, sizeof(err)), WB_OK);
    wb_auth_conf_free(ac);

    const char *loopback[] = {"auth", "api-lookup", "auth.url", "http://127.0.0.1:9/e/{id}", NULL};
    assert_int_equal(conf(loopback, NULL, err, sizeof(err)), WB_OK);
    const char *v6[] = {"auth", "api-lookup", "auth.url", "http://[::1]:9/e/{id}", NULL};
    assert_int_equal(conf(v6, NULL, err, sizeof(err)), WB_OK);

    static const struct {
        const char *kv[12];
        const char *says;
    } bad[] = {
        {{"auth", "api-lookup", NULL}, "needs auth.url"},
        {{"auth", "api-lookup", "auth.url", "http://192.0.2.1/e/{id}", NULL}, "loopback"},
        {{"auth", "api-lookup", "auth.url", "http://api.example.com/e/{id}", NULL}, "loopback"},
        {{"auth", "api-lookup", "auth.url", "https://api.example.com/events", NULL}, "{id}"},
        {{"auth", "api-lookup", "auth.url", "ftp://x/{id}", NULL}, "not an http"},
        {{"auth", "api-lookup", "auth.url", "https://x/{id} y", NULL}, "without spaces"},
        {{"auth", "api-lookup", "auth.url", "https://x/{id}#f", NULL}, "fragment"},
        {{"auth", "api-lookup", "auth.url", "https://x/{id}", "auth.match", "topic", NULL},
         "JSON Pointer"},
        {{"auth", "api-lookup", "auth.url", "https://x/{id}", "auth.cache_s", "86401", NULL},
         "0 to 86400"},
        {{"auth", "api-lookup", "auth.url", "https://x/{id}", "auth.timeout_ms", "10", NULL},
         "50 to 60000"},
        {{"auth", "api-lookup", "auth.url", "https://x/{id}", "auth.max_concurrent", "0", NULL},
         "1 to 1024"},
        {{"auth", "api-lookup", "auth.url", "https://x/{id}", "auth.scheme", "Bearer", NULL},
         "needs the credential"},
        {{"auth", "api-lookup", "auth.url", "https://x/{id}", "auth.header", "X-Token", NULL},
         "auth.header needs"},
        {{"auth", "api-lookup", "auth.url", "http://127.0.0.1/{id}", "auth.ca_file", "/x", NULL},
         "https://"},
        {{"auth", "api-lookup", "auth.url", "https://x/{id}", "auth.ca_file", "/nonexistent",
          NULL},
         "cannot load"},
        {{"auth", "hmac", "auth.header", "X-S", "auth.secret_env", "WB_TEST_LOOKUP_TOKEN",
          "auth.url", "https://x/{id}", NULL},
         "auth.url does not apply to auth = hmac"},
        {{"auth.url", "https://x/{id}", NULL}, "auth (the method) is not"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = conf(bad[i].kv, NULL, err, sizeof(err));
        if (r == WB_OK || strstr(err, bad[i].says) == NULL)
            fail_msg("case %zu: %d '%s' (want '%s')", i, r, err, bad[i].says);
    }
    /* the credential never shows in a reason */
    setenv("WB_TEST_LOOKUP_TOKEN", "tok_secret_value", 1);
    const char *cred[] = {"auth",           "api-lookup",           "auth.url",
                          "https://x/{id}", "auth.secret_env",      "WB_TEST_LOOKUP_TOKEN",
                          "auth.ca_file",   "/nonexistent/ca.pem", NULL};
    assert_int_not_equal(conf(cred, NULL, err, sizeof(err)), WB_OK);
    assert_null(strstr(err, "tok_secret_value"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
