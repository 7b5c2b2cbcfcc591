/* main.c - the command line, start-up order and signals.
 * Start-up: configuration (file, then environment), check, the embedded
 * Kafka when no brokers are set, workers and listeners, run. First SIGTERM
 * or SIGINT drains; a second one exits at once. */
#include "admin.h"
#include "config.h"
#include "kafka.h"
#include "log.h"
#include "replay.h"
#include "server.h"

#include <getopt.h>
#include <openssl/opensslv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

extern char **environ;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: webhook-bridge [--config FILE] [--check-config] [--help] [--help-config]\n"
            "                      [--version]\n"
            "       webhook-bridge replay [--config FILE] [--dry-run] [selection]  (--help)\n"
            "       webhook-bridge deadletters [--config FILE] [selection]  (--help)\n"
            "\n"
            "Receives webhooks from Piriod, Shoperti and BonifiQ, writes each one to Kafka as a\n"
            "CloudEvent and answers 200 only once Kafka has acknowledged it.\n"
            "\n"
            "  -c, --config FILE   INI configuration file (also BRIDGE_CONFIG)\n"
            "      --check-config  validate the configuration and the environment, print\n"
            "                      every error with its location, exit 1 on any\n"
            "  -h, --help          this text\n"
            "      --help-config   every setting (section, environment variable, type,\n"
            "                      default, bounds, meaning) in Markdown, as in\n"
            "                      deploy/CONFIGURATION.md\n"
            "  -V, --version       the version and the library versions\n"
            "\n"
            "Environment overrides: BRIDGE_LISTEN, BRIDGE_ADMIN_LISTEN, BRIDGE_THREADS,\n"
            "BRIDGE_KAFKA_BROKERS (empty: an embedded in-memory Kafka, nothing durable),\n"
            "BRIDGE_RDKAFKA_<PROPERTY> (e.g. BRIDGE_RDKAFKA_LINGER_MS=5),\n"
            "BRIDGE_PROVIDER_<NAME>_<KEY> (e.g. BRIDGE_PROVIDER_PIRIOD_DEADLINE_MS=4000).\n"
            "See deploy/CONFIGURATION.md (or --help-config) for every setting.\n");
}

static volatile sig_atomic_t signals_seen;

static void on_signal(int sig)
{
    if (signals_seen++ > 0)
        _exit(128 + sig); /* second signal: at once */
    wb_server_request_drain();
}

