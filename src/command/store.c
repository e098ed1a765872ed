/* store.c - the write model's one interface (store.h) over its backends: store_open picks
 * SQLite (store_sqlite.c) or PostgreSQL (store_pg.c) by the form of the database name, and
 * every other call goes through the table of the backend that opened the store. No SQL here.
 * Invariant: a store is used through the backend that created it, and only that one. */
#include "command/store.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "command/store_backend.h"

void store_setup_process(void)
{
    store_sqlite_setup_process();
}

int store_is_postgresql(const char *db)
{
    return strncasecmp(db, "postgresql://", strlen("postgresql://")) == 0 ||
           strncasecmp(db, "postgres://", strlen("postgres://")) == 0;
}

int store_open(const char *path, enum store_durability durability, struct store **out, char *err,
               size_t errlen)
{
    if (store_is_postgresql(path)) return store_pg_open(path, durability, 0, out, err, errlen);
    return store_sqlite_open(path, durability, 0, out, err, errlen);
}

int store_open_reader(const char *path, struct store **out, char *err, size_t errlen)
{
    /* A reader never writes: its durability does not matter. */
    if (store_is_postgresql(path))
        return store_pg_open(path, STORE_DURABILITY_FULL, 1, out, err, errlen);
    return store_sqlite_open(path, STORE_DURABILITY_FULL, 1, out, err, errlen);
}

void store_close(struct store *store)
{
    if (store) store->backend->close(store);
}

const char *store_errmsg(const struct store *store)
{
    return store->err;
}

const char *store_backend_name(const struct store *store)
{
    return store->backend->name;
}

void store_name_catalog(const struct store *store, char *out, size_t cap)
{
    store->backend->name_catalog(store, out, cap);
}

int store_claim_server(struct store *store, int alone)
{
    return store->backend->claim_server ? store->backend->claim_server(store, alone) : 0;
}

int store_is_shared(const struct store *store)
{
    return store->backend->shared;
}

int store_statement_failure_keeps_transaction(const struct store *store)
{
    return store->backend->statement_failure_keeps_transaction;
}

int store_transaction_lost_whole(const struct store *store)
{
    return store->backend->transaction_lost_whole && store->backend->transaction_lost_whole(store);
}

int store_begin(struct store *store)
{
    return store->backend->begin(store);
}

int store_commit(struct store *store)
{
    return store->backend->commit(store);
}

void store_rollback(struct store *store)
{
    store->backend->rollback(store);
}

int store_savepoint(struct store *store)
{
    return store->backend->savepoint(store);
}

int store_release_savepoint(struct store *store)
{
    return store->backend->release_savepoint(store);
}

void store_rollback_savepoint(struct store *store)
{
    store->backend->rollback_savepoint(store);
}

int store_insert_product(struct store *store, const struct product *p,
                         char existing_id[UUID_TEXT_LEN + 1])
{
    return store->backend->insert_product(store, p, existing_id);
}

int store_create_product(struct store *store, const struct product *p,
                         const struct store_new_event *event, char existing_id[UUID_TEXT_LEN + 1],
                         int64_t *seq)
{
    if (store->backend->create_product)
        return store->backend->create_product(store, p, event, existing_id, seq);
    int rc = store->backend->insert_product(store, p, existing_id);
    if (rc != STORE_OK) return rc;
    return store->backend->append_event(store, p, event, seq);
}

int store_create_products(struct store *store, struct store_create *creates, size_t count)
{
    if (store->backend->create_products)
        return store->backend->create_products(store, creates, count);
    for (size_t i = 0; i < count; i++) {
        struct store_create *c = &creates[i];
        c->rc = store_create_product(store, c->product, &c->event, c->existing_id, c->seq);
        if (c->rc != STORE_OK && c->rc != STORE_DUPLICATE) return STORE_ERR;
    }
    return STORE_OK;
}

int store_get_product(struct store *store, const char *id, struct product *out)
{
    return store->backend->get_product(store, id, out);
}

int store_find_sku(struct store *store, const char *sku, char id[UUID_TEXT_LEN + 1])
{
    return store->backend->find_sku(store, sku, id);
}

int store_update_product(struct store *store, const struct product *p)
{
    return store->backend->update_product(store, p);
}

int store_delete_product(struct store *store, const char *id)
{
    return store->backend->delete_product(store, id);
}

int store_idempotency_get(struct store *store, const char *key,
                          struct store_idempotent_response *out)
{
    return store->backend->idempotency_get(store, key, out);
}

int store_idempotency_put(struct store *store, const char *key,
                          const struct store_idempotent_response *response, uint64_t now_ms)
{
    return store->backend->idempotency_put(store, key, response, now_ms);
}

int store_idempotency_purge(struct store *store, uint64_t before_ms, int *deleted)
{
    return store->backend->idempotency_purge(store, before_ms, deleted);
}

int store_idempotency_count(struct store *store, int64_t *count)
{
    return store->backend->idempotency_count(store, count);
}

int store_probe_write(struct store *store, uint64_t now_ms)
{
    int64_t last = 0;
    if (store->backend->probe_write(store, now_ms) != STORE_OK ||
        store->backend->last_seq_taken(store, &last) != STORE_OK)
        return STORE_ERR;
    if (last < INT64_MAX) return STORE_OK;
    snprintf(store->err, sizeof(store->err),
             "the event log has handed out its last seq (2^63 - 1): no command can commit");
    return STORE_ERR;
}

int store_ping(struct store *store)
{
    return store->backend->ping(store);
}

int store_append_event(struct store *store, const struct product *p,
                       const struct store_new_event *event, int64_t *seq)
{
    return store->backend->append_event(store, p, event, seq);
}

int store_head_seq(struct store *store, int64_t *seq)
{
    return store->backend->head_seq(store, seq);
}

int store_count_products(struct store *store, int64_t *count)
{
    return store->backend->count_products(store, count);
}

int store_read_events(struct store *store, int64_t after_seq, int limit, store_event_fn fn,
                      void *arg)
{
    return store->backend->read_events(store, after_seq, limit, fn, arg);
}

int store_snapshot_begin(struct store *store, int64_t *head_seq)
{
    return store->backend->snapshot_begin(store, head_seq);
}

int store_scan_products(struct store *store, const char *after_id, int limit, store_product_fn fn,
                        void *arg)
{
    return store->backend->scan_products(store, after_id, limit, fn, arg);
}

void store_snapshot_end(struct store *store)
{
    store->backend->snapshot_end(store);
}

int store_lead(struct store *store, const char *instance_id, int64_t epoch_above,
               struct store_leader *out)
{
    return store->backend->lead(store, instance_id, epoch_above, out);
}
