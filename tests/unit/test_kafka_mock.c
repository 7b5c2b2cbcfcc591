/* test_kafka_mock.c - the embedded mock cluster's brokers accept connections
 * with Nagle's algorithm off (wb_kafka_mock_nodelay), as Kafka's brokers do:
 * with it on, a response could wait 40 ms for the client's delayed ACK. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "kafka.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The descriptor of the socket the mock accepted for our connection from
 * local port client_port, or -1. It lives in this process (mock thread). */
static int accepted_of(unsigned short client_port)
{
    DIR *d = opendir("/proc/self/fd");
    int found = -1;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL && found < 0;) {
        int fd = atoi(e->d_name);
        struct sockaddr_in peer;
        socklen_t len = sizeof(peer);
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd != dirfd(d) &&
            getpeername(fd, (struct sockaddr *)&peer, &len) == 0 && peer.sin_family == AF_INET &&
            ntohs(peer.sin_port) == client_port)
            found = fd;
    }
    if (d != NULL)
        closedir(d);
    return found;
}

static void check_accepted_nodelay(const char *hostport)
{
    const char *colon = strchr(hostport, ':');
    assert_non_null(colon);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((unsigned short)atoi(colon + 1))};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c >= 0);
    assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
    struct sockaddr_in local;
    socklen_t len = sizeof(local);
    assert_int_equal(getsockname(c, (struct sockaddr *)&local, &len), 0);

    int fd = -1;
    for (int i = 0; i < 200 && fd < 0; i++) { /* the mock thread accepts it */
        fd = accepted_of(ntohs(local.sin_port));
        if (fd < 0)
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    assert_true(fd >= 0);
    int nodelay = 0;
    len = sizeof(nodelay);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
    assert_int_equal(nodelay, 1);
    close(c);
}

static void test_brokers_accept_with_nodelay(void **state)
{
    char bootstrap[512], err[256];
    wb_kafka_mock_t *m = wb_kafka_mock_start(3, bootstrap, sizeof(bootstrap), err, sizeof(err));
    assert_non_null(m);
    char list[512];
    snprintf(list, sizeof(list), "%s", bootstrap);
    unsigned n = 0;
    for (char *save = NULL, *hp = strtok_r(list, ",", &save); hp != NULL;
         hp = strtok_r(NULL, ",", &save), n++)
        check_accepted_nodelay(hp);
    assert_int_equal(n, 3);
    /* the listeners are found again (a broker set up again gets a new one) */
    assert_int_equal(wb_kafka_mock_nodelay(bootstrap), 3);
    /* nothing else in the process is touched */
    assert_int_equal(wb_kafka_mock_nodelay("127.0.0.1:1"), 0);
    assert_int_equal(wb_kafka_mock_nodelay(""), 0);
    wb_kafka_mock_stop(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_brokers_accept_with_nodelay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
