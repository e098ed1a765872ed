/* apply.h - the one write path of events into the read model, shared by the live projector
 * and the catch-up phase of a rebuild: a batch of events is applied to one generation by one
 * Lua script, so the views, their index entries and the checkpoint change together.
 *
 * Invariants of every script here:
 * - Fenced: nothing is written unless the caller's guards hold (script.h).
 * - No event is half-applied: the keys events write (the view sets and the skus hash, shared
 *   by all products: readmodel/layout.h) are checked for their type before any write, so no
 *   write can fail once checked (Redis refuses a script for lack of memory only at its
 *   first write). Whenever a script returns, the checkpoint names
 *   the last event that is fully applied or fully parked, and every event up to it is one
 *   or the other.
 * - Idempotent: an event at or below the checkpoint, or older than the stored view's version,
 *   changes nothing.
 * - In order per sku: products interact in the read model only through their sku, so an
 *   event that cannot be applied (its log entry is not a readable event) is parked in a
 *   queue named by its sku, and every later event of that sku waits behind it in the same
 *   queue, whichever product it is for. Other skus go on. */
#ifndef CATALOGD_APPLY_H
#define CATALOGD_APPLY_H

#include <hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "command/store.h"
#include "domain/event.h"
#include "domain/product.h"
#include "domain/timestamp.h"
#include "readmodel/script.h"

struct redis_sync; /* projection/redis_sync.h */

#define APPLY_BATCH_MAX 512 /* events per script call at most */

/* An event's fingerprint: "<id> <version> <recorded_at> <nonce>", what the scripts store next
 * to the checkpoint to name the event there. A row written before events had a nonce has
 * "<id> <version> <recorded_at>", as builds of then named it in Redis: an upgrade finds the
 * log's event named there. The room it takes at most, NUL included. */
#define APPLY_FINGERPRINT_MAX (UUID_TEXT_LEN + 1 + 20 + 1 + TIMESTAMP_LEN + 1 + EVENT_NONCE_LEN + 1)

enum apply_kind {
    APPLY_UPSERT = 'U',
    APPLY_DELETE = 'D',
    APPLY_POISON = 'P', /* a log entry that is not a valid event: parked, never applied */
};

struct apply_event {
    int64_t seq;
    enum apply_kind kind;
    char id[UUID_TEXT_LEN + 1];
    char sku[PRODUCT_SKU_MAX + 1]; /* "" when unknown (a poison event) */
    int in_stock;
    int64_t version;
    char recorded_at[TIMESTAMP_LEN + 1];
    char nonce[EVENT_NONCE_LEN + 1]; /* "" when its row has none */
    char *view;                      /* owned, the event's payload; NULL for a poison event */
    size_t view_len;
    /* The fingerprint of the log's event at seq - 1 as the commit that wrote this event saw
     * it, or "" when not known. Only events handed over from the writer in memory know it. */
    char prior[APPLY_FINGERPRINT_MAX];
};

enum apply_status {
    APPLY_OK = 0,
    APPLY_REDIS_DOWN = -1,    /* no reply: reconnect and retry */
    APPLY_FENCED = -2,        /* a guard did not hold (the generation changed, the lock is lost) */
    APPLY_NO_CHECKPOINT = -3, /* the generation lost its data (FLUSHALL): rebuild */
    APPLY_GAP = -4,      /* Redis' checkpoint is behind where the batch was read (Redis went back
                            in time, e.g. restored from an older snapshot) */
    APPLY_STALLED = -5,  /* Redis refuses writes (out of memory, a shared key of the wrong
                            type, read-only): retry later, skip nothing */
    APPLY_REFUSED = -6,  /* unpark: the parked event still cannot be applied */
    APPLY_NOT_HEAD = -7, /* apply_unpark: the event is not the oldest of its queue */
    APPLY_DIVERGED = -8, /* Redis' event at the checkpoint is not the log's: the write model
                            went back in time under it (a backup restored): rebuild */
};

/* Where a script writes: generation "gen" under "prefix", if "guards" hold. */
struct apply_target {
    const char *prefix;
    int64_t gen;
    const struct script_guard *guards;
    size_t guard_count;
};

