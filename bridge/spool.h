/* spool.h - the local durable spool: records Kafka has not acknowledged in
 * time, kept on disk until the replayer has them acknowledged (CONTRACT.md,
 * "The one exception"). One spool file per worker thread, used by that
 * thread only: SQLite in WAL mode with synchronous=FULL, so that a commit is
 * on disk when wb_spool_commit returns (the 200 "spooled" waits for it).
 * Appends are batched: every record added during one event-loop turn is
 * made durable by one transaction and one fsync (group commit). */
#ifndef WB_SPOOL_H
#define WB_SPOOL_H

#include "common.h"

#include <stdint.h>

typedef struct wb_spool wb_spool_t;

/* A spooled record, as it will be produced (same topic, key, value, headers). */
typedef struct {
    int64_t seq;          /* order of arrival, increasing */
    const char *provider; /* the provider's name */
    const char *topic;
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    const char *reason;   /* "deadletter-reason" header, or NULL */
    const char *intended; /* "intended-topic" header, or NULL */
    int64_t spooled_ms;   /* wall clock when it was added */
} wb_spool_rec_t;

typedef struct {
    uint64_t records, bytes;
    int64_t oldest_ms; /* spooled_ms of the oldest record, 0: empty */
    uint64_t corrupt;  /* records moved aside since open */
    uint64_t commits;  /* transactions committed since open: one fsync each, at least */
} wb_spool_stats_t;

/* Every function is thread-safe (one mutex): the workers of a process share
 * one spool, so that its order is the order of arrival. */

/* Opens (or creates) the spool file at path; max_bytes bounds the records'
 * size in it (keys and values). NULL with err on failure. */
wb_spool_t *wb_spool_open(const char *path, uint64_t max_bytes, char *err, size_t errsz);
void wb_spool_close(wb_spool_t *sp);

/* Adds rec (its seq and spooled_ms are ignored) to the batch of this loop
 * turn; *seq receives its place. Nothing is durable before wb_spool_commit.
 * WB_ERR_TOO_LARGE when max_bytes would be passed (a failure answer, never
 * an unbounded queue); WB_ERR_NOMEM. */
int wb_spool_add(wb_spool_t *sp, const wb_spool_rec_t *rec, int64_t *seq, uint64_t *batch);
/* Makes the batch (wb_spool_add's *batch) durable, with every record added
 * and removed in it: one transaction, one fsync, shared by whoever added to
 * it (another thread's commit may have made it durable already: WB_OK). On
 * an error (ENOSPC, I/O) none of the batch's records is kept, err says why,
 * and the callers answer failures. batch 0: whatever is open. */
int wb_spool_commit(wb_spool_t *sp, uint64_t batch, char *err, size_t errsz);
/* Marks seq done (acknowledged by Kafka): gone at the next commit. If that
 * commit fails (the disk full), the removal is done again by a later
 * wb_spool_commit(sp, 0), at most once a second, until it holds. */
int wb_spool_remove(wb_spool_t *sp, int64_t seq);
/* 1 when removals undone by a failed commit wait for wb_spool_commit(sp, 0). */
int wb_spool_needs_commit(wb_spool_t *sp);

/* Calls fn for the committed records after seq after_seq, in order, at most
 * max of them; a record whose checksum does not match is moved aside (table
 * corrupt), counted, and skipped. The record's strings are valid during fn
 * only. Returns how many fn saw, or a negative wb_err_t. */
int wb_spool_scan(wb_spool_t *sp, int64_t after_seq, unsigned max,
                  void (*fn)(void *ctx, const wb_spool_rec_t *rec), void *ctx);

void wb_spool_stats(wb_spool_t *sp, wb_spool_stats_t *out);
/* Committed records of provider (at start: what it must replay first). */
uint64_t wb_spool_count(wb_spool_t *sp, const char *provider);

/* A spooled record whose original is still in the producer: the replayer
 * stops before it (it may yet succeed, and then is removed, not replayed). */
void wb_spool_hold(wb_spool_t *sp, int64_t seq);
void wb_spool_release(wb_spool_t *sp, int64_t seq);

/* ---- the replayer: spooled records back to Kafka, in order ---- */

#define WB_SPOOL_REPLAY_KIND 0x52504c59 /* first member of a replay's report opaque */

/* What the report callback gets for a replayed record. */
typedef struct {
    int kind; /* WB_SPOOL_REPLAY_KIND */
    int64_t seq;
    char provider[40];
    int refused; /* the record was refused for good: its dead letter is what is in flight */
} wb_spool_replay_t;

/* A record to produce, in the order given; 0 if the producer took it (the
 * replay's report comes later with opaque), else nonzero (stop for now). */
typedef int (*wb_spool_produce_fn)(void *ctx, const wb_spool_rec_t *rec, wb_spool_replay_t *opaque);

/* A damaged record the replayer moved aside (table corrupt): its seq and
 * provider (NULL when that too is unreadable). */
typedef void (*wb_spool_moved_fn)(void *ctx, int64_t seq, const char *provider);

/* Hands the next committed records (after the last one handed, none held,
 * at most max in flight) to produce; a damaged one is moved aside, told to
 * moved, and skipped. Returns how many were handed. */
int wb_spool_replay(wb_spool_t *sp, unsigned max_inflight, wb_spool_produce_fn produce,
                    wb_spool_moved_fn moved, void *ctx);
/* 1 when every record added has been handed to the replayer's producer and
 * none is held or to be handed again: a record produced after this by the
 * same producer cannot overtake a spooled one (same partition, same queue). */
int wb_spool_caught_up(wb_spool_t *sp);
/* The report of a replayed record: removed (at the next commit) when
 * acknowledged, else handed again by a later wb_spool_replay. Frees rp.
 * Copies the provider's name into provider (at least 40 bytes). Returns 1
 * when the record is done. */
int wb_spool_replayed(wb_spool_t *sp, wb_spool_replay_t *rp, int ok, char *provider);
/* Replayed records acknowledged since open. */
uint64_t wb_spool_replayed_total(wb_spool_t *sp);

#endif
