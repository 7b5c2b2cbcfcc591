/* spool_storage.c - owns the storage measurement behind the spool (issue 14):
 * how fast each candidate store makes a batch of webhook records durable when
 * used the way the spool would use it, and what that costs a request waiting
 * for its record to be on disk. A benchmark that prints figures; nothing is
 * asserted about them (tests/bench/SPOOL-STORAGE.md records a run and the
 * choice made from it).
 *
 * Candidates:
 *   sqlite  WAL mode, synchronous=FULL, one transaction per batch (BEGIN
 *           IMMEDIATE; N INSERTs; COMMIT); acknowledged rows are deleted by
 *           seq in later transactions, one per batch of acknowledgements.
 *   lmdb    default (durable) environment flags, one write transaction per
 *           batch, keys = big-endian seq put with MDB_APPEND, values = the
 *           CRC-framed record; deletes by key, one transaction per batch.
 *   file    append-only segment files of length+CRC32C framed records, one
 *           write() then fdatasync() per batch, the directory fsync'd when a
 *           segment is created; deletion = unlinking a segment once all its
 *           records are acknowledged (then the directory fsync'd).
 *
 * Phases:
 *   baseline  4 KiB pwrite at offset 0 + fdatasync: the device's flush rate.
 *   matrix    per record size, candidate and batch size (records per sync):
 *             appends for --duration s (or --count records / --max-mb), then
 *             the bytes on disk, a read-back check, and deletes of the
 *             appended records in batches of the same size for --duration s.
 *   group     K producer threads, each one request in flight (submit, wait
 *             until its record is durable, submit again), one committer
 *             thread committing all that is pending each round.
 *
 * Usage: bench-spool-storage [--dir DIR] [--duration S] [--count N]
 *          [--max-mb MB] [--sizes 1024,256,16384] [--batches 1,8,64,256]
 *          [--inflight 64,256] [--group-size BYTES] [--candidates sqlite,lmdb,file]
 *          [--skip-matrix] [--skip-group]
 * DIR: the stores are made in a fresh temporary directory inside it (default
 * /tmp), removed at the end. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <lmdb.h>
#include <sqlite3.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <mntent.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 8                  /* entries of --sizes, --batches, --inflight */
#define MAX_VALUE (1u << 20)        /* largest record value (--sizes) */
#define MAX_BATCH 4096              /* largest --batches entry */
#define MAX_INFLIGHT 1024           /* largest --inflight entry */
#define SEG_MAX (16u << 20)         /* file: a new segment past this size */
#define KEY_MAX 32
#define PROVIDER "piriod"
#define TOPIC "webhooks.piriod"
#define FRAME_HDR 8                 /* u32 payload length, u32 CRC32C */
#define PAYLOAD_FIXED (8 + 2 + 2 + 2 + 4 + 4)
#define GROUP_SAMPLES (4u << 20)    /* wait samples kept per group run, all threads */
#define MAX_RESULTS (MAX_LIST * MAX_LIST * 3)

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench-spool-storage: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        die("clock_gettime: %s", strerror(errno));
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        die("out of memory (%zu x %zu)", n, size);
    return p;
}

static void path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        die("path too long: %s/%s", dir, name);
}

/* ---- CRC32C (Castagnoli), slicing-by-8, byte order independent ---- */

static uint32_t crc_tab[8][256];

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            crc_tab[k][i] = (crc_tab[k - 1][i] >> 8) ^ crc_tab[0][crc_tab[k - 1][i] & 0xff];
}

static uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
              crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^
              crc_tab[2][(hi >> 8) & 0xff] ^ crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- records and their frame ---- */

typedef struct {
    uint64_t seq;
    char key[KEY_MAX];
    size_t klen;
    const unsigned char *headers;
    size_t hlen;
    const unsigned char *value;
    size_t vlen;
} rec_t;

static unsigned char g_headers[128];
static size_t g_hlen;

static void put16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static size_t frame_max(size_t vlen)
{
    return FRAME_HDR + PAYLOAD_FIXED + sizeof(PROVIDER) + sizeof(TOPIC) + KEY_MAX +
           sizeof(g_headers) + vlen;
}

/* frame: u32 payload length | u32 CRC32C of (length field, payload) | payload
 * payload: u64 seq | u16 provider | u16 topic | u16 key | u32 headers | u32 value
 *          lengths, then those bytes in that order */
static size_t frame_encode(const rec_t *r, unsigned char *out, size_t cap)
{
    size_t pl = strlen(PROVIDER), tl = strlen(TOPIC);
    size_t plen = PAYLOAD_FIXED + pl + tl + r->klen + r->hlen + r->vlen;
    if (FRAME_HDR + plen > cap || plen > UINT32_MAX)
        die("frame of %zu bytes does not fit %zu", FRAME_HDR + plen, cap);
    unsigned char *p = out + FRAME_HDR;
    put64(p, r->seq);
    put16(p + 8, (uint16_t)pl);
    put16(p + 10, (uint16_t)tl);
    put16(p + 12, (uint16_t)r->klen);
    put32(p + 14, (uint32_t)r->hlen);
    put32(p + 18, (uint32_t)r->vlen);
    p += PAYLOAD_FIXED;
    memcpy(p, PROVIDER, pl), p += pl;
    memcpy(p, TOPIC, tl), p += tl;
    memcpy(p, r->key, r->klen), p += r->klen;
    memcpy(p, r->headers, r->hlen), p += r->hlen;
    memcpy(p, r->value, r->vlen);
    put32(out, (uint32_t)plen);
    uint32_t crc = crc32c(crc32c(0, out, 4), out + FRAME_HDR, plen);
    put32(out + 4, crc);
    return FRAME_HDR + plen;
}

/* 0 and *seq, *flen set: a whole, intact frame; -1: torn or corrupt */
static int frame_decode(const unsigned char *buf, size_t avail, size_t max_plen, uint64_t *seq,
                        size_t *flen)
{
    if (avail < FRAME_HDR)
        return -1;
    size_t plen = get32(buf);
    if (plen < PAYLOAD_FIXED || plen > max_plen || avail - FRAME_HDR < plen)
        return -1;
    if (crc32c(crc32c(0, buf, 4), buf + FRAME_HDR, plen) != get32(buf + 4))
        return -1;
    const unsigned char *p = buf + FRAME_HDR;
    size_t inner = (size_t)get16(p + 8) + get16(p + 10) + get16(p + 12) + get32(p + 14) +
                   get32(p + 18);
    if (inner != plen - PAYLOAD_FIXED)
        return -1;
    *seq = get64(p);
    *flen = FRAME_HDR + plen;
    return 0;
}

