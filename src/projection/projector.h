/* projector.h - the thread that keeps the Redis read model in step with the event log.
 * It applies events in seq order, in batches, each batch one atomic step that also moves the
 * checkpoint (apply.h). When Redis is down, slow or refuses a batch it retries with capped
 * exponential backoff. It rebuilds the read model from the write model when Redis has no
 * usable generation (a new Redis, one that lost its data) and when the generation diverges
 * from the write model (its checkpoint is ahead of the log, or names another event: the
 * write model went back in time). Invariant: the checkpoint it reports moves forward only as
 * the views it covers reach Redis, and after a reload is exactly Redis' own. */
#ifndef CATALOGD_PROJECTOR_H
#define CATALOGD_PROJECTOR_H

#include <stdint.h>

#include "common/redis_url.h"

enum projector_state {
    PROJECTOR_STARTING,
    PROJECTOR_LIVE,           /* caught up, or applying as events arrive */
    PROJECTOR_CATCHING_UP,    /* a backlog is being applied */
    PROJECTOR_REBUILDING,     /* building a generation from the write model */
    PROJECTOR_REDIS_DOWN,     /* retrying with backoff */
    PROJECTOR_STALLED,        /* Redis answers but refuses writes (out of memory, a shared key of
                                 the wrong type, a replica): retrying with backoff */
    PROJECTOR_HELD_ELSEWHERE, /* another catalog's projector holds the Redis prefix (the same
                                 prefix given to two deployments): writing nothing, and queries
                                 answer 503, until it lets go (prefix_hold.h) */
    PROJECTOR_STATE_COUNT,
};

struct projector_status {
    enum projector_state state;
    int64_t generation;
    int64_t checkpoint;    /* last seq applied to Redis */
    int64_t head;          /* last seq committed to the write model */
    int64_t lag_events;    /* head - checkpoint, 0 when ahead */
    double lag_seconds;    /* age of the oldest unapplied event, 0 when caught up */
    uint64_t redis_errors; /* failed attempts since start */
    uint64_t reconnects;
    uint64_t rebuilds;
    int64_t parked_events; /* refused by Redis for their product; retried with backoff */
    char last_error[200];
    char redis_problem[200]; /* why Redis cannot be trusted with the read model, or "" (an
                                evicting maxmemory-policy) */
    /* Several instances on one write model: */
    char instance_id[128];         /* this instance */
    char projecting_instance[128]; /* the one that applies events, "" while none is known */
    int64_t epoch;                 /* its fencing epoch (0: one instance, no fencing) */
};

struct leadership;
struct view_cache;
struct applied_floor;

struct projector_config {
    const char *db_path;
    struct redis_url redis;
    const char *prefix;
    int64_t head_seq; /* the write model's head when the server starts */
    const char *instance_id;
    /* The write model's name, the same in every instance of one catalog (prefix_hold.h). */
    const char *catalog;
    /* NULL: this instance is the only one and always projects. Else several instances share
     * the write model and this one projects only while it leads; meanwhile it follows the
     * news of the one that does (projector_take_news). */
    struct leadership *leadership;
    /* The views queries keep in memory (NULL: none; never with "leadership"): forgotten as
     * Redis takes their changes, before the checkpoint moves past them (view_cache.h). */
    struct view_cache *view_cache;
    /* Raised to each checkpoint Redis confirms, before any command waiting on it answers
     * (applied_floor.h; NULL: none). */
    struct applied_floor *applied_floor;
};

struct projector;

/* Starts the projector thread. "applied" is called on the projector thread each time the
 * checkpoint moves, with the new checkpoint. Returns 0, or -1 if the thread cannot start. */
int projector_start(const struct projector_config *config,
                    void (*applied)(int64_t checkpoint, void *arg), void *arg,
                    struct projector **out);

/* Tells the projector that events up to "head_seq" are committed. Thread-safe, cheap. */
void projector_notify(struct projector *projector, int64_t head_seq);

/* Tells the projector that a query found the read model not confirmed in its Redis
 * (readmodel/confirmed_run.h: Redis restarted, or lost the key): it checks Redis now, not at
 * its next periodic check, which could be a second away. Thread-safe, cheap. */
void projector_poke(struct projector *projector);

struct apply_event;

/* Hands the projector events just committed ("count", in seq order; it takes the events and
 * their views), so that it need not read them back from SQLite. Only an optimisation: events
 * offered while it is behind are dropped, and it reads the log instead. Thread-safe. */
void projector_offer(struct projector *projector, struct apply_event *events, size_t count);

struct projection_news;

/* News from the projecting instance (bus.h), for an instance that follows: moves the
 * checkpoint its commands wait for, notes the events parked, and the projector's state.
 * Ignored while this instance projects itself. Thread-safe. */
void projector_take_news(struct projector *projector, const struct projection_news *news);

/* 1 when event "seq" was parked (Redis refused it, or it waits behind one that was): it is
 * behind the checkpoint but its view is not in Redis yet. Thread-safe. */
int projector_seq_parked(struct projector *projector, int64_t seq);

/* The last seq known to be in Redis, readable from any thread. */
int64_t projector_checkpoint(const struct projector *projector);

/* A batch of commands is about to commit: returns the reads of the log the projector began so
 * far, counted, for projector_applied, and notes that a commit took that count (the projector
 * then confirms its checkpoint again before it naps: reconfirm_checkpoint). Called by the one
 * writer thread. Thread-safe. */
uint64_t projector_commit_reads(struct projector *projector);

/* 1 when event "seq", whose commit began when the projector had begun "log_reads_at_commit"
 * reads of the log, is in Redis for queries to read: the checkpoint passed it, as a read of
 * the log begun after that showed, and the read model is confirmed in that Redis
 * (readmodel/confirmed_run.h), or, for an instance that follows, the leader's news proved so.
 * A checkpoint from a read begun before counts another log's events, should a backup
 * restored meanwhile have given the seq out again (an apply in flight across it). Parked
 * events aside (projector_seq_parked). Thread-safe. */
int projector_applied(const struct projector *projector, int64_t seq, uint64_t log_reads_at_commit);

/* 1 while the projector is applying events as they come. Commands wait for their view only
 * then: when Redis is down, refusing writes or far behind, the view cannot appear in time and
 * they answer "pending" at once. */
int projector_keeping_up(const struct projector *projector);

/* 1 while the read model under the Redis prefix is known to be this catalog's: this
 * instance's projector holds the prefix (prefix_hold.h), confirmed within its expiry, and has
 * checked the generation there against the write model since it last reached Redis; or the
 * news of the one that projects, heard within that time, say it applies to it. 0 before,
 * while another catalog holds the prefix, and once the confirmation is older. No query answers from
 * the read model meanwhile: what is there may be another catalog's. Readable from any thread. */
int projector_prefix_ours(const struct projector *projector);

/* Copies the state for /ready, /admin/projection and /metrics. Thread-safe. */
void projector_get_status(struct projector *projector, struct projector_status *out);

/* Name of a state: "starting", "live", "catching_up", "rebuilding", "redis_down",
 * "stalled", "held_elsewhere". */
const char *projector_state_name(enum projector_state state);

/* Lets the projector drain for at most "drain_ms", then stops its thread. Call
 * projector_free once nothing can call the functions above any more. */
void projector_stop(struct projector *projector, int drain_ms);
void projector_free(struct projector *projector); /* accepts NULL */

#endif
