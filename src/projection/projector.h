/* projector.h - the thread that keeps the Redis read model in step with the event log.
 * It applies events in seq order, in batches, each batch one atomic step that also moves the
 * checkpoint. When Redis is down, slow or refuses a batch it retries with capped exponential
 * backoff; when the read model has no generation (a new Redis, or one that lost its data) it
 * rebuilds it from the write model. Invariant: the checkpoint only moves forward and only
 * together with the views it covers. */
#ifndef CATALOGD_PROJECTOR_H
#define CATALOGD_PROJECTOR_H

#include <stdint.h>

#include "common/redis_url.h"

enum projector_state {
    PROJECTOR_STARTING,
    PROJECTOR_LIVE,        /* caught up, or applying as events arrive */
    PROJECTOR_CATCHING_UP, /* a backlog is being applied */
    PROJECTOR_REBUILDING,  /* building a generation from the write model */
    PROJECTOR_REDIS_DOWN,  /* retrying with backoff */
};

struct projector_status {
    enum projector_state state;
    int64_t generation;
    int64_t checkpoint;    /* last seq applied to Redis */
    int64_t head;          /* last seq committed to SQLite */
    double lag_seconds;    /* age of the oldest unapplied event, 0 when caught up */
    uint64_t redis_errors; /* failed attempts since start */
    uint64_t reconnects;
    uint64_t rebuilds;
    int64_t parked_events; /* refused by Redis for their product; retried with backoff */
    char last_error[200];
};

struct projector_config {
    const char *db_path;
    struct redis_url redis;
    const char *prefix;
    int64_t head_seq; /* the write model's head when the server starts */
};

struct projector;

/* Starts the projector thread. "applied" is called on the projector thread each time the
 * checkpoint moves, with the new checkpoint. Returns 0, or -1 if the thread cannot start. */
int projector_start(const struct projector_config *config,
                    void (*applied)(int64_t checkpoint, void *arg), void *arg,
                    struct projector **out);

/* Tells the projector that events up to "head_seq" are committed. Thread-safe, cheap. */
void projector_notify(struct projector *projector, int64_t head_seq);

struct apply_event;

/* Hands the projector events just committed ("count", in seq order; it takes the events and
 * their views), so that it need not read them back from SQLite. Only an optimisation: events
 * offered while it is behind are dropped, and it reads the log instead. Thread-safe. */
void projector_offer(struct projector *projector, struct apply_event *events, size_t count);

/* 1 when event "seq" was parked (Redis refused it for its product): it is behind the
 * checkpoint but its view is not in Redis yet. Thread-safe. */
int projector_seq_parked(struct projector *projector, int64_t seq);

/* The last seq known to be in Redis, readable from any thread. */
int64_t projector_checkpoint(const struct projector *projector);

/* 1 while the projector has a working Redis connection. Commands skip their read-your-writes
 * wait when it is 0: the view cannot appear in time anyway. */
int projector_redis_up(const struct projector *projector);

/* Copies the state for /ready, /admin/projection and /metrics. Thread-safe. */
void projector_get_status(struct projector *projector, struct projector_status *out);

/* Name of a state: "starting", "live", "catching_up", "rebuilding", "redis_down". */
const char *projector_state_name(enum projector_state state);

/* Lets the projector drain for at most "drain_ms", then stops it and frees it (accepts
 * NULL). */
void projector_stop(struct projector *projector, int drain_ms);

#endif
