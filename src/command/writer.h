/* writer.h - the single writer thread that owns the write model's connection (SQLite or
 * PostgreSQL).
 * Loop threads hand it commands; it runs them in group commits (one transaction, one fsync per
 * batch; a SAVEPOINT around each command that could otherwise leave a part of itself behind)
 * and hands each back through its "complete" callback. Invariant: a command's outcome is
 * COMMAND_DONE only if its transaction committed, so every 2xx is durable (per the store's
 * durability setting). */
#ifndef CATALOGD_WRITER_H
#define CATALOGD_WRITER_H

#include <stdint.h>

#include "command/command.h"
#include "command/store.h"

#define WRITER_MAX_BATCH 512 /* commands per group commit at most */
/* Commands with an Idempotency-Key per group commit at most: each runs in a savepoint, and
 * PostgreSQL keeps 64 subtransactions a transaction in shared memory; past them every other
 * session's snapshot has to look the transaction's up in pg_subtrans while it lasts. */
#define WRITER_MAX_KEYED_BATCH 64

struct writer_stats {
    uint64_t commands;
    uint64_t batches;
    uint64_t batch_size_histogram[8]; /* 1, 2-3, 4-7, ..., 128+ */
    uint64_t fill_waits;              /* batches that waited for commands in flight to fill */
    int64_t idempotency_keys;         /* stored now */
    int64_t max_idempotency_keys;
    int64_t queued; /* commands waiting for the writer now */
    int64_t max_queued;
};

struct writer_limits {
    int64_t max_idempotency_keys; /* stored at once; a command with a new key beyond is refused */
    int64_t max_queued;           /* commands waiting for the writer; more are refused */
};

struct writer;

/* Who hears of the writer's batches; all are called on the writer thread. */
struct writer_listener {
    /* In every batch's transaction, after its commands and before COMMIT: may read "store"
     * as the batch sees it. Only where a read is local and one that fails leaves the
     * transaction usable (SQLite); on PostgreSQL it would be a round trip inside the write
     * lock that all instances share. May be NULL. */
    void (*committing)(struct store *store, const struct command *batch, void *arg);
    /* After every commit, with the new head seq and the batch (a list linked by "next"; the
     * COMMAND_DONE ones committed), to wake the projector. */
    void (*committed)(int64_t head_seq, const struct command *batch, void *arg);
    /* Before every batch: the highest seq known from outside the writer to be in the log
     * (the projector's checkpoint), or 0. */
    int64_t (*known_seq)(void *arg);
    /* Just before every commit: the reads of the log the projector began so far
     * (projector_commit_reads), for the batch's commands. May be NULL. */
    uint64_t (*commit_reads)(void *arg);
    void *arg;
};

/* Starts the writer thread on "store" (which it then owns until writer_stop), within "limits";
 * "listener" may be NULL. Returns 0, or -1 if the store cannot be read or the thread cannot
 * start. */
int writer_start(struct store *store, const struct writer_limits *limits,
                 const struct writer_listener *listener, struct writer **out);

/* Queues "cmd"; it completes later on the writer thread. Returns 0, or -1 when the queue
 * holds "max_queued" commands already ("cmd" is then not taken: its "complete" is not called).
 * Thread-safe. */
int writer_submit(struct writer *writer, struct command *cmd);

/* Tells the writer that a command it took (writer_submit returned 0) has been answered: its
 * response went out, or its client went away. Until then the command counts as in flight, and
 * the writer fills its batches up to the most commands in flight at once lately; a caller that
 * never tells makes it wait, 1 ms at a time, for commands that are not coming. Thread-safe. */
void writer_command_answered(struct writer *writer);

/* Runs every queued command and stops the thread (accepts NULL); a command submitted later
 * completes at once as COMMAND_UNAVAILABLE. writer_free frees the writer once nothing can
 * submit any more (accepts NULL). The store is left open for the caller to close. */
void writer_stop(struct writer *writer);
void writer_free(struct writer *writer);

/* Copies the counters (thread-safe). */
void writer_get_stats(struct writer *writer, struct writer_stats *out);

/* 0 when the last batch could not commit (disk full, read-only, locked too long, PostgreSQL
 * unreachable) or, for a shared write model, the last idle ping failed; else 1. */
int writer_healthy(struct writer *writer);

/* "sqlite" or "postgresql": the name /ready gives the write model's check. */
const char *writer_store_name(struct writer *writer);

#endif
