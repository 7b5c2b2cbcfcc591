/* admin.h - the admin listener: /healthz, /readyz, /metrics. */
#ifndef WB_ADMIN_H
#define WB_ADMIN_H

#include "config.h"
#include "stats.h"

typedef struct wb_admin wb_admin_t;

/* Binds the admin listener; view (borrowed) is what it reads. NULL with err
 * on failure. */
wb_admin_t *wb_admin_new(const wb_config_t *cfg, const wb_stats_view_t *view, char *err,
                         size_t errsz);
/* Starts its thread. */
void wb_admin_start(wb_admin_t *a);
void wb_admin_stop(wb_admin_t *a);
void wb_admin_free(wb_admin_t *a);

#endif
