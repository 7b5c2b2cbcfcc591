/* test_json.c - json.c: accept/reject table in the spirit of JSONTestSuite,
 * depth and token caps, JSON Pointer lookup, decoding, the string writer and
 * wb_utf8_valid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

#define DEPTH 64
#define MAXTOK 1024

typedef struct {
    const char *name;
    const char *doc;
    size_t len;
    int want;
} jcase_t;

/* sizeof keeps embedded NULs; beware "\xe2\x82" "a": a hex escape swallows
 * the hex digits after it unless the literal is split. */
#define Y(n, s) {n, s, sizeof(s) - 1, WB_OK}
#define N(n, s) {n, s, sizeof(s) - 1, WB_ERR_JSON}

static const jcase_t cases[] = {
    /* numbers */
    Y("y_number_0", "0"),
    Y("y_number_minus_0", "-0"),
    Y("y_number_int", "123"),
    Y("y_number_neg", "-1"),
    Y("y_number_frac", "1.5"),
    Y("y_number_zero_frac", "0.0"),
    Y("y_number_exp", "1e2"),
    Y("y_number_exp_upper_plus", "1E+2"),
    Y("y_number_exp_minus", "-1.5e-10"),
    Y("y_number_zero_exp", "0e0"),
    Y("y_number_big", "123456789012345678901234567890e999"),
    Y("y_number_in_array", "[-0.0e-0]"),
    N("n_number_leading_zero", "01"),
    N("n_number_minus_leading_zero", "-01"),
    N("n_number_double_zero", "00"),
    N("n_number_trailing_dot", "1."),
    N("n_number_leading_dot", ".1"),
    N("n_number_minus_alone", "-"),
    N("n_number_minus_space", "- 1"),
    N("n_number_plus", "+1"),
    N("n_number_exp_empty", "1e"),
    N("n_number_exp_sign_only", "1e+"),
    N("n_number_dot_exp", "1.e1"),
    N("n_number_hex", "0x1"),
    N("n_number_infinity", "Infinity"),
    N("n_number_neg_infinity", "-Infinity"),
    N("n_number_nan", "NaN"),
    N("n_number_in_array_trailing_dot", "[1.]"),
    N("n_number_two_minus", "--1"),
    /* literals */
    Y("y_true", "true"),
    Y("y_false", "false"),
    Y("y_null", "null"),
    N("n_tru", "tru"),
    N("n_truee", "truee"),
    N("n_True", "True"),
    N("n_nul", "nul"),
    N("n_fals", "fals"),
    N("n_true_then_digit", "[true1]"),
    N("n_null_in_key_position", "{null:1}"),
    /* strings */
    Y("y_string_empty", "\"\""),
    Y("y_string_ascii", "\"abc\""),
    Y("y_string_all_escapes", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""),
    Y("y_string_u0000", "\"\\u0000\""),
    Y("y_string_u_mixed_case", "\"\\uAbCd\""),
    Y("y_string_pair", "\"\\uD83D\\uDE00\""),
    Y("y_string_lone_high", "\"\\ud800\""),
    Y("y_string_lone_low", "\"\\udc00\""),
    Y("y_string_reversed_pair", "\"\\uDFFF\\uD800\""),
    Y("y_string_utf8_2", "\"\xc3\xa9\""),
    Y("y_string_utf8_U+FFFF", "\"\xef\xbf\xbf\""),
    Y("y_string_utf8_U+10FFFF", "\"\xf4\x8f\xbf\xbf\""),
    Y("y_string_utf8_U+2028", "\"\xe2\x80\xa8\""),
    Y("y_string_utf8_emoji", "\"\xf0\x9f\x98\x80\""),
    Y("y_string_del", "\"\x7f\""),
    Y("y_string_long", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9xxxxxxxxxxxxxxxxx\""),
    N("n_string_unterminated", "\"abc"),
    N("n_string_unterminated_long", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    N("n_string_backslash_at_end", "\"\\"),
    N("n_string_bad_escape_x", "\"\\x41\""),
    N("n_string_bad_escape_quote", "\"\\'\""),
    N("n_string_bad_escape_U", "\"\\U0041\""),
    N("n_string_bad_escape_0", "\"\\0\""),
    N("n_string_u_short", "\"\\u12\""),
    N("n_string_u_nonhex", "\"\\u12g4\""),
    N("n_string_u_truncated", "\"\\u12"),
    N("n_string_raw_01", "\"\x01\""),
    N("n_string_raw_tab", "\"\t\""),
    N("n_string_raw_newline", "\"a\nb\""),
    N("n_string_raw_nul", "\"\0\""),
    N("n_string_raw_1f_long", "\"aaaaaaaaaaaaaaaa\x1f\""),
    N("n_string_raw_01_mid_long", "\"abc\x01" "defghijklmnopq\""),
    N("n_string_raw_80_mid_long", "\"abcdef\x80" "ghijklmnopq\""),
    N("n_string_single_quotes", "'a'"),
    N("n_string_unquoted", "abc"),
    /* UTF-8 */
    N("n_utf8_bom", "\xef\xbb\xbf" "1"),
    N("n_utf8_bom_string", "\xef\xbb\xbf\"\""),
    N("n_utf8_overlong_C0_80", "\"\xc0\x80\""),
    N("n_utf8_overlong_C1_BF", "\"\xc1\xbf\""),
    N("n_utf8_overlong_E0_80_AF", "\"\xe0\x80\xaf\""),
    N("n_utf8_overlong_F0_80_80_AF", "\"\xf0\x80\x80\xaf\""),
    N("n_utf8_surrogate_ED_A0_80", "\"\xed\xa0\x80\""),
    N("n_utf8_surrogate_ED_BF_BF", "\"\xed\xbf\xbf\""),
    N("n_utf8_above_10FFFF", "\"\xf4\x90\x80\x80\""),
    N("n_utf8_F5", "\"\xf5\x80\x80\x80\""),
    N("n_utf8_FF", "\"\xff\""),
    N("n_utf8_lone_continuation", "\"\x80\""),
    N("n_utf8_truncated_2", "\"\xc3\""),
    N("n_utf8_truncated_3", "\"\xe2\x82\""),
    N("n_utf8_truncated_4", "\"\xf0\x9f\x98\""),
    N("n_utf8_truncated_at_eof", "\"\xf0\x9f"),
    N("n_utf8_5_bytes", "\"\xf8\x88\x80\x80\x80\""),
    N("n_utf8_outside_string", "[\xc3\xa9]"),
    /* whitespace and framing */
    Y("y_ws_all_four", " \t\r\n1 \t\r\n"),
    Y("y_ws_inside", " [ 1 , { \"a\" : [ ] } ] "),
    N("n_empty", ""),
    N("n_ws_only", " \t\r\n"),
    N("n_ws_formfeed", "\f1"),
    N("n_ws_vtab", "[\v1]"),
    N("n_ws_nbsp", "\xc2\xa0" "1"),
    N("n_two_numbers", "1 2"),
    N("n_two_arrays", "[][]"),
    N("n_two_objects", "{}{}"),
    N("n_two_strings", "\"a\"\"b\""),
    N("n_trailing_garbage", "[] x"),
    N("n_trailing_comma_root", "1,"),
    N("n_trailing_nul", "[1]\0"),
    N("n_leading_nul", "\0" "1"),
    N("n_comment_line", "[1]//"),
    N("n_comment_block", "/**/1"),
    /* arrays */
    Y("y_array_empty", "[]"),
    Y("y_array_nested_empty", "[[]]"),
    Y("y_array_mixed", "[1,\"a\",true,false,null,{},[]]"),
    N("n_array_trailing_comma", "[1,]"),
    N("n_array_leading_comma", "[,1]"),
    N("n_array_double_comma", "[1,,2]"),
    N("n_array_only_comma", "[,]"),
    N("n_array_no_comma", "[1 2]"),
    N("n_array_colon", "[\"a\":1]"),
    N("n_array_unclosed", "[1"),
    N("n_array_unclosed_comma", "[1,"),
    N("n_array_open_only", "["),
    N("n_array_close_only", "]"),
    N("n_array_extra_close", "[1]]"),
    N("n_array_closed_by_brace", "[1}"),
    N("n_array_empty_closed_by_brace", "[}"),
    /* objects */
    Y("y_object_empty", "{}"),
    Y("y_object_simple", "{\"a\":1}"),
    Y("y_object_empty_key", "{\"\":0}"),
    Y("y_object_duplicate_keys", "{\"a\":1,\"a\":2}"),
    Y("y_object_nested", "{\"a\":{\"b\":{\"c\":[1,{\"d\":null}]}},\"e\":\"f\"}"),
    Y("y_object_escaped_key", "{\"a\\u0062\":1}"),
    N("n_object_key_without_value", "{\"a\"}"),
    N("n_object_trailing_comma", "{\"a\":1,}"),
    N("n_object_only_comma", "{,}"),
    N("n_object_missing_colon", "{\"a\" 1}"),
    N("n_object_double_colon", "{\"a\"::1}"),
    N("n_object_number_key", "{1:2}"),
    N("n_object_unquoted_key", "{a:1}"),
    N("n_object_single_quoted_key", "{'a':1}"),
    N("n_object_array_key", "{[]:1}"),
    N("n_object_missing_comma", "{\"a\":1 \"b\":2}"),
    N("n_object_missing_value", "{\"a\":}"),
    N("n_object_missing_value_comma", "{\"a\":,\"b\":1}"),
    N("n_object_comma_then_value", "{\"a\":1,2}"),
    N("n_object_unclosed", "{\"a\":1"),
    N("n_object_closed_by_bracket", "{\"a\":1]"),
    N("n_object_empty_closed_by_bracket", "{]"),
    N("n_object_inner_mismatch", "{\"a\":[}"),
};

static void test_table(void **state)
{
    (void)state;
    wb_json_t js;
    char err[128];
    int failures = 0;

    wb_json_init(&js, MAXTOK);
    for (size_t i = 0; i < WB_ARRAY_SIZE(cases); i++) {
        const jcase_t *c = &cases[i];
        err[0] = '\0';
        int rc = wb_json_parse(&js, c->doc, c->len, DEPTH, err, sizeof(err));
        if (rc != c->want) {
            print_error("%s: got %d (%s), want %d\n", c->name, rc, err, c->want);
            failures++;
            continue;
        }
        if (rc == WB_OK) {
            /* accepted text is UTF-8, and the root spans it minus whitespace */
            wb_json_val_t root = wb_json_root(&js);
            if (!wb_utf8_valid(c->doc, c->len) || root.kind == WB_JSON_MISSING) {
                print_error("%s: accepted but not UTF-8 or no root\n", c->name);
                failures++;
            }
        } else if (strstr(err, " at byte ") == NULL) {
            print_error("%s: message without offset: %s\n", c->name, err);
            failures++;
        }
    }
    wb_json_free(&js);
    assert_int_equal(failures, 0);
    assert_true(WB_ARRAY_SIZE(cases) >= 60);
}

static int parse_err(const char *doc, size_t len, unsigned depth, unsigned maxtok, char *err,
                     size_t errsz)
{
    wb_json_t js;
    wb_json_init(&js, maxtok);
    int rc = wb_json_parse(&js, doc, len, depth, err, errsz);
    wb_json_free(&js);
    return rc;
}

static int parse_len(const char *doc, size_t len, unsigned depth, unsigned maxtok)
{
    char err[128];
    return parse_err(doc, len, depth, maxtok, err, sizeof(err));
}

static int parse(const char *doc, unsigned depth, unsigned maxtok)
{
    return parse_len(doc, strlen(doc), depth, maxtok);
}

static void test_error_offsets(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        const char *msg;
    } t[] = {
        {"[1,]", "syntax error at byte 3"},
        {"{\"a\":01}", "syntax error at byte 6"},
        {"\"ab\x01\"", "control character in string at byte 3"},
        {"[\"\xc0\x80\"]", "invalid UTF-8 at byte 2"},
        {"\"\\q\"", "invalid escape at byte 2"},
        {"1.", "invalid number at byte 2"},
        {"nulx", "invalid literal at byte 3"},
        {"[] 1", "trailing data at byte 3"},
        {"   ", "empty document at byte 3"},
        {"[1", "unexpected end at byte 2"},
    };
    char err[128];
    for (size_t i = 0; i < WB_ARRAY_SIZE(t); i++) {
        assert_int_equal(parse_err(t[i].doc, strlen(t[i].doc), DEPTH, MAXTOK, err, sizeof(err)),
                         WB_ERR_JSON);
        assert_string_equal(err, t[i].msg);
    }
    /* a NULL or zero-sized error buffer is fine */
    wb_json_t js;
    wb_json_init(&js, MAXTOK);
    assert_int_equal(wb_json_parse(&js, "[", 1, DEPTH, NULL, 0), WB_ERR_JSON);
    assert_int_equal(wb_json_parse(&js, NULL, 0, DEPTH, NULL, 0), WB_ERR_JSON);
    wb_json_free(&js);
}

