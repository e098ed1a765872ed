/* writer.c - group commit on one thread.
 * Invariant: commands leave the queue in submission order and their events get increasing
 * seqs; a refused command leaves nothing of itself (rolled back to its SAVEPOINT, or refused
 * before it wrote), a failed COMMIT fails them all. */
#include "command/writer.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "command/response.h"
#include "common/clock.h"
#include "common/digits.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "domain/event.h"
#include "domain/timestamp.h"
#include "domain/uuid7.h"

#define IDEMPOTENCY_KEEP_MS        (25ULL * 3600 * 1000) /* "at least 24 h" */
#define IDEMPOTENCY_PURGE_EVERY_MS 60000

/* Filling a batch (fill_batch): how long the writer waits at most for the commands in flight,
 * and the window over which it remembers how many were in flight at once. */
#define BATCH_FILL_WAIT_US       1000
#define IN_FLIGHT_PEAK_WINDOW_US 100000

/* A batch whose connection broke before its commit runs again only when the break came this
 * soon: the run again may wait for the write lock (lock_timeout, 2 s) or a connection (2 s), and
 * a command answers 503 within about 3 s when PostgreSQL is gone (README). */
#define WRITER_RERUN_WITHIN_MS 1000

struct writer {
    struct store *store;
    struct writer_listener listener;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct command *queue_head, *queue_tail; /* guarded by lock */
    int64_t queued;                          /* guarded by lock */
    int64_t queued_keyed;                    /* of them with an Idempotency-Key; by lock */
    int stopping;                            /* guarded by lock */
    int stopped;                             /* guarded by lock: the thread has ended */

    /* Commands taken (queued or refused at stop) whose answer has not gone out yet. */
    _Atomic int64_t in_flight;
    int64_t in_flight_peak, in_flight_peak_before; /* guarded by lock: this window's, the last's */
    uint64_t peak_window_started_us;               /* guarded by lock */
    int64_t filling_to; /* guarded by lock: the queue length fill_batch waits for, or 0 */
    int64_t fill_cap;   /* guarded by lock: in this window, fill to no more than this (0: no cap) */

    struct writer_limits limits;
    _Atomic int64_t stored_keys; /* idempotency keys in the store, as of the last commit */
    int64_t batch_keys;          /* keys the running batch has stored so far */

    uint64_t last_purge_ms;
    struct uuid7_generator ids;
    struct store_create creates[WRITER_MAX_BATCH]; /* writer thread only: execute_creates' run */
    uint8_t random_pool[4096];
    size_t random_used;

    int64_t head_seq; /* writer thread only: the highest seq known to be in the log */
    atomic_int healthy;
    pthread_mutex_t stats_lock;
    struct writer_stats stats;
};

static void random_bytes(struct writer *w, uint8_t out[8])
{
    if (w->random_used + 8 > sizeof(w->random_pool)) {
        /* getrandom() on a pool of this size does not return short unless interrupted. */
        while (getrandom(w->random_pool, sizeof(w->random_pool), 0) < 0)
            ;
        w->random_used = 0;
    }
    memcpy(out, w->random_pool + w->random_used, 8);
    w->random_used += 8;
}

static void fail_command(struct command *cmd, enum command_outcome outcome, const char *why)
{
    cmd->outcome = outcome;
    snprintf(cmd->error, sizeof(cmd->error), "%s", why);
}

/* The event of the product's new state: its view is the payload, encoded here, recorded at
 * the product's updated_at, with a nonce of its own. */
static int new_event(struct writer *w, struct command *cmd, enum event_type type,
                     struct store_new_event *out)
{
    assert(type >= 0 && type < EVENT_TYPE_COUNT);
    cmd->view_len = view_encode(&cmd->product, cmd->view, sizeof(cmd->view));
    if (cmd->view_len == 0) return STORE_ERR;
    _Static_assert(EVENT_NONCE_BYTES == 8, "a nonce is one draw of random_bytes");
    uint8_t random[EVENT_NONCE_BYTES];
    random_bytes(w, random);
    for (size_t i = 0; i < sizeof(random); i++)
        digits_hex(cmd->event_nonce + 2 * i, random[i], 2);
    cmd->event_nonce[EVENT_NONCE_LEN] = '\0';
    *out = (struct store_new_event){EVENT_TYPE_NAMES[type], cmd->view, cmd->view_len,
                                    cmd->product.updated_at, cmd->event_nonce};
    return STORE_OK;
}