/* ---- files ---- */

static void write_all(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("write: %s", strerror(errno)); /* ENOSPC lands here */
        }
        buf += n;
        len -= (size_t)n;
    }
}

static uint64_t dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        die("opendir %s: %s", dir, strerror(errno));
    uint64_t sum = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            die("stat %s/%s: %s", dir, e->d_name, strerror(errno));
        if (S_ISREG(st.st_mode))
            sum += (uint64_t)st.st_blocks * 512u;
        errno = 0;
    }
    if (errno != 0)
        die("readdir %s: %s", dir, strerror(errno));
    closedir(d);
    return sum;
}

/* the stores' directories hold plain files only */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        die("opendir %s: %s", dir, strerror(errno));
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0)
            die("unlink %s/%s: %s", dir, e->d_name, strerror(errno));
        errno = 0;
    }
    if (errno != 0)
        die("readdir %s: %s", dir, strerror(errno));
    closedir(d);
    if (rmdir(dir) != 0)
        die("rmdir %s: %s", dir, strerror(errno));
}

/* ---- the candidates ---- */

typedef struct {
    const char *name;
    void *(*open)(const char *dir, size_t max_batch, size_t max_frame);
    void (*append)(void *st, const rec_t *recs, size_t n);
    void (*del)(void *st, const uint64_t *seqs, size_t n); /* ascending */
    uint64_t (*verify)(void *st);                          /* records held */
    void (*close)(void *st);
} cand_t;

/* sqlite */
typedef struct {
    sqlite3 *db;
    sqlite3_stmt *begin, *commit, *ins, *del, *count;
} sq_t;

static void sq_ok(sq_t *s, int rc, const char *what)
{
    if (rc != SQLITE_OK)
        die("sqlite %s: %s (%d)", what, sqlite3_errmsg(s->db), rc);
}

static void sq_run(sq_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        die("sqlite %s: %s (%d)", what, sqlite3_errmsg(s->db), rc); /* SQLITE_FULL: disk full */
    sq_ok(s, sqlite3_reset(st), what);
}

static void sq_exec(sq_t *s, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        die("sqlite %s: %s", sql, err ? err : sqlite3_errstr(rc));
}

static const char *sq_pragma(sq_t *s, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *st;
    sq_ok(s, sqlite3_prepare_v2(s->db, sql, -1, &st, NULL), sql);
    if (sqlite3_step(st) != SQLITE_ROW)
        die("sqlite %s: no answer: %s", sql, sqlite3_errmsg(s->db));
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
    sq_ok(s, sqlite3_finalize(st), sql);
    return out;
}

static void *sq_open(const char *dir, size_t max_batch, size_t max_frame)
{
    sq_t *s = xcalloc(1, sizeof(*s));
    char path[PATH_MAX], v[32];
    path_join(path, sizeof(path), dir, "spool.db");
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK)
        die("sqlite open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    if (strcmp(sq_pragma(s, "PRAGMA journal_mode=WAL", v, sizeof(v)), "wal") != 0)
        die("sqlite: journal_mode is %s, not wal", v);
    sq_exec(s, "PRAGMA synchronous=FULL");
    if (strcmp(sq_pragma(s, "PRAGMA synchronous", v, sizeof(v)), "2") != 0)
        die("sqlite: synchronous is %s, not 2 (FULL)", v);
    sq_exec(s, "CREATE TABLE spool(seq INTEGER PRIMARY KEY, provider TEXT NOT NULL, "
               "topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL, headers BLOB, "
               "crc INTEGER NOT NULL)");
    sq_ok(s, sqlite3_prepare_v2(s->db, "BEGIN IMMEDIATE", -1, &s->begin, NULL), "prepare");
    sq_ok(s, sqlite3_prepare_v2(s->db, "COMMIT", -1, &s->commit, NULL), "prepare");
    sq_ok(s, sqlite3_prepare_v2(s->db, "INSERT INTO spool(seq, provider, topic, key, value, "
                                       "headers, crc) VALUES(?, ?, ?, ?, ?, ?, ?)",
                                -1, &s->ins, NULL), "prepare");
    sq_ok(s, sqlite3_prepare_v2(s->db, "DELETE FROM spool WHERE seq = ?", -1, &s->del, NULL),
          "prepare");
    sq_ok(s, sqlite3_prepare_v2(s->db, "SELECT count(*) FROM spool", -1, &s->count, NULL),
          "prepare");
    return s;
}

static void sq_append(void *st, const rec_t *recs, size_t n)
{
    sq_t *s = st;
    sq_run(s, s->begin, "BEGIN");
    for (size_t i = 0; i < n; i++) {
        const rec_t *r = &recs[i];
        /* SQLite checksums WAL frames, not the database pages: a CRC of our own */
        uint32_t crc = crc32c(crc32c(crc32c(0, r->key, r->klen), r->headers, r->hlen), r->value,
                              r->vlen);
        sq_ok(s, sqlite3_bind_int64(s->ins, 1, (sqlite3_int64)r->seq), "bind");
        sq_ok(s, sqlite3_bind_text(s->ins, 2, PROVIDER, -1, SQLITE_STATIC), "bind");
        sq_ok(s, sqlite3_bind_text(s->ins, 3, TOPIC, -1, SQLITE_STATIC), "bind");
        sq_ok(s, sqlite3_bind_blob(s->ins, 4, r->key, (int)r->klen, SQLITE_STATIC), "bind");
        sq_ok(s, sqlite3_bind_blob(s->ins, 5, r->value, (int)r->vlen, SQLITE_STATIC), "bind");
        sq_ok(s, sqlite3_bind_blob(s->ins, 6, r->headers, (int)r->hlen, SQLITE_STATIC), "bind");
        sq_ok(s, sqlite3_bind_int64(s->ins, 7, crc), "bind");
        sq_run(s, s->ins, "INSERT");
    }
    sq_run(s, s->commit, "COMMIT");
}

