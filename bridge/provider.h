/* provider.h - the built-in provider descriptions (Piriod, Shoperti,
 * BonifiQ) and the settings a [provider.NAME] section may change.
 * A provider is data: adding one is a configuration entry, never code. */
#ifndef WB_PROVIDER_H
#define WB_PROVIDER_H

#include "config.h"

/* Fills prov with the defaults of the named built-in provider, or with the
 * generic defaults for a new one. Returns WB_OK or WB_ERR_NOMEM. */
int wb_provider_init(wb_provider_t *prov, const char *name);
void wb_provider_free(wb_provider_t *prov);

/* Names of the built-in providers, NULL-terminated. */
extern const char *const wb_provider_builtins[];

/* Applies one key of a [provider.NAME] section (auth keys go to auth.c).
 * Returns WB_OK, or WB_ERR_CONFIG with the reason in err. */
int wb_provider_set(wb_provider_t *prov, const char *key, const char *value, char *err,
                    size_t errsz);

/* Returns 1 if name is a valid provider name ([a-z0-9]+, at most 32). */
int wb_provider_name_valid(const char *name, size_t len);

#endif
