/* leadership.h - which instance applies events to Redis, when several share one write model.
 * A thread with its own store connection asks the store every LEADERSHIP_POLL_MS who leads
 * (store_lead: on PostgreSQL a session advisory lock, so the lock dies with the session of an
 * instance that dies or loses the network) and keeps the answer for the projector to read.
 * Invariant: "leading" is 1 only after the store said so, and turns 0 as soon as a check fails
 * or times out. A projector that lost the lock without noticing yet is stopped by the fencing
 * epoch in Redis (projector.c), not by this module. */
#ifndef CATALOGD_LEADERSHIP_H
#define CATALOGD_LEADERSHIP_H

#include <stddef.h>
#include <stdint.h>

#define LEADERSHIP_POLL_MS 200

struct leadership;

/* Starts the thread; "db_path" names the write model, "instance_id" this instance. Returns
 * NULL when the thread cannot start (a store that cannot be opened is retried, not fatal). */
struct leadership *leadership_start(const char *db_path, const char *instance_id);

/* 1 while this instance holds the lock, as of the last check, with the number of the term
 * in "*term" (unless NULL): it counts the times this instance began to lead, so a caller that
 * looks now and then learns that the lock was lost and won again between two looks, which
 * "leading" alone would not tell it. Thread-safe, cheap. */
int leadership_leading(struct leadership *l, uint64_t *term);

/* Asks the store again now and waits for the answer (at most "timeout_ms"): 1 if this
 * instance leads, with the epoch of its term in "*epoch" (the store hands out a greater one
 * every time an instance takes the lock), raised above "epoch_above" if it was not. For the
 * moment before a projector claims the fencing epoch in Redis. */
int leadership_confirm(struct leadership *l, int timeout_ms, int64_t epoch_above, int64_t *epoch);

/* The instance that leads as the store recorded it ("" when none is known yet). */
void leadership_leader(struct leadership *l, char *instance_id, size_t len);

/* Stops the thread (the lock goes with its connection) and frees "l" (accepts NULL). */
void leadership_stop(struct leadership *l);

#endif
