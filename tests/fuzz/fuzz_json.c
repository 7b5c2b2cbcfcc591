/* fuzz_json.c - libFuzzer target for json.c.
 * Checks, for any input: parse never crashes and answers one of its codes;
 * an accepted document is UTF-8; every string value decodes to UTF-8 that
 * the writer turns back into a JSON string decoding to the same bytes; a
 * JSON Pointer built for each value finds it; the writer on the raw input
 * always yields valid JSON; wb_utf8_valid agrees with a reference.
 * json.c writes its tokens in jsmn's layout in the same pass as validation:
 * for every accepted document they must equal what jsmn itself (configured
 * as json.c declares it) makes of the text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "json.h"

#define JSMN_STATIC /* the reference tokenizer, here only */
#define JSMN_STRICT
#define JSMN_PARENT_LINKS /* must match json.c */
#include <jsmn.h>

#define MAX_DEPTH 64
#define MAX_TOKENS (1u << 16)
#define SMALL_TOKENS 8u
#define CHECKED_VALUES 200 /* pointer lookups per input, to stay linear */

/* RFC 3629 read by bit patterns, independent of json.c's range table. */
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

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* p[0..len) must be one JSON string; if want is given, it decodes to it. */
static void check_json_string(const char *p, size_t len, const char *want, size_t wantlen)
{
    wb_json_t js;
    wb_buf_t d;
    char err[128];

    wb_json_init(&js, 1);
    wb_buf_init(&d, SIZE_MAX);
    int rc = wb_json_parse(&js, p, len, 0, err, sizeof(err));
    if (rc != WB_OK)
        fprintf(stderr, "written string rejected: %s\n", err);
    CHECK(rc == WB_OK);
    wb_json_val_t v = wb_json_root(&js);
    CHECK(v.kind == WB_JSON_STRING);
    CHECK(wb_json_decode(&v, &d) == WB_OK);
    CHECK(wb_utf8_valid(d.p, d.len));
    if (want != NULL)
        CHECK(d.len == wantlen && (wantlen == 0 || memcmp(d.p, want, wantlen) == 0));
    wb_buf_free(&d);
    wb_json_free(&js);
}

static void check_write(const char *p, size_t len, int roundtrip)
{
    wb_buf_t w;
    wb_buf_init(&w, SIZE_MAX);
    CHECK(wb_json_write_string(&w, p, len) == WB_OK);
    CHECK(w.len >= len + 2);
    check_json_string(w.p, w.len, roundtrip ? p : NULL, len);
    wb_buf_free(&w);
}

/* Appends the pointer of value token i (its parent chain, root first) to
 * ptr; 0 if a name holds a NUL, which a C string pointer cannot carry. */
static int build_pointer(const wb_json_t *js, const int *index, unsigned i, wb_buf_t *ptr)
{
    const jsmntok_t *toks = js->toks;
    int parent = toks[i].parent;
    if (parent < 0)
        return 1;
    if (toks[parent].type == JSMN_ARRAY) {
        if (!build_pointer(js, index, (unsigned)parent, ptr))
            return 0;
        CHECK(wb_buf_printf(ptr, "/%d", index[i]) == WB_OK);
        return 1;
    }
    /* parent is the member name, its parent the object */
    CHECK(toks[parent].type == JSMN_STRING);
    if (!build_pointer(js, index, (unsigned)toks[parent].parent, ptr))
        return 0;
    wb_buf_t name;
    wb_buf_init(&name, SIZE_MAX);
    wb_json_val_t key = wb_json_token(js, (unsigned)parent);
    CHECK(wb_json_decode(&key, &name) == WB_OK);
    int ok = memchr(name.p != NULL ? name.p : "", '\0', name.len) == NULL;
    CHECK(wb_buf_appendc(ptr, '/') == WB_OK);
    for (size_t k = 0; ok && k < name.len; k++) {
        if (name.p[k] == '~')
            CHECK(wb_buf_append(ptr, "~0", 2) == WB_OK);
        else if (name.p[k] == '/')
            CHECK(wb_buf_append(ptr, "~1", 2) == WB_OK);
        else
            CHECK(wb_buf_appendc(ptr, name.p[k]) == WB_OK);
    }
    wb_buf_free(&name);
    return ok;
}

