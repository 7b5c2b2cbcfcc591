/* http_ceiling.c - the benchmark's HTTP ceiling: libh2o (evloop) alone,
 * with the bridge's threading (one event loop per thread, each with its own
 * listener on the same port via SO_REUSEPORT). It reads each request whole,
 * as the bridge does, and answers 200 with a receipt-sized JSON body and the
 * bridge's headers, at once and without Kafka: what the bridge could do if
 * everything after HTTP cost nothing.
 * With HOLD_MS, each answer waits that long instead (a slow Kafka without
 * Kafka): what libh2o alone costs per request that waits, for the in-flight
 * memory step.
 * Must not: parse bodies, or do anything the bridge's HTTP side does not.
 * Usage: bench-http-ceiling HOST:PORT [THREADS [HOLD_MS]]   (runs until killed) */
#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "ingest.h" /* wb_ingest_thread_init: the bridge's socket buffers */
#include "server.h" /* wb_server_listen: the bridge's own listening socket */

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_THREADS 64

/* The size and shape of a real receipt. */
static const char receipt[] =
    "{\"id\":\"4834c95e-84f7-485e-90de-09353df57fd3\",\"type\":\"bonifiq.point.add\","
    "\"topic\":\"webhooks.bonifiq.point.add\",\"partition\":2,\"offset\":1234567}";

typedef struct {
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_timeout_t hold; /* HOLD_MS; unused when 0 */
    pthread_t tid;
} ceiling_thread_t;

/* A request whose answer waits: in its own pool, so that a client that
 * leaves takes the timer with it. */
typedef struct {
    h2o_timeout_entry_t te;
    h2o_req_t *req;
} held_t;

static h2o_globalconf_t globalconf;
static unsigned hold_ms;

static void answer(h2o_req_t *req)
{
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    req->res.content_length = sizeof(receipt) - 1;
    h2o_send_inline(req, receipt, sizeof(receipt) - 1);
}

static void on_held_dispose(void *p)
{
    h2o_timeout_unlink(&((held_t *)p)->te);
}

static void on_hold_expired(h2o_timeout_entry_t *te)
{
    answer(H2O_STRUCT_FROM_MEMBER(held_t, te, te)->req);
}

static int on_webhook(h2o_handler_t *self, h2o_req_t *req)
{
    if (hold_ms == 0) {
        answer(req);
        return 0;
    }
    ceiling_thread_t *t = H2O_STRUCT_FROM_MEMBER(ceiling_thread_t, ctx, req->conn->ctx);
    held_t *h = h2o_mem_alloc_shared(&req->pool, sizeof(*h), on_held_dispose);
    *h = (held_t){.te = {.cb = on_hold_expired}, .req = req};
    h2o_timeout_link(t->ctx.loop, &t->hold, &h->te);
    return 0;
}

static int on_other(h2o_handler_t *self, h2o_req_t *req)
{
    static const char body[] = "{\"error\":\"not_found\"}";
    req->res.status = 404;
    req->res.reason = "Not Found";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_send_inline(req, body, sizeof(body) - 1);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    ceiling_thread_t *t = listener->data;
    h2o_socket_t *sock;
    if (err != NULL)
        return;
    /* as the bridge does: a few per wake-up */
    for (int i = 0; i < 16 && (sock = h2o_evloop_socket_accept(listener)) != NULL; i++)
        h2o_accept(&t->accept_ctx, sock);
}

static void *thread_main(void *arg)
{
    ceiling_thread_t *t = arg;
    wb_ingest_thread_init();
    for (;;)
        h2o_evloop_run(t->ctx.loop, INT32_MAX);
    return NULL;
}

int main(int argc, char **argv)
{
    static ceiling_thread_t threads[MAX_THREADS];
    if (argc < 2) {
        fprintf(stderr, "usage: %s HOST:PORT [THREADS [HOLD_MS]]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 1;
    if (n < 1 || n > MAX_THREADS) {
        fprintf(stderr, "%s: threads must be 1..%d\n", argv[0], MAX_THREADS);
        return 2;
    }
    hold_ms = argc > 3 ? (unsigned)atoi(argv[3]) : 0;
    signal(SIGPIPE, SIG_IGN);

    h2o_config_init(&globalconf);
    globalconf.server_name = h2o_iovec_init(H2O_STRLIT("bench-http-ceiling"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/webhooks/", 0);
    h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_webhook;
    pc = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_other;

    for (int i = 0; i < n; i++) {
        ceiling_thread_t *t = &threads[i];
        char err[256];
        int fd = wb_server_listen(argv[1], 1, err, sizeof(err));
        if (fd < 0) {
            fprintf(stderr, "%s: cannot listen: %s\n", argv[0], err);
            return 1;
        }
        h2o_context_init(&t->ctx, h2o_evloop_create(), &globalconf);
        t->accept_ctx.ctx = &t->ctx;
        t->accept_ctx.hosts = globalconf.hosts;
        h2o_timeout_init(t->ctx.loop, &t->hold, hold_ms);
        t->listener = h2o_evloop_socket_create(t->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        t->listener->data = t;
        h2o_socket_read_start(t->listener, on_accept);
    }
    printf("LISTENING %s threads=%d hold_ms=%u\n", argv[1], n, hold_ms);
    fflush(stdout);
    for (int i = 1; i < n; i++)
        pthread_create(&threads[i].tid, NULL, thread_main, &threads[i]);
    thread_main(&threads[0]);
    return 0;
}
