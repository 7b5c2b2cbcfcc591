/* test_provider.c - provider.c: the built-in descriptions of Piriod,
 * Shoperti and BonifiQ, the generic defaults of a provider added in the
 * configuration, every key of a [provider.NAME] section with good and bad
 * values, and provider names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "provider.h"

static void expect_ptrs(const wb_provider_t *prov, unsigned n, const char *const *want)
{
    assert_int_equal(prov->ntype_ptrs, n);
    for (unsigned i = 0; i < n; i++) {
        assert_non_null(prov->type_ptrs[i]);
        assert_string_equal(prov->type_ptrs[i], want[i]);
    }
    for (unsigned i = n; i < WB_MAX_PTRS; i++)
        assert_null(prov->type_ptrs[i]);
}

/* Common to every provider, built-in or not. */
static void expect_common(const wb_provider_t *prov, const char *name)
{
    assert_string_equal(prov->name, name);
    assert_int_equal(prov->enabled, 1);
    assert_int_equal(prov->deadletter_status, 200);
    assert_int_equal(prov->max_body, 1024 * 1024);
    assert_int_equal(prov->key_by, WB_KEY_SUBJECT);
    assert_null(prov->auth);
}

static void test_builtins_list(void **state)
{
    (void)state;
    assert_string_equal(wb_provider_builtins[0], "piriod");
    assert_string_equal(wb_provider_builtins[1], "shoperti");
    assert_string_equal(wb_provider_builtins[2], "bonifiq");
    assert_null(wb_provider_builtins[3]);
}

static void test_init_piriod(void **state)
{
    (void)state;
    wb_provider_t prov;
    static const char *const type[] = {"/event"};
    assert_int_equal(wb_provider_init(&prov, "piriod"), WB_OK);
    expect_common(&prov, "piriod");
    assert_string_equal(prov.source, "https://api.piriod.com");
    expect_ptrs(&prov, 1, type);
    assert_null(prov.id_ptr); /* Piriod sends no id: one is generated */
    assert_string_equal(prov.subject_ptr, "/object_id");
    assert_null(prov.time_ptr);
    assert_int_equal(prov.required, WB_REQ_SUBJECT);
    assert_int_equal(prov.time_format, WB_TIME_AUTO);
    /* under Piriod's 6 s */
    assert_int_equal(prov.deadline_ms, 5000);
    wb_provider_free(&prov);
    assert_null(prov.name);
    assert_int_equal(prov.ntype_ptrs, 0);
}

static void test_init_shoperti(void **state)
{
    (void)state;
    wb_provider_t prov;
    static const char *const type[] = {"/topic", "/type", "/event"};
    assert_int_equal(wb_provider_init(&prov, "shoperti"), WB_OK);
    expect_common(&prov, "shoperti");
    assert_string_equal(prov.source, "https://api.shoperti.com");
    expect_ptrs(&prov, 3, type);
    assert_string_equal(prov.id_ptr, "/id");
    assert_string_equal(prov.subject_ptr, "/data/id");
    assert_string_equal(prov.time_ptr, "/created_at");
    assert_int_equal(prov.required, WB_REQ_ID);
    assert_int_equal(prov.time_format, WB_TIME_AUTO);
    assert_int_equal(prov.deadline_ms, 10000);
    wb_provider_free(&prov);
}

static void test_init_bonifiq(void **state)
{
    (void)state;
    wb_provider_t prov;
    static const char *const type[] = {"/TopicName"};
    assert_int_equal(wb_provider_init(&prov, "bonifiq"), WB_OK);
    expect_common(&prov, "bonifiq");
    assert_string_equal(prov.source, "https://api.bonifiq.com.br");
    expect_ptrs(&prov, 1, type);
    assert_string_equal(prov.id_ptr, "/Uuid");
    assert_string_equal(prov.subject_ptr, "/Payload/Customer/Id");
    assert_string_equal(prov.time_ptr, "/Timestamp");
    assert_int_equal(prov.required, WB_REQ_ID | WB_REQ_TIME);
    /* BonifiQ's Timestamp is UTC without a zone */
    assert_int_equal(prov.time_format, WB_TIME_NAIVE_UTC);
    /* under BonifiQ's 30 s */
    assert_int_equal(prov.deadline_ms, 25000);
    wb_provider_free(&prov);
}