static void log_summary(const wb_config_t *cfg, const char *bootstrap, int embedded)
{
    wb_log_t l;
    wb_log_begin(&l, WB_LOG_INFO, "starting");
    wb_log_cstr(&l, "version", WB_VERSION);
    wb_log_cstr(&l, "listen", cfg->listen);
    wb_log_cstr(&l, "admin_listen", cfg->admin_listen);
    wb_log_int(&l, "threads", cfg->threads);
    wb_log_int(&l, "max_inflight", cfg->max_inflight);
    wb_log_cstr(&l, "brokers", bootstrap);
    wb_log_int(&l, "embedded_kafka", embedded);
    wb_log_cstr(&l, "topic_prefix", cfg->topic_prefix);
    wb_log_cstr(&l, "deadletter_topic", cfg->deadletter_topic);
    wb_log_int(&l, "routes", cfg->nroutes);
    wb_log_end(&l);
    for (unsigned i = 0; i < cfg->nproviders; i++) {
        const wb_provider_t *prov = &cfg->providers[i];
        wb_log_begin(&l, WB_LOG_INFO, "provider");
        wb_log_cstr(&l, "provider", prov->name);
        wb_log_int(&l, "enabled", prov->enabled);
        wb_log_cstr(&l, "auth", wb_auth_method_name(prov->auth));
        wb_log_int(&l, "deadline_ms", prov->deadline_ms);
        wb_log_int(&l, "max_body", (long long)prov->max_body);
        wb_log_end(&l);
        if (prov->enabled && wb_auth_is_none(prov->auth))
            wb_logf(WB_LOG_WARN,
                    "provider %s accepts webhooks without authentication (auth = none)",
                    prov->name);
    }
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"help-config", no_argument, NULL, 'H'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *path = getenv("BRIDGE_CONFIG");
    int check = 0, c;
    /* the commands on the dead-letter topic (replay.c) */
    if (argc > 1 && (strcmp(argv[1], "replay") == 0 || strcmp(argv[1], "deadletters") == 0))
        return wb_replay_main(argc - 1, argv + 1, environ);
    wb_config_t cfg;
    wb_config_errors_t errs;
    char err[512], bootstrap[1024];
    wb_kafka_mock_t *mock = NULL;
    wb_server_t *srv = NULL;
    wb_admin_t *admin = NULL;
    int rc = 1;

    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'H':
            wb_config_help(stdout);
            return 0;
        case 'V':
            printf("webhook-bridge %s (librdkafka %s, libh2o %s, %s)\n", WB_VERSION,
                   rd_kafka_version_str(), H2O_VERSION, OPENSSL_VERSION_TEXT);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "webhook-bridge: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (path != NULL && *path == '\0')
        path = NULL;

    if (wb_config_load(&cfg, path, environ, &errs) != WB_OK) {
        for (unsigned i = 0; i < errs.n; i++)
            fprintf(stderr, "webhook-bridge: %s\n", errs.msg[i]);
        if (errs.dropped > 0)
            fprintf(stderr, "webhook-bridge: ... and %u more errors\n", errs.dropped);
        fprintf(stderr, "webhook-bridge: configuration invalid, not starting\n");
        wb_config_free(&cfg);
        return 1;
    }
    /* the producer configuration is checked too: librdkafka knows its own names */
    rd_kafka_conf_t *kconf = wb_kafka_conf_new(&cfg, cfg.brokers, err, sizeof(err));
    if (kconf == NULL) {
        fprintf(stderr, "webhook-bridge: %s\nwebhook-bridge: configuration invalid, not starting\n",
                err);
        wb_config_free(&cfg);
        return 1;
    }
    rd_kafka_conf_destroy(kconf);
    if (check) {
        printf("webhook-bridge: configuration OK (%s)\n",
               path != NULL ? path : "built-in defaults");
        wb_config_free(&cfg);
        return 0;
    }

    wb_log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    if (cfg.brokers == NULL) {
        if ((mock = wb_kafka_mock_start(cfg.mock_brokers, bootstrap, sizeof(bootstrap), err,
                                        sizeof(err))) == NULL) {
            wb_logf(WB_LOG_ERROR, "%s", err);
            goto exit;
        }
        wb_log_t l;
        wb_log_begin(&l, WB_LOG_WARN,
                     "EMBEDDED KAFKA: no brokers configured, using an in-memory mock cluster; "
                     "NOTHING IS DURABLE, records are lost when the bridge stops. Set "
                     "BRIDGE_KAFKA_BROKERS for production.");
        wb_log_cstr(&l, "bootstrap", bootstrap);
        wb_log_end(&l);
        fprintf(stderr, "webhook-bridge: EMBEDDED KAFKA (in memory, not durable) at %s\n",
                bootstrap);
    } else {
        snprintf(bootstrap, sizeof(bootstrap), "%s", cfg.brokers);
    }
    log_summary(&cfg, bootstrap, mock != NULL);

    if ((srv = wb_server_new(&cfg, bootstrap, err, sizeof(err))) == NULL ||
        (admin = wb_admin_new(&cfg, wb_server_stats(srv), err, sizeof(err))) == NULL) {
        wb_logf(WB_LOG_ERROR, "cannot start: %s", err);
        goto exit;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    wb_logf(WB_LOG_INFO, "listening on %s (webhooks) and %s (admin)", cfg.listen, cfg.admin_listen);
    wb_admin_start(admin);
    rc = wb_server_run(srv);
    wb_admin_stop(admin);
    wb_logf(WB_LOG_INFO, "stopped");
exit:
    wb_admin_free(admin);
    wb_server_free(srv);
    wb_kafka_mock_stop(mock);
    wb_config_free(&cfg);
    return rc;
}
