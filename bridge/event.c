/* event.c - the canonical record. Reads the provider's fields through its
 * description (JSON Pointers), decides dead letters, writes the CloudEvent
 * once into a buffer that the producer takes without a copy. The body is
 * embedded as received: it was validated, so it is valid JSON as it is.
 * Must not: log, or choose HTTP statuses. */
#include "event.h"

#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every record and log line formats a time: gmtime_r and snprintf for the
 * date part run once per second per thread, the milliseconds are written by
 * hand. */
void wb_event_format_ms(int64_t t, char *out, size_t outsz)
{
    static _Thread_local int64_t cached_s = INT64_MIN;
    static _Thread_local char prefix[80]; /* "2006-01-02T15:04:05" */
    static _Thread_local size_t prefix_len;
    int64_t s = t / 1000;
    int ms = (int)(t % 1000);
    if (s != cached_s) {
        time_t ts = (time_t)s;
        struct tm tm;
        gmtime_r(&ts, &tm);
        int n = snprintf(prefix, sizeof(prefix), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        prefix_len = n > 0 ? (size_t)n : 0;
        cached_s = s;
    }
    char tmp[96];
    memcpy(tmp, prefix, prefix_len);
    tmp[prefix_len] = '.';
    tmp[prefix_len + 1] = (char)('0' + ms / 100);
    tmp[prefix_len + 2] = (char)('0' + ms / 10 % 10);
    tmp[prefix_len + 3] = (char)('0' + ms % 10);
    tmp[prefix_len + 4] = 'Z';
    size_t n = prefix_len + 5;
    if (outsz == 0)
        return;
    if (n >= outsz)
        n = outsz - 1;
    memcpy(out, tmp, n);
    out[n] = '\0';
}

static int digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

static int num(const char *p, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (p[i] - '0');
    return v;
}

/* RFC 3339 date-time, with the zone optional (allow_naive) and then UTC. */
static int parse_rfc3339(const char *s, size_t n, int allow_naive, char *out, size_t outsz)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 19 || n >= outsz - 1 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) ||
        s[7] != '-' || !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' ||
        !digits(s + 17, 2))
        return WB_ERR_SHAPE;
    int year = num(s, 4), mon = num(s + 5, 2), day = num(s + 8, 2);
    if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] ||
        (mon == 2 && day == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))) ||
        num(s + 11, 2) > 23 || num(s + 14, 2) > 59 || num(s + 17, 2) > 60)
        return WB_ERR_SHAPE;
    size_t i = 19;
    if (i < n && s[i] == '.') {
        size_t f = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f)
            return WB_ERR_SHAPE;
    }
    int zone = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
        zone = 1;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        if (n - i != 6 || !digits(s + i + 1, 2) || s[i + 3] != ':' || !digits(s + i + 4, 2) ||
            num(s + i + 1, 2) > 23 || num(s + i + 4, 2) > 59)
            return WB_ERR_SHAPE;
        zone = 1;
    } else if (i != n) {
        return WB_ERR_SHAPE;
    }
    if (!zone && !allow_naive)
        return WB_ERR_SHAPE;
    memcpy(out, s, n);
    out[10] = 'T';
    if (zone && (out[n - 1] == 'z'))
        out[n - 1] = 'Z';
    if (!zone)
        out[n++] = 'Z';
    out[n] = '\0';
    return WB_OK;
}

static int parse_unix(const wb_json_val_t *v, int64_t scale, char *out, size_t outsz)
{
    char buf[64];
    if (v->kind != WB_JSON_NUMBER || v->raw.len >= sizeof(buf))
        return WB_ERR_SHAPE;
    memcpy(buf, v->raw.p, v->raw.len);
    buf[v->raw.len] = '\0';
    double d = strtod(buf, NULL);
    /* years 1970..9999 */
    if (!(d >= 0) || d / (double)scale >= 253402300800.0)
        return WB_ERR_SHAPE;
    wb_event_format_ms((int64_t)(d * (1000.0 / (double)scale)), out, outsz);
    return WB_OK;
}

