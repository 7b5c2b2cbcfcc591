/* json.c - strict RFC 8259 validation, JSON Pointer lookup, string decoding
 * and a bounded JSON string writer.
 * Owns: the decision of validity (validate() below, the only judge), the
 * token array of a wb_json_t, written by the validator in the same pass, in
 * the layout of jsmn's tokens (jsmn.h gives the type; jsmn itself does not
 * run: the fuzzer compares the two). Never recurses on input depth; never
 * allocates once the arrays have grown. */
#include "json.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The token layout: jsmn's with parent links (each token knows its parent). */
#define JSMN_HEADER
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#define INITIAL_TOKENS 256u

/* ---- token array ---- */

void wb_json_init(wb_json_t *js, unsigned max_tokens)
{
    memset(js, 0, sizeof(*js));
    js->max_tokens = max_tokens;
}

void wb_json_free(wb_json_t *js)
{
    free(js->toks);
    free(js->next);
    free(js->stack);
    wb_json_init(js, js->max_tokens);
}

/* Grows the token array (doubling, at most max_tokens) to hold need tokens;
 * realloc keeps the tokens already written. */
static int grow(wb_json_t *js, unsigned need)
{
    if (need <= js->cap)
        return WB_OK;
    if (need > js->max_tokens)
        return WB_ERR_TOO_LARGE;
    unsigned ncap = js->cap != 0 ? js->cap : INITIAL_TOKENS;
    while (ncap < need)
        ncap = ncap > js->max_tokens / 2 ? js->max_tokens : ncap * 2;
    if (ncap > js->max_tokens)
        ncap = js->max_tokens;
    size_t bytes;
    if (__builtin_mul_overflow((size_t)ncap, sizeof(jsmntok_t), &bytes))
        return WB_ERR_NOMEM;
    void *p = realloc(js->toks, bytes);
    if (p == NULL)
        return WB_ERR_NOMEM;
    js->toks = p;
    unsigned *q = realloc(js->next, (size_t)ncap * sizeof(*q));
    if (q == NULL)
        return WB_ERR_NOMEM; /* cap unchanged: both arrays hold at least cap */
    js->next = q;
    js->cap = ncap;
    return WB_OK;
}

/* ---- UTF-8 ---- */

/* Length (1 to 4) of the well-formed UTF-8 sequence at s[0..n), or 0 when it
 * is ill-formed; then *bad is the length of its maximal subpart (1 to 3), the
 * bytes that one U+FFFD replaces (Unicode 15.0, section 3.9). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t want, i;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        want = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        want = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        want = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        *bad = 1; /* continuation byte, C0, C1, F5..FF */
        return 0;
    }
    for (i = 1; i < want && i < n; i++) {
        if (s[i] < lo || s[i] > hi)
            break;
        lo = 0x80;
        hi = 0xBF;
    }
    if (i == want)
        return want;
    *bad = i;
    return 0;
}

int wb_utf8_valid(const char *p, size_t len)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0, bad;

    while (i < len) {
        if (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080u) == 0) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq(s + i, len - i, &bad);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* 1 if none of the 8 bytes at p is below 0x20, '"', '\\' or above 0x7f.
 * Exact: a borrow only starts at a byte that matches, so the lowest matching
 * byte always sets its own high bit. */
static int plain8(const unsigned char *p)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t w, q, b;

    memcpy(&w, p, 8);
    q = w ^ (ones * '"');
    b = w ^ (ones * '\\');
    return ((((q - ones) & ~q) | ((b - ones) & ~b) | (w - ones * 0x20) | w) & high) == 0;
}

/* The index of the first byte at or after i that is below 0x20, '"', '\\' or
 * above 0x7f, or n: what a string scan must look at; the rest is skipped 16
 * (SSE2) or 8 bytes at a time. */
static size_t plain_run(const unsigned char *s, size_t i, size_t n)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (n - i >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        /* signed compare: bytes above 0x7f are negative, so one compare finds
         * them and the control bytes */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                 _mm_cmplt_epi8(v, space));
        unsigned bits = (unsigned)_mm_movemask_epi8(m);
        if (bits != 0)
            return i + (size_t)__builtin_ctz(bits);
        i += 16;
    }
#endif
    while (n - i >= 8 && plain8(s + i))
        i += 8;
    while (i < n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\')
        i++;
    return i;
}

static int is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

static int hex_val(unsigned c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return -1;
}