static void test_init_new(void **state)
{
    (void)state;
    wb_provider_t prov;
    static const char *const type[] = {"/type"};
    assert_int_equal(wb_provider_init(&prov, "acme"), WB_OK);
    expect_common(&prov, "acme");
    assert_string_equal(prov.source, "urn:webhook-bridge:acme");
    expect_ptrs(&prov, 1, type);
    assert_null(prov.id_ptr);
    assert_null(prov.subject_ptr);
    assert_null(prov.time_ptr);
    assert_int_equal(prov.required, 0);
    assert_int_equal(prov.time_format, WB_TIME_AUTO);
    assert_int_equal(prov.deadline_ms, 10000);
    wb_provider_free(&prov);

    /* a name that starts like a built-in is not that built-in */
    assert_int_equal(wb_provider_init(&prov, "piriod2"), WB_OK);
    assert_string_equal(prov.source, "urn:webhook-bridge:piriod2");
    assert_null(prov.subject_ptr);
    wb_provider_free(&prov);

    /* init starts from zero whatever was in the struct */
    memset(&prov, 0xa5, sizeof(prov));
    assert_int_equal(wb_provider_init(&prov, "acme"), WB_OK);
    assert_null(prov.auth);
    assert_null(prov.type_ptrs[1]);
    wb_provider_free(&prov);
}

/* A fresh provider per check keeps the cases independent. */
typedef struct {
    wb_provider_t prov;
    char err[200];
} fx_t;

static int setup(void **state)
{
    static fx_t fx;
    memset(&fx, 0, sizeof(fx));
    if (wb_provider_init(&fx.prov, "acme") != WB_OK)
        return -1;
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    wb_provider_free(&fx->prov);
    return 0;
}

static int set(fx_t *fx, const char *key, const char *value)
{
    fx->err[0] = '\0';
    return wb_provider_set(&fx->prov, key, value, fx->err, sizeof(fx->err));
}

#define SET_OK(fx, k, v)                                                                           \
    do {                                                                                           \
        int r_ = set(fx, k, v);                                                                    \
        if (r_ != WB_OK)                                                                           \
            fail_msg("%s = '%s' gave %d (%s)", k, v, r_, (fx)->err);                               \
    } while (0)

#define SET_BAD(fx, k, v, msg)                                                                     \
    do {                                                                                           \
        assert_int_equal(set(fx, k, v), WB_ERR_CONFIG);                                            \
        assert_string_equal((fx)->err, msg);                                                       \
    } while (0)

static void test_set_type(void **state)
{
    fx_t *fx = *state;
    static const char *const one[] = {"/kind"};
    static const char *const three[] = {"/a", "/b/c", "/d~1e"};
    static const char *const four[] = {"/1", "/2", "/3", "/4"};

    SET_OK(fx, "type", "/kind");
    expect_ptrs(&fx->prov, 1, one);
    /* separated by commas, spaces or both; replaces the previous list */
    SET_OK(fx, "type", "/a,/b/c , /d~1e");
    expect_ptrs(&fx->prov, 3, three);
    SET_OK(fx, "type", "/a /b/c,,/d~1e");
    expect_ptrs(&fx->prov, 3, three);
    SET_OK(fx, "type", "/1,/2,/3,/4");
    expect_ptrs(&fx->prov, 4, four);

    SET_BAD(fx, "type", "/1,/2,/3,/4,/5", "at most 4 pointers");
    SET_BAD(fx, "type", "", "at least one JSON Pointer is required");
    SET_BAD(fx, "type", " , ,", "at least one JSON Pointer is required");
    SET_BAD(fx, "type", "event", "'event' is not a JSON Pointer (RFC 6901, e.g. /data/id)");
    SET_BAD(fx, "type", "/a,b", "'b' is not a JSON Pointer (RFC 6901, e.g. /data/id)");
    /* usable again after errors */
    SET_OK(fx, "type", "/kind");
    expect_ptrs(&fx->prov, 1, one);
}