int wb_event_time(const wb_json_val_t *v, wb_time_format_t fmt, char *out, size_t outsz)
{
    char s[64];
    wb_buf_t b;
    int r;

    switch (fmt) {
    case WB_TIME_UNIX:
        return parse_unix(v, 1, out, outsz);
    case WB_TIME_UNIX_MS:
        return parse_unix(v, 1000, out, outsz);
    case WB_TIME_AUTO:
        if (v->kind == WB_JSON_NUMBER)
            return parse_unix(v, 1, out, outsz);
        break;
    default:
        break;
    }
    if (v->kind != WB_JSON_STRING)
        return WB_ERR_SHAPE;
    wb_buf_init(&b, sizeof(s));
    if ((r = wb_json_decode(v, &b)) != WB_OK) {
        wb_buf_free(&b);
        return WB_ERR_SHAPE;
    }
    r = parse_rfc3339(b.p, b.len, fmt != WB_TIME_RFC3339, out, outsz);
    wb_buf_free(&b);
    return r;
}

/* A UUID per Piriod record: RAND_bytes costs a DRBG call, locks and a
 * getpid() each time (OpenSSL 3), so each thread draws 4 KiB at once and
 * hands out 16 bytes per UUID. Ids are not secrets. */
static void uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    static _Thread_local unsigned char pool[4096];
    static _Thread_local size_t used = sizeof(pool);
    unsigned char u[16];
    if (used + sizeof(u) > sizeof(pool)) {
        if (RAND_bytes(pool, sizeof(pool)) != 1)
            abort(); /* no randomness: a broken machine, not bad input */
        used = 0;
    }
    memcpy(u, pool + used, sizeof(u));
    used += sizeof(u);
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[u[i] >> 4];
        *o++ = hex[u[i] & 15];
    }
    *o = '\0';
}

/* Decodes a string or number at ptr into dst. Returns 1 found, 0 missing
 * (or empty), -1 with reason set when it is there but unusable. */
static int get_field(const wb_json_t *js, const char *ptr, const char *what, char *dst,
                     size_t dstsz, size_t *len, char *reason, size_t reasonsz)
{
    wb_json_val_t v = wb_json_get(js, ptr);
    wb_buf_t b;
    if (v.kind == WB_JSON_MISSING || v.kind == WB_JSON_NULL)
        return 0;
    if (v.kind != WB_JSON_STRING && v.kind != WB_JSON_NUMBER) {
        snprintf(reason, reasonsz, "%s at %s is not a string", what, ptr);
        return -1;
    }
    if (memchr(v.raw.p, '\\', v.raw.len) == NULL) {
        /* no escape (the usual case): the text is the value, already valid UTF-8 */
        if (v.raw.len > dstsz - 1)
            goto too_long;
        memcpy(dst, v.raw.p, v.raw.len);
        dst[v.raw.len] = '\0';
        *len = v.raw.len;
        return *len > 0;
    }
    wb_buf_init(&b, dstsz - 1);
    if (wb_json_decode(&v, &b) != WB_OK) {
        wb_buf_free(&b);
        goto too_long;
    }
    if (b.len > 0)
        memcpy(dst, b.p, b.len);
    dst[b.len] = '\0';
    *len = b.len;
    wb_buf_free(&b);
    return *len > 0;
too_long:
    snprintf(reason, reasonsz, "%s at %s is longer than %zu bytes", what, ptr, dstsz - 1);
    return -1;
}

