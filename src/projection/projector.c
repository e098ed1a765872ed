/* projector.c - the projector thread: fetch a batch of events from the log, apply it in one
 * atomic Redis step, repeat; retry with backoff on any failure.
 * Invariant: the in-memory checkpoint is never ahead of Redis' checkpoint for the current
 * generation, so a read-your-writes wait never returns before the view is really there. */
#include "projection/projector.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "command/store.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "projection/apply.h"
#include "projection/layout.h"
#include "projection/parked_set.h"
#include "projection/rebuild.h"
#include "projection/redis_sync.h"

#define BATCH_MAX        512
#define BACKOFF_MIN_MS   25
#define BACKOFF_MAX_MS   1000
#define REDIS_TIMEOUT_MS 1000
#define IDLE_CHECK_MS    1000 /* how often an idle projector checks that its generation exists */
#define OFFERED_MAX      4096 /* events held for the projector; beyond that it reads the log */
#define UNPARK_MIN_MS    500
#define UNPARK_MAX_MS    30000

struct projector {
    struct projector_config config;
    char prefix[LAYOUT_PREFIX_MAX + 1];
    char db_path[4096];
    void (*applied)(int64_t checkpoint, void *arg);
    void *applied_arg;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;               /* guarded by lock */
    uint64_t drain_deadline_ms; /* guarded by lock */

    struct apply_event *offered; /* guarded by lock: committed events handed over in memory */
    size_t offered_count, offered_cap;

    _Atomic int64_t head;
    _Atomic int64_t checkpoint;
    _Atomic uint64_t oldest_unapplied_ms; /* wall time of the oldest unapplied event, or 0 */
    atomic_int redis_up;

    pthread_mutex_t status_lock;
    struct projector_status status; /* guarded by status_lock, except checkpoint/head/lag */

    /* Owned by the projector thread. */
    struct store *store;
    redisContext *redis;
    int64_t generation; /* 0: not known yet */
    struct apply_event batch[BATCH_MAX];
    size_t batch_count;
    int backoff_ms;
    int connected_once;
    int64_t parked_events;     /* as last counted in Redis */
    struct parked_set *parked; /* which events are parked: read by loop threads too */
    uint64_t next_unpark_ms;   /* monotonic time of the next retry of parked events */
    int unpark_backoff_ms;
};

static const char *const STATE_NAMES[] = {
    [PROJECTOR_STARTING] = "starting",       [PROJECTOR_LIVE] = "live",
    [PROJECTOR_CATCHING_UP] = "catching_up", [PROJECTOR_REBUILDING] = "rebuilding",
    [PROJECTOR_REDIS_DOWN] = "redis_down",
};

const char *projector_state_name(enum projector_state state)
{
    return STATE_NAMES[state];
}

static void set_state(struct projector *p, enum projector_state state)
{
    pthread_mutex_lock(&p->status_lock);
    enum projector_state old = p->status.state;
    p->status.state = state;
    p->status.generation = p->generation;
    pthread_mutex_unlock(&p->status_lock);
    if (old == state) return;
    /* Under load it moves between live and catching up with every batch: debug only. */
    int routine = (old == PROJECTOR_LIVE && state == PROJECTOR_CATCHING_UP) ||
                  (old == PROJECTOR_CATCHING_UP && state == PROJECTOR_LIVE);
    LOG(routine ? LOG_DEBUG : LOG_INFO, "projector: %s -> %s", STATE_NAMES[old],
        STATE_NAMES[state]);
}

static int note_listed(const char *product_id, int64_t seq, void *arg)
{
    parked_set_add(arg, product_id, seq);
    return 0;
}

/* Reloads which events are parked from Redis. Returns an enum apply_status. */
static int reload_parked(struct projector *p, int64_t gen, int64_t *count, char *err, size_t errlen)
{
    parked_set_clear(p->parked);
    return apply_list_parked(p->redis, p->prefix, gen, note_listed, p->parked, count, err, errlen);
}

