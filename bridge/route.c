/* route.c - type normalization and topic choice. Pure functions of the
 * configuration snapshot; nothing here allocates. */
#include "route.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

int wb_route_type(char *out, size_t outsz, const char *provider, const char *event,
                  size_t event_len)
{
    int n = snprintf(out, outsz, "%s", provider);
    if (n < 0 || (size_t)n >= outsz)
        return WB_ERR_TOO_LARGE;
    size_t len = (size_t)n, start = len;
    int pending_dot = 1; /* the provider/event separator */
    for (size_t i = 0; i < event_len; i++) {
        unsigned char c = (unsigned char)event[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            pending_dot = 1;
            continue;
        }
        if (pending_dot) {
            if (len + 1 >= outsz)
                return WB_ERR_TOO_LARGE;
            out[len++] = '.';
            pending_dot = 0;
        }
        if (len + 1 >= outsz)
            return WB_ERR_TOO_LARGE;
        out[len++] = (char)c;
    }
    out[len] = '\0';
    if (len == start) /* nothing but separators */
        return WB_ERR_SHAPE;
    return (int)len;
}

int wb_route_topic(const wb_config_t *cfg, const char *type, char *out, size_t outsz)
{
    int n;
    for (unsigned i = 0; i < cfg->nroutes; i++)
        if (fnmatch(cfg->routes[i].glob, type, 0) == 0) {
            n = snprintf(out, outsz, "%s", cfg->routes[i].topic);
            return n < 0 || (size_t)n >= outsz ? WB_ERR_TOO_LARGE : WB_OK;
        }
    n = snprintf(out, outsz, "%s.%s", cfg->topic_prefix, type);
    if (n < 0 || (size_t)n >= outsz || n > WB_TOPIC_MAX)
        return WB_ERR_TOO_LARGE;
    return WB_OK;
}
