/* route.h - the event type of a webhook and the Kafka topic it goes to. */
#ifndef WB_ROUTE_H
#define WB_ROUTE_H

#include "config.h"

#define WB_TYPE_MAX 200
#define WB_TOPIC_MAX 249

/* Writes "<provider>.<event>" into out (NUL-terminated): the event lower-
 * cased, every run of bytes outside [a-z0-9] turned into one '.', no leading
 * or trailing '.'. Returns the length, or WB_ERR_SHAPE when the event has no
 * [a-z0-9] at all, WB_ERR_TOO_LARGE when the type does not fit in outsz. */
int wb_route_type(char *out, size_t outsz, const char *provider, const char *event,
                  size_t event_len);

/* Chooses the topic of a type: the first [routes] glob (fnmatch) that
 * matches, else "<topic_prefix>.<type>". Writes it NUL-terminated into out
 * (at least WB_TOPIC_MAX + 1 bytes). Returns WB_OK or WB_ERR_TOO_LARGE. */
int wb_route_topic(const wb_config_t *cfg, const char *type, char *out, size_t outsz);

#endif
