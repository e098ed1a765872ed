/* store_pg.c - PostgreSQL backend of the write model (store.h, through store_backend.h), over
 * libpq, for any number of catalogd instances sharing one database. With store_sqlite.c, the
 * only place catalogd has SQL.
 * Invariants: every write transaction takes the write lock first, so the write transactions of
 * all instances run one at a time and events.seq is commit order, without gaps; every call
 * returns within its deadline whatever the server does (stopped, frozen, restarting), and a
 * broken connection is replaced on a later call, with backoff.
 *
 * Why a lock and a counter row, not a sequence: a PostgreSQL sequence hands out numbers in
 * the order transactions *begin*, not the order they commit. A reader can see seq 11
 * committed while seq 10 is still in flight, move its checkpoint past 10, and never apply it
 * (the systems that papered over this with gap timeouts lost events: Marten issue #4952).
 * Here store_begin takes pg_advisory_xact_lock(WRITE_LOCK) before anything else: write
 * transactions of every instance queue on it, and PostgreSQL releases a transaction's locks
 * only after its commit is visible to every new snapshot. So when transaction B gets a seq
 * after transaction A, A has committed (or rolled back) already, and any snapshot that sees B
 * sees A: seq order is commit order, by construction, with no timeout anywhere. The seq
 * itself comes from the one-row table event_counter (UPDATE ... RETURNING, in the INSERT of
 * the event): cheap, since no other writer can be waiting on that row, and undone with the
 * command's SAVEPOINT (a run of creates, one statement, takes seqs only for the rows that went
 * in), so seqs have no gaps (the row lock would order commits by itself too, if anyone wrote
 * events without the advisory lock). Group commit amortizes the lock: one transaction per
 * batch of commands. The same serialization makes every rule of the writer (a unique SKU,
 * stock never below zero, If-Match, one execution per Idempotency-Key) hold across instances,
 * since each transaction reads what the previous one committed.
 * The lock is not NOTIFY: nothing here takes a global lock at commit time. */
#include "command/store_backend.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/redis_url.h"
#include "common/xmalloc.h"

/* Advisory locks of catalogd: the two-int form, (LOCK_CLASS, n); LOCK_CLASS is "cata". */
#define LOCK_CLASS   "1667331169"
#define WRITE_LOCK   "1" /* transaction-level: one write transaction at a time */
#define MIGRATE_LOCK "2" /* transaction-level: one schema migration at a time */
#define LEADER_LOCK  "3" /* session-level: the instance that projects */
/* Advisory locks belong to a database: another catalog's database on the same server has
 * a leader lock of its own, which is not this one's to look at (nor to end). */
#define LEADER_LOCK_HELD                                                                           \
    "locktype = 'advisory' AND granted AND classid = " LOCK_CLASS " AND objid = " LEADER_LOCK      \
    " AND objsubid = 2 AND database = (SELECT oid FROM pg_database"                                \
    " WHERE datname = current_database())"

/* The leader renews its heartbeat at every store_lead (every 200 ms). One that stops for
 * longer than this (frozen by SIGSTOP, or its host cut off while its session lingers on the
 * server: without traffic PostgreSQL notices a dead peer only after TCP keepalives, hours by
 * default) has its session ended by the next instance that asks, which releases the lock. */
#define LEADER_LEASE_MS 1500

/* Deadlines, client side: a call that gets no answer in time drops its connection (the server
 * then rolls back what it had; client_connection_check_interval makes it notice soon). The
 * server-side limits are set a little shorter, so that usually the server ends a slow
 * statement itself and the connection survives. */
#define CALL_TIMEOUT_MS      3000
#define CONNECT_TIMEOUT_MS   2000
#define PING_TIMEOUT_MS      1000
#define MIGRATION_TIMEOUT_MS 60000
#define REMIGRATION_LOCK_MS  1000 /* a running writer's wait for locks: commands wait behind it */
#define RECONNECT_MIN_MS     250
#define RECONNECT_MAX_MS     2000
#define KEY_HASH_LEN         32 /* SHA-256 */
#define MAX_DEFERRED         4  /* statements sent ahead of the next wait (see defer) */
#define STATEMENT_NAME_LEN   16 /* "catalogd_" and a statement's number */

/* "cannot execute ... in a read-only transaction" */
#define SQLSTATE_READ_ONLY_TRANSACTION "25006"

/* statement_timeout and lock_timeout end a statement stuck behind the server or behind
 * another instance's write lock. idle_in_transaction_session_timeout ends the session of an
 * instance frozen in a transaction (SIGSTOP, a partition): it holds the write lock, and every
 * other instance waits for it. client_connection_check_interval: a statement whose client has
 * gone stops within a second. default_transaction_isolation: a write transaction reads what
 * the one before it committed once it holds the write lock, which a database whose default is
 * REPEATABLE READ or SERIALIZABLE would refuse as a serialization failure (its snapshot is
 * taken by the statement that waits for the lock); snapshots that must be repeatable say so
 * in their BEGIN. */
#define SESSION_COMMON                                                                             \
    "SET statement_timeout = 2500; SET lock_timeout = 2000;"                                       \
    " SET client_connection_check_interval = 1000;"                                                \
    " SET default_transaction_isolation = 'read committed';"
static const char SESSION_WRITER[] =
    SESSION_COMMON " SET idle_in_transaction_session_timeout = 5000; SET synchronous_commit = ";
/* A reader holds no write lock; its snapshot (rebuild, verify) may wait on Redis a while. */
static const char SESSION_READER[] =
    SESSION_COMMON " SET idle_in_transaction_session_timeout = 60000; SET synchronous_commit = on";

/* The schema as numbered steps, recorded in schema_version; each step runs in its own
 * transaction under the migration lock, so instances starting at the same moment apply each
 * step once. A step that has shipped is never edited: a change is a new step. The same
 * tables, columns and meaning as store_sqlite.c (whose step 2 is this step 1): money in
 * integer cents, the SHA-256 columns as bytea, ids and SKUs compared byte by byte (COLLATE
 * "C", as SQLite does, so scans in id order are creation order). Timestamps stay RFC 3339
 * text, and payload is the view's JSON text as served, byte for byte (not jsonb). */
static const char MIGRATION_1[] =
    "CREATE TABLE products ("
    "  id text COLLATE \"C\" PRIMARY KEY,"
    "  sku text COLLATE \"C\" NOT NULL UNIQUE,"
    "  name text NOT NULL,"
    "  price_cents bigint NOT NULL CHECK (price_cents BETWEEN 0 AND 99999999999),"
    "  stock bigint NOT NULL CHECK (stock BETWEEN 0 AND 2147483647),"
    "  version bigint NOT NULL CHECK (version >= 1),"
    "  created_at text NOT NULL,"
    "  updated_at text NOT NULL"
    ");"
    "CREATE TABLE events ("
    "  seq bigint PRIMARY KEY,"
    "  product_id text COLLATE \"C\" NOT NULL,"
    "  type text NOT NULL CHECK (type IN"
    "    ('ProductCreated','ProductUpdated','StockAdjusted','ProductDeleted')),"
    "  version bigint NOT NULL,"
    "  payload text NOT NULL,"
    "  recorded_at text NOT NULL"
    ");"
    "CREATE TABLE event_counter ("
    "  id int PRIMARY KEY CHECK (id = 1),"
    "  last_seq bigint NOT NULL"
    ");"
    "INSERT INTO event_counter VALUES (1, 0);"
    "CREATE TABLE idempotency_keys ("
    "  key_sha256 bytea PRIMARY KEY CHECK (length(key_sha256) = 32),"
    "  fingerprint bytea NOT NULL CHECK (length(fingerprint) = 32),"
    "  status int NOT NULL,"
    "  location text NOT NULL,"
    "  etag text NOT NULL,"
    "  content_type text NOT NULL,"
    "  body bytea NOT NULL,"
    "  created_at_ms bigint NOT NULL"
    ");"
    "CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at_ms);"
    "CREATE TABLE write_probe ("
    "  id int PRIMARY KEY CHECK (id = 1),"
    "  probed_at_ms bigint NOT NULL"
    ");"
    "CREATE TABLE projector_leader ("
    "  id int PRIMARY KEY CHECK (id = 1),"
    "  epoch bigint NOT NULL,"
    "  instance_id text NOT NULL,"
    "  since timestamptz NOT NULL,"
    "  heartbeat timestamptz NOT NULL"
    ");"
    "INSERT INTO projector_leader VALUES (1, 0, '', now(), now());";

/* A name of the catalog that its database keeps, for the read model's holder key and the
 * instances' channel (projection/prefix_hold.h): the same whatever URI an instance spells
 * the database with, and another for another database, on this server or another. */
static const char MIGRATION_2[] =
    "CREATE TABLE catalog_identity ("
    "  id int PRIMARY KEY CHECK (id = 1),"
    "  catalog text NOT NULL"
    ");"
    "INSERT INTO catalog_identity VALUES (1, gen_random_uuid()::text);";

/* Every event's nonce (domain/event.h); rows already there have none. */
static const char MIGRATION_3[] = "ALTER TABLE events ADD COLUMN nonce text NOT NULL DEFAULT '';";

static const char *const MIGRATIONS[] = {MIGRATION_1, MIGRATION_2, MIGRATION_3}; /* step n: [n-1] */
#define SCHEMA_VERSION ((int)(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0])))

/* The next seq: the counter's, or after the log's head if a row was appended without the
 * counter (by hand, a restored dump): a foreign row must not make every later append collide
 * with it. */
