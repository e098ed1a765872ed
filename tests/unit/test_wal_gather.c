/* test_wal_gather.c - the VFS that writes a commit's WAL frames at once (command/wal_gather.h),
 * on real database files: after every COMMIT, another connection and a copy of the files
 * taken then (what a crash would leave) must hold exactly what was committed. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "command/wal_gather.h"

struct files {
    char dir[64], db[96], copy_dir[64], copy_db[96];
};

static void make_files(struct files *f)
{
    snprintf(f->dir, sizeof(f->dir), "/tmp/catalogd-wal-XXXXXX");
    snprintf(f->copy_dir, sizeof(f->copy_dir), "/tmp/catalogd-wal-copy-XXXXXX");
    cr_assert_not_null(mkdtemp(f->dir));
    cr_assert_not_null(mkdtemp(f->copy_dir));
    snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
    snprintf(f->copy_db, sizeof(f->copy_db), "%s/t.db", f->copy_dir);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *message = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &message);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, message ? message : "?");
}

static long long number(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
    long long n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static sqlite3 *open_writer(const struct files *f, const char *pragmas)
{
    const char *vfs = wal_gather_vfs();
    cr_assert_not_null(vfs);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                 SQLITE_OK);
    exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
    if (pragmas) exec(db, pragmas);
    exec(db, "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    return db;
}

static sqlite3 *open_plain(const char *path)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    return db;
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    cr_assert_not_null(out);
    if (in) {
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
            cr_assert_eq(fwrite(buf, 1, n, out), n);
        fclose(in);
    }
    fclose(out);
}

/* Copies the database and its WAL, as a crash at this instant leaves them (the page cache
 * survives a process's crash), and opens the copy as a fresh start would: SQLite recovers the
 * WAL from the file alone. */
static sqlite3 *open_crash_copy(const struct files *f)
{
    char from[128], to[128];
    copy_file(f->db, f->copy_db);
    snprintf(from, sizeof(from), "%s-wal", f->db);
    snprintf(to, sizeof(to), "%s-wal", f->copy_db);
    copy_file(from, to);
    snprintf(to, sizeof(to), "%s-shm", f->copy_db);
    remove(to);
    return open_plain(f->copy_db);
}

/* 1 when SQLite finds the database whole. */
#define INTEGRITY_OK "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"

/* The rows a test expects: the value of row k is 2000 copies of one letter, upper case, or
 * lower case once a test lowers it. */
#define VALUE_OF_K "replace(hex(zeroblob(1000)), '0', char(65 + k - k / 26 * 26))"
#define ROWS_AS_WRITTEN                                                                            \
    "SELECT count(*) FROM t WHERE v = " VALUE_OF_K " OR (k <= 100 AND v = lower(" VALUE_OF_K "))"

Test(wal_gather, every_commit_is_in_the_files_when_commit_returns)
{
    struct files f;
    make_files(&f);
    /* A checkpoint every 20 pages: the WAL restarts from its start (a write at offset 0 after
     * later ones) several times within the run. */
    sqlite3 *writer = open_writer(&f, "PRAGMA wal_autocheckpoint=20");
    sqlite3 *reader = open_plain(f.db);
    char sql[256];
    for (int i = 1; i <= 60; i++) {
        snprintf(sql, sizeof(sql),
                 "BEGIN IMMEDIATE; WITH RECURSIVE n(k) AS (SELECT %d UNION ALL SELECT k + 1"
                 " FROM n WHERE k < %d) INSERT INTO t (k, v) SELECT k, " VALUE_OF_K
                 " FROM n; COMMIT",
                 1000 + 3 * i - 2, 1000 + 3 * i);
        exec(writer, sql);
        cr_assert_eq(number(reader, "SELECT count(*) FROM t"), 3 * i, "after commit %d", i);
        sqlite3 *copy = open_crash_copy(&f);
        cr_assert_eq(number(copy, "SELECT count(*) FROM t"), 3 * i, "crash copy after commit %d",
                     i);
        cr_assert_eq(number(copy, INTEGRITY_OK), 1);
        sqlite3_close(copy);
    }
    sqlite3_close(reader);
    cr_assert_eq(sqlite3_close(writer), SQLITE_OK);
}

Test(wal_gather, a_transaction_past_what_is_held_back_commits_whole_or_not_at_all)
{
    struct files f;
    make_files(&f);
    /* A page cache of 20 pages: the transaction spills frames to the WAL long before it
     * commits, and rewrites some of them in place when it updates rows it wrote. */
    sqlite3 *writer = open_writer(&f, "PRAGMA cache_size=20");
    sqlite3 *reader = open_plain(f.db);
    /* About 3 MB of rows: past the 1 MB the VFS holds back. */
    exec(writer, "BEGIN IMMEDIATE;"
                 "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 1500)"
                 " INSERT INTO t (k, v) SELECT k, " VALUE_OF_K " FROM n;"
                 "UPDATE t SET v = lower(v) WHERE k <= 100;"
                 "COMMIT");
    cr_assert_eq(number(reader, ROWS_AS_WRITTEN), 1500);
    sqlite3 *copy = open_crash_copy(&f);
    cr_assert_eq(number(copy, ROWS_AS_WRITTEN), 1500);
    sqlite3_close(copy);

    /* A spilled transaction rolled back, then a small one committed over the same frames. */
    exec(writer, "BEGIN IMMEDIATE;"
                 "WITH RECURSIVE n(k) AS (SELECT 2001 UNION ALL SELECT k + 1 FROM n"
                 " WHERE k < 3500) INSERT INTO t (k, v) SELECT k, " VALUE_OF_K " FROM n;"
                 "ROLLBACK");
    exec(writer, "INSERT INTO t (k, v) VALUES (4000, replace(hex(zeroblob(1000)), '0', 'O'))");
    cr_assert_eq(number(reader, "SELECT count(*) FROM t"), 1501);
    cr_assert_eq(number(reader, ROWS_AS_WRITTEN), 1500);
    copy = open_crash_copy(&f);
    cr_assert_eq(number(copy, "SELECT count(*) FROM t"), 1501);
    cr_assert_eq(number(copy, ROWS_AS_WRITTEN), 1500);
    cr_assert_eq(number(copy, INTEGRITY_OK), 1);
    sqlite3_close(copy);
    sqlite3_close(reader);
    cr_assert_eq(sqlite3_close(writer), SQLITE_OK);
}

Test(wal_gather, fits_a_database_unless_it_lacks_powersafe_overwrite)
{
    struct files f;
    make_files(&f);
    char uri[160];
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI;
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(f.db, &db, flags, wal_gather_vfs()), SQLITE_OK);
    cr_assert_eq(wal_gather_fits(db), 1);
    sqlite3_close(db);
    snprintf(uri, sizeof(uri), "file:%s?psow=0", f.db);
    cr_assert_eq(sqlite3_open_v2(uri, &db, flags, wal_gather_vfs()), SQLITE_OK);
    cr_assert_eq(wal_gather_fits(db), 0);
    sqlite3_close(db);
}