static void test_set_pointers(void **state)
{
    fx_t *fx = *state;
    static const char *const keys[] = {"id", "subject", "time"};
    for (unsigned i = 0; i < WB_ARRAY_SIZE(keys); i++) {
        char **field = i == 0   ? &fx->prov.id_ptr
                       : i == 1 ? &fx->prov.subject_ptr
                                : &fx->prov.time_ptr;
        SET_OK(fx, keys[i], "/data/x");
        assert_string_equal(*field, "/data/x");
        SET_OK(fx, keys[i], "/other");
        assert_string_equal(*field, "/other");
        /* a bad pointer is refused and the previous value stays */
        SET_BAD(fx, keys[i], "data/x", "'data/x' is not a JSON Pointer (RFC 6901, e.g. /data/id)");
        assert_string_equal(*field, "/other");
        SET_BAD(fx, keys[i], "#/a", "'#/a' is not a JSON Pointer (RFC 6901, e.g. /data/id)");
        /* empty: none (generated id, no subject, receive time) */
        SET_OK(fx, keys[i], "");
        assert_null(*field);
        SET_OK(fx, keys[i], "/");
        assert_string_equal(*field, "/");
    }
}

static void test_set_required(void **state)
{
    fx_t *fx = *state;
    char longv[200];

    SET_OK(fx, "required", "id");
    assert_int_equal(fx->prov.required, WB_REQ_ID);
    SET_OK(fx, "required", "subject");
    assert_int_equal(fx->prov.required, WB_REQ_SUBJECT);
    SET_OK(fx, "required", "time");
    assert_int_equal(fx->prov.required, WB_REQ_TIME);
    SET_OK(fx, "required", "type,id, subject time");
    assert_int_equal(fx->prov.required, WB_REQ_ID | WB_REQ_SUBJECT | WB_REQ_TIME);
    /* type is always required, and alone means nothing else */
    SET_OK(fx, "required", "type");
    assert_int_equal(fx->prov.required, 0);
    SET_OK(fx, "required", "id,id");
    assert_int_equal(fx->prov.required, WB_REQ_ID);
    SET_OK(fx, "required", "");
    assert_int_equal(fx->prov.required, 0);

    SET_OK(fx, "required", "id");
    SET_BAD(fx, "required", "id,colour", "'colour' is not one of type, id, subject, time");
    SET_BAD(fx, "required", "ID", "'ID' is not one of type, id, subject, time");
    assert_int_equal(fx->prov.required, WB_REQ_ID); /* unchanged */
    memset(longv, 'i', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    SET_BAD(fx, "required", longv, "value too long");
}

static void test_set_source(void **state)
{
    fx_t *fx = *state;
    SET_OK(fx, "source", "https://acme.example/webhooks");
    assert_string_equal(fx->prov.source, "https://acme.example/webhooks");
    SET_OK(fx, "source", "urn:acme");
    assert_string_equal(fx->prov.source, "urn:acme");
    SET_BAD(fx, "source", "", "must not be empty");
    assert_string_equal(fx->prov.source, "urn:acme");
}

static void test_set_time_format(void **state)
{
    fx_t *fx = *state;
    static const struct {
        const char *name;
        wb_time_format_t fmt;
    } t[] = {
        {"rfc3339", WB_TIME_RFC3339}, {"naive-utc", WB_TIME_NAIVE_UTC}, {"unix", WB_TIME_UNIX},
        {"unix-ms", WB_TIME_UNIX_MS}, {"auto", WB_TIME_AUTO},
    };
    for (unsigned i = 0; i < WB_ARRAY_SIZE(t); i++) {
        SET_OK(fx, "time_format", t[i].name);
        assert_int_equal(fx->prov.time_format, t[i].fmt);
    }
    SET_OK(fx, "time_format", "unix");
    SET_BAD(fx, "time_format", "iso8601",
            "'iso8601' is not one of auto, rfc3339, naive-utc, unix, unix-ms");
    SET_BAD(fx, "time_format", "RFC3339",
            "'RFC3339' is not one of auto, rfc3339, naive-utc, unix, unix-ms");
    SET_BAD(fx, "time_format", "", "'' is not one of auto, rfc3339, naive-utc, unix, unix-ms");
    assert_int_equal(fx->prov.time_format, WB_TIME_UNIX);
}

static void test_set_key(void **state)
{
    fx_t *fx = *state;
    SET_OK(fx, "key", "id");
    assert_int_equal(fx->prov.key_by, WB_KEY_ID);
    SET_OK(fx, "key", "subject");
    assert_int_equal(fx->prov.key_by, WB_KEY_SUBJECT);
    SET_OK(fx, "key", "id");
    SET_BAD(fx, "key", "uuid", "'uuid' is not one of subject, id");
    SET_BAD(fx, "key", "", "'' is not one of subject, id");
    assert_int_equal(fx->prov.key_by, WB_KEY_ID);
}

static void test_set_deadline(void **state)
{
    fx_t *fx = *state;
    SET_OK(fx, "deadline_ms", "100");
    assert_int_equal(fx->prov.deadline_ms, 100);
    SET_OK(fx, "deadline_ms", "120000");
    assert_int_equal(fx->prov.deadline_ms, 120000);
    SET_OK(fx, "deadline_ms", "4500");
    assert_int_equal(fx->prov.deadline_ms, 4500);
    SET_BAD(fx, "deadline_ms", "99", "99 is outside [100, 120000]");
    SET_BAD(fx, "deadline_ms", "120001", "120001 is outside [100, 120000]");
    SET_BAD(fx, "deadline_ms", "0", "0 is outside [100, 120000]");
    SET_BAD(fx, "deadline_ms", "-1", "'-1' is not a number");
    SET_BAD(fx, "deadline_ms", "", "'' is not a number");
    SET_BAD(fx, "deadline_ms", "5s", "'5s' is not a number");
    SET_BAD(fx, "deadline_ms", "1.5", "'1.5' is not a number");
    SET_BAD(fx, "deadline_ms", "99999999999999999999999",
            "'99999999999999999999999' is not a number");
    /* larger than unsigned: caught by the range, not wrapped */
    SET_BAD(fx, "deadline_ms", "4294967396", "4294967396 is outside [100, 120000]");
    assert_int_equal(fx->prov.deadline_ms, 4500);
}

static void test_set_max_body(void **state)
{
    fx_t *fx = *state;
    SET_OK(fx, "max_body", "64");
    assert_int_equal(fx->prov.max_body, 64);
    SET_OK(fx, "max_body", "67108864");
    assert_int_equal(fx->prov.max_body, 64 * 1024 * 1024);
    SET_OK(fx, "max_body", "2048");
    SET_BAD(fx, "max_body", "63", "63 is outside [64, 67108864]");
    SET_BAD(fx, "max_body", "67108865", "67108865 is outside [64, 67108864]");
    SET_BAD(fx, "max_body", "1MiB", "'1MiB' is not a number");
    SET_BAD(fx, "max_body", "-64", "'-64' is not a number");
    assert_int_equal(fx->prov.max_body, 2048);
}

static void test_set_deadletter_status(void **state)
{
    fx_t *fx = *state;
    SET_OK(fx, "deadletter_status", "400");
    assert_int_equal(fx->prov.deadletter_status, 400);
    SET_OK(fx, "deadletter_status", "200");
    assert_int_equal(fx->prov.deadletter_status, 200);
    SET_OK(fx, "deadletter_status", "400");
    SET_BAD(fx, "deadletter_status", "422", "'422' is not 200 or 400");
    SET_BAD(fx, "deadletter_status", "410", "'410' is not 200 or 400");
    SET_BAD(fx, "deadletter_status", "0200", "'0200' is not 200 or 400");
    SET_BAD(fx, "deadletter_status", "", "'' is not 200 or 400");
    assert_int_equal(fx->prov.deadletter_status, 400);
}

static void test_set_failure_statuses(void **state)
{
    fx_t *fx = *state;
    /* a provider of the configuration answers 503, as before */
    assert_int_equal(fx->prov.nfailure_statuses, 1);
    assert_int_equal(fx->prov.failure_statuses[0], 503);
    SET_OK(fx, "failure_statuses", "502, 504,500");
    assert_int_equal(fx->prov.nfailure_statuses, 3);
    assert_int_equal(fx->prov.failure_statuses[0], 502);
    assert_int_equal(fx->prov.failure_statuses[1], 504);
    assert_int_equal(fx->prov.failure_statuses[2], 500);
    SET_BAD(fx, "failure_statuses", "503,410", "'503,410' is not a list of 500, 502, 503, 504");
    SET_OK(fx, "failure_statuses", "503,");
    assert_int_equal(fx->prov.nfailure_statuses, 1); /* "503," is one code */
    SET_BAD(fx, "failure_statuses", "200", "'200' is not a list of 500, 502, 503, 504");
    SET_BAD(fx, "failure_statuses", "5031", "'5031' is not a list of 500, 502, 503, 504");
    SET_BAD(fx, "failure_statuses", "503x", "'503x' is not a list of 500, 502, 503, 504");
    SET_BAD(fx, "failure_statuses", "", "at least one code (500, 502, 503, 504)");
    SET_BAD(fx, "failure_statuses", "503,503,503,503,503,503,503,503,503", "at most 8 codes");
    assert_int_equal(fx->prov.nfailure_statuses, 1);
}

static void test_piriod_failures_rotate(void **state)
{
    (void)state;
    wb_provider_t prov;
    assert_int_equal(wb_provider_init(&prov, "piriod"), WB_OK);
    /* Piriod disables a webhook after the same failing status 3 times */
    assert_true(prov.nfailure_statuses >= 3);
    for (unsigned i = 0; i < prov.nfailure_statuses; i++)
        for (unsigned j = i + 1; j < prov.nfailure_statuses; j++)
            assert_int_not_equal(prov.failure_statuses[i], prov.failure_statuses[j]);
    wb_provider_free(&prov);
}

static void test_set_unknown_topic(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(fx->prov.unknown_topic, WB_UNKNOWN_TOPIC_DEADLETTER);
    SET_OK(fx, "unknown_topic", "webhooks.acme.other");
    assert_int_equal(fx->prov.unknown_topic, WB_UNKNOWN_TOPIC_TOPIC);
    assert_string_equal(fx->prov.unknown_topic_name, "webhooks.acme.other");
    SET_OK(fx, "unknown_topic", "fail");
    assert_int_equal(fx->prov.unknown_topic, WB_UNKNOWN_TOPIC_FAIL);
    assert_null(fx->prov.unknown_topic_name);
    SET_OK(fx, "unknown_topic", "deadletter");
    assert_int_equal(fx->prov.unknown_topic, WB_UNKNOWN_TOPIC_DEADLETTER);
    SET_BAD(fx, "unknown_topic", "no/slash", "'no/slash' is not deadletter, fail or a Kafka topic name");
    SET_BAD(fx, "unknown_topic", "", "'' is not deadletter, fail or a Kafka topic name");
    assert_int_equal(fx->prov.unknown_topic, WB_UNKNOWN_TOPIC_DEADLETTER);
}

static void test_set_enabled(void **state)
{
    fx_t *fx = *state;
    SET_OK(fx, "enabled", "false");
    assert_int_equal(fx->prov.enabled, 0);
    SET_OK(fx, "enabled", "true");
    assert_int_equal(fx->prov.enabled, 1);
    SET_OK(fx, "enabled", "0");
    assert_int_equal(fx->prov.enabled, 0);
    SET_OK(fx, "enabled", "1");
    assert_int_equal(fx->prov.enabled, 1);
    SET_BAD(fx, "enabled", "yes", "'yes' is not true or false");
    SET_BAD(fx, "enabled", "2", "'2' is not true or false");
    SET_BAD(fx, "enabled", "", "'' is not true or false");
    assert_int_equal(fx->prov.enabled, 1);
}

static void test_set_unknown(void **state)
{
    fx_t *fx = *state;
    SET_BAD(fx, "colour", "blue", "unknown key");
    SET_BAD(fx, "", "x", "unknown key");
    SET_BAD(fx, "Type", "/x", "unknown key");
    SET_BAD(fx, "name", "other", "unknown key");
    /* authentication keys belong to auth.c, which config.c calls */
    SET_BAD(fx, "auth", "none", "unknown key");
    SET_BAD(fx, "auth.header", "X-Token", "unknown key");
    assert_string_equal(fx->prov.name, "acme");
    assert_null(fx->prov.auth);
}

static void test_set_no_err_buffer(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(wb_provider_set(&fx->prov, "colour", "x", NULL, 0), WB_ERR_CONFIG);
    assert_int_equal(wb_provider_set(&fx->prov, "deadline_ms", "x", NULL, 0), WB_ERR_CONFIG);
    assert_int_equal(wb_provider_set(&fx->prov, "type", "x", NULL, 0), WB_ERR_CONFIG);
    /* a small buffer is truncated, still terminated */
    char small[8];
    memset(small, 'X', sizeof(small));
    assert_int_equal(wb_provider_set(&fx->prov, "colour", "x", small, sizeof(small)),
                     WB_ERR_CONFIG);
    assert_string_equal(small, "unknown");
}

static void test_name_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "a", "0", "piriod", "acme2", "42shop", "abcdefghijklmnopqrstuvwxyz012345"}; /* 32 */
    static const char *const bad[] = {
        "",
        "Acme",
        "ACME",
        "ac-me",
        "ac_me",
        "ac.me",
        "ac me",
        "acme/",
        "caf\xc3\xa9",
        " acme",
        "abcdefghijklmnopqrstuvwxyz0123456", /* 33 */
    };
    for (unsigned i = 0; i < WB_ARRAY_SIZE(good); i++)
        if (!wb_provider_name_valid(good[i], strlen(good[i])))
            fail_msg("'%s' refused", good[i]);
    for (unsigned i = 0; i < WB_ARRAY_SIZE(bad); i++)
        if (wb_provider_name_valid(bad[i], strlen(bad[i])))
            fail_msg("'%s' accepted", bad[i]);
    /* the length counts, not the NUL */
    assert_true(wb_provider_name_valid("acme!", 4));
    assert_false(wb_provider_name_valid("acme!", 5));
    assert_false(wb_provider_name_valid("ac\0me", 5));
    assert_false(wb_provider_name_valid("acme", 0));
}

#define FX(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtins_list),
        cmocka_unit_test(test_init_piriod),
        cmocka_unit_test(test_init_shoperti),
        cmocka_unit_test(test_init_bonifiq),
        cmocka_unit_test(test_init_new),
        FX(test_set_type),
        FX(test_set_pointers),
        FX(test_set_required),
        FX(test_set_source),
        FX(test_set_time_format),
        FX(test_set_key),
        FX(test_set_deadline),
        FX(test_set_max_body),
        FX(test_set_deadletter_status),
        FX(test_set_enabled),
        FX(test_set_failure_statuses),
        cmocka_unit_test(test_piriod_failures_rotate),
        FX(test_set_unknown_topic),
        FX(test_set_unknown),
        FX(test_set_no_err_buffer),
        cmocka_unit_test(test_name_valid),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