/* Fills ev's fields from the body; returns 0, or -1 with ev->reason set. */
static int extract(const wb_config_t *cfg, const wb_provider_t *prov, const wb_json_t *js,
                   const char *received, wb_event_t *ev, char *event_name, size_t *event_len,
                   char *time, size_t timesz)
{
    char *reason = ev->reason;
    size_t rsz = sizeof(ev->reason);
    int r = 0;

    if (wb_json_root(js).kind != WB_JSON_OBJECT) {
        snprintf(reason, rsz, "body is not a JSON object");
        return -1;
    }
    /* the id first, so that a dead letter keeps the provider's delivery id
     * (consumers deduplicate on it); its own problems are judged after the type */
    char id_reason[sizeof(ev->reason)] = "";
    int id_r = 0;
    if (prov->id_ptr != NULL) {
        id_r = get_field(js, prov->id_ptr, "id", ev->id, sizeof(ev->id), &ev->id_len, id_reason,
                         sizeof(id_reason));
        if (id_r < 0)
            ev->id_len = 0;
    }
    /* the event type: the first pointer that is present decides */
    const char *tptr = prov->type_ptrs[0];
    for (unsigned i = 0; i < prov->ntype_ptrs && r == 0; i++) {
        tptr = prov->type_ptrs[i];
        wb_json_val_t v = wb_json_get(js, tptr);
        if (v.kind == WB_JSON_MISSING || v.kind == WB_JSON_NULL)
            continue;
        if (v.kind != WB_JSON_STRING) {
            snprintf(reason, rsz, "event type at %s is not a string", tptr);
            return -1;
        }
        r = get_field(js, tptr, "event type", event_name, WB_EVENT_NAME_MAX + 1, event_len, reason,
                      rsz);
        if (r < 0)
            return -1;
    }
    if (r == 0) {
        snprintf(reason, rsz, "event type missing (%s%s)", prov->type_ptrs[0],
                 prov->ntype_ptrs > 1 ? " and its fallbacks" : "");
        return -1;
    }
    int n = wb_route_type(ev->type, sizeof(ev->type), prov->name, event_name, *event_len);
    if (n == WB_ERR_SHAPE) {
        snprintf(reason, rsz, "event type at %s has no letter or digit", tptr);
        return -1;
    }
    if (n < 0 || wb_route_topic(cfg, ev->type, ev->topic, sizeof(ev->topic)) != WB_OK) {
        snprintf(reason, rsz, "event type at %s is too long for a topic name", tptr);
        return -1;
    }
    if (id_r < 0) {
        snprintf(reason, rsz, "%s", id_reason);
        return -1;
    }
    if (id_r == 0 && prov->id_ptr != NULL && (prov->required & WB_REQ_ID)) {
        snprintf(reason, rsz, "id missing (%s)", prov->id_ptr);
        return -1;
    }
    if (prov->subject_ptr != NULL) {
        r = get_field(js, prov->subject_ptr, "subject", ev->subject, sizeof(ev->subject),
                      &ev->subject_len, reason, rsz);
        if (r < 0)
            return -1;
        if (r == 0 && (prov->required & WB_REQ_SUBJECT)) {
            snprintf(reason, rsz, "subject missing (%s)", prov->subject_ptr);
            return -1;
        }
    }
    snprintf(time, timesz, "%s", received);
    if (prov->time_ptr != NULL) {
        wb_json_val_t v = wb_json_get(js, prov->time_ptr);
        if (v.kind == WB_JSON_MISSING || v.kind == WB_JSON_NULL) {
            if (prov->required & WB_REQ_TIME) {
                snprintf(reason, rsz, "time missing (%s)", prov->time_ptr);
                return -1;
            }
        } else if (wb_event_time(&v, prov->time_format, time, timesz) != WB_OK) {
            /* unreadable: a dead letter only where the time is required;
             * elsewhere the receive time stands in (the original stays in data) */
            if (prov->required & WB_REQ_TIME) {
                snprintf(reason, rsz, "time at %s is not a valid date-time", prov->time_ptr);
                return -1;
            }
            snprintf(time, timesz, "%s", received);
        }
    }
    return 0;
}

/* ,"name": and the value as a JSON string; name is a literal of plain ASCII. */
#define put_attr(b, name, v, len) put_attr_(b, ",\"" name "\":", sizeof(name) + 3, v, len)
static int put_attr_(wb_buf_t *b, const char *key, size_t key_len, const char *v, size_t len)
{
    int r = wb_buf_append(b, key, key_len);
    return r != WB_OK ? r : wb_json_write_string(b, v, len);
}

/* A dead letter's identity, kept when it is built again (wb_event_replay). */
typedef struct {
    const char *id;
    size_t id_len;
    const char *replayed_from;
} replay_t;

static int build(const wb_config_t *cfg, const wb_provider_t *prov, const wb_json_t *js,
                 int64_t now_ms, const replay_t *rp, wb_event_t *ev);

int wb_event_build(const wb_config_t *cfg, const wb_provider_t *prov, const wb_json_t *js,
                   int64_t now_ms, wb_event_t *ev)
{
    return build(cfg, prov, js, now_ms, NULL, ev);
}

int wb_event_replay(const wb_config_t *cfg, const wb_provider_t *prov, const wb_json_t *js,
                    int64_t received_ms, const char *id, size_t id_len, const char *replayed_from,
                    wb_event_t *ev)
{
    if (id_len == 0 || id_len > WB_ID_MAX)
        return WB_ERR_SHAPE;
    replay_t rp = {id, id_len, replayed_from};
    return build(cfg, prov, js, received_ms, &rp, ev);
}