/* ---- validation ---- */

/* The scanners marked HOT are forced inline into validate(): left out of line
 * (as gcc 12 leaves scan_string and put_name), they keep the scan position in
 * memory, and a 64 KiB body took 1.45 times as long (bench-json-speed). */
#define HOT static inline __attribute__((always_inline))

typedef struct {
    const unsigned char *s;
    size_t len;
    size_t pos;       /* next byte; after a failure, the offending byte */
    const char *what; /* after a failure, what was wrong */
} scan_t;

static int fail(scan_t *sc, size_t pos, const char *what)
{
    sc->pos = pos;
    sc->what = what;
    return -1;
}

HOT void skip_ws(scan_t *sc)
{
    while (sc->pos < sc->len) {
        unsigned c = sc->s[sc->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        sc->pos++;
    }
}

/* A string starting at the '"' at pos; leaves pos after the closing quote. */
HOT int scan_string(scan_t *sc)
{
    const unsigned char *s = sc->s;
    size_t n = sc->len, i = sc->pos + 1, bad;

    for (;;) {
        i = plain_run(s, i, n);
        if (i >= n)
            return fail(sc, i, "unterminated string");
        unsigned c = s[i];
        if (c == '"') {
            sc->pos = i + 1;
            return 0;
        }
        if (c == '\\') {
            if (i + 1 >= n)
                return fail(sc, i + 1, "unterminated string");
            switch (s[i + 1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                i += 2;
                continue;
            case 'u':
                for (size_t k = i + 2; k < i + 6; k++) {
                    if (k >= n || hex_val(s[k]) < 0)
                        return fail(sc, k, "invalid \\u escape");
                }
                i += 6;
                continue;
            default:
                return fail(sc, i + 1, "invalid escape");
            }
        }
        if (c < 0x20)
            return fail(sc, i, "control character in string");
        if (c < 0x80) {
            i++;
            continue;
        }
        /* the common sequences, whose every continuation byte may be 80..BF
         * (C2..DF: 2 bytes; E1..EC, EE, EF: 3); utf8_seq judges the rest */
        if (c <= 0xDF && c >= 0xC2 && n - i >= 2 && (s[i + 1] & 0xC0) == 0x80) {
            i += 2;
            continue;
        }
        if (c >= 0xE1 && c <= 0xEF && c != 0xED && n - i >= 3 && (s[i + 1] & 0xC0) == 0x80 &&
            (s[i + 2] & 0xC0) == 0x80) {
            i += 3;
            continue;
        }
        size_t m = utf8_seq(s + i, n - i, &bad);
        if (m == 0)
            return fail(sc, i, "invalid UTF-8");
        i += m;
    }
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(scan_t *sc)
{
    const unsigned char *s = sc->s;
    size_t n = sc->len, i = sc->pos;

    if (s[i] == '-')
        i++;
    if (i >= n || !is_digit(s[i]))
        return fail(sc, i, "invalid number");
    if (s[i] == '0') {
        i++;
    } else {
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i]))
            return fail(sc, i, "invalid number");
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !is_digit(s[i]))
            return fail(sc, i, "invalid number");
        while (i < n && is_digit(s[i]))
            i++;
    }
    sc->pos = i;
    return 0;
}

static int scan_literal(scan_t *sc, const char *lit, size_t litlen)
{
    for (size_t k = 0; k < litlen; k++) {
        if (sc->pos + k >= sc->len || sc->s[sc->pos + k] != (unsigned char)lit[k])
            return fail(sc, sc->pos + k, "invalid literal");
    }
    sc->pos += litlen;
    return 0;
}

/* A member name and its ':' (whitespace around skipped); the name's token
 * ends at its closing quote. */
HOT int scan_key(scan_t *sc, jsmntok_t *name)
{
    if (sc->pos >= sc->len || sc->s[sc->pos] != '"')
        return fail(sc, sc->pos, "syntax error");
    if (scan_string(sc) != 0)
        return -1;
    name->end = (int)sc->pos - 1;
    skip_ws(sc);
    if (sc->pos >= sc->len || sc->s[sc->pos] != ':')
        return fail(sc, sc->pos, "syntax error");
    sc->pos++;
    skip_ws(sc);
    return 0;
}

/* Appends token idx (idx == the tokens so far) of the given type at start,
 * attached to parent (-1 for the root), whose size it counts as jsmn does:
 * an object counts its names, an array its elements, a name its value. */