/* Records the product's new state as an event. */
static int append_event(struct writer *w, struct command *cmd, enum event_type type)
{
    struct store_new_event event;
    if (new_event(w, cmd, type, &event) < 0) return STORE_ERR;
    return store_append_event(w->store, &cmd->product, &event, &cmd->seq);
}

/* The new product of a create (a fresh id, the draft, version 1) and its event. */
static int new_product(struct writer *w, struct command *cmd, uint64_t now_ms,
                       struct store_new_event *event)
{
    struct product *p = &cmd->product;
    memset(p, 0, sizeof(*p));
    uint8_t random[8];
    random_bytes(w, random);
    uuid7_next(&w->ids, now_ms, random, p->id);
    product_apply_draft(p, &cmd->draft);
    p->version = 1;
    timestamp_format(now_ms, p->created_at);
    memcpy(p->updated_at, p->created_at, sizeof(p->updated_at));
    return new_event(w, cmd, EVENT_PRODUCT_CREATED, event);
}

/* A create's outcome from the store's answer "rc". */
static int settle_create(struct command *cmd, int rc)
{
    if (rc == STORE_DUPLICATE) {
        cmd->view_len = 0; /* no product was made: no view to answer with */
        fail_command(cmd, COMMAND_DUPLICATE_SKU, "sku already exists");
        return STORE_OK; /* a business outcome, not a failure of the batch */
    }
    return rc;
}

static int create_product(struct writer *w, struct command *cmd, uint64_t now_ms)
{
    /* The product and its event in one call (one statement on PostgreSQL). */
    struct store_new_event event;
    if (new_product(w, cmd, now_ms, &event) < 0) return STORE_ERR;
    return settle_create(
        cmd, store_create_product(w->store, &cmd->product, &event, cmd->conflict_id, &cmd->seq));
}

/* Loads the product a change applies to and checks If-Match. Returns STORE_OK with
 * cmd->outcome still COMMAND_DONE when the change may go ahead. */
static int load_for_change(struct writer *w, struct command *cmd)
{
    int rc = store_get_product(w->store, cmd->product_id, &cmd->product);
    if (rc == STORE_NOT_FOUND) {
        fail_command(cmd, COMMAND_NOT_FOUND, "no such product");
        return STORE_OK;
    }
    if (rc < 0) return rc;
    if (cmd->expected_version != COMMAND_ANY_VERSION &&
        cmd->expected_version != cmd->product.version)
        fail_command(cmd, COMMAND_VERSION_MISMATCH, "version mismatch");
    return STORE_OK;
}

static void bump_version(struct command *cmd, uint64_t now_ms)
{
    cmd->product.version++;
    timestamp_format(now_ms, cmd->product.updated_at);
}

static int update_product(struct writer *w, struct command *cmd, uint64_t now_ms)
{
    int rc = load_for_change(w, cmd);
    if (rc < 0 || cmd->outcome != COMMAND_DONE) return rc;
    product_apply_draft(&cmd->product, &cmd->draft);
    bump_version(cmd, now_ms);
    if ((rc = store_update_product(w->store, &cmd->product)) < 0) return rc;
    return append_event(w, cmd, EVENT_PRODUCT_UPDATED);
}

static int delete_product(struct writer *w, struct command *cmd, uint64_t now_ms)
{
    int rc = load_for_change(w, cmd);
    if (rc < 0 || cmd->outcome != COMMAND_DONE) return rc;
    bump_version(cmd, now_ms); /* the deletion is a change too: its event carries version+1 */
    if ((rc = store_delete_product(w->store, cmd->product.id)) < 0) return rc;
    return append_event(w, cmd, EVENT_PRODUCT_DELETED);
}

/* The business rule that needs ACID: stock never goes below zero, whatever the concurrency,
 * because the check and the change happen in the single writer's transaction. */
