/* common.c - error formatting, the capped growable buffer, the monotonic clock. */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t wb_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int wb_errf(char *err, size_t errsz, int code, const char *fmt, ...)
{
    if (err != NULL && errsz > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *wb_err2str(int code)
{
    switch (code) {
    case WB_OK:
        return "ok";
    case WB_ERR_JSON:
        return "invalid JSON";
    case WB_ERR_DEPTH:
        return "JSON nested too deeply";
    case WB_ERR_NOMEM:
        return "out of memory";
    case WB_ERR_TOO_LARGE:
        return "too large";
    case WB_ERR_CONFIG:
        return "invalid configuration";
    case WB_ERR_AUTH:
        return "authentication failed";
    case WB_ERR_SHAPE:
        return "unexpected payload shape";
    case WB_ERR_NOTFOUND:
        return "not found";
    case WB_ERR_KAFKA:
        return "kafka error";
    }
    return "unknown error";
}

void wb_buf_init(wb_buf_t *b, size_t max)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void wb_buf_free(wb_buf_t *b)
{
    free(b->p);
    wb_buf_init(b, b->max);
}

void wb_buf_reset(wb_buf_t *b)
{
    b->len = 0;
}

int wb_buf_reserve(wb_buf_t *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return WB_ERR_TOO_LARGE;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return WB_OK;
    size_t ncap = b->cap != 0 ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > b->max)
        ncap = b->max;
    char *np = realloc(b->p, ncap);
    if (np == NULL)
        return WB_ERR_NOMEM;
    b->p = np;
    b->cap = ncap;
    return WB_OK;
}

int wb_buf_append(wb_buf_t *b, const void *p, size_t len)
{
    int r;
    if (len == 0)
        return WB_OK;
    if ((r = wb_buf_reserve(b, len)) != WB_OK)
        return r;
    memcpy(b->p + b->len, p, len);
    b->len += len;
    return WB_OK;
}

int wb_buf_appendc(wb_buf_t *b, char c)
{
    if (b->len < b->cap) { /* cap never exceeds max: no check to redo */
        b->p[b->len++] = c;
        return WB_OK;
    }
    return wb_buf_append(b, &c, 1);
}

int wb_buf_printf(wb_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return WB_ERR_TOO_LARGE;
    int r = wb_buf_reserve(b, (size_t)n + 1); /* vsnprintf writes the NUL */
    if (r != WB_OK)
        return r;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return WB_OK;
}

int wb_buf_append_int(wb_buf_t *b, long long v)
{
    char tmp[24], *e = tmp + sizeof(tmp), *d = e;
    /* unsigned arithmetic: -LLONG_MIN does not fit a long long */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--d = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--d = '-';
    return wb_buf_append(b, d, (size_t)(e - d));
}

void wb_buf_fit(wb_buf_t *b)
{
    size_t want = b->len > 0 ? b->len : 1; /* realloc(p, 0) may free p */
    if (b->p == NULL || b->cap - want < 256)
        return;
    char *np = realloc(b->p, want);
    if (np != NULL) {
        b->p = np;
        b->cap = want;
    }
}

char *wb_buf_steal(wb_buf_t *b, size_t *len)
{
    char *p = b->p;
    if (len != NULL)
        *len = b->len;
    wb_buf_init(b, b->max);
    return p;
}
