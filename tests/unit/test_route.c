/* test_route.c - route.c: the event type "<provider>.<event>" (lower case,
 * every run of bytes outside [a-z0-9] one '.', none leading or trailing)
 * and the topic chosen for it ([routes] globs in order, else
 * "<prefix>.<type>", never over Kafka's 249 bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "route.h"

/* Normalizes event (NUL-terminated) for provider into out; returns the result. */
static int type_of(const char *provider, const char *event, char *out, size_t outsz)
{
    return wb_route_type(out, outsz, provider, event, strlen(event));
}

static void expect_type(const char *provider, const char *event, const char *want)
{
    char out[WB_TYPE_MAX + 1];
    int n = type_of(provider, event, out, sizeof(out));
    if (n < 0)
        fail_msg("'%s' gave %d, want '%s'", event, n, want);
    assert_string_equal(out, want);
    assert_int_equal(n, (int)strlen(want));
}

static void expect_type_err(const char *provider, const char *event, int want)
{
    char out[WB_TYPE_MAX + 1];
    int n = type_of(provider, event, out, sizeof(out));
    if (n != want)
        fail_msg("'%s' gave %d, want %d", event, n, want);
}

static void test_type_providers(void **state)
{
    (void)state;
    expect_type("bonifiq", "Point_Add", "bonifiq.point.add");
    expect_type("shoperti", "orders/created", "shoperti.orders.created");
    expect_type("piriod", "payment.created", "piriod.payment.created");
    expect_type("bonifiq", "PointAdd", "bonifiq.pointadd");
}

static void test_type_separators(void **state)
{
    (void)state;
    /* a run of separators is one '.' */
    expect_type("p", "a__--//b", "p.a.b");
    expect_type("p", "a. .b", "p.a.b");
    expect_type("p", "a\t\n\r b", "p.a.b");
    expect_type("p", "orders..created", "p.orders.created");
    /* none leading or trailing */
    expect_type("p", "__a.b__", "p.a.b");
    expect_type("p", ".a", "p.a");
    expect_type("p", "a.", "p.a");
    expect_type("p", "///orders/created///", "p.orders.created");
    expect_type("p", "  spaced out  ", "p.spaced.out");
    /* punctuation of every kind */
    expect_type("p", "a!b@c#d$e%f^g&h*i(j)k", "p.a.b.c.d.e.f.g.h.i.j.k");
    expect_type("p", "a\"b\\c{d}e[f]g:h;i'j,k<l>m?n|o~p`q=r+s",
                "p.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s");
}

static void test_type_case_and_digits(void **state)
{
    (void)state;
    expect_type("p", "ORDER.PAID", "p.order.paid");
    expect_type("p", "OrDeR_PaId", "p.order.paid");
    expect_type("p", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "p.abcdefghijklmnopqrstuvwxyz");
    expect_type("p", "v2.Order3Created", "p.v2.order3created");
    expect_type("p", "404", "p.404");
    expect_type("p", "0123456789", "p.0123456789");
    expect_type("p", "a1_2b", "p.a1.2b");
    /* the provider name is copied as given */
    expect_type("acme2", "x", "acme2.x");
}

static void test_type_non_ascii(void **state)
{
    (void)state;
    /* every byte of a multi-byte UTF-8 sequence is a separator */
    expect_type("p", "caf\xc3\xa9", "p.caf");
    expect_type("p", "a\xc3\xa7\xc3\xa3o", "p.a.o");
    expect_type("p",
                "pagamento_conclu\xc3\xad"
                "do",
                "p.pagamento.conclu.do");
    expect_type("p", "\xf0\x9f\x98\x80order\xf0\x9f\x98\x80paid\xf0\x9f\x98\x80", "p.order.paid");
    /* bytes that are letters in Latin-1 are not [A-Z] either */
    expect_type("p", "\xc0\xc9x\xff", "p.x");
    /* upper-case mapping stays within ASCII */
    expect_type("p", "\x80Z\x7f", "p.z");
}

static void test_type_length_and_nul(void **state)
{
    (void)state;
    char out[WB_TYPE_MAX + 1];
    /* event_len is the length, not strlen */
    assert_int_equal(wb_route_type(out, sizeof(out), "p", "abcdef", 2), 4);
    assert_string_equal(out, "p.ab");
    assert_int_equal(wb_route_type(out, sizeof(out), "p", "a\0b", 3), 5);
    assert_string_equal(out, "p.a.b");
    assert_int_equal(wb_route_type(out, sizeof(out), "p", "\0\0\0", 3), WB_ERR_SHAPE);
    /* event need not be NUL-terminated */
    char ev[3] = {'X', '-', 'Y'};
    assert_int_equal(wb_route_type(out, sizeof(out), "p", ev, sizeof(ev)), 5);
    assert_string_equal(out, "p.x.y");
}