static int adjust_stock(struct writer *w, struct command *cmd, uint64_t now_ms)
{
    int rc = load_for_change(w, cmd);
    if (rc < 0 || cmd->outcome != COMMAND_DONE) return rc;
    int64_t stock = cmd->product.stock + cmd->delta;
    if (stock < 0) {
        fail_command(cmd, COMMAND_INSUFFICIENT_STOCK, "insufficient stock");
        return STORE_OK;
    }
    if (stock > PRODUCT_STOCK_MAX) {
        fail_command(cmd, COMMAND_STOCK_OVERFLOW, "stock overflow");
        return STORE_OK;
    }
    cmd->product.stock = stock;
    bump_version(cmd, now_ms);
    if ((rc = store_update_product(w->store, &cmd->product)) < 0) return rc;
    return append_event(w, cmd, EVENT_STOCK_ADJUSTED);
}

static int (*const EXECUTORS[])(struct writer *, struct command *, uint64_t) = {
    [COMMAND_CREATE_PRODUCT] = create_product,
    [COMMAND_UPDATE_PRODUCT] = update_product,
    [COMMAND_DELETE_PRODUCT] = delete_product,
    [COMMAND_ADJUST_STOCK] = adjust_stock,
};

/* With an Idempotency-Key: a key seen before answers from the store instead of running the
 * command again, and a new key needs room in the store (--max-idempotency-keys). Returns
 * STORE_OK; cmd->outcome says whether to run the command. */
static int check_idempotency_key(struct writer *w, struct command *cmd)
{
    free(cmd->replay.body); /* found by a run of the batch that did not commit */
    cmd->replay.body = NULL;
    int rc = store_idempotency_get(w->store, cmd->idempotency_key, &cmd->replay);
    if (rc == STORE_NOT_FOUND) {
        if (atomic_load(&w->stored_keys) + w->batch_keys >= w->limits.max_idempotency_keys)
            fail_command(cmd, COMMAND_KEYS_FULL, "idempotency keys full");
        return STORE_OK;
    }
    if (rc < 0) return rc;
    if (memcmp(cmd->replay.fingerprint, cmd->fingerprint, sizeof(cmd->fingerprint)) == 0)
        cmd->outcome = COMMAND_REPLAYED;
    else
        fail_command(cmd, COMMAND_KEY_REUSED, "idempotency key reused");
    return STORE_OK;
}

/* Which outcomes are stored under the command's key, to be replayed. Not a replay or a refusal
 * of the key itself; not a 404 either: product ids are never reused, so running the command
 * again answers the same 404, and storing it would let anyone fill the store with keys on
 * random ids at no cost. */
static const int STORED_OUTCOMES[] = {
    [COMMAND_DONE] = 1,
    [COMMAND_DUPLICATE_SKU] = 1,
    [COMMAND_VERSION_MISMATCH] = 1,
    [COMMAND_INSUFFICIENT_STOCK] = 1,
    [COMMAND_STOCK_OVERFLOW] = 1,
    [COMMAND_NOT_FOUND] = 0,
    [COMMAND_REPLAYED] = 0,
    [COMMAND_KEY_REUSED] = 0,
    [COMMAND_UNAVAILABLE] = 0,
    [COMMAND_KEYS_FULL] = 0,
    [COMMAND_KEY_IN_FLIGHT] = 0,
};

/* Whether the command came with an Idempotency-Key. */
static int has_key(const struct command *cmd)
{
    return cmd->idempotency_key[0] != '\0';
}

/* Stores the command's response under its key, in the command's transaction. */
static int remember_response(struct writer *w, struct command *cmd, uint64_t now_ms)
{
    struct command_response response;
    command_response_render(cmd, &response);
    struct store_idempotent_response stored = {
        .status = response.status, .body = response.body, .body_len = response.body_len};
    memcpy(stored.fingerprint, cmd->fingerprint, sizeof(stored.fingerprint));
    snprintf(stored.location, sizeof(stored.location), "%s", response.location);
    snprintf(stored.etag, sizeof(stored.etag), "%s", response.etag);
    snprintf(stored.content_type, sizeof(stored.content_type), "%s",
             response.content_type ? response.content_type : "");
    int rc = store_idempotency_put(w->store, cmd->idempotency_key, &stored, now_ms);
    command_response_clear(&response);
    return rc;
}