/* n levels of "[" ... "]" or {"a": ... } around 1. */
static char *nest(unsigned n, int objects, size_t *len)
{
    size_t cap = (size_t)n * 6 + 2, l = 0;
    char *d = malloc(cap);
    assert_non_null(d);
    for (unsigned i = 0; i < n; i++) {
        if (objects) {
            memcpy(d + l, "{\"a\":", 5);
            l += 5;
        } else {
            d[l++] = '[';
        }
    }
    d[l++] = '1';
    for (unsigned i = 0; i < n; i++)
        d[l++] = objects ? '}' : ']';
    *len = l;
    return d;
}

static void test_depth(void **state)
{
    (void)state;
    size_t len;
    char err[128];

    for (int objects = 0; objects <= 1; objects++) {
        for (unsigned d = 1; d <= 70; d++) {
            char *doc = nest(d, objects, &len);
            assert_int_equal(parse_len(doc, len, d, 100000), WB_OK);
            assert_int_equal(parse_len(doc, len, d - 1, 100000), WB_ERR_DEPTH);
            free(doc);
        }
    }
    char *doc = nest(DEPTH + 1, 0, &len);
    assert_int_equal(parse_err(doc, len, DEPTH, MAXTOK, err, sizeof(err)), WB_ERR_DEPTH);
    assert_string_equal(err, "nesting deeper than 64 at byte 64");
    free(doc);

    assert_int_equal(parse("1", 0, MAXTOK), WB_OK);
    assert_int_equal(parse("\"a\"", 0, MAXTOK), WB_OK);
    assert_int_equal(parse("[]", 0, MAXTOK), WB_ERR_DEPTH);
    assert_int_equal(parse("{}", 0, MAXTOK), WB_ERR_DEPTH);
    assert_int_equal(parse("[]", 1, MAXTOK), WB_OK);
    assert_int_equal(parse("[[]]", 1, MAXTOK), WB_ERR_DEPTH);
    assert_int_equal(parse("[[]]", 2, MAXTOK), WB_OK);
    assert_int_equal(parse("[[],[],{\"a\":1}]", 2, MAXTOK), WB_OK);
    assert_int_equal(parse("[[],[],{\"a\":[]}]", 2, MAXTOK), WB_ERR_DEPTH);
    assert_int_equal(parse("[[],[],{\"a\":[]}]", 3, MAXTOK), WB_OK);
}

