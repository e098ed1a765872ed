/* store.h - the write model: products and their event log (the outbox), in SQLite (a file,
 * store_sqlite.c) or PostgreSQL (a libpq URI, store_pg.c), chosen by what store_open is given.
 * Every SQL statement of catalogd lives in those two files; handlers, the writer, the
 * projector, rebuild and verify use only this interface and never know the backend.
 * Invariant: a product row and the event describing its change are written in the same
 * transaction; events.seq is the commit order, without gaps, across every process that writes
 * the same model. */
#ifndef CATALOGD_STORE_H
#define CATALOGD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "domain/product.h"

struct store;

/* SQLite: synchronous=FULL / NORMAL. PostgreSQL: synchronous_commit=on / off (off: a crash
 * of the PostgreSQL server or its machine may lose the last few hundred milliseconds of
 * acknowledged commits, never consistency; a crash of catalogd loses nothing). */
enum store_durability {
    STORE_DURABILITY_FULL,   /* a 2xx survives power loss */
    STORE_DURABILITY_NORMAL, /* survives a crash of catalogd, not of the database's machine */
};

enum store_status {
    STORE_OK = 0,
    STORE_ERR = -1,       /* I/O error, disk full, read-only file, locked too long... */
    STORE_DUPLICATE = -2, /* the sku belongs to another product */
    STORE_NOT_FOUND = -3,
    STORE_CONFLICT = -4, /* store_idempotency_put: the key is stored already (another writer) */
};

/* Process-wide setup of the backends' libraries: call it once, first thing in main, before
 * any store is opened and before any thread starts. */
void store_setup_process(void);

/* 1 when "db" names a PostgreSQL database (a postgresql:// or postgres:// URI), 0 when it is
 * an SQLite file path. */
int store_is_postgresql(const char *db);

/* Opens the database "path" (an SQLite file, or a PostgreSQL URI) for writing (SQLite: WAL,
 * creates the file if needed; both: brings the schema to this build's version, migrating an
 * older one in place, each step once even when several processes start at once) or, with
 * store_open_reader, for reading only (the projector, verify, rebuild; no migration: it reads
 * only products and events). Returns 0 and "*out", or -1 with a one-line message in "err"
 * that never shows a password. Close with store_close (accepts NULL).
 * PostgreSQL: every call returns within a few seconds whatever the server does; a call that
 * fails because the connection broke returns STORE_ERR, and a later call (outside a
 * transaction) reconnects, with backoff, re-preparing the statements. */
int store_open(const char *path, enum store_durability durability, struct store **out, char *err,
               size_t errlen);
int store_open_reader(const char *path, struct store **out, char *err, size_t errlen);
void store_close(struct store *store);

/* The message of the last failure on this connection (static storage of the store). */
const char *store_errmsg(const struct store *store);

/* "sqlite" or "postgresql": the name of the backend, as /ready names its check. */
const char *store_backend_name(const struct store *store);

/* Writes the catalog's name into "out": the same text in every instance of one catalog,
 * another for another write model (projection/prefix_hold.h). SQLite: this machine's name and
 * the file's absolute path; PostgreSQL: a name the database keeps (its URI without user and
 * password on a database no writer of this build has migrated yet). */
void store_name_catalog(const struct store *store, char *out, size_t cap);

/* Claims the write model for this process's server, for as long as the process lives: "alone"
 * when the server keeps a view cache, exact only while its own projector is the only one that
 * writes the read model. An SQLite file then takes no other server, and otherwise any number
 * that do not claim it alone; a PostgreSQL database takes any number (its instances keep no
 * view cache). Returns 0, or -1 with the reason in store_errmsg. */
int store_claim_server(struct store *store, int alone);

/* 1 when other instances may write this write model at the same time (PostgreSQL). */
int store_is_shared(const struct store *store);

/* 1 when a statement that fails with a business error (a unique violation) undoes only
 * itself and leaves the transaction usable (SQLite); 0 when it aborts the transaction unless a
 * savepoint catches it (PostgreSQL). */
int store_statement_failure_keeps_transaction(const struct store *store);