static void sq_del(void *st, const uint64_t *seqs, size_t n)
{
    sq_t *s = st;
    sq_run(s, s->begin, "BEGIN");
    for (size_t i = 0; i < n; i++) {
        sq_ok(s, sqlite3_bind_int64(s->del, 1, (sqlite3_int64)seqs[i]), "bind");
        sq_run(s, s->del, "DELETE");
        if (sqlite3_changes(s->db) != 1)
            die("sqlite: seq %" PRIu64 " not found", seqs[i]);
    }
    sq_run(s, s->commit, "COMMIT");
}

static uint64_t sq_verify(void *st)
{
    sq_t *s = st;
    if (sqlite3_step(s->count) != SQLITE_ROW)
        die("sqlite count: %s", sqlite3_errmsg(s->db));
    uint64_t n = (uint64_t)sqlite3_column_int64(s->count, 0);
    sq_ok(s, sqlite3_reset(s->count), "count");
    return n;
}

static void sq_close(void *st)
{
    sq_t *s = st;
    sqlite3_stmt *all[] = {s->begin, s->commit, s->ins, s->del, s->count};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        sq_ok(s, sqlite3_finalize(all[i]), "finalize");
    sq_ok(s, sqlite3_close(s->db), "close");
    free(s);
}

/* lmdb */
typedef struct {
    MDB_env *env;
    MDB_dbi dbi;
    unsigned char *buf;
    size_t bufcap;
} lm_t;

static size_t g_mapsize;

static void lm_ok(int rc, const char *what)
{
    if (rc != 0)
        die("lmdb %s: %s", what, mdb_strerror(rc)); /* MDB_MAP_FULL, ENOSPC */
}

static void *lm_open(const char *dir, size_t max_batch, size_t max_frame)
{
    lm_t *s = xcalloc(1, sizeof(*s));
    MDB_txn *txn;
    lm_ok(mdb_env_create(&s->env), "env_create");
    lm_ok(mdb_env_set_mapsize(s->env, g_mapsize), "set_mapsize");
    /* flags 0: no MDB_NOSYNC / MDB_NOMETASYNC / MDB_WRITEMAP: durable commits */
    lm_ok(mdb_env_open(s->env, dir, 0, 0644), "env_open");
    lm_ok(mdb_txn_begin(s->env, NULL, 0, &txn), "txn_begin");
    int rc = mdb_dbi_open(txn, NULL, 0, &s->dbi);
    if (rc != 0) {
        mdb_txn_abort(txn);
        lm_ok(rc, "dbi_open");
    }
    lm_ok(mdb_txn_commit(txn), "txn_commit");
    s->bufcap = max_frame;
    s->buf = xcalloc(1, s->bufcap);
    return s;
}

static void be64(unsigned char *k, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        k[i] = (unsigned char)v;
}

static void lm_append(void *st, const rec_t *recs, size_t n)
{
    lm_t *s = st;
    MDB_txn *txn;
    lm_ok(mdb_txn_begin(s->env, NULL, 0, &txn), "txn_begin");
    for (size_t i = 0; i < n; i++) {
        unsigned char k[8];
        be64(k, recs[i].seq);
        size_t len = frame_encode(&recs[i], s->buf, s->bufcap);
        MDB_val key = {sizeof(k), k}, val = {len, s->buf};
        int rc = mdb_put(txn, s->dbi, &key, &val, MDB_APPEND);
        if (rc != 0) {
            mdb_txn_abort(txn);
            lm_ok(rc, "put");
        }
    }
    lm_ok(mdb_txn_commit(txn), "txn_commit");
}

static void lm_del(void *st, const uint64_t *seqs, size_t n)
{
    lm_t *s = st;
    MDB_txn *txn;
    lm_ok(mdb_txn_begin(s->env, NULL, 0, &txn), "txn_begin");
    for (size_t i = 0; i < n; i++) {
        unsigned char k[8];
        be64(k, seqs[i]);
        MDB_val key = {sizeof(k), k};
        int rc = mdb_del(txn, s->dbi, &key, NULL);
        if (rc != 0) {
            mdb_txn_abort(txn);
            lm_ok(rc, "del");
        }
    }
    lm_ok(mdb_txn_commit(txn), "txn_commit");
}

static uint64_t lm_verify(void *st)
{
    lm_t *s = st;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t n = 0;
    lm_ok(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn), "txn_begin");
    lm_ok(mdb_cursor_open(txn, s->dbi, &cur), "cursor_open");
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        uint64_t seq;
        size_t flen;
        if (k.mv_size != 8 || frame_decode(v.mv_data, v.mv_size, s->bufcap, &seq, &flen) != 0 ||
            flen != v.mv_size)
            die("lmdb: corrupt record after %" PRIu64 " records", n);
        unsigned char kb[8];
        be64(kb, seq);
        if (memcmp(kb, k.mv_data, 8) != 0)
            die("lmdb: key and record seq differ at %" PRIu64, seq);
        n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc != MDB_NOTFOUND)
        lm_ok(rc, "cursor_get");
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return n;
}

static void lm_close(void *st)
{
    lm_t *s = st;
    mdb_dbi_close(s->env, s->dbi);
    mdb_env_close(s->env);
    free(s->buf);
    free(s);
}

/* plain segment files */
typedef struct {
    uint64_t first, last; /* last < first: empty */
} seg_t;

typedef struct {
    char dir[PATH_MAX];
    int dirfd, fd;     /* fd: the segment being appended to, or -1 */
    uint64_t seg_bytes;
    seg_t *segs;
    size_t head, nseg, capseg; /* live segments: segs[head .. nseg) */
    uint64_t acked;            /* every seq <= acked is acknowledged */
    unsigned char *buf;
    size_t bufcap, max_frame;
} fl_t;

static void seg_path(const fl_t *s, uint64_t first, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%020" PRIu64 ".seg", s->dir, first);
    if (n < 0 || (size_t)n >= cap)
        die("path too long: %s", s->dir);
}

