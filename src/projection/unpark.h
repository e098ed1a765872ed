/* unpark.h - retries the events parked in a generation: queue by queue, oldest first, each
 * read again from the log and applied if it is still its queue's head; the first one Redis
 * still refuses keeps the rest of its queue waiting. Invariant: an event leaves the parked
 * set only once it is applied in Redis. One the log no longer holds (deleted by hand) ends
 * the pass: the log no longer says what the write model holds, and only a rebuild can. */
#ifndef CATALOGD_UNPARK_H
#define CATALOGD_UNPARK_H

#include <stdint.h>

#include "command/store.h"
#include "projection/apply.h"
#include "projection/parked_set.h"
#include "projection/redis_sync.h"

struct unpark_result {
    int64_t applied; /* events applied (and removed from the parked set) */
    int64_t gone;    /* a parked event the log no longer holds, or 0 */
    int status;      /* APPLY_OK, or the first failure (APPLY_REFUSED: some queue still waits;
                        APPLY_REDIS_DOWN, APPLY_FENCED, APPLY_NOT_HEAD: the caller reconnects or
                        reloads the generation) */
    char err[256];   /* the first failure's reason */
};

/* One pass over the parked events of "target"'s generation, read from "store". */
void unpark_all(struct redis_sync *redis, struct store *store, const struct apply_target *target,
                struct parked_set *parked, struct unpark_result *out);

#endif