/* Transactions of the writer: store_begin is BEGIN IMMEDIATE (SQLite) or BEGIN plus the
 * write lock that all instances share (PostgreSQL), so write transactions run one at a time;
 * savepoints nest one level, one per command of a group commit. Each returns 0 or STORE_ERR.
 * PostgreSQL sends SAVEPOINT, RELEASE and ROLLBACK TO without waiting for their answer (it
 * comes with the next call's, in the same round trip): when one of them fails, the next call
 * of the transaction fails, or store_commit does, so the batch fails as if it had at once. */
int store_begin(struct store *store);
int store_commit(struct store *store);
void store_rollback(struct store *store);
int store_savepoint(struct store *store);
int store_release_savepoint(struct store *store);
void store_rollback_savepoint(struct store *store);

/* 1 when the write transaction that just failed lost its connection (broken, not a deadline
 * passed) before its COMMIT was sent: the server rolled it back whole, so running it again on a
 * new connection cannot apply anything twice. 0 on SQLite, whose transactions have no
 * connection to lose. */
int store_transaction_lost_whole(const struct store *store);

/* Inserts "p". On STORE_DUPLICATE, "existing_id" receives the id that owns p->sku. */
int store_insert_product(struct store *store, const struct product *p,
                         char existing_id[UUID_TEXT_LEN + 1]);

/* What a command records in the log besides its product's id and version. */
struct store_new_event {
    const char *type;
    const char *payload; /* the product's view */
    size_t payload_len;
    const char *recorded_at;
    const char *nonce; /* EVENT_NONCE_LEN hex digits (domain/event.h) */
};

/* A create in one call: store_insert_product of "p", then, when it was inserted,
 * store_append_event of its "event". Returns STORE_OK and "*seq"; STORE_DUPLICATE and
 * "existing_id" (nothing written); or STORE_ERR. PostgreSQL writes both rows with one
 * statement (one round trip under the write lock); SQLite makes the two calls. */
int store_create_product(struct store *store, const struct product *p,
                         const struct store_new_event *event, char existing_id[UUID_TEXT_LEN + 1],
                         int64_t *seq);

/* One create of store_create_products: the product and its event in, the outcome out. */
struct store_create {
    const struct product *product;
    struct store_new_event event;
    int rc;            /* STORE_OK or STORE_DUPLICATE, once the call succeeded */
    int64_t *seq;      /* STORE_OK: the event's seq */
    char *existing_id; /* STORE_DUPLICATE: the sku's owner (UUID_TEXT_LEN + 1 bytes) */
};

/* Creates in turn, each as store_create_product would, an earlier one taking a sku before a
 * later one: each gets its rc. Returns STORE_OK, or STORE_ERR when the transaction cannot go
 * on (none of the creates holds). PostgreSQL writes them all with one statement, where each
 * alone is a round trip under the write lock; SQLite makes the calls one by one. */
int store_create_products(struct store *store, struct store_create *creates, size_t count);

/* Reads product "id" into "out". Returns STORE_OK, STORE_NOT_FOUND or STORE_ERR. */
int store_get_product(struct store *store, const char *id, struct product *out);

/* Finds the product that owns "sku": STORE_OK and its "id", STORE_NOT_FOUND or STORE_ERR. */
int store_find_sku(struct store *store, const char *sku, char id[UUID_TEXT_LEN + 1]);

/* Writes name, price, stock, version and updated_at of "p" (matched by id). */
int store_update_product(struct store *store, const struct product *p);

/* Deletes product "id"; its sku becomes free. */
int store_delete_product(struct store *store, const char *id);

/* A stored response to a command sent with an Idempotency-Key. The key itself is stored as its
 * SHA-256 (32 bytes, whatever its length); the store hashes it. */
#define STORE_FINGERPRINT_LEN 32

struct store_idempotent_response {
    unsigned char fingerprint[STORE_FINGERPRINT_LEN]; /* SHA-256 of method, path and body */
    int status;
    char location[64];
    char etag[24];
    char content_type[32];
    char *body; /* malloc'd; free it */
    size_t body_len;
};

/* Finds the response stored under "key": STORE_OK and "*out", STORE_NOT_FOUND or STORE_ERR. */
int store_idempotency_get(struct store *store, const char *key,
                          struct store_idempotent_response *out);