static void test_depth_100000(void **state)
{
    (void)state;
    const size_t n = 100000;
    char *doc = malloc(2 * n);
    assert_non_null(doc);
    memset(doc, '[', n);
    memset(doc + n, ']', n);

    /* open only, and complete: rejected by depth, well before any cap */
    assert_int_equal(parse_len(doc, n, DEPTH, MAXTOK), WB_ERR_DEPTH);
    assert_int_equal(parse_len(doc, 2 * n, DEPTH, MAXTOK), WB_ERR_DEPTH);
    /* allowed deep: the token cap still holds */
    assert_int_equal(parse_len(doc, 2 * n, (unsigned)n, MAXTOK), WB_ERR_TOO_LARGE);
    /* allowed deep and enough tokens: no recursion anywhere, so no stack
     * overflow (jsmn is O(depth) per bracket: 20000 keeps it fast) */
    const size_t m = 20000;
    assert_int_equal(parse_len(doc + n - m, 2 * m, (unsigned)m, (unsigned)m), WB_OK);
    assert_int_equal(parse_len(doc + n - m, 2 * m, (unsigned)m - 1, (unsigned)m), WB_ERR_DEPTH);
    assert_int_equal(parse_len(doc + n - m, 2 * m, (unsigned)m, (unsigned)m - 1),
                     WB_ERR_TOO_LARGE);
    free(doc);
}

