/* generations.h - the generations of the read model. A rebuild takes a new one, fills it and
 * switches queries to it; the one it replaces is retired, and dropped once no reader can
 * still be in it. Every generation is registered ({prefix}:generations) from the moment it
 * is handed out until its last key is gone, so one abandoned by a crash or a lost lock is
 * found and dropped by the next collection instead of staying in Redis forever. All of it
 * runs under the rebuild lock, and every deletion is fenced by it. */
#ifndef CATALOGD_GENERATIONS_H
#define CATALOGD_GENERATIONS_H

#include <hiredis.h>
#include <stdint.h>

#include "projection/rebuild_lock.h"

struct redis_sync; /* projection/redis_sync.h */

/* How long a retired generation is kept for readers still in it. Queries check the current
 * generation in the same round trip as every read, so only the second step of a catalog page
 * (at most one Redis timeout after the first) can read a retired generation. */
#define GENERATION_GRACE_MS 2000

/* Registers and returns (in "*gen") a generation number above both the counter and the
 * current generation that no generation holds (registered, or with keys of its own). Fenced
 * by "lock". Returns 0, or -1 with "err". */
int generations_new(struct redis_sync *redis, const char *prefix, const struct rebuild_lock *lock,
                    int64_t *gen, char *err, size_t errlen);

/* Deletes every key of generation "gen" (SCAN and fenced UNLINK, in batches, refreshing
 * "lock"), then unregisters it. Refuses the current generation. "should_stop" (may be NULL)
 * is asked between batches. Returns 0, or -1 with "err". */
int generations_drop(struct redis_sync *redis, const char *prefix, struct rebuild_lock *lock,
                     int64_t gen, int (*should_stop)(void *arg), void *arg, char *err,
                     size_t errlen);

/* Takes the lock and drops every registered generation that is not current and was not
 * retired less than GENERATION_GRACE_MS ago. Returns how many it dropped, REBUILD_LOCK_BUSY
 * when another holds the lock, or -1 with "err". */
int generations_collect(struct redis_sync *redis, const char *prefix, int (*should_stop)(void *arg),
                        void *arg, char *err, size_t errlen);

#endif