static inline int put_tok(wb_json_t *js, unsigned idx, jsmntype_t type, size_t start,
                          int parent)
{
    int rc;
    if (idx >= js->cap && (rc = grow(js, idx + 1)) != WB_OK)
        return rc;
    jsmntok_t *toks = js->toks;
    toks[idx].type = type;
    toks[idx].start = (int)start;
    toks[idx].end = -1;
    toks[idx].size = 0;
    toks[idx].parent = parent;
    js->next[idx] = idx + 1; /* a container's is set when it closes */
    if (parent >= 0)
        toks[parent].size++;
    return WB_OK;
}

/* Grows the stack of open containers to hold depth + 1 (depth < max_depth). */
static int grow_stack(wb_json_t *js, unsigned depth)
{
    if (depth < js->stack_cap)
        return WB_OK;
    unsigned ncap = js->stack_cap != 0 ? js->stack_cap * 2 : 16;
    while (ncap <= depth)
        ncap *= 2;
    unsigned *p = realloc(js->stack, (size_t)ncap * sizeof(*p));
    if (p == NULL)
        return WB_ERR_NOMEM;
    js->stack = p;
    js->stack_cap = ncap;
    return WB_OK;
}

/* A member name at sc->pos and its ':', as the next token (*count), a child
 * of the object *super; *super becomes the name, which the value belongs to.
 * WB_OK, WB_ERR_TOO_LARGE (token cap), WB_ERR_NOMEM or WB_ERR_JSON (sc set). */
HOT int put_name(wb_json_t *js, scan_t *sc, unsigned *count, int *super)
{
    int rc;
    if (*count >= js->max_tokens)
        return WB_ERR_TOO_LARGE;
    if ((rc = put_tok(js, *count, JSMN_STRING, sc->pos + 1, *super)) != WB_OK)
        return rc;
    *super = (int)(*count)++;
    return scan_key(sc, (jsmntok_t *)js->toks + *super) != 0 ? WB_ERR_JSON : WB_OK;
}

/* Decides whether doc is one JSON text, iteratively, and writes its tokens
 * as it goes (the layout jsmn gives with JSMN_PARENT_LINKS, in document
 * order), so that the text is read once. The stack holds the token index of
 * each open container. On success *ntok is the number of tokens (values and
 * names). */
