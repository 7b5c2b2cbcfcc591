/* conn.h - the webhook connections of a worker: how many are open (the cap
 * server.c enforces by pausing its listener), and the HTTP/2 reset bound
 * (CVE-2023-44487, "rapid reset": streams opened and reset at once, which
 * libh2o 2.2.5 never limits). */
#ifndef WB_CONN_H
#define WB_CONN_H

#include "worker.h"

typedef struct wb_conn wb_conn_t;

/* Counts an accepted socket until it closes (its on_close hook, which h2o
 * leaves free on accepted sockets). Call before h2o_accept. WB_OK, or
 * WB_ERR_NOMEM: the caller closes the socket. */
int wb_conn_open(wb_worker_t *w, h2o_socket_t *sock);

/* A request reached the handler. 0: serve it. -1: its HTTP/2 connection has
 * spent its reset budget (now, or before) and is being closed: nothing of
 * it may be produced; answer it with an error. */
int wb_conn_admit(h2o_req_t *req);

/* An answer leaves on req's connection (any status): a stream that ended
 * after its answer, which earns back resets. */
void wb_conn_answered(h2o_req_t *req);

/* Once per loop turn, outside h2o's callbacks: closes the connections
 * refused since, and now and then looks at every HTTP/2 connection for
 * resets that never reached the handler (a stream reset before its body
 * was complete). */
void wb_conn_tick(wb_worker_t *w);

#endif