static void test_token_cap(void **state)
{
    (void)state;
    /* tokens: every value and every key */
    assert_int_equal(parse("[1,2,3]", DEPTH, 4), WB_OK);
    assert_int_equal(parse("[1,2,3]", DEPTH, 3), WB_ERR_TOO_LARGE);
    assert_int_equal(parse("{\"a\":1}", DEPTH, 3), WB_OK);
    assert_int_equal(parse("{\"a\":1}", DEPTH, 2), WB_ERR_TOO_LARGE);
    assert_int_equal(parse("{\"a\":1,\"b\":{}}", DEPTH, 5), WB_OK);
    assert_int_equal(parse("{\"a\":1,\"b\":{}}", DEPTH, 4), WB_ERR_TOO_LARGE);
    assert_int_equal(parse("1", DEPTH, 1), WB_OK);
    assert_int_equal(parse("1", DEPTH, 0), WB_ERR_TOO_LARGE);
    assert_int_equal(parse("[]", DEPTH, 0), WB_ERR_TOO_LARGE);

    /* growth from 256 by doubling, resumed jsmn, then a cap not a power of 2 */
    const unsigned n = 5000;
    wb_buf_t b;
    wb_buf_init(&b, 1 << 20);
    assert_int_equal(wb_buf_appendc(&b, '['), WB_OK);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(wb_buf_printf(&b, "%s{\"k\":%u}", i ? "," : "", i), WB_OK);
    assert_int_equal(wb_buf_appendc(&b, ']'), WB_OK);
    unsigned ntok = 1 + 3 * n;

    wb_json_t js;
    char err[128];
    wb_json_init(&js, ntok);
    assert_int_equal(wb_json_parse(&js, b.p, b.len, DEPTH, err, sizeof(err)), WB_OK);
    assert_int_equal(js.ntoks, ntok);
    assert_int_equal(js.cap, ntok);
    wb_json_val_t v = wb_json_get(&js, "/4999/k");
    assert_int_equal(v.kind, WB_JSON_NUMBER);
    assert_int_equal(v.raw.len, 4);
    assert_memory_equal(v.raw.p, "4999", 4);
    wb_json_free(&js);

    wb_json_init(&js, ntok - 1);
    assert_int_equal(wb_json_parse(&js, b.p, b.len, DEPTH, err, sizeof(err)), WB_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "tokens"));
    assert_int_equal(wb_json_root(&js).kind, WB_JSON_MISSING);
    wb_json_free(&js);
    wb_buf_free(&b);
}

static void test_reuse(void **state)
{
    (void)state;
    wb_json_t js;
    char err[128];
    wb_json_init(&js, MAXTOK);
    assert_int_equal(wb_json_root(&js).kind, WB_JSON_MISSING);
    assert_int_equal(wb_json_get(&js, "").kind, WB_JSON_MISSING);

    const char *a = "{\"x\":[1,2,3],\"y\":\"a\"}";
    assert_int_equal(wb_json_parse(&js, a, strlen(a), DEPTH, err, sizeof(err)), WB_OK);
    assert_int_equal(wb_json_get(&js, "/x/2").kind, WB_JSON_NUMBER);
    const char *b = " \"s\" ";
    assert_int_equal(wb_json_parse(&js, b, strlen(b), DEPTH, err, sizeof(err)), WB_OK);
    wb_json_val_t r = wb_json_root(&js);
    assert_int_equal(r.kind, WB_JSON_STRING);
    assert_int_equal(r.tok, 0);
    assert_int_equal(r.raw.len, 1);
    assert_ptr_equal(r.raw.p, b + 2);
    assert_int_equal(wb_json_get(&js, "/x").kind, WB_JSON_MISSING);
    /* a failed parse leaves nothing to look at */
    assert_int_equal(wb_json_parse(&js, "[1,]", 4, DEPTH, err, sizeof(err)), WB_ERR_JSON);
    assert_int_equal(wb_json_root(&js).kind, WB_JSON_MISSING);
    assert_int_equal(wb_json_root(&js).tok, -1);
    wb_json_free(&js);
}

static void expect(const wb_json_t *js, const char *ptr, wb_json_kind_t kind, const char *raw)
{
    wb_json_val_t v = wb_json_get(js, ptr);
    if (v.kind != kind) {
        print_error("pointer \"%s\": kind %d, want %d\n", ptr, v.kind, kind);
        fail();
    }
    if (kind == WB_JSON_MISSING) {
        assert_int_equal(v.tok, -1);
        return;
    }
    assert_true(v.tok >= 0);
    if (v.raw.len != strlen(raw) || memcmp(v.raw.p, raw, v.raw.len) != 0) {
        print_error("pointer \"%s\": raw \"%.*s\", want \"%s\"\n", ptr, (int)v.raw.len, v.raw.p,
                    raw);
        fail();
    }
}