static void set_parked(struct projector *p, int64_t parked_events);

/* Events of a parked product that the apply script parked behind it, instead of applying. */
static void note_parked_behind(struct projector *p, const struct apply_event *events, size_t count)
{
    int64_t parked = p->parked_events;
    for (size_t i = 0; parked_set_products(p->parked) > 0 && i < count; i++) {
        if (parked_set_has_product(p->parked, events[i].id)) {
            parked_set_add(p->parked, events[i].id, events[i].seq);
            parked++;
        }
    }
    if (parked != p->parked_events) set_parked(p, parked);
}

static void set_parked(struct projector *p, int64_t parked_events)
{
    p->parked_events = parked_events;
    pthread_mutex_lock(&p->status_lock);
    p->status.parked_events = parked_events;
    pthread_mutex_unlock(&p->status_lock);
}

static void record_error(struct projector *p, const char *what, const char *err)
{
    pthread_mutex_lock(&p->status_lock);
    p->status.redis_errors++;
    int repeated = strcmp(p->status.last_error, err) == 0;
    snprintf(p->status.last_error, sizeof(p->status.last_error), "%s", err);
    pthread_mutex_unlock(&p->status_lock);
    /* One line per distinct fault, not one per retry. */
    if (!repeated) LOG(LOG_WARN, "projector: %s: %s", what, err);
}

/* Sleeps on the condition variable; returns early when stopping or when "until_work" and new
 * events are committed. */
static void wait_for(struct projector *p, int ms, int until_work)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->lock);
    while (!p->stopping && !(until_work && atomic_load(&p->head) > atomic_load(&p->checkpoint))) {
        if (pthread_cond_timedwait(&p->wake, &p->lock, &deadline) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&p->lock);
}

static void back_off(struct projector *p)
{
    wait_for(p, p->backoff_ms, 0);
    p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
}

static void drop_redis(struct projector *p)
{
    atomic_store(&p->redis_up, 0);
    redisFree(p->redis);
    p->redis = NULL;
    p->generation = 0;
}

static void clear_batch(struct projector *p)
{
    for (size_t i = 0; i < p->batch_count; i++)
        apply_event_clear(&p->batch[i]);
    p->batch_count = 0;
}

/* "2026-11-28T12:00:00.000Z" -> Unix milliseconds, 0 if unreadable. */
static uint64_t parse_timestamp_ms(const char *text)
{
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (uint64_t)timegm(&tm) * 1000 + (uint64_t)ms;
}

static int collect_event(const struct store_event *event, void *arg)
{
    struct projector *p = arg;
    if (p->batch_count == 0)
        atomic_store(&p->oldest_unapplied_ms, parse_timestamp_ms(event->recorded_at));
    if (apply_event_from_store(event, &p->batch[p->batch_count]) < 0) {
        /* A payload that is not a view can only come from outside catalogd. */
        LOG(LOG_ERROR, "projector: event %" PRId64 " has no valid view; stopping here", event->seq);
        return 1;
    }
    p->batch_count++;
    return 0;
}

static int open_store(struct projector *p)
{
    char err[256];
    if (p->store) return 0;
    if (store_open_reader(p->db_path, &p->store, err, sizeof(err)) == 0) return 0;
    record_error(p, "opening the event log", err);
    return -1;
}

/* Takes the offered events that continue exactly from the checkpoint. Returns how many. */
static size_t take_offered(struct projector *p)
{
    int64_t next = atomic_load(&p->checkpoint) + 1;
    pthread_mutex_lock(&p->lock);
    size_t skip = 0;
    while (skip < p->offered_count && p->offered[skip].seq < next)
        apply_event_clear(&p->offered[skip++]);
    size_t take = 0;
    if (skip < p->offered_count && p->offered[skip].seq == next) {
        while (skip + take < p->offered_count && take < BATCH_MAX &&
               p->offered[skip + take].seq == next + (int64_t)take)
            take++;
        memcpy(p->batch, p->offered + skip, take * sizeof(*p->batch));
    }
    size_t rest = p->offered_count - skip - take;
    if (rest > 0 && skip + take > 0)
        memmove(p->offered, p->offered + skip + take, rest * sizeof(*p->offered));
    p->offered_count = rest;
    pthread_mutex_unlock(&p->lock);
    p->batch_count = take;
    return take;
}

