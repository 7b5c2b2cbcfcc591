/* log.h - structured JSON lines on stdout, one write per line.
 * A line is built on the stack field by field, then written at once, so
 * lines from several threads never interleave. */
#ifndef WB_LOG_H
#define WB_LOG_H

#include "config.h"

#define WB_LOG_LINE_MAX 2048

typedef struct {
    char buf[WB_LOG_LINE_MAX];
    size_t len;
    int truncated;
    int on; /* 0: below the level, every call is a no-op */
} wb_log_t;

void wb_log_set_level(wb_log_level_t level);
/* Lines go to standard error from now on (a command whose output is stdout). */
void wb_log_to_stderr(void);
int wb_log_enabled(wb_log_level_t level);

/* Starts a line {"ts":..., "level":..., "msg":...}. */
void wb_log_begin(wb_log_t *l, wb_log_level_t level, const char *msg);
void wb_log_str(wb_log_t *l, const char *key, const char *v, size_t len);
void wb_log_cstr(wb_log_t *l, const char *key, const char *v);
void wb_log_int(wb_log_t *l, const char *key, long long v);
/* Writes the line (with "truncated":true if a field did not fit). */
void wb_log_end(wb_log_t *l);

/* From now on, this thread's lines are written in batches (an event loop's
 * thread); wb_log_flush() writes what waits, at least once per loop turn. */
void wb_log_batch_begin(void);
void wb_log_flush(void);

/* A line with a message only. */
void wb_logf(wb_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