static void test_get(void **state)
{
    (void)state;
    static const char doc[] =
        "{\"a\":{\"b\":[10,{\"c\":true},[null,false]],\"s\":\"x\\ty\"},"
        "\"arr\":[0,1,2,3,4,5,6,7,8,9,10,11],"
        "\"a/b\":1,\"m~n\":2,\"\":3,\" \":4,"
        "\"a\\u0062\":5,\"q\\/r\":6,\"\\u007e1\":7,"
        "\"\\ud83d\\ude00\":8,\"\xc3\xa9\":9,\"\\u00e9x\":10,"
        "\"dup\":1,\"dup\":2,\"abc\":11,"
        "\"obj\":{\"k\":{\"deep\":[1,[2,[3]]]},\"k2\":\"v\"},"
        "\"last\":{}}";
    wb_json_t js;
    char err[128];
    wb_json_init(&js, MAXTOK);
    assert_int_equal(wb_json_parse(&js, doc, sizeof(doc) - 1, DEPTH, err, sizeof(err)), WB_OK);

    expect(&js, "", WB_JSON_OBJECT, doc);
    expect(&js, "/a/b/0", WB_JSON_NUMBER, "10");
    expect(&js, "/a/b/1/c", WB_JSON_TRUE, "true");
    expect(&js, "/a/b/2/0", WB_JSON_NULL, "null");
    expect(&js, "/a/b/2/1", WB_JSON_FALSE, "false");
    expect(&js, "/a/b/2", WB_JSON_ARRAY, "[null,false]");
    expect(&js, "/a/s", WB_JSON_STRING, "x\\ty");
    expect(&js, "/arr/0", WB_JSON_NUMBER, "0");
    expect(&js, "/arr/10", WB_JSON_NUMBER, "10");
    expect(&js, "/arr/11", WB_JSON_NUMBER, "11");
    expect(&js, "/arr/12", WB_JSON_MISSING, NULL);
    expect(&js, "/arr/01", WB_JSON_MISSING, NULL);
    expect(&js, "/arr/-", WB_JSON_MISSING, NULL);
    expect(&js, "/arr/-1", WB_JSON_MISSING, NULL);
    expect(&js, "/arr/1a", WB_JSON_MISSING, NULL);
    expect(&js, "/arr/", WB_JSON_MISSING, NULL);
    expect(&js, "/arr/99999999999999999999", WB_JSON_MISSING, NULL);
    /* pointer escapes */
    expect(&js, "/a~1b", WB_JSON_NUMBER, "1");
    expect(&js, "/m~0n", WB_JSON_NUMBER, "2");
    expect(&js, "/m~n", WB_JSON_MISSING, NULL);
    expect(&js, "/m~2n", WB_JSON_MISSING, NULL);
    expect(&js, "/m~", WB_JSON_MISSING, NULL);
    expect(&js, "/", WB_JSON_NUMBER, "3");
    expect(&js, "/ ", WB_JSON_NUMBER, "4");
    /* escapes in keys */
    expect(&js, "/ab", WB_JSON_NUMBER, "5");
    expect(&js, "/q~1r", WB_JSON_NUMBER, "6");
    expect(&js, "/~01", WB_JSON_NUMBER, "7");
    expect(&js, "/\xf0\x9f\x98\x80", WB_JSON_NUMBER, "8");
    expect(&js, "/\xc3\xa9", WB_JSON_NUMBER, "9");
    expect(&js, "/\xc3\xa9x", WB_JSON_NUMBER, "10");
    expect(&js, "/\xc3\xa9y", WB_JSON_MISSING, NULL);
    expect(&js, "/\xc3", WB_JSON_MISSING, NULL);
    expect(&js, "/a\\u0062", WB_JSON_MISSING, NULL);
    /* the last of duplicate names wins */
    expect(&js, "/dup", WB_JSON_NUMBER, "2");
    /* prefixes are not matches */
    expect(&js, "/ab", WB_JSON_NUMBER, "5");
    expect(&js, "/abcd", WB_JSON_MISSING, NULL);
    expect(&js, "/abc", WB_JSON_NUMBER, "11");
    expect(&js, "/obj/k/deep/1/1/0", WB_JSON_NUMBER, "3");
    expect(&js, "/obj/k2", WB_JSON_STRING, "v");
    expect(&js, "/last", WB_JSON_OBJECT, "{}");
    expect(&js, "/last/x", WB_JSON_MISSING, NULL);
    /* wrong shapes */
    expect(&js, "a", WB_JSON_MISSING, NULL);
    expect(&js, "#/a", WB_JSON_MISSING, NULL);
    expect(&js, "/missing", WB_JSON_MISSING, NULL);
    expect(&js, "/a/b/0/x", WB_JSON_MISSING, NULL);
    expect(&js, "/a/s/0", WB_JSON_MISSING, NULL);
    expect(&js, "/a/0", WB_JSON_MISSING, NULL);
    expect(&js, "/arr/x", WB_JSON_MISSING, NULL);
    expect(&js, "/a//", WB_JSON_MISSING, NULL);
    assert_int_equal(wb_json_get(&js, NULL).kind, WB_JSON_MISSING);

    /* arrays and scalars at the root */
    const char *arr = "[[],{},\"z\"]";
    assert_int_equal(wb_json_parse(&js, arr, strlen(arr), DEPTH, err, sizeof(err)), WB_OK);
    expect(&js, "/2", WB_JSON_STRING, "z");
    expect(&js, "/1", WB_JSON_OBJECT, "{}");
    expect(&js, "/0", WB_JSON_ARRAY, "[]");
    expect(&js, "/0/0", WB_JSON_MISSING, NULL);
    expect(&js, "/3", WB_JSON_MISSING, NULL);
    assert_int_equal(wb_json_parse(&js, " -1.5e3 ", 8, DEPTH, err, sizeof(err)), WB_OK);
    expect(&js, "", WB_JSON_NUMBER, "-1.5e3");
    expect(&js, "/0", WB_JSON_MISSING, NULL);
    wb_json_free(&js);
}

