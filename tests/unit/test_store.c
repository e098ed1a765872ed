/* test_store.c - the store interface (the SQLite backend; PostgreSQL only where no server is
 * needed) and the writer's group commit, on a real database file in a
 * temporary directory (each Criterion test runs in its own process). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "command/store.h"
#include "command/writer.h"
#include "common/clock.h"
#include "domain/event.h"
#include "domain/view.h"
#include "projection/apply.h"

static char db_path[64];

static struct store *open_store(void)
{
    char dir[] = "/tmp/catalogd-store-XXXXXX", err[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db_path, sizeof(db_path), "%s/catalog.db", dir);
    struct store *store = NULL;
    cr_assert_eq(store_open(db_path, STORE_DURABILITY_NORMAL, &store, err, sizeof(err)), 0, "%s",
                 err);
    return store;
}

static struct product product(const char *id, const char *sku, int64_t stock)
{
    struct product p = {.price_cents = 1999, .stock = stock, .version = 1};
    snprintf(p.id, sizeof(p.id), "%s", id);
    snprintf(p.sku, sizeof(p.sku), "%s", sku);
    snprintf(p.name, sizeof(p.name), "Widget");
    snprintf(p.created_at, sizeof(p.created_at), "2026-11-30T12:00:00.000Z");
    snprintf(p.updated_at, sizeof(p.updated_at), "2026-11-30T12:00:00.000Z");
    return p;
}

/* An event of "type" for "p" with the payload "{}", at p's updated_at. */
static struct store_new_event event_of(const struct product *p, const char *type, const char *nonce)
{
    return (struct store_new_event){type, "{}", 2, p->updated_at, nonce};
}

#define NONCE_1 "0123456789abcdef"

#define ID_A "01a22251-dd91-7000-8f9f-c3d82b98a444"
#define ID_B "01a22252-179d-7000-af59-8c35b52a6e38"

Test(store, a_duplicate_sku_names_its_owner)
{
    struct store *store = open_store();
    char owner[UUID_TEXT_LEN + 1] = "";
    struct product a = product(ID_A, "SKU-1", 3), b = product(ID_B, "SKU-1", 1), got;
    cr_assert_eq(store_begin(store), STORE_OK);
    cr_assert_eq(store_insert_product(store, &a, owner), STORE_OK);
    cr_assert_eq(store_insert_product(store, &b, owner), STORE_DUPLICATE);
    cr_assert_str_eq(owner, ID_A);
    cr_assert_eq(store_commit(store), STORE_OK);
    cr_assert_eq(store_get_product(store, ID_A, &got), STORE_OK);
    cr_assert_str_eq(got.sku, "SKU-1");
    cr_assert_eq(store_get_product(store, ID_B, &got), STORE_NOT_FOUND);
    cr_assert_eq(store_find_sku(store, "SKU-1", owner), STORE_OK);
    cr_assert_eq(store_find_sku(store, "NONE", owner), STORE_NOT_FOUND);
    store_close(store);
}

/* A create in one call: the product and its event, or, for a taken sku, nothing and the owner. */
Test(store, create_product_writes_the_product_and_its_event_or_nothing)
{
    struct store *store = open_store();
    char owner[UUID_TEXT_LEN + 1] = "";
    struct product a = product(ID_A, "SKU-1", 3), b = product(ID_B, "SKU-1", 1);
    int64_t seq = 0, count = 0, head = 0;
    cr_assert_eq(store_begin(store), STORE_OK);
    struct store_new_event created_a = event_of(&a, "ProductCreated", NONCE_1),
                           created_b = event_of(&b, "ProductCreated", NONCE_1);
    cr_assert_eq(store_create_product(store, &a, &created_a, owner, &seq), STORE_OK);
    cr_assert_eq(seq, 1);
    seq = 0;
    cr_assert_eq(store_create_product(store, &b, &created_b, owner, &seq), STORE_DUPLICATE);
    cr_assert_str_eq(owner, ID_A);
    cr_assert_eq(seq, 0);
    cr_assert_eq(store_commit(store), STORE_OK);
    cr_assert_eq(store_count_products(store, &count), STORE_OK);
    cr_assert_eq(count, 1);
    cr_assert_eq(store_head_seq(store, &head), STORE_OK);
    cr_assert_eq(head, 1);
    store_close(store);
}