static void *fl_open(const char *dir, size_t max_batch, size_t max_frame)
{
    fl_t *s = xcalloc(1, sizeof(*s));
    int n = snprintf(s->dir, sizeof(s->dir), "%s", dir);
    if (n < 0 || (size_t)n >= sizeof(s->dir))
        die("path too long: %s", dir);
    s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0)
        die("open %s: %s", dir, strerror(errno));
    s->fd = -1;
    s->max_frame = max_frame;
    s->bufcap = max_batch * max_frame;
    s->buf = xcalloc(1, s->bufcap);
    s->capseg = 16;
    s->segs = xcalloc(s->capseg, sizeof(seg_t));
    return s;
}

static void fl_append(void *st, const rec_t *recs, size_t n)
{
    fl_t *s = st;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += frame_encode(&recs[i], s->buf + len, s->bufcap - len);
    if (s->fd >= 0 && s->seg_bytes > 0 && s->seg_bytes + len > SEG_MAX) {
        if (close(s->fd) != 0) /* its data is already fdatasync'd */
            die("close segment: %s", strerror(errno));
        s->fd = -1;
    }
    if (s->fd < 0) {
        char path[PATH_MAX];
        seg_path(s, recs[0].seq, path, sizeof(path));
        s->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
        if (s->fd < 0)
            die("create %s: %s", path, strerror(errno));
        if (fsync(s->dirfd) != 0) /* the new name itself must survive a crash */
            die("fsync %s: %s", s->dir, strerror(errno));
        if (s->nseg == s->capseg) {
            if (s->head > 0) {
                memmove(s->segs, s->segs + s->head, (s->nseg - s->head) * sizeof(seg_t));
                s->nseg -= s->head;
                s->head = 0;
            } else {
                seg_t *g = realloc(s->segs, 2 * s->capseg * sizeof(seg_t));
                if (g == NULL)
                    die("out of memory (segments)");
                s->segs = g;
                s->capseg *= 2;
            }
        }
        s->segs[s->nseg++] = (seg_t){recs[0].seq, recs[0].seq - 1};
        s->seg_bytes = 0;
    }
    write_all(s->fd, s->buf, len);
    if (fdatasync(s->fd) != 0)
        die("fdatasync: %s", strerror(errno));
    s->segs[s->nseg - 1].last = recs[n - 1].seq;
    s->seg_bytes += len;
}

static void fl_del(void *st, const uint64_t *seqs, size_t n)
{
    fl_t *s = st;
    int removed = 0;
    /* the spool would keep a per-segment count of acknowledged records; the
     * benchmark acknowledges in order, so a high-water mark is the same */
    for (size_t i = 0; i < n; i++) {
        if (seqs[i] != s->acked + 1)
            die("file: acknowledgements out of order (%" PRIu64 ")", seqs[i]);
        s->acked = seqs[i];
    }
    while (s->head < s->nseg && s->segs[s->head].last >= s->segs[s->head].first &&
           s->segs[s->head].last <= s->acked) {
        char path[PATH_MAX];
        if (s->head == s->nseg - 1 && s->fd >= 0) {
            if (close(s->fd) != 0)
                die("close segment: %s", strerror(errno));
            s->fd = -1;
        }
        seg_path(s, s->segs[s->head].first, path, sizeof(path));
        if (unlink(path) != 0)
            die("unlink %s: %s", path, strerror(errno));
        s->head++;
        removed = 1;
    }
    if (removed && fsync(s->dirfd) != 0)
        die("fsync %s: %s", s->dir, strerror(errno));
}

/* what recovery would do: read every segment, check each frame, stop at the
 * first torn or corrupt one (none is expected here) */
static uint64_t fl_verify(void *st)
{
    fl_t *s = st;
    uint64_t n = 0;
    for (size_t i = s->head; i < s->nseg; i++) {
        char path[PATH_MAX];
        struct stat sb;
        seg_path(s, s->segs[i].first, path, sizeof(path));
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            die("open %s: %s", path, strerror(errno));
        if (fstat(fd, &sb) != 0)
            die("stat %s: %s", path, strerror(errno));
        size_t size = (size_t)sb.st_size;
        if ((uint64_t)sb.st_size > (uint64_t)SEG_MAX + s->bufcap)
            die("%s: %zu bytes, more than a segment can hold", path, size);
        unsigned char *b = xcalloc(1, size);
        size_t got = 0;
        while (got < size) {
            ssize_t r = read(fd, b + got, size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                die("read %s: %s", path, r < 0 ? strerror(errno) : "short");
            got += (size_t)r;
        }
        close(fd);
        uint64_t expect = s->segs[i].first;
        for (size_t off = 0; off < size;) {
            uint64_t seq;
            size_t flen;
            if (frame_decode(b + off, size - off, s->max_frame, &seq, &flen) != 0)
                die("%s: torn or corrupt frame at offset %zu", path, off);
            if (seq != expect)
                die("%s: seq %" PRIu64 " where %" PRIu64 " was expected", path, seq, expect);
            expect++, n++, off += flen;
        }
        free(b);
    }
    return n;
}

static void fl_close(void *st)
{
    fl_t *s = st;
    if (s->fd >= 0 && close(s->fd) != 0)
        die("close segment: %s", strerror(errno));
    if (close(s->dirfd) != 0)
        die("close %s: %s", s->dir, strerror(errno));
    free(s->segs);
    free(s->buf);
    free(s);
}

static const cand_t g_cands[] = {
    {"sqlite", sq_open, sq_append, sq_del, sq_verify, sq_close},
    {"lmdb", lm_open, lm_append, lm_del, lm_verify, lm_close},
    {"file", fl_open, fl_append, fl_del, fl_verify, fl_close},
};
#define NCANDS (sizeof(g_cands) / sizeof(g_cands[0]))

/* ---- options ---- */

static struct {
    char base[PATH_MAX]; /* the temporary directory of this run */
    double duration;
    uint64_t count; /* 0: from max_mb */
    uint64_t max_mb;
    size_t sizes[MAX_LIST], nsizes;
    size_t batches[MAX_LIST], nbatches;
    size_t inflight[MAX_LIST], ninflight;
    size_t group_size;
    int cand_on[NCANDS];
    int skip_matrix, skip_group;
} opt;

static unsigned char *g_value; /* MAX_VALUE pseudo-random bytes */

static uint64_t parse_u64(const char *s, const char *what, uint64_t lo, uint64_t hi)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        die("%s: '%s' is not a number in [%" PRIu64 ", %" PRIu64 "]", what, s, lo, hi);
    return v;
}