/* Runs one command inside its savepoint. Returns STORE_OK (the command has its outcome, done
 * or a business refusal) or STORE_ERR (the batch cannot go on).
 * Without an Idempotency-Key the savepoint is left out, on any store: every executor decides a
 * refusal before it writes anything (a duplicate sku is an INSERT that wrote nothing: a failed
 * one on SQLite, where a failed statement undoes only itself, one that did nothing on
 * PostgreSQL), and any other failure fails the whole batch, so there is never a part of a
 * command to undo. On PostgreSQL each savepoint is two statements more, and a transaction of
 * more than 64 subtransactions slows every other session's snapshots. */
static int execute(struct writer *w, struct command *cmd, uint64_t now_ms)
{
    cmd->outcome = COMMAND_DONE;
    cmd->seq = 0; /* a batch run again runs its commands again */
    assert(cmd->kind >= 0 && cmd->kind < sizeof(EXECUTORS) / sizeof(EXECUTORS[0]));
    if (!has_key(cmd)) return EXECUTORS[cmd->kind](w, cmd, now_ms);
    if (store_savepoint(w->store) < 0) return STORE_ERR;
    int rc = check_idempotency_key(w, cmd);
    if (rc == STORE_OK && cmd->outcome == COMMAND_DONE) rc = EXECUTORS[cmd->kind](w, cmd, now_ms);
    if (rc == STORE_OK && cmd->outcome != COMMAND_DONE) {
        /* Refused: undo whatever the command wrote before it was refused. */
        store_rollback_savepoint(w->store);
        if (store_savepoint(w->store) < 0) return STORE_ERR;
    }
    int remember = STORED_OUTCOMES[cmd->outcome];
    if (rc == STORE_OK && remember) rc = remember_response(w, cmd, now_ms);
    if (rc == STORE_CONFLICT) {
        /* Another writer stored this key since we looked. Write transactions of all
         * instances run one at a time, so this should not happen; if it does, the command
         * is undone and answers what the other stored, never 503 and never twice. */
        store_rollback_savepoint(w->store);
        if (store_savepoint(w->store) < 0) return STORE_ERR;
        cmd->outcome = COMMAND_DONE;
        cmd->seq = 0;
        remember = 0;
        rc = check_idempotency_key(w, cmd);
        if (rc == STORE_OK && cmd->outcome != COMMAND_REPLAYED &&
            cmd->outcome != COMMAND_KEY_REUSED)
            fail_command(cmd, COMMAND_KEY_IN_FLIGHT, "idempotency key in flight elsewhere");
    }
    if (rc == STORE_OK) rc = store_release_savepoint(w->store);
    if (rc == STORE_OK) {
        w->batch_keys += remember;
        return STORE_OK;
    }
    store_rollback_savepoint(w->store);
    return rc;
}

/* A create without an Idempotency-Key: execute_creates takes it with its neighbours. */
static int plain_create(const struct command *cmd)
{
    return cmd && cmd->kind == COMMAND_CREATE_PRODUCT && !has_key(cmd);
}

/* Runs the plain creates from "*cmd" on, up to the next command that is not one, with one
 * store call, and moves "*cmd" past them. Returns as execute does, and like execute takes no
 * savepoint for them. On PostgreSQL the run is one statement where each create alone costs a
 * round trip (store_create_products). */
static int execute_creates(struct writer *w, struct command **cmd, uint64_t now_ms)
{
    struct command *run = *cmd;
    size_t count = 0;
    for (struct command *c = run; plain_create(c) && count < WRITER_MAX_BATCH; c = c->next) {
        c->outcome = COMMAND_DONE;
        c->seq = 0;
        struct store_create *create = &w->creates[count++];
        if (new_product(w, c, now_ms, &create->event) < 0) return STORE_ERR;
        create->product = &c->product;
        create->seq = &c->seq;
        create->existing_id = c->conflict_id;
        *cmd = c->next;
    }
    if (store_create_products(w->store, w->creates, count) < 0) return STORE_ERR;
    struct command *c = run;
    for (size_t i = 0; i < count; i++, c = c->next)
        settle_create(c, w->creates[i].rc);
    return STORE_OK;
}