#define TAKE_SEQS(count)                                                                           \
    "UPDATE event_counter SET last_seq = GREATEST(last_seq,"                                       \
    " (SELECT coalesce(max(seq), 0) FROM events)) + " count
#define TAKE_NEXT_SEQ         TAKE_SEQS("1")
#define TAKE_SEQS_OF_PRODUCTS TAKE_SEQS("(SELECT count(*) FROM product)") /* ST_CREATE_PRODUCTS */

/* Prepared once per connection (again after a reconnect), indexed by enum statement. */
enum statement {
    ST_INSERT_PRODUCT,
    ST_ID_BY_SKU,
    ST_INSERT_EVENT,
    ST_CREATE_PRODUCT,
    ST_CREATE_PRODUCTS,
    ST_HEAD_SEQ,
    ST_LAST_SEQ_TAKEN,
    ST_COUNT_PRODUCTS,
    ST_EVENTS_AFTER,
    ST_SCAN_PRODUCTS,
    ST_GET_PRODUCT,
    ST_UPDATE_PRODUCT,
    ST_DELETE_PRODUCT,
    ST_GET_IDEMPOTENCY,
    ST_PUT_IDEMPOTENCY,
    ST_PURGE_IDEMPOTENCY,
    ST_COUNT_IDEMPOTENCY,
    ST_WRITE_PROBE,
    ST_PING,
    ST_LEAD_RENEW,
    ST_LEAD_TRY,
    ST_LEAD_CLAIM,
    ST_LEAD_RAISE,
    ST_LEAD_READ,
    ST_LEAD_EVICT,
    ST_COUNT,
};

#define PRODUCT_COLUMNS "id, sku, name, price_cents, stock, version, created_at, updated_at"

enum { FOR_WRITER = 1, FOR_READERS = 2 };

/* Each statement, which connections prepare it, and whether a call that found its connection
 * broken (not slow) may run once more on a new one: only for reads and idempotent writes,
 * outside a transaction. The leader's statements never: a new session does not hold the lock. */
static const struct {
    const char *sql;
    int users;
    int retry;
} STATEMENTS[ST_COUNT] = {
    [ST_INSERT_PRODUCT] = {"INSERT INTO products (id, sku, name, price_cents, stock, version,"
                           " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                           " ON CONFLICT (sku) DO NOTHING",
                           FOR_WRITER, 0},
    [ST_ID_BY_SKU] = {"SELECT id FROM products WHERE sku = $1", FOR_WRITER | FOR_READERS, 1},
    [ST_INSERT_EVENT] = {"WITH next AS (" TAKE_NEXT_SEQ " WHERE id = 1 RETURNING last_seq)"
                         " INSERT INTO events (seq, product_id, type, version, payload,"
                         " recorded_at, nonce) SELECT last_seq, $1::text, $2::text, $3::bigint,"
                         " $4::text, $5::text, $6::text FROM next RETURNING seq",
                         FOR_WRITER, 0},
    /* ST_INSERT_PRODUCT, then ST_INSERT_EVENT when a row went in, as one statement: one row
     * (the seq), or none when the sku was taken (and nothing was written). */
    [ST_CREATE_PRODUCT] = {"WITH product AS (INSERT INTO products (id, sku, name, price_cents,"
                           " stock, version, created_at, updated_at)"
                           " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                           " ON CONFLICT (sku) DO NOTHING RETURNING id, version),"
                           " next AS (" TAKE_NEXT_SEQ
                           " WHERE id = 1 AND EXISTS (SELECT FROM product) RETURNING last_seq)"
                           " INSERT INTO events (seq, product_id, type, version, payload,"
                           " recorded_at, nonce) SELECT next.last_seq, product.id, $9::text,"
                           " product.version, $10::text, $11::text, $12::text FROM next, product"
                           " RETURNING seq",
                           FOR_WRITER, 0},
    /* ST_CREATE_PRODUCT for each row of the arrays, in their order: a sku taken by an earlier
     * row (or before) skips its row, the rows that went in take the next seqs in that order.
     * Returns (product_id, seq) of each row that went in. */
    [ST_CREATE_PRODUCTS] =
        {"WITH new_rows AS (SELECT id COLLATE \"C\" AS id, sku COLLATE \"C\" AS sku,"
         " name, price_cents, stock, version, created_at, updated_at, payload,"
         " recorded_at, nonce, ord FROM unnest($1::text[], $2::text[],"
         " $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[],"
         " $8::text[], $10::text[], $11::text[], $12::text[]) WITH ORDINALITY"
         " AS u (" PRODUCT_COLUMNS ", payload, recorded_at, nonce, ord)),"
         " product AS (INSERT INTO products (" PRODUCT_COLUMNS ")"
         " SELECT " PRODUCT_COLUMNS " FROM new_rows ORDER BY ord"
         " ON CONFLICT (sku) DO NOTHING RETURNING id),"
         " made AS (SELECT new_rows.*, row_number() OVER (ORDER BY ord) AS nth,"
         " count(*) OVER () AS made FROM new_rows JOIN product USING (id)),"
         " next AS (" TAKE_SEQS_OF_PRODUCTS " WHERE id = 1"
         " AND EXISTS (SELECT FROM product) RETURNING last_seq)"
         " INSERT INTO events (seq, product_id, type, version, payload,"
         " recorded_at, nonce) SELECT next.last_seq - made.made + made.nth,"
         " made.id, $9::text, made.version, made.payload, made.recorded_at,"
         " made.nonce FROM next, made RETURNING product_id, seq",
         FOR_WRITER, 0},
    [ST_HEAD_SEQ] = {"SELECT coalesce(max(seq), 0) FROM events", FOR_WRITER | FOR_READERS, 1},
    [ST_LAST_SEQ_TAKEN] = {"SELECT last_seq FROM event_counter WHERE id = 1", FOR_WRITER, 1},
    [ST_COUNT_PRODUCTS] = {"SELECT count(*) FROM products", FOR_WRITER | FOR_READERS, 1},
    [ST_EVENTS_AFTER] = {"SELECT seq, type, product_id, version, payload, recorded_at, nonce"
                         " FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                         FOR_WRITER | FOR_READERS, 1},
    [ST_SCAN_PRODUCTS] = {"SELECT " PRODUCT_COLUMNS " FROM products WHERE id > $1 ORDER BY id"
                          " LIMIT $2",
                          FOR_WRITER | FOR_READERS, 1},
    [ST_GET_PRODUCT] = {"SELECT " PRODUCT_COLUMNS " FROM products WHERE id = $1",
                        FOR_WRITER | FOR_READERS, 1},
    [ST_UPDATE_PRODUCT] = {"UPDATE products SET name = $2, price_cents = $3, stock = $4,"
                           " version = $5, updated_at = $6 WHERE id = $1",
                           FOR_WRITER, 0},
    [ST_DELETE_PRODUCT] = {"DELETE FROM products WHERE id = $1", FOR_WRITER, 0},
    [ST_GET_IDEMPOTENCY] = {"SELECT fingerprint, status, location, etag, content_type, body"
                            " FROM idempotency_keys WHERE key_sha256 = $1",
                            FOR_WRITER, 1},
    [ST_PUT_IDEMPOTENCY] = {"INSERT INTO idempotency_keys (key_sha256, fingerprint, status,"
                            " location, etag, content_type, body, created_at_ms)"
                            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                            " ON CONFLICT (key_sha256) DO NOTHING",
                            FOR_WRITER, 0},
    [ST_PURGE_IDEMPOTENCY] = {"DELETE FROM idempotency_keys WHERE created_at_ms < $1", FOR_WRITER,
                              0},
    [ST_COUNT_IDEMPOTENCY] = {"SELECT count(*) FROM idempotency_keys", FOR_WRITER, 1},
    [ST_WRITE_PROBE] = {"INSERT INTO write_probe (id, probed_at_ms) VALUES (1, $1)"
                        " ON CONFLICT (id) DO UPDATE SET probed_at_ms = excluded.probed_at_ms",
                        FOR_WRITER, 0},
    [ST_PING] = {"SELECT coalesce(max(version), 0) FROM schema_version", FOR_WRITER, 1},
    [ST_LEAD_RENEW] = {"UPDATE projector_leader SET heartbeat = clock_timestamp()"
                       " WHERE id = 1 AND epoch = $1 AND EXISTS (SELECT 1 FROM pg_locks WHERE"
                       " " LEADER_LOCK_HELD " AND pid = pg_backend_pid()) RETURNING epoch",
                       FOR_READERS, 0},
    [ST_LEAD_TRY] = {"SELECT pg_try_advisory_lock(" LOCK_CLASS ", " LEADER_LOCK ")", FOR_READERS,
                     0},
    [ST_LEAD_CLAIM] = {"UPDATE projector_leader SET epoch = GREATEST(epoch, $2) + 1,"
                       " instance_id = $1,"
                       " since = now(), heartbeat = clock_timestamp() WHERE id = 1 RETURNING epoch",
                       FOR_READERS, 0},
    [ST_LEAD_RAISE] = {"UPDATE projector_leader SET epoch = GREATEST(epoch, $2) + 1,"
                       " heartbeat = clock_timestamp() WHERE id = 1 AND epoch = $1 AND EXISTS"
                       " (SELECT 1 FROM pg_locks WHERE " LEADER_LOCK_HELD
                       " AND pid = pg_backend_pid()) RETURNING epoch",
                       FOR_READERS, 0},
    [ST_LEAD_READ] = {"SELECT epoch, instance_id,"
                      " (extract(epoch FROM clock_timestamp() - heartbeat) * 1000)::bigint"
                      " FROM projector_leader WHERE id = 1",
                      FOR_READERS, 0},
    [ST_LEAD_EVICT] =
        {"SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE " LEADER_LOCK_HELD
         " AND pid <> pg_backend_pid()",
         FOR_READERS, 0},
};

