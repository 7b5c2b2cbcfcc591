/* log.c - JSON lines with a level. Owns the level; knows nothing of
 * requests or secrets: callers never pass a secret, a signature or a body. */
#include "log.h"
#include "event.h"
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile int wb_log_level = WB_LOG_INFO;
static int wb_log_fd = STDOUT_FILENO;

void wb_log_set_level(wb_log_level_t level)
{
    wb_log_level = (int)level;
}

void wb_log_to_stderr(void)
{
    wb_log_fd = STDERR_FILENO;
}

int wb_log_enabled(wb_log_level_t level)
{
    return (int)level >= wb_log_level;
}

static void raw(wb_log_t *l, const char *p, size_t n)
{
    if (l->len + n + 2 > sizeof(l->buf)) { /* keep room for "}\n" */
        l->truncated = 1;
        return;
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
}

/* A JSON string through the one writer of the project, straight into the
 * line: a buffer whose capacity is its cap never reallocates. */
static void quoted(wb_log_t *l, const char *v, size_t len)
{
    size_t room = sizeof(l->buf) - 2 - l->len; /* keep room for "}\n" */
    wb_buf_t b = {l->buf + l->len, 0, room, room};
    if (wb_json_write_string(&b, v, len) == WB_OK)
        l->len += b.len;
    else
        l->truncated = 1;
}

/* Lines of a thread that called wb_log_batch_begin() wait here until
 * wb_log_flush() (once per event-loop turn) or until the next would not fit:
 * one write per batch, each at most PIPE_BUF bytes so that writes from
 * several threads to a pipe never interleave. */
static __thread struct {
    int on;
    size_t len;
    char buf[4096];
} batch;

static void write_all(const char *p, size_t n)
{
    ssize_t w = write(wb_log_fd, p, n);
    (void)w; /* nowhere to report a failed log write */
}

void wb_log_batch_begin(void)
{
    batch.on = 1;
}

void wb_log_flush(void)
{
    if (batch.len > 0)
        write_all(batch.buf, batch.len);
    batch.len = 0;
}

void wb_log_begin(wb_log_t *l, wb_log_level_t level, const char *msg)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    struct timeval tv;
    char ts[40];
    l->len = 0;
    l->truncated = 0;
    l->on = wb_log_enabled(level);
    if (!l->on)
        return;
    gettimeofday(&tv, NULL);
    wb_event_format_ms((int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, ts, sizeof(ts));
    raw(l, "{\"ts\":\"", 7);
    raw(l, ts, strlen(ts));
    raw(l, "\",\"level\":\"", 11);
    raw(l, names[level], strlen(names[level]));
    raw(l, "\",\"msg\":", 8);
    quoted(l, msg, strlen(msg));
}

void wb_log_str(wb_log_t *l, const char *key, const char *v, size_t len)
{
    if (!l->on)
        return;
    raw(l, ",", 1);
    quoted(l, key, strlen(key));
    raw(l, ":", 1);
    quoted(l, v, len);
}

void wb_log_cstr(wb_log_t *l, const char *key, const char *v)
{
    wb_log_str(l, key, v != NULL ? v : "", v != NULL ? strlen(v) : 0);
}

void wb_log_int(wb_log_t *l, const char *key, long long v)
{
    char num[32];
    if (!l->on)
        return;
    raw(l, ",", 1);
    quoted(l, key, strlen(key));
    int n = snprintf(num, sizeof(num), ":%lld", v);
    raw(l, num, (size_t)n);
}

void wb_log_end(wb_log_t *l)
{
    if (!l->on)
        return;
    if (l->truncated && l->len + 20 <= sizeof(l->buf)) {
        memcpy(l->buf + l->len, ",\"truncated\":true", 17);
        l->len += 17;
    }
    l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    if (!batch.on || l->len > sizeof(batch.buf)) {
        write_all(l->buf, l->len);
        return;
    }
    if (batch.len + l->len > sizeof(batch.buf))
        wb_log_flush();
    memcpy(batch.buf + batch.len, l->buf, l->len);
    batch.len += l->len;
}

void wb_logf(wb_log_level_t level, const char *fmt, ...)
{
    char msg[1024];
    wb_log_t l;
    va_list ap;
    if (!wb_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    wb_log_begin(&l, level, msg);
    wb_log_end(&l);
}
