/* applied_floor.h - the highest checkpoint, in one generation, that this process has let a
 * command answer "applied" against: a query never answers from a Redis whose checkpoint of
 * that generation is below it.
 *
 * confirmed_run.h catches a Redis that restarted with less than it held. A Redis can also go
 * back in the same process, run id and all: DEBUG RELOAD of an older dump, a full resync from
 * a copy that lagged (REPLICAOF, then promoted again). Its checkpoint then goes back too, and
 * the projector applies the events again from there; until it has, the floor makes the
 * queries of this process answer 503 instead of the older views. Other instances follow the
 * news of the one that projects, and know the floor as they hear it.
 *
 * The projector raises the floor before it lets any command waiting on the checkpoint answer,
 * and a query takes the floor when it is sent: a query sent after an answer "applied" is
 * held to it, one sent before is not (its answer may rightly be older).
 * Thread-safe: written by the projector (or the news), read by every loop thread. */
#ifndef CATALOGD_APPLIED_FLOOR_H
#define CATALOGD_APPLIED_FLOOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct applied_floor {
    pthread_mutex_t writing;    /* the writers take turns; readers take none */
    _Atomic int64_t generation; /* 0 while none, or while it changes */
    _Atomic int64_t checkpoint;
};

void applied_floor_init(struct applied_floor *floor);
void applied_floor_destroy(struct applied_floor *floor);

/* Redis holds generation "generation" at "checkpoint" or later: the floor rises to it (a
 * lower checkpoint changes nothing), or moves to that generation. NULL "floor" is fine. */
void applied_floor_raise(struct applied_floor *floor, int64_t generation, int64_t checkpoint);

/* The floor in generation "generation": the checkpoint a read made in it must find at least,
 * or 0 when none is known (another generation's, or none; NULL "floor"). */
int64_t applied_floor_in(const struct applied_floor *floor, int64_t generation);

#endif