static void test_type_empty(void **state)
{
    (void)state;
    char out[WB_TYPE_MAX + 1];
    assert_int_equal(wb_route_type(out, sizeof(out), "p", "", 0), WB_ERR_SHAPE);
    assert_int_equal(wb_route_type(out, sizeof(out), "p", NULL, 0), WB_ERR_SHAPE);
    expect_type_err("p", "_", WB_ERR_SHAPE);
    expect_type_err("p", "...", WB_ERR_SHAPE);
    expect_type_err("p", "__--//  ", WB_ERR_SHAPE);
    expect_type_err("p", "\xc3\xa9\xc3\xa7", WB_ERR_SHAPE);
    expect_type_err("p", "\xf0\x9f\x98\x80", WB_ERR_SHAPE);
}

static void test_type_too_long(void **state)
{
    (void)state;
    char ev[1024], out[WB_TYPE_MAX + 1];

    /* "p." + 198 letters is exactly WB_TYPE_MAX */
    memset(ev, 'a', sizeof(ev));
    assert_int_equal(wb_route_type(out, sizeof(out), "p", ev, WB_TYPE_MAX - 2), WB_TYPE_MAX);
    assert_int_equal(strlen(out), WB_TYPE_MAX);
    assert_int_equal(wb_route_type(out, sizeof(out), "p", ev, WB_TYPE_MAX - 1), WB_ERR_TOO_LARGE);
    assert_int_equal(wb_route_type(out, sizeof(out), "p", ev, sizeof(ev)), WB_ERR_TOO_LARGE);

    /* trailing separators cost nothing; a separator before one more letter does */
    memcpy(ev + WB_TYPE_MAX - 2, "____", 4);
    assert_int_equal(wb_route_type(out, sizeof(out), "p", ev, WB_TYPE_MAX + 2), WB_TYPE_MAX);
    ev[WB_TYPE_MAX + 2] = 'b';
    assert_int_equal(wb_route_type(out, sizeof(out), "p", ev, WB_TYPE_MAX + 3), WB_ERR_TOO_LARGE);
    /* 197 letters, '_', 'b': the '.' fits but 'b' does not */
    memset(ev, 'a', sizeof(ev));
    ev[WB_TYPE_MAX - 3] = '_';
    ev[WB_TYPE_MAX - 2] = 'b';
    assert_int_equal(wb_route_type(out, sizeof(out), "p", ev, WB_TYPE_MAX - 1), WB_ERR_TOO_LARGE);

    /* a provider name that does not fit on its own */
    char prov[WB_TYPE_MAX + 2];
    memset(prov, 'q', sizeof(prov) - 1);
    prov[sizeof(prov) - 1] = '\0';
    assert_int_equal(wb_route_type(out, sizeof(out), prov, "a", 1), WB_ERR_TOO_LARGE);
    /* small buffers */
    assert_int_equal(wb_route_type(out, 4, "p", "ab", 2), WB_ERR_TOO_LARGE);
    assert_int_equal(wb_route_type(out, 5, "p", "ab", 2), 4);
    assert_string_equal(out, "p.ab");
}

static void test_type_stays_in_buffer(void **state)
{
    (void)state;
    char big[512], ev[400];
    memset(ev, 'z', sizeof(ev));
    for (size_t outsz = 1; outsz < 300; outsz++) {
        memset(big, 'X', sizeof(big));
        int n = wb_route_type(big, outsz, "prov", ev, sizeof(ev));
        assert_int_equal(n, WB_ERR_TOO_LARGE);
        for (size_t i = outsz; i < sizeof(big); i++)
            if (big[i] != 'X')
                fail_msg("outsz %zu: byte %zu written", outsz, i);
    }
    /* on success the result is NUL-terminated and nothing after it is touched */
    memset(big, 'X', sizeof(big));
    assert_int_equal(wb_route_type(big, 20, "prov", "A_b", 3), 8);
    assert_int_equal(big[8], '\0');
    for (size_t i = 20; i < sizeof(big); i++)
        assert_int_equal(big[i], 'X');
}

/* A configuration built by hand: route.c only reads topic_prefix and routes. */
static void cfg_init(wb_config_t *cfg, const char *prefix)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->topic_prefix = (char *)prefix;
}

static void cfg_route(wb_config_t *cfg, const char *glob, const char *topic)
{
    assert_true(cfg->nroutes < WB_MAX_ROUTES);
    cfg->routes[cfg->nroutes].glob = (char *)glob;
    cfg->routes[cfg->nroutes].topic = (char *)topic;
    cfg->nroutes++;
}

static void expect_topic(const wb_config_t *cfg, const char *type, const char *want)
{
    char out[WB_TOPIC_MAX + 1];
    int r = wb_route_topic(cfg, type, out, sizeof(out));
    if (r != WB_OK)
        fail_msg("'%s' gave %d, want '%s'", type, r, want);
    assert_string_equal(out, want);
}

static void test_topic_default(void **state)
{
    (void)state;
    wb_config_t cfg;
    cfg_init(&cfg, "webhooks");
    expect_topic(&cfg, "piriod.payment.created", "webhooks.piriod.payment.created");
    expect_topic(&cfg, "bonifiq.point.add", "webhooks.bonifiq.point.add");
    cfg_init(&cfg, "prod.events");
    expect_topic(&cfg, "shoperti.orders.created", "prod.events.shoperti.orders.created");
}

