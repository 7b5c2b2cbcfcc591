/* fuzz_common.h - what the libFuzzer targets share: CHECK (abort() on a
 * broken property, so that libFuzzer reports it), and a reader that cuts
 * the fuzzer's bytes into fields (one byte, or text up to a NUL) so that
 * one input describes a configuration and a request.
 * Header-only: each target is one translation unit (tests/fuzz/run.sh). */
#ifndef WB_FUZZ_COMMON_H
#define WB_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input, read from the front. */
typedef struct {
    const char *p;
    size_t len;
} wb_fz_t;

static inline wb_fz_t wb_fz_init(const uint8_t *data, size_t size)
{
    return (wb_fz_t){(const char *)data, size};
}

/* The next byte, 0 once the input is used up. */
static inline unsigned wb_fz_byte(wb_fz_t *fz)
{
    if (fz->len == 0)
        return 0;
    fz->len--;
    return (unsigned char)*fz->p++;
}

/* The bytes up to the next NUL (which is skipped), or the rest. */
static inline wb_str_t wb_fz_field(wb_fz_t *fz)
{
    const char *nul = memchr(fz->p, '\0', fz->len);
    wb_str_t s = {fz->p, nul != NULL ? (size_t)(nul - fz->p) : fz->len};
    fz->p += s.len;
    fz->len -= s.len;
    if (nul != NULL) {
        fz->p++;
        fz->len--;
    }
    return s;
}

/* Everything not read yet. */
static inline wb_str_t wb_fz_rest(wb_fz_t *fz)
{
    wb_str_t s = {fz->p, fz->len};
    fz->p += fz->len;
    fz->len = 0;
    return s;
}

/* A NUL-terminated copy of s (malloc'ed, at most max bytes of it). */
static inline char *wb_fz_cstr(wb_str_t s, size_t max)
{
    size_t n = s.len < max ? s.len : max;
    char *c = malloc(n + 1);
    CHECK(c != NULL);
    memcpy(c, s.p, n);
    c[n] = '\0';
    return c;
}

/* Kafka topic names: [a-zA-Z0-9._-], 1..249 (as config.c checks them). */
static inline int wb_fz_topic_valid(const char *t, size_t n)
{
    if (n == 0 || n > 249)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
              (t[i] >= '0' && t[i] <= '9') || t[i] == '.' || t[i] == '_' || t[i] == '-'))
            return 0;
    return 1;
}

#endif
