/* conn.h - the webhook connections of a worker: how many are open (the cap
 * server.c enforces by pausing its listener). */
#ifndef WB_CONN_H
#define WB_CONN_H

#include "worker.h"

typedef struct wb_conn wb_conn_t;

/* Counts an accepted socket until it closes (its on_close hook, which h2o
 * leaves free on accepted sockets). Call before h2o_accept. WB_OK, or
 * WB_ERR_NOMEM: the caller closes the socket. */
int wb_conn_open(wb_worker_t *w, h2o_socket_t *sock);

#endif
