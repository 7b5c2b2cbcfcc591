/* lookup.h - auth = api-lookup: a webhook is trusted once the provider's own
 * API, asked for the event by its id, confirms it (Shoperti's "Verificando
 * eventos"). The settings (auth.url, ...), the URL template, the process's
 * positive caches and each worker's client on that worker's event loop.
 * auth.c owns the method and the credential; ingest.c holds the request
 * while its look-up runs. */
#ifndef WB_LOOKUP_H
#define WB_LOOKUP_H

#include "common.h"
#include "json.h"

#define H2O_USE_LIBUV 0
#include <h2o.h>

/* ---- settings (keys of [provider.NAME] after "auth.", canonical form) ---- */

typedef struct wb_lookup_conf wb_lookup_conf_t;

/* 1 if name ("url", "cache_s", ...) is a key of this method. */
int wb_lookup_conf_key(const char *name);
/* Sets one; *lc is created on first use. WB_OK or WB_ERR_CONFIG (reason in err). */
int wb_lookup_conf_set(wb_lookup_conf_t **lc, const char *name, wb_str_t value, char *err,
                       size_t errsz);
/* The first key set, for "does not apply to auth = X" (NULL: none). */
const char *wb_lookup_conf_first_key(const wb_lookup_conf_t *lc);
/* After every key: checks auth.url is there, makes the TLS context and the
 * request's fixed part. header/cred: the credential header and the secret
 * (cred NULL: none is sent), copied; auth.scheme goes before the secret. WB_OK or WB_ERR_CONFIG. */
int wb_lookup_conf_finish(wb_lookup_conf_t *lc, const char *header, const unsigned char *cred,
                          size_t cred_len, char *err, size_t errsz);
void wb_lookup_conf_free(wb_lookup_conf_t *lc);
/* The whole look-up's bound, queue wait included (auth.timeout_ms). */
unsigned wb_lookup_conf_timeout_ms(const wb_lookup_conf_t *lc);

/* Writes tmpl with every "{id}" replaced by id, percent-encoded (RFC 3986:
 * every byte but A-Z a-z 0-9 - . _ ~ becomes %XX), into out (NUL-terminated).
 * Returns the length, or -1 if out is too small. Exposed for the tests and
 * the fuzzer. */
long wb_lookup_expand(const char *tmpl, size_t tmpl_len, const char *id, size_t id_len, char *out,
                      size_t outsz);

/* ---- the process's caches: one per provider, shared by the workers ---- */

typedef struct wb_lookup wb_lookup_t;

/* confs[i]: provider i's settings, or NULL (no look-up). NULL on no memory. */
wb_lookup_t *wb_lookup_new(const wb_lookup_conf_t *const *confs, unsigned n);
void wb_lookup_free(wb_lookup_t *lk);

/* ---- one worker's client, on its loop ---- */

typedef struct wb_lookup_client wb_lookup_client_t;

typedef enum {
    WB_LOOKUP_PENDING = 0, /* started: the callback says how it ended */
    WB_LOOKUP_CONFIRMED,   /* the API has this event (or the cache says so) */
    WB_LOOKUP_REFUSED,     /* the API does not have it, or has another one: 401 */
    WB_LOOKUP_FAILED,      /* the API could not say (down, slow, garbage): retry */
    WB_LOOKUP_CANCELLED,   /* the client is going away */
} wb_lookup_result_t;

/* reason: for the log and the answer, never a secret; valid during the call. */
typedef void (*wb_lookup_cb)(void *data, wb_lookup_result_t res, const char *reason);

wb_lookup_client_t *wb_lookup_client_new(wb_lookup_t *lk, h2o_loop_t *loop,
                                         h2o_multithread_receiver_t *getaddr);
/* Ends every look-up (callbacks with WB_LOOKUP_CANCELLED) and closes the
 * connections; on the loop's thread, while the loop exists. */
void wb_lookup_client_free(wb_lookup_client_t *c);

/* Asks provider pi's API about the event with this id, whose body js holds
 * (read now, not kept). A final result is returned at once (a cache hit, a
 * webhook without a field to match) and cb is not called; WB_LOOKUP_PENDING:
 * cb is called once, later. reason (for final results) is written to err. */
wb_lookup_result_t wb_lookup_start(wb_lookup_client_t *c, unsigned pi, const wb_lookup_conf_t *lc,
                                   const wb_json_t *js, const char *id, size_t id_len,
                                   wb_lookup_cb cb, void *data, char *err, size_t errsz);

/* Counters of the process, for /metrics (relaxed reads). */
typedef struct {
    unsigned long confirmed, refused, failed, cache_hits;
} wb_lookup_counts_t;
void wb_lookup_counts(const wb_lookup_t *lk, unsigned pi, wb_lookup_counts_t *out);

#endif
