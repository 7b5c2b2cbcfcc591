/* test_spool.c - spool.c: records kept in order until removed, across a
 * reopen; nothing uncommitted survives and nothing committed is lost when the
 * process is SIGKILLed at any moment (a child appending and committing in a
 * loop, killed, its file reopened); the byte bound; a record damaged on disk
 * moved aside and counted, its neighbours kept; a full disk (RLIMIT_FSIZE)
 * fails the commit and keeps none of its batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spool.h"

static uint64_t batch; /* the batch of the last add */

static char dir[64], path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/wb-spool-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/spool-0.db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static wb_spool_rec_t rec_of(const char *value)
{
    wb_spool_rec_t r = {.provider = "piriod",
                        .topic = "webhooks.piriod.payment.created",
                        .key = "pay_1",
                        .key_len = 5,
                        .value = value,
                        .value_len = strlen(value)};
    return r;
}

typedef struct {
    int64_t seqs[4096];
    char values[4096][32];
    unsigned n;
} seen_t;

static void collect(void *ctx, const wb_spool_rec_t *rec)
{
    seen_t *s = ctx;
    if (s->n < 4096) {
        s->seqs[s->n] = rec->seq;
        snprintf(s->values[s->n], sizeof(s->values[0]), "%.*s", (int)rec->value_len, rec->value);
        s->n++;
    }
}

static wb_spool_t *open_spool(uint64_t max)
{
    char err[256] = "";
    wb_spool_t *sp = wb_spool_open(path, max, err, sizeof(err));
    if (sp == NULL)
        fail_msg("open: %s", err);
    return sp;
}

static void test_order_remove_reopen(void **state)
{
    (void)state;
    char err[256];
    wb_spool_t *sp = open_spool(1 << 20);
    int64_t seq[5];
    const char *vals[] = {"a", "b", "c", "d", "e"};
    for (unsigned i = 0; i < 5; i++) {
        wb_spool_rec_t r = rec_of(vals[i]);
        if (i == 2) {
            r.reason = "unknown_topic";
            r.intended = "webhooks.piriod.x";
        }
        assert_int_equal(wb_spool_add(sp, &r, &seq[i], &batch), WB_OK);
        if (i > 0)
            assert_true(seq[i] > seq[i - 1]);
    }
    assert_int_equal(wb_spool_commit(sp, 0, err, sizeof(err)), WB_OK);
    wb_spool_stats_t st;
    wb_spool_stats(sp, &st);
    assert_int_equal(st.records, 5);
    assert_int_equal(st.bytes, 5 * (5 + 1));
    assert_true(st.oldest_ms > 0);
    assert_int_equal(wb_spool_remove(sp, seq[1]), WB_OK);
    assert_int_equal(wb_spool_remove(sp, seq[3]), WB_OK);
    assert_int_equal(wb_spool_remove(sp, 999999), WB_ERR_NOTFOUND);
    assert_int_equal(wb_spool_commit(sp, 0, err, sizeof(err)), WB_OK);
    wb_spool_close(sp);

    sp = open_spool(1 << 20);
    static seen_t s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(wb_spool_scan(sp, 0, 100, collect, &s), 3);
    assert_string_equal(s.values[0], "a");
    assert_string_equal(s.values[1], "c");
    assert_string_equal(s.values[2], "e");
    /* scanning on from a place, and a bound on how many */
    memset(&s, 0, sizeof(s));
    assert_int_equal(wb_spool_scan(sp, seq[0], 1, collect, &s), 1);
    assert_string_equal(s.values[0], "c");
    wb_spool_stats(sp, &st);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.bytes, 3 * 6);
    wb_spool_close(sp);
}

typedef struct {
    char reason[32], intended[64], topic[64], provider[16], key[16];
} got_t;

static void collect_fields(void *ctx, const wb_spool_rec_t *rec)
{
    got_t *g = ctx;
    snprintf(g->reason, sizeof(g->reason), "%s", rec->reason ? rec->reason : "");
    snprintf(g->intended, sizeof(g->intended), "%s", rec->intended ? rec->intended : "");
    snprintf(g->topic, sizeof(g->topic), "%s", rec->topic);
    snprintf(g->provider, sizeof(g->provider), "%s", rec->provider);
    snprintf(g->key, sizeof(g->key), "%.*s", (int)rec->key_len, rec->key);
}

static void test_headers_kept(void **state)
{
    (void)state;
    char err[256];
    wb_spool_t *sp = open_spool(1 << 20);
    wb_spool_rec_t r = rec_of("{\"x\":1}");
    r.reason = "unknown_topic";
    r.intended = "webhooks.piriod.x";
    int64_t seq;
    assert_int_equal(wb_spool_add(sp, &r, &seq, &batch), WB_OK);
    assert_int_equal(wb_spool_commit(sp, 0, err, sizeof(err)), WB_OK);
    wb_spool_close(sp);
    sp = open_spool(1 << 20);
    got_t g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(wb_spool_scan(sp, 0, 10, collect_fields, &g), 1);
    assert_string_equal(g.reason, "unknown_topic");
    assert_string_equal(g.intended, "webhooks.piriod.x");
    assert_string_equal(g.topic, "webhooks.piriod.payment.created");
    assert_string_equal(g.provider, "piriod");
    assert_string_equal(g.key, "pay_1");
    wb_spool_close(sp);
}

