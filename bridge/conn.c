/* conn.c - the webhook connections of a worker. Each accepted socket gets a
 * wb_conn_t through the socket's on_close hook (libh2o 2.2.5 uses that hook
 * only on the sockets of its own client pool, never on accepted ones), so
 * the worker knows how many are open (the cap server.c enforces).
 * Must not: answer requests (ingest.c), own the listener (server.c). */
#include "conn.h"

#include <stdlib.h>

struct wb_conn {
    wb_worker_t *w;
    h2o_socket_t *sock;
    h2o_linklist_t node; /* w->conns */
};

static void on_close(void *data)
{
    wb_conn_t *c = data;
    wb_worker_t *w = c->w;
    h2o_linklist_unlink(&c->node);
    w->nconns--;
    atomic_fetch_sub_explicit(&w->stats.connections, 1, memory_order_relaxed);
    free(c);
}

int wb_conn_open(wb_worker_t *w, h2o_socket_t *sock)
{
    wb_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return WB_ERR_NOMEM;
    c->w = w;
    c->sock = sock;
    h2o_linklist_insert(&w->conns, &c->node);
    w->nconns++;
    atomic_fetch_add_explicit(&w->stats.connections, 1, memory_order_relaxed);
    sock->on_close.cb = on_close;
    sock->on_close.data = c;
    return WB_OK;
}