static int fetch_batch(struct projector *p)
{
    if (take_offered(p) > 0) return 0;
    if (open_store(p) < 0) return -1;
    int rc = store_read_events(p->store, atomic_load(&p->checkpoint), BATCH_MAX, collect_event, p);
    if (rc < 0) {
        record_error(p, "reading the event log", store_errmsg(p->store));
        return -1;
    }
    if (p->batch_count > 0) {
        int64_t last = p->batch[p->batch_count - 1].seq;
        if (last > atomic_load(&p->head)) atomic_store(&p->head, last);
    }
    return 0;
}

static int connect_redis(struct projector *p)
{
    char err[256];
    p->redis = redis_sync_connect(&p->config.redis, REDIS_TIMEOUT_MS, err, sizeof(err));
    if (!p->redis) {
        record_error(p, "connecting to Redis", err);
        return -1;
    }
    if (p->connected_once) {
        pthread_mutex_lock(&p->status_lock);
        p->status.reconnects++;
        pthread_mutex_unlock(&p->status_lock);
        LOG(LOG_INFO, "projector: reconnected to Redis");
    }
    p->connected_once = 1;
    atomic_store(&p->redis_up, 1);
    return 0;
}

static int rebuild(struct projector *p)
{
    char err[256];
    struct rebuild_result result;
    set_state(p, PROJECTOR_REBUILDING);
    if (open_store(p) < 0) return -1;
    clear_batch(p);
    LOG(LOG_INFO, "projector: the read model has no usable generation; rebuilding it");
    int rc = rebuild_run(p->store, p->redis, p->prefix, NULL, NULL, &result, err, sizeof(err));
    if (rc == REBUILD_BUSY) return -1; /* someone else is building it: wait and look again */
    if (rc != REBUILD_OK) {
        record_error(p, "rebuilding", err);
        return -1;
    }
    pthread_mutex_lock(&p->status_lock);
    p->status.rebuilds++;
    pthread_mutex_unlock(&p->status_lock);
    if (result.old_generation > 0 &&
        rebuild_drop_generation(p->redis, p->prefix, result.old_generation, err, sizeof(err)) < 0)
        record_error(p, "dropping the broken generation", err);
    LOG(LOG_INFO,
        "projector: generation %" PRId64 " built with %" PRId64 " products up to seq %" PRId64,
        result.generation, result.products, result.checkpoint);
    return 0;
}

/* Reads the current generation and its checkpoint; rebuilds when either is missing. */
static int load_generation(struct projector *p)
{
    char err[256], key[LAYOUT_KEY_MAX];
    long long gen, checkpoint;
    layout_global_key(p->prefix, "gen", key, sizeof(key));
    int rc = redis_sync_get_int(p->redis, key, &gen, err, sizeof(err));
    if (rc == 0) {
        layout_generation_base(p->prefix, gen, key, sizeof(key) - 16);
        strcat(key, "checkpoint");
        rc = redis_sync_get_int(p->redis, key, &checkpoint, err, sizeof(err));
    }
    if (rc < 0) {
        record_error(p, "reading the generation", err);
        return -1;
    }
    if (rc == 1) return rebuild(p) < 0 ? -1 : load_generation(p);
    clear_batch(p); /* fetched for another checkpoint */
    int64_t parked = 0;
    if (reload_parked(p, gen, &parked, err, sizeof(err)) != APPLY_OK) {
        record_error(p, "counting parked events", err);
        return -1;
    }
    set_parked(p, parked);
    p->next_unpark_ms = clock_mono_ms();
    p->unpark_backoff_ms = UNPARK_MIN_MS;
    p->generation = gen;
    atomic_store(&p->checkpoint, checkpoint);
    if (checkpoint > atomic_load(&p->head)) atomic_store(&p->head, checkpoint);
    if (p->applied) p->applied(checkpoint, p->applied_arg);
    return 0;
}