static void record_batch(struct writer *w, size_t size)
{
    int bucket = 0;
    while (bucket < 7 && (size >> (bucket + 1)) != 0)
        bucket++;
    pthread_mutex_lock(&w->stats_lock);
    w->stats.commands += size;
    w->stats.batches++;
    w->stats.batch_size_histogram[bucket]++;
    pthread_mutex_unlock(&w->stats_lock);
}

/* Marks the batch's commands whose seq is not above "known_before", the highest seq known to
 * be in the log before the batch committed: seqs only grow, so the log went back in time under
 * catalogd (a backup restored). Returns the log's head after the batch: its highest seq, or
 * "known_before" when that is higher and the log did not go back. */
static int64_t mark_seqs_taken_again(struct command *batch, int64_t known_before)
{
    int64_t highest = 0, taken_again = 0;
    for (struct command *cmd = batch; cmd; cmd = cmd->next) {
        if (cmd->outcome != COMMAND_DONE || cmd->seq <= 0) continue;
        if (cmd->seq > highest) highest = cmd->seq;
        if (cmd->seq <= known_before) {
            cmd->seq_taken_again = 1;
            if (!taken_again) taken_again = cmd->seq;
        }
    }
    if (!taken_again) return highest > known_before ? highest : known_before;
    LOG(LOG_WARN,
        "writer: the event log went back in time: seq %" PRId64
        " was taken again after seq %" PRId64
        " was known (a backup restored under catalogd?); such commands answer Projection: "
        "pending while the projector rebuilds the read model",
        taken_again, known_before);
    return highest;
}

/* Raises "*known_before" to the highest seq the projector knows to be in the log. */
static void raise_known_seq(struct writer *w, int64_t *known_before)
{
    if (!w->listener.known_seq) return;
    int64_t known = w->listener.known_seq(w->listener.arg);
    if (known > *known_before) *known_before = known;
}

/* Runs the batch in one write transaction, up to its commit. Returns STORE_OK when it
 * committed, else the failure (the transaction still to roll back). "*known_before" rises to
 * the highest seq known to be in the log before the commit; "*log_reads" gets the projector's
 * log reads counted then. */
static int try_batch(struct writer *w, struct command *batch, uint64_t now_ms,
                     int64_t *known_before, uint64_t *log_reads)
{
    w->batch_keys = 0;
    int rc = store_begin(w->store);
    for (struct command *cmd = batch; rc == STORE_OK && cmd;) {
        if (plain_create(cmd)) {
            rc = execute_creates(w, &cmd, now_ms);
        } else {
            rc = execute(w, cmd, now_ms);
            cmd = cmd->next;
        }
    }
    if (rc == STORE_OK && w->listener.committing &&
        store_statement_failure_keeps_transaction(w->store))
        w->listener.committing(w->store, batch, w->listener.arg);
    /* Once more just before the commit: the checkpoint may have risen while the batch waited
     * on the store, over seqs a backup restored meanwhile hands out again. Nothing can have
     * applied this batch's events before their commit, so a checkpoint that covers them now
     * counts another log's. */
    if (rc == STORE_OK) raise_known_seq(w, known_before);
    /* And the projector's log reads so far: one begun before this point read a log from
     * before the batch took its seqs (a backup restored since may have handed them out again),
     * and its checkpoint never answers for them; one begun after it reads them, once
     * committed. Counted before the commit, not after: a read begun while the commit ends
     * may hold the batch, and a slow writer thread must not take it for an older one. */
    if (rc == STORE_OK && w->listener.commit_reads)
        *log_reads = w->listener.commit_reads(w->listener.arg);
    if (rc == STORE_OK) rc = store_commit(w->store);
    return rc;
}

