/* store_backend.h - what a write-model backend gives store.c: the operations of store.h as a
 * table of function pointers, chosen once when the store is opened. Only store.c and the
 * backends (store_sqlite.c, store_pg.c) include this file.
 * Invariant: every struct store a backend hands out starts with the struct store below, so
 * store.c reaches its table and its message without knowing the backend. */
#ifndef CATALOGD_STORE_BACKEND_H
#define CATALOGD_STORE_BACKEND_H

#include "command/store.h"

#define STORE_ERR_LEN 256

struct store_backend {
    const char *name; /* "sqlite", "postgresql": the name /ready gives its check */
    int shared;       /* other processes may write the same model at the same time */
    /* A statement that fails (a unique violation) undoes only itself and the transaction goes
     * on (SQLite); 0: it aborts the whole transaction unless a savepoint catches it
     * (PostgreSQL). */
    int statement_failure_keeps_transaction;
    void (*close)(struct store *store);
    int (*begin)(struct store *store);
    int (*commit)(struct store *store);
    void (*rollback)(struct store *store);
    int (*savepoint)(struct store *store);
    int (*release_savepoint)(struct store *store);
    void (*rollback_savepoint)(struct store *store);
    int (*transaction_lost_whole)(const struct store *store); /* NULL: never */
    int (*insert_product)(struct store *store, const struct product *p,
                          char existing_id[UUID_TEXT_LEN + 1]);
    /* NULL: store.c runs insert_product, then append_event. */
    int (*create_product)(struct store *store, const struct product *p,
                          const struct store_new_event *event, char existing_id[UUID_TEXT_LEN + 1],
                          int64_t *seq);
    /* NULL: store.c runs create_product for each. */
    int (*create_products)(struct store *store, struct store_create *creates, size_t count);
    int (*get_product)(struct store *store, const char *id, struct product *out);
    int (*find_sku)(struct store *store, const char *sku, char id[UUID_TEXT_LEN + 1]);
    int (*update_product)(struct store *store, const struct product *p);
    int (*delete_product)(struct store *store, const char *id);
    int (*idempotency_get)(struct store *store, const char *key,
                           struct store_idempotent_response *out);
    int (*idempotency_put)(struct store *store, const char *key,
                           const struct store_idempotent_response *response, uint64_t now_ms);
    int (*idempotency_purge)(struct store *store, uint64_t before_ms, int *deleted);
    int (*idempotency_count)(struct store *store, int64_t *count);
    int (*probe_write)(struct store *store, uint64_t now_ms);
    int (*ping)(struct store *store);
    int (*append_event)(struct store *store, const struct product *p,
                        const struct store_new_event *event, int64_t *seq);
    int (*head_seq)(struct store *store, int64_t *seq);
    /* The last seq handed out: the next event takes the one after it, whatever the log holds. */
    int (*last_seq_taken)(struct store *store, int64_t *seq);
    int (*count_products)(struct store *store, int64_t *count);
    int (*read_events)(struct store *store, int64_t after_seq, int limit, store_event_fn fn,
                       void *arg);
    int (*snapshot_begin)(struct store *store, int64_t *head_seq);
    int (*scan_products)(struct store *store, const char *after_id, int limit, store_product_fn fn,
                         void *arg);
    void (*snapshot_end)(struct store *store);
    int (*lead)(struct store *store, const char *instance_id, int64_t epoch_above,
                struct store_leader *out);
    void (*name_catalog)(const struct store *store, char *out, size_t cap);
    int (*claim_server)(struct store *store, int alone); /* NULL: servers may always share */
};

/* The head of every backend's store. "err" is the message of the last failure. */
struct store {
    const struct store_backend *backend;
    char err[STORE_ERR_LEN];
};

/* store_setup_process's part for SQLite. */
void store_sqlite_setup_process(void);

/* Each backend's opener: the writer connection ("reader" 0: migrates the schema) or a reader
 * ("reader" 1). Returns 0 and "*out", or -1 with a message in "err" (never a password). */
int store_sqlite_open(const char *path, enum store_durability durability, int reader,
                      struct store **out, char *err, size_t errlen);
int store_pg_open(const char *uri, enum store_durability durability, int reader, struct store **out,
                  char *err, size_t errlen);

#endif