/* Checks, while idle, that the generation still exists (Redis may have lost its data). */
static int generation_still_there(struct projector *p)
{
    char err[256], key[LAYOUT_KEY_MAX];
    long long gen;
    layout_global_key(p->prefix, "gen", key, sizeof(key));
    int rc = redis_sync_get_int(p->redis, key, &gen, err, sizeof(err));
    if (rc < 0) {
        record_error(p, "checking the generation", err);
        drop_redis(p);
        return 0;
    }
    return rc == 0 && gen == p->generation;
}

static void advance(struct projector *p, int64_t checkpoint)
{
    atomic_store(&p->checkpoint, checkpoint);
    if (checkpoint >= atomic_load(&p->head)) atomic_store(&p->oldest_unapplied_ms, 0);
    p->backoff_ms = BACKOFF_MIN_MS;
    if (p->applied) p->applied(checkpoint, p->applied_arg);
}

/* Redis refused a batch. Applies its events one by one to find the ones Redis refuses on
 * their own, and parks those (and, in order, their products' later events) so the other
 * products go on. If Redis refuses everything (out of memory, read-only), even the parking
 * fails: nothing is skipped and the caller backs off. The batch is refetched either way. */
static int isolate_refused_events(struct projector *p)
{
    char err[256];
    int64_t checkpoint;
    int rc = APPLY_OK;
    for (size_t i = 0; rc == APPLY_OK && i < p->batch_count; i++) {
        struct apply_event *event = &p->batch[i];
        rc = apply_events(p->redis, p->prefix, p->generation, 1, event, 1, &checkpoint, err,
                          sizeof(err));
        if (rc == APPLY_REJECTED) {
            char refused[256];
            snprintf(refused, sizeof(refused), "%s", err);
            rc = apply_park(p->redis, p->prefix, p->generation, event, &checkpoint, err,
                            sizeof(err));
            if (rc == APPLY_OK) {
                parked_set_add(p->parked, event->id, event->seq);
                set_parked(p, p->parked_events + 1);
                record_error(p, "parked an event Redis refused", refused);
                LOG(LOG_WARN, "projector: event %" PRId64 " of product %s parked: %s", event->seq,
                    event->id, refused);
            }
        } else if (rc == APPLY_OK)
            note_parked_behind(p, event, 1);
        if (rc == APPLY_OK) advance(p, checkpoint);
    }
    clear_batch(p);
    return rc;
}

struct unpark_pass {
    struct projector *p;
    int64_t applied;
    int failed;
    char err[256];
};

static int take_event(const struct store_event *event, void *arg)
{
    struct apply_event *out = arg;
    if (apply_event_from_store(event, out) < 0) out->seq = -1;
    return 1; /* one is all we asked for */
}

static int unpark_one(const char *product_id, int64_t seq, void *arg)
{
    struct unpark_pass *pass = arg;
    struct projector *p = pass->p;
    struct apply_event event = {0};
    int64_t left;
    (void)product_id;
    if (store_read_events(p->store, seq - 1, 1, take_event, &event) != 1 || event.seq != seq) {
        snprintf(pass->err, sizeof(pass->err), "parked event %" PRId64 " is not in the log", seq);
        apply_event_clear(&event);
        pass->failed = 1;
        return 1;
    }
    int rc = apply_unpark(p->redis, p->prefix, p->generation, &event, &left, pass->err,
                          sizeof(pass->err));
    apply_event_clear(&event);
    if (rc != APPLY_OK) {
        pass->failed = 1;
        return 1;
    }
    pass->applied++;
    return 0;
}

