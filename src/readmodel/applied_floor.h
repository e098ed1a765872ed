/* applied_floor.h - the highest checkpoint that this process has let a command answer
 * "applied" against: a query never answers from a Redis whose checkpoint is below it.
 *
 * confirmed_run.h catches a Redis that restarted with less than it held. A Redis can also go
 * back in the same process, run id and all: DEBUG RELOAD of an older dump, a full resync from
 * a copy that lagged (REPLICAOF, then promoted again). Its checkpoint then goes back too, and
 * the projector applies the events again from there; until it has, the floor makes the
 * queries of this process answer 503 instead of the older views. The floor is a seq of the
 * event log, whatever the generation: every generation a query may read holds the log up to
 * its checkpoint, and a rebuilt one starts at the log's head, so none that Redis rightly
 * points to is ever below it. Other instances follow the news of the one that projects, and
 * know the floor as they hear it.
 *
 * Only a write model that went back in time (a backup restored) takes acknowledged events
 * away for good: the floor is then brought down to the log's head, which the projector reads
 * when it loads a generation, and an instance that follows while it follows.
 *
 * The projector raises the floor before it lets any command waiting on the checkpoint answer,
 * and a query takes the floor when it is sent: a query sent after an answer "applied" is
 * held to it, one sent before is not (its answer may rightly be older).
 * Thread-safe: written by the projector (or the news), read by every loop thread. */
#ifndef CATALOGD_APPLIED_FLOOR_H
#define CATALOGD_APPLIED_FLOOR_H

#include <stdatomic.h>
#include <stdint.h>

struct applied_floor {
    _Atomic int64_t checkpoint;
};

void applied_floor_init(struct applied_floor *floor);

/* Redis holds the log up to "checkpoint": the floor rises to it (a lower one changes
 * nothing). NULL "floor" is fine, here and below. */
void applied_floor_raise(struct applied_floor *floor, int64_t checkpoint);

/* The event log ended at "head" when the floor was "before" (applied_floor_get, called before
 * the head was read): a floor above it comes down to it, since events the log no longer has
 * can never be applied again. A floor raised since, by events the head did not count, stays. */
void applied_floor_cap(struct applied_floor *floor, int64_t before, int64_t head);

/* The checkpoint a read sent now must find at least; 0 for a NULL "floor". */
int64_t applied_floor_get(const struct applied_floor *floor);

#endif
