/* conn.c - the webhook connections of a worker. Each accepted socket gets a
 * wb_conn_t through the socket's on_close hook (libh2o 2.2.5 uses that hook
 * only on the sockets of its own client pool, never on accepted ones), so
 * the worker knows how many are open (the cap) and can keep, per HTTP/2
 * connection, how many of its streams ended before their answer.
 * Owns: the reset budget and the refusal: a GOAWAY (ENHANCE_YOUR_CALM),
 * then the close. Must not: answer requests (ingest.c), own the listener
 * (server.c).
 *
 * The reset count, from libh2o 2.2.5's HTTP/2 connection (http2_internal.h,
 * read in lib/http2/connection.c; there is no per-stream hook): a client's
 * stream ids are odd and grow, so the highest one opened (pull_stream_ids.
 * max_open, set when a stream's HEADERS arrive) tells how many streams the
 * client opened; those still open are num_streams.pull.open; every other
 * one ended, either after its answer (counted here, wb_conn_answered) or
 * before it: reset by the client (RST_STREAM) while its body was still
 * coming, while it waited for a free slot, or while it waited for Kafka;
 * or refused by h2o (a protocol error on that stream). Stream ids skipped
 * by the client count as resets; no real client skips. */
#include "conn.h"
#include "log.h"

#include <h2o/http2.h>
#include <h2o/http2_internal.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* How often every HTTP/2 connection is looked at, for resets of streams
 * that never reached the handler (the handler counts the others at once). */
#define WB_CONN_SCAN_MS 100
/* For this long after a refusal, the peer's new connections start with an
 * empty budget (they earn it by letting streams finish). */
#define WB_CONN_PENALTY_MS 60000
/* A refused connection is closed after this even if h2o has not closed it
 * itself (streams still waiting for Kafka keep it open). */
#define WB_CONN_REFUSE_GRACE_MS 100

struct wb_conn {
    wb_worker_t *w;
    h2o_socket_t *sock;
    h2o_linklist_t node;         /* w->conns */
    h2o_linklist_t refused_node; /* w->refused, from the refusal to the close */
    uint64_t answered;           /* answers sent on it */
    uint64_t answered_seen;      /* answers already earned from */
    int64_t resets_seen;         /* resets already spent */
    int64_t budget;              /* resets it may still have */
    uint64_t refused_ms;         /* 0: not refused */
    int forced;                  /* the close was forced (shutdown) */
};

static void on_close(void *data)
{
    wb_conn_t *c = data;
    wb_worker_t *w = c->w;
    h2o_linklist_unlink(&c->node);
    if (h2o_linklist_is_linked(&c->refused_node))
        h2o_linklist_unlink(&c->refused_node);
    w->nconns--;
    atomic_fetch_sub_explicit(&w->stats.connections, 1, memory_order_relaxed);
    free(c);
}

