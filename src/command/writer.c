/* writer.c - group commit on one thread.
 * Invariant: commands leave the queue in submission order and their events get increasing
 * seqs; a failed command rolls back its own SAVEPOINT only, a failed COMMIT fails them all. */
#include "command/writer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"
#include "common/xmalloc.h"
#include "domain/event.h"
#include "domain/timestamp.h"
#include "domain/uuid7.h"

#define MAX_BATCH 512

struct writer {
    struct store *store;
    void (*committed)(int64_t head_seq, void *arg);
    void *committed_arg;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct command *queue_head, *queue_tail; /* guarded by lock */
    int stopping;                            /* guarded by lock */

    struct uuid7_generator ids;
    uint8_t random_pool[4096];
    size_t random_used;

    _Atomic int64_t head_seq;
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

/* Records the product's new state as an event; the view is the event's payload. */
static int append_event(struct writer *w, struct command *cmd, enum event_type type)
{
    cmd->view_len = view_encode(&cmd->product, cmd->view, sizeof(cmd->view));
    if (cmd->view_len == 0) return STORE_ERR;
    return store_append_event(w->store, EVENT_TYPE_NAMES[type], &cmd->product, cmd->view,
                              cmd->view_len, cmd->product.updated_at, &cmd->seq);
}

static int create_product(struct writer *w, struct command *cmd, uint64_t now_ms)
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

    int rc = store_insert_product(w->store, p, cmd->conflict_id);
    if (rc == STORE_DUPLICATE) {
        fail_command(cmd, COMMAND_DUPLICATE_SKU, "sku already exists");
        return STORE_OK; /* a business outcome, not a failure of the batch */
    }
    if (rc < 0) return rc;
    return append_event(w, cmd, EVENT_PRODUCT_CREATED);
}

/* Runs one command inside its savepoint. Returns STORE_OK (the command has its outcome, done
 * or a business error) or STORE_ERR (the batch cannot go on). */
static int execute(struct writer *w, struct command *cmd, uint64_t now_ms)
{
    cmd->outcome = COMMAND_DONE;
    if (store_savepoint(w->store) < 0) return STORE_ERR;
    int rc = STORE_ERR;
    switch (cmd->kind) {
    case COMMAND_CREATE_PRODUCT:
        rc = create_product(w, cmd, now_ms);
        break;
    }
    if (rc == STORE_OK && cmd->outcome == COMMAND_DONE) return store_release_savepoint(w->store);
    store_rollback_savepoint(w->store);
    return rc;
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

static void run_batch(struct writer *w, struct command *batch, size_t size)
{
    uint64_t now_ms = clock_wall_ms();
    int rc = store_begin(w->store);
    for (struct command *cmd = batch; rc == STORE_OK && cmd; cmd = cmd->next)
        rc = execute(w, cmd, now_ms);
    if (rc == STORE_OK) rc = store_commit(w->store);
    if (rc != STORE_OK) {
        /* Even a duplicate-sku outcome may have been decided against a command of this batch
         * that is now rolled back: nothing of the batch holds. */
        store_rollback(w->store);
        for (struct command *cmd = batch; cmd; cmd = cmd->next)
            fail_command(cmd, COMMAND_UNAVAILABLE, store_errmsg(w->store));
        atomic_store(&w->healthy, 0);
    } else {
        atomic_store(&w->healthy, 1);
        int64_t head = atomic_load(&w->head_seq);
        for (struct command *cmd = batch; cmd; cmd = cmd->next)
            if (cmd->outcome == COMMAND_DONE && cmd->seq > head) head = cmd->seq;
        atomic_store(&w->head_seq, head);
        if (w->committed) w->committed(head, w->committed_arg);
    }
    record_batch(w, size);
    struct command *next;
    for (struct command *cmd = batch; cmd; cmd = next) {
        next = cmd->next; /* "complete" may free cmd */
        cmd->next = NULL;
        cmd->complete(cmd);
    }
}

/* Takes up to MAX_BATCH queued commands. Returns NULL when stopping with an empty queue. */
static struct command *take_batch(struct writer *w, size_t *size)
{
    pthread_mutex_lock(&w->lock);
    while (!w->queue_head && !w->stopping)
        pthread_cond_wait(&w->wake, &w->lock);
    struct command *batch = w->queue_head, *last = NULL;
    size_t n = 0;
    for (struct command *cmd = batch; cmd && n < MAX_BATCH; cmd = cmd->next) {
        last = cmd;
        n++;
    }
    if (last) {
        w->queue_head = last->next;
        if (!w->queue_head) w->queue_tail = NULL;
        last->next = NULL;
    }
    pthread_mutex_unlock(&w->lock);
    *size = n;
    return batch;
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    size_t size;
    struct command *batch;
    while ((batch = take_batch(w, &size)) != NULL)
        run_batch(w, batch, size);
    return NULL;
}

int writer_start(struct store *store, void (*committed)(int64_t head_seq, void *arg), void *arg,
                 struct writer **out)
{
    struct writer *w = xcalloc(1, sizeof(*w));
    w->store = store;
    w->committed = committed;
    w->committed_arg = arg;
    w->random_used = sizeof(w->random_pool); /* fill on first use */
    int64_t head = 0;
    if (store_head_seq(store, &head) < 0) {
        free(w);
        return -1;
    }
    atomic_init(&w->head_seq, head);
    atomic_init(&w->healthy, 1);
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->stats_lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void writer_submit(struct writer *w, struct command *cmd)
{
    cmd->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->queue_tail)
        w->queue_tail->next = cmd;
    else
        w->queue_head = cmd;
    w->queue_tail = cmd;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void writer_stop(struct writer *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
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
}

int64_t writer_head_seq(struct writer *w)
{
    return atomic_load(&w->head_seq);
}

int writer_healthy(struct writer *w)
{
    return atomic_load(&w->healthy);
}