static size_t parse_list(const char *s, size_t *out, const char *what, uint64_t lo, uint64_t hi)
{
    char buf[256];
    size_t n = 0;
    if (strlen(s) >= sizeof(buf))
        die("%s: list too long", what);
    strcpy(buf, s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == MAX_LIST)
            die("%s: at most %d entries", what, MAX_LIST);
        out[n++] = (size_t)parse_u64(t, what, lo, hi);
    }
    if (n == 0)
        die("%s: empty list", what);
    return n;
}

/* ---- measurement helpers ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* sorted input; nearest-rank percentile */
static double pct_d(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n + 0.999999);
    return v[i == 0 ? 0 : (i > n ? n - 1 : i - 1)];
}

static double pct_f(const float *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n + 0.999999);
    return v[i == 0 ? 0 : (i > n ? n - 1 : i - 1)];
}

static void make_rec(rec_t *r, uint64_t seq, size_t vlen)
{
    r->seq = seq;
    int n = snprintf(r->key, sizeof(r->key), "cus_%06" PRIu64, seq % 1000);
    r->klen = (size_t)n;
    r->headers = g_headers;
    r->hlen = g_hlen;
    /* a different slice of the random bytes for each record */
    r->value = g_value + (seq * 64) % (MAX_VALUE - vlen + 1);
    r->vlen = vlen;
}

static void store_dir(char *out, size_t cap, const char *fmt, const char *cand, size_t a, size_t b)
{
    char name[96];
    snprintf(name, sizeof(name), fmt, cand, a, b);
    path_join(out, cap, opt.base, name);
    if (mkdir(out, 0700) != 0)
        die("mkdir %s: %s", out, strerror(errno));
}

/* ---- phase 0: the device's flush rate ---- */