struct pg_store {
    struct store base; /* first: store.c sees only this */
    char *uri;
    int reader;
    enum store_durability durability;
    PGconn *conn;         /* NULL while disconnected */
    int in_transaction;   /* BEGIN sent and not yet ended: no silent reconnect */
    int lost_by_timeout;  /* the last drop was a deadline, not a broken connection */
    int commit_sent;      /* the write transaction's COMMIT went out (its outcome may be known) */
    int lost_whole;       /* the write transaction's connection broke before its COMMIT went */
    int migrated;         /* the schema is this build's (the writer migrates once) */
    uint64_t retry_at_ms; /* no connection attempt before (monotonic clock) */
    int backoff_ms;       /* the wait after the next failed attempt */
    char last_error[192]; /* why the last connection attempt failed, or the last was given up */
    int leading;          /* this session holds LEADER_LOCK */
    int64_t epoch;        /* the epoch it claimed then */
    int pipelined;        /* the writer's connection, in libpq's pipeline mode (see defer) */
    int deferred;         /* statements sent whose results are not read yet */
    const char *deferred_what[MAX_DEFERRED]; /* what each of them does, for its error */
    char catalog[256]; /* the catalog's name and place (read_catalog), "" until read */
};

static struct pg_store *pg_of(struct store *base)
{
    return (struct pg_store *)base;
}

/* Copies a libpq message (often several lines, ending in a newline) as one line. */
static void one_line(char *out, size_t cap, const char *message)
{
    snprintf(out, cap, "%s", message && message[0] ? message : "unknown error");
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
    size_t len = strlen(out);
    while (len > 0 && out[len - 1] == ' ')
        out[--len] = '\0';
    char *double_space;
    while ((double_space = strstr(out, "  ")))
        memmove(double_space, double_space + 1, strlen(double_space + 1) + 1);
}

/* Copies "text" into "out" ("cap" bytes), cut short if it must be. */
static void copy_text(char *out, size_t cap, const char *text)
{
    size_t len = strnlen(text, cap - 1);
    memcpy(out, text, len);
    out[len] = '\0';
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* "relation already exists, skipping" and the like: not for stderr */
}

/* Closes the connection; a session lock it held is gone with it. */
static void drop(struct pg_store *store)
{
    PQfinish(store->conn);
    store->conn = NULL;
    store->leading = 0;
    store->pipelined = 0;
    store->deferred = 0;
}

/* Records "what: why" as the store's error. "what" is often a statement's SQL, and some are
 * longer than the whole message: only their beginning is kept, so that the reason is not cut. */
static void set_error(struct pg_store *store, const char *what, const char *why)
{
    enum { WHAT_SHOWN = 64 };
    snprintf(store->base.err, sizeof(store->base.err), "%.*s%s: %s", WHAT_SHOWN, what,
             strlen(what) > WHAT_SHOWN ? "..." : "", why);
}

/* The connection failed during "what" (timed out when "timeout"): records why and drops it. */
static void lost(struct pg_store *store, const char *what, int timeout)
{
    char why[160];
    if (timeout)
        snprintf(why, sizeof(why), "PostgreSQL did not answer in time");
    else
        one_line(why, sizeof(why), store->conn ? PQerrorMessage(store->conn) : NULL);
    set_error(store, what, why);
    store->lost_by_timeout = timeout;
    store->lost_whole = store->in_transaction && !timeout && !store->commit_sent;
    if (timeout) store->retry_at_ms = clock_mono_ms() + RECONNECT_MIN_MS;
    drop(store);
}

/* Waits for "events" on the connection's socket until "deadline_ms" (monotonic). Returns 1
 * when ready, 0 at the deadline, -1 on an error of poll. */