struct apply_result {
    int64_t checkpoint; /* the generation's checkpoint afterwards (APPLY_OK, APPLY_GAP) */
    size_t parked_count;
    int64_t parked[APPLY_BATCH_MAX]; /* seqs parked by this call, in order */
    char refusal[200];               /* why the first event it parked cannot be applied, or "" */
};

/* Fills "out" from an event of the log; the payload is the view. An entry that is not a
 * valid event (an unknown type, a payload that is not a view or disagrees with the row's
 * product id or version) becomes an APPLY_POISON event named by the row. Free with
 * apply_event_clear. Returns 0, or -1 when it is poison. */
int apply_event_from_store(const struct store_event *event, struct apply_event *out);
void apply_event_clear(struct apply_event *event);

/* A poison event names its product but not its sku: learns the sku from the product's row
 * when it still exists (a sku never changes), so that the event waits in its sku's queue. */
void apply_poison_sku(struct store *store, struct apply_event *event);

/* Fills "out" from a product's state just committed, with a copy of its "view", under its
 * event's "nonce"; its prior is left "". */
void apply_event_from_product(int64_t seq, int deleted, const struct product *product,
                              const char *view, size_t view_len, const char *nonce,
                              struct apply_event *out);

/* The event's fingerprint into "out". */
void apply_event_fingerprint(const struct apply_event *event, char out[APPLY_FINGERPRINT_MAX]);

/* The fingerprint of the log's event at "seq" into "out" ("" when the log has none there).
 * Made from the entry's id, version and time alone: its payload is neither parsed nor copied,
 * and an entry that is not a valid event gets the fingerprint its APPLY_POISON event has.
 * Returns 1 when the log has an entry at "seq", 0 when not, -1 when the log cannot be read. */
int apply_log_fingerprint(struct store *store, int64_t seq, char out[APPLY_FINGERPRINT_MAX]);

/* Applies "events" (in seq order, "count" <= APPLY_BATCH_MAX), read from the log after seq
 * "read_after", to "target". "event_after", when not NULL, is the fingerprint of the log's
 * event at "read_after" (apply_log_fingerprint): the batch is refused if Redis names another
 * there. Events that cannot be applied are parked (listed in "result"). Returns an enum
 * apply_status: APPLY_GAP when Redis' checkpoint is below "read_after" ("result->checkpoint"
 * says where it is); APPLY_DIVERGED when Redis' event at "read_after" is not "event_after", or,
 * Redis being further on, its event at its checkpoint is not the batch's event there (a
 * checkpoint beyond the batch's last event, in "result", is for the caller to check);
 * APPLY_STALLED when Redis refused to go on, with "result->checkpoint" the progress made
 * before (-1 when none). */
int apply_events(struct redis_sync *redis, const struct apply_target *target, int64_t read_after,
                 const char *event_after, const struct apply_event *events, size_t count,
                 struct apply_result *result, char *err, size_t errlen);

/* Applies "event", which must be the oldest in parked queue "queue". On APPLY_OK
 * "*still_parked" is how many events remain in that queue. */
int apply_unpark(struct redis_sync *redis, const struct apply_target *target, const char *queue,
                 const struct apply_event *event, int64_t *still_parked, char *err, size_t errlen);

/* Visits the parked events of "target"'s generation, queue by queue, oldest first; "fn" (may
 * be NULL) returns non-zero to skip the rest of that queue. Sets "*parked_events". */
int apply_list_parked(struct redis_sync *redis, const struct apply_target *target,
                      int (*fn)(const char *queue, int64_t seq, void *arg), void *arg,
                      int64_t *parked_events, char *err, size_t errlen);

/* Reads the checkpoint of generation "gen" and the fingerprint stored with it. Returns 0,
 * 1 when the generation has no checkpoint (or none a script wrote: not a seq in canonical
 * decimal), -1 on error. "fingerprint" is "" when absent. */
int apply_read_checkpoint(struct redis_sync *redis, const char *prefix, int64_t gen,
                          int64_t *checkpoint, char *fingerprint, size_t cap, char *err,
                          size_t errlen);

#endif