/* Decodes the root of doc; returns the code, the bytes in out. */
static int decode_root(const char *doc, wb_buf_t *out)
{
    wb_json_t js;
    char err[128];
    wb_json_init(&js, MAXTOK);
    int rc = wb_json_parse(&js, doc, strlen(doc), DEPTH, err, sizeof(err));
    if (rc == WB_OK) {
        wb_json_val_t v = wb_json_root(&js);
        rc = wb_json_decode(&v, out);
    }
    wb_json_free(&js);
    return rc;
}

static void expect_decode(const char *doc, const char *want, size_t wantlen)
{
    wb_buf_t b;
    wb_buf_init(&b, 4096);
    assert_int_equal(decode_root(doc, &b), WB_OK);
    if (b.len != wantlen || (wantlen > 0 && memcmp(b.p, want, wantlen) != 0)) {
        print_error("decode %s: got %zu bytes\n", doc, b.len);
        fail();
    }
    wb_buf_free(&b);
}

#define EXPECT_DECODE(doc, lit) expect_decode(doc, lit, sizeof(lit) - 1)

static void test_decode(void **state)
{
    (void)state;
    EXPECT_DECODE("\"\"", "");
    EXPECT_DECODE("\"plain\"", "plain");
    EXPECT_DECODE("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t");
    EXPECT_DECODE("\"a\\u0000b\"", "a\0b");
    EXPECT_DECODE("\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac");
    EXPECT_DECODE("\"\\u07ff\\u0800\\uffff\"", "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf");
    EXPECT_DECODE("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80");
    EXPECT_DECODE("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf");
    EXPECT_DECODE("\"\\ud800\"", "\xef\xbf\xbd");
    EXPECT_DECODE("\"\\udc00\"", "\xef\xbf\xbd");
    EXPECT_DECODE("\"\\ud800x\"", "\xef\xbf\xbdx");
    EXPECT_DECODE("\"\\ud800\\u0041\"", "\xef\xbf\xbd" "A");
    EXPECT_DECODE("\"\\ud800\\ud800\\udc00\"", "\xef\xbf\xbd\xf0\x90\x80\x80");
    EXPECT_DECODE("\"\\ude00\\ud83d\"", "\xef\xbf\xbd\xef\xbf\xbd");
    EXPECT_DECODE("\"\\ud800\\n\"", "\xef\xbf\xbd\n");
    EXPECT_DECODE("\"raw \xf0\x9f\x98\x80 \\t\"", "raw \xf0\x9f\x98\x80 \t");
    EXPECT_DECODE("-12.5e3", "-12.5e3");
    EXPECT_DECODE("true", "true");
    EXPECT_DECODE("false", "false");
    EXPECT_DECODE("null", "null");

    wb_buf_t b;
    wb_buf_init(&b, 4096);
    assert_int_equal(decode_root("{}", &b), WB_ERR_JSON);
    assert_int_equal(decode_root("[1]", &b), WB_ERR_JSON);
    wb_json_val_t missing = {WB_JSON_MISSING, {"", 0}, -1};
    assert_int_equal(wb_json_decode(&missing, &b), WB_ERR_NOTFOUND);
    /* a hand-made value with a broken escape is refused, not overread */
    wb_json_val_t broken = {WB_JSON_STRING, {"ab\\u12", 6}, 0};
    assert_int_equal(wb_json_decode(&broken, &b), WB_ERR_JSON);
    broken.raw = (wb_str_t){"ab\\", 3};
    assert_int_equal(wb_json_decode(&broken, &b), WB_ERR_JSON);
    broken.raw = (wb_str_t){"ab\\x", 4};
    assert_int_equal(wb_json_decode(&broken, &b), WB_ERR_JSON);
    assert_int_equal(b.len, 0);
    wb_buf_free(&b);

    /* appends; on a cap error nothing is left half-written */
    wb_buf_init(&b, 8);
    assert_int_equal(wb_buf_append(&b, "ab", 2), WB_OK);
    assert_int_equal(decode_root("\"cdef\"", &b), WB_OK);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.p, "abcdef", 6);
    assert_int_equal(decode_root("\"\\u00e9\"", &b), WB_OK);
    assert_int_equal(b.len, 8);
    assert_int_equal(decode_root("\"x\"", &b), WB_ERR_TOO_LARGE);
    assert_int_equal(b.len, 8);
    wb_buf_reset(&b);
    assert_int_equal(decode_root("\"abcdef\\ud83d\\ude00\"", &b), WB_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
    assert_int_equal(decode_root("123456789", &b), WB_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
    wb_buf_free(&b);
}

static void expect_write(const char *in, size_t inlen, const char *want, size_t wantlen)
{
    wb_buf_t b;
    wb_buf_init(&b, 4096);
    assert_int_equal(wb_json_write_string(&b, in, inlen), WB_OK);
    if (b.len != wantlen || (wantlen > 0 && memcmp(b.p, want, wantlen) != 0)) {
        print_error("write: got \"%.*s\", want \"%s\"\n", (int)b.len, b.p, want);
        fail();
    }
    wb_buf_free(&b);
}

#define EXPECT_WRITE(in, out) expect_write(in, sizeof(in) - 1, out, sizeof(out) - 1)

static void test_write(void **state)
{
    (void)state;
    EXPECT_WRITE("", "\"\"");
    EXPECT_WRITE("abc", "\"abc\"");
    EXPECT_WRITE("a\"b\\c/", "\"a\\\"b\\\\c/\"");
    EXPECT_WRITE("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
    EXPECT_WRITE("\0\x01\x1f", "\"\\u0000\\u0001\\u001f\"");
    EXPECT_WRITE("\x7f", "\"\x7f\"");
    EXPECT_WRITE("\xe2\x80\xa8\xe2\x80\xa9", "\"\xe2\x80\xa8\xe2\x80\xa9\"");
    EXPECT_WRITE("\xc3\xa9\xf4\x8f\xbf\xbf", "\"\xc3\xa9\xf4\x8f\xbf\xbf\"");
    /* ill-formed UTF-8: one U+FFFD per maximal subpart */
    EXPECT_WRITE("\xff", "\"\xef\xbf\xbd\"");
    EXPECT_WRITE("a\x80" "b", "\"a\xef\xbf\xbd" "b\"");
    EXPECT_WRITE("\xe2\x82" "a", "\"\xef\xbf\xbd" "a\"");
    EXPECT_WRITE("\xf0\x9f\x98", "\"\xef\xbf\xbd\"");
    EXPECT_WRITE("\xc0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\"");
    EXPECT_WRITE("\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    EXPECT_WRITE("\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    EXPECT_WRITE("\xc3\"", "\"\xef\xbf\xbd\\\"\"");
    EXPECT_WRITE("aaaaaaaaaaaaaaaa\n", "\"aaaaaaaaaaaaaaaa\\n\"");
    EXPECT_WRITE("abc\x01" "defghijklmn", "\"abc\\u0001defghijklmn\"");
    EXPECT_WRITE("abcd\"efghijklmn\\opqrstuvw", "\"abcd\\\"efghijklmn\\\\opqrstuvw\"");
    EXPECT_WRITE("abcd\xffxyzxyzxyz", "\"abcd\xef\xbf\xbd" "xyzxyzxyz\"");

    /* every byte below 0x20, exactly */
    for (unsigned c = 0; c < 0x20; c++) {
        char in = (char)c, want[16];
        const char *named = c == '\b' ? "b" : c == '\f' ? "f" : c == '\n' ? "n"
                            : c == '\r' ? "r" : c == '\t' ? "t" : NULL;
        int n = named ? snprintf(want, sizeof(want), "\"\\%s\"", named)
                      : snprintf(want, sizeof(want), "\"\\u%04x\"", c);
        expect_write(&in, 1, want, (size_t)n);
    }

    /* capped: the error of the buffer, nothing half-written */
    wb_buf_t b;
    wb_buf_init(&b, 6);
    assert_int_equal(wb_json_write_string(&b, "abcd", 4), WB_OK);
    assert_int_equal(b.len, 6);
    wb_buf_reset(&b);
    assert_int_equal(wb_buf_append(&b, "x", 1), WB_OK);
    assert_int_equal(wb_json_write_string(&b, "abcd", 4), WB_ERR_TOO_LARGE);
    assert_int_equal(b.len, 1);
    assert_int_equal(wb_json_write_string(&b, "\n", 1), WB_OK); /* 4 bytes */
    assert_int_equal(b.len, 5);
    assert_int_equal(wb_json_write_string(&b, "", 0), WB_ERR_TOO_LARGE);
    assert_int_equal(b.len, 5);
    wb_buf_free(&b);
}

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*s >> 33);
}

static size_t put_cp(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* write, parse, decode: the result is valid JSON; for valid UTF-8 input the
 * decoded root is the input again. */
static void roundtrip(wb_json_t *js, const char *in, size_t len)
{
    wb_buf_t w, d;
    char err[128];
    wb_buf_init(&w, 1 << 20);
    wb_buf_init(&d, 1 << 20);
    assert_int_equal(wb_json_write_string(&w, in, len), WB_OK);
    if (wb_json_parse(js, w.p, w.len, DEPTH, err, sizeof(err)) != WB_OK) {
        print_error("written string does not parse: %s\n", err);
        fail();
    }
    wb_json_val_t v = wb_json_root(js);
    assert_int_equal(v.kind, WB_JSON_STRING);
    assert_int_equal(wb_json_decode(&v, &d), WB_OK);
    assert_true(wb_utf8_valid(d.p, d.len));
    if (wb_utf8_valid(in, len)) {
        assert_int_equal(d.len, len);
        if (len > 0)
            assert_memory_equal(d.p, in, len);
    }
    wb_buf_free(&w);
    wb_buf_free(&d);
}

static void test_write_roundtrip(void **state)
{
    (void)state;
    wb_json_t js;
    char in[512];
    uint64_t seed = 42;
    wb_json_init(&js, 16);

    /* all ASCII, controls included */
    for (unsigned c = 0; c < 0x80; c++)
        in[c] = (char)c;
    roundtrip(&js, in, 0x80);
    for (unsigned c = 0; c < 0x20; c++) {
        in[0] = (char)c;
        roundtrip(&js, in, 1);
    }
    /* random valid UTF-8, weighted to the edges */
    static const uint32_t edges[] = {0,      0x1f,   0x20,   0x22,    0x5c,    0x7f,
                                     0x80,   0x7ff,  0x800,  0xd7ff,  0xe000,  0xfffd,
                                     0xffff, 0x10000, 0x2028, 0x10ffff, 0xfeff};
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = 0, n = rnd(&seed) % 60;
        for (size_t k = 0; k < n; k++) {
            uint32_t cp;
            switch (rnd(&seed) % 4) {
            case 0:
                cp = edges[rnd(&seed) % WB_ARRAY_SIZE(edges)];
                break;
            case 1:
                cp = rnd(&seed) % 0x80;
                break;
            default:
                cp = rnd(&seed) % 0x110000;
                if (cp >= 0xd800 && cp <= 0xdfff)
                    cp = 0xfffd;
            }
            len += put_cp(cp, in + len);
        }
        roundtrip(&js, in, len);
    }
    /* random bytes: not UTF-8, still valid JSON out */
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = rnd(&seed) % 40;
        for (size_t k = 0; k < len; k++)
            in[k] = (char)rnd(&seed);
        roundtrip(&js, in, len);
    }
    wb_json_free(&js);
}

