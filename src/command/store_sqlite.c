/* store_sqlite.c - SQLite backend of the write model (store.h, through store_backend.h): one
 * file, one writer process. With store_pg.c, the only place catalogd has SQL.
 * Invariant: the writer connection only changes data inside BEGIN IMMEDIATE ... COMMIT, and
 * every change of products is paired with an INSERT into events in the same transaction. */
#include "command/store_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "command/wal_gather.h"
#include "common/xmalloc.h"

#define BUSY_TIMEOUT_MS 2000
#define SETUP_RETRY_MS  10
/* How long a start waits for another process's schema migration: step 3 copies the event
 * log, about 6 s per million events. */
#define MIGRATION_WAIT_MS   (10 * 60 * 1000)
#define REMIGRATION_WAIT_MS 1000 /* a running writer's (store_ping): commands wait behind it */
#define KEY_HASH_LEN        32   /* SHA-256 */

/* The schema as numbered steps. PRAGMA user_version records the last step applied; when the
 * writer opens the database it applies every later step, in order, each in its own
 * transaction, so a database of any earlier version is upgraded in place. A step that has
 * shipped is never edited: a change is a new step. (store_pg.c numbers its own steps: its
 * step 1 is the schema of step 2 here.) */
static const char MIGRATION_1[] =
    "CREATE TABLE IF NOT EXISTS products ("
    "  id TEXT PRIMARY KEY,"
    "  sku TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL,"
    "  price_cents INTEGER NOT NULL CHECK (price_cents BETWEEN 0 AND 99999999999),"
    "  stock INTEGER NOT NULL CHECK (stock BETWEEN 0 AND 2147483647),"
    "  version INTEGER NOT NULL CHECK (version >= 1),"
    "  created_at TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS events ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  product_id TEXT NOT NULL,"
    "  type TEXT NOT NULL CHECK (type IN"
    "    ('ProductCreated','ProductUpdated','StockAdjusted','ProductDeleted')),"
    "  version INTEGER NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  recorded_at TEXT NOT NULL"
    ");"
    "CREATE TABLE IF NOT EXISTS idempotency_keys ("
    "  key TEXT PRIMARY KEY,"
    "  fingerprint TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  location TEXT NOT NULL,"
    "  etag TEXT NOT NULL,"
    "  content_type TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  created_at_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS idempotency_keys_age ON idempotency_keys (created_at_ms);"
    "CREATE TABLE IF NOT EXISTS write_probe ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  probed_at_ms INTEGER NOT NULL"
    ");";

/* Idempotency keys of up to 255 bytes were stored whole, twice (primary key and age index):
 * now their SHA-256, and the request's fingerprint as its 32 bytes instead of 64 hex digits.
 * The keys already stored are kept, hashed (catalogd_sha256 and catalogd_unhex are functions
 * this file registers on the connection; a row whose fingerprint is not hex was not written by
 * catalogd and is dropped). */
static const char MIGRATION_2[] =
    "CREATE TABLE idempotency_keys_v2 ("
    "  key_sha256 BLOB PRIMARY KEY CHECK (length(key_sha256) = 32),"
    "  fingerprint BLOB NOT NULL CHECK (length(fingerprint) = 32),"
    "  status INTEGER NOT NULL,"
    "  location TEXT NOT NULL,"
    "  etag TEXT NOT NULL,"
    "  content_type TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  created_at_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "INSERT INTO idempotency_keys_v2 SELECT catalogd_sha256(key), catalogd_unhex(fingerprint),"
    "  status, location, etag, content_type, body, created_at_ms FROM idempotency_keys"
    "  WHERE catalogd_unhex(fingerprint) IS NOT NULL;"
    "DROP TABLE idempotency_keys;"
    "ALTER TABLE idempotency_keys_v2 RENAME TO idempotency_keys;"
    "CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at_ms);";

/* The event log's type check as comparisons: SQLite evaluates "type IN (a list of four)" by
 * building a temporary B-tree of the list on every insert, about half of what appending an
 * event cost. The same rule, so every row already there keeps it. SQLite cannot change a check in
 * place: the table is rebuilt and renamed (the procedure of SQLite's ALTER TABLE page), with
 * the AUTOINCREMENT high-water mark carried over, so no seq is ever handed out twice. */
static const char MIGRATION_3[] =
    "CREATE TABLE events_v3 ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  product_id TEXT NOT NULL,"
    "  type TEXT NOT NULL CHECK (type = 'ProductCreated' OR type = 'ProductUpdated'"
    "    OR type = 'StockAdjusted' OR type = 'ProductDeleted'),"
    "  version INTEGER NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  recorded_at TEXT NOT NULL"
    ");"
    "INSERT INTO events_v3 (seq, product_id, type, version, payload, recorded_at)"
    "  SELECT seq, product_id, type, version, payload, recorded_at FROM events ORDER BY seq;"
    "DELETE FROM sqlite_sequence WHERE name = 'events_v3';"
    "INSERT INTO sqlite_sequence (name, seq)"
    "  SELECT 'events_v3', seq FROM sqlite_sequence WHERE name = 'events';"
    "DROP TABLE events;"
    "ALTER TABLE events_v3 RENAME TO events;";

