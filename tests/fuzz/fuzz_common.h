/* fuzz_common.h - what the libFuzzer targets share: CHECK (abort() on a
 * broken property, so that libFuzzer reports it), and a reader that cuts
 * the fuzzer's bytes into fields (one byte, or text up to a NUL) so that
 * one input describes a configuration and a request; [routes] from lines.
 * Header-only: each target is one translation unit (tests/fuzz/run.sh). */
#ifndef WB_FUZZ_COMMON_H
#define WB_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"

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

/* Kafka topic names: 1..249 of [a-zA-Z0-9._-] (the rule config.c applies,
 * written again here as the reference). */
static inline int wb_fz_topic_valid(const char *t, size_t n)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    for (size_t i = 0; i < n; i++)
        if (t[i] == '\0' || strchr(ok, t[i]) == NULL)
            return 0;
    return n >= 1 && n <= 249;
}

/* [routes] for cfg from "glob=topic" lines, copied into globs and topics;
 * a topic config.c would refuse is left out (the bridge would not start). */
static inline void wb_fz_routes(wb_config_t *cfg, wb_str_t s, char (*globs)[256],
                                char (*topics)[256])
{
    size_t i = 0;
    while (i < s.len && cfg->nroutes < WB_MAX_ROUTES) {
        const char *nl = memchr(s.p + i, '\n', s.len - i);
        size_t end = nl != NULL ? (size_t)(nl - s.p) : s.len;
        const char *eq = memchr(s.p + i, '=', end - i);
        if (eq != NULL) {
            size_t gl = (size_t)(eq - s.p) - i, tl = end - (size_t)(eq - s.p) - 1;
            if (gl < 256 && wb_fz_topic_valid(eq + 1, tl)) {
                unsigned k = cfg->nroutes++;
                memcpy(globs[k], s.p + i, gl);
                globs[k][gl] = '\0';
                memcpy(topics[k], eq + 1, tl);
                topics[k][tl] = '\0';
                cfg->routes[k].glob = globs[k];
                cfg->routes[k].topic = topics[k];
            }
        }
        i = end + 1;
    }
}

#endif