static int build(const wb_config_t *cfg, const wb_provider_t *prov, const wb_json_t *js,
                 int64_t now_ms, const replay_t *rp, wb_event_t *ev)
{
    char received[40], time[64], event_name[WB_EVENT_NAME_MAX + 1];
    size_t event_len = 0;
    int r;

    memset(ev, 0, offsetof(wb_event_t, value));
    wb_event_format_ms(now_ms, received, sizeof(received));
    event_name[0] = '\0';

    if (extract(cfg, prov, js, received, ev, event_name, &event_len, time, sizeof(time)) != 0) {
        ev->deadletter = 1;
        snprintf(ev->type, sizeof(ev->type), "%s.deadletter", prov->name);
        snprintf(ev->topic, sizeof(ev->topic), "%s", cfg->deadletter_topic);
        snprintf(time, sizeof(time), "%s", received);
        ev->subject_len = 0;
    }
    if (rp != NULL) { /* the id its dead letter was answered with */
        memcpy(ev->id, rp->id, rp->id_len);
        ev->id[rp->id_len] = '\0';
        ev->id_len = rp->id_len;
    } else if (ev->id_len == 0) {
        uuid4(ev->id);
        ev->id_len = 36;
        ev->id_generated = 1;
    }
    if (prov->key_by == WB_KEY_SUBJECT && ev->subject_len > 0) {
        ev->key = ev->subject;
        ev->key_len = ev->subject_len;
    } else {
        ev->key = ev->id;
        ev->key_len = ev->id_len;
    }

    /* data: the body as is, or (not an object) as a JSON string, where each
     * '"', '\\' and whitespace control byte of valid JSON text takes two bytes */
    size_t data_max = wb_json_root(js).kind == WB_JSON_OBJECT ? js->len : 2 * js->len + 2;
    /* the source comes from the configuration, at any length (the
     * environment has no line limit): at worst 6 bytes a byte (\u00XX) */
    size_t source_len = strlen(prov->source);
    wb_buf_t *b = &ev->value;
    size_t from_len = rp != NULL && rp->replayed_from != NULL ? strlen(rp->replayed_from) : 0;
    wb_buf_init(b, data_max + 8192 + 4 * (WB_ID_MAX + WB_SUBJECT_MAX + WB_EVENT_NAME_MAX) +
                       6 * (source_len + from_len));
    if ((r = wb_buf_reserve(b, data_max + 512 + 2 * (ev->id_len + ev->subject_len + event_len) +
                                   source_len + 2 * from_len)) != WB_OK)
        return r;
    if ((r = wb_buf_append(b, "{\"specversion\":\"1.0\"", 20)) != WB_OK ||
        (r = put_attr(b, "id", ev->id, ev->id_len)) != WB_OK ||
        (r = put_attr(b, "source", prov->source, source_len)) != WB_OK ||
        (r = put_attr(b, "type", ev->type, strlen(ev->type))) != WB_OK)
        return r;
    if (ev->subject_len > 0 && (r = put_attr(b, "subject", ev->subject, ev->subject_len)) != WB_OK)
        return r;
    if ((r = put_attr(b, "time", time, strlen(time))) != WB_OK ||
        (r = put_attr(b, "datacontenttype", "application/json", 16)) != WB_OK ||
        (r = put_attr(b, "provider", prov->name, strlen(prov->name))) != WB_OK ||
        (r = put_attr(b, "providerevent", event_name, event_len)) != WB_OK ||
        (r = put_attr(b, "receivedat", received, strlen(received))) != WB_OK)
        return r;
    if (from_len > 0 && (r = put_attr(b, "replayedfrom", rp->replayed_from, from_len)) != WB_OK)
        return r;
    if (ev->deadletter &&
        (r = put_attr(b, "deadletterreason", ev->reason, strlen(ev->reason))) != WB_OK)
        return r;
    if ((r = wb_buf_append(b, ",\"data\":", 8)) != WB_OK)
        return r;
    /* CloudEvents' JSON schema allows an object or a string as data: a body
     * that is not an object (only ever a dead letter) goes in as its text */
    if (wb_json_root(js).kind == WB_JSON_OBJECT)
        r = wb_buf_append(b, js->doc, js->len);
    else
        r = wb_json_write_string(b, js->doc, js->len);
    if (r != WB_OK || (r = wb_buf_appendc(b, '}')) != WB_OK)
        return r;
    /* it waits for its delivery report: up to 10,000 at once */
    wb_buf_fit(b);
    return WB_OK;
}

