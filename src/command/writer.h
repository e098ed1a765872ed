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
    COMMAND_UPDATE_PRODUCT,
    COMMAND_DELETE_PRODUCT,
    COMMAND_ADJUST_STOCK,
};

enum command_outcome {
    COMMAND_DONE = 0,           /* committed */
    COMMAND_DUPLICATE_SKU,      /* conflict_id names the product that has the sku */
    COMMAND_NOT_FOUND,          /* no product with that id */
    COMMAND_VERSION_MISMATCH,   /* If-Match differs; product holds the current state */
    COMMAND_INSUFFICIENT_STOCK, /* stock + delta < 0; product holds the current state */
    COMMAND_STOCK_OVERFLOW,     /* stock + delta > PRODUCT_STOCK_MAX */
    COMMAND_REPLAYED,           /* an Idempotency-Key seen before: response holds it */
    COMMAND_KEY_REUSED,         /* the same Idempotency-Key for a different request */
    COMMAND_UNAVAILABLE,        /* the write model cannot take writes; error says why */
    COMMAND_KEYS_FULL,          /* a new Idempotency-Key, and --max-idempotency-keys are stored */
};

#define COMMAND_ANY_VERSION (-1) /* no If-Match */
#define IDEMPOTENCY_KEY_MAX 255

struct command {
    /* Set by the submitter. */
    enum command_kind kind;
    struct product_draft draft;                       /* create, update */
    char product_id[UUID_TEXT_LEN + 1];               /* update, delete, stock */
    int64_t delta;                                    /* stock */
    int64_t expected_version;                         /* If-Match, or COMMAND_ANY_VERSION */
    char idempotency_key[IDEMPOTENCY_KEY_MAX + 1];    /* "" when none */
    unsigned char fingerprint[STORE_FINGERPRINT_LEN]; /* of method, path and body, with a key */
    void (*complete)(struct command *cmd);            /* called on the writer thread, once */

    /* Set by the writer before "complete". */
    enum command_outcome outcome;
    struct product product; /* the state after the command (or the current one on refusal) */
    char view[VIEW_MAX];    /* its view, as stored in the event */
    size_t view_len;
    int64_t seq; /* the event's seq */
    char conflict_id[UUID_TEXT_LEN + 1];
    char error[160];
    struct store_idempotent_response replay; /* COMMAND_REPLAYED: the stored response */

    struct command *next; /* queue link, owned by the writer */
};

/* The HTTP response a command's outcome gets: a pure function of the command, used to answer
 * and, with an Idempotency-Key, to store the answer in the command's transaction. */
struct command_response {
    int status;
    int retry_after_s; /* a Retry-After header when > 0 */
    char location[64];
    char etag[24];
    const char *content_type; /* NULL for no body */
    char *body;               /* malloc'd or NULL */
    size_t body_len;
};

void command_response_render(const struct command *cmd, struct command_response *out);
void command_response_clear(struct command_response *response);

/* Frees a command and what it owns (accepts NULL). */
void command_free(struct command *cmd);

#define WRITER_MAX_BATCH 512 /* commands per group commit at most */

struct writer_stats {
    uint64_t commands;
    uint64_t batches;
    uint64_t batch_size_histogram[8]; /* 1, 2-3, 4-7, ..., 128+ */
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

/* Called on the writer thread after every commit with the new head seq and the batch (a list
 * linked by "next"; the COMMAND_DONE ones committed), to wake the projector. */
typedef void (*writer_committed_fn)(int64_t head_seq, const struct command *batch, void *arg);

/* Starts the writer thread on "store" (which it then owns until writer_stop), within "limits".
 * Returns 0, or -1 if the store cannot be read or the thread cannot start. */
int writer_start(struct store *store, const struct writer_limits *limits,
                 writer_committed_fn committed, void *arg, struct writer **out);

/* Queues "cmd"; it completes later on the writer thread. Returns 0, or -1 when the queue
 * holds "max_queued" commands already ("cmd" is then not taken: its "complete" is not called).
 * Thread-safe. */
int writer_submit(struct writer *writer, struct command *cmd);

/* Runs every queued command and stops the thread (accepts NULL); a command submitted later
 * completes at once as COMMAND_UNAVAILABLE. writer_free frees the writer once nothing can
 * submit any more (accepts NULL). The store is left open for the caller to close. */
void writer_stop(struct writer *writer);
void writer_free(struct writer *writer);

/* Copies the counters (thread-safe). */
void writer_get_stats(struct writer *writer, struct writer_stats *out);

/* 0 when the last batch could not commit (disk full, read-only, locked too long), else 1. */
int writer_healthy(struct writer *writer);

/* The highest seq the writer has committed, readable from any thread. */
int64_t writer_head_seq(struct writer *writer);

#endif