static int wait_socket(PGconn *conn, short events, uint64_t deadline_ms)
{
    for (;;) {
        uint64_t now = clock_mono_ms();
        if (now >= deadline_ms) return 0;
        struct pollfd fd = {.fd = PQsocket(conn), .events = events};
        if (fd.fd < 0) return -1;
        int n = poll(&fd, 1, (int)(deadline_ms - now));
        if (n > 0) return 1;
        if (n == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

/* Collects every result of what was sent on the connection since the last wait, within
 * "timeout_ms": on a pipelined connection, first those of the deferred statements, then those
 * of the call, up to the pipeline sync this sends. Returns the last result when all succeeded
 * (PQclear it), else NULL with the reason in store->base.err, named after the first statement
 * that failed ("what", or the "what" it was deferred with): a server error leaves the
 * connection up; a broken or silent connection is dropped. */
static PGresult *await_results(struct pg_store *store, const char *what, int timeout_ms)
{
    PGconn *conn = store->conn;
    uint64_t deadline_ms = clock_mono_ms() + (uint64_t)timeout_ms;
    int pipelined = store->pipelined, deferred = store->deferred;
    store->deferred = 0;
    if (pipelined && !PQpipelineSync(conn)) {
        lost(store, what, 0);
        return NULL;
    }
    int flushed;
    while ((flushed = PQflush(conn)) == 1) {
        int ready = wait_socket(conn, POLLIN | POLLOUT, deadline_ms);
        if (ready <= 0 || !PQconsumeInput(conn)) {
            lost(store, what, ready == 0);
            return NULL;
        }
    }
    if (flushed < 0) {
        lost(store, what, 0);
        return NULL;
    }
    /* In pipeline mode each statement's results end with a NULL and the sync ends them all;
     * "statement" counts the NULLs, so it indexes the statements sent. */
    PGresult *last = NULL, *failed = NULL;
    const char *failed_what = what;
    for (int statement = 0;;) {
        while (PQisBusy(conn)) {
            int ready = wait_socket(conn, POLLIN, deadline_ms);
            if (ready <= 0 || !PQconsumeInput(conn)) {
                PQclear(last);
                PQclear(failed);
                lost(store, what, ready == 0);
                return NULL;
            }
        }
        PGresult *result = PQgetResult(conn);
        if (!result) {
            /* Not pipelined: the end. Pipelined: the next statement's results, unless the
             * connection broke (then no sync will come). */
            if (!pipelined || PQstatus(conn) == CONNECTION_BAD) break;
            if (++statement > deferred + MAX_DEFERRED) { /* no sync in sight: libpq is lost */
                PQclear(last);
                PQclear(failed);
                lost(store, what, 0);
                return NULL;
            }
            continue;
        }
        ExecStatusType status = PQresultStatus(result);
        if (status == PGRES_PIPELINE_SYNC) {
            PQclear(result);
            break;
        }
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
            PQclear(last);
            last = result;
        } else if (!failed && status != PGRES_PIPELINE_ABORTED) {
            /* An aborted statement was skipped after a failure, which says why. */
            failed = result;
            if (statement < deferred) failed_what = store->deferred_what[statement];
        } else {
            PQclear(result);
        }
    }
    if (PQstatus(conn) == CONNECTION_BAD) {
        /* Terminated from the server side (pg_terminate_backend, a restart): say so. */
        char why[160];
        one_line(why, sizeof(why),
                 failed ? PQresultErrorMessage(failed) : PQerrorMessage(store->conn));
        set_error(store, failed_what, why);
        store->lost_by_timeout = 0;
        store->lost_whole = store->in_transaction && !store->commit_sent;
        PQclear(last);
        PQclear(failed);
        drop(store);
        return NULL;
    }
    if (failed || !last) {
        char why[160];
        one_line(why, sizeof(why), failed ? PQresultErrorMessage(failed) : "no result");
        set_error(store, failed_what, why);
        const char *sqlstate = failed ? PQresultErrorField(failed, PG_DIAG_SQLSTATE) : NULL;
        int read_only = sqlstate && strcmp(sqlstate, SQLSTATE_READ_ONLY_TRANSACTION) == 0;
        PQclear(last);
        PQclear(failed);
        if (read_only) {
            /* A session offers read-only transactions for its life when it began so (a standby,
             * or default_transaction_read_only set on the database or role): only a new one,
             * after a pause, can find the server writable again. */
            drop(store);
            copy_text(store->last_error, sizeof(store->last_error), store->base.err);
            store->retry_at_ms = clock_mono_ms() + RECONNECT_MIN_MS;
        }
        return NULL;
    }
    return last;
}

/* Sends "sql" without waiting for its result: one statement when the connection is
 * pipelined (the extended protocol takes one at a time), else one or more. Returns STORE_OK,
 * or STORE_ERR with the connection dropped. */
static int send_sql(struct pg_store *store, const char *sql, const char *what)
{
    int sent = store->pipelined ? PQsendQueryParams(store->conn, sql, 0, NULL, NULL, NULL, NULL, 0)
                                : PQsendQuery(store->conn, sql);
    if (sent) return STORE_OK;
    lost(store, what, 0);
    return STORE_ERR;
}

/* Runs "sql" (one or more statements, no parameters) on the connection. Returns the last
 * result, or NULL (see await_results). */
static PGresult *query(struct pg_store *store, const char *sql, const char *what, int timeout_ms)
{
    if (send_sql(store, sql, what) < 0) return NULL;
    return await_results(store, what, timeout_ms);
}

/* Runs "sql" and discards its result. Returns STORE_OK or STORE_ERR. */
static int execute(struct pg_store *store, const char *sql, const char *what, int timeout_ms)
{
    PGresult *result = query(store, sql, what, timeout_ms);
    PQclear(result);
    return result ? STORE_OK : STORE_ERR;
}

/* Opens a connection within CONNECT_TIMEOUT_MS, with the async API (PQconnectdb's own
 * connect_timeout covers each step, not the whole). TCP keepalives and a user timeout make a
 * dead peer an error even while no call is waiting. */
static int connect_now(struct pg_store *store)
{
    static const char *const keywords[] = {
        "connect_timeout",     "keepalives",       "keepalives_idle",
        "keepalives_interval", "keepalives_count", "tcp_user_timeout",
        "application_name",    "dbname",           NULL};
    /* dbname comes last: the URI is expanded there and what it says wins over these. */
    const char *values[] = {"2", "1", "5", "2", "2", "5000", "catalogd", store->uri, NULL};
    uint64_t deadline_ms = clock_mono_ms() + CONNECT_TIMEOUT_MS;
    PGconn *conn = PQconnectStartParams(keywords, values, 1);
    if (!conn) xmalloc_fail();
    PostgresPollingStatusType polling = PGRES_POLLING_WRITING;
    char why[160];
    while (PQstatus(conn) != CONNECTION_BAD && polling != PGRES_POLLING_OK &&
           polling != PGRES_POLLING_FAILED) {
        int ready =
            wait_socket(conn, polling == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline_ms);
        if (ready <= 0) {
            snprintf(why, sizeof(why), "PostgreSQL did not answer within %d ms",
                     CONNECT_TIMEOUT_MS);
            goto fail;
        }
        polling = PQconnectPoll(conn);
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        one_line(why, sizeof(why), PQerrorMessage(conn));
        goto fail;
    }
    PQsetNoticeProcessor(conn, ignore_notice, NULL);
    if (PQsetnonblocking(conn, 1) != 0) {
        one_line(why, sizeof(why), PQerrorMessage(conn));
        goto fail;
    }
    store->conn = conn;
    return STORE_OK;
fail:
    snprintf(store->base.err, sizeof(store->base.err), "%s", why);
    PQfinish(conn);
    return STORE_ERR;
}

/* Applies, in order, every step above the database's schema version, each in its own
 * transaction under MIGRATE_LOCK, which also records its number. Refuses a database newer
 * than this build. At a start, waits as long as locks are held; a running writer's
 * (store_ping), a second at most: its commands wait behind it. */
static int migrate(struct pg_store *store, int running)
{
    int timeout_ms = running ? CALL_TIMEOUT_MS : MIGRATION_TIMEOUT_MS;
    char begin[512];
    snprintf(begin, sizeof(begin),
             "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = %d;"
             " SELECT pg_advisory_xact_lock(" LOCK_CLASS ", " MIGRATE_LOCK ");"
             " CREATE TABLE IF NOT EXISTS schema_version ("
             "  version int PRIMARY KEY,"
             "  applied_at timestamptz NOT NULL DEFAULT now());"
             " SELECT coalesce(max(version), 0) FROM schema_version",
             running ? REMIGRATION_LOCK_MS : 0);
    for (int step = 1; step <= SCHEMA_VERSION; step++) {
        PGresult *result = query(store, begin, "read the schema version", timeout_ms);
        if (!result) goto failed;
        int version = atoi(PQgetvalue(result, 0, 0));
        PQclear(result);
        if (version > SCHEMA_VERSION) {
            snprintf(store->base.err, sizeof(store->base.err),
                     "the database has schema version %d, newer than this catalogd's (%d)", version,
                     SCHEMA_VERSION);
            goto failed;
        }
        if (version < step) {
            char record[96];
            snprintf(record, sizeof(record), "INSERT INTO schema_version (version) VALUES (%d)",
                     step);
            char what[48];
            snprintf(what, sizeof(what), "schema migration %d", step);
            if (execute(store, MIGRATIONS[step - 1], what, timeout_ms) < 0 ||
                execute(store, record, what, timeout_ms) < 0)
                goto failed;
        }
        result = query(store, "COMMIT", "commit a schema migration", timeout_ms);
        int committed = result && strcmp(PQcmdStatus(result), "COMMIT") == 0;
        PQclear(result);
        if (!committed) {
            if (result)
                snprintf(store->base.err, sizeof(store->base.err),
                         "schema migration %d was rolled back", step);
            goto failed;
        }
    }
    return STORE_OK;
failed:
    if (store->conn) PQclear(query(store, "ROLLBACK", "roll back", CALL_TIMEOUT_MS));
    return STORE_ERR;
}

/* The name statement "which" is prepared under, in "name" (STATEMENT_NAME_LEN bytes). */
static const char *statement_name(enum statement which, char *name)
{
    snprintf(name, STATEMENT_NAME_LEN, "catalogd_%d", (int)which);
    return name;
}

/* Prepares this connection's statements: all the writer's, or the readers'. */
static int prepare_all(struct pg_store *store)
{
    for (enum statement i = 0; i < ST_COUNT; i++) {
        if (!(STATEMENTS[i].users & (store->reader ? FOR_READERS : FOR_WRITER))) continue;
        char name[STATEMENT_NAME_LEN];
        if (!PQsendPrepare(store->conn, statement_name(i, name), STATEMENTS[i].sql, 0, NULL)) {
            lost(store, "prepare a statement", 0);
            return STORE_ERR;
        }
        PGresult *result = await_results(store, STATEMENTS[i].sql, CALL_TIMEOUT_MS);
        if (!result) return STORE_ERR;
        PQclear(result);
    }
    return STORE_OK;
}

/* A database whose catalog_identity lost its row (a dump restored without that table's data)
 * gets a new name, by whichever instance's writer comes first; without one, instances that
 * spell the database's URI differently would name different catalogs. */
static const char NAME_IF_UNNAMED[] =
    "INSERT INTO catalog_identity VALUES (1, gen_random_uuid()::text) ON CONFLICT (id) DO NOTHING";

/* Reads the catalog's name, before the connection is pipelined: the one its database keeps
 * (MIGRATION_2), and where the database is, its name and its server's system identifier
 * (which a failover to a replica keeps). A copy restored into another database, here or on
 * another server, keeps the name and is another catalog all the same; so is the database
 * renamed, or restored onto a new server. A role that may not call pg_control_system() (every
 * role may, unless revoked) names it by the database alone. A database of an older schema,
 * read before a writer of this build migrated it, has no name: "" then. */
static int read_catalog(struct pg_store *store)
{
    PGresult *result = query(store, "SELECT to_regclass('catalog_identity') IS NOT NULL",
                             "look for the catalog's name", CALL_TIMEOUT_MS);
    if (!result) return STORE_ERR;
    int present = PQntuples(result) == 1 && strcmp(PQgetvalue(result, 0, 0), "t") == 0;
    PQclear(result);
    if (!present) return STORE_OK;
    if (!store->reader && execute(store, NAME_IF_UNNAMED, "name the catalog", CALL_TIMEOUT_MS) < 0)
        return STORE_ERR;
    result = query(store,
                   "SELECT catalog, current_database(),"
                   " has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')"
                   " FROM catalog_identity",
                   "read the catalog's name", CALL_TIMEOUT_MS);
    if (!result) return STORE_ERR;
    if (PQntuples(result) != 1) {
        PQclear(result);
        return STORE_OK;
    }
    char cluster[32] = "";
    if (strcmp(PQgetvalue(result, 0, 2), "t") == 0) {
        PGresult *control = query(store, "SELECT system_identifier FROM pg_control_system()",
                                  "read the server's system identifier", CALL_TIMEOUT_MS);
        if (!control) {
            PQclear(result);
            return STORE_ERR;
        }
        snprintf(cluster, sizeof(cluster), "%s", PQgetvalue(control, 0, 0));
        PQclear(control);
    }
    snprintf(store->catalog, sizeof(store->catalog), "%s in database %s of cluster %s",
             PQgetvalue(result, 0, 0), PQgetvalue(result, 0, 1), cluster);
    PQclear(result);
    return STORE_OK;
}

/* Connects, sets up the session, migrates (the writer, once) and prepares the statements. */
static int connect_and_prepare(struct pg_store *store)
{
    if (connect_now(store) < 0) return STORE_ERR;
    char session[sizeof(SESSION_WRITER) + 8];
    snprintf(session, sizeof(session), "%s%s", SESSION_WRITER,
             store->durability == STORE_DURABILITY_FULL ? "on" : "off");
    if (execute(store, store->reader ? SESSION_READER : session, "set up the session",
                CALL_TIMEOUT_MS) < 0)
        goto fail;
    if (!store->reader && !store->migrated) {
        if (migrate(store, 0) < 0) goto fail;
        store->migrated = 1;
    }
    if (prepare_all(store) < 0) goto fail;
    if (!store->catalog[0] && read_catalog(store) < 0) goto fail;
    /* The writer's connection runs pipelined from here on: every call still waits for its
     * own result, but savepoints need not be waited for (see defer). */
    if (!store->reader) {
        if (!PQenterPipelineMode(store->conn)) {
            snprintf(store->base.err, sizeof(store->base.err), "enter pipeline mode: %s",
                     PQerrorMessage(store->conn));
            goto fail;
        }
        store->pipelined = 1;
    }
    return STORE_OK;
fail:
    drop(store);
    return STORE_ERR;
}

/* Makes sure there is a connection: reconnects when there is none, unless a transaction was
 * under way on the lost one (it must be rolled back first) or the last attempt failed less
 * than the backoff ago (250 ms, doubling up to 2 s: a down server is not hammered). */
static int ensure_connected(struct pg_store *store)
{
    if (store->conn) return STORE_OK;
    if (store->in_transaction) {
        snprintf(store->base.err, sizeof(store->base.err),
                 "the connection to PostgreSQL was lost during the transaction");
        return STORE_ERR;
    }
    uint64_t now = clock_mono_ms();
    if (now < store->retry_at_ms) {
        int len = snprintf(store->base.err, sizeof(store->base.err),
                           "not connected to PostgreSQL (next attempt in %" PRIu64 " ms): ",
                           store->retry_at_ms - now);
        copy_text(store->base.err + len, sizeof(store->base.err) - (size_t)len, store->last_error);
        return STORE_ERR;
    }
    if (connect_and_prepare(store) == STORE_OK) {
        store->backoff_ms = 0;
        store->retry_at_ms = 0;
        return STORE_OK;
    }
    store->backoff_ms = store->backoff_ms ? store->backoff_ms * 2 : RECONNECT_MIN_MS;
    if (store->backoff_ms > RECONNECT_MAX_MS) store->backoff_ms = RECONNECT_MAX_MS;
    store->retry_at_ms = clock_mono_ms() + (uint64_t)store->backoff_ms;
    copy_text(store->last_error, sizeof(store->last_error), store->base.err);
    return STORE_ERR;
}

/* Parameters of one call: text, or binary for bytea. */
struct params {
    int count;
    const char *values[12];
    int lengths[12];
    int formats[12];
    char numbers[12][24];
};

static void param_text(struct params *p, const char *text)
{
    p->values[p->count] = text;
    p->lengths[p->count] = 0;
    p->formats[p->count++] = 0;
}

static void param_int(struct params *p, int64_t value)
{
    snprintf(p->numbers[p->count], sizeof(p->numbers[0]), "%" PRId64, value);
    param_text(p, p->numbers[p->count]);
}

static void param_bytes(struct params *p, const void *data, size_t len)
{
    p->values[p->count] = len ? data : ""; /* NULL would be SQL NULL */
    p->lengths[p->count] = (int)len;
    p->formats[p->count++] = 1;
}

/* Sends prepared statement "which" with "p", without waiting. Returns STORE_OK, or STORE_ERR
 * with the connection dropped. */
static int send_prepared(struct pg_store *store, enum statement which, const struct params *p)
{
    char name[STATEMENT_NAME_LEN];
    if (PQsendQueryPrepared(store->conn, statement_name(which, name), p->count, p->values,
                            p->lengths, p->formats, 0))
        return STORE_OK;
    lost(store, STATEMENTS[which].sql, 0);
    return STORE_ERR;
}

/* Runs prepared statement "which" with "p" (NULL: none) within "timeout_ms". Returns its
 * result (PQclear it) or NULL, the reason in store->base.err. A connection found broken (not
 * slow) before the statement could run is replaced once, outside a transaction, for the
 * statements that allow it: a connection killed while idle costs no request. */
static PGresult *call_within(struct pg_store *store, enum statement which, const struct params *p,
                             int timeout_ms)
{
    static const struct params none = {0};
    if (!p) p = &none;
    for (int attempt = 0;; attempt++) {
        if (ensure_connected(store) < 0) return NULL;
        PGresult *result = NULL;
        if (send_prepared(store, which, p) == STORE_OK)
            result = await_results(store, STATEMENTS[which].sql, timeout_ms);
        if (result || store->conn || store->in_transaction || store->lost_by_timeout ||
            !STATEMENTS[which].retry || attempt > 0)
            return result;
    }
}

static PGresult *call(struct pg_store *store, enum statement which, const struct params *p)
{
    return call_within(store, which, p, CALL_TIMEOUT_MS);
}

/* Runs "which" for its effect. Returns STORE_OK or STORE_ERR; "*rows" (when not NULL) gets
 * the number of rows it changed. */
static int call_command(struct pg_store *store, enum statement which, const struct params *p,
                        int64_t *rows)
{
    PGresult *result = call(store, which, p);
    if (!result) return STORE_ERR;
    if (rows) *rows = strtoll(PQcmdTuples(result), NULL, 10);
    PQclear(result);
    return STORE_OK;
}

/* Runs "which", which returns one row of one integer, into "*out". */
static int call_int64(struct pg_store *store, enum statement which, const struct params *p,
                      int64_t *out)
{
    PGresult *result = call(store, which, p);
    if (!result) return STORE_ERR;
    int rc = STORE_OK;
    if (PQntuples(result) == 1)
        *out = strtoll(PQgetvalue(result, 0, 0), NULL, 10);
    else
        rc = STORE_ERR, set_error(store, STATEMENTS[which].sql, "no row");
    PQclear(result);
    return rc;
}

static void pg_close(struct store *base)
{
    struct pg_store *store = pg_of(base);
    drop(store);
    free(store->uri);
    free(store);
}

/* COMMIT. A COMMIT in a failed transaction "succeeds" as a ROLLBACK: the tag tells. When the
 * answer does not come in time the outcome is unknown (the server may have committed): the
 * caller answers 503, and a retry with an Idempotency-Key finds the stored response. */
static int pg_commit(struct store *base)
{
    struct pg_store *store = pg_of(base);
    if (!store->conn) return ensure_connected(store); /* says why */
    store->commit_sent = 1; /* from here on the server may commit, whatever this call sees */
    PGresult *result = query(store, "COMMIT", "commit", CALL_TIMEOUT_MS);
    store->in_transaction = 0;
    if (!result) return STORE_ERR;
    int committed = strcmp(PQcmdStatus(result), "COMMIT") == 0;
    PQclear(result);
    if (committed) return STORE_OK;
    snprintf(store->base.err, sizeof(store->base.err),
             "commit: PostgreSQL rolled the transaction back");
    return STORE_ERR;
}

static void pg_rollback(struct store *base)
{
    struct pg_store *store = pg_of(base);
    /* With no connection the server rolls back by itself. A ROLLBACK outside a transaction
     * only warns. The error message of the failure that led here is kept. */
    if (store->conn && store->in_transaction) {
        char err[STORE_ERR_LEN];
        memcpy(err, store->base.err, sizeof(err));
        PQclear(query(store, "ROLLBACK", "roll back", CALL_TIMEOUT_MS));
        memcpy(store->base.err, err, sizeof(err));
    }
    store->in_transaction = 0;
}

/* Reads the deferred statements' results when MAX_DEFERRED wait already. Returns STORE_OK, or
 * STORE_ERR when one failed (named after "what" if none of them is). */
static int room_to_defer(struct pg_store *store, const char *what)
{
    if (store->deferred < MAX_DEFERRED) return STORE_OK;
    PGresult *result = await_results(store, what, CALL_TIMEOUT_MS);
    PQclear(result);
    return result ? STORE_OK : STORE_ERR;
}

/* Sends "sql", a statement of the transaction whose result the writer does not need (a
 * savepoint, its release), without waiting for it: its result is read with the next call's,
 * in the same round trip, and when it failed that call fails, named after "what". A failed
 * savepoint or release so fails the batch at the next statement instead of at once; the
 * transaction commits nothing either way (a COMMIT waits for every deferred result first).
 * Returns STORE_OK when sent, STORE_ERR when the connection is gone. */
static int defer(struct pg_store *store, const char *sql, const char *what)
{
    if (!store->conn) return ensure_connected(store); /* fails: says why */
    if (!store->pipelined || !store->in_transaction)
        return execute(store, sql, what, CALL_TIMEOUT_MS);
    if (room_to_defer(store, what) < 0 || send_sql(store, sql, what) < 0) return STORE_ERR;
    store->deferred_what[store->deferred++] = what;
    return STORE_OK;
}

/* Runs prepared statement "which", a write whose result the writer does not need, as defer
 * sends its SQL: a product's UPDATE or DELETE goes with the INSERT of its event, in one round
 * trip, and when it failed the INSERT's call fails. */
static int defer_call(struct pg_store *store, enum statement which, const struct params *p)
{
    if (!store->conn) return ensure_connected(store); /* fails: says why */
    if (!store->pipelined || !store->in_transaction) return call_command(store, which, p, NULL);
    const char *what = STATEMENTS[which].sql;
    if (room_to_defer(store, what) < 0 || send_prepared(store, which, p) < 0) return STORE_ERR;
    store->deferred_what[store->deferred++] = what;
    return STORE_OK;
}

/* Drops a connection that the server is closing or closed while it was idle (a restart,
 * pg_terminate_backend, DROP DATABASE): an idle session hears from the server only then, a
 * FATAL message before the end of the stream. Whatever waits to be read means that, even when
 * the end has yet to come: libpq would take the FATAL alone for a notice and the connection
 * for open. */
static void drop_if_closed(struct pg_store *store)
{
    struct pollfd fd = {.fd = PQsocket(store->conn), .events = POLLIN};
    if (fd.fd >= 0 && poll(&fd, 1, 0) == 0) return; /* nothing came: still open */
    drop(store);
}

/* A write transaction: BEGIN and the write lock. On the writer's pipelined connection both
 * are deferred (see defer): they go with the batch's first statement, a round trip less per
 * batch, and a lock or BEGIN that fails fails that statement. So a connection closed while
 * idle is looked for first, and replaced, as it was when BEGIN waited for its answer. */
static int pg_begin(struct store *base)
{
    struct pg_store *store = pg_of(base);
    const char *what = "begin a write transaction";
    const char *lock = "SELECT pg_advisory_xact_lock(" LOCK_CLASS ", " WRITE_LOCK ")";
    for (int attempt = 0;; attempt++) {
        store->in_transaction = 0;
        store->commit_sent = 0;
        store->lost_whole = 0;
        if (store->conn) drop_if_closed(store);
        if (ensure_connected(store) < 0) return STORE_ERR;
        store->in_transaction = 1; /* even if the lock fails: the caller rolls back */
        if (store->pipelined) {
            if (defer(store, "BEGIN", what) == STORE_OK && defer(store, lock, what) == STORE_OK)
                return STORE_OK;
        } else if (send_sql(store, "BEGIN", what) == STORE_OK &&
                   send_sql(store, lock, what) == STORE_OK) {
            PGresult *result = await_results(store, what, CALL_TIMEOUT_MS);
            PQclear(result);
            if (result) return STORE_OK;
        }
        /* A connection that broke while idle (a server restart, pg_terminate_backend): once
         * more on a new one. A slow server is not asked twice. */
        if (store->conn || store->lost_by_timeout || attempt > 0) return STORE_ERR;
    }
}

/* See store.h. A connection that breaks in a write transaction breaks it whole: the server
 * rolls back what a session ended without COMMIT began. Whatever else broke it (a server
 * restart, pg_terminate_backend, the race between drop_if_closed and the server ending an idle
 * session), a new connection may run it again. Not after a deadline: a slow server is not asked
 * twice, and the old session may still hold the write lock. */
static int pg_transaction_lost_whole(const struct store *base)
{
    const struct pg_store *store = (const struct pg_store *)base;
    return !store->conn && store->lost_whole;
}

static int pg_savepoint(struct store *base)
{
    return defer(pg_of(base), "SAVEPOINT command", "savepoint");
}

static int pg_release_savepoint(struct store *base)
{
    return defer(pg_of(base), "RELEASE command", "release a savepoint");
}

static void pg_rollback_savepoint(struct store *base)
{
    struct pg_store *store = pg_of(base);
    if (!store->conn) return; /* the transaction went with it: the reason told stays */
    if (defer(store, "ROLLBACK TO command", "roll back to a savepoint") == STORE_OK)
        defer(store, "RELEASE command", "roll back to a savepoint");
}

static int pg_find_sku(struct store *base, const char *sku, char id[UUID_TEXT_LEN + 1])
{
    struct pg_store *store = pg_of(base);
    struct params p = {0};
    param_text(&p, sku);
    PGresult *result = call(store, ST_ID_BY_SKU, &p);
    if (!result) return STORE_ERR;
    int rc = PQntuples(result) == 1 ? STORE_OK : STORE_NOT_FOUND;
    if (rc == STORE_OK) snprintf(id, UUID_TEXT_LEN + 1, "%s", PQgetvalue(result, 0, 0));
    PQclear(result);
    return rc;
}

/* The eight columns of a new product, $1-$8 of the statements that insert one. */
static void param_new_product(struct params *params, const struct product *p)
{
    param_text(params, p->id);
    param_text(params, p->sku);
    param_text(params, p->name);
    param_int(params, p->price_cents);
    param_int(params, p->stock);
    param_int(params, p->version);
    param_text(params, p->created_at);
    param_text(params, p->updated_at);
}

/* An event's payload as a parameter: text in the text format must end with NUL, so the view
 * is copied into a fresh buffer that does. Returns the buffer, to free once the call is done. */
static char *param_payload(struct params *params, const char *payload, size_t payload_len)
{
    char *text = xmalloc(payload_len + 1);
    memcpy(text, payload, payload_len);
    text[payload_len] = '\0';
    param_text(params, text);
    return text;
}

/* An insert that met ON CONFLICT (sku) DO NOTHING: STORE_DUPLICATE with the owner of the sku
 * in "existing_id", or STORE_ERR. */
static int sku_taken(struct store *base, const char *sku, char existing_id[UUID_TEXT_LEN + 1],
                     const char *what)
{
    int rc = pg_find_sku(base, sku, existing_id);
    if (rc == STORE_OK) return STORE_DUPLICATE;
    if (rc == STORE_NOT_FOUND)
        snprintf(base->err, sizeof(base->err), "%s: the sku conflicts, but no product has it",
                 what);
    return STORE_ERR;
}

/* ON CONFLICT (sku) DO NOTHING rather than catching the unique violation: an error would
 * abort the transaction, and the owner of the sku could not be read in it any more. */
static int pg_insert_product(struct store *base, const struct product *p,
                             char existing_id[UUID_TEXT_LEN + 1])
{
    struct params params = {0};
    param_new_product(&params, p);
    int64_t inserted = 0;
    if (call_command(pg_of(base), ST_INSERT_PRODUCT, &params, &inserted) < 0) return STORE_ERR;
    return inserted == 1 ? STORE_OK : sku_taken(base, p->sku, existing_id, "insert product");
}

static int pg_append_event(struct store *base, const struct product *p,
                           const struct store_new_event *event, int64_t *seq)
{
    struct pg_store *store = pg_of(base);
    struct params params = {0};
    param_text(&params, p->id);
    param_text(&params, event->type);
    param_int(&params, p->version);
    char *text = param_payload(&params, event->payload, event->payload_len);
    param_text(&params, event->recorded_at);
    param_text(&params, event->nonce);
    int rc = call_int64(store, ST_INSERT_EVENT, &params, seq);
    free(text);
    return rc;
}

/* See store.h: one statement. No row back means the sku is taken, as in pg_insert_product. */
static int pg_create_product(struct store *base, const struct product *p,
                             const struct store_new_event *event,
                             char existing_id[UUID_TEXT_LEN + 1], int64_t *seq)
{
    struct params params = {0};
    param_new_product(&params, p);
    param_text(&params, event->type);
    char *text = param_payload(&params, event->payload, event->payload_len);
    param_text(&params, event->recorded_at);
    param_text(&params, event->nonce);
    PGresult *result = call(pg_of(base), ST_CREATE_PRODUCT, &params);
    free(text);
    if (!result) return STORE_ERR;
    int inserted = PQntuples(result) == 1;
    if (inserted) *seq = strtoll(PQgetvalue(result, 0, 0), NULL, 10);
    PQclear(result);
    return inserted ? STORE_OK : sku_taken(base, p->sku, existing_id, "create product");
}

/* A one-dimensional array parameter in PostgreSQL's binary format (array_recv): its
 * dimension and element type, then each element as its length and bytes, all big-endian. */
struct pg_array {
    char *data;
    size_t len, cap;
};

enum { PG_INT8_OID = 20, PG_TEXT_OID = 25 }; /* bigint and text, as pg_type numbers them */

static void array_put(struct pg_array *a, const void *bytes, size_t len)
{
    if (a->len + len > a->cap) {
        a->cap = (a->len + len) * 2;
        a->data = xrealloc(a->data, a->cap);
    }
    memcpy(a->data + a->len, bytes, len);
    a->len += len;
}

static void array_put32(struct pg_array *a, uint32_t value)
{
    unsigned char big[4] = {value >> 24, value >> 16, value >> 8, value};
    array_put(a, big, sizeof(big));
}

static void array_begin(struct pg_array *a, uint32_t element_oid, size_t count)
{
    array_put32(a, 1); /* dimensions */
    array_put32(a, 0); /* no NULL among the elements */
    array_put32(a, element_oid);
    array_put32(a, (uint32_t)count);
    array_put32(a, 1); /* the first index */
}

static void array_text(struct pg_array *a, const char *text, size_t len)
{
    array_put32(a, (uint32_t)len);
    array_put(a, text, len);
}

static void array_int8(struct pg_array *a, int64_t value)
{
    array_put32(a, 8);
    array_put32(a, (uint32_t)((uint64_t)value >> 32));
    array_put32(a, (uint32_t)value);
}

/* See store.h: one statement, ST_CREATE_PRODUCTS, with a column of the rows in each array. */
static int pg_create_products(struct store *base, struct store_create *creates, size_t count)
{
    /* The arrays, each a column of the rows. */
    enum {
        ID,
        SKU,
        NAME,
        PRICE,
        STOCK,
        VERSION,
        CREATED,
        UPDATED,
        PAYLOAD,
        RECORDED,
        NONCE,
        COLUMNS
    };
    static const uint32_t TYPES[COLUMNS] = {
        [ID] = PG_TEXT_OID,       [SKU] = PG_TEXT_OID,     [NAME] = PG_TEXT_OID,
        [PRICE] = PG_INT8_OID,    [STOCK] = PG_INT8_OID,   [VERSION] = PG_INT8_OID,
        [CREATED] = PG_TEXT_OID,  [UPDATED] = PG_TEXT_OID, [PAYLOAD] = PG_TEXT_OID,
        [RECORDED] = PG_TEXT_OID, [NONCE] = PG_TEXT_OID};
    struct pg_array columns[COLUMNS] = {0};
    for (int c = 0; c < COLUMNS; c++)
        array_begin(&columns[c], TYPES[c], count);
    for (size_t i = 0; i < count; i++) {
        const struct product *p = creates[i].product;
        const struct store_new_event *e = &creates[i].event;
        array_text(&columns[ID], p->id, strlen(p->id));
        array_text(&columns[SKU], p->sku, strlen(p->sku));
        array_text(&columns[NAME], p->name, strlen(p->name));
        array_int8(&columns[PRICE], p->price_cents);
        array_int8(&columns[STOCK], p->stock);
        array_int8(&columns[VERSION], p->version);
        array_text(&columns[CREATED], p->created_at, strlen(p->created_at));
        array_text(&columns[UPDATED], p->updated_at, strlen(p->updated_at));
        array_text(&columns[PAYLOAD], e->payload, e->payload_len);
        array_text(&columns[RECORDED], e->recorded_at, strlen(e->recorded_at));
        array_text(&columns[NONCE], e->nonce, strlen(e->nonce));
        creates[i].rc = STORE_DUPLICATE; /* until its row comes back */
    }
    /* $9, the events' type (every create's is ProductCreated), comes between the products'
     * columns and the events'. */
    struct params params = {0};
    for (int c = 0; c < COLUMNS; c++) {
        if (c == PAYLOAD) param_text(&params, creates[0].event.type);
        param_bytes(&params, columns[c].data, columns[c].len);
    }
    PGresult *result = call(pg_of(base), ST_CREATE_PRODUCTS, &params);
    for (int c = 0; c < COLUMNS; c++)
        free(columns[c].data);
    if (!result) return STORE_ERR;
    /* The rows come back in the creates' order, as a rule: each is looked for from where the
     * last was found. */
    int rc = STORE_OK;
    size_t at = 0;
    for (int row = 0; rc == STORE_OK && row < PQntuples(result); row++) {
        const char *id = PQgetvalue(result, row, 0);
        size_t tried = 0;
        while (tried < count && strcmp(creates[at].product->id, id) != 0)
            at = (at + 1) % count, tried++;
        if (tried == count || creates[at].rc == STORE_OK) {
            snprintf(base->err, sizeof(base->err), "create products: a row for no create (%s)", id);
            rc = STORE_ERR;
            continue;
        }
        creates[at].rc = STORE_OK;
        *creates[at].seq = strtoll(PQgetvalue(result, row, 1), NULL, 10);
    }
    PQclear(result);
    for (size_t i = 0; rc == STORE_OK && i < count; i++) {
        struct store_create *c = &creates[i];
        if (c->rc == STORE_DUPLICATE &&
            sku_taken(base, c->product->sku, c->existing_id, "create products") != STORE_DUPLICATE)
            rc = STORE_ERR;
    }
    return rc;
}

static int pg_head_seq(struct store *base, int64_t *seq)
{
    return call_int64(pg_of(base), ST_HEAD_SEQ, NULL, seq);
}

static int pg_last_seq_taken(struct store *base, int64_t *seq)
{
    return call_int64(pg_of(base), ST_LAST_SEQ_TAKEN, NULL, seq);
}

static int pg_count_products(struct store *base, int64_t *count)
{
    return call_int64(pg_of(base), ST_COUNT_PRODUCTS, NULL, count);
}

static int pg_read_events(struct store *base, int64_t after_seq, int limit, store_event_fn fn,
                          void *arg)
{
    struct pg_store *store = pg_of(base);
    struct params p = {0};
    param_int(&p, after_seq);
    param_int(&p, limit);
    PGresult *result = call(store, ST_EVENTS_AFTER, &p);
    if (!result) return STORE_ERR;
    int rows = PQntuples(result), visited = 0;
    for (int row = 0; row < rows; row++) {
        struct store_event event = {
            .seq = strtoll(PQgetvalue(result, row, 0), NULL, 10),
            .type = PQgetvalue(result, row, 1),
            .product_id = PQgetvalue(result, row, 2),
            .version = strtoll(PQgetvalue(result, row, 3), NULL, 10),
            .payload = PQgetvalue(result, row, 4),
            .payload_len = (size_t)PQgetlength(result, row, 4),
            .recorded_at = PQgetvalue(result, row, 5),
            .nonce = PQgetvalue(result, row, 6),
        };
        visited++;
        if (fn(&event, arg) != 0) break;
    }
    PQclear(result);
    return visited;
}

/* A consistent snapshot: REPEATABLE READ fixes it at the first read, the head seq. */
static int pg_snapshot_begin(struct store *base, int64_t *head_seq)
{
    struct pg_store *store = pg_of(base);
    for (int attempt = 0;; attempt++) {
        store->in_transaction = 0;
        if (ensure_connected(store) < 0) return STORE_ERR;
        store->in_transaction = 1;
        if (execute(store, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "begin a snapshot",
                    CALL_TIMEOUT_MS) == STORE_OK)
            break;
        /* As pg_begin: a connection that broke while idle (the maintenance thread keeps its
         * own between rebuilds, and a server restart breaks it) is replaced once. */
        if (store->conn || store->lost_by_timeout || attempt > 0) {
            pg_rollback(base);
            return STORE_ERR;
        }
    }
    if (pg_head_seq(base, head_seq) < 0) {
        pg_rollback(base);
        return STORE_ERR;
    }
    return STORE_OK;
}

static void copy_value(const PGresult *result, int row, int column, char *out, size_t cap)
{
    snprintf(out, cap, "%s", PQgetvalue(result, row, column));
}

/* Reads row "row" of SELECT PRODUCT_COLUMNS. */
static void read_product_row(const PGresult *result, int row, struct product *p)
{
    copy_value(result, row, 0, p->id, sizeof(p->id));
    copy_value(result, row, 1, p->sku, sizeof(p->sku));
    copy_value(result, row, 2, p->name, sizeof(p->name));
    p->price_cents = strtoll(PQgetvalue(result, row, 3), NULL, 10);
    p->stock = strtoll(PQgetvalue(result, row, 4), NULL, 10);
    p->version = strtoll(PQgetvalue(result, row, 5), NULL, 10);
    copy_value(result, row, 6, p->created_at, sizeof(p->created_at));
    copy_value(result, row, 7, p->updated_at, sizeof(p->updated_at));
}

static int pg_scan_products(struct store *base, const char *after_id, int limit,
                            store_product_fn fn, void *arg)
{
    struct pg_store *store = pg_of(base);
    struct params p = {0};
    param_text(&p, after_id);
    param_int(&p, limit);
    PGresult *result = call(store, ST_SCAN_PRODUCTS, &p);
    if (!result) return STORE_ERR;
    int rows = PQntuples(result), visited = 0;
    struct product product;
    for (int row = 0; row < rows; row++) {
        read_product_row(result, row, &product);
        visited++;
        if (fn(&product, arg) != 0) break;
    }
    PQclear(result);
    return visited;
}

static void pg_snapshot_end(struct store *base)
{
    pg_rollback(base);
}

static int pg_get_product(struct store *base, const char *id, struct product *out)
{
    struct pg_store *store = pg_of(base);
    struct params p = {0};
    param_text(&p, id);
    PGresult *result = call(store, ST_GET_PRODUCT, &p);
    if (!result) return STORE_ERR;
    int rc = PQntuples(result) == 1 ? STORE_OK : STORE_NOT_FOUND;
    if (rc == STORE_OK) read_product_row(result, 0, out);
    PQclear(result);
    return rc;
}

static int pg_update_product(struct store *base, const struct product *p)
{
    struct params params = {0};
    param_text(&params, p->id);
    param_text(&params, p->name);
    param_int(&params, p->price_cents);
    param_int(&params, p->stock);
    param_int(&params, p->version);
    param_text(&params, p->updated_at);
    return defer_call(pg_of(base), ST_UPDATE_PRODUCT, &params);
}

static int pg_delete_product(struct store *base, const char *id)
{
    struct params params = {0};
    param_text(&params, id);
    return defer_call(pg_of(base), ST_DELETE_PRODUCT, &params);
}

static void key_sha256(const char *key, unsigned char out[KEY_HASH_LEN])
{
    unsigned int out_len = 0;
    if (!EVP_Digest(key, strlen(key), out, &out_len, EVP_sha256(), NULL)) xmalloc_fail();
}

/* Decodes a bytea value of a text-format result into a fresh buffer ("*len" bytes, plus a
 * NUL). */
static char *unescape_bytea(const PGresult *result, int row, int column, size_t *len)
{
    unsigned char *raw =
        PQunescapeBytea((const unsigned char *)PQgetvalue(result, row, column), len);
    if (!raw) xmalloc_fail();
    char *copy = xmalloc(*len + 1);
    memcpy(copy, raw, *len);
    copy[*len] = '\0';
    PQfreemem(raw);
    return copy;
}

static int pg_idempotency_get(struct store *base, const char *key,
                              struct store_idempotent_response *out)
{
    struct pg_store *store = pg_of(base);
    unsigned char hash[KEY_HASH_LEN];
    key_sha256(key, hash);
    struct params p = {0};
    param_bytes(&p, hash, sizeof(hash));
    PGresult *result = call(store, ST_GET_IDEMPOTENCY, &p);
    if (!result) return STORE_ERR;
    int rc = PQntuples(result) == 1 ? STORE_OK : STORE_NOT_FOUND;
    if (rc == STORE_OK) {
        size_t len = 0;
        char *fingerprint = unescape_bytea(result, 0, 0, &len);
        memset(out->fingerprint, 0, sizeof(out->fingerprint));
        if (len == sizeof(out->fingerprint)) memcpy(out->fingerprint, fingerprint, len);
        free(fingerprint);
        out->status = atoi(PQgetvalue(result, 0, 1));
        copy_value(result, 0, 2, out->location, sizeof(out->location));
        copy_value(result, 0, 3, out->etag, sizeof(out->etag));
        copy_value(result, 0, 4, out->content_type, sizeof(out->content_type));
        out->body = unescape_bytea(result, 0, 5, &out->body_len);
    }
    PQclear(result);
    return rc;
}

/* ON CONFLICT DO NOTHING: a key stored already (by another writer, which the write lock
 * makes impossible, or a bug) is STORE_CONFLICT, and the transaction goes on. */
static int pg_idempotency_put(struct store *base, const char *key,
                              const struct store_idempotent_response *response, uint64_t now_ms)
{
    unsigned char hash[KEY_HASH_LEN];
    key_sha256(key, hash);
    struct params p = {0};
    param_bytes(&p, hash, sizeof(hash));
    param_bytes(&p, response->fingerprint, sizeof(response->fingerprint));
    param_int(&p, response->status);
    param_text(&p, response->location);
    param_text(&p, response->etag);
    param_text(&p, response->content_type);
    param_bytes(&p, response->body, response->body ? response->body_len : 0);
    param_int(&p, (int64_t)now_ms);
    int64_t inserted = 0;
    if (call_command(pg_of(base), ST_PUT_IDEMPOTENCY, &p, &inserted) < 0) return STORE_ERR;
    return inserted == 1 ? STORE_OK : STORE_CONFLICT;
}

static int pg_idempotency_count(struct store *base, int64_t *count)
{
    return call_int64(pg_of(base), ST_COUNT_IDEMPOTENCY, NULL, count);
}

/* Runs "which" with "p" in a write transaction of its own; "*rows" gets the rows it changed. */
static int run_alone(struct store *base, enum statement which, const struct params *p,
                     int64_t *rows)
{
    if (pg_begin(base) < 0) {
        pg_rollback(base);
        return STORE_ERR;
    }
    if (call_command(pg_of(base), which, p, rows) < 0 || pg_commit(base) < 0) {
        pg_rollback(base);
        return STORE_ERR;
    }
    return STORE_OK;
}

static int pg_idempotency_purge(struct store *base, uint64_t before_ms, int *deleted)
{
    struct params p = {0};
    param_int(&p, (int64_t)before_ms);
    int64_t rows = 0;
    if (run_alone(base, ST_PURGE_IDEMPOTENCY, &p, &rows) < 0) return STORE_ERR;
    *deleted = (int)rows;
    return STORE_OK;
}

static int pg_probe_write(struct store *base, uint64_t now_ms)
{
    struct params p = {0};
    param_int(&p, (int64_t)now_ms);
    return run_alone(base, ST_WRITE_PROBE, &p, NULL);
}

/* Migrates the schema again on a connection of its own (the writer's is pipelined, and keeps
 * serving if the migration fails: it is tried again at the next check). Once it is done, the
 * writer's connection is dropped, so that its statements are prepared again against the
 * schema by the next call. */
static void remigrate(struct pg_store *store)
{
    struct pg_store serving = *store; /* the calls below may drop the connection they use */
    store->conn = NULL;
    store->pipelined = 0;
    store->deferred = 0;
    store->leading = 0;
    int rc = connect_now(store) == STORE_OK ? migrate(store, 1) : STORE_ERR;
    if (store->conn) PQfinish(store->conn);
    *store = serving;
    if (rc == STORE_OK) drop(store);
}

static int pg_ping(struct store *base)
{
    struct pg_store *store = pg_of(base);
    PGresult *result = call_within(store, ST_PING, NULL, PING_TIMEOUT_MS);
    if (!result) return STORE_ERR;
    int version = atoi(PQgetvalue(result, 0, 0));
    PQclear(result);
    if (version >= 1 && version < SCHEMA_VERSION && !store->in_transaction) remigrate(store);
    return STORE_OK;
}

/* See store.h. The lock is reentrant within a session: it is never taken twice. */
static int pg_lead(struct store *base, const char *instance_id, int64_t epoch_above,
                   struct store_leader *out)
{
    struct pg_store *store = pg_of(base);
    memset(out, 0, sizeof(*out));
    int64_t held = 0;
    if (store->leading) {
        /* Renews the lease; or, when our epoch is not above "epoch_above", takes one that is. */
        struct params p = {0};
        param_int(&p, store->epoch);
        int raise = store->epoch <= epoch_above;
        if (raise) param_int(&p, epoch_above);
        PGresult *result = call(store, raise ? ST_LEAD_RAISE : ST_LEAD_RENEW, &p);
        if (!result) {
            store->leading = 0;
            return STORE_ERR;
        }
        held = PQntuples(result);
        if (held > 0) store->epoch = strtoll(PQgetvalue(result, 0, 0), NULL, 10);
        PQclear(result);
        if (held > 0) {
            out->leading = 1;
            out->epoch = store->epoch;
            snprintf(out->instance_id, sizeof(out->instance_id), "%s", instance_id);
            return STORE_OK;
        }
        /* Our session lost the lock, or another claimed a newer epoch after ending it (we
         * missed our lease): taken as lost, and the session with it. */
        store->leading = 0;
        drop(store);
        snprintf(store->base.err, sizeof(store->base.err), "the projector lease was lost");
        return STORE_ERR;
    }
    PGresult *result = call(store, ST_LEAD_TRY, NULL);
    if (!result) return STORE_ERR;
    int taken = PQgetvalue(result, 0, 0)[0] == 't';
    PQclear(result);
    if (taken) {
        struct params p = {0};
        param_text(&p, instance_id);
        param_int(&p, epoch_above);
        int64_t epoch = 0;
        if (call_int64(store, ST_LEAD_CLAIM, &p, &epoch) < 0) {
            drop(store); /* let the lock go with the session: no leader without an epoch */
            return STORE_ERR;
        }
        store->leading = 1;
        store->epoch = epoch;
        out->leading = 1;
        out->epoch = epoch;
        snprintf(out->instance_id, sizeof(out->instance_id), "%s", instance_id);
        return STORE_OK;
    }
    result = call(store, ST_LEAD_READ, NULL);
    if (!result) return STORE_ERR;
    int64_t silent_ms = 0;
    if (PQntuples(result) == 1) {
        out->epoch = strtoll(PQgetvalue(result, 0, 0), NULL, 10);
        copy_value(result, 0, 1, out->instance_id, sizeof(out->instance_id));
        silent_ms = strtoll(PQgetvalue(result, 0, 2), NULL, 10);
    }
    PQclear(result);
    int64_t ended;
    if (silent_ms > LEADER_LEASE_MS && call_int64(store, ST_LEAD_EVICT, NULL, &ended) < 0)
        return STORE_ERR; /* the lock is free once that session is gone: the next call takes it */
    return STORE_OK;
}

/* The database's own name for its catalog, or, on a database no writer of this build has
 * migrated yet, its URI without user and password. */
static void pg_name_catalog(const struct store *base, char *out, size_t cap)
{
    const struct pg_store *store = (const struct pg_store *)base;
    if (store->catalog[0]) {
        snprintf(out, cap, "postgresql catalog %s", store->catalog);
        return;
    }
    const char *scheme_end = strstr(store->uri, "://") + 3;
    const char *at = strchr(scheme_end, '@'), *slash = strchr(scheme_end, '/');
    const char *rest = at && (!slash || at < slash) ? at + 1 : scheme_end;
    snprintf(out, cap, "postgresql://%s", rest);
}

static const struct store_backend PG_BACKEND = {
    .name = "postgresql",
    .name_catalog = pg_name_catalog,
    .shared = 1,
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .savepoint = pg_savepoint,
    .release_savepoint = pg_release_savepoint,
    .rollback_savepoint = pg_rollback_savepoint,
    .transaction_lost_whole = pg_transaction_lost_whole,
    .insert_product = pg_insert_product,
    .create_product = pg_create_product,
    .create_products = pg_create_products,
    .get_product = pg_get_product,
    .find_sku = pg_find_sku,
    .update_product = pg_update_product,
    .delete_product = pg_delete_product,
    .idempotency_get = pg_idempotency_get,
    .idempotency_put = pg_idempotency_put,
    .idempotency_purge = pg_idempotency_purge,
    .idempotency_count = pg_idempotency_count,
    .probe_write = pg_probe_write,
    .ping = pg_ping,
    .append_event = pg_append_event,
    .head_seq = pg_head_seq,
    .last_seq_taken = pg_last_seq_taken,
    .count_products = pg_count_products,
    .read_events = pg_read_events,
    .snapshot_begin = pg_snapshot_begin,
    .scan_products = pg_scan_products,
    .snapshot_end = pg_snapshot_end,
    .lead = pg_lead,
};

/* Opens the first connection at once, so that a bad URI, a wrong password or a missing
 * database is an error at start rather than a string of 503s. */
int store_pg_open(const char *uri, enum store_durability durability, int reader, struct store **out,
                  char *err, size_t errlen)
{
    char shown[512], why[STORE_ERR_LEN];
    redis_url_redact(uri, shown, sizeof(shown)); /* the same userinfo rules: no password */
    char *parse_error = NULL;
    PQconninfoOption *options = PQconninfoParse(uri, &parse_error);
    if (!options) {
        one_line(why, sizeof(why), parse_error ? parse_error : "out of memory");
        PQfreemem(parse_error);
        snprintf(err, errlen, "invalid PostgreSQL URI %s: %s", shown, why);
        return -1;
    }
    PQconninfoFree(options);
    struct pg_store *store = xcalloc(1, sizeof(*store));
    store->base.backend = &PG_BACKEND;
    store->uri = strdup(uri);
    if (!store->uri) xmalloc_fail();
    store->reader = reader;
    store->durability = durability;
    if (ensure_connected(store) < 0) {
        snprintf(err, errlen, "cannot open %s: %s", shown, store->base.err);
        pg_close(&store->base);
        return -1;
    }
    *out = &store->base;
    return 0;
}
