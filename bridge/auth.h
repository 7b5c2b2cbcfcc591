/* auth.h - per-provider authentication of a webhook, checked on the raw
 * request before anything is parsed or produced.
 * Owns: the methods (none, static header, HMAC-SHA256, Standard Webhooks,
 * secret path segment, source network allow-list; api-lookup's settings
 * are lookup.c's), their secrets, secret
 * comparison in constant time, timestamp tolerance. Never logs secrets. */
#ifndef WB_AUTH_H
#define WB_AUTH_H

#include "common.h"

#include <sys/socket.h>

typedef struct wb_auth_conf wb_auth_conf_t;

/* Sets one key of a provider's [provider.NAME] section that belongs to
 * authentication: "auth" (the method) or "auth.<something>". *ac is created
 * on first use (NULL means "no method configured"). Returns WB_OK or
 * WB_ERR_CONFIG with the reason in err. */
int wb_auth_conf_set(wb_auth_conf_t **ac, const char *key, const char *value, char *err,
                     size_t errsz);

/* Called once per provider after every key is set: loads secrets (from the
 * environment or files), checks that the method has what it needs. When
 * real_brokers is set and no method was chosen (not even an explicit "none"),
 * fails. Returns WB_OK or WB_ERR_CONFIG. */
int wb_auth_conf_finish(wb_auth_conf_t **ac, const char *provider, int real_brokers, char *err,
                        size_t errsz);

void wb_auth_conf_free(wb_auth_conf_t *ac);

/* "none", "header", "hmac", "standard-webhooks", "path", ... (never a secret). */
const char *wb_auth_method_name(const wb_auth_conf_t *ac);
/* 1 if requests are accepted without any credential (method none or unset). */
int wb_auth_is_none(const wb_auth_conf_t *ac);
/* auth = api-lookup: its settings (lookup.h), NULL for every other method.
 * wb_auth_verify checks only the source network then; the look-up decides. */
struct wb_lookup_conf;
const struct wb_lookup_conf *wb_auth_lookup(const wb_auth_conf_t *ac);

/* 1 if the method expects a secret segment after /webhooks/NAME/. */
int wb_auth_uses_path(const wb_auth_conf_t *ac);

/* What verification looks at, all borrowed for the duration of the call. */
typedef struct {
    wb_str_t body;               /* raw body, as received */
    wb_str_t path_token;         /* segment after /webhooks/NAME/, empty if none */
    const struct sockaddr *peer; /* the TCP peer, may be NULL */
    /* Returns 1 and sets *value to the idx-th (0-based) header called name
     * (case-insensitive), 0 when there is none. */
    int (*header)(void *ctx, const char *name, size_t idx, wb_str_t *value);
    void *header_ctx;
    int64_t now; /* unix seconds */
} wb_auth_req_t;

/* Verifies a request. Thread-safe (the configuration is read-only).
 * Returns WB_OK, or WB_ERR_AUTH with *code set to a stable error code
 * (e.g. "auth_missing", "auth_invalid") and a human reason in err that
 * contains no secret. */
int wb_auth_verify(const wb_auth_conf_t *ac, const wb_auth_req_t *in, const char **code, char *err,
                   size_t errsz);

/* The stable codes wb_auth_verify puts in *code (the "error" of the 401
 * answer). WB_AUTH_INTERNAL comes with a return value other than
 * WB_ERR_AUTH (e.g. WB_ERR_NOMEM when OpenSSL fails): not the caller's
 * fault, answer 503 so that the provider retries. */
#define WB_AUTH_MISSING "auth_missing"                     /* credential absent */
#define WB_AUTH_INVALID "auth_invalid"                     /* present but wrong or malformed */
#define WB_AUTH_TIMESTAMP "auth_timestamp"                 /* outside the tolerance */
#define WB_AUTH_FORBIDDEN_NETWORK "auth_forbidden_network" /* source not allowed */
#define WB_AUTH_INTERNAL "auth_internal"                   /* could not verify */

/* 1 if a request header called name (case-insensitive) carries a credential
 * for this provider (a configured token or signature header, or
 * webhook-signature), so that logs can redact it. The path method keeps
 * its secret in the URL: see wb_auth_uses_path. */
int wb_auth_is_secret_header(const wb_auth_conf_t *ac, wb_str_t name);

#endif