static void run_batch(struct writer *w, struct command *batch, size_t size)
{
    uint64_t began_ms = clock_mono_ms();
    uint64_t now_ms = clock_wall_ms();
    int64_t known_before = w->head_seq;
    raise_known_seq(w, &known_before);
    uint64_t log_reads = 0;
    int rc = try_batch(w, batch, now_ms, &known_before, &log_reads);
    if (rc != STORE_OK && store_transaction_lost_whole(w->store) &&
        clock_mono_ms() - began_ms < WRITER_RERUN_WITHIN_MS) {
        /* Nothing of it was committed, nor can be: once more on a new connection, where the
         * commands decide again against what the write model holds then, at its time. Once: a
         * connection that breaks again says the server is going away. */
        LOG(LOG_INFO, "writer: the batch runs again: its connection broke before it committed: %s",
            store_errmsg(w->store));
        store_rollback(w->store);
        rc = try_batch(w, batch, clock_wall_ms(), &known_before, &log_reads);
    }
    if (rc != STORE_OK) {
        /* Even a duplicate-sku outcome may have been decided against a command of this batch
         * that is now rolled back: nothing of the batch holds. */
        store_rollback(w->store);
        for (struct command *cmd = batch; cmd; cmd = cmd->next)
            fail_command(cmd, COMMAND_UNAVAILABLE, store_errmsg(w->store));
        if (atomic_exchange(&w->healthy, 0))
            LOG(LOG_WARN, "writer: the write model cannot take writes: %s", store_errmsg(w->store));
    } else {
        atomic_fetch_add(&w->stored_keys, w->batch_keys);
        atomic_store(&w->healthy, 1);
        for (struct command *cmd = batch; cmd; cmd = cmd->next)
            cmd->log_reads_at_commit = log_reads;
        int64_t head = mark_seqs_taken_again(batch, known_before);
        w->head_seq = head;
        if (w->listener.committed) w->listener.committed(head, batch, w->listener.arg);
    }
    record_batch(w, size);
    struct command *next;
    for (struct command *cmd = batch; cmd; cmd = next) {
        next = cmd->next; /* "complete" may free cmd */
        cmd->next = NULL;
        cmd->complete(cmd);
    }
    /* A failure under load comes with no idle second to check the write model in: a schema
     * gone back under catalogd would fail every batch. Once the batch is answered. */
    if (rc != STORE_OK) store_ping(w->store);
}

/* Whether the queue holds a full batch for a writer filling up to "target" commands: that many,
 * or as many keyed commands as one batch takes. Called with the lock held. */
static int queue_fills(const struct writer *w, int64_t target)
{
    return w->queued >= target || w->queued_keyed >= WRITER_MAX_KEYED_BATCH;
}

/* A batch's fixed cost (its fsync, the projector's script, the wakes of the threads between
 * them) is several times a command's own, so the fuller the batch the less each command costs.
 * Commands come back in waves: when the writer is free again, the clients of the batch before
 * are still waiting for their answers and about to send their next command. So the writer waits,
 * at most BATCH_FILL_WAIT_US, until the queue holds as many commands as were in flight at once
 * lately (the peak over this window of IN_FLIGHT_PEAK_WINDOW_US and the last). A lone client
 * never waits: its own command is all that was in flight; and where the wait runs out (clients
 * that pause between commands), the rest of the window aims no higher than what came. Called
 * with the lock held and a command queued. */
