/* kafka_standin.c - a Kafka stand-in for the tests: librdkafka's mock
 * cluster in its own process, speaking the real protocol on 127.0.0.1.
 * Prints "BOOTSTRAP host:port,..." then obeys one command per stdin line,
 * answering "OK" or "ERR <why>" to each, and exits when stdin closes:
 *   down <id|all>          broker unreachable
 *   up <id|all>            broker back
 *   rtt <id|all> <ms>      broker answers after ms
 *   err <count> <code>     the next count Produce requests fail with code
 *   topic <name> <parts>   create a topic
 * Usage: kafka-standin [brokers] (default 3). Its brokers accept connections
 * with Nagle's algorithm off, as Kafka's do (wb_kafka_mock_nodelay). */
#include "kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int each_broker(rd_kafka_mock_cluster_t *mc, int n, const char *which, int up, int rtt,
                       int is_rtt)
{
    int first = 1, last = n;
    if (strcmp(which, "all") != 0)
        first = last = atoi(which);
    if (first < 1 || last > n)
        return -1;
    for (int id = first; id <= last; id++) {
        rd_kafka_resp_err_t e = is_rtt ? rd_kafka_mock_broker_set_rtt(mc, id, rtt)
                                       : (up ? rd_kafka_mock_broker_set_up(mc, id)
                                             : rd_kafka_mock_broker_set_down(mc, id));
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            return -1;
    }
    return 0;
}

/* Nagle off on every broker's listener, or a word on stderr. */
static void nodelay(const char *bootstrap, int n)
{
    if (wb_kafka_mock_nodelay(bootstrap) != n)
        fprintf(stderr, "kafka-standin: TCP_NODELAY not set on every listener\n");
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3;
    char errstr[256], line[512], a[256], b[64];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "kafka-standin: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, n);
    if (mc == NULL) {
        fprintf(stderr, "kafka-standin: cannot start the mock cluster\n");
        return 1;
    }
    const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
    nodelay(bootstrap, n);
    printf("BOOTSTRAP %s\n", bootstrap);
    fflush(stdout);

    while (fgets(line, sizeof(line), stdin) != NULL) {
        int count = 0, r = -1;
        if (sscanf(line, "down %255s", a) == 1) {
            /* a broker set down gets a new listener, started when set up */
            if ((r = each_broker(mc, n, a, 0, 0, 0)) == 0)
                nodelay(bootstrap, n);
        } else if (sscanf(line, "up %255s", a) == 1) {
            r = each_broker(mc, n, a, 1, 0, 0);
        } else if (sscanf(line, "rtt %255s %63s", a, b) == 2)
            r = each_broker(mc, n, a, 0, atoi(b), 1);
        else if (sscanf(line, "err %d %63s", &count, b) == 2 && count > 0 && count <= 1000) {
            rd_kafka_resp_err_t errs[1000];
            for (int i = 0; i < count; i++)
                errs[i] = (rd_kafka_resp_err_t)atoi(b);
            rd_kafka_mock_push_request_errors_array(mc, 0 /* Produce */, (size_t)count, errs);
            r = 0;
        } else if (sscanf(line, "topic %255s %63s", a, b) == 2)
            r = rd_kafka_mock_topic_create(mc, a, atoi(b), n < 3 ? n : 3) ? -1 : 0;
        printf(r == 0 ? "OK\n" : "ERR %s", r == 0 ? "" : line);
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