/* Every event's nonce (domain/event.h); rows already there have none. */
static const char MIGRATION_4[] = "ALTER TABLE events ADD COLUMN nonce TEXT NOT NULL DEFAULT '';";

/* The stored answers as a rowid table, each row appended after the last, found by a unique
 * index of their keys' SHA-256. They were a WITHOUT ROWID table on that hash: each row, about
 * 600 bytes with its answer's body, went to a random page of a B-tree of rows that large, so a
 * keyed command read and rewrote pages of its own: ten times the bytes a plain command writes
 * (WAL and checkpoint). Now the random place is an index entry of about 40 bytes, and the rows
 * go in order, several to a page. The copy takes the old table's order (copying in the order
 * the rows were stored took twice as long) and its index is built after it: about 12 s per
 * million stored keys, once. */
static const char MIGRATION_5[] =
    "CREATE TABLE idempotency_keys_v5 ("
    "  key_sha256 BLOB NOT NULL CHECK (length(key_sha256) = 32),"
    "  fingerprint BLOB NOT NULL CHECK (length(fingerprint) = 32),"
    "  status INTEGER NOT NULL,"
    "  location TEXT NOT NULL,"
    "  etag TEXT NOT NULL,"
    "  content_type TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  created_at_ms INTEGER NOT NULL"
    ");"
    "INSERT INTO idempotency_keys_v5 (key_sha256, fingerprint, status, location, etag,"
    "  content_type, body, created_at_ms)"
    "  SELECT key_sha256, fingerprint, status, location, etag, content_type, body, created_at_ms"
    "  FROM idempotency_keys;"
    "DROP TABLE idempotency_keys;"
    "ALTER TABLE idempotency_keys_v5 RENAME TO idempotency_keys;"
    "CREATE UNIQUE INDEX idempotency_keys_by_key ON idempotency_keys (key_sha256);"
    "CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at_ms);";

static const struct migration {
    int version;
    const char *sql;
} MIGRATIONS[] = {
    {1, MIGRATION_1}, {2, MIGRATION_2}, {3, MIGRATION_3}, {4, MIGRATION_4}, {5, MIGRATION_5},
};
#define SCHEMA_VERSION (MIGRATIONS[sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0]) - 1].version)

/* Prepared once per connection, indexed by enum statement. */
enum statement {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_INSERT_PRODUCT,
    ST_ID_BY_SKU,
    ST_INSERT_EVENT,
    ST_HEAD_SEQ,
    ST_LAST_SEQ_TAKEN,
    ST_COUNT_PRODUCTS,
    ST_EVENTS_AFTER,
    ST_SNAPSHOT_BEGIN,
    ST_SCAN_PRODUCTS,
    ST_GET_PRODUCT,
    ST_UPDATE_PRODUCT,
    ST_DELETE_PRODUCT,
    ST_GET_IDEMPOTENCY,
    ST_PUT_IDEMPOTENCY,
    ST_PURGE_IDEMPOTENCY,
    ST_COUNT_IDEMPOTENCY,
    ST_WRITE_PROBE,
    ST_COUNT,
};

/* The columns of a product row, in the order read_product_row reads them. */
#define PRODUCT_COLUMNS "id, sku, name, price_cents, stock, version, created_at, updated_at"

/* Each statement and whether a reader connection (projector, verify, rebuild) uses it too; a
 * reader prepares only those, so it can read a database whose writer tables are older. */