static void test_topic_first_match_wins(void **state)
{
    (void)state;
    wb_config_t cfg;
    cfg_init(&cfg, "webhooks");
    cfg_route(&cfg, "piriod.payment.*", "payments");
    cfg_route(&cfg, "piriod.*", "piriod-all");
    cfg_route(&cfg, "piriod.payment.created", "never-reached");
    cfg_route(&cfg, "*.point.*", "loyalty");
    expect_topic(&cfg, "piriod.payment.created", "payments");
    expect_topic(&cfg, "piriod.payment.failed", "payments");
    expect_topic(&cfg, "piriod.invoice.paid", "piriod-all");
    expect_topic(&cfg, "bonifiq.point.add", "loyalty");
    /* no match: the default */
    expect_topic(&cfg, "shoperti.orders.created", "webhooks.shoperti.orders.created");
    /* the glob covers the whole type, not a prefix */
    expect_topic(&cfg, "xpiriod.payment", "webhooks.xpiriod.payment");

    /* a catch-all after specific rules */
    cfg_route(&cfg, "*", "everything");
    expect_topic(&cfg, "shoperti.orders.created", "everything");
    expect_topic(&cfg, "piriod.payment.created", "payments");
}

static void test_topic_globs(void **state)
{
    (void)state;
    wb_config_t cfg;
    cfg_init(&cfg, "webhooks");
    /* '*' crosses dots */
    cfg_route(&cfg, "bonifiq.*", "bonifiq-events");
    cfg_route(&cfg, "shoperti.orders.?aid", "orders-paid");
    cfg_route(&cfg, "shoperti.orders.[cu]*", "orders-changed");
    cfg_route(&cfg, "acme.exact", "acme-exact");
    expect_topic(&cfg, "bonifiq.point.add", "bonifiq-events");
    expect_topic(&cfg, "bonifiq.a.b.c.d", "bonifiq-events");
    expect_topic(&cfg, "shoperti.orders.paid", "orders-paid");
    expect_topic(&cfg, "shoperti.orders.created", "orders-changed");
    expect_topic(&cfg, "shoperti.orders.updated", "orders-changed");
    expect_topic(&cfg, "shoperti.orders.deleted", "webhooks.shoperti.orders.deleted");
    expect_topic(&cfg, "acme.exact", "acme-exact");
    expect_topic(&cfg, "acme.exact.not", "webhooks.acme.exact.not");
    /* "bonifiq.*" needs the dot */
    expect_topic(&cfg, "bonifiqx", "webhooks.bonifiqx");
}

static void test_topic_too_long(void **state)
{
    (void)state;
    wb_config_t cfg;
    char type[400], out[WB_TOPIC_MAX + 1], big[1024];
    cfg_init(&cfg, "webhooks");

    /* "webhooks." is 9 bytes: a type of 240 makes exactly 249 */
    memset(type, 'a', sizeof(type));
    type[WB_TOPIC_MAX - 9] = '\0';
    assert_int_equal(wb_route_topic(&cfg, type, out, sizeof(out)), WB_OK);
    assert_int_equal(strlen(out), WB_TOPIC_MAX);
    assert_memory_equal(out, "webhooks.aaa", 12);

    memset(type, 'a', sizeof(type));
    type[WB_TOPIC_MAX - 8] = '\0';
    assert_int_equal(wb_route_topic(&cfg, type, out, sizeof(out)), WB_ERR_TOO_LARGE);
    /* Kafka's limit holds even when the caller's buffer is larger */
    assert_int_equal(wb_route_topic(&cfg, type, big, sizeof(big)), WB_ERR_TOO_LARGE);
    type[300] = '\0';
    assert_int_equal(wb_route_topic(&cfg, type, big, sizeof(big)), WB_ERR_TOO_LARGE);

    /* a routed topic is not affected by the type's length */
    cfg_route(&cfg, "a*", "short");
    assert_int_equal(wb_route_topic(&cfg, type, out, sizeof(out)), WB_OK);
    assert_string_equal(out, "short");
    /* but must fit the caller's buffer */
    assert_int_equal(wb_route_topic(&cfg, type, out, 5), WB_ERR_TOO_LARGE);
    assert_int_equal(wb_route_topic(&cfg, type, out, 6), WB_OK);
    assert_string_equal(out, "short");
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_providers),
        cmocka_unit_test(test_type_separators),
        cmocka_unit_test(test_type_case_and_digits),
        cmocka_unit_test(test_type_non_ascii),
        cmocka_unit_test(test_type_length_and_nul),
        cmocka_unit_test(test_type_empty),
        cmocka_unit_test(test_type_too_long),
        cmocka_unit_test(test_type_stays_in_buffer),
        cmocka_unit_test(test_topic_default),
        cmocka_unit_test(test_topic_first_match_wins),
        cmocka_unit_test(test_topic_globs),
        cmocka_unit_test(test_topic_too_long),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
