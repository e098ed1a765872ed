/* writer.h - the single writer thread that owns the SQLite write connection.
 * Loop threads hand it commands; it runs them in group commits (one transaction, one
 * SAVEPOINT per command, one fsync per batch) and hands each back through its "complete"
 * callback. Invariant: a command's outcome is COMMAND_DONE only if its transaction
 * committed, so every 2xx is durable (per the store's durability setting). */
#ifndef CATALOGD_WRITER_H
#define CATALOGD_WRITER_H

#include <stdint.h>

#include "command/store.h"
#include "domain/product.h"
#include "domain/view.h"

enum command_kind {
    COMMAND_CREATE_PRODUCT,
};

enum command_outcome {
    COMMAND_DONE = 0,         /* committed */
    COMMAND_DUPLICATE_SKU,    /* conflict_id names the product that has the sku */
    COMMAND_NOT_FOUND,        /* no product with that id */
    COMMAND_UNAVAILABLE,      /* the write model cannot take writes; error says why */
};

struct command {
    /* Set by the submitter. */
    enum command_kind kind;
    struct product_draft draft;
    void (*complete)(struct command *cmd); /* called on the writer thread, once */
    void *owner;                           /* the submitter's context, untouched */

    /* Set by the writer before "complete". */
    enum command_outcome outcome;
    struct product product; /* the state after the command */
    char view[VIEW_MAX];    /* its view, as stored in the event */
    size_t view_len;
    int64_t seq; /* the event's seq */
    char conflict_id[UUID_TEXT_LEN + 1];
    char error[160];

    struct command *next; /* queue link, owned by the writer */
};

struct writer_stats {
    uint64_t commands;
    uint64_t batches;
    uint64_t batch_size_histogram[8]; /* 1, 2-3, 4-7, ..., 128+ */
};

struct writer;

/* Starts the writer thread on "store" (which it then owns until writer_stop). "committed" is
 * called on the writer thread after every commit with the new head seq (to wake the
 * projector). Returns 0, or -1 if the thread cannot start. */
int writer_start(struct store *store, void (*committed)(int64_t head_seq, void *arg), void *arg,
                 struct writer **out);

/* Queues "cmd"; it completes later on the writer thread. Thread-safe. */
void writer_submit(struct writer *writer, struct command *cmd);

/* Runs every queued command, stops the thread and frees the writer (accepts NULL). The store
 * is left open for the caller to close. */
void writer_stop(struct writer *writer);

/* Copies the counters (thread-safe). */
void writer_get_stats(struct writer *writer, struct writer_stats *out);

/* 0 when the last batch could not commit (disk full, read-only, locked too long), else 1. */
int writer_healthy(struct writer *writer);

/* The highest seq the writer has committed, readable from any thread. */
int64_t writer_head_seq(struct writer *writer);

#endif
