/* admin.h - the admin listener: /healthz, /readyz, /metrics. */
#ifndef WB_ADMIN_H
#define WB_ADMIN_H

#include "config.h"

typedef struct wb_admin wb_admin_t;
struct wb_server;

/* Binds the admin listener. NULL with err on failure. */
wb_admin_t *wb_admin_new(const wb_config_t *cfg, struct wb_server *srv, char *err, size_t errsz);
/* Starts its thread and the readiness probe. */
void wb_admin_start(wb_admin_t *a);
void wb_admin_stop(wb_admin_t *a);
void wb_admin_free(wb_admin_t *a);

#endif
