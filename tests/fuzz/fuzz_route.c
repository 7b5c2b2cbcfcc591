/* fuzz_route.c - libFuzzer target for route.c: the event type of any event
 * name, and the topic [routes] globs and topic_prefix choose for it.
 * Checks, for any input: wb_route_type agrees with a reference written
 * here (provider, '.', the runs of [a-z0-9] lower-cased and joined by '.')
 * for every output size, including its errors; a type normalized again is
 * itself; wb_route_topic picks the first glob that matches, else
 * "<prefix>.<type>", the answer is a Kafka topic name (1..249 of
 * [a-zA-Z0-9._-]) or WB_ERR_TOO_LARGE exactly when that would be longer.
 *
 * Input: [output size] then NUL-separated fields: provider name,
 * topic_prefix, routes ("glob=topic" lines); the rest is the event name. */
#include <fnmatch.h>

#include "fuzz_common.h"
#include "route.h"

#define MAX_OUT 512

typedef struct {
    char globs[WB_MAX_ROUTES][256];
    char topics[WB_MAX_ROUTES][256];
    char prefix[256];
    char provider[128];
} state_t;

static state_t st;

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The type by the rule as schemas/README.md states it; returns its length and sets
 * *words to the number of runs of [a-z0-9]. */
static size_t ref_type(const char *provider, const char *event, size_t len, char *out,
                       size_t *words)
{
    size_t n = strlen(provider);
    memcpy(out, provider, n);
    *words = 0;
    for (size_t i = 0; i < len;) {
        if (!is_alnum((unsigned char)event[i])) {
            i++;
            continue;
        }
        out[n++] = '.';
        (*words)++;
        while (i < len && is_alnum((unsigned char)event[i])) {
            char c = event[i++];
            out[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
    }
    out[n] = '\0';
    return n;
}

static void check_topic(const wb_config_t *cfg, const char *type)
{
    char out[WB_TOPIC_MAX + 1], want[600];
    int r = wb_route_topic(cfg, type, out, sizeof(out));
    const char *topic = NULL;
    for (unsigned i = 0; i < cfg->nroutes && topic == NULL; i++)
        if (fnmatch(cfg->routes[i].glob, type, 0) == 0)
            topic = cfg->routes[i].topic;
    if (topic != NULL) {
        CHECK(r == WB_OK && strcmp(out, topic) == 0);
    } else {
        snprintf(want, sizeof(want), "%s.%s", cfg->topic_prefix, type);
        if (strlen(want) > WB_TOPIC_MAX) {
            CHECK(r == WB_ERR_TOO_LARGE);
            return;
        }
        CHECK(r == WB_OK && strcmp(out, want) == 0);
    }
    CHECK(wb_fz_topic_valid(out, strlen(out)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static wb_config_t cfg;
    wb_fz_t fz = wb_fz_init(data, size);
    size_t outsz = 1 + wb_fz_byte(&fz) * 2; /* 1..511 */
    wb_str_t provider = wb_fz_field(&fz), prefix = wb_fz_field(&fz), routes = wb_fz_field(&fz),
             event = wb_fz_rest(&fz);
    char out[MAX_OUT], ref[MAX_OUT + 8192], again[MAX_OUT];
    size_t words;

    if (provider.len == 0 || provider.len >= sizeof(st.provider))
        provider = WB_STR("acme");
    memcpy(st.provider, provider.p, provider.len);
    st.provider[provider.len] = '\0';
    memset(&cfg, 0, sizeof(cfg));
    cfg.topic_prefix = "webhooks";
    if (wb_fz_topic_valid(prefix.p, prefix.len)) {
        memcpy(st.prefix, prefix.p, prefix.len);
        st.prefix[prefix.len] = '\0';
        cfg.topic_prefix = st.prefix;
    }
    wb_fz_routes(&cfg, routes, st.globs, st.topics);

    if (event.len > 4096)
        event.len = 4096;
    size_t rl = ref_type(st.provider, event.p, event.len, ref, &words);
    memset(out, 'x', sizeof(out));
    int n = wb_route_type(out, outsz, st.provider, event.p, event.len);
    if (provider.len >= outsz)
        CHECK(n == WB_ERR_TOO_LARGE);
    else if (words == 0)
        CHECK(n == WB_ERR_SHAPE);
    else if (rl >= outsz)
        CHECK(n == WB_ERR_TOO_LARGE);
    else
        CHECK(n == (int)rl && strcmp(out, ref) == 0);
    if (n < 0)
        return 0;

    /* normalizing the event part again changes nothing */
    const char *ev = out + provider.len + 1;
    CHECK(wb_route_type(again, sizeof(again), st.provider, ev, strlen(ev)) == n);
    CHECK(strcmp(again, out) == 0);

    /* a provider name config.c accepts: [a-z0-9], at most 32 */
    int valid = provider.len <= 32;
    for (size_t i = 0; i < provider.len; i++) {
        unsigned char c = (unsigned char)provider.p[i];
        valid &= is_alnum(c) && !(c >= 'A' && c <= 'Z');
    }
    if (valid)
        check_topic(&cfg, out);
    return 0;
}