/* Stores "response" under "key" at "now_ms", in the current transaction. Returns STORE_OK,
 * STORE_CONFLICT when the key is stored already (nothing is written and the transaction goes
 * on), or STORE_ERR. */
int store_idempotency_put(struct store *store, const char *key,
                          const struct store_idempotent_response *response, uint64_t now_ms);

/* Deletes keys stored before "before_ms"; sets "*deleted". In its own transaction. */
int store_idempotency_purge(struct store *store, uint64_t before_ms, int *deleted);

/* How many keys are stored (counts them: for start-up, not for every command). */
int store_idempotency_count(struct store *store, int64_t *count);

/* Commits a one-row write (table write_probe) to learn whether the database takes writes
 * again after a failure, and checks that a command's event can still take a seq: STORE_ERR,
 * with why, when the last one (2^63 - 1) is taken. */
int store_probe_write(struct store *store, uint64_t now_ms);

/* A cheap check outside any transaction that the write model is there: STORE_OK when it
 * answers (PostgreSQL reconnecting if needed), else STORE_ERR with why. A schema behind this
 * build's, from a backup taken before an upgrade and restored under catalogd, is migrated
 * again, or no command could write (its statements name columns the backup lacks). That
 * migration waits a second at most for locks (a pg_dump holds one for its whole run), and
 * is tried again at the next check; a version of 0 or less was set by hand, not restored,
 * and is left alone. */
int store_ping(struct store *store);

/* Appends "event" for "p" (its id and version). Sets "*seq". */
int store_append_event(struct store *store, const struct product *p,
                       const struct store_new_event *event, int64_t *seq);

/* Reads (any connection). store_head_seq gives the highest committed seq (0 if none). */
int store_head_seq(struct store *store, int64_t *seq);
int store_count_products(struct store *store, int64_t *count);

struct store_event {
    int64_t seq;
    const char *type;
    const char *product_id;
    int64_t version;
    const char *payload;
    size_t payload_len;
    const char *recorded_at;
    const char *nonce; /* "" in rows written before events had one */
};

/* Calls "fn" for up to "limit" events with seq > "after_seq", in seq order. The pointers in
 * the event are valid only during the call. "fn" returns 0 to go on, non-zero to stop.
 * Returns the number of events visited, or STORE_ERR. */
typedef int (*store_event_fn)(const struct store_event *event, void *arg);
int store_read_events(struct store *store, int64_t after_seq, int limit, store_event_fn fn,
                      void *arg);

/* A consistent snapshot for rebuild and verify: store_snapshot_begin opens a read
 * transaction and gives the head seq it sees; store_scan_products visits every product of
 * that snapshot in id order (creation order), "after_id" exclusive ("" for the start), at
 * most "limit"; store_snapshot_end closes it. */
typedef int (*store_product_fn)(const struct product *product, void *arg);
int store_snapshot_begin(struct store *store, int64_t *head_seq);
int store_scan_products(struct store *store, const char *after_id, int limit, store_product_fn fn,
                        void *arg);
void store_snapshot_end(struct store *store);

struct store_leader {
    int leading;
    int64_t epoch;
    char instance_id[128];
};

/* Election of the one instance that projects, on a store connection used for nothing else
 * (opened with store_open_reader). PostgreSQL: a session advisory lock (pg_try_advisory_lock,
 * a key of its own) held by this connection, and a lease (a heartbeat it renews at each call;
 * a leader silent too long has its session ended by the next instance that asks). When this
 * connection does not hold the lock it tries to take it without waiting; when it takes it, it
 * takes the next epoch in a one-row table (projector_leader), greater than "epoch_above" too,
 * and records "instance_id". When it already holds it, it renews the lease, and takes a new
 * epoch greater than "epoch_above" if its own is not (a fencing epoch seen elsewhere that the
 * write model does not know: it was restored from a backup). Returns STORE_OK with "*out"
 * filled: leading=1 and our epoch, or leading=0 and the epoch/instance of the current leader
 * (as recorded in the table). STORE_ERR: the connection failed; the lock must be taken as
 * lost (a later call reconnects, and taking the lock again gives a new epoch). SQLite (one
 * instance per database): always leading=1, epoch 0. */
int store_lead(struct store *store, const char *instance_id, int64_t epoch_above,
               struct store_leader *out);

#endif
