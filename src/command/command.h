/* command.h - a command as it travels from a loop thread (validated) to the writer thread
 * (executed) and back: what was asked, and what came of it. */
#ifndef CATALOGD_COMMAND_H
#define CATALOGD_COMMAND_H

#include <stdint.h>

#include "command/store.h"
#include "domain/event.h"
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
    COMMAND_KEY_IN_FLIGHT,      /* another writer holds the Idempotency-Key, not yet committed */
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
    int64_t seq;                           /* the event's seq */
    char event_nonce[EVENT_NONCE_LEN + 1]; /* the event's nonce (domain/event.h) */
    /* The seq was not above every seq known before its batch began: the event log went back
     * in time (a backup restored under catalogd), and the projector's checkpoint, from the
     * lost events, says nothing of whether this event is applied. */
    int seq_taken_again;
    /* The log reads the projector had begun just before the event's commit
     * (projector_commit_reads): only a checkpoint from a later read answers for it. */
    uint64_t log_reads_at_commit;
    char conflict_id[UUID_TEXT_LEN + 1];
    char error[160];
    struct store_idempotent_response replay; /* COMMAND_REPLAYED: the stored response */

    struct command *next; /* queue link, owned by the writer */
};

/* Frees a command and what it owns (accepts NULL). */
void command_free(struct command *cmd);

#endif
