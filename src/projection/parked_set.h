/* parked_set.h - the seqs of the events the projector has parked (Redis refused them for
 * their product, or they wait behind such an event), kept in memory so that a command can
 * tell "applied" from "parked" without asking Redis. A hash set: every operation is O(1),
 * however many events a stuck product gathers. Written by the projector thread (on an
 * instance that follows another's projector, by the thread that hears its news); any thread
 * may ask. Invariant: it holds exactly the parked events of the projector's generation as of
 * its last look in Redis, plus those parked since, minus those applied since. */
#ifndef CATALOGD_PARKED_SET_H
#define CATALOGD_PARKED_SET_H

#include <stddef.h>
#include <stdint.h>

struct parked_set;

struct parked_set *parked_set_new(void);
void parked_set_free(struct parked_set *set); /* accepts NULL */

/* Records that event "seq" (> 0) is parked; a seq already there is kept once. */
void parked_set_add(struct parked_set *set, int64_t seq);

/* Forgets event "seq" (it was applied). */
void parked_set_remove(struct parked_set *set, int64_t seq);

/* Forgets everything (before reloading it from Redis). */
void parked_set_clear(struct parked_set *set);

/* 1 when event "seq" is parked. */
int parked_set_has(struct parked_set *set, int64_t seq);

/* How many events are parked. */
size_t parked_set_count(struct parked_set *set);

#endif