static void test_uncommitted_is_not_kept(void **state)
{
    (void)state;
    char err[256];
    pid_t pid = fork();
    if (pid == 0) {
        wb_spool_t *sp = wb_spool_open(path, 1 << 20, err, sizeof(err));
        int64_t seq;
        wb_spool_rec_t r = rec_of("kept");
        if (sp == NULL || wb_spool_add(sp, &r, &seq, &batch) != WB_OK ||
            wb_spool_commit(sp, 0, err, sizeof(err)) != WB_OK)
            _exit(1);
        r = rec_of("lost");
        if (wb_spool_add(sp, &r, &seq, &batch) != WB_OK)
            _exit(1);
        kill(getpid(), SIGKILL); /* no commit, no close */
        _exit(2);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    wb_spool_t *sp = open_spool(1 << 20);
    static seen_t s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(wb_spool_scan(sp, 0, 10, collect, &s), 1);
    assert_string_equal(s.values[0], "kept");
    wb_spool_close(sp);
}

/* A child adds and commits batches as fast as it can and tells the parent
 * the last seq of each commit once it returned; the parent SIGKILLs it at
 * some moment. Every seq reported committed must be there, in order. */
static void test_sigkill_loses_nothing_committed(void **state)
{
    (void)state;
    for (int round = 0; round < 5; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        if (pid == 0) {
            char err[256];
            close(fds[0]);
            wb_spool_t *sp = wb_spool_open(path, 1ull << 30, err, sizeof(err));
            if (sp == NULL)
                _exit(1);
            for (unsigned i = 0;; i++) {
                char v[32];
                int64_t seq = 0;
                for (unsigned j = 0; j < 8; j++) {
                    snprintf(v, sizeof(v), "r%d-%u-%u", round, i, j);
                    wb_spool_rec_t r = rec_of(v);
                    if (wb_spool_add(sp, &r, &seq, &batch) != WB_OK)
                        _exit(1);
                }
                if (wb_spool_commit(sp, 0, err, sizeof(err)) != WB_OK)
                    _exit(1);
                if (write(fds[1], &seq, sizeof(seq)) != (ssize_t)sizeof(seq))
                    _exit(1);
            }
        }
        close(fds[1]);
        /* killed at a random moment after its first commit (on a busy
         * machine the first fsync alone can take longer than the pause) */
        int64_t last = 0, seq;
        if (read(fds[0], &seq, sizeof(seq)) == (ssize_t)sizeof(seq))
            last = seq;
        usleep(50000 + (useconds_t)(rand() % 150000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        while (read(fds[0], &seq, sizeof(seq)) == (ssize_t)sizeof(seq))
            last = seq;
        close(fds[0]);
        assert_true(last > 0);
        wb_spool_t *sp = open_spool(1ull << 30);
        static seen_t s;
        memset(&s, 0, sizeof(s));
        int64_t after = 0;
        int n;
        int64_t max_seen = 0, prev = 0;
        while ((n = wb_spool_scan(sp, after, 4096, collect, &s)) > 0) {
            for (unsigned i = 0; i < s.n; i++) {
                assert_true(s.seqs[i] > prev);
                prev = s.seqs[i];
            }
            max_seen = s.seqs[s.n - 1];
            after = max_seen;
            s.n = 0;
        }
        assert_true(max_seen >= last); /* everything committed is there */
        wb_spool_stats_t st;
        wb_spool_stats(sp, &st);
        assert_int_equal(st.records % 8, 0); /* whole batches only */
        wb_spool_close(sp);
    }
}

/* Two workers add to one batch: the first commit makes both durable, the
 * second is then a no-op that succeeds. */
static void test_shared_batch(void **state)
{
    (void)state;
    char err[256];
    wb_spool_t *sp = open_spool(1 << 20);
    int64_t s1, s2;
    uint64_t b1, b2;
    wb_spool_rec_t r = rec_of("one");
    assert_int_equal(wb_spool_add(sp, &r, &s1, &b1), WB_OK);
    r = rec_of("two");
    assert_int_equal(wb_spool_add(sp, &r, &s2, &b2), WB_OK);
    assert_true(b1 == b2 && b1 != 0);
    assert_int_equal(wb_spool_commit(sp, b2, err, sizeof(err)), WB_OK);
    assert_int_equal(wb_spool_commit(sp, b1, err, sizeof(err)), WB_OK);
    r = rec_of("three");
    uint64_t b3;
    assert_int_equal(wb_spool_add(sp, &r, &s1, &b3), WB_OK);
    assert_true(b3 > b1);
    assert_int_equal(wb_spool_commit(sp, b3, err, sizeof(err)), WB_OK);
    wb_spool_stats_t st;
    wb_spool_stats(sp, &st);
    assert_int_equal(st.records, 3);
    wb_spool_close(sp);
}

static void test_byte_bound(void **state)
{
    (void)state;
    char err[256];
    wb_spool_t *sp = open_spool(100);
    char big[61];
    memset(big, 'x', 60);
    big[60] = '\0';
    wb_spool_rec_t r = rec_of(big); /* 5 + 60 bytes */
    int64_t seq, first;
    assert_int_equal(wb_spool_add(sp, &r, &first, &batch), WB_OK);
    assert_int_equal(wb_spool_add(sp, &r, &seq, &batch), WB_ERR_TOO_LARGE); /* within the batch */
    assert_int_equal(wb_spool_commit(sp, 0, err, sizeof(err)), WB_OK);
    assert_int_equal(wb_spool_add(sp, &r, &seq, &batch), WB_ERR_TOO_LARGE); /* committed */
    assert_int_equal(wb_spool_remove(sp, first), WB_OK);
    assert_int_equal(wb_spool_commit(sp, 0, err, sizeof(err)), WB_OK);
    assert_int_equal(wb_spool_add(sp, &r, &seq, &batch), WB_OK); /* room again */
    assert_int_equal(wb_spool_commit(sp, 0, err, sizeof(err)), WB_OK);
    wb_spool_close(sp);
}

static void test_damaged_record_moved_aside(void **state)
{
    (void)state;
    char err[256];
    wb_spool_t *sp = open_spool(1 << 20);
    int64_t seq[3];
    const char *vals[] = {"one", "two", "three"};
    for (unsigned i = 0; i < 3; i++) {
        wb_spool_rec_t r = rec_of(vals[i]);
        assert_int_equal(wb_spool_add(sp, &r, &seq[i], &batch), WB_OK);
    }
    assert_int_equal(wb_spool_commit(sp, 0, err, sizeof(err)), WB_OK);
    wb_spool_close(sp);
    /* a byte of the middle record's value changes on disk */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char q[128];
    snprintf(q, sizeof(q), "UPDATE records SET value = x'74776f21' WHERE seq = %lld",
             (long long)seq[1]);
    assert_int_equal(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    sp = open_spool(1 << 20);
    static seen_t s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(wb_spool_scan(sp, 0, 10, collect, &s), 2);
    assert_string_equal(s.values[0], "one");
    assert_string_equal(s.values[1], "three");
    wb_spool_stats_t st;
    wb_spool_stats(sp, &st);
    assert_int_equal(st.corrupt, 1);
    assert_int_equal(st.records, 2);
    wb_spool_close(sp);
    /* kept aside, not dropped */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *c;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM corrupt", -1, &c, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(c), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(c, 0), 1);
    sqlite3_finalize(c);
    sqlite3_close(db);
}

/* The disk is full (the file size limit, as ENOSPC would): the commit
 * fails, and none of its batch is there afterwards. */
static void test_disk_full_fails_the_commit(void **state)
{
    (void)state;
    pid_t pid = fork();
    if (pid == 0) {
        char err[256];
        signal(SIGXFSZ, SIG_IGN);
        wb_spool_t *sp = wb_spool_open(path, 1ull << 30, err, sizeof(err));
        if (sp == NULL)
            _exit(10);
        int64_t seq;
        wb_spool_rec_t r = rec_of("before");
        if (wb_spool_add(sp, &r, &seq, &batch) != WB_OK ||
            wb_spool_commit(sp, 0, err, sizeof(err)) != WB_OK)
            _exit(11);
        struct rlimit rl = {64 * 1024, 64 * 1024};
        setrlimit(RLIMIT_FSIZE, &rl);
        static char big[200000];
        memset(big, 'y', sizeof(big) - 1);
        r = rec_of(big);
        int added = wb_spool_add(sp, &r, &seq, &batch);
        if (added != WB_OK)
            _exit(13); /* the write fails at the commit, not before */
        if (wb_spool_commit(sp, batch, err, sizeof(err)) == WB_OK)
            _exit(12);
        /* whoever else added to that batch learns it failed too */
        _exit(wb_spool_commit(sp, batch, err, sizeof(err)) == WB_OK ? 14 : 0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    wb_spool_t *sp = open_spool(1ull << 30);
    static seen_t s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(wb_spool_scan(sp, 0, 10, collect, &s), 1);
    assert_string_equal(s.values[0], "before");
    wb_spool_close(sp);
}

#define FX(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX(test_order_remove_reopen),
        FX(test_headers_kept),
        FX(test_uncommitted_is_not_kept),
        FX(test_sigkill_loses_nothing_committed),
        FX(test_shared_batch),
        FX(test_byte_bound),
        FX(test_damaged_record_moved_aside),
        FX(test_disk_full_fails_the_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