/* The peer's address alone (no port), as the table keeps it. */
static int peer_key(h2o_socket_t *sock, unsigned char addr[16], int *family)
{
    struct sockaddr_storage ss;
    socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    memset(addr, 0, 16);
    *family = ss.ss_family;
    if (len >= sizeof(struct sockaddr_in) && ss.ss_family == AF_INET) {
        memcpy(addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        return 0;
    }
    if (len >= sizeof(struct sockaddr_in6) && ss.ss_family == AF_INET6) {
        memcpy(addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

static struct wb_conn_peer *find_peer(wb_worker_t *w, const unsigned char addr[16], int family)
{
    uint64_t now = h2o_now(w->ctx.loop);
    unsigned n = w->refused_peer_seq < WB_REFUSED_PEERS ? w->refused_peer_seq : WB_REFUSED_PEERS;
    for (unsigned i = 0; i < n; i++) {
        struct wb_conn_peer *p = &w->refused_peers[i];
        if (p->family == family && p->until_ms > now && memcmp(p->addr, addr, 16) == 0)
            return p;
    }
    return NULL;
}

/* Remembers the peer of a refused connection for WB_CONN_PENALTY_MS. */
static void remember_peer(wb_worker_t *w, h2o_socket_t *sock)
{
    unsigned char addr[16];
    int family;
    if (peer_key(sock, addr, &family) != 0)
        return;
    struct wb_conn_peer *p = find_peer(w, addr, family);
    if (p == NULL)
        p = &w->refused_peers[w->refused_peer_seq++ % WB_REFUSED_PEERS];
    memcpy(p->addr, addr, 16);
    p->family = family;
    p->until_ms = h2o_now(w->ctx.loop) + WB_CONN_PENALTY_MS;
}

int wb_conn_open(wb_worker_t *w, h2o_socket_t *sock)
{
    wb_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return WB_ERR_NOMEM;
    c->w = w;
    c->sock = sock;
    c->budget = w->cfg->http2_max_resets;
    if (w->refused_peer_seq > 0) { /* a peer refused lately starts with nothing */
        unsigned char addr[16];
        int family;
        if (peer_key(sock, addr, &family) == 0 && find_peer(w, addr, family) != NULL)
            c->budget = 0;
    }
    h2o_linklist_insert(&w->conns, &c->node);
    w->nconns++;
    atomic_fetch_add_explicit(&w->stats.connections, 1, memory_order_relaxed);
    sock->on_close.cb = on_close;
    sock->on_close.data = c;
    return WB_OK;
}

static wb_conn_t *conn_of(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->on_close.cb != on_close)
        return NULL;
    return sock->on_close.data;
}

/* Brings c's budget up to date with h2; 1 if it is spent. */
static int account(wb_conn_t *c, h2o_http2_conn_t *h2)
{
    const wb_config_t *cfg = c->w->cfg;
    int64_t opened = ((int64_t)h2->pull_stream_ids.max_open + 1) / 2;
    /* an answered stream stays open until its last frame is written, and
     * the count is one low meanwhile: only its growth is spent */
    int64_t resets = opened - (int64_t)h2->num_streams.pull.open - (int64_t)c->answered;
    int64_t max = cfg->http2_max_resets;

    c->budget += (int64_t)(c->answered - c->answered_seen) * cfg->http2_reset_ratio;
    c->answered_seen = c->answered;
    if (c->budget > max)
        c->budget = max;
    if (resets > c->resets_seen) {
        atomic_fetch_add_explicit(&c->w->stats.http2_resets,
                                  (unsigned long)(resets - c->resets_seen), memory_order_relaxed);
        c->budget -= resets - c->resets_seen;
        c->resets_seen = resets;
    }
    return max != 0 && c->budget < 0;
}

/* Stops h2 taking streams and tells the client why. libh2o 2.2.5 has no
 * public call for it: this is what its own idle timeout does (connection.c
 * enqueue_goaway): a GOAWAY frame in the connection's write buffer, a write
 * requested, the state HALF_CLOSED, in which h2o ignores new HEADERS and
 * DATA and closes the connection once its last answer is written. */
static void refuse(wb_conn_t *c, h2o_http2_conn_t *h2)
{
    wb_worker_t *w = c->w;
    c->refused_ms = h2o_now(w->ctx.loop);
    if (c->refused_ms == 0)
        c->refused_ms = 1;
    h2o_linklist_insert(&w->refused, &c->refused_node);
    atomic_fetch_add_explicit(&w->stats.http2_refused, 1, memory_order_relaxed);
    remember_peer(w, c->sock);

    struct sockaddr_storage ss;
    char host[NI_MAXHOST] = "";
    socklen_t sslen = h2o_socket_getpeername(c->sock, (struct sockaddr *)&ss);
    if (sslen > 0)
        h2o_socket_getnumerichost((struct sockaddr *)&ss, sslen, host);
    wb_log_t l;
    wb_log_begin(&l, WB_LOG_WARN,
                 "HTTP/2 connection refused: it resets streams faster than it lets them finish");
    wb_log_cstr(&l, "peer", host);
    wb_log_int(&l, "streams", ((long long)h2->pull_stream_ids.max_open + 1) / 2);
    wb_log_int(&l, "resets", c->resets_seen);
    wb_log_int(&l, "answered", (long long)c->answered);
    wb_log_end(&l);

    if (h2->state == H2O_HTTP2_CONN_STATE_OPEN) {
        h2o_http2_encode_goaway_frame(&h2->_write.buf, h2->pull_stream_ids.max_open,
                                      H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM,
                                      h2o_iovec_init(H2O_STRLIT("too many streams reset")));
        h2o_http2_conn_request_write(h2);
        h2->state = H2O_HTTP2_CONN_STATE_HALF_CLOSED;
    }
}

int wb_conn_admit(h2o_req_t *req)
{
    if (req->version < 0x200)
        return 0;
    wb_conn_t *c = conn_of(req);
    if (c == NULL)
        return 0;
    if (c->refused_ms != 0)
        return -1;
    h2o_http2_conn_t *h2 = (h2o_http2_conn_t *)req->conn; /* its first member */
    if (!account(c, h2))
        return 0;
    refuse(c, h2);
    return -1;
}

void wb_conn_answered(h2o_req_t *req)
{
    wb_conn_t *c = conn_of(req);
    if (c != NULL)
        c->answered++;
}

/* The close h2o has not done by itself: both directions shut, so that a
 * write waiting for a client that does not read fails at once, then h2o's
 * own read callback told of the end, as its event loop would on EOF
 * (connection.c on_read: close_connection, after a write in flight). */
static void force_close(wb_conn_t *c)
{
    h2o_socket_t *sock = c->sock;
    int fd = h2o_socket_get_fd(sock);
    c->forced = 1;
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    if (sock->_cb.read != NULL)
        sock->_cb.read(sock, "refused: too many streams reset"); /* may free c */
}

void wb_conn_tick(wb_worker_t *w)
{
    uint64_t now = h2o_now(w->ctx.loop);
    h2o_linklist_t *node, *next;

    for (node = w->refused.next; node != &w->refused; node = next) {
        next = node->next;
        wb_conn_t *c = H2O_STRUCT_FROM_MEMBER(wb_conn_t, refused_node, node);
        if (!c->forced && now - c->refused_ms >= WB_CONN_REFUSE_GRACE_MS)
            force_close(c);
    }
    if (w->cfg->http2_max_resets == 0 || now - w->conn_scan_ms < WB_CONN_SCAN_MS)
        return;
    w->conn_scan_ms = now;
    for (node = w->ctx.http2._conns.next; node != &w->ctx.http2._conns; node = node->next) {
        h2o_http2_conn_t *h2 = H2O_STRUCT_FROM_MEMBER(h2o_http2_conn_t, _conns, node);
        if (h2->sock == NULL || h2->sock->on_close.cb != on_close)
            continue;
        wb_conn_t *c = h2->sock->on_close.data;
        if (c->refused_ms == 0 && account(c, h2))
            refuse(c, h2); /* frees nothing: the list stays as it is */
    }
}
