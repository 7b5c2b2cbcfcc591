/* fuzz_provider.c - libFuzzer target for the provider extraction and the
 * record (event.c over provider.c, json.c, route.c).
 * One input is a provider (Piriod, Shoperti, BonifiQ, or a new one) with
 * settings from the input (type pointers, id, subject, time pointers,
 * required, time_format, key, source), [routes] and topic_prefix, a receive time,
 * and a body. Checks, for any body json.c accepts: wb_event_build succeeds;
 * the record is valid JSON with the CloudEvents shape (specversion "1.0";
 * id, source, type, time strings), its attributes are the ones ev holds,
 * data is the body as received; a dead letter has type <name>.deadletter,
 * the dead-letter topic and a reason; the topic is a Kafka topic name;
 * wb_event_to_deadletter of the record is a record of the same shape. And
 * for each of the first values of the body and each time format, a time
 * wb_event_time accepts comes out as RFC 3339 that it accepts again as is.
 *
 * Input: [provider][flags][4 bytes: receive time, s] then NUL-separated
 * fields: type, id, subject, time, required, time_format, key, source, routes
 * ("glob=topic" lines), topic_prefix; the rest is the body. */
#include "event.h"
#include "fuzz_common.h"

#define MAX_DEPTH 64
#define MAX_TOKENS (1u << 16)
#define CHECKED_VALUES 32

enum { F_SETTINGS = 1, F_KEY_ID = 2 };

static const char *const names[] = {"piriod", "shoperti", "bonifiq", "acme"};
static const char *const keys[] = {"type",        "id",  "subject", "time",  "required",
                                   "time_format", "key", "source"};

typedef struct {
    wb_json_t body, rec, rec2;
    wb_buf_t tmp;
    char topics[WB_MAX_ROUTES][256];
    char globs[WB_MAX_ROUTES][256];
    char prefix[256], deadletter[300];
} state_t;

static state_t st;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    wb_json_init(&st.body, MAX_TOKENS);
    wb_json_init(&st.rec, MAX_TOKENS * 2);
    wb_json_init(&st.rec2, MAX_TOKENS * 2);
    wb_buf_init(&st.tmp, SIZE_MAX);
    return 0;
}

/* The decoded string at ptr of the record in js, in st.tmp; NULL if it is
 * not a string. */
static const char *rec_string(const wb_json_t *js, const char *ptr, size_t *len)
{
    wb_json_val_t v = wb_json_get(js, ptr);
    if (v.kind != WB_JSON_STRING)
        return NULL;
    wb_buf_reset(&st.tmp);
    CHECK(wb_json_decode(&v, &st.tmp) == WB_OK);
    CHECK(wb_buf_appendc(&st.tmp, '\0') == WB_OK);
    *len = st.tmp.len - 1;
    return st.tmp.p;
}

/* The string at ptr is want as the writer puts it: a settings' text (a
 * pointer in a reason, a source) may hold invalid UTF-8, which it replaces. */
static void expect_string(const wb_json_t *js, const char *ptr, const char *want0, size_t len0)
{
    wb_buf_t w, d;
    size_t len;
    const char *got = rec_string(js, ptr, &len);
    wb_json_t one;
    wb_buf_init(&w, SIZE_MAX);
    wb_buf_init(&d, SIZE_MAX);
    CHECK(wb_json_write_string(&w, want0, len0) == WB_OK);
    wb_json_init(&one, 1);
    CHECK(wb_json_parse(&one, w.p, w.len, 0, NULL, 0) == WB_OK);
    wb_json_val_t v = wb_json_root(&one);
    CHECK(wb_json_decode(&v, &d) == WB_OK);
    const char *want = d.p != NULL ? d.p : "";
    size_t wantlen = d.len;
    if (got == NULL || len != wantlen || memcmp(got, want, len) != 0)
        fprintf(stderr, "record %s: '%s', want '%.*s'\n", ptr, got != NULL ? got : "(none)",
                (int)wantlen, want);
    CHECK(got != NULL && len == wantlen && memcmp(got, want, len) == 0);
    wb_json_free(&one);
    wb_buf_free(&w);
    wb_buf_free(&d);
}

/* A time the record holds is RFC 3339 as wb_event_time writes it. It reads
 * 62 bytes at most and writes up to 63 (a naive time gains its 'Z'), into
 * 64 bytes at least: re-read into more. */