/* Group commit: one transaction, one savepoint per command; a refused command undoes only
 * its own writes. */
Test(store, a_savepoint_undoes_one_command_only)
{
    struct store *store = open_store();
    char owner[UUID_TEXT_LEN + 1];
    struct product a = product(ID_A, "A", 1), b = product(ID_B, "B", 1);
    int64_t seq;
    cr_assert_eq(store_begin(store), STORE_OK);
    cr_assert_eq(store_savepoint(store), STORE_OK);
    cr_assert_eq(store_insert_product(store, &a, owner), STORE_OK);
    struct store_new_event created = event_of(&a, "ProductCreated", NONCE_1);
    cr_assert_eq(store_append_event(store, &a, &created, &seq), 0);
    cr_assert_eq(store_release_savepoint(store), STORE_OK);
    cr_assert_eq(store_savepoint(store), STORE_OK);
    cr_assert_eq(store_insert_product(store, &b, owner), STORE_OK);
    store_rollback_savepoint(store);
    cr_assert_eq(store_commit(store), STORE_OK);
    int64_t count = 0, head = 0;
    cr_assert_eq(store_count_products(store, &count), STORE_OK);
    cr_assert_eq(count, 1);
    cr_assert_eq(store_head_seq(store, &head), STORE_OK);
    cr_assert_eq(head, seq);
    store_close(store);
}

static int count_events(const struct store_event *event, void *arg)
{
    int64_t *last = arg;
    cr_assert_gt(event->seq, *last, "events come in seq order");
    cr_assert_str_eq(event->nonce, NONCE_1, "an event is read back with its nonce");
    *last = event->seq;
    return 0;
}

Test(store, events_are_read_in_seq_order_after_a_seq)
{
    struct store *store = open_store();
    struct product a = product(ID_A, "A", 1);
    int64_t seqs[5];
    cr_assert_eq(store_begin(store), STORE_OK);
    struct store_new_event updated = event_of(&a, EVENT_TYPE_NAMES[EVENT_PRODUCT_UPDATED], NONCE_1);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(store_append_event(store, &a, &updated, &seqs[i]), STORE_OK);
    cr_assert_eq(store_commit(store), STORE_OK);
    int64_t last = seqs[1];
    cr_assert_eq(store_read_events(store, seqs[1], 10, count_events, &last), 3);
    cr_assert_eq(last, seqs[4]);
    store_close(store);
}

Test(store, idempotent_responses_round_trip_and_are_purged)
{
    struct store *store = open_store();
    struct store_idempotent_response put = {.status = 201, .body = "{\"id\":1}", .body_len = 8};
    memset(put.fingerprint, 7, sizeof(put.fingerprint));
    snprintf(put.location, sizeof(put.location), "/products/x");
    snprintf(put.content_type, sizeof(put.content_type), "application/json");
    cr_assert_eq(store_begin(store), STORE_OK);
    cr_assert_eq(store_idempotency_put(store, "key-1", &put, 1000), STORE_OK);
    cr_assert_eq(store_commit(store), STORE_OK);
    struct store_idempotent_response got = {0};
    cr_assert_eq(store_idempotency_get(store, "key-1", &got), STORE_OK);
    cr_assert_eq(got.status, 201);
    cr_assert_eq(got.body_len, 8);
    cr_assert_eq(memcmp(got.body, "{\"id\":1}", 8), 0);
    cr_assert_eq(memcmp(got.fingerprint, put.fingerprint, sizeof(put.fingerprint)), 0);
    free(got.body);
    int64_t count = 0;
    cr_assert_eq(store_idempotency_count(store, &count), STORE_OK);
    cr_assert_eq(count, 1);
    int deleted = 0;
    cr_assert_eq(store_idempotency_purge(store, 2000, &deleted), STORE_OK);
    cr_assert_eq(deleted, 1);
    cr_assert_eq(store_idempotency_get(store, "key-1", &got), STORE_NOT_FOUND);
    store_close(store);
}