static void run_baseline(void)
{
    char path[PATH_MAX];
    unsigned char block[4096];
    static double lat[200000];
    size_t n = 0;
    path_join(path, sizeof(path), opt.base, "baseline");
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        die("create %s: %s", path, strerror(errno));
    memcpy(block, g_value, sizeof(block));
    if (pwrite(fd, block, sizeof(block), 0) != (ssize_t)sizeof(block) || fsync(fd) != 0)
        die("baseline: %s", strerror(errno));
    uint64_t t0 = now_ns(), end = t0 + 1000000000u;
    for (uint64_t t = t0; t < end && n < sizeof(lat) / sizeof(lat[0]);) {
        block[0] = (unsigned char)n;
        if (pwrite(fd, block, sizeof(block), 0) != (ssize_t)sizeof(block))
            die("pwrite: %s", strerror(errno));
        if (fdatasync(fd) != 0)
            die("fdatasync: %s", strerror(errno));
        uint64_t t1 = now_ns();
        lat[n++] = (double)(t1 - t) / 1e3;
        t = t1;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    close(fd);
    if (unlink(path) != 0)
        die("unlink %s: %s", path, strerror(errno));
    qsort(lat, n, sizeof(lat[0]), cmp_double);
    printf("baseline pwrite4k+fdatasync syncs/s=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f\n",
           (double)n / secs, pct_d(lat, n, 50), pct_d(lat, n, 99), lat[n - 1]);
    fflush(stdout);
}

/* ---- phase 1: the matrix ---- */

typedef struct {
    const char *cand;
    size_t size, batch;
    uint64_t n, ndel;
    double syncs_s, appends_s, p50, p99, max, bytes_rec, dels_s, del_p99;
    uint64_t disk, disk_after;
} res_t;

static res_t g_res[MAX_RESULTS];
static size_t g_nres;

static void run_one(const cand_t *c, size_t size, size_t batch)
{
    char dir[PATH_MAX];
    store_dir(dir, sizeof(dir), "%s-%zu-%zu", c->name, size, batch);
    uint64_t max_recs = opt.count ? opt.count : opt.max_mb * 1048576u / size;
    if (max_recs < batch)
        max_recs = batch;
    size_t cap = (size_t)(max_recs / batch + 1);
    double *lat = xcalloc(cap, sizeof(double));
    rec_t *recs = xcalloc(batch, sizeof(rec_t));
    uint64_t *seqs = xcalloc(batch, sizeof(uint64_t));
    void *st = c->open(dir, batch, frame_max(size));
    uint64_t bound = (uint64_t)(opt.duration * 1e9);

    size_t nb = 0;
    uint64_t seq = 1, n = 0;
    uint64_t t0 = now_ns(), t = t0;
    while (t - t0 < bound && n + batch <= max_recs && nb < cap) {
        for (size_t i = 0; i < batch; i++)
            make_rec(&recs[i], seq++, size);
        c->append(st, recs, batch);
        uint64_t t1 = now_ns();
        lat[nb++] = (double)(t1 - t) / 1e3;
        t = t1;
        n += batch;
    }
    double secs = (double)(t - t0) / 1e9;
    uint64_t disk = dir_bytes(dir);
    uint64_t held = c->verify(st);
    if (held != n)
        die("%s: %" PRIu64 " records appended, %" PRIu64 " read back", c->name, n, held);
    qsort(lat, nb, sizeof(double), cmp_double);
    res_t *r = &g_res[g_nres++];
    *r = (res_t){.cand = c->name, .size = size, .batch = batch, .n = n,
                 .syncs_s = (double)nb / secs, .appends_s = (double)n / secs,
                 .p50 = pct_d(lat, nb, 50), .p99 = pct_d(lat, nb, 99), .max = lat[nb - 1],
                 .disk = disk, .bytes_rec = (double)disk / (double)n};

    /* deletes of the oldest records, acknowledged in batches of the same size */
    size_t nd = 0;
    uint64_t del = 0;
    t0 = now_ns(), t = t0;
    while (t - t0 < bound && del < n && nd < cap) {
        size_t k = (size_t)(n - del < batch ? n - del : batch);
        for (size_t i = 0; i < k; i++)
            seqs[i] = del + 1 + i;
        c->del(st, seqs, k);
        uint64_t t1 = now_ns();
        lat[nd++] = (double)(t1 - t) / 1e3;
        t = t1;
        del += k;
    }
    double dsecs = (double)(t - t0) / 1e9;
    held = c->verify(st);
    if (held != n - del)
        die("%s: %" PRIu64 " records left, %" PRIu64 " expected", c->name, held, n - del);
    qsort(lat, nd, sizeof(double), cmp_double);
    r->ndel = del;
    r->dels_s = dsecs > 0 ? (double)del / dsecs : 0;
    r->del_p99 = pct_d(lat, nd, 99);
    r->disk_after = dir_bytes(dir);
    c->close(st);
    remove_dir(dir);
    free(lat);
    free(recs);
    free(seqs);

    printf("measure cand=%s size=%zu batch=%zu appends=%" PRIu64 " secs=%.2f syncs/s=%.0f "
           "appends/s=%.0f commit_p50_us=%.0f commit_p99_us=%.0f commit_max_us=%.0f "
           "disk_bytes=%" PRIu64 " bytes/rec=%.0f deletes=%" PRIu64 " deletes/s=%.0f "
           "delete_p99_us=%.0f disk_bytes_after_deletes=%" PRIu64 "\n",
           r->cand, size, batch, n, secs, r->syncs_s, r->appends_s, r->p50, r->p99, r->max, disk,
           r->bytes_rec, del, r->dels_s, r->del_p99, r->disk_after);
    fflush(stdout);
}

/* ---- phase 2: group commit ---- */

typedef struct grp grp_t;

typedef struct {
    grp_t *g;
    pthread_t tid;
    sem_t done;
    float *lat;
    size_t nlat, cap;
    uint64_t dropped;
} prod_t;

struct grp {
    const cand_t *c;
    void *st;
    size_t size, k;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    prod_t **pending; /* at most k: each producer has one request in flight */
    size_t npending, active;
    atomic_int stop;
    uint64_t max_recs, committed, rounds;
    double *commit_lat;
    size_t ncommit, capcommit;
};

static void *producer(void *arg)
{
    prod_t *p = arg;
    grp_t *g = p->g;
    while (!atomic_load(&g->stop)) {
        uint64_t t0 = now_ns();
        if (pthread_mutex_lock(&g->mu) != 0)
            die("mutex");
        g->pending[g->npending++] = p;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        while (sem_wait(&p->done) != 0)
            if (errno != EINTR)
                die("sem_wait: %s", strerror(errno));
        float us = (float)((double)(now_ns() - t0) / 1e3);
        if (p->nlat < p->cap)
            p->lat[p->nlat++] = us;
        else
            p->dropped++;
    }
    if (pthread_mutex_lock(&g->mu) != 0)
        die("mutex");
    g->active--;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static void *committer(void *arg)
{
    grp_t *g = arg;
    prod_t **take = xcalloc(g->k, sizeof(prod_t *));
    rec_t *recs = xcalloc(g->k, sizeof(rec_t));
    uint64_t seq = 1;
    for (;;) {
        if (pthread_mutex_lock(&g->mu) != 0)
            die("mutex");
        while (g->npending == 0 && g->active > 0)
            pthread_cond_wait(&g->cv, &g->mu);
        if (g->npending == 0) {
            pthread_mutex_unlock(&g->mu);
            break;
        }
        size_t n = g->npending;
        memcpy(take, g->pending, n * sizeof(prod_t *));
        g->npending = 0;
        pthread_mutex_unlock(&g->mu);

        uint64_t t0 = now_ns();
        for (size_t i = 0; i < n; i++)
            make_rec(&recs[i], seq++, g->size);
        g->c->append(g->st, recs, n);
        if (g->ncommit < g->capcommit)
            g->commit_lat[g->ncommit++] = (double)(now_ns() - t0) / 1e3;
        for (size_t i = 0; i < n; i++)
            if (sem_post(&take[i]->done) != 0)
                die("sem_post: %s", strerror(errno));
        g->committed += n;
        g->rounds++;
        if (g->committed >= g->max_recs)
            atomic_store(&g->stop, 1);
    }
    free(take);
    free(recs);
    return NULL;
}

typedef struct {
    const char *cand;
    size_t k, size;
    uint64_t n;
    double appends_s, syncs_s, mean_batch, w50, w99, wmax, c99;
    uint64_t dropped;
} gres_t;

static gres_t g_gres[MAX_LIST * NCANDS];
static size_t g_ngres;

static void run_group(const cand_t *c, size_t k, size_t size)
{
    char dir[PATH_MAX];
    store_dir(dir, sizeof(dir), "group-%s-%zu-%zu", c->name, k, size);
    grp_t g = {.c = c, .size = size, .k = k, .active = k};
    g.st = c->open(dir, k, frame_max(size));
    g.max_recs = opt.count ? opt.count : opt.max_mb * 1048576u / size;
    g.pending = xcalloc(k, sizeof(prod_t *));
    g.capcommit = 1u << 20;
    g.commit_lat = xcalloc(g.capcommit, sizeof(double));
    atomic_init(&g.stop, 0);
    if (pthread_mutex_init(&g.mu, NULL) != 0 || pthread_cond_init(&g.cv, NULL) != 0)
        die("pthread init");
    prod_t *ps = xcalloc(k, sizeof(prod_t));
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0 || pthread_attr_setstacksize(&attr, 256 * 1024) != 0)
        die("pthread_attr");
    pthread_t ctid;
    uint64_t t0 = now_ns();
    if (pthread_create(&ctid, NULL, committer, &g) != 0)
        die("pthread_create");
    for (size_t i = 0; i < k; i++) {
        ps[i].g = &g;
        ps[i].cap = GROUP_SAMPLES / k;
        ps[i].lat = xcalloc(ps[i].cap, sizeof(float));
        if (sem_init(&ps[i].done, 0, 0) != 0)
            die("sem_init: %s", strerror(errno));
        int rc = pthread_create(&ps[i].tid, &attr, producer, &ps[i]);
        if (rc != 0)
            die("pthread_create: %s", strerror(rc));
    }
    uint64_t bound = (uint64_t)(opt.duration * 1e9);
    while (!atomic_load(&g.stop) && now_ns() - t0 < bound) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&g.stop, 1);
    for (size_t i = 0; i < k; i++)
        if (pthread_join(ps[i].tid, NULL) != 0)
            die("pthread_join");
    if (pthread_join(ctid, NULL) != 0)
        die("pthread_join");
    double secs = (double)(now_ns() - t0) / 1e9;
    uint64_t held = c->verify(g.st);
    if (held != g.committed)
        die("%s: %" PRIu64 " committed, %" PRIu64 " read back", c->name, g.committed, held);

    size_t total = 0;
    uint64_t dropped = 0;
    for (size_t i = 0; i < k; i++)
        total += ps[i].nlat, dropped += ps[i].dropped;
    float *all = xcalloc(total, sizeof(float));
    size_t off = 0;
    for (size_t i = 0; i < k; i++) {
        memcpy(all + off, ps[i].lat, ps[i].nlat * sizeof(float));
        off += ps[i].nlat;
        free(ps[i].lat);
        sem_destroy(&ps[i].done);
    }
    qsort(all, total, sizeof(float), cmp_float);
    qsort(g.commit_lat, g.ncommit, sizeof(double), cmp_double);
    gres_t *r = &g_gres[g_ngres++];
    *r = (gres_t){.cand = c->name, .k = k, .size = size, .n = g.committed,
                  .appends_s = (double)g.committed / secs, .syncs_s = (double)g.rounds / secs,
                  .mean_batch = g.rounds ? (double)g.committed / (double)g.rounds : 0,
                  .w50 = pct_f(all, total, 50), .w99 = pct_f(all, total, 99),
                  .wmax = total ? all[total - 1] : 0, .c99 = pct_d(g.commit_lat, g.ncommit, 99),
                  .dropped = dropped};
    printf("group cand=%s inflight=%zu size=%zu appends=%" PRIu64 " secs=%.2f appends/s=%.0f "
           "syncs/s=%.0f mean_batch=%.1f wait_p50_us=%.0f wait_p99_us=%.0f wait_max_us=%.0f "
           "commit_p99_us=%.0f samples=%zu dropped_samples=%" PRIu64 "\n",
           r->cand, k, size, r->n, secs, r->appends_s, r->syncs_s, r->mean_batch, r->w50, r->w99,
           r->wmax, r->c99, total, dropped);
    fflush(stdout);
    free(all);
    free(ps);
    free(g.pending);
    free(g.commit_lat);
    pthread_attr_destroy(&attr);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
    c->close(g.st);
    remove_dir(dir);
}

