/* spool.c - the spool's storage (spool.h), on SQLite: WAL journal,
 * synchronous=FULL (a COMMIT returns once the WAL is fsync'd), one
 * transaction per batch. SQLite's WAL frames carry checksums, so a torn tail
 * after a crash is dropped by SQLite itself at open; each record also carries
 * a CRC-32 of what will be produced, so that a record damaged in place is
 * found at scan time and moved aside (table corrupt), never produced wrong
 * nor silently dropped.
 * Owns: the database handle and its statements. Must not: produce records
 * or log (the caller does both). */
#include "spool.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

enum {
    ST_INSERT,
    ST_DELETE,
    ST_SIZE,
    ST_SCAN,
    ST_MOVE,
    ST_DROP,
    ST_OLDEST,
    ST_BY_PROVIDER,
    ST_COUNT
};

struct wb_spool {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    uint64_t max_bytes;
    uint64_t records, bytes;             /* committed */
    uint64_t batch_records, batch_bytes; /* added (or removed: negative) since the commit */
    int64_t batch_removed_records, batch_removed_bytes;
    int64_t batch_first; /* the first seq added in this batch */
    uint64_t batch;      /* the open (or last) batch's number */
    uint64_t failed[16]; /* the last batches whose commit failed */
    unsigned nfailed;
    int in_batch;
    uint64_t corrupt, commits;
    pthread_mutex_t lock;
    /* seqs removed in the open batch; and those whose removal a failed
     * commit undid (ENOSPC), removed again at the next batch: a record
     * acknowledged by Kafka is never replayed because the disk was full */
    int64_t *removing, *unremoved;
    size_t nremoving, capremoving, nunremoved, capunremoved;
    int64_t unremoved_retry_ms;
    /* seqs whose original record is still in the producer, increasing */
    int64_t *held;
    size_t nheld, capheld;
    /* the replayer */
    int64_t last_seq;     /* the highest seq added */
    int64_t replay_after; /* the last seq handed to the producer */
    int64_t rewind;       /* the lowest seq whose replay failed, 0: none */
    int64_t retry_at_ms;  /* after a failure, no replay before this */
    unsigned replay_inflight;
    uint64_t replayed;
};