/* An independent reading of RFC 3629: decode by bit patterns, then reject
 * overlongs, surrogates and values past U+10FFFF. */
static int ref_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            k = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < k)
            return 0;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return 0;
        i += k;
    }
    return 1;
}

#define UTF8(lit) wb_utf8_valid(lit, sizeof(lit) - 1)

static void test_utf8(void **state)
{
    (void)state;
    assert_true(wb_utf8_valid(NULL, 0));
    assert_true(UTF8("plain ascii, longer than eight bytes"));
    assert_true(UTF8("\xf4\x8f\xbf\xbf"));
    assert_true(UTF8("\xef\xbb\xbf"));
    assert_true(UTF8("\xed\x9f\xbf\xee\x80\x80"));
    assert_true(UTF8("\0"));
    assert_false(UTF8("\xf4\x90\x80\x80"));
    assert_false(UTF8("\xc0\x80"));
    assert_false(UTF8("\xed\xa0\x80"));
    assert_false(UTF8("\xed\xbf\xbf"));
    assert_false(UTF8("\xe0\x9f\xbf"));
    assert_false(UTF8("\xf0\x8f\xbf\xbf"));
    assert_false(UTF8("\xc3"));
    assert_false(UTF8("\xe2\x82"));
    assert_false(UTF8("\xf0\x9f\x98"));
    assert_false(UTF8("\x80"));
    assert_false(UTF8("\xf8\x88\x80\x80\x80"));
    assert_false(UTF8("\xff"));

    /* a bad byte at every offset around the 8-byte fast path */
    char buf[40];
    for (size_t len = 1; len <= sizeof(buf); len++) {
        for (size_t at = 0; at < len; at++) {
            memset(buf, 'a', len);
            buf[at] = (char)0x80;
            assert_false(wb_utf8_valid(buf, len));
            buf[at] = 'a';
            assert_true(wb_utf8_valid(buf, len));
            if (at + 2 <= len) {
                memcpy(buf + at, "\xc3\xa9", 2);
                assert_true(wb_utf8_valid(buf, len));
                assert_false(wb_utf8_valid(buf, at + 1)); /* cut */
            }
        }
    }

    /* exhaustive over 1 and 2 bytes, first byte x second byte for 3 and 4,
     * against the reference; the JSON validator agrees inside a string */
    unsigned char s[6];
    wb_json_t js;
    char err[128];
    wb_json_init(&js, 4);
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            s[0] = (unsigned char)a;
            s[1] = (unsigned char)b;
            assert_int_equal(wb_utf8_valid((char *)s, 2), ref_utf8_valid(s, 2));
            for (unsigned c = 0x7f; c <= 0xc0; c++) {
                s[2] = (unsigned char)c;
                s[3] = 0x80;
                s[4] = 0xbf;
                assert_int_equal(wb_utf8_valid((char *)s, 3), ref_utf8_valid(s, 3));
                assert_int_equal(wb_utf8_valid((char *)s, 4), ref_utf8_valid(s, 4));
                assert_int_equal(wb_utf8_valid((char *)s, 5), ref_utf8_valid(s, 5));
            }
            if (a >= 0x20 && a != '"' && a != '\\' && b >= 0x20 && b != '"' && b != '\\') {
                char doc[4] = {'"', (char)a, (char)b, '"'};
                int ok = wb_json_parse(&js, doc, 4, DEPTH, err, sizeof(err)) == WB_OK;
                assert_int_equal(ok, ref_utf8_valid(s, 2));
            }
        }
    }
    wb_json_free(&js);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_error_offsets),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_depth_100000),
        cmocka_unit_test(test_token_cap),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_write),
        cmocka_unit_test(test_write_roundtrip),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
