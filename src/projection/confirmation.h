/* confirmation.h - the projector's half of confirmed_run.h: it names, in
 * {prefix}:confirmed-run, the Redis process that holds every event a command may have
 * answered as applied, and until it does, queries read nothing from that process.
 *
 * A Redis process begins with its own run id. Every event answered as applied before it
 * began is in the log by then, so once the read model's checkpoint reaches the log's head as
 * read after connecting to it, the process holds them all; later events are applied to it in
 * order. A read model the projector has just rebuilt from the log holds them all at once. A
 * FLUSHALL, or the key deleted by hand, takes the confirmation away with the key, and the same rule
 * gives it again. Owned by the projector thread. */
#ifndef CATALOGD_CONFIRMATION_H
#define CATALOGD_CONFIRMATION_H

#include <stddef.h>
#include <stdint.h>

#include "readmodel/confirmed_run.h"
#include "readmodel/layout.h"

struct redis_sync;
struct store;

struct confirmation {
    char key[LAYOUT_KEY_MAX];
    char run_id[RUN_ID_LEN + 1]; /* of the Redis connected to */
    int confirmed;               /* the key names it */
    int64_t needed;              /* the checkpoint to reach first; -1: not known yet */
};

void confirmation_init(struct confirmation *c, const char *prefix);

/* A new connection to Redis: reads its run id, and forgets what was confirmed. Returns 0, or
 * -1 with the reason in "err" (Redis refused INFO, or it names no run id). */
int confirmation_connected(struct confirmation *c, struct redis_sync *redis, char *err,
                           size_t errlen);

/* Moves the confirmation on, the read model's checkpoint in this Redis being "checkpoint":
 * reads the key when it is not known, the log's head (from "store") when the key names
 * another process, and writes the key once the checkpoint reaches it. Returns 0 (confirmed or
 * not yet), or -1 with the reason in "err" (what failed, and why); "confirmed" says which. */
int confirmation_advance(struct confirmation *c, struct redis_sync *redis, struct store *store,
                         int64_t checkpoint, char *err, size_t errlen);

/* The read model was just built from the log up to "checkpoint" in this Redis: it holds
 * every event any command was answered "applied" for, so it is confirmed at once (writes the
 * key), without waiting for the log's head to be reached. Returns as confirmation_advance. */
int confirmation_rebuilt(struct confirmation *c, struct redis_sync *redis, struct store *store,
                         int64_t checkpoint, char *err, size_t errlen);

/* The same as confirmation_advance, after reading the key again whatever was known (a FLUSHALL, or
 * a hand, may have taken it away). */
int confirmation_check(struct confirmation *c, struct redis_sync *redis, struct store *store,
                       int64_t checkpoint, char *err, size_t errlen);

#endif
