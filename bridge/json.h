/* json.h - strict RFC 8259 validation, field lookup by JSON Pointer, string
 * decoding, and a JSON string writer.
 * One pass decides validity exactly as RFC 8259 does (UTF-8 only, one value,
 * no trailing bytes, valid escapes and numbers, a depth limit) and writes the
 * tokens (jsmn's layout). Nothing here allocates per call once a wb_json_t has grown. */
#ifndef WB_JSON_H
#define WB_JSON_H

#include "common.h"

typedef enum {
    WB_JSON_MISSING = 0,
    WB_JSON_OBJECT,
    WB_JSON_ARRAY,
    WB_JSON_STRING,
    WB_JSON_NUMBER,
    WB_JSON_TRUE,
    WB_JSON_FALSE,
    WB_JSON_NULL,
} wb_json_kind_t;

/* A value found in a parsed document. For strings, raw is the bytes between
 * the quotes, still escaped; for every other kind, the value's exact text. */
typedef struct {
    wb_json_kind_t kind;
    wb_str_t raw;
    int tok; /* token index, -1 when missing */
} wb_json_val_t;

/* A reusable parser: owns a token array that grows (up to max_tokens) and is
 * kept between documents. One per worker thread; not thread-safe. */
typedef struct {
    void *toks;          /* jsmntok_t[], owned */
    unsigned *next;      /* [i]: the token after token i's subtree, owned */
    unsigned *stack;     /* open containers' token indices while parsing, owned */
    unsigned stack_cap;
    unsigned cap;        /* tokens allocated */
    unsigned max_tokens; /* hard cap */
    unsigned ntoks;      /* tokens of the last parsed document */
    const char *doc;     /* last parsed document (borrowed) */
    size_t len;
} wb_json_t;

void wb_json_init(wb_json_t *js, unsigned max_tokens);
void wb_json_free(wb_json_t *js);

/* Validates doc[0..len) as exactly one JSON text (RFC 8259: leading and
 * trailing whitespace allowed, nothing else) and tokenizes it. The document
 * is borrowed until the next parse. Returns WB_OK, WB_ERR_JSON (with the byte
 * offset in err), WB_ERR_DEPTH (nesting > max_depth; a scalar root is depth 0,
 * "[]" is depth 1), WB_ERR_TOO_LARGE (more tokens than max_tokens) or
 * WB_ERR_NOMEM. Lone surrogate escapes ("\ud800") are valid grammar and
 * accepted. */
int wb_json_parse(wb_json_t *js, const char *doc, size_t len, unsigned max_depth, char *err,
                  size_t errsz);

/* The root value of the last parsed document. */
wb_json_val_t wb_json_root(const wb_json_t *js);

/* The value of token i (in document order) of the last parsed document;
 * kind is WB_JSON_MISSING past the last token. For tests and the fuzzer. */
wb_json_val_t wb_json_token(const wb_json_t *js, unsigned i);

/* Looks up an RFC 6901 JSON Pointer ("" = root, "/a/b/0", "~0" and "~1"
 * escapes, array indices) in the last parsed document; kind is
 * WB_JSON_MISSING when nothing is there. ptr is NUL-terminated. */
wb_json_val_t wb_json_get(const wb_json_t *js, const char *ptr);

/* The same, from the value from (a pointer relative to it). */
wb_json_val_t wb_json_get_in(const wb_json_t *js, const wb_json_val_t *from, const char *ptr);

/* Walks the members of an object: *it starts at 0; each call gives the next
 * member's key (a string value) and value and returns 1, then 0 at the end. */
int wb_json_next_member(const wb_json_t *js, const wb_json_val_t *obj, unsigned *it,
                        wb_json_val_t *key, wb_json_val_t *val);

/* Appends the decoded UTF-8 of a string value (escapes resolved, surrogate
 * pairs combined, a lone surrogate written as U+FFFD) to out. For a number,
 * true, false or null, appends the raw text. Objects and arrays: WB_ERR_JSON. */
int wb_json_decode(const wb_json_val_t *v, wb_buf_t *out);

/* Appends p[0..len) as a JSON string, quotes included: '"', '\\' and every
 * byte below 0x20 escaped (\n \r \t \b \f or \u00XX), U+2028/U+2029 kept as
 * they are. Invalid UTF-8 in p is replaced by U+FFFD so that the output is
 * always valid JSON. */
int wb_json_write_string(wb_buf_t *out, const char *p, size_t len);

/* Returns 1 if p[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int wb_utf8_valid(const char *p, size_t len);

#endif
