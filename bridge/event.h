/* event.h - turns a validated webhook body into the canonical record: a
 * CloudEvents 1.0 event in structured JSON mode, its topic and its key. */
#ifndef WB_EVENT_H
#define WB_EVENT_H

#include "config.h"
#include "json.h"
#include "route.h"

#define WB_ID_MAX 256
#define WB_SUBJECT_MAX 512
#define WB_EVENT_NAME_MAX 200

typedef struct {
    char id[WB_ID_MAX + 1];
    size_t id_len;
    int id_generated; /* id is a fresh UUID: the body gave none that could be used */
    char subject[WB_SUBJECT_MAX + 1];
    size_t subject_len; /* 0: none */
    char type[WB_TYPE_MAX + 1];
    char topic[WB_TOPIC_MAX + 1];
    const char *key; /* points into id or subject */
    size_t key_len;
    int deadletter;   /* the body was valid JSON of the wrong shape */
    char reason[200]; /* why, for dead letters */
    wb_buf_t value;   /* the record; malloc'ed, owned until stolen */
} wb_event_t;

/* Builds the record of a body that wb_json_parse() accepted (js holds its
 * tokens). now_ms is the receive time. A body of the wrong shape still
 * gives a record: the dead letter, with ev->deadletter set and the reason.
 * Returns WB_OK, or WB_ERR_NOMEM / WB_ERR_TOO_LARGE. ev->value is freed by
 * wb_event_free unless stolen. */
int wb_event_build(const wb_config_t *cfg, const wb_provider_t *prov, const wb_json_t *js,
                   int64_t now_ms, wb_event_t *ev);
/* The same for a dead letter being replayed (replay.c): received_ms is its
 * receivedat, id the id it was answered with (kept whatever the body now
 * gives), replayed_from ("<topic>/<partition>/<offset>" of the dead letter,
 * or NULL) the extension attribute replayedfrom. */
int wb_event_replay(const wb_config_t *cfg, const wb_provider_t *prov, const wb_json_t *js,
                    int64_t received_ms, const char *id, size_t id_len, const char *replayed_from,
                    wb_event_t *ev);
void wb_event_free(wb_event_t *ev);

/* Rewrites a record that wb_event_build made (value[0..len)) into a dead
 * letter of that record: type <provider>.deadletter and deadletterreason
 * reason, every other attribute and data as they were. Appends to out;
 * parses with js. Returns WB_OK, WB_ERR_TOO_LARGE (out's cap) or the parse error. */
int wb_event_to_deadletter(const wb_config_t *cfg, const wb_provider_t *prov, wb_json_t *js,
                           const char *value, size_t len, const char *reason, wb_buf_t *out);

/* The same, for a record Kafka refused for good: a data longer than
 * data_keep bytes is replaced by {"truncated": true, "size", "sha256" (of
 * the whole data, the provider's body as received), "head" (its first
 * data_keep bytes at most, as a string)}, so that the dead letter fits where
 * the record did not. */
int wb_event_to_refused(const wb_config_t *cfg, const wb_provider_t *prov, wb_json_t *js,
                        const char *value, size_t len, const char *reason, size_t data_keep,
                        wb_buf_t *out);

/* Normalizes a provider's time into RFC 3339 (T separator, Z or an offset)
 * in out (at least 64 bytes). Returns WB_OK or WB_ERR_SHAPE. Exposed for tests. */
int wb_event_time(const wb_json_val_t *v, wb_time_format_t fmt, char *out, size_t outsz);
/* Writes t (ms since the epoch) as 2006-01-02T15:04:05.000Z. */
void wb_event_format_ms(int64_t t, char *out, size_t outsz);

#endif
