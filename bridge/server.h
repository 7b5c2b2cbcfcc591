/* server.h - the worker threads (one h2o event loop and one producer each,
 * sharing the port with SO_REUSEPORT) and the drain. */
#ifndef WB_SERVER_H
#define WB_SERVER_H

#include "config.h"
#include "stats.h"

#define H2O_USE_LIBUV 0
#include <h2o.h>

typedef struct wb_server wb_server_t;

/* Binds the listeners and creates the workers (one producer each on
 * bootstrap). Returns NULL with err on failure. */
wb_server_t *wb_server_new(const wb_config_t *cfg, const char *bootstrap, char *err, size_t errsz);
/* Runs the workers until a drain completes. */
int wb_server_run(wb_server_t *srv);
/* Async-signal-safe: starts the drain. */
void wb_server_request_drain(void);
void wb_server_free(wb_server_t *srv);
/* The counters of every worker, for admin.c; valid until wb_server_free. */
const wb_stats_view_t *wb_server_stats(const wb_server_t *srv);

/* Connections (and h2o shutdown timers) still alive on ctx. */
int wb_server_connections_open(h2o_context_t *ctx);

/* Opens a listening TCP socket (SO_REUSEPORT when reuseport). -1 with err. */
int wb_server_listen(const char *addr, int reuseport, char *err, size_t errsz);

#endif