static void fill_batch(struct writer *w)
{
    uint64_t now_us = clock_mono_us();
    uint64_t since_us = now_us - w->peak_window_started_us;
    if (since_us >= IN_FLIGHT_PEAK_WINDOW_US) {
        /* A new window; the one before counts only if it was just before. */
        w->in_flight_peak_before = since_us < 2 * IN_FLIGHT_PEAK_WINDOW_US ? w->in_flight_peak : 0;
        w->in_flight_peak = atomic_load(&w->in_flight);
        w->peak_window_started_us = now_us;
        w->fill_cap = 0;
    }
    int64_t target =
        w->in_flight_peak > w->in_flight_peak_before ? w->in_flight_peak : w->in_flight_peak_before;
    if (w->fill_cap && target > w->fill_cap) target = w->fill_cap;
    if (target > WRITER_MAX_BATCH) target = WRITER_MAX_BATCH;
    if (target > w->limits.max_queued) target = w->limits.max_queued; /* else it never fills */
    if (queue_fills(w, target)) return;
    struct timespec deadline = clock_deadline_after_us(BATCH_FILL_WAIT_US);
    w->filling_to = target;
    pthread_mutex_lock(&w->stats_lock);
    w->stats.fill_waits++;
    pthread_mutex_unlock(&w->stats_lock);
    int timed_out = 0;
    while (!w->stopping && !queue_fills(w, target) && !timed_out)
        timed_out = pthread_cond_timedwait(&w->wake, &w->lock, &deadline) == ETIMEDOUT;
    w->filling_to = 0;
    /* Those that did not come are clients that pause between commands, not a wave about to
     * break: until the window ends, aim no higher than what came. */
    if (timed_out && !queue_fills(w, target)) w->fill_cap = w->queued;
}

/* Takes up to WRITER_MAX_BATCH queued commands, WRITER_MAX_KEYED_BATCH of them with a key,
 * waiting at most "wait_s" seconds for one, then a little for the batch to fill. Returns NULL
 * when none came; "*stop" is set when stopping with an empty queue. */
static struct command *take_batch(struct writer *w, size_t *size, int wait_s, int *stop)
{
    struct timespec deadline = clock_deadline_after_ms((uint64_t)wait_s * 1000);
    pthread_mutex_lock(&w->lock);
    while (!w->queue_head && !w->stopping)
        if (pthread_cond_timedwait(&w->wake, &w->lock, &deadline) == ETIMEDOUT) break;
    if (w->queue_head) fill_batch(w);
    *stop = w->stopping && !w->queue_head;
    struct command *batch = w->queue_head, *last = NULL;
    size_t n = 0, keyed = 0;
    for (struct command *cmd = batch; cmd && n < WRITER_MAX_BATCH; cmd = cmd->next) {
        if (has_key(cmd) && keyed == WRITER_MAX_KEYED_BATCH) break;
        keyed += (size_t)has_key(cmd);
        last = cmd;
        n++;
    }
    if (last) {
        w->queue_head = last->next;
        if (!w->queue_head) w->queue_tail = NULL;
        last->next = NULL;
        w->queued -= (int64_t)n;
        w->queued_keyed -= (int64_t)keyed;
    }
    pthread_mutex_unlock(&w->lock);
    *size = n;
    return batch;
}

/* Idempotency keys are kept at least IDEMPOTENCY_KEEP_MS; the writer purges older ones in
 * its own short transaction about once a minute, never on a request's path. */
static void purge_idempotency_keys(struct writer *w)
{
    uint64_t now_ms = clock_wall_ms();
    if (now_ms - w->last_purge_ms < IDEMPOTENCY_PURGE_EVERY_MS) return;
    w->last_purge_ms = now_ms;
    int deleted = 0;
    if (store_idempotency_purge(w->store, now_ms - IDEMPOTENCY_KEEP_MS, &deleted) < 0) {
        LOG(LOG_WARN, "writer: purging idempotency keys failed: %s", store_errmsg(w->store));
    } else if (deleted > 0) {
        atomic_fetch_sub(&w->stored_keys, deleted);
        LOG(LOG_INFO, "writer: purged %d idempotency keys older than 24 h", deleted);
    }
}

/* After a failed commit, /ready reports the write model as failing until a write succeeds
 * again; when no command comes to prove it, a probe write every second does. */
static void probe_if_unhealthy(struct writer *w)
{
    if (atomic_load(&w->healthy)) return;
    if (store_probe_write(w->store, clock_wall_ms()) == STORE_OK) {
        atomic_store(&w->healthy, 1);
        LOG(LOG_INFO, "writer: the write model takes writes again");
    }
}

/* A write model on another machine (PostgreSQL) can go away while no command comes, and
 * any can be restored from a backup of an older schema: after a second without commands, a
 * cheap check tells (store_ping), so /ready names it within about 2 s. */