Test(store, a_database_reopens_at_its_schema_and_a_reader_reads_it)
{
    struct store *store = open_store(), *reader = NULL;
    char owner[UUID_TEXT_LEN + 1], err[256];
    struct product a = product(ID_A, "A", 1), got;
    cr_assert_eq(store_begin(store), STORE_OK);
    cr_assert_eq(store_insert_product(store, &a, owner), STORE_OK);
    cr_assert_eq(store_commit(store), STORE_OK);
    store_close(store);
    cr_assert_eq(store_open(db_path, STORE_DURABILITY_NORMAL, &store, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(store_open_reader(db_path, &reader, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(store_get_product(reader, ID_A, &got), STORE_OK);
    cr_assert_eq(store_find_sku(reader, "A", owner), STORE_OK); /* verify reads skus */
    store_close(reader);
    store_close(store);
}

/* Under --durability full the writer gathers its WAL frames (command/wal_gather.h), except
 * on a database without powersafe overwrite, where SQLite writes frames after the commit's
 * sync: a reader must read every commit there too, the one SQLite pads to a sector included. */
Test(store, a_durable_store_on_a_database_without_powersafe_overwrite_is_read_after_each_commit)
{
    char dir[] = "/tmp/catalogd-store-XXXXXX", err[256], uri[128];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db_path, sizeof(db_path), "%s/catalog.db", dir);
    snprintf(uri, sizeof(uri), "file:%s?psow=0", db_path);
    struct store *store = NULL, *reader = NULL;
    cr_assert_eq(store_open(uri, STORE_DURABILITY_FULL, &store, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(store_open_reader(db_path, &reader, err, sizeof(err)), 0, "%s", err);
    const char *ids[] = {ID_A, ID_B};
    for (int i = 0; i < 2; i++) {
        char owner[UUID_TEXT_LEN + 1], sku[16];
        snprintf(sku, sizeof(sku), "P-%d", i);
        struct product p = product(ids[i], sku, 1), got;
        int64_t count = 0;
        cr_assert_eq(store_begin(store), STORE_OK);
        cr_assert_eq(store_insert_product(store, &p, owner), STORE_OK);
        cr_assert_eq(store_commit(store), STORE_OK);
        cr_assert_eq(store_count_products(reader, &count), STORE_OK, "%s", store_errmsg(reader));
        cr_assert_eq(count, i + 1);
        cr_assert_eq(store_get_product(reader, ids[i], &got), STORE_OK);
    }
    store_close(reader);
    store_close(store);
}

/* ---- the writer ---- */

struct waited {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int completed;
};
static struct waited waited = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void on_complete(struct command *cmd)
{
    (void)cmd;
    pthread_mutex_lock(&waited.lock);
    waited.completed++;
    pthread_cond_signal(&waited.done);
    pthread_mutex_unlock(&waited.lock);
}

static void wait_completed(int n)
{
    pthread_mutex_lock(&waited.lock);
    while (waited.completed < n)
        pthread_cond_wait(&waited.done, &waited.lock);
    pthread_mutex_unlock(&waited.lock);
}

/* The writer's listener: the head each commit reports (read after wait_completed, whose lock
 * orders it after the write), and the seq it is told is already in the log. */
static int64_t committed_head, known_in_the_log;

static void note_committed(int64_t head_seq, const struct command *batch, void *arg)
{
    (void)batch;
    (void)arg;
    committed_head = head_seq;
}

static int64_t known_seq(void *arg)
{
    (void)arg;
    return known_in_the_log;
}

static const struct writer_listener LISTENER = {.committed = note_committed,
                                                .known_seq = known_seq};

static struct command *create_command(const char *sku, int64_t stock)
{
    struct command *cmd = calloc(1, sizeof(*cmd));
    cmd->kind = COMMAND_CREATE_PRODUCT;
    cmd->expected_version = COMMAND_ANY_VERSION;
    cmd->draft.fields =
        PRODUCT_FIELD_SKU | PRODUCT_FIELD_NAME | PRODUCT_FIELD_PRICE | PRODUCT_FIELD_STOCK;
    snprintf(cmd->draft.sku, sizeof(cmd->draft.sku), "%s", sku);
    snprintf(cmd->draft.name, sizeof(cmd->draft.name), "Widget");
    cmd->draft.price_cents = 500;
    cmd->draft.stock = stock;
    cmd->complete = on_complete;
    return cmd;
}

static struct command *stock_command(const char *product_id, int64_t delta)
{
    struct command *cmd = calloc(1, sizeof(*cmd));
    cmd->kind = COMMAND_ADJUST_STOCK;
    cmd->expected_version = COMMAND_ANY_VERSION;
    cmd->delta = delta;
    cmd->complete = on_complete;
    memcpy(cmd->product_id, product_id, sizeof(cmd->product_id));
    return cmd;
}

Test(writer, group_commit_keeps_each_commands_outcome)
{
    struct store *store = open_store();
    struct writer *writer = NULL;
    struct writer_limits limits = {.max_idempotency_keys = 100, .max_queued = 100};
    cr_assert_eq(writer_start(store, &limits, &LISTENER, &writer), 0);
    struct command *first = create_command("SKU-W", 1), *duplicate = create_command("SKU-W", 2),
                   *other = create_command("SKU-X", 0);
    cr_assert_eq(writer_submit(writer, first), 0);
    cr_assert_eq(writer_submit(writer, duplicate), 0);
    cr_assert_eq(writer_submit(writer, other), 0);
    wait_completed(3);
    cr_assert_eq(first->outcome, COMMAND_DONE);
    cr_assert_eq(duplicate->outcome, COMMAND_DUPLICATE_SKU);
    cr_assert_str_eq(duplicate->conflict_id, first->product.id);
    cr_assert_eq(other->outcome, COMMAND_DONE);
    cr_assert_gt(other->seq, first->seq);
    cr_assert_eq(committed_head, other->seq);
    cr_assert(!first->seq_taken_again && !other->seq_taken_again);

    struct command *sell = stock_command(other->product.id, -1); /* stock 0: never below zero */
    cr_assert_eq(writer_submit(writer, sell), 0);
    wait_completed(4);
    cr_assert_eq(sell->outcome, COMMAND_INSUFFICIENT_STOCK);

    writer_stop(writer);
    struct command *late = create_command("SKU-LATE", 1); /* after the stop: refused at once */
    cr_assert_eq(writer_submit(writer, late), 0);
    cr_assert_eq(late->outcome, COMMAND_UNAVAILABLE);
    writer_free(writer);
    int64_t count = 0;
    cr_assert_eq(store_count_products(store, &count), STORE_OK);
    cr_assert_eq(count, 2);
    store_close(store);
    command_free(first);
    command_free(duplicate);
    command_free(other);
    command_free(sell);
    command_free(late);
}

/* A batch waits a little for the commands in flight: four were in flight at once, so a
 * command that comes alone right after waits for three more, 1 ms at most, and then commits
 * alone. The three did not come: the next lone command in the same window (0.1 s) does not
 * wait. Once nothing has been in flight for two windows, a lone command is all there is and
 * does not wait either. */
Test(writer, a_batch_waits_a_bounded_while_for_the_commands_in_flight)
{
    struct store *store = open_store();
    struct writer *writer = NULL;
    struct writer_limits limits = {.max_idempotency_keys = 100, .max_queued = 100};
    cr_assert_eq(writer_start(store, &limits, &LISTENER, &writer), 0);
    struct command *burst[4], *lone = create_command("SKU-LONE", 1),
                              *again = create_command("SKU-LONE-AGAIN", 1),
                              *later = create_command("SKU-LATER", 1);
    uint64_t burst_us = clock_mono_us();
    for (int i = 0; i < 4; i++) {
        char sku[24];
        snprintf(sku, sizeof(sku), "SKU-B%d", i);
        burst[i] = create_command(sku, 1);
        cr_assert_eq(writer_submit(writer, burst[i]), 0);
    }
    wait_completed(4);
    for (int i = 0; i < 4; i++)
        writer_command_answered(writer);
    struct writer_stats before, after;
    writer_get_stats(writer, &before);

    uint64_t submitted_us = clock_mono_us();
    cr_assert_eq(writer_submit(writer, lone), 0);
    wait_completed(5);
    uint64_t waited_us = clock_mono_us() - submitted_us;
    writer_command_answered(writer);
    writer_get_stats(writer, &after);
    cr_assert_geq(waited_us, 1000, "it waited for the batch to fill: %llu us",
                  (unsigned long long)waited_us);
    cr_assert_eq(after.fill_waits, before.fill_waits + 1);
    cr_assert_eq(after.batches, before.batches + 1, "then it committed alone");
    cr_assert_eq(lone->outcome, COMMAND_DONE);

    cr_assert_eq(writer_submit(writer, again), 0);
    wait_completed(6);
    writer_command_answered(writer);
    writer_get_stats(writer, &before);
    if (clock_mono_us() - burst_us < 90000) /* else the window ended: a machine this slow */
        cr_assert_eq(before.fill_waits, after.fill_waits, "the wait that ran out is not repeated");
    cr_assert_eq(again->outcome, COMMAND_DONE);

    usleep(250000);
    writer_get_stats(writer, &after);
    cr_assert_eq(writer_submit(writer, later), 0);
    wait_completed(7);
    writer_command_answered(writer);
    writer_get_stats(writer, &before);
    cr_assert_eq(before.fill_waits, after.fill_waits, "a lone client does not wait");
    cr_assert_eq(later->outcome, COMMAND_DONE);

    writer_stop(writer);
    writer_free(writer);
    store_close(store);
    for (int i = 0; i < 4; i++)
        command_free(burst[i]);
    command_free(lone);
    command_free(again);
    command_free(later);
}

/* What a listener saw of the batches: the log's fingerprints of their events, read in each
 * batch's own transaction before COMMIT, and those of the events made from its commands in
 * memory after it. Checked on the test's thread. */
static struct {
    size_t read, made;
    int64_t seqs[8];
    int found[8];
    char in_transaction[8][APPLY_FINGERPRINT_MAX];
    char in_memory[8][APPLY_FINGERPRINT_MAX];
} seen;

static void note_committing(struct store *store, const struct command *batch, void *arg)
{
    (void)arg;
    for (const struct command *cmd = batch; cmd && seen.read < 8; cmd = cmd->next)
        if (cmd->outcome == COMMAND_DONE && cmd->seq > 0) {
            size_t i = seen.read++;
            seen.seqs[i] = cmd->seq;
            seen.found[i] = apply_log_fingerprint(store, cmd->seq, seen.in_transaction[i]);
        }
}

static void note_fingerprints(int64_t head_seq, const struct command *batch, void *arg)
{
    (void)head_seq;
    (void)arg;
    for (const struct command *cmd = batch; cmd && seen.made < 8; cmd = cmd->next)
        if (cmd->outcome == COMMAND_DONE && cmd->seq > 0) {
            struct apply_event event;
            apply_event_from_product(cmd->seq, 0, &cmd->product, cmd->view, cmd->view_len,
                                     cmd->event_nonce, &event);
            apply_event_fingerprint(&event, seen.in_memory[seen.made++]);
            apply_event_clear(&event);
        }
}

/* The projector checks each batch against the fingerprint of the event before it, which the
 * writer hands over: read in the commit's transaction, or made in memory from the event
 * before it in the same commit. Both must be what the log gives that event, for a create and
 * for a later change (version 2, a later time) alike. */
Test(writer, an_event_made_in_memory_has_the_fingerprint_the_log_gives_it)
{
    struct store *store = open_store();
    struct writer *writer = NULL;
    struct writer_limits limits = {.max_idempotency_keys = 100, .max_queued = 100};
    struct writer_listener listener = {.committing = note_committing,
                                       .committed = note_fingerprints};
    cr_assert_eq(writer_start(store, &limits, &listener, &writer), 0);
    struct command *a = create_command("SKU-F1", 1), *b = create_command("SKU-F2", 0);
    cr_assert_eq(writer_submit(writer, a), 0);
    cr_assert_eq(writer_submit(writer, b), 0);
    wait_completed(2);
    usleep(2000); /* the change is recorded at a later millisecond than the create */
    struct command *sell = stock_command(a->product.id, -1);
    cr_assert_eq(writer_submit(writer, sell), 0);
    wait_completed(3);
    writer_stop(writer);
    writer_free(writer);
    cr_assert_eq(sell->outcome, COMMAND_DONE);
    cr_assert_eq(seen.read, 3);
    cr_assert_eq(seen.made, 3);
    for (size_t i = 0; i < seen.read; i++) {
        char in_the_log[APPLY_FINGERPRINT_MAX];
        cr_assert_eq(seen.found[i], 1, "the batch's own event is in its transaction");
        cr_assert_eq(apply_log_fingerprint(store, seen.seqs[i], in_the_log), 1);
        cr_assert_str_eq(seen.in_transaction[i], in_the_log);
        cr_assert_str_eq(seen.in_memory[i], in_the_log);
    }
    cr_assert_str_neq(seen.in_memory[2], seen.in_memory[0], "version 2 is another event");
    for (size_t i = 0; i < seen.made; i++) /* "<id> <version> <time> <16 hex digits>" */
        cr_assert_eq(strspn(strrchr(seen.in_memory[i], ' ') + 1, "0123456789abcdef"),
                     EVENT_NONCE_LEN, "%s ends with its nonce", seen.in_memory[i]);
    store_close(store);
    command_free(a);
    command_free(b);
    command_free(sell);
}

/* apply_event_fingerprint is built by hand: it must read as "%s %lld %s %s" writes it, and as
 * the form of before nonces, "%s %lld %s", for an entry without one, for any entry, poison ones
 * included. */
Test(apply, a_fingerprint_reads_as_printf_writes_it)
{
    static const struct {
        const char *id;
        int64_t version;
        const char *at;
        const char *nonce;
    } cases[] = {
        {ID_A, 1, "2026-11-30T12:00:00.000Z", NONCE_1},
        {ID_A, 1, "2026-11-30T12:00:00.000Z", ""},
        {"unreadable-product-id", INT64_MAX, "2026-11-30T12:00:00.000Z", "ffffffffffffffff"},
        {ID_B, INT64_MIN, "", NONCE_1},
        {"", 0, "not a time", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct apply_event event = {.version = cases[i].version};
        snprintf(event.id, sizeof(event.id), "%s", cases[i].id);
        snprintf(event.recorded_at, sizeof(event.recorded_at), "%s", cases[i].at);
        snprintf(event.nonce, sizeof(event.nonce), "%s", cases[i].nonce);
        char got[APPLY_FINGERPRINT_MAX], want[APPLY_FINGERPRINT_MAX];
        apply_event_fingerprint(&event, got);
        snprintf(want, sizeof(want), "%s %lld %s%s%s", event.id, (long long)event.version,
                 event.recorded_at, event.nonce[0] ? " " : "", event.nonce);
        cr_assert_str_eq(got, want);
    }
}

Test(store, the_database_name_picks_the_backend)
{
    cr_assert(store_is_postgresql("postgresql://user:pw@localhost:5432/catalog"));
    cr_assert(store_is_postgresql("postgres://localhost/catalog"));
    cr_assert(store_is_postgresql("PostgreSQL://localhost/catalog"));
    cr_assert_not(store_is_postgresql("./var/catalog.db"));
    cr_assert_not(store_is_postgresql("/srv/postgresql/catalog.db"));
    cr_assert_not(store_is_postgresql("postgresql:catalog.db"));
}

Test(store, an_sqlite_store_names_itself_and_always_leads)
{
    struct store *store = open_store();
    cr_assert_str_eq(store_backend_name(store), "sqlite");
    cr_assert_not(store_is_shared(store));
    cr_assert_eq(store_ping(store), STORE_OK);
    struct store_leader leader;
    cr_assert_eq(store_lead(store, "host:1", 0, &leader), STORE_OK);
    cr_assert_eq(leader.leading, 1);
    cr_assert_eq(leader.epoch, 0);
    cr_assert_str_eq(leader.instance_id, "host:1");
    store_close(store);
}

Test(store, a_bad_postgresql_uri_is_refused_without_showing_its_password)
{
    struct store *store = NULL;
    char err[256] = "";
    cr_assert_eq(store_open("postgresql://me:s3cret@localhost/catalog?nosuch=1",
                            STORE_DURABILITY_FULL, &store, err, sizeof(err)),
                 -1);
    cr_assert_null(store);
    cr_assert_not_null(strstr(err, "nosuch"), "%s", err);
    cr_assert_null(strstr(err, "s3cret"), "%s", err);
}

Test(store, an_idempotency_key_stored_twice_is_a_conflict)
{
    struct store *store = open_store();
    struct store_idempotent_response response = {.status = 201, .body = "{}", .body_len = 2};
    cr_assert_eq(store_begin(store), STORE_OK);
    cr_assert_eq(store_idempotency_put(store, "key-1", &response, 1000), STORE_OK);
    cr_assert_eq(store_idempotency_put(store, "key-1", &response, 1001), STORE_CONFLICT);
    cr_assert_eq(store_commit(store), STORE_OK);
    store_close(store);
}

Test(writer, a_seq_not_above_what_the_log_had_is_marked_taken_again)
{
    /* The log went back in time under the writer (a backup restored): the projector's checkpoint
     * says seq 5 was in it, and the next event gets seq 1 again. */
    struct store *store = open_store();
    struct writer *writer = NULL;
    struct writer_limits limits = {.max_idempotency_keys = 100, .max_queued = 100};
    known_in_the_log = 5;
    cr_assert_eq(writer_start(store, &limits, &LISTENER, &writer), 0);
    struct command *again = create_command("SKU-AGAIN", 1);
    cr_assert_eq(writer_submit(writer, again), 0);
    wait_completed(1);
    cr_assert_eq(again->outcome, COMMAND_DONE);
    cr_assert_eq(again->seq, 1);
    cr_assert(again->seq_taken_again);
    cr_assert_eq(committed_head, 1, "the head is the log's again, not the lost one");
    known_in_the_log = 0; /* the read model rebuilt: the next seq is above all it knows */
    struct command *next = create_command("SKU-NEXT", 1);
    cr_assert_eq(writer_submit(writer, next), 0);
    wait_completed(2);
    cr_assert_eq(next->seq, 2);
    cr_assert(!next->seq_taken_again);
    cr_assert_eq(committed_head, 2);
    writer_stop(writer);
    writer_free(writer);
    command_free(again);
    command_free(next);
    store_close(store);
}