/* ---- where the stores live ---- */

static const char *fs_name(long type)
{
    switch ((unsigned long)type) {
    case 0xEF53: return "ext2/3/4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794c7630: return "overlayfs";
    case 0x2fc12fc1: return "zfs";
    case 0xF2F52010: return "f2fs";
    case 0x6969: return "nfs";
    default: return "unknown";
    }
}

static void print_fs(const char *dir)
{
    struct statfs sf;
    char real[PATH_MAX];
    if (statfs(dir, &sf) != 0)
        die("statfs %s: %s", dir, strerror(errno));
    if (realpath(dir, real) == NULL)
        die("realpath %s: %s", dir, strerror(errno));
    /* the mount with the longest directory that contains dir */
    char best_dir[PATH_MAX] = "", best_type[64] = "?", best_dev[PATH_MAX] = "?",
         best_opts[512] = "?";
    FILE *m = setmntent("/proc/self/mounts", "r");
    if (m != NULL) {
        struct mntent me;
        char buf[4096];
        while (getmntent_r(m, &me, buf, sizeof(buf)) != NULL) {
            size_t l = strlen(me.mnt_dir);
            int inside = strncmp(real, me.mnt_dir, l) == 0 &&
                         (real[l] == '/' || real[l] == '\0' || strcmp(me.mnt_dir, "/") == 0);
            if (inside && l >= strlen(best_dir)) {
                snprintf(best_dir, sizeof(best_dir), "%s", me.mnt_dir);
                snprintf(best_type, sizeof(best_type), "%s", me.mnt_type);
                snprintf(best_dev, sizeof(best_dev), "%s", me.mnt_fsname);
                snprintf(best_opts, sizeof(best_opts), "%s", me.mnt_opts);
            }
        }
        endmntent(m);
    }
    printf("filesystem dir=%s f_type=0x%lx (%s) mount=%s type=%s device=%s options=%s\n", real,
           (unsigned long)sf.f_type, fs_name((long)sf.f_type), best_dir, best_type, best_dev,
           best_opts);
}