typedef struct {
    int obj;
    size_t off, len;
    const char *p;
} name_t;

static int name_cmp(const void *a, const void *b)
{
    const name_t *x = a, *y = b;
    if (x->obj != y->obj)
        return x->obj < y->obj ? -1 : 1;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->len == 0 ? 0 : memcmp(x->p, y->p, x->len);
}

/* Whether some object has two members whose names decode alike. */
static int has_duplicate_names(const wb_json_t *js)
{
    const jsmntok_t *toks = js->toks;
    name_t *names = calloc(js->ntoks, sizeof(name_t));
    size_t n = 0;
    int dup = 0;
    wb_buf_t all;

    CHECK(names != NULL);
    wb_buf_init(&all, SIZE_MAX);
    for (unsigned i = 0; i < js->ntoks; i++) {
        int parent = toks[i].parent;
        if (parent < 0 || toks[parent].type != JSMN_OBJECT)
            continue;
        wb_json_val_t key = wb_json_token(js, i);
        names[n].obj = parent;
        names[n].off = all.len;
        CHECK(wb_json_decode(&key, &all) == WB_OK);
        names[n].len = all.len - names[n].off;
        n++;
    }
    for (size_t k = 0; k < n; k++)
        names[k].p = all.p != NULL ? all.p + names[k].off : ""; /* all has stopped moving */
    qsort(names, n, sizeof(name_t), name_cmp);
    for (size_t k = 1; k < n && !dup; k++)
        dup = name_cmp(&names[k - 1], &names[k]) == 0;
    wb_buf_free(&all);
    free(names);
    return dup;
}

static void check_document(const wb_json_t *js)
{
    const jsmntok_t *toks = js->toks;
    unsigned n = js->ntoks, checked = 0;
    int *index = calloc(n, sizeof(int)); /* position in the parent array */
    int *nth = calloc(n, sizeof(int));
    wb_buf_t d, ptr;

    int dup = has_duplicate_names(js);

    CHECK(index != NULL && nth != NULL);
    wb_buf_init(&d, SIZE_MAX);
    wb_buf_init(&ptr, SIZE_MAX);
    for (unsigned i = 0; i < n; i++) {
        int parent = toks[i].parent;
        CHECK(toks[i].start >= 0 && toks[i].end >= toks[i].start && (size_t)toks[i].end <= js->len);
        if (parent >= 0 && toks[parent].type == JSMN_ARRAY)
            index[i] = nth[parent]++;
        wb_json_val_t v = wb_json_token(js, i);

        wb_buf_reset(&d);
        int rc = wb_json_decode(&v, &d);
        if (v.kind == WB_JSON_OBJECT || v.kind == WB_JSON_ARRAY) {
            CHECK(rc == WB_ERR_JSON);
        } else {
            CHECK(rc == WB_OK);
            CHECK(wb_utf8_valid(d.p, d.len));
            if (v.kind == WB_JSON_STRING)
                check_write(d.p, d.len, 1);
            else
                CHECK(d.len == v.raw.len && memcmp(d.p, v.raw.p, d.len) == 0);
        }

        /* names are not values */
        if (parent >= 0 && toks[parent].type == JSMN_OBJECT)
            continue;
        if (checked++ >= CHECKED_VALUES)
            continue;
        wb_buf_reset(&ptr);
        if (!build_pointer(js, index, i, &ptr))
            continue;
        CHECK(wb_buf_appendc(&ptr, '\0') == WB_OK);
        wb_json_val_t got = wb_json_get(js, ptr.p);
        /* Exact unless names repeat: the last of equal names wins, and
         * everything under a later member comes after token i. */
        CHECK(got.kind == WB_JSON_MISSING || got.tok >= (int)i);
        if (!dup)
            CHECK(got.tok == (int)i);
        if (got.tok == (int)i)
            CHECK(got.kind == v.kind && got.raw.p == v.raw.p && got.raw.len == v.raw.len);
    }
    wb_buf_free(&d);
    wb_buf_free(&ptr);
    free(index);
    free(nth);
}

