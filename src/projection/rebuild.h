/* rebuild.h - builds a new generation of the read model from the write model while the
 * current one keeps serving, catches up with events committed meanwhile, then switches the
 * generation queries read in one atomic step.
 * Invariant: queries never see a partial generation; at most one rebuild runs at a time
 * (a lock key with an expiry, refreshed while the rebuild works). */
#ifndef CATALOGD_REBUILD_H
#define CATALOGD_REBUILD_H

#include <hiredis.h>
#include <stdint.h>

#include "command/store.h"

enum rebuild_status {
    REBUILD_OK = 0,
    REBUILD_FAILED = -1, /* Redis or SQLite failed; "err" says which */
    REBUILD_BUSY = -2,   /* another rebuild holds the lock */
};

struct rebuild_result {
    int64_t generation;     /* the new, now current, generation */
    int64_t old_generation; /* the one it replaced, 0 if there was none */
    int64_t products;       /* views written from the snapshot */
    int64_t checkpoint;     /* seq the new generation had applied when it was switched in */
};

/* Runs a whole rebuild with "store" (a reader) and "redis" (blocking). The old generation is
 * left in place for readers that still use it: drop it with rebuild_drop_generation after a
 * grace period. "on_locked" (may be NULL) is called once the lock is held, before the
 * build. Returns an enum rebuild_status. */
int rebuild_run(struct store *store, redisContext *redis, const char *prefix,
                void (*on_locked)(void *arg), void *arg, struct rebuild_result *result, char *err,
                size_t errlen);

/* Deletes every key of generation "gen" with SCAN + UNLINK in batches (never the current
 * generation: refused with -1). Returns 0 or -1 with "err". */
int rebuild_drop_generation(redisContext *redis, const char *prefix, int64_t gen, char *err,
                            size_t errlen);

#endif