static const struct {
    const char *sql;
    int for_readers;
} STATEMENTS[ST_COUNT] = {
    [ST_BEGIN] = {"BEGIN IMMEDIATE", 0},
    [ST_COMMIT] = {"COMMIT", 0},
    [ST_ROLLBACK] = {"ROLLBACK", 1},
    [ST_SAVEPOINT] = {"SAVEPOINT command", 0},
    [ST_RELEASE] = {"RELEASE command", 0},
    [ST_ROLLBACK_TO] = {"ROLLBACK TO command", 0},
    [ST_INSERT_PRODUCT] = {"INSERT INTO products (id, sku, name, price_cents, stock, version,"
                           " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                           0},
    [ST_ID_BY_SKU] = {"SELECT id FROM products WHERE sku = ?1", 1}, /* verify */
    [ST_INSERT_EVENT] = {"INSERT INTO events (product_id, type, version, payload, recorded_at,"
                         " nonce) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                         0},
    [ST_HEAD_SEQ] = {"SELECT coalesce(max(seq), 0) FROM events", 1},
    /* AUTOINCREMENT's high-water mark: the next seq is past it, even once its row is gone. */
    [ST_LAST_SEQ_TAKEN] = {"SELECT coalesce((SELECT seq FROM sqlite_sequence"
                           " WHERE name = 'events'), 0)",
                           1},
    [ST_COUNT_PRODUCTS] = {"SELECT count(*) FROM products", 1},
    [ST_EVENTS_AFTER] = {"SELECT seq, type, product_id, version, payload, recorded_at, nonce"
                         " FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                         1},
    [ST_SNAPSHOT_BEGIN] = {"BEGIN", 1},
    [ST_SCAN_PRODUCTS] = {"SELECT " PRODUCT_COLUMNS " FROM products WHERE id > ?1 ORDER BY id"
                          " LIMIT ?2",
                          1},
    [ST_GET_PRODUCT] = {"SELECT " PRODUCT_COLUMNS " FROM products WHERE id = ?1", 1},
    [ST_UPDATE_PRODUCT] = {"UPDATE products SET name = ?2, price_cents = ?3, stock = ?4,"
                           " version = ?5, updated_at = ?6 WHERE id = ?1",
                           0},
    [ST_DELETE_PRODUCT] = {"DELETE FROM products WHERE id = ?1", 0},
    [ST_GET_IDEMPOTENCY] = {"SELECT fingerprint, status, location, etag, content_type, body"
                            " FROM idempotency_keys WHERE key_sha256 = ?1",
                            0},
    [ST_PUT_IDEMPOTENCY] = {"INSERT INTO idempotency_keys (key_sha256, fingerprint, status,"
                            " location, etag, content_type, body, created_at_ms)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            0},
    [ST_PURGE_IDEMPOTENCY] = {"DELETE FROM idempotency_keys WHERE created_at_ms < ?1", 0},
    [ST_COUNT_IDEMPOTENCY] = {"SELECT count(*) FROM idempotency_keys", 0},
    [ST_WRITE_PROBE] = {"INSERT OR REPLACE INTO write_probe (id, probed_at_ms) VALUES (1, ?1)", 0},
};

struct sqlite_store {
    struct store base; /* first: store.c sees only this */
    sqlite3 *db;
    sqlite3_stmt *statements[ST_COUNT];
};

static struct sqlite_store *sqlite_of(struct store *base)
{
    return (struct sqlite_store *)base;
}

static int fail(struct sqlite_store *store, const char *what)
{
    snprintf(store->base.err, sizeof(store->base.err), "%s: %s", what, sqlite3_errmsg(store->db));
    return STORE_ERR;
}

/* Resets "st" and runs it to completion; for statements that return no rows. */
static int run(struct sqlite_store *store, enum statement which)
{
    sqlite3_stmt *st = store->statements[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? STORE_OK : fail(store, STATEMENTS[which].sql);
}

/* Prepares the statements a connection uses: all of them for the writer, the reads for a
 * reader ("for_readers"). */
static int prepare_all(struct sqlite_store *store, int reader)
{
    for (int i = 0; i < ST_COUNT; i++) {
        if (reader && !STATEMENTS[i].for_readers) continue;
        if (sqlite3_prepare_v3(store->db, STATEMENTS[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
                               &store->statements[i], NULL) != SQLITE_OK)
            return fail(store, STATEMENTS[i].sql);
    }
    return STORE_OK;
}

static void key_sha256(const void *key, size_t len, unsigned char out[KEY_HASH_LEN])
{
    unsigned int out_len = 0;
    if (!EVP_Digest(key, len, out, &out_len, EVP_sha256(), NULL)) xmalloc_fail();
}

/* SQL function catalogd_sha256(text): the 32-byte SHA-256 of the text's bytes, as the writer
 * hashes an Idempotency-Key. */
static void sql_sha256(sqlite3_context *context, int argc, sqlite3_value **argv)
{
    (void)argc;
    unsigned char digest[KEY_HASH_LEN];
    key_sha256(sqlite3_value_blob(argv[0]), (size_t)sqlite3_value_bytes(argv[0]), digest);
    sqlite3_result_blob(context, digest, KEY_HASH_LEN, SQLITE_TRANSIENT);
}

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* SQL function catalogd_unhex(text): the bytes of 64 hex digits, or NULL for anything else
 * (SQLite's own unhex() is newer than Debian 12's SQLite). */
static void sql_unhex(sqlite3_context *context, int argc, sqlite3_value **argv)
{
    (void)argc;
    const unsigned char *text = sqlite3_value_text(argv[0]);
    unsigned char bytes[KEY_HASH_LEN];
    if (!text || sqlite3_value_bytes(argv[0]) != 2 * KEY_HASH_LEN) {
        sqlite3_result_null(context);
        return;
    }
    for (int i = 0; i < KEY_HASH_LEN; i++) {
        int high = hex_digit(text[2 * i]), low = hex_digit(text[2 * i + 1]);
        if (high < 0 || low < 0) {
            sqlite3_result_null(context);
            return;
        }
        bytes[i] = (unsigned char)(high << 4 | low);
    }
    sqlite3_result_blob(context, bytes, KEY_HASH_LEN, SQLITE_TRANSIENT);
}

static const struct {
    const char *name;
    void (*fn)(sqlite3_context *, int, sqlite3_value **);
} SQL_FUNCTIONS[] = {
    {"catalogd_sha256", sql_sha256},
    {"catalogd_unhex", sql_unhex},
};

static int schema_version(struct sqlite_store *store, int *version)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(store->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? STORE_OK : fail(store, "read the schema version");
}

static int migrate_steps(struct sqlite_store *store)
{
    for (size_t i = 0; i < sizeof(SQL_FUNCTIONS) / sizeof(SQL_FUNCTIONS[0]); i++)
        if (sqlite3_create_function_v2(store->db, SQL_FUNCTIONS[i].name, 1,
                                       SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                       SQL_FUNCTIONS[i].fn, NULL, NULL, NULL) != SQLITE_OK)
            return fail(store, "register SQL functions");
    for (size_t i = 0; i < sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0]); i++) {
        const struct migration *step = &MIGRATIONS[i];
        int version = 0;
        char *message = NULL, record[64];
        /* A read of a table makes the connection check its idea of the schema against the
         * file's, which another process (or a backup restored under this one) may have
         * changed since: the step is prepared against what the file holds. */
        if (sqlite3_exec(store->db, "BEGIN IMMEDIATE; SELECT 1 FROM sqlite_master LIMIT 1", NULL,
                         NULL, NULL) != SQLITE_OK) {
            fail(store, "begin a schema migration");
            goto failed;
        }
        if (schema_version(store, &version) < 0) goto failed;
        if (version > SCHEMA_VERSION) {
            snprintf(store->base.err, sizeof(store->base.err),
                     "the database has schema version %d, newer than this catalogd's (%d)", version,
                     SCHEMA_VERSION);
            goto failed;
        }
        if (version >= step->version) {
            sqlite3_exec(store->db, "COMMIT", NULL, NULL, NULL);
            continue;
        }
        snprintf(record, sizeof(record), "PRAGMA user_version=%d", step->version);
        if (sqlite3_exec(store->db, step->sql, NULL, NULL, &message) != SQLITE_OK ||
            sqlite3_exec(store->db, record, NULL, NULL, &message) != SQLITE_OK ||
            sqlite3_exec(store->db, "COMMIT", NULL, NULL, &message) != SQLITE_OK) {
            snprintf(store->base.err, sizeof(store->base.err), "schema migration %d failed: %s",
                     step->version, message ? message : sqlite3_errmsg(store->db));
            sqlite3_free(message);
            goto failed;
        }
    }
    return STORE_OK;
failed:
    if (!sqlite3_get_autocommit(store->db)) sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
    return STORE_ERR;
}

/* Applies, in order, every migration above the database's schema version, each in its own
 * BEGIN IMMEDIATE transaction that also records its number (so two processes opening the
 * same database apply each step once; the second waits out the first's, up to "wait_ms").
 * Refuses a database newer than this build. */
static int migrate(struct sqlite_store *store, int wait_ms)
{
    sqlite3_busy_timeout(store->db, wait_ms);
    int rc = migrate_steps(store);
    sqlite3_busy_timeout(store->db, BUSY_TIMEOUT_MS);
    return rc;
}

/* Runs the connection's PRAGMAs. Two connections switching a new file to WAL at once can each
 * hold the shared lock the other must wait out; SQLite then answers SQLITE_BUSY at once instead
 * of calling the busy handler (it would wait forever). Running the setup again after a pause,
 * within the busy timeout, lets the first switch finish and the second find WAL already on. */
static int run_setup(sqlite3 *db, const char *setup, const char *path, char *err, size_t errlen)
{
    for (int waited_ms = 0;; waited_ms += SETUP_RETRY_MS) {
        char *message = NULL;
        int rc = sqlite3_exec(db, setup, NULL, NULL, &message);
        if (rc == SQLITE_OK) return 0;
        if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= BUSY_TIMEOUT_MS) {
            snprintf(err, errlen, "cannot prepare %s: %s", path, message ? message : "?");
            sqlite3_free(message);
            return -1;
        }
        sqlite3_free(message);
        sqlite3_sleep(SETUP_RETRY_MS);
    }
}

void store_sqlite_setup_process(void)
{
    /* Debian's SQLite is built without lookaside memory (SQLITE_OMIT_LOOKASIDE), so every
     * statement allocates through malloc, about 16 times for a stock change. With memory
     * statistics on, each allocation and each free also takes SQLite's one global mutex and
     * counts itself: 13 % of the writer's instructions. catalogd reads none of the counts. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static const struct store_backend SQLITE_BACKEND;
static void sqlite_snapshot_end(struct store *base);

/* Opens "path", through wal_gather's VFS if "gather" and the database suits it. */
static int open_database(const char *path, int flags, int gather, sqlite3 **db)
{
    const char *vfs = gather ? wal_gather_vfs() : NULL;
    int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK || !vfs || wal_gather_fits(*db)) return rc;
    sqlite3_close(*db);
    return sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
}

static int open_connection(const char *path, int flags, int gather, int reader, struct store **out,
                           char *err, size_t errlen, const char *setup)
{
    struct sqlite_store *store = xcalloc(1, sizeof(*store));
    store->base.backend = &SQLITE_BACKEND;
    if (open_database(path, flags, gather, &store->db) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path,
                 store->db ? sqlite3_errmsg(store->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(store->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(store->db, 1);
    if (setup && run_setup(store->db, setup, path, err, errlen) < 0) goto fail;
    if ((!reader && migrate(store, MIGRATION_WAIT_MS) < 0) || prepare_all(store, reader) < 0) {
        snprintf(err, errlen, "%s: %s", path, store->base.err);
        goto fail;
    }
    *out = &store->base;
    return 0;
fail:
    store_close(&store->base);
    return -1;
}

int store_sqlite_open(const char *path, enum store_durability durability, int reader,
                      struct store **out, char *err, size_t errlen)
{
    /* A reader: never SQLITE_OPEN_CREATE, a mistyped path must not become an empty catalog.
     * Not SQLITE_OPEN_READONLY either: a read-only connection cannot open a WAL database whose
     * -shm file is missing. This connection only ever runs reads. */
    if (reader) return open_connection(path, SQLITE_OPEN_READWRITE, 0, 1, out, err, errlen, NULL);
    int full = durability == STORE_DURABILITY_FULL;
    char setup[128];
    snprintf(setup, sizeof(setup),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;",
             full ? "FULL" : "NORMAL");
    /* Only where every commit syncs the WAL (wal_gather.h). */
    return open_connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, full, 0, out, err,
                           errlen, setup);
}

static void sqlite_close(struct store *base)
{
    struct sqlite_store *store = sqlite_of(base);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(store->statements[i]);
    sqlite3_close(store->db);
    free(store);
}

static int sqlite_begin(struct store *base)
{
    struct sqlite_store *store = sqlite_of(base);
    return run(store, ST_BEGIN);
}

static int sqlite_commit(struct store *base)
{
    struct sqlite_store *store = sqlite_of(base);
    return run(store, ST_COMMIT);
}

static void sqlite_rollback(struct store *base)
{
    struct sqlite_store *store = sqlite_of(base);
    /* After some errors SQLite has already rolled back; ROLLBACK then fails harmlessly. */
    if (!sqlite3_get_autocommit(store->db)) run(store, ST_ROLLBACK);
}

static int sqlite_savepoint(struct store *base)
{
    struct sqlite_store *store = sqlite_of(base);
    return run(store, ST_SAVEPOINT);
}

static int sqlite_release_savepoint(struct store *base)
{
    struct sqlite_store *store = sqlite_of(base);
    return run(store, ST_RELEASE);
}

static void sqlite_rollback_savepoint(struct store *base)
{
    struct sqlite_store *store = sqlite_of(base);
    if (run(store, ST_ROLLBACK_TO) == STORE_OK) run(store, ST_RELEASE);
}

static void bind_text(sqlite3_stmt *st, int index, const char *text)
{
    sqlite3_bind_text(st, index, text, -1, SQLITE_STATIC);
}

static int sqlite_find_sku(struct store *base, const char *sku, char id[UUID_TEXT_LEN + 1])
{
    struct sqlite_store *store = sqlite_of(base);
    sqlite3_stmt *st = store->statements[ST_ID_BY_SKU];
    bind_text(st, 1, sku);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(id, UUID_TEXT_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = STORE_OK;
    } else {
        rc = rc == SQLITE_DONE ? STORE_NOT_FOUND : fail(store, STATEMENTS[ST_ID_BY_SKU].sql);
    }
    sqlite3_reset(st);
    return rc;
}

static int sqlite_insert_product(struct store *base, const struct product *p,
                                 char existing_id[UUID_TEXT_LEN + 1])
{
    struct sqlite_store *store = sqlite_of(base);
    sqlite3_stmt *st = store->statements[ST_INSERT_PRODUCT];
    bind_text(st, 1, p->id);
    bind_text(st, 2, p->sku);
    bind_text(st, 3, p->name);
    sqlite3_bind_int64(st, 4, p->price_cents);
    sqlite3_bind_int64(st, 5, p->stock);
    sqlite3_bind_int64(st, 6, p->version);
    bind_text(st, 7, p->created_at);
    bind_text(st, 8, p->updated_at);
    int rc = sqlite3_step(st);
    int extended = sqlite3_extended_errcode(store->db);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return STORE_OK;
    if (extended == SQLITE_CONSTRAINT_UNIQUE || extended == SQLITE_CONSTRAINT_PRIMARYKEY) {
        if (sqlite_find_sku(&store->base, p->sku, existing_id) == STORE_OK) return STORE_DUPLICATE;
    }
    return fail(store, "insert product");
}

static int sqlite_append_event(struct store *base, const struct product *p,
                               const struct store_new_event *event, int64_t *seq)
{
    struct sqlite_store *store = sqlite_of(base);
    sqlite3_stmt *st = store->statements[ST_INSERT_EVENT];
    bind_text(st, 1, p->id);
    bind_text(st, 2, event->type);
    sqlite3_bind_int64(st, 3, p->version);
    sqlite3_bind_text(st, 4, event->payload, (int)event->payload_len, SQLITE_STATIC);
    bind_text(st, 5, event->recorded_at);
    bind_text(st, 6, event->nonce);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return fail(store, "append event");
    *seq = sqlite3_last_insert_rowid(store->db);
    return STORE_OK;
}

static int query_int64(struct sqlite_store *store, enum statement which, int64_t *out)
{
    sqlite3_stmt *st = store->statements[which];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? STORE_OK : fail(store, STATEMENTS[which].sql);
}

static int sqlite_head_seq(struct store *base, int64_t *seq)
{
    struct sqlite_store *store = sqlite_of(base);
    return query_int64(store, ST_HEAD_SEQ, seq);
}

static int sqlite_last_seq_taken(struct store *base, int64_t *seq)
{
    struct sqlite_store *store = sqlite_of(base);
    return query_int64(store, ST_LAST_SEQ_TAKEN, seq);
}

static int sqlite_count_products(struct store *base, int64_t *count)
{
    struct sqlite_store *store = sqlite_of(base);
    return query_int64(store, ST_COUNT_PRODUCTS, count);
}

static int sqlite_read_events(struct store *base, int64_t after_seq, int limit, store_event_fn fn,
                              void *arg)
{
    struct sqlite_store *store = sqlite_of(base);
    sqlite3_stmt *st = store->statements[ST_EVENTS_AFTER];
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int(st, 2, limit);
    int visited = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_event event = {
            .seq = sqlite3_column_int64(st, 0),
            .type = (const char *)sqlite3_column_text(st, 1),
            .product_id = (const char *)sqlite3_column_text(st, 2),
            .version = sqlite3_column_int64(st, 3),
            .payload = (const char *)sqlite3_column_text(st, 4),
            .payload_len = (size_t)sqlite3_column_bytes(st, 4),
            .recorded_at = (const char *)sqlite3_column_text(st, 5),
            .nonce = (const char *)sqlite3_column_text(st, 6),
        };
        visited++;
        if (fn(&event, arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? visited : fail(store, "read events");
}

static int sqlite_snapshot_begin(struct store *base, int64_t *head_seq)
{
    struct sqlite_store *store = sqlite_of(base);
    if (run(store, ST_SNAPSHOT_BEGIN) < 0) return STORE_ERR;
    /* The first read fixes the snapshot that every later read of this transaction sees. */
    if (sqlite_head_seq(&store->base, head_seq) < 0) {
        sqlite_snapshot_end(&store->base);
        return STORE_ERR;
    }
    return STORE_OK;
}

/* A text column into "out" ("cap" bytes), cut to fit and NUL-terminated. A memcpy, not a
 * snprintf: every change reads a product row, five of these. */
static void copy_column(sqlite3_stmt *st, int column, char *out, size_t cap)
{
    const char *text = (const char *)sqlite3_column_text(st, column);
    size_t len = text ? (size_t)sqlite3_column_bytes(st, column) : 0;
    if (len >= cap) len = cap - 1;
    if (len) memcpy(out, text, len);
    out[len] = '\0';
}

/* Reads a row of SELECT PRODUCT_COLUMNS. */
static void read_product_row(sqlite3_stmt *st, struct product *p)
{
    copy_column(st, 0, p->id, sizeof(p->id));
    copy_column(st, 1, p->sku, sizeof(p->sku));
    copy_column(st, 2, p->name, sizeof(p->name));
    p->price_cents = sqlite3_column_int64(st, 3);
    p->stock = sqlite3_column_int64(st, 4);
    p->version = sqlite3_column_int64(st, 5);
    copy_column(st, 6, p->created_at, sizeof(p->created_at));
    copy_column(st, 7, p->updated_at, sizeof(p->updated_at));
}

static int sqlite_scan_products(struct store *base, const char *after_id, int limit,
                                store_product_fn fn, void *arg)
{
    struct sqlite_store *store = sqlite_of(base);
    sqlite3_stmt *st = store->statements[ST_SCAN_PRODUCTS];
    bind_text(st, 1, after_id);
    sqlite3_bind_int(st, 2, limit);
    int visited = 0, rc;
    struct product p;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_product_row(st, &p);
        visited++;
        if (fn(&p, arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? visited : fail(store, "scan products");
}

static void sqlite_snapshot_end(struct store *base)
{
    struct sqlite_store *store = sqlite_of(base);
    sqlite_rollback(&store->base);
}

static int sqlite_get_product(struct store *base, const char *id, struct product *out)
{
    struct sqlite_store *store = sqlite_of(base);
    sqlite3_stmt *st = store->statements[ST_GET_PRODUCT];
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) read_product_row(st, out);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return STORE_OK;
    return rc == SQLITE_DONE ? STORE_NOT_FOUND : fail(store, STATEMENTS[ST_GET_PRODUCT].sql);
}

static int sqlite_update_product(struct store *base, const struct product *p)
{
    struct sqlite_store *store = sqlite_of(base);
    sqlite3_stmt *st = store->statements[ST_UPDATE_PRODUCT];
    bind_text(st, 1, p->id);
    bind_text(st, 2, p->name);
    sqlite3_bind_int64(st, 3, p->price_cents);
    sqlite3_bind_int64(st, 4, p->stock);
    sqlite3_bind_int64(st, 5, p->version);
    bind_text(st, 6, p->updated_at);
    return run(store, ST_UPDATE_PRODUCT);
}

static int sqlite_delete_product(struct store *base, const char *id)
{
    struct sqlite_store *store = sqlite_of(base);
    bind_text(store->statements[ST_DELETE_PRODUCT], 1, id);
    return run(store, ST_DELETE_PRODUCT);
}

static int sqlite_idempotency_get(struct store *base, const char *key,
                                  struct store_idempotent_response *out)
{
    struct sqlite_store *store = sqlite_of(base);
    unsigned char hash[KEY_HASH_LEN];
    key_sha256(key, strlen(key), hash);
    sqlite3_stmt *st = store->statements[ST_GET_IDEMPOTENCY];
    sqlite3_bind_blob(st, 1, hash, KEY_HASH_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out->fingerprint, 0, sizeof(out->fingerprint));
        if (sqlite3_column_bytes(st, 0) == (int)sizeof(out->fingerprint))
            memcpy(out->fingerprint, sqlite3_column_blob(st, 0), sizeof(out->fingerprint));
        out->status = sqlite3_column_int(st, 1);
        copy_column(st, 2, out->location, sizeof(out->location));
        copy_column(st, 3, out->etag, sizeof(out->etag));
        copy_column(st, 4, out->content_type, sizeof(out->content_type));
        out->body_len = (size_t)sqlite3_column_bytes(st, 5);
        out->body = xmalloc(out->body_len + 1);
        if (out->body_len) memcpy(out->body, sqlite3_column_blob(st, 5), out->body_len);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return STORE_OK;
    return rc == SQLITE_DONE ? STORE_NOT_FOUND : fail(store, STATEMENTS[ST_GET_IDEMPOTENCY].sql);
}

static int sqlite_idempotency_put(struct store *base, const char *key,
                                  const struct store_idempotent_response *response, uint64_t now_ms)
{
    struct sqlite_store *store = sqlite_of(base);
    unsigned char hash[KEY_HASH_LEN];
    key_sha256(key, strlen(key), hash);
    sqlite3_stmt *st = store->statements[ST_PUT_IDEMPOTENCY];
    sqlite3_bind_blob(st, 1, hash, KEY_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, response->fingerprint, sizeof(response->fingerprint), SQLITE_STATIC);
    sqlite3_bind_int(st, 3, response->status);
    bind_text(st, 4, response->location);
    bind_text(st, 5, response->etag);
    bind_text(st, 6, response->content_type);
    sqlite3_bind_blob(st, 7, response->body ? response->body : "", (int)response->body_len,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)now_ms);
    int rc = sqlite3_step(st);
    int extended = sqlite3_extended_errcode(store->db);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return STORE_OK;
    if (extended == SQLITE_CONSTRAINT_UNIQUE) return STORE_CONFLICT;
    return fail(store, STATEMENTS[ST_PUT_IDEMPOTENCY].sql);
}

static int sqlite_idempotency_count(struct store *base, int64_t *count)
{
    struct sqlite_store *store = sqlite_of(base);
    return query_int64(store, ST_COUNT_IDEMPOTENCY, count);
}

/* Runs the bound statement "which" in a transaction of its own. */
static int run_alone(struct sqlite_store *store, enum statement which)
{
    if (sqlite_begin(&store->base) < 0) return STORE_ERR;
    if (run(store, which) < 0 || sqlite_commit(&store->base) < 0) {
        sqlite_rollback(&store->base);
        return STORE_ERR;
    }
    return STORE_OK;
}

static int sqlite_idempotency_purge(struct store *base, uint64_t before_ms, int *deleted)
{
    struct sqlite_store *store = sqlite_of(base);
    sqlite3_bind_int64(store->statements[ST_PURGE_IDEMPOTENCY], 1, (sqlite3_int64)before_ms);
    if (run_alone(store, ST_PURGE_IDEMPOTENCY) < 0) return STORE_ERR;
    *deleted = sqlite3_changes(store->db); /* COMMIT leaves the DELETE's count */
    return STORE_OK;
}

static int sqlite_probe_write(struct store *base, uint64_t now_ms)
{
    struct sqlite_store *store = sqlite_of(base);
    sqlite3_bind_int64(store->statements[ST_WRITE_PROBE], 1, (sqlite3_int64)now_ms);
    return run_alone(store, ST_WRITE_PROBE);
}

/* The file is on this machine: nothing to reach. Its schema may have gone back, though. */
static int sqlite_ping(struct store *base)
{
    struct sqlite_store *store = sqlite_of(base);
    int version = 0;
    if (schema_version(store, &version) < 0) return STORE_ERR;
    if (version >= 1 && version < SCHEMA_VERSION) migrate(store, REMIGRATION_WAIT_MS);
    return STORE_OK;
}

/* One instance per database file: it always projects. */
static int sqlite_lead(struct store *base, const char *instance_id, int64_t epoch_above,
                       struct store_leader *out)
{
    (void)base;
    (void)epoch_above;
    out->leading = 1;
    out->epoch = 0;
    snprintf(out->instance_id, sizeof(out->instance_id), "%s", instance_id);
    return STORE_OK;
}

/* The file as SQLite opened it, its links resolved, on this machine: two machines may each
 * have a file at the same path. */
static void sqlite_name_catalog(const struct store *base, char *out, size_t cap)
{
    const struct sqlite_store *store = (const struct sqlite_store *)base;
    const char *file = sqlite3_db_filename(store->db, "main");
    char host[256] = "localhost", path[PATH_MAX];
    gethostname(host, sizeof(host) - 1);
    snprintf(out, cap, "sqlite:%s:%s", host,
             file && realpath(file, path) ? path
             : file                       ? file
                                          : "");
}

/* A lock of the kernel's on the database file, exclusive when "alone", else shared: flock,
 * apart from SQLite's own fcntl locks, and dropped when the process ends however it ends, so
 * a catalogd killed with -9 leaves none. The descriptor stays open for the process's life:
 * closing a descriptor of the file would drop every fcntl lock the process holds on it,
 * SQLite's included. */
static int sqlite_claim_server(struct store *base, int alone)
{
    struct sqlite_store *store = sqlite_of(base);
    const char *file = sqlite3_db_filename(store->db, "main");
    int fd = file && file[0] ? open(file, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) {
        snprintf(base->err, sizeof(base->err), "cannot open %s to claim it: %s", file ? file : "",
                 strerror(errno));
        return -1;
    }
    if (flock(fd, (alone ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) return 0;
    if (errno != EWOULDBLOCK) { /* no lock to be had here (ENOLCK...), not another server */
        snprintf(base->err, sizeof(base->err), "cannot lock %s to claim it: %s", file,
                 strerror(errno));
        return -1;
    }
    snprintf(base->err, sizeof(base->err),
             "another catalogd serves %s%s: several serve one SQLite file only with "
             "--view-cache-mb 0, every one of them (README, Running more than one instance)",
             file, alone ? "" : " with a view cache");
    return -1; /* "fd" stays open: the process exits */
}

static const struct store_backend SQLITE_BACKEND = {
    .name = "sqlite",
    .name_catalog = sqlite_name_catalog,
    .claim_server = sqlite_claim_server,
    .shared = 0,
    .statement_failure_keeps_transaction = 1,
    .close = sqlite_close,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .savepoint = sqlite_savepoint,
    .release_savepoint = sqlite_release_savepoint,
    .rollback_savepoint = sqlite_rollback_savepoint,
    .insert_product = sqlite_insert_product,
    .get_product = sqlite_get_product,
    .find_sku = sqlite_find_sku,
    .update_product = sqlite_update_product,
    .delete_product = sqlite_delete_product,
    .idempotency_get = sqlite_idempotency_get,
    .idempotency_put = sqlite_idempotency_put,
    .idempotency_purge = sqlite_idempotency_purge,
    .idempotency_count = sqlite_idempotency_count,
    .probe_write = sqlite_probe_write,
    .ping = sqlite_ping,
    .append_event = sqlite_append_event,
    .head_seq = sqlite_head_seq,
    .last_seq_taken = sqlite_last_seq_taken,
    .count_products = sqlite_count_products,
    .read_events = sqlite_read_events,
    .snapshot_begin = sqlite_snapshot_begin,
    .scan_products = sqlite_scan_products,
    .snapshot_end = sqlite_snapshot_end,
    .lead = sqlite_lead,
};