/* Retries parked events, oldest first per product, with capped exponential backoff. */
static void retry_parked(struct projector *p)
{
    if (p->parked_events == 0 || !p->redis || clock_mono_ms() < p->next_unpark_ms) return;
    if (open_store(p) < 0) return;
    struct unpark_pass pass = {.p = p};
    char err[256];
    int64_t parked = 0;
    int rc = apply_list_parked(p->redis, p->prefix, p->generation, unpark_one, &pass, &parked, err,
                               sizeof(err));
    if (rc == APPLY_REDIS_DOWN) {
        record_error(p, "retrying parked events", err);
        drop_redis(p);
        return;
    }
    set_parked(p, parked - pass.applied);
    if (pass.applied > 0)
        LOG(LOG_INFO, "projector: applied %" PRId64 " parked events", pass.applied);
    if (pass.failed || rc != APPLY_OK) {
        record_error(p, "retrying parked events", pass.failed ? pass.err : err);
        p->unpark_backoff_ms =
            p->unpark_backoff_ms * 2 > UNPARK_MAX_MS ? UNPARK_MAX_MS : p->unpark_backoff_ms * 2;
    } else {
        p->unpark_backoff_ms = UNPARK_MIN_MS;
    }
    p->next_unpark_ms = clock_mono_ms() + (uint64_t)p->unpark_backoff_ms;
}

static void apply_batch(struct projector *p)
{
    char err[256];
    int64_t checkpoint;
    int rc = apply_events(p->redis, p->prefix, p->generation, 1, p->batch, p->batch_count,
                          &checkpoint, err, sizeof(err));
    if (rc == APPLY_OK) {
        note_parked_behind(p, p->batch, p->batch_count);
        clear_batch(p);
        advance(p, checkpoint);
    } else if (rc == APPLY_REJECTED) {
        rc = isolate_refused_events(p); /* advances over what it applies or parks */
    }
    switch (rc) {
    case APPLY_OK:
        set_state(p, atomic_load(&p->checkpoint) < atomic_load(&p->head) ? PROJECTOR_CATCHING_UP
                                                                         : PROJECTOR_LIVE);
        break;
    case APPLY_GENERATION_CHANGED:
    case APPLY_NO_CHECKPOINT:
        LOG(LOG_INFO, "projector: %s; reloading", err);
        p->generation = 0;
        break;
    case APPLY_REDIS_DOWN:
        record_error(p, "applying", err);
        clear_batch(p);
        drop_redis(p);
        set_state(p, PROJECTOR_REDIS_DOWN);
        back_off(p);
        break;
    default: /* Redis refuses everything, even parking: retry later, skip nothing */
        record_error(p, "applying", err);
        clear_batch(p);
        back_off(p);
        break;
    }
}

static int should_stop(struct projector *p)
{
    pthread_mutex_lock(&p->lock);
    int stop = p->stopping && (atomic_load(&p->checkpoint) >= atomic_load(&p->head) ||
                               clock_mono_ms() >= p->drain_deadline_ms);
    pthread_mutex_unlock(&p->lock);
    return stop;
}

static void *projector_main(void *arg)
{
    struct projector *p = arg;
    uint64_t last_check_ms = clock_mono_ms();
    while (!should_stop(p)) {
        if (!p->redis && connect_redis(p) < 0) {
            set_state(p, PROJECTOR_REDIS_DOWN);
            if (p->batch_count == 0 && atomic_load(&p->head) > atomic_load(&p->checkpoint))
                fetch_batch(p); /* keeps the lag figure true while Redis is away */
            back_off(p);
            continue;
        }
        if (p->generation == 0 && load_generation(p) < 0) {
            drop_redis(p);
            back_off(p);
            continue;
        }
        if (p->batch_count == 0 && atomic_load(&p->head) > atomic_load(&p->checkpoint) &&
            fetch_batch(p) < 0) {
            back_off(p);
            continue;
        }
        if (p->batch_count > 0) {
            apply_batch(p);
            continue;
        }
        set_state(p, PROJECTOR_LIVE);
        atomic_store(&p->oldest_unapplied_ms, 0);
        retry_parked(p);
        wait_for(p, p->parked_events > 0 ? UNPARK_MIN_MS : IDLE_CHECK_MS, 1);
        if (clock_mono_ms() - last_check_ms >= IDLE_CHECK_MS) {
            last_check_ms = clock_mono_ms();
            if (p->redis && !generation_still_there(p)) p->generation = 0;
        }
    }
    clear_batch(p);
    return NULL;
}

