/* common.h - types shared by every file of the bridge: strings with a length,
 * the error codes, and a capped growable buffer.
 * Owns nothing at run time; no global state. */
#ifndef WB_COMMON_H
#define WB_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* A string with a length; never assumed NUL-terminated. */
typedef struct {
    const char *p;
    size_t len;
} wb_str_t;

#define WB_STR(lit) ((wb_str_t){(lit), sizeof(lit) - 1})
#define WB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

typedef enum {
    WB_OK = 0,
    WB_ERR_JSON = -1,      /* not JSON as RFC 8259 defines it */
    WB_ERR_DEPTH = -2,     /* nesting deeper than allowed */
    WB_ERR_NOMEM = -3,     /* allocation failed */
    WB_ERR_TOO_LARGE = -4, /* a cap (buffer, token count) was reached */
    WB_ERR_CONFIG = -5,    /* invalid setting */
    WB_ERR_AUTH = -6,      /* credentials missing or wrong */
    WB_ERR_SHAPE = -7,     /* valid JSON, not the provider's shape */
    WB_ERR_NOTFOUND = -8,  /* lookup found nothing */
    WB_ERR_KAFKA = -9,     /* producer refused the record */
} wb_err_t;

/* Formats a message into err (if errsz > 0) and returns code. */
int wb_errf(char *err, size_t errsz, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *wb_err2str(int code);

/* Milliseconds of CLOCK_MONOTONIC: for deadlines and ages, never for dates. */
uint64_t wb_mono_ms(void);

/* Growable buffer with a hard cap: going over the cap is an error
 * (WB_ERR_TOO_LARGE), never a silent truncation. p is malloc'ed and owned
 * by the buffer until wb_buf_steal(). */
typedef struct {
    char *p;
    size_t len;
    size_t cap; /* allocated */
    size_t max; /* hard cap */
} wb_buf_t;

void wb_buf_init(wb_buf_t *b, size_t max);
void wb_buf_free(wb_buf_t *b);
void wb_buf_reset(wb_buf_t *b); /* len = 0, keeps memory */
int wb_buf_reserve(wb_buf_t *b, size_t extra);
int wb_buf_append(wb_buf_t *b, const void *p, size_t len);
int wb_buf_appendc(wb_buf_t *b, char c);
int wb_buf_printf(wb_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends v in decimal (no printf: it is on the path of every answer). */
int wb_buf_append_int(wb_buf_t *b, long long v);
/* Gives back unused capacity (in place: glibc shrinks without a copy), for a
 * buffer that is kept a while, e.g. a record until its delivery report. */
void wb_buf_fit(wb_buf_t *b);
/* Hands p to the caller (to free()); the buffer is empty afterwards. */
char *wb_buf_steal(wb_buf_t *b, size_t *len);

#endif