static const char *const sql[ST_COUNT] = {
    [ST_INSERT] = "INSERT INTO records(provider, topic, key, value, reason, intended, spooled_ms,"
                  " crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_DELETE] = "DELETE FROM records WHERE seq = ?",
    [ST_SIZE] = "SELECT length(key) + length(value) FROM records WHERE seq = ?",
    [ST_SCAN] = "SELECT seq, provider, topic, key, value, reason, intended, spooled_ms, crc"
                " FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
    [ST_MOVE] = "INSERT INTO corrupt SELECT * FROM records WHERE seq = ?",
    [ST_DROP] = "DELETE FROM records WHERE seq = ?",
    [ST_OLDEST] = "SELECT spooled_ms FROM records ORDER BY seq LIMIT 1",
    [ST_BY_PROVIDER] = "SELECT count(*) FROM records WHERE provider = ?",
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What the record will be produced as: a change anywhere changes it. */
static uint32_t record_crc(const char *topic, const void *key, size_t key_len, const void *value,
                           size_t value_len, const char *reason, const char *intended)
{
    uLong c = crc32(0L, Z_NULL, 0);
    const char *strs[] = {topic, reason != NULL ? reason : "", intended != NULL ? intended : ""};
    for (unsigned i = 0; i < 3; i++)
        c = crc32(c, (const Bytef *)strs[i], (uInt)strlen(strs[i]) + 1);
    c = crc32(c, (const Bytef *)key, (uInt)key_len);
    c = crc32(c, (const Bytef *)"", 1);
    c = crc32(c, (const Bytef *)value, (uInt)value_len);
    return (uint32_t)c;
}

static int exec(wb_spool_t *sp, const char *q, char *err, size_t errsz)
{
    char *msg = NULL;
    if (sqlite3_exec(sp->db, q, NULL, NULL, &msg) != SQLITE_OK) {
        wb_errf(err, errsz, WB_ERR_CONFIG, "spool: %s: %s", q, msg != NULL ? msg : "?");
        sqlite3_free(msg);
        return WB_ERR_CONFIG;
    }
    return WB_OK;
}

wb_spool_t *wb_spool_open(const char *path, uint64_t max_bytes, char *err, size_t errsz)
{
    wb_spool_t *sp = calloc(1, sizeof(*sp));
    if (sp == NULL)
        return NULL;
    sp->max_bytes = max_bytes;
    pthread_mutex_init(&sp->lock, NULL);
    if (sqlite3_open_v2(path, &sp->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        wb_errf(err, errsz, WB_ERR_CONFIG, "spool %s: %s", path,
                sp->db != NULL ? sqlite3_errmsg(sp->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(sp->db, 1000);
    /* journal_mode answers the mode it is in: SQLite may stay in another
     * without an error (e.g. a file system without shared memory) */
    sqlite3_stmt *jm = NULL;
    int wal = sqlite3_prepare_v2(sp->db, "PRAGMA journal_mode=WAL", -1, &jm, NULL) == SQLITE_OK &&
              sqlite3_step(jm) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(jm, 0), "wal") == 0;
    sqlite3_finalize(jm);
    if (!wal) {
        wb_errf(err, errsz, WB_ERR_CONFIG, "spool %s: cannot use WAL mode: %s", path,
                sqlite3_errmsg(sp->db));
        goto fail;
    }
    if (exec(sp, "PRAGMA synchronous=FULL", err, errsz) != WB_OK ||
        exec(sp,
             "CREATE TABLE IF NOT EXISTS records(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
             " provider TEXT NOT NULL, topic TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
             " reason TEXT, intended TEXT, spooled_ms INTEGER NOT NULL, crc INTEGER NOT NULL);"
             "CREATE TABLE IF NOT EXISTS corrupt(seq INTEGER, provider TEXT, topic TEXT, key BLOB,"
             " value BLOB, reason TEXT, intended TEXT, spooled_ms INTEGER, crc INTEGER)",
             err, errsz) != WB_OK)
        goto fail;
    for (unsigned i = 0; i < ST_COUNT; i++)
        if (sqlite3_prepare_v2(sp->db, sql[i], -1, &sp->st[i], NULL) != SQLITE_OK) {
            wb_errf(err, errsz, WB_ERR_CONFIG, "spool: %s", sqlite3_errmsg(sp->db));
            goto fail;
        }
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(sp->db,
                           "SELECT count(*), coalesce(sum(length(key) + length(value)), 0),"
                           " coalesce(max(seq), 0) FROM records",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW) {
        wb_errf(err, errsz, WB_ERR_CONFIG, "spool %s: %s", path, sqlite3_errmsg(sp->db));
        sqlite3_finalize(q);
        goto fail;
    }
    sp->records = (uint64_t)sqlite3_column_int64(q, 0);
    sp->bytes = (uint64_t)sqlite3_column_int64(q, 1);
    sp->last_seq = sqlite3_column_int64(q, 2);
    sqlite3_finalize(q);
    return sp;
fail:
    wb_spool_close(sp);
    return NULL;
}

void wb_spool_close(wb_spool_t *sp)
{
    if (sp == NULL)
        return;
    if (sp->in_batch)
        sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
    for (unsigned i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(sp->st[i]);
    sqlite3_close(sp->db);
    pthread_mutex_destroy(&sp->lock);
    free(sp->held);
    free(sp->removing);
    free(sp->unremoved);
    free(sp);
}

/* Appends seq to *v (n, cap); 0 when out of memory. */
static int push_seq(int64_t **v, size_t *n, size_t *cap, int64_t seq)
{
    if (*n == *cap) {
        size_t c = *cap != 0 ? *cap * 2 : 64;
        int64_t *p = realloc(*v, c * sizeof(*p));
        if (p == NULL)
            return 0;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = seq;
    return 1;
}

static int delete_row(wb_spool_t *sp, int64_t seq);

static int begin(wb_spool_t *sp)
{
    if (sp->in_batch)
        return WB_OK;
    if (sqlite3_exec(sp->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return WB_ERR_NOMEM;
    sp->in_batch = 1;
    sp->batch++;
    sp->batch_records = sp->batch_bytes = 0;
    sp->batch_removed_records = sp->batch_removed_bytes = 0;
    sp->nremoving = 0;
    /* what a failed commit undid, or a full disk refused: again (in place) */
    size_t keep = 0;
    for (size_t i = 0; i < sp->nunremoved; i++) {
        int r = delete_row(sp, sp->unremoved[i]);
        if (r != WB_OK && r != WB_ERR_NOTFOUND)
            sp->unremoved[keep++] = sp->unremoved[i];
    }
    sp->nunremoved = keep;
    return WB_OK;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s != NULL ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int spool_add(wb_spool_t *sp, const wb_spool_rec_t *rec, int64_t *seq, uint64_t *batch)
{
    uint64_t size = rec->key_len + rec->value_len;
    if (sp->bytes + sp->batch_bytes + size > sp->max_bytes)
        return WB_ERR_TOO_LARGE;
    if (begin(sp) != WB_OK)
        return WB_ERR_NOMEM;
    sqlite3_stmt *st = sp->st[ST_INSERT];
    sqlite3_reset(st);
    bind_text(st, 1, rec->provider);
    bind_text(st, 2, rec->topic);
    sqlite3_bind_blob64(st, 3, rec->key_len > 0 ? rec->key : "", rec->key_len, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 4, rec->value_len > 0 ? rec->value : "", rec->value_len, SQLITE_STATIC);
    bind_text(st, 5, rec->reason);
    bind_text(st, 6, rec->intended);
    sqlite3_bind_int64(st, 7, now_ms());
    sqlite3_bind_int64(st, 8,
                       record_crc(rec->topic, rec->key, rec->key_len, rec->value, rec->value_len,
                                  rec->reason, rec->intended));
    int r = sqlite3_step(st);
    sqlite3_clear_bindings(st);
    if (r != SQLITE_DONE)
        return r == SQLITE_FULL ? WB_ERR_TOO_LARGE : WB_ERR_NOMEM;
    *seq = sqlite3_last_insert_rowid(sp->db);
    *batch = sp->batch;
    if (*seq > sp->last_seq)
        sp->last_seq = *seq;
    if (sp->batch_records == 0)
        sp->batch_first = *seq;
    sp->batch_records++;
    sp->batch_bytes += size;
    return WB_OK;
}

static int spool_remove(wb_spool_t *sp, int64_t seq)
{
    if (begin(sp) != WB_OK)
        return WB_ERR_NOMEM;
    return delete_row(sp, seq);
}

/* Deletes seq in the open batch, remembered until its commit. */
static int delete_row(wb_spool_t *sp, int64_t seq)
{
    sqlite3_stmt *st = sp->st[ST_SIZE];
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, seq);
    if (sqlite3_step(st) != SQLITE_ROW)
        return WB_ERR_NOTFOUND;
    int64_t size = sqlite3_column_int64(st, 0);
    st = sp->st[ST_DELETE];
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, seq);
    if (sqlite3_step(st) != SQLITE_DONE)
        return WB_ERR_NOMEM;
    sp->batch_removed_records++;
    sp->batch_removed_bytes += size;
    push_seq(&sp->removing, &sp->nremoving, &sp->capremoving, seq); /* else: replayed again */
    return WB_OK;
}

static int spool_commit(wb_spool_t *sp, uint64_t batch, char *err, size_t errsz)
{
    if (!sp->in_batch || (batch != 0 && batch != sp->batch)) {
        /* already committed by another caller, or failed then */
        for (unsigned i = 0; i < sp->nfailed; i++)
            if (batch != 0 && sp->failed[i] == batch)
                return wb_errf(err, errsz, WB_ERR_TOO_LARGE, "spool commit failed");
        return WB_OK;
    }
    sp->in_batch = 0;
    if (sqlite3_exec(sp->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        wb_errf(err, errsz, WB_ERR_TOO_LARGE, "spool commit: %s", sqlite3_errmsg(sp->db));
        sp->failed[sp->nfailed++ % WB_ARRAY_SIZE(sp->failed)] = sp->batch;
        if (sp->nfailed > WB_ARRAY_SIZE(sp->failed))
            sp->nfailed = WB_ARRAY_SIZE(sp->failed);
        sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
        /* the removals it undid are done again, at most once a second */
        for (size_t i = 0; i < sp->nremoving; i++)
            push_seq(&sp->unremoved, &sp->nunremoved, &sp->capunremoved, sp->removing[i]);
        sp->nremoving = 0;
        sp->unremoved_retry_ms = now_ms() + 1000;
        /* the batch's seqs may be handed out again: the replayer must see them */
        if (sp->batch_records > 0 && sp->replay_after >= sp->batch_first)
            sp->replay_after = sp->batch_first - 1;
        return WB_ERR_TOO_LARGE;
    }
    sp->commits++;
    sp->records = sp->records + sp->batch_records - (uint64_t)sp->batch_removed_records;
    sp->bytes = sp->bytes + sp->batch_bytes - (uint64_t)sp->batch_removed_bytes;
    return WB_OK;
}

/* A record whose checksum does not match: kept aside, never produced. */
static void move_aside(wb_spool_t *sp, int64_t seq)
{
    int was = sp->in_batch;
    if (!was && sqlite3_exec(sp->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return;
    sqlite3_stmt *size = sp->st[ST_SIZE];
    sqlite3_reset(size);
    sqlite3_bind_int64(size, 1, seq);
    int64_t bytes = sqlite3_step(size) == SQLITE_ROW ? sqlite3_column_int64(size, 0) : 0;
    sqlite3_stmt *mv = sp->st[ST_MOVE], *drop = sp->st[ST_DROP];
    sqlite3_reset(mv);
    sqlite3_reset(drop);
    sqlite3_bind_int64(mv, 1, seq);
    sqlite3_bind_int64(drop, 1, seq);
    int ok = sqlite3_step(mv) == SQLITE_DONE && sqlite3_step(drop) == SQLITE_DONE;
    if (!was) {
        ok = ok && sqlite3_exec(sp->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
        if (!ok)
            sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (ok) {
        sp->corrupt++;
        if (was) {
            sp->batch_removed_records++;
            sp->batch_removed_bytes += bytes;
        } else {
            sp->records--;
            sp->bytes -= (uint64_t)bytes;
        }
    }
}

/* The record of a ST_SCAN row (valid until the next step); 0 when it is
 * damaged (its checksum does not match what would be produced). */
static int row_of(sqlite3_stmt *st, wb_spool_rec_t *rec)
{
    *rec = (wb_spool_rec_t){
        .seq = sqlite3_column_int64(st, 0),
        .provider = (const char *)sqlite3_column_text(st, 1),
        .topic = (const char *)sqlite3_column_text(st, 2),
        .key = sqlite3_column_blob(st, 3),
        .key_len = (size_t)sqlite3_column_bytes(st, 3),
        .value = sqlite3_column_blob(st, 4),
        .value_len = (size_t)sqlite3_column_bytes(st, 4),
        .reason = (const char *)sqlite3_column_text(st, 5),
        .intended = (const char *)sqlite3_column_text(st, 6),
        .spooled_ms = sqlite3_column_int64(st, 7),
    };
    if (rec->key == NULL)
        rec->key = "";
    if (rec->value == NULL)
        rec->value = "";
    return rec->provider != NULL && rec->topic != NULL &&
           (uint32_t)sqlite3_column_int64(st, 8) == record_crc(rec->topic, rec->key, rec->key_len,
                                                               rec->value, rec->value_len,
                                                               rec->reason, rec->intended);
}

static int spool_scan(wb_spool_t *sp, int64_t after_seq, unsigned max,
                      void (*fn)(void *ctx, const wb_spool_rec_t *rec), void *ctx)
{
    sqlite3_stmt *st = sp->st[ST_SCAN];
    int64_t bad[64];
    unsigned nbad = 0;
    int seen = 0, r;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, max);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        wb_spool_rec_t rec;
        if (!row_of(st, &rec)) {
            if (nbad < WB_ARRAY_SIZE(bad))
                bad[nbad++] = rec.seq;
            continue;
        }
        fn(ctx, &rec);
        seen++;
    }
    sqlite3_reset(st);
    for (unsigned i = 0; i < nbad; i++)
        move_aside(sp, bad[i]);
    return r == SQLITE_DONE ? seen : WB_ERR_NOMEM;
}

static void spool_stats(wb_spool_t *sp, wb_spool_stats_t *out)
{
    out->records = sp->records;
    out->bytes = sp->bytes;
    out->corrupt = sp->corrupt;
    out->commits = sp->commits;
    out->oldest_ms = 0;
    sqlite3_stmt *st = sp->st[ST_OLDEST];
    sqlite3_reset(st);
    if (sqlite3_step(st) == SQLITE_ROW)
        out->oldest_ms = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
}

/* ---- the locked entry points ---- */

int wb_spool_add(wb_spool_t *sp, const wb_spool_rec_t *rec, int64_t *seq, uint64_t *batch)
{
    pthread_mutex_lock(&sp->lock);
    int r = spool_add(sp, rec, seq, batch);
    pthread_mutex_unlock(&sp->lock);
    return r;
}

/* Removes seq, or, when the disk refuses (ENOSPC), remembers to remove it
 * later: either way it is done, never replayed. WB_ERR_NOTFOUND: gone already. */
static int remove_or_remember(wb_spool_t *sp, int64_t seq)
{
    int r = spool_remove(sp, seq);
    if (r == WB_OK || r == WB_ERR_NOTFOUND)
        return r;
    if (!push_seq(&sp->unremoved, &sp->nunremoved, &sp->capunremoved, seq))
        return r;
    sp->unremoved_retry_ms = now_ms() + 1000;
    return WB_OK;
}

static int is_unremoved(const wb_spool_t *sp, int64_t seq)
{
    for (size_t i = 0; i < sp->nunremoved; i++)
        if (sp->unremoved[i] == seq)
            return 1;
    return 0;
}

int wb_spool_remove(wb_spool_t *sp, int64_t seq)
{
    pthread_mutex_lock(&sp->lock);
    int r = remove_or_remember(sp, seq);
    pthread_mutex_unlock(&sp->lock);
    return r;
}

int wb_spool_commit(wb_spool_t *sp, uint64_t batch, char *err, size_t errsz)
{
    pthread_mutex_lock(&sp->lock);
    if (batch == 0 && !sp->in_batch && sp->nunremoved > 0 && now_ms() >= sp->unremoved_retry_ms)
        begin(sp); /* removals a failed commit undid */
    int r = spool_commit(sp, batch, err, errsz);
    pthread_mutex_unlock(&sp->lock);
    return r;
}

int wb_spool_needs_commit(wb_spool_t *sp)
{
    pthread_mutex_lock(&sp->lock);
    int r = sp->nunremoved > 0 && now_ms() >= sp->unremoved_retry_ms;
    pthread_mutex_unlock(&sp->lock);
    return r;
}

int wb_spool_scan(wb_spool_t *sp, int64_t after_seq, unsigned max,
                  void (*fn)(void *ctx, const wb_spool_rec_t *rec), void *ctx)
{
    pthread_mutex_lock(&sp->lock);
    int r = spool_scan(sp, after_seq, max, fn, ctx);
    pthread_mutex_unlock(&sp->lock);
    return r;
}

void wb_spool_stats(wb_spool_t *sp, wb_spool_stats_t *out)
{
    pthread_mutex_lock(&sp->lock);
    spool_stats(sp, out);
    pthread_mutex_unlock(&sp->lock);
}

uint64_t wb_spool_count(wb_spool_t *sp, const char *provider)
{
    uint64_t n = 0;
    pthread_mutex_lock(&sp->lock);
    sqlite3_stmt *st = sp->st[ST_BY_PROVIDER];
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, provider, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    pthread_mutex_unlock(&sp->lock);
    return n;
}

void wb_spool_hold(wb_spool_t *sp, int64_t seq)
{
    pthread_mutex_lock(&sp->lock);
    if (sp->nheld == sp->capheld) {
        size_t cap = sp->capheld != 0 ? sp->capheld * 2 : 64;
        int64_t *p = realloc(sp->held, cap * sizeof(*p));
        if (p == NULL) { /* not held: at worst replayed once too many */
            pthread_mutex_unlock(&sp->lock);
            return;
        }
        sp->held = p;
        sp->capheld = cap;
    }
    size_t i = sp->nheld; /* seqs come in increasing order, nearly always */
    while (i > 0 && sp->held[i - 1] > seq)
        i--;
    memmove(&sp->held[i + 1], &sp->held[i], (sp->nheld - i) * sizeof(*sp->held));
    sp->held[i] = seq;
    sp->nheld++;
    pthread_mutex_unlock(&sp->lock);
}

void wb_spool_release(wb_spool_t *sp, int64_t seq)
{
    pthread_mutex_lock(&sp->lock);
    for (size_t i = 0; i < sp->nheld; i++)
        if (sp->held[i] == seq) {
            memmove(&sp->held[i], &sp->held[i + 1], (sp->nheld - i - 1) * sizeof(*sp->held));
            sp->nheld--;
            break;
        }
    pthread_mutex_unlock(&sp->lock);
}

int wb_spool_replay(wb_spool_t *sp, unsigned max_inflight, wb_spool_produce_fn produce,
                    wb_spool_moved_fn moved, void *ctx)
{
    int handed = 0;
    pthread_mutex_lock(&sp->lock);
    if (sp->rewind != 0 && sp->replay_inflight == 0) {
        /* a replay failed: from it again, once nothing after it is in flight */
        sp->replay_after = sp->rewind - 1;
        sp->rewind = 0;
    }
    if (sp->rewind != 0 || now_ms() < sp->retry_at_ms || sp->replay_inflight >= max_inflight) {
        pthread_mutex_unlock(&sp->lock);
        return 0;
    }
    sqlite3_stmt *st = sp->st[ST_SCAN];
    int64_t bad[16];
    char bad_provider[16][40];
    unsigned nbad = 0;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, sp->replay_after);
    sqlite3_bind_int64(st, 2, max_inflight - sp->replay_inflight);
    while (sqlite3_step(st) == SQLITE_ROW) {
        wb_spool_rec_t rec;
        int intact = row_of(st, &rec);
        if (sp->nheld > 0 && sp->held[0] <= rec.seq)
            break; /* its original (or an earlier one's) may still succeed */
        if (is_unremoved(sp, rec.seq)) { /* in Kafka; its removal waits for the disk */
            sp->replay_after = rec.seq;
            continue;
        }
        if (!intact) {
            if (nbad == WB_ARRAY_SIZE(bad))
                break; /* the rest at the next call */
            snprintf(bad_provider[nbad], sizeof(bad_provider[nbad]), "%s",
                     rec.provider != NULL ? rec.provider : "");
            bad[nbad++] = rec.seq;
            sp->replay_after = rec.seq;
            continue;
        }
        wb_spool_replay_t *rp = calloc(1, sizeof(*rp));
        if (rp == NULL)
            break;
        rp->kind = WB_SPOOL_REPLAY_KIND;
        rp->seq = rec.seq;
        snprintf(rp->provider, sizeof(rp->provider), "%s", rec.provider);
        if (produce(ctx, &rec, rp) != 0) {
            free(rp);
            break;
        }
        sp->replay_after = rec.seq;
        sp->replay_inflight++;
        handed++;
    }
    sqlite3_reset(st);
    for (unsigned i = 0; i < nbad; i++)
        move_aside(sp, bad[i]);
    pthread_mutex_unlock(&sp->lock);
    for (unsigned i = 0; i < nbad && moved != NULL; i++)
        moved(ctx, bad[i], bad_provider[i][0] != '\0' ? bad_provider[i] : NULL);
    return handed;
}

int wb_spool_caught_up(wb_spool_t *sp)
{
    pthread_mutex_lock(&sp->lock);
    int r = sp->nheld == 0 && sp->rewind == 0 && sp->replay_after >= sp->last_seq;
    pthread_mutex_unlock(&sp->lock);
    return r;
}

int wb_spool_replayed(wb_spool_t *sp, wb_spool_replay_t *rp, int ok, char *provider)
{
    pthread_mutex_lock(&sp->lock);
    sp->replay_inflight--;
    snprintf(provider, 40, "%s", rp->provider);
    if (ok) {
        /* in Kafka: done, even if the disk cannot take its removal now */
        ok = remove_or_remember(sp, rp->seq) == WB_OK; /* not found: done and counted */
        sp->replayed += ok;
    } else {
        if (sp->rewind == 0 || rp->seq < sp->rewind)
            sp->rewind = rp->seq;
        sp->retry_at_ms = now_ms() + 1000;
    }
    pthread_mutex_unlock(&sp->lock);
    free(rp);
    return ok;
}

uint64_t wb_spool_replayed_total(wb_spool_t *sp)
{
    pthread_mutex_lock(&sp->lock);
    uint64_t n = sp->replayed;
    pthread_mutex_unlock(&sp->lock);
    return n;
}
