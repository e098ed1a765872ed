/* rebuild_lock.h - the lock that lets one process at a time build generations or drop them:
 * {prefix}:rebuild-lock holds "<token> <host> <pid>" with a short expiry that the holder
 * refreshes while it works. Everything the holder writes is fenced by the lock's value
 * (script.h), so a holder that lost the lock (frozen past the expiry, Redis flushed) cannot
 * write again. A lock whose holder died is free after the expiry, or at once for a process
 * on the same host that sees the holder's pid gone, and one that a take or release of this
 * process may have left behind unanswered (Redis frozen) is free at once for this process. */
#ifndef CATALOGD_REBUILD_LOCK_H
#define CATALOGD_REBUILD_LOCK_H

#include <hiredis.h>
#include <stdint.h>

#include "readmodel/layout.h"
#include "readmodel/script.h"

struct redis_sync; /* projection/redis_sync.h */

#define REBUILD_LOCK_TTL_MS     5000
#define REBUILD_LOCK_REFRESH_MS 1000 /* the holder refreshes at least this often */
#define REBUILD_LOCK_VALUE_MAX  128

enum rebuild_lock_status {
    REBUILD_LOCK_OK = 0,
    REBUILD_LOCK_FAILED = -1, /* Redis failed; "err" says why */
    REBUILD_LOCK_BUSY = -2,   /* another holds it */
    REBUILD_LOCK_LOST = -3,   /* it expired or was removed while we held it */
};

struct rebuild_lock {
    char key[LAYOUT_KEY_MAX];
    char value[REBUILD_LOCK_VALUE_MAX];
    uint64_t refreshed_ms; /* monotonic */
};

/* Takes the lock of "prefix". Returns an enum rebuild_lock_status. */
int rebuild_lock_take(struct redis_sync *redis, const char *prefix, struct rebuild_lock *lock,
                      char *err, size_t errlen);

/* Extends the lock if REBUILD_LOCK_REFRESH_MS passed since the last time ("force": now).
 * Returns REBUILD_LOCK_OK, REBUILD_LOCK_LOST or REBUILD_LOCK_FAILED. */
int rebuild_lock_refresh(struct redis_sync *redis, struct rebuild_lock *lock, int force, char *err,
                         size_t errlen);

/* Releases the lock if it is still ours. */
void rebuild_lock_release(struct redis_sync *redis, struct rebuild_lock *lock);

/* The guard that fences a write on holding "lock". */
struct script_guard rebuild_lock_guard(const struct rebuild_lock *lock);

#endif