/* ---- main ---- */

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--dir DIR] [--duration S] [--count N] [--max-mb MB]\n"
            "          [--sizes LIST] [--batches LIST] [--inflight LIST] [--group-size BYTES]\n"
            "          [--candidates sqlite,lmdb,file] [--skip-matrix] [--skip-group]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *parent = "/tmp";
    opt.duration = 3;
    opt.max_mb = 256;
    opt.nsizes = parse_list("1024,256,16384", opt.sizes, "sizes", 1, MAX_VALUE);
    opt.nbatches = parse_list("1,8,64,256", opt.batches, "batches", 1, MAX_BATCH);
    opt.ninflight = parse_list("64,256", opt.inflight, "inflight", 1, MAX_INFLIGHT);
    opt.group_size = 1024;
    for (size_t i = 0; i < NCANDS; i++)
        opt.cand_on[i] = 1;

    static const struct option lo[] = {
        {"dir", required_argument, NULL, 'd'},        {"duration", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},      {"max-mb", required_argument, NULL, 'm'},
        {"sizes", required_argument, NULL, 's'},      {"batches", required_argument, NULL, 'b'},
        {"inflight", required_argument, NULL, 'k'},   {"group-size", required_argument, NULL, 'g'},
        {"candidates", required_argument, NULL, 'c'}, {"skip-matrix", no_argument, NULL, 'M'},
        {"skip-group", no_argument, NULL, 'G'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': parent = optarg; break;
        case 't': {
            char *end;
            errno = 0;
            opt.duration = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0' || !(opt.duration > 0) ||
                opt.duration > 600)
                die("duration: '%s' is not a number of seconds in (0, 600]", optarg);
            break;
        }
        case 'n': opt.count = parse_u64(optarg, "count", 1, 100000000); break;
        case 'm': opt.max_mb = parse_u64(optarg, "max-mb", 1, 65536); break;
        case 's': opt.nsizes = parse_list(optarg, opt.sizes, "sizes", 1, MAX_VALUE); break;
        case 'b': opt.nbatches = parse_list(optarg, opt.batches, "batches", 1, MAX_BATCH); break;
        case 'k':
            opt.ninflight = parse_list(optarg, opt.inflight, "inflight", 1, MAX_INFLIGHT);
            break;
        case 'g': opt.group_size = (size_t)parse_u64(optarg, "group-size", 1, MAX_VALUE); break;
        case 'c': {
            char buf[64];
            if (strlen(optarg) >= sizeof(buf))
                die("candidates: list too long");
            strcpy(buf, optarg);
            memset(opt.cand_on, 0, sizeof(opt.cand_on));
            for (char *sv = NULL, *t = strtok_r(buf, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
                size_t i = 0;
                while (i < NCANDS && strcmp(g_cands[i].name, t) != 0)
                    i++;
                if (i == NCANDS)
                    die("candidates: unknown '%s' (sqlite, lmdb, file)", t);
                opt.cand_on[i] = 1;
            }
            break;
        }
        case 'M': opt.skip_matrix = 1; break;
        case 'G': opt.skip_group = 1; break;
        default: usage(argv[0]);
        }
    }
    if (optind != argc)
        usage(argv[0]);

    crc32c_init();
    if (crc32c(0, "123456789", 9) != 0xE3069283u)
        die("crc32c self-test failed");
    g_hlen = (size_t)snprintf((char *)g_headers, sizeof(g_headers),
                              "id=6f1c2b7e-9a4d-4e8b-b1f2-3c5d7e9f0a1b;type=invoice.paid;"
                              "received_at=1718000000123;content-type=application/json");
    if (g_hlen >= sizeof(g_headers))
        die("headers too long");
    g_value = xcalloc(1, MAX_VALUE);
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < MAX_VALUE; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        g_value[i] = (unsigned char)(x >> 32);
    }
    size_t maxsize = opt.group_size;
    for (size_t i = 0; i < opt.nsizes; i++)
        if (opt.sizes[i] > maxsize)
            maxsize = opt.sizes[i];
    /* room for max-mb of records at LMDB's page overhead, and then some */
    uint64_t maxrec = opt.count ? opt.count * (uint64_t)frame_max(maxsize)
                                : opt.max_mb * 1048576u;
    g_mapsize = (size_t)(4 * maxrec + (256u << 20));

    int n = snprintf(opt.base, sizeof(opt.base), "%s/spool-bench-XXXXXX", parent);
    if (n < 0 || (size_t)n >= sizeof(opt.base))
        die("dir too long: %s", parent);
    if (mkdtemp(opt.base) == NULL)
        die("mkdtemp %s: %s", opt.base, strerror(errno));

    time_t now = time(NULL);
    char date[64];
    struct tm tmv;
    struct utsname un;
    if (gmtime_r(&now, &tmv) == NULL || strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tmv) == 0)
        die("date");
    if (uname(&un) != 0)
        die("uname: %s", strerror(errno));
    printf("run date=%s kernel=%s-%s cpus=%ld sqlite=%s lmdb=%s duration_s=%.1f max_mb=%" PRIu64
           " count=%" PRIu64 " segment_bytes=%u\n",
           date, un.sysname, un.release, sysconf(_SC_NPROCESSORS_ONLN), sqlite3_libversion(),
           mdb_version(NULL, NULL, NULL), opt.duration, opt.max_mb, opt.count, SEG_MAX);
    print_fs(opt.base);
    fflush(stdout);

    run_baseline();
    if (!opt.skip_matrix)
        for (size_t si = 0; si < opt.nsizes; si++)
            for (size_t ci = 0; ci < NCANDS; ci++)
                for (size_t bi = 0; bi < opt.nbatches && opt.cand_on[ci]; bi++)
                    run_one(&g_cands[ci], opt.sizes[si], opt.batches[bi]);
    if (!opt.skip_group)
        for (size_t ci = 0; ci < NCANDS; ci++)
            for (size_t ki = 0; ki < opt.ninflight && opt.cand_on[ci]; ki++)
                run_group(&g_cands[ci], opt.inflight[ki], opt.group_size);

    if (g_nres > 0) {
        printf("\nsummary: appends (one batch = one commit = one durable sync sequence), then deletes\n");
        printf("%-7s %6s %5s %9s %10s %9s %9s %9s %9s %10s %11s\n", "cand", "size", "batch",
               "syncs/s", "appends/s", "p50_us", "p99_us", "max_us", "bytes/rec", "deletes/s",
               "del_p99_us");
        for (size_t i = 0; i < g_nres; i++) {
            const res_t *r = &g_res[i];
            printf("%-7s %6zu %5zu %9.0f %10.0f %9.0f %9.0f %9.0f %9.0f %10.0f %11.0f\n", r->cand,
                   r->size, r->batch, r->syncs_s, r->appends_s, r->p50, r->p99, r->max,
                   r->bytes_rec, r->dels_s, r->del_p99);
        }
    }
    if (g_ngres > 0) {
        printf("\nsummary: group commit (K requests in flight, one committer)\n");
        printf("%-7s %8s %6s %10s %9s %10s %11s %11s %11s\n", "cand", "inflight", "size",
               "appends/s", "syncs/s", "mean_batch", "wait_p50_us", "wait_p99_us",
               "commit_p99");
        for (size_t i = 0; i < g_ngres; i++) {
            const gres_t *r = &g_gres[i];
            printf("%-7s %8zu %6zu %10.0f %9.0f %10.1f %11.0f %11.0f %11.0f\n", r->cand, r->k,
                   r->size, r->appends_s, r->syncs_s, r->mean_batch, r->w50, r->w99, r->c99);
        }
    }
    if (rmdir(opt.base) != 0)
        die("rmdir %s: %s", opt.base, strerror(errno));
    free(g_value);
    return 0;
}