static int validate(wb_json_t *js, const char *doc, size_t len, unsigned max_depth, unsigned *ntok,
                    char *err, size_t errsz)
{
    scan_t sc = {(const unsigned char *)doc, len, 0, NULL};
    const unsigned char *s = sc.s;
    unsigned depth = 0, count = 0;
    int super = -1; /* what the next value belongs to: array, name, or -1 */
    int rc;

    skip_ws(&sc);
    if (sc.pos == len)
        return wb_errf(err, errsz, WB_ERR_JSON, "empty document at byte %zu", sc.pos);
    for (;;) {
        /* a value starts at sc.pos */
        if (sc.pos >= len) {
            fail(&sc, sc.pos, "unexpected end");
            goto syntax;
        }
        unsigned c = s[sc.pos];
        int open = c == '{' || c == '[';
        if (open && depth >= max_depth)
            return wb_errf(err, errsz, WB_ERR_DEPTH, "nesting deeper than %u at byte %zu",
                           max_depth, sc.pos);
        if (count >= js->max_tokens)
            goto too_many;
        unsigned tok = count++;
        size_t start = sc.pos;
        if (open) {
            if ((rc = grow_stack(js, depth)) != WB_OK ||
                (rc = put_tok(js, tok, c == '{' ? JSMN_OBJECT : JSMN_ARRAY, start, super)) !=
                    WB_OK)
                return wb_errf(err, errsz, rc, "token array: %s", wb_err2str(rc));
            js->stack[depth++] = tok;
            sc.pos++;
            skip_ws(&sc);
            if (sc.pos < len && s[sc.pos] == (c == '{' ? '}' : ']')) {
                depth--;
                sc.pos++;
                ((jsmntok_t *)js->toks)[tok].end = (int)sc.pos;
            } else {
                super = (int)tok;
                if (c == '{' && (rc = put_name(js, &sc, &count, &super)) != WB_OK)
                    goto name_failed;
                continue;
            }
        } else {
            jsmntype_t type = JSMN_PRIMITIVE;
            if (c == '"') {
                type = JSMN_STRING;
                start++;
                rc = scan_string(&sc);
            } else if (c == '-' || is_digit(c)) {
                rc = scan_number(&sc);
            } else if (c == 't') {
                rc = scan_literal(&sc, "true", 4);
            } else if (c == 'f') {
                rc = scan_literal(&sc, "false", 5);
            } else if (c == 'n') {
                rc = scan_literal(&sc, "null", 4);
            } else {
                rc = fail(&sc, sc.pos, "syntax error");
            }
            if (rc != 0)
                goto syntax;
            if ((rc = put_tok(js, tok, type, start, super)) != WB_OK)
                return wb_errf(err, errsz, rc, "token array: %s", wb_err2str(rc));
            ((jsmntok_t *)js->toks)[tok].end = (int)(sc.pos - (type == JSMN_STRING));
        }

        /* after a value: close containers, or a ',' and the next value */
        for (;;) {
            if (depth == 0) {
                skip_ws(&sc);
                if (sc.pos != len) {
                    fail(&sc, sc.pos, "trailing data");
                    goto syntax;
                }
                *ntok = count;
                return WB_OK;
            }
            jsmntok_t *toks = js->toks;
            unsigned top = js->stack[depth - 1];
            int is_obj = toks[top].type == JSMN_OBJECT;
            skip_ws(&sc);
            if (sc.pos >= len) {
                fail(&sc, sc.pos, "unexpected end");
                goto syntax;
            }
            if (s[sc.pos] == (is_obj ? '}' : ']')) {
                depth--;
                sc.pos++;
                toks[top].end = (int)sc.pos;
                js->next[top] = count;
                continue;
            }
            if (s[sc.pos] != ',') {
                fail(&sc, sc.pos, "syntax error");
                goto syntax;
            }
            sc.pos++;
            skip_ws(&sc);
            super = (int)top;
            if (is_obj && (rc = put_name(js, &sc, &count, &super)) != WB_OK)
                goto name_failed;
            break;
        }
    }

name_failed:
    if (rc == WB_ERR_TOO_LARGE)
        goto too_many;
    if (rc != WB_ERR_JSON)
        return wb_errf(err, errsz, rc, "token array: %s", wb_err2str(rc));
syntax:
    return wb_errf(err, errsz, WB_ERR_JSON, "%s at byte %zu", sc.what, sc.pos);
too_many:
    return wb_errf(err, errsz, WB_ERR_TOO_LARGE, "more than %u tokens at byte %zu", js->max_tokens,
                   sc.pos);
}

/* ---- parse ---- */

int wb_json_parse(wb_json_t *js, const char *doc, size_t len, unsigned max_depth, char *err,
                  size_t errsz)
{
    unsigned ntok = 0;
    int rc;

    js->ntoks = 0;
    js->doc = NULL;
    js->len = 0;
    if (len >= INT_MAX) /* tokens keep offsets in int */
        return wb_errf(err, errsz, WB_ERR_TOO_LARGE, "document of %zu bytes", len);
    if ((rc = validate(js, doc, len, max_depth, &ntok, err, errsz)) != WB_OK)
        return rc;
    js->ntoks = ntok;
    js->doc = doc;
    js->len = len;
    return WB_OK;
}

/* ---- lookup ---- */

static wb_json_val_t val_missing(void)
{
    wb_json_val_t v = {WB_JSON_MISSING, {"", 0}, -1};
    return v;
}

wb_json_val_t wb_json_token(const wb_json_t *js, unsigned i)
{
    wb_json_val_t v = val_missing();
    if (js->doc == NULL || i >= js->ntoks)
        return v;
    const jsmntok_t *t = (const jsmntok_t *)js->toks + i;
    v.tok = (int)i;
    v.raw.p = js->doc + t->start;
    v.raw.len = (size_t)(t->end - t->start);
    switch (t->type) {
    case JSMN_OBJECT:
        v.kind = WB_JSON_OBJECT;
        break;
    case JSMN_ARRAY:
        v.kind = WB_JSON_ARRAY;
        break;
    case JSMN_STRING:
        v.kind = WB_JSON_STRING;
        break;
    default:
        switch (js->doc[t->start]) {
        case 't':
            v.kind = WB_JSON_TRUE;
            break;
        case 'f':
            v.kind = WB_JSON_FALSE;
            break;
        case 'n':
            v.kind = WB_JSON_NULL;
            break;
        default:
            v.kind = WB_JSON_NUMBER;
            break;
        }
    }
    return v;
}