/* The tokens json.c wrote equal jsmn's, field by field. jsmn (strict) wants
 * a delimiter after a primitive, so a scalar root is not compared. */
static void check_against_jsmn(const wb_json_t *js, const char *doc, size_t size)
{
    const jsmntok_t *ours = js->toks;
    if (ours[0].type != JSMN_OBJECT && ours[0].type != JSMN_ARRAY)
        return;
    jsmntok_t *ref = calloc(js->ntoks, sizeof(*ref));
    jsmn_parser p;
    CHECK(ref != NULL);
    jsmn_init(&p);
    int r = jsmn_parse(&p, doc, size, ref, js->ntoks);
    CHECK(r == (int)js->ntoks);
    for (unsigned i = 0; i < js->ntoks; i++) {
        CHECK(ours[i].type == ref[i].type);
        CHECK(ours[i].start == ref[i].start && ours[i].end == ref[i].end);
        CHECK(ours[i].size == ref[i].size);
        CHECK(ours[i].parent == ref[i].parent);
    }
    free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *doc = (const char *)data;
    wb_json_t js;
    char err[256] = "";

    wb_json_init(&js, MAX_TOKENS);
    int rc = wb_json_parse(&js, doc, size, MAX_DEPTH, err, sizeof(err));
    CHECK(rc == WB_OK || rc == WB_ERR_JSON || rc == WB_ERR_DEPTH || rc == WB_ERR_TOO_LARGE);
    if (rc != WB_OK)
        CHECK(strstr(err, " at byte ") != NULL || rc == WB_ERR_TOO_LARGE);

    wb_json_val_t root = wb_json_root(&js);
    if (rc == WB_OK) {
        CHECK(ref_utf8_valid(data, size));
        CHECK(root.kind != WB_JSON_MISSING && root.tok == 0);
        /* the root spans the input minus whitespace (and its quotes) */
        int q = root.kind == WB_JSON_STRING;
        size_t before = (size_t)(root.raw.p - doc) - (size_t)q;
        size_t after = size - before - root.raw.len - 2 * (size_t)q;
        for (size_t k = 0; k < before; k++)
            CHECK(is_ws(doc[k]));
        for (size_t k = size - after; k < size; k++)
            CHECK(is_ws(doc[k]));
        check_document(&js);
        check_against_jsmn(&js, doc, size);

        static const char *const ptrs[] = {"",    "/",     "/a",  "/0", "/0/0", "/a/b", "/~0",
                                           "/~1", "/a~1b", "/01", "/-", "/1",   "/~",   "//"};
        for (size_t k = 0; k < sizeof(ptrs) / sizeof(ptrs[0]); k++) {
            wb_json_val_t v = wb_json_get(&js, ptrs[k]);
            CHECK(v.kind == WB_JSON_MISSING || (v.tok >= 0 && (unsigned)v.tok < js.ntoks));
        }

        /* the same document under a small token cap */
        unsigned ntoks = js.ntoks;
        wb_json_t small;
        wb_json_init(&small, SMALL_TOKENS);
        int rc2 = wb_json_parse(&small, doc, size, MAX_DEPTH, err, sizeof(err));
        CHECK(rc2 == (ntoks <= SMALL_TOKENS ? WB_OK : WB_ERR_TOO_LARGE));
        wb_json_free(&small);
    } else {
        CHECK(root.kind == WB_JSON_MISSING && root.tok == -1);
    }

    /* the writer on anything, and the UTF-8 check against the reference */
    int valid = ref_utf8_valid(data, size);
    CHECK(wb_utf8_valid(doc, size) == valid);
    check_write(doc, size, valid);

    wb_json_free(&js);
    return 0;
}