void wb_event_free(wb_event_t *ev)
{
    wb_buf_free(&ev->value);
}

/* data too large to keep whole: its size, its SHA-256 and its first bytes
 * (at most keep, cut at a character's start) as a string. */
static int put_data_summary(wb_buf_t *out, const char *p, size_t len, size_t keep)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    int r;
    SHA256((const unsigned char *)p, len, md);
    for (unsigned i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (keep > len)
        keep = len;
    while (keep > 0 && keep < len && ((unsigned char)p[keep] & 0xc0) == 0x80)
        keep--; /* p[keep] continues a character: cut before that character */
    if ((r = wb_buf_append(out, "{\"truncated\":true,\"size\":", 25)) != WB_OK ||
        (r = wb_buf_append_int(out, (long long)len)) != WB_OK ||
        (r = wb_buf_append(out, ",\"sha256\":\"", 11)) != WB_OK ||
        (r = wb_buf_append(out, hex, 2 * SHA256_DIGEST_LENGTH)) != WB_OK ||
        (r = wb_buf_append(out, "\",\"head\":", 9)) != WB_OK ||
        (r = wb_json_write_string(out, p, keep)) != WB_OK)
        return r;
    return wb_buf_appendc(out, '}');
}

int wb_event_to_deadletter(const wb_config_t *cfg, const wb_provider_t *prov, wb_json_t *js,
                           const char *value, size_t len, const char *reason, wb_buf_t *out)
{
    return wb_event_to_refused(cfg, prov, js, value, len, reason, SIZE_MAX, out);
}

int wb_event_to_refused(const wb_config_t *cfg, const wb_provider_t *prov, wb_json_t *js,
                        const char *value, size_t len, const char *reason, size_t data_keep,
                        wb_buf_t *out)
{
    char type[WB_TYPE_MAX + 1];
    int r;
    /* a record is one level deeper than the body it holds */
    if ((r = wb_json_parse(js, value, len, cfg->max_depth + 1, NULL, 0)) != WB_OK)
        return r;
    wb_json_val_t root = wb_json_root(js), key, val;
    if (root.kind != WB_JSON_OBJECT)
        return WB_ERR_SHAPE;
    snprintf(type, sizeof(type), "%s.deadletter", prov->name);
    if ((r = wb_buf_appendc(out, '{')) != WB_OK)
        return r;
    int first = 1;
    for (unsigned it = 0; wb_json_next_member(js, &root, &it, &key, &val);) {
        if (key.raw.len == 16 && memcmp(key.raw.p, "deadletterreason", 16) == 0)
            continue;
        if (key.raw.len == 4 && memcmp(key.raw.p, "data", 4) == 0 &&
            (r = put_attr(out, "deadletterreason", reason, strlen(reason))) != WB_OK)
            return r;
        if ((!first && (r = wb_buf_appendc(out, ',')) != WB_OK) ||
            (r = wb_buf_appendc(out, '"')) != WB_OK ||
            (r = wb_buf_append(out, key.raw.p, key.raw.len)) != WB_OK ||
            (r = wb_buf_append(out, "\":", 2)) != WB_OK)
            return r;
        first = 0;
        if (key.raw.len == 4 && memcmp(key.raw.p, "type", 4) == 0)
            r = wb_json_write_string(out, type, strlen(type));
        else if (key.raw.len == 4 && memcmp(key.raw.p, "data", 4) == 0 &&
                 val.raw.len > data_keep)
            r = put_data_summary(out, val.raw.p, val.raw.len, data_keep);
        else if (val.kind == WB_JSON_STRING)
            r = wb_buf_appendc(out, '"') != WB_OK || wb_buf_append(out, val.raw.p, val.raw.len) ||
                        wb_buf_appendc(out, '"')
                    ? WB_ERR_TOO_LARGE
                    : WB_OK;
        else
            r = wb_buf_append(out, val.raw.p, val.raw.len);
        if (r != WB_OK)
            return r;
    }
    return wb_buf_appendc(out, '}');
}