int projector_start(const struct projector_config *config,
                    void (*applied)(int64_t checkpoint, void *arg), void *arg,
                    struct projector **out)
{
    struct projector *p = xcalloc(1, sizeof(*p));
    p->config = *config;
    snprintf(p->prefix, sizeof(p->prefix), "%s", config->prefix);
    snprintf(p->db_path, sizeof(p->db_path), "%s", config->db_path);
    p->config.prefix = p->prefix;
    p->config.db_path = p->db_path;
    p->applied = applied;
    p->applied_arg = arg;
    p->backoff_ms = BACKOFF_MIN_MS;
    p->parked = parked_set_new();
    atomic_init(&p->head, config->head_seq);
    atomic_init(&p->checkpoint, 0);
    atomic_init(&p->oldest_unapplied_ms, 0);
    atomic_init(&p->redis_up, 0);
    p->status.state = PROJECTOR_STARTING;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->status_lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (pthread_create(&p->thread, NULL, projector_main, p) != 0) {
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void projector_notify(struct projector *p, int64_t head_seq)
{
    int64_t old = atomic_load(&p->head);
    while (head_seq > old && !atomic_compare_exchange_weak(&p->head, &old, head_seq))
        ;
    if (atomic_load(&p->oldest_unapplied_ms) == 0) {
        uint64_t zero = 0;
        atomic_compare_exchange_strong(&p->oldest_unapplied_ms, &zero, clock_wall_ms());
    }
    pthread_mutex_lock(&p->lock);
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

void projector_offer(struct projector *p, struct apply_event *events, size_t count)
{
    if (count == 0) return;
    pthread_mutex_lock(&p->lock);
    if (p->offered_count + count > OFFERED_MAX) { /* behind: it reads the log instead */
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i < count; i++)
            apply_event_clear(&events[i]);
        return;
    }
    if (p->offered_count + count > p->offered_cap) {
        p->offered_cap = OFFERED_MAX;
        p->offered = xrealloc(p->offered, p->offered_cap * sizeof(*p->offered));
    }
    memcpy(p->offered + p->offered_count, events, count * sizeof(*events));
    p->offered_count += count;
    pthread_mutex_unlock(&p->lock);
}

int projector_redis_up(const struct projector *p)
{
    return atomic_load(&p->redis_up);
}

int projector_seq_parked(struct projector *p, int64_t seq)
{
    return parked_set_has_seq(p->parked, seq);
}

int64_t projector_checkpoint(const struct projector *p)
{
    return atomic_load(&p->checkpoint);
}

void projector_get_status(struct projector *p, struct projector_status *out)
{
    pthread_mutex_lock(&p->status_lock);
    *out = p->status;
    pthread_mutex_unlock(&p->status_lock);
    out->checkpoint = atomic_load(&p->checkpoint);
    out->head = atomic_load(&p->head);
    uint64_t oldest = atomic_load(&p->oldest_unapplied_ms);
    uint64_t now = clock_wall_ms();
    out->lag_seconds = (out->head > out->checkpoint && oldest && now > oldest)
                           ? (double)(now - oldest) / 1000.0
                           : 0.0;
}

void projector_stop(struct projector *p, int drain_ms)
{
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    p->drain_deadline_ms = clock_mono_ms() + (uint64_t)drain_ms;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    redisFree(p->redis);
    store_close(p->store);
    for (size_t i = 0; i < p->offered_count; i++)
        apply_event_clear(&p->offered[i]);
    free(p->offered);
    parked_set_free(p->parked);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->status_lock);
    pthread_cond_destroy(&p->wake);
    free(p);
}