wb_json_val_t wb_json_root(const wb_json_t *js)
{
    return wb_json_token(js, 0);
}

/* The index of the token after token i and everything nested in it. */
static unsigned skip(const wb_json_t *js, unsigned i)
{
    return js->next[i];
}

static size_t utf8_put(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The 4 hex digits at p, or -1. */
static long hex4(const char *p)
{
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_val((unsigned char)p[k]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Decodes one unit of string text s[*i..n): a raw byte, or one escape (a
 * surrogate pair is one) as UTF-8, a lone surrogate as U+FFFD. Returns the
 * bytes written to out (1 to 4) and advances *i, or 0 if malformed. */
static size_t decode_unit(const char *s, size_t n, size_t *i, unsigned char *out)
{
    size_t k = *i;
    long cp, lo;

    if (s[k] != '\\') {
        out[0] = (unsigned char)s[k];
        *i = k + 1;
        return 1;
    }
    if (k + 1 >= n)
        return 0;
    switch (s[k + 1]) {
    case '"':
    case '\\':
    case '/':
        out[0] = (unsigned char)s[k + 1];
        break;
    case 'b':
        out[0] = '\b';
        break;
    case 'f':
        out[0] = '\f';
        break;
    case 'n':
        out[0] = '\n';
        break;
    case 'r':
        out[0] = '\r';
        break;
    case 't':
        out[0] = '\t';
        break;
    case 'u':
        if (n - k < 6 || (cp = hex4(s + k + 2)) < 0)
            return 0;
        k += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (n - k >= 6 && s[k] == '\\' && s[k + 1] == 'u' && (lo = hex4(s + k + 2)) >= 0xDC00 &&
                lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                k += 6;
            } else {
                cp = 0xFFFD;
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        *i = k;
        return utf8_put((uint32_t)cp, out);
    default:
        return 0;
    }
    *i = k + 2;
    return 1;
}

/* Whether the escaped member name key[0..klen) decodes to the reference
 * token ref[0..rlen) once its "~0" and "~1" are resolved (ref is well formed). */
static int key_equals(const char *key, size_t klen, const char *ref, size_t rlen)
{
    if (memchr(key, '\\', klen) == NULL && memchr(ref, '~', rlen) == NULL)
        return klen == rlen && memcmp(key, ref, klen) == 0;

    unsigned char unit[4];
    size_t ki = 0, ri = 0, un = 0, ui = 0;
    for (;;) {
        if (ui == un) {
            if (ki == klen)
                return ri == rlen;
            if ((un = decode_unit(key, klen, &ki, unit)) == 0)
                return 0;
            ui = 0;
        }
        if (ri == rlen)
            return 0;
        unsigned char rc = (unsigned char)ref[ri++];
        if (rc == '~')
            rc = ref[ri++] == '0' ? '~' : '/';
        if (unit[ui++] != rc)
            return 0;
    }
}

/* An array index: "0" or digits without a leading zero, below limit. */
static int parse_index(const char *ref, size_t rlen, unsigned limit, unsigned *idx)
{
    unsigned long v = 0;
    if (rlen == 0 || (ref[0] == '0' && rlen > 1))
        return 0;
    for (size_t k = 0; k < rlen; k++) {
        if (!is_digit((unsigned char)ref[k]))
            return 0;
        v = v * 10 + (unsigned long)(ref[k] - '0');
        if (v >= limit)
            return 0;
    }
    *idx = (unsigned)v;
    return 1;
}

wb_json_val_t wb_json_get(const wb_json_t *js, const char *ptr)
{
    wb_json_val_t root = wb_json_root(js);
    return wb_json_get_in(js, &root, ptr);
}

int wb_json_next_member(const wb_json_t *js, const wb_json_val_t *obj, unsigned *it,
                        wb_json_val_t *key, wb_json_val_t *val)
{
    if (obj->kind != WB_JSON_OBJECT || obj->tok < 0)
        return 0;
    unsigned i = *it == 0 ? (unsigned)obj->tok + 1 : *it;
    if (i >= js->next[obj->tok])
        return 0;
    *key = wb_json_token(js, i);
    *val = wb_json_token(js, i + 1);
    *it = skip(js, i + 1);
    return 1;
}

wb_json_val_t wb_json_get_in(const wb_json_t *js, const wb_json_val_t *from, const char *ptr)
{
    if (js->doc == NULL || js->ntoks == 0 || ptr == NULL || from->tok < 0 ||
        (unsigned)from->tok >= js->ntoks)
        return val_missing();
    const jsmntok_t *toks = js->toks;
    unsigned cur = (unsigned)from->tok;
    const char *p = ptr;

    while (*p != '\0') {
        if (*p != '/')
            return val_missing();
        const char *ref = ++p;
        size_t rlen = strcspn(ref, "/");
        p += rlen;
        for (size_t k = 0; k < rlen; k++) {
            if (ref[k] == '~' && (k + 1 == rlen || (ref[k + 1] != '0' && ref[k + 1] != '1')))
                return val_missing();
        }

        const jsmntok_t *t = &toks[cur];
        if (t->type == JSMN_OBJECT) {
            /* Every member is looked at: with duplicate names the last one
             * wins, as in most parsers downstream. */
            unsigned found = 0, i = cur + 1;
            for (int m = 0; m < t->size; m++) {
                const jsmntok_t *key = &toks[i];
                if (key_equals(js->doc + key->start, (size_t)(key->end - key->start), ref, rlen))
                    found = i + 1;
                i = skip(js, i + 1);
            }
            if (found == 0)
                return val_missing();
            cur = found;
        } else if (t->type == JSMN_ARRAY) {
            unsigned idx, i = cur + 1;
            if (!parse_index(ref, rlen, (unsigned)t->size, &idx))
                return val_missing();
            while (idx-- > 0)
                i = skip(js, i);
            cur = i;
        } else {
            return val_missing();
        }
    }
    return wb_json_token(js, cur);
}

/* ---- decode and write ---- */

int wb_json_decode(const wb_json_val_t *v, wb_buf_t *out)
{
    size_t start = out->len;
    int rc;

    switch (v->kind) {
    case WB_JSON_MISSING:
        return WB_ERR_NOTFOUND;
    case WB_JSON_OBJECT:
    case WB_JSON_ARRAY:
        return WB_ERR_JSON;
    case WB_JSON_STRING:
        break;
    default:
        return wb_buf_append(out, v->raw.p, v->raw.len);
    }

    const char *s = v->raw.p;
    size_t n = v->raw.len, i = 0;
    while (i < n) {
        const char *bs = memchr(s + i, '\\', n - i);
        size_t run = bs != NULL ? (size_t)(bs - (s + i)) : n - i;
        if ((rc = wb_buf_append(out, s + i, run)) != WB_OK)
            goto fail;
        i += run;
        if (i == n)
            break;
        unsigned char unit[4];
        size_t un = decode_unit(s, n, &i, unit);
        if (un == 0) {
            rc = WB_ERR_JSON;
            goto fail;
        }
        if ((rc = wb_buf_append(out, unit, un)) != WB_OK)
            goto fail;
    }
    return WB_OK;

fail:
    out->len = start; /* nothing half-written */
    return rc;
}

int wb_json_write_string(wb_buf_t *out, const char *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)p;
    size_t start = out->len, i = 0, bad = 1;
    int rc;

    if ((rc = wb_buf_appendc(out, '"')) != WB_OK)
        goto fail;
    while (i < len) {
        /* the longest run that needs no change */
        size_t j = i;
        for (;;) {
            j = plain_run(s, j, len);
            if (j == len)
                break;
            unsigned c = s[j];
            size_t m;
            if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80)
                j++;
            else if (c >= 0x80 && (m = utf8_seq(s + j, len - j, &bad)) != 0)
                j += m;
            else
                break;
        }
        if ((rc = wb_buf_append(out, s + i, j - i)) != WB_OK)
            goto fail;
        if (j == len)
            break;

        unsigned c = s[j];
        char esc[6] = {'\\', 0, '0', '0', 0, 0};
        size_t elen = 2;
        i = j + 1;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            if (c < 0x20) {
                esc[1] = 'u';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 0xF];
                elen = 6;
            } else {
                /* ill-formed UTF-8: its maximal subpart becomes U+FFFD */
                memcpy(esc, "\xEF\xBF\xBD", 3);
                elen = 3;
                i = j + bad;
            }
        }
        if ((rc = wb_buf_append(out, esc, elen)) != WB_OK)
            goto fail;
    }
    if ((rc = wb_buf_appendc(out, '"')) != WB_OK)
        goto fail;
    return WB_OK;

fail:
    out->len = start;
    return rc;
}
