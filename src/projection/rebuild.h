/* rebuild.h - builds a new generation of the read model from the write model while the
 * current one keeps serving, catches up with events committed meanwhile, then switches the
 * generation queries read in one atomic step.
 * Invariants: queries never see a partial generation (the switch checks, under the lock,
 * that the new one is whole); at most one rebuild runs at a time (rebuild_lock.h), and one
 * that lost the lock can write nothing more (every write is fenced by it). */
#ifndef CATALOGD_REBUILD_H
#define CATALOGD_REBUILD_H

#include <hiredis.h>
#include <stdint.h>

#include "command/store.h"

struct redis_sync; /* projection/redis_sync.h */

enum rebuild_status {
    REBUILD_OK = 0,
    REBUILD_FAILED = -1, /* Redis or the write model failed, or the lock was lost; see "err" */
    REBUILD_BUSY = -2,   /* another rebuild holds the lock */
};

struct rebuild_options {
    /* 0: an ordinary rebuild, switched in only once it has applied at least what the current
     * generation has. Else the generation found divergent from the write model (its
     * checkpoint is ahead of the log, or names another event): the new one replaces it
     * whatever its checkpoint, if it is still the current one. */
    int64_t replace_generation;
    /* Called once the lock is held and the new generation has its number, before the build
     * (may be NULL): a rebuild refused before that (its number taken by hand, a counter that
     * holds no number) fails without it. */
    void (*on_started)(void *arg);
    /* Asked between pages: non-zero abandons the rebuild (may be NULL). */
    int (*should_stop)(void *arg);
    void *arg;
};

struct rebuild_result {
    int64_t generation;     /* the new, now current, generation */
    int64_t old_generation; /* the one it replaced (retired, dropped later), 0 if none */
    int64_t products;       /* views written from the snapshot */
    int64_t checkpoint;     /* seq the new generation had applied when it was switched in */
};

/* Runs a whole rebuild with "store" (a reader) and "redis" (blocking). The old generation is
 * retired, left for readers that may still be in it: generations_collect drops it after the
 * grace period. An abandoned generation is dropped, or left to generations_collect when the
 * lock was lost. Returns an enum rebuild_status. */
int rebuild_run(struct store *store, struct redis_sync *redis, const char *prefix,
                const struct rebuild_options *options, struct rebuild_result *result, char *err,
                size_t errlen);

#endif