static void ping_if_idle(struct writer *w)
{
    if (!atomic_load(&w->healthy)) return;
    if (store_ping(w->store) != STORE_OK && atomic_exchange(&w->healthy, 0))
        LOG(LOG_WARN, "writer: the write model does not answer: %s", store_errmsg(w->store));
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    size_t size;
    int stop = 0;
    while (!stop) {
        struct command *batch = take_batch(w, &size, 1, &stop);
        if (batch) {
            run_batch(w, batch, size);
        } else if (!stop) {
            probe_if_unhealthy(w);
            ping_if_idle(w);
        }
        purge_idempotency_keys(w);
    }
    return NULL;
}

int writer_start(struct store *store, const struct writer_limits *limits,
                 const struct writer_listener *listener, struct writer **out)
{
    struct writer *w = xcalloc(1, sizeof(*w));
    w->store = store;
    w->limits = *limits;
    if (listener) w->listener = *listener;
    w->random_used = sizeof(w->random_pool); /* fill on first use */
    int64_t head = 0, keys = 0;
    if (store_head_seq(store, &head) < 0 || store_idempotency_count(store, &keys) < 0) {
        free(w);
        return -1;
    }
    atomic_init(&w->stored_keys, keys);
    w->head_seq = head;
    atomic_init(&w->healthy, 1);
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->stats_lock, NULL);
    clock_cond_init(&w->wake);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

int writer_submit(struct writer *w, struct command *cmd)
{
    cmd->next = NULL;
    pthread_mutex_lock(&w->lock);
    /* The bound of its own: a client can queue commands faster than a stalled writer (a lock
     * held for seconds) takes them, and closing each connection at once frees its slot. */
    if (!w->stopped && w->queued >= w->limits.max_queued) {
        pthread_mutex_unlock(&w->lock);
        return -1;
    }
    int64_t in_flight = atomic_fetch_add(&w->in_flight, 1) + 1;
    if (in_flight > w->in_flight_peak) w->in_flight_peak = in_flight;
    if (w->stopped) { /* a command that came after the last batch: refused, not lost */
        pthread_mutex_unlock(&w->lock);
        fail_command(cmd, COMMAND_UNAVAILABLE, "the server is shutting down");
        cmd->complete(cmd);
        return 0;
    }
    if (w->queue_tail)
        w->queue_tail->next = cmd;
    else
        w->queue_head = cmd;
    w->queue_tail = cmd;
    w->queued++;
    w->queued_keyed += has_key(cmd);
    /* A writer filling its batch is woken once, when the batch is full, not for every command. */
    int wake = !w->filling_to || queue_fills(w, w->filling_to);
    pthread_mutex_unlock(&w->lock);
    if (wake) pthread_cond_signal(&w->wake); /* after the unlock: the writer does not wait on it */
    return 0;
}

void writer_command_answered(struct writer *w)
{
    atomic_fetch_sub(&w->in_flight, 1);
}

void writer_stop(struct writer *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_lock(&w->lock);
    w->stopped = 1;
    struct command *late = w->queue_head; /* submitted between the last batch and now */
    w->queue_head = w->queue_tail = NULL;
    w->queued = w->queued_keyed = 0;
    pthread_mutex_unlock(&w->lock);
    for (struct command *cmd = late, *next; cmd; cmd = next) {
        next = cmd->next;
        fail_command(cmd, COMMAND_UNAVAILABLE, "the server is shutting down");
        cmd->complete(cmd);
    }
}

void writer_free(struct writer *w)
{
    if (!w) return;
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->stats_lock);
    pthread_cond_destroy(&w->wake);
    free(w);
}

void writer_get_stats(struct writer *w, struct writer_stats *out)
{
    pthread_mutex_lock(&w->stats_lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->stats_lock);
    out->idempotency_keys = atomic_load(&w->stored_keys);
    out->max_idempotency_keys = w->limits.max_idempotency_keys;
    pthread_mutex_lock(&w->lock);
    out->queued = w->queued;
    pthread_mutex_unlock(&w->lock);
    out->max_queued = w->limits.max_queued;
}

int writer_healthy(struct writer *w)
{
    return atomic_load(&w->healthy);
}

const char *writer_store_name(struct writer *w)
{
    return store_backend_name(w->store);
}