static void expect_rfc3339(const char *t, size_t len)
{
    char out[128];
    wb_json_val_t v = {WB_JSON_STRING, {t, len}, 0};
    CHECK(len >= 20 && len < 64);
    CHECK(wb_event_time(&v, WB_TIME_RFC3339, out, sizeof(out)) == WB_OK);
    CHECK(strlen(out) == len && memcmp(out, t, len) == 0);
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The shape every record has, for the provider and event ev. */
static void check_record(const wb_config_t *cfg, const wb_provider_t *prov, const wb_event_t *ev,
                         wb_json_t *js, const char *value, size_t len, const char *reason,
                         const char *doc, size_t doclen)
{
    char err[200] = "";
    char want[WB_TYPE_MAX + 1];
    size_t n;
    const char *s;

    int r = wb_json_parse(js, value, len, cfg->max_depth + 1, err, sizeof(err));
    if (r != WB_OK)
        fprintf(stderr, "record is not JSON (%s): %.*s\n", err, (int)(len > 2000 ? 2000 : len),
                value);
    CHECK(r == WB_OK);
    CHECK(wb_json_root(js).kind == WB_JSON_OBJECT);
    expect_string(js, "/specversion", "1.0", 3);
    expect_string(js, "/id", ev->id, ev->id_len);
    expect_string(js, "/source", prov->source, strlen(prov->source));
    expect_string(js, "/provider", prov->name, strlen(prov->name));
    expect_string(js, "/datacontenttype", "application/json", 16);
    CHECK((s = rec_string(js, "/time", &n)) != NULL);
    expect_rfc3339(s, n);
    CHECK((s = rec_string(js, "/receivedat", &n)) != NULL);
    expect_rfc3339(s, n);
    CHECK(rec_string(js, "/providerevent", &n) != NULL);
    if (reason != NULL) {
        snprintf(want, sizeof(want), "%s.deadletter", prov->name);
        expect_string(js, "/type", want, strlen(want));
        expect_string(js, "/deadletterreason", reason, strlen(reason));
    } else {
        expect_string(js, "/type", ev->type, strlen(ev->type));
        CHECK(wb_json_get(js, "/deadletterreason").kind == WB_JSON_MISSING);
    }
    if (ev->subject_len > 0)
        expect_string(js, "/subject", ev->subject, ev->subject_len);
    else
        CHECK(wb_json_get(js, "/subject").kind == WB_JSON_MISSING);

    /* data: an object body as received (whitespace around it aside), any
     * other as a string of its text */
    wb_json_val_t data = wb_json_get(js, "/data");
    size_t a = 0, b = doclen;
    while (a < b && is_ws(doc[a]))
        a++;
    while (b > a && is_ws(doc[b - 1]))
        b--;
    if (data.kind == WB_JSON_OBJECT) {
        CHECK(doc[a] == '{');
        CHECK(data.raw.len == b - a && memcmp(data.raw.p, doc + a, b - a) == 0);
    } else {
        CHECK(data.kind == WB_JSON_STRING && doc[a] != '{');
        expect_string(js, "/data", doc, doclen);
    }
}

static void check_event(const wb_config_t *cfg, const wb_provider_t *prov, const wb_event_t *ev,
                        const char *doc, size_t doclen)
{
    char want[WB_TYPE_MAX + 1];
    size_t tl = strlen(ev->topic), nl = strlen(prov->name);

    CHECK(wb_fz_topic_valid(ev->topic, tl));
    CHECK(ev->id_len > 0 && ev->id_len <= WB_ID_MAX); /* control bytes are kept (test_event.c) */
    CHECK(ev->subject_len <= WB_SUBJECT_MAX);
    CHECK(ev->key_len > 0 && (ev->key == ev->id || ev->key == ev->subject));
    if (ev->deadletter) {
        snprintf(want, sizeof(want), "%s.deadletter", prov->name);
        CHECK(strcmp(ev->type, want) == 0);
        CHECK(strcmp(ev->topic, cfg->deadletter_topic) == 0);
        CHECK(ev->reason[0] != '\0');
    } else {
        CHECK(strncmp(ev->type, prov->name, nl) == 0 && ev->type[nl] == '.');
        CHECK(ev->type[strlen(ev->type) - 1] != '.');
    }
    check_record(cfg, prov, ev, &st.rec, ev->value.p, ev->value.len,
                 ev->deadletter ? ev->reason : NULL, doc, doclen);

    /* the record made a dead letter as ingest.c does on an unknown topic,
     * in a buffer of the size it gives (only records that are not dead
     * letters go there) */
    char reason[WB_TOPIC_MAX + 32];
    snprintf(reason, sizeof(reason), "unknown_topic: %s", ev->topic);
    wb_buf_t dl;
    wb_buf_init(&dl, ev->deadletter ? SIZE_MAX : ev->value.len + sizeof(reason) + 256);
    int r = wb_event_to_deadletter(cfg, prov, &st.rec2, ev->value.p, ev->value.len, reason, &dl);
    CHECK(r == WB_OK);
    check_record(cfg, prov, ev, &st.rec, dl.p, dl.len, reason, doc, doclen);
    wb_buf_free(&dl);
}

/* Each of the first values of the body under each time format. */
static void check_times(const wb_json_t *js)
{
    for (unsigned i = 0; i < js->ntoks && i < CHECKED_VALUES; i++) {
        wb_json_val_t v = wb_json_token(js, i);
        for (int fmt = WB_TIME_AUTO; fmt <= WB_TIME_UNIX_MS; fmt++) {
            char out[64];
            memset(out, 'x', sizeof(out));
            if (wb_event_time(&v, (wb_time_format_t)fmt, out, sizeof(out)) != WB_OK)
                continue;
            CHECK(memchr(out, '\0', sizeof(out)) != NULL);
            expect_rfc3339(out, strlen(out));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static wb_config_t cfg;
    static wb_event_t ev;
    wb_fz_t fz = wb_fz_init(data, size);
    unsigned which = wb_fz_byte(&fz) % WB_ARRAY_SIZE(names);
    unsigned flags = wb_fz_byte(&fz);
    int64_t now_s = 0;
    for (int i = 0; i < 4; i++)
        now_s = now_s << 8 | wb_fz_byte(&fz);
    wb_str_t settings[WB_ARRAY_SIZE(keys)];
    for (size_t i = 0; i < WB_ARRAY_SIZE(keys); i++)
        settings[i] = wb_fz_field(&fz);
    wb_str_t routes = wb_fz_field(&fz), prefix = wb_fz_field(&fz), body = wb_fz_rest(&fz);
    wb_provider_t prov;
    char err[256];
    int ok = 1;

    memset(&cfg, 0, sizeof(cfg));
    cfg.max_depth = MAX_DEPTH;
    cfg.max_tokens = MAX_TOKENS;
    cfg.topic_prefix = "webhooks";
    if (prefix.len > 0 && wb_fz_topic_valid(prefix.p, prefix.len)) {
        memcpy(st.prefix, prefix.p, prefix.len);
        st.prefix[prefix.len] = '\0';
        cfg.topic_prefix = st.prefix;
    }
    snprintf(st.deadletter, sizeof(st.deadletter), "%s.deadletter", cfg.topic_prefix);
    cfg.deadletter_topic = wb_fz_topic_valid(st.deadletter, strlen(st.deadletter))
                               ? st.deadletter
                               : "webhooks.deadletter";
    wb_fz_routes(&cfg, routes, st.globs, st.topics);

    CHECK(wb_provider_init(&prov, names[which]) == WB_OK);
    if (which == 3 || (flags & F_SETTINGS)) {
        for (size_t i = 0; i < WB_ARRAY_SIZE(keys); i++) {
            if (settings[i].len == 0)
                continue;
            char *v = wb_fz_cstr(settings[i], 4096);
            int r = wb_provider_set(&prov, keys[i], v, err, sizeof(err));
            CHECK(r == WB_OK || r == WB_ERR_CONFIG);
            ok &= r == WB_OK;
            free(v);
        }
    }
    if (flags & F_KEY_ID)
        CHECK(wb_provider_set(&prov, "key", "id", err, sizeof(err)) == WB_OK);
    /* a setting config.c refuses stops start-up: no request ever sees it */
    if (ok && wb_json_parse(&st.body, body.p, body.len, MAX_DEPTH, NULL, 0) == WB_OK) {
        int r = wb_event_build(&cfg, &prov, &st.body, now_s * 1000 + (flags >> 2), &ev);
        CHECK(r == WB_OK);
        check_event(&cfg, &prov, &ev, body.p, body.len);
        wb_event_free(&ev);
        check_times(&st.body);
    }
    wb_provider_free(&prov);
    return 0;
}
