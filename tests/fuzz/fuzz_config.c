/* fuzz_config.c - libFuzzer target for the configuration loader (config.c
 * over inih, provider.c, auth.c and librdkafka's property checks): an
 * operator's typo is input too.
 * One input is an INI file, BRIDGE_* environment variables, variables the
 * INI may name as auth.secret_env (WBFZ_*, set with setenv and removed
 * after each input) and the text of a secret file (/proc/self/fd/901).
 * Checks, for any input: wb_config_load answers WB_OK or WB_ERR_CONFIG
 * with at least one error, every error a NUL-terminated line; a
 * configuration it accepts holds what the rest of the bridge relies on
 * (valid topic names, providers with a name, a source and a type pointer,
 * routes with a topic, auth that verifies an empty request without
 * crashing); wb_config_free gives back everything (LeakSanitizer).
 *
 * Input: [flags] then NUL-separated fields: the INI text, environment
 * lines ("NAME=value"); the rest is the secret file. */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_common.h"
#include "route.h"

#define INI_FD 900
#define SECRET_FD 901
#define INI_PATH "/proc/self/fd/900"
#define MAX_ENV 16
#define ENV_PREFIX "WBFZ_"

enum { F_NO_FILE = 1 };

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int ini = memfd_create("wb-fuzz-ini", 0), secret = memfd_create("wb-fuzz-secret", 0);
    CHECK(ini >= 0 && secret >= 0);
    CHECK(dup2(ini, INI_FD) == INI_FD && dup2(secret, SECRET_FD) == SECRET_FD);
    close(ini);
    close(secret);
    return 0;
}

static void put_file(int fd, wb_str_t s)
{
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(pwrite(fd, s.p, s.len, 0) == (ssize_t)s.len);
}

static int topic_ok(const char *t)
{
    return t != NULL && wb_fz_topic_valid(t, strlen(t));
}

static int string_req(void *ctx, const char *name, size_t idx, wb_str_t *value)
{
    return 0;
}

static void check_config(const wb_config_t *cfg)
{
    char out[WB_TOPIC_MAX + 1];
    CHECK(cfg->listen != NULL && cfg->admin_listen != NULL);
    CHECK(topic_ok(cfg->topic_prefix) && topic_ok(cfg->deadletter_topic));
    CHECK(cfg->threads >= 1 && cfg->max_depth >= 1 && cfg->max_tokens >= 16);
    CHECK(cfg->nroutes <= WB_MAX_ROUTES && cfg->nproviders <= WB_MAX_PROVIDERS);
    for (unsigned i = 0; i < cfg->nroutes; i++)
        CHECK(cfg->routes[i].glob != NULL && topic_ok(cfg->routes[i].topic));
    for (unsigned i = 0; i < cfg->nrdkafka; i++)
        CHECK(cfg->rdkafka[i].name != NULL && cfg->rdkafka[i].value != NULL);
    for (unsigned i = 0; i < cfg->nproviders; i++) {
        const wb_provider_t *prov = &cfg->providers[i];
        CHECK(wb_provider_name_valid(prov->name, strlen(prov->name)));
        CHECK(wb_config_provider(cfg, prov->name, strlen(prov->name)) == prov);
        CHECK(prov->source != NULL && prov->ntype_ptrs >= 1 && prov->ntype_ptrs <= WB_MAX_PTRS);
        for (unsigned k = 0; k < prov->ntype_ptrs; k++)
            CHECK(prov->type_ptrs[k] != NULL && prov->type_ptrs[k][0] == '/');
        CHECK(prov->nfailure_statuses >= 1);
        if (!prov->enabled)
            continue;
        const char *code;
        char err[256];
        wb_auth_req_t req = {.body = WB_STR("{}"), .header = string_req, .now = 1700000000};
        int r = wb_auth_verify(prov->auth, &req, &code, err, sizeof(err));
        CHECK(r == WB_OK || r == WB_ERR_AUTH);
        char type[WB_TYPE_MAX + 1];
        if (wb_route_type(type, sizeof(type), prov->name, "a.b", 3) > 0)
            (void)wb_route_topic(cfg, type, out, sizeof(out));
    }
    (void)wb_config_max_deadline(cfg);
    (void)wb_config_max_body(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static wb_config_t cfg;
    static wb_config_errors_t errs;
    wb_fz_t fz = wb_fz_init(data, size);
    unsigned flags = wb_fz_byte(&fz);
    wb_str_t ini = wb_fz_field(&fz), envs = wb_fz_field(&fz), secret = wb_fz_rest(&fz);
    char *env[MAX_ENV + 1], *set[MAX_ENV];
    size_t nenv = 0, nset = 0;

    put_file(INI_FD, ini);
    put_file(SECRET_FD, secret);
    for (size_t i = 0; i < envs.len && nenv < MAX_ENV && nset < MAX_ENV;) {
        const char *nl = memchr(envs.p + i, '\n', envs.len - i);
        size_t end = nl != NULL ? (size_t)(nl - envs.p) : envs.len;
        wb_str_t line = {envs.p + i, end - i};
        const char *eq = memchr(line.p, '=', line.len);
        i = end + 1;
        if (line.len > 7 && memcmp(line.p, "BRIDGE_", 7) == 0) {
            env[nenv++] = wb_fz_cstr(line, 4096);
        } else if (eq != NULL && line.len > 5 && memcmp(line.p, ENV_PREFIX, 5) == 0) {
            char *name = wb_fz_cstr((wb_str_t){line.p, (size_t)(eq - line.p)}, 128);
            size_t vl = line.len - (size_t)(eq - line.p) - 1;
            char *value = wb_fz_cstr((wb_str_t){eq + 1, vl}, 4096);
            if (setenv(name, value, 1) == 0)
                set[nset++] = name;
            else
                free(name);
            free(value);
        }
    }
    env[nenv] = NULL;

    int r = wb_config_load(&cfg, (flags & F_NO_FILE) ? NULL : INI_PATH, env, &errs);
    CHECK(r == WB_OK || r == WB_ERR_CONFIG);
    CHECK((r == WB_OK) == (errs.n == 0));
    CHECK(errs.n <= WB_MAX_ERRORS);
    for (unsigned i = 0; i < errs.n; i++)
        CHECK(memchr(errs.msg[i], '\0', sizeof(errs.msg[i])) != NULL && errs.msg[i][0] != '\0');
    if (r == WB_OK)
        check_config(&cfg);
    wb_config_free(&cfg);

    for (size_t i = 0; i < nset; i++) {
        CHECK(unsetenv(set[i]) == 0);
        free(set[i]);
    }
    for (size_t i = 0; i < nenv; i++)
        free(env[i]);
    return 0;
}
