/* projector.c - the projector thread: fetch a batch of events from the log, apply it in one
 * atomic Redis step, repeat; retry with backoff on any failure; rebuild when the read model
 * is missing or diverged; retry parked events; watch that Redis does not evict.
 * Invariant: the in-memory checkpoint is never ahead of Redis' checkpoint for the current
 * generation, and an event is in the parked set before the checkpoint passes it, so a
 * read-your-writes wait never answers "applied" before the view is really there. */
#include "projection/projector.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "command/store.h"
#include "common/clock.h"
#include "common/digits.h"
#include "common/log.h"
#include "common/random_token.h"
#include "common/xmalloc.h"
#include "domain/timestamp.h"
#include "projection/apply.h"
#include "projection/bus.h"
#include "projection/confirmation.h"
#include "projection/leadership.h"
#include "projection/parked_set.h"
#include "projection/prefix_hold.h"
#include "projection/rebuild.h"
#include "projection/redis_sync.h"
#include "projection/unpark.h"
#include "readmodel/applied_floor.h"
#include "readmodel/layout.h"
#include "readmodel/view_cache.h"

#define BACKOFF_MIN_MS   25
#define BACKOFF_MAX_MS   1000
#define REDIS_TIMEOUT_MS 1000
#define CHECK_EVERY_MS   1000 /* while idle: is the generation still there and still ours? */
#define POLICY_EVERY_MS  5000 /* does Redis evict keys? */
#define OFFERED_MAX      4096 /* events held for the projector; beyond that it reads the log */
#define UNPARK_MIN_MS    500
#define UNPARK_MAX_MS    30000
#define STALL_MS         500   /* an unapplied event older than this: not keeping up */
#define REPEAT_LOG_MS    60000 /* the same error is logged again at most this often */
/* While idle the projector reads the log's head, for entries that no commit of this instance
 * announced: several instances' leader every HEAD_POLL_MS (the others' commits also wake it at
 * once, through the bus), a lone instance every CHECK_EVERY_MS (an entry written by hand). */
#define HEAD_POLL_MS  100
#define NEWS_EVERY_MS 1000 /* the leader tells the others its state this often while idle */
#define NEWS_STALE_MS 3000 /* a follower that heard nothing for this long knows no leader */
#define CONFIRM_MS    2000 /* longest wait for the store before taking an epoch */
#define FENCE_MAX     (DIGITS_U64_MAX + 1 + RANDOM_TOKEN_LEN + 1) /* "epoch:random" */

struct projector {
    struct projector_config config;
    char prefix[LAYOUT_PREFIX_MAX + 1];
    char db_path[4096];
    char gen_key[LAYOUT_KEY_MAX];
    char epoch_key[LAYOUT_KEY_MAX];
    char channel[LAYOUT_KEY_MAX];
    char instance_id[128];
    void (*applied)(int64_t checkpoint, void *arg);
    void *applied_arg;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;               /* guarded by lock */
    uint64_t drain_deadline_ms; /* guarded by lock */
    uint64_t notices;           /* guarded by lock: projector_notify calls so far */

    struct apply_event *offered; /* guarded by lock: committed events handed over in memory */
    size_t offered_count, offered_cap;

    _Atomic int64_t head;
    _Atomic int64_t checkpoint;
    /* Reads of the log begun so far, counted, and the count the read that the checkpoint came
     * from began at: a command's batch takes the count just before its commit, and only a
     * checkpoint from a read begun after that answers for it (projector_applied). Written by
     * the projector thread: the checkpoint first, then its read. */
    _Atomic uint64_t log_reads;
    _Atomic uint64_t checkpoint_read;
    _Atomic uint64_t commit_reads; /* the count the last commit took (projector_commit_reads) */
    _Atomic uint64_t oldest_unapplied_ms; /* wall time of the oldest unapplied event, or 0 */
    /* Wall time this process learned of the oldest unapplied events, or 0: later than their
     * own time when their commit waited (a locked write model), which is no lag of ours. */
    _Atomic uint64_t unapplied_known_ms;
    atomic_int redis_up;
    atomic_int poked;     /* projector_poke since the last idle turn */
    atomic_int confirmed; /* commands may answer "applied" (projector_applied) */
    atomic_int state;
    atomic_int prefix_ours;                /* the generation is checked: projector_prefix_ours */
    _Atomic uint64_t prefix_ours_until_ms; /* and no other catalog can hold it before then */

    pthread_mutex_t status_lock;
    struct projector_status status; /* guarded by status_lock, except what the atomics hold */
    uint64_t error_logged_ms;       /* guarded by status_lock */
    uint64_t errors_unlogged;       /* guarded by status_lock */
    int following;                  /* guarded by status_lock: another instance projects */
    uint64_t term;                  /* the leadership term this one leads in (leadership.h) */
    uint64_t news_ms;               /* guarded by status_lock: when its last news came */
    /* 1 while this instance follows and may not know every event parked before its
     * checkpoint: it knows them only if it heard every news since the leader last said none
     * was parked. Written under status_lock. */
    atomic_int parked_unsure;
    /* Following: the checkpoint the last news claimed, with the log's event there as they
     * named it; the projector thread takes it once the log holds that event (prove_claim).
     * Guarded by status_lock; "claim_new" wakes the thread. */
    int64_t claimed_checkpoint;
    char claimed_event[BUS_EVENT_MAX];
    atomic_int claim_new;

    /* Owned by the projector thread. */
    struct store *store;
    struct redis_sync *redis;
    int64_t generation; /* 0: not known yet */
    char generation_text[DIGITS_U64_MAX + 2];
    struct confirmation confirmation; /* of the Redis connected to (confirmation.h) */
    struct apply_event batch[APPLY_BATCH_MAX];
    size_t batch_count;
    int64_t batch_after;                     /* the checkpoint the batch was read after */
    uint64_t batch_read;                     /* the log read it came from (log_reads) */
    char event_after[APPLY_FINGERPRINT_MAX]; /* the log's event at batch_after, or "" */
    int backoff_ms;
    int connected_once;
    struct parked_set *parked; /* read by loop threads too */
    struct prefix_hold *hold;
    uint64_t next_unpark_ms; /* monotonic time of the next retry of parked events */
    int unpark_backoff_ms;
    uint64_t next_check_ms, next_policy_ms, next_head_poll_ms, next_cap_ms;
    struct apply_result *result;
    /* Several instances: the fencing epoch this one took when it began to lead (0: none), and
     * its term's fence, which the scripts' guards compare with Redis' (take_epoch); when it
     * next sends news. */
    int64_t epoch;
    char fence[FENCE_MAX];
    struct script_guard guards[2];
    int64_t news_number; /* of the last news sent in this epoch */
    uint64_t next_news_ms;
    char news_event[APPLY_FINGERPRINT_MAX]; /* Redis holds it at news_event_seq */
    int64_t news_event_seq;                 /* -1: none known */
};

_Static_assert(APPLY_FINGERPRINT_MAX <= BUS_EVENT_MAX, "news name the checkpoint's event");

static const char *const STATE_NAMES[PROJECTOR_STATE_COUNT] = {
    [PROJECTOR_STARTING] = "starting",
    [PROJECTOR_LIVE] = "live",
    [PROJECTOR_CATCHING_UP] = "catching_up",
    [PROJECTOR_REBUILDING] = "rebuilding",
    [PROJECTOR_REDIS_DOWN] = "redis_down",
    [PROJECTOR_STALLED] = "stalled",
    [PROJECTOR_HELD_ELSEWHERE] = "held_elsewhere",
};

const char *projector_state_name(enum projector_state state)
{
    assert(state >= 0 && state < PROJECTOR_STATE_COUNT);
    return STATE_NAMES[state];
}

static void set_state(struct projector *p, enum projector_state state)
{
    enum projector_state old = atomic_exchange(&p->state, state);
    pthread_mutex_lock(&p->status_lock);
    p->status.state = state;
    p->status.generation = p->generation;
    pthread_mutex_unlock(&p->status_lock);
    if (old == state) return;
    /* Under load it moves between live and catching up with every batch: debug only. */
    int routine = (old == PROJECTOR_LIVE && state == PROJECTOR_CATCHING_UP) ||
                  (old == PROJECTOR_CATCHING_UP && state == PROJECTOR_LIVE);
    LOG(routine ? LOG_DEBUG : LOG_INFO, "projector: %s -> %s", projector_state_name(old),
        projector_state_name(state));
}

/* Counts a failed attempt and logs it: each new error once, the same error again at most
 * once a minute (with how many were not logged), so a fault that lasts cannot flood the
 * log. */
static void record_error(struct projector *p, const char *what, const char *err)
{
    uint64_t now = clock_mono_ms();
    char line[sizeof(p->status.last_error)];
    snprintf(line, sizeof(line), "%s: %s", what, err);
    pthread_mutex_lock(&p->status_lock);
    p->status.redis_errors++;
    int repeated = strcmp(p->status.last_error, line) == 0;
    int log = !repeated || now - p->error_logged_ms >= REPEAT_LOG_MS;
    uint64_t unlogged = p->errors_unlogged;
    p->errors_unlogged = log ? 0 : unlogged + 1;
    if (log) p->error_logged_ms = now;
    memcpy(p->status.last_error, line, sizeof(line));
    pthread_mutex_unlock(&p->status_lock);
    if (log && repeated)
        LOG(LOG_WARN, "projector: %s (again; %" PRIu64 " times since last logged)", line, unlogged);
    else if (log)
        LOG(LOG_WARN, "projector: %s", line);
}

static void publish_parked(struct projector *p)
{
    pthread_mutex_lock(&p->status_lock);
    p->status.parked_events = (int64_t)parked_set_count(p->parked);
    pthread_mutex_unlock(&p->status_lock);
}

/* With p->lock held: is it time to end the thread? When stopping, a leader first drains, up to
 * the drain's deadline, what is committed and not yet applied. */
static int stop_due(struct projector *p)
{
    int leading = !p->config.leadership || p->epoch != 0;
    return p->stopping && (!leading || atomic_load(&p->checkpoint) >= atomic_load(&p->head) ||
                           clock_mono_ms() >= p->drain_deadline_ms);
}

/* Sleeps on the condition variable; returns early when it is time to stop, when news claim a
 * checkpoint for a follower to prove, or when "until_work" and new events are committed or a
 * query poked the projector. While a stop drains, a wait still sleeps (up to the drain's
 * deadline): a step that keeps failing then must back off as at any other time, not spin and
 * log until the deadline. */
static void wait_for(struct projector *p, int ms, int until_work)
{
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        uint64_t now = clock_mono_ms();
        uint64_t left = p->drain_deadline_ms > now ? p->drain_deadline_ms - now : 0;
        if ((uint64_t)ms > left) ms = (int)left;
    }
    struct timespec deadline = clock_deadline_after_ms((uint64_t)ms);
    while (!stop_due(p) && !atomic_load(&p->claim_new) &&
           !(until_work &&
             (atomic_load(&p->head) > atomic_load(&p->checkpoint) || atomic_load(&p->poked)))) {
        if (pthread_cond_timedwait(&p->wake, &p->lock, &deadline) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&p->lock);
}

static void back_off(struct projector *p)
{
    wait_for(p, p->backoff_ms, 0);
    p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
}

static void clear_batch(struct projector *p)
{
    for (size_t i = 0; i < p->batch_count; i++)
        apply_event_clear(&p->batch[i]);
    p->batch_count = 0;
}

static void drop_redis(struct projector *p)
{
    atomic_store(&p->redis_up, 0);
    atomic_store(&p->confirmed, 0);
    redis_sync_close(p->redis);
    p->redis = NULL;
    p->generation = 0;
    p->news_event_seq = -1; /* known again once the generation is loaded */
}

/* Forgets the generation: the next turn reloads it (and the checkpoint) from Redis. */
static void forget_generation(struct projector *p)
{
    clear_batch(p);
    p->generation = 0;
    p->news_event_seq = -1; /* known again once the generation is loaded */
}

/* Redis holds "fingerprint", the log's event at "seq": for the news to name (news_event). */
static void note_checkpoint_event(struct projector *p, int64_t seq, const char *fingerprint)
{
    size_t len = strlen(fingerprint);
    if (len >= sizeof(p->news_event)) { /* longer than any event of the log names */
        p->news_event_seq = -1;
        return;
    }
    memcpy(p->news_event, fingerprint, len + 1);
    p->news_event_seq = seq;
}

/* Counts a read of the log that may move the checkpoint, before it begins; returns its count. */
static uint64_t begin_log_read(struct projector *p)
{
    return atomic_fetch_add(&p->log_reads, 1) + 1;
}

/* Redis holds the generation at "checkpoint", as a read of the log begun at "read" showed
 * (begin_log_read): the floor rises first (applied_floor.h), then the checkpoint that commands
 * answer "applied" against, then the read it came from. */
static void set_checkpoint(struct projector *p, int64_t checkpoint, uint64_t read)
{
    applied_floor_raise(p->config.applied_floor, checkpoint);
    atomic_store(&p->checkpoint, checkpoint);
    atomic_store(&p->checkpoint_read, read);
}

static int collect_event(const struct store_event *event, void *arg)
{
    struct projector *p = arg;
    struct apply_event *out = &p->batch[p->batch_count++];
    if (apply_event_from_store(event, out) < 0) {
        apply_poison_sku(p->store, out);
        record_error(p, "reading the event log",
                     "an entry is not a valid event; it will be parked");
    }
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

/* Brings the applied floor down to the log's head, should the log have gone back in time (a
 * backup restored): the events it lost can never be applied again (applied_floor.h). Returns
 * that head, or -1 when the log cannot be read: quiet then, the projector's own reads report
 * it. */
static int64_t cap_floor(struct projector *p)
{
    char err[256];
    int64_t before = applied_floor_get(p->config.applied_floor), head;
    if ((!p->store && store_open_reader(p->db_path, &p->store, err, sizeof(err)) < 0) ||
        store_head_seq(p->store, &head) != 0)
        return -1;
    if (before > 0) applied_floor_cap(p->config.applied_floor, before, head);
    return head;
}

/* Moves the confirmation on (confirmation.h), reading the key again first when "recheck", and
 * says whether commands may answer "applied" (projector_applied): not from a Redis whose
 * queries answer 503 unconfirmed. The commands that waited are let go once it is confirmed. */
static void confirm(struct projector *p, int recheck)
{
    char err[256];
    if (open_store(p) < 0) return;
    int64_t checkpoint = atomic_load(&p->checkpoint);
    int rc = recheck ? confirmation_check(&p->confirmation, p->redis, p->store, checkpoint, err,
                                          sizeof(err))
                     : confirmation_advance(&p->confirmation, p->redis, p->store, checkpoint, err,
                                            sizeof(err));
    int confirmed = p->confirmation.confirmed;
    if (atomic_exchange(&p->confirmed, confirmed) == 0 && confirmed && p->applied)
        p->applied(checkpoint, p->applied_arg);
    if (rc == 0) return;
    record_error(p, "confirming the read model in Redis", err);
    if (redis_sync_broken(p->redis)) drop_redis(p);
}

/* Does "event" name "before" as the log's event before it? Only then may the two be applied
 * in one batch: the script checks the log's event before a batch against Redis' checkpoint
 * for the batch's first event only. Two commits with a backup restored between them do not
 * chain (the later one read the restored log's event), so they go in two batches and the
 * second is refused there; a batch spanning them would land its last event where the restored
 * log agrees with it and hide the difference for good. An event whose commit did not know
 * the event before it (PostgreSQL: the first of each commit) starts a batch, which
 * fetch_batch checks against the log. */
static int chains_to(const struct apply_event *before, const struct apply_event *event)
{
    char fingerprint[APPLY_FINGERPRINT_MAX];
    if (event->prior[0] == '\0') return 0;
    apply_event_fingerprint(before, fingerprint);
    return strcmp(fingerprint, event->prior) == 0;
}

/* Takes the offered events that continue exactly from the checkpoint, each chained to the one
 * before it. Returns how many. */
static size_t take_offered(struct projector *p)
{
    int64_t next = atomic_load(&p->checkpoint) + 1;
    pthread_mutex_lock(&p->lock);
    size_t skip = 0;
    while (skip < p->offered_count && p->offered[skip].seq < next)
        apply_event_clear(&p->offered[skip++]);
    size_t take = 0;
    if (skip < p->offered_count && p->offered[skip].seq == next) {
        const struct apply_event *from = p->offered + skip;
        take = 1;
        while (skip + take < p->offered_count && take < APPLY_BATCH_MAX &&
               from[take].seq == next + (int64_t)take && chains_to(&from[take - 1], &from[take]))
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

/* Stores the wall time now in "slot" unless it already holds an earlier time (events noted
 * earlier still wait), whoever races to store it. */
static void note_now_unless_set(_Atomic uint64_t *slot)
{
    uint64_t zero = 0;
    if (atomic_load(slot) == 0) atomic_compare_exchange_strong(slot, &zero, clock_wall_ms());
}

/* The batch holds the oldest events not yet in Redis: the first one's own time (taken as its
 * command ran, before its commit) is what the lag is measured from. */
static void note_oldest_unapplied(struct projector *p)
{
    uint64_t recorded_ms = 0;
    const char *at = p->batch[0].recorded_at;
    if (timestamp_parse(at, strlen(at), &recorded_ms) < 0) recorded_ms = clock_wall_ms();
    atomic_store(&p->oldest_unapplied_ms, recorded_ms);
    note_now_unless_set(&p->unapplied_known_ms);
}

/* Nothing is left unapplied: no lag. */
static void forget_unapplied(struct projector *p)
{
    atomic_store(&p->oldest_unapplied_ms, 0);
    atomic_store(&p->unapplied_known_ms, 0);
}

/* Raises the head to "seq" if it is below; never lowers it, whoever raced to raise it. */
static void raise_head(struct projector *p, int64_t seq)
{
    int64_t old = atomic_load(&p->head);
    while (seq > old && !atomic_compare_exchange_weak(&p->head, &old, seq))
        ;
}

static uint64_t notices_so_far(struct projector *p)
{
    pthread_mutex_lock(&p->lock);
    uint64_t notices = p->notices;
    pthread_mutex_unlock(&p->lock);
    return notices;
}

/* The log holds nothing after the checkpoint, yet the head is beyond it: the events it
 * counted are gone (the log's tail deleted by hand, a backup restored under a running
 * catalogd). The head only ever rises otherwise, so it would stay ahead for good: a lag that
 * never clears, and a projector that never naps (wait_for returns at once while the head is
 * ahead), spinning on a core. It comes back to the checkpoint, unless a commit was notified
 * since the read began: that one may be past the read's snapshot, and its notice, which
 * raises the head under the same lock, is then not undone. */
static void forget_head_beyond_log(struct projector *p, uint64_t notices_before_read)
{
    pthread_mutex_lock(&p->lock);
    if (p->notices == notices_before_read && atomic_load(&p->head) > p->batch_after)
        atomic_store(&p->head, p->batch_after);
    pthread_mutex_unlock(&p->lock);
}

static int fetch_batch(struct projector *p)
{
    p->batch_after = atomic_load(&p->checkpoint);
    p->batch_read = begin_log_read(p); /* offered events, too, were committed before it */
    if (take_offered(p) == 0) {
        if (open_store(p) < 0) return -1;
        uint64_t notices = notices_so_far(p);
        int rc = store_read_events(p->store, p->batch_after, APPLY_BATCH_MAX, collect_event, p);
        if (rc < 0) {
            clear_batch(p);
            record_error(p, "reading the event log", store_errmsg(p->store));
            return -1;
        }
        if (p->batch_count == 0) forget_head_beyond_log(p, notices);
    }
    if (p->batch_count > 0) {
        raise_head(p, p->batch[p->batch_count - 1].seq);
        note_oldest_unapplied(p);
        /* For the script to check that Redis holds the log's own event there: the log may
         * have gone back in time under it since the checkpoint was written. Events handed
         * over in memory bring it from their commit's own transaction: no read then. */
        if (p->batch_after > 0 && p->batch[0].prior[0] != '\0') {
            memcpy(p->event_after, p->batch[0].prior, sizeof(p->event_after));
        } else if (p->batch_after > 0 &&
                   (open_store(p) < 0 ||
                    apply_log_fingerprint(p->store, p->batch_after, p->event_after) < 0)) {
            if (p->store) record_error(p, "reading the event log", store_errmsg(p->store));
            clear_batch(p);
            return -1;
        }
    }
    return 0;
}

/* Reads Redis' maxmemory and policy: a Redis that evicts keys under memory pressure would
 * silently drop views and checkpoints. */
static void check_eviction_policy(struct projector *p)
{
    char err[256], problem[sizeof(p->status.redis_problem)] = "";
    const char *argv[] = {"INFO", "memory"};
    redisReply *reply = redis_sync_command(p->redis, 2, argv, NULL, err, sizeof(err));
    if (!reply) return; /* an ACL may forbid INFO: nothing to say then */
    long long maxmemory = 0;
    char policy[64] = "";
    const char *at = reply->type == REDIS_REPLY_STRING ? strstr(reply->str, "\nmaxmemory:") : NULL;
    if (at) sscanf(at, "\nmaxmemory:%lld", &maxmemory);
    at = reply->type == REDIS_REPLY_STRING ? strstr(reply->str, "\nmaxmemory_policy:") : NULL;
    if (at) sscanf(at, "\nmaxmemory_policy:%63[a-z-]", policy);
    freeReplyObject(reply);
    if (maxmemory > 0 && strncmp(policy, "allkeys-", 8) == 0)
        snprintf(problem, sizeof(problem),
                 "Redis evicts keys (maxmemory-policy %s): views and checkpoints could vanish; "
                 "set maxmemory-policy noeviction",
                 policy);
    pthread_mutex_lock(&p->status_lock);
    int changed = strcmp(p->status.redis_problem, problem) != 0;
    memcpy(p->status.redis_problem, problem, sizeof(problem));
    pthread_mutex_unlock(&p->status_lock);
    if (changed && problem[0]) LOG(LOG_ERROR, "projector: %s", problem);
    if (changed && !problem[0]) LOG(LOG_INFO, "projector: Redis no longer evicts keys");
}

static int connect_redis(struct projector *p)
{
    char err[256];
    p->redis = redis_sync_connect(&p->config.redis, REDIS_TIMEOUT_MS, err, sizeof(err));
    if (!p->redis || confirmation_connected(&p->confirmation, p->redis, err, sizeof(err)) < 0) {
        record_error(p, "connecting to Redis", err);
        redis_sync_close(p->redis);
        p->redis = NULL;
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
    check_eviction_policy(p);
    p->next_policy_ms = clock_mono_ms() + POLICY_EVERY_MS;
    return 0;
}

/* How long what this instance's projector checked stays good for queries (prefix_hold.h). */
static void note_hold_confirmed(struct projector *p)
{
    uint64_t confirmed = prefix_hold_confirmed_ms(p->hold);
    if (confirmed) atomic_store(&p->prefix_ours_until_ms, confirmed + PREFIX_HOLD_TTL_MS);
}

/* Between a rebuild's pages: keeps the prefix held (a rebuild of a million products takes
 * longer than the hold's expiry), and abandons the rebuild if another catalog took it. */
static int hold_lost(void *arg)
{
    struct projector *p = arg;
    char err[256];
    enum prefix_hold_status held = prefix_hold_keep(p->hold, p->redis, err, sizeof(err));
    note_hold_confirmed(p);
    return held == PREFIX_HOLD_ELSEWHERE;
}

/* Builds a new generation from the write model; "replace" (0 if none) is the generation it
 * must replace whatever its checkpoint (it diverged). */
static int rebuild(struct projector *p, int64_t replace, const char *why)
{
    char err[256];
    struct rebuild_result result;
    set_state(p, PROJECTOR_REBUILDING);
    if (open_store(p) < 0) return -1;
    clear_batch(p);
    /* A read model rebuilt after a FLUSHALL takes generation numbers from 1 again: views
     * kept from the lost one could match the new one's number before the reload after the
     * rebuild forgets them. While it builds there is no generation to read them in. */
    view_cache_forget_all(p->config.view_cache);
    LOG(LOG_INFO, "projector: %s; rebuilding the read model from the write model", why);
    struct rebuild_options options = {
        .replace_generation = replace, .should_stop = hold_lost, .arg = p};
    int rc = rebuild_run(p->store, p->redis, p->prefix, &options, &result, err, sizeof(err));
    if (rc == REBUILD_BUSY) return -1; /* someone else is building it: wait and look again */
    if (rc != REBUILD_OK) {
        record_error(p, "rebuilding", err);
        return -1;
    }
    pthread_mutex_lock(&p->status_lock);
    p->status.rebuilds++;
    pthread_mutex_unlock(&p->status_lock);
    LOG(LOG_INFO,
        "projector: generation %" PRId64 " built with %" PRId64 " products up to seq %" PRId64,
        result.generation, result.products, result.checkpoint);
    /* Built from the log by the projector itself, which applied nothing meanwhile: no command
     * can have been answered "applied" for an event it lacks (after a FLUSHALL, queries need
     * not wait for the log's head, which commands keep moving). */
    if (confirmation_rebuilt(&p->confirmation, p->redis, p->store, result.checkpoint, err,
                             sizeof(err)) < 0)
        record_error(p, "confirming the rebuilt read model in Redis", err);
    return 0;
}

static int note_parked(const char *queue, int64_t seq, void *arg)
{
    (void)queue;
    parked_set_add(arg, seq);
    return 0;
}

/* Does generation "gen", at "checkpoint" with "fingerprint", describe a past of this write
 * model? Not when its checkpoint is beyond the log's head, or names another event than the
 * log has at that seq: then the write model went back in time (a restored backup, a lost
 * tail) and events with those seqs would never be applied. Returns 1 diverged, 0 not, -1
 * when the log cannot be read ("why" says why in each case). */
static int diverged(struct projector *p, int64_t checkpoint, const char *fingerprint, char *why,
                    size_t whylen)
{
    int64_t head;
    if (store_head_seq(p->store, &head) < 0) {
        snprintf(why, whylen, "%s", store_errmsg(p->store));
        return -1;
    }
    if (checkpoint > head) {
        snprintf(why, whylen,
                 "the read model is at seq %" PRId64 " but the event log ends at %" PRId64,
                 checkpoint, head);
        return 1;
    }
    /* At seq 0 the log has no event, and "ours" is "": a checkpoint of 0 that names one was
     * set back by hand (no script writes that pair), and is diverged like any other. */
    char ours[APPLY_FINGERPRINT_MAX];
    if (apply_log_fingerprint(p->store, checkpoint, ours) < 0) {
        snprintf(why, whylen, "%s", store_errmsg(p->store));
        return -1;
    }
    if (strcmp(ours, fingerprint) == 0) return 0;
    snprintf(why, whylen,
             "the read model's event %" PRId64 " is \"%s\" but the event log's is \"%s\"",
             checkpoint, fingerprint, ours);
    return 1;
}

/* Reads the current generation, checks it against the write model and loads its checkpoint
 * and parked events; rebuilds when it is missing or diverged. */
static int load_generation(struct projector *p)
{
    char err[256], fingerprint[128];
    long long gen;
    int64_t checkpoint;
    if (open_store(p) < 0) return -1;
    int rc = redis_sync_get_generation(p->redis, p->gen_key, &gen, err, sizeof(err));
    if (rc == 1) return rebuild(p, 0, "the read model has no generation");
    if (rc == 2) return rebuild(p, 0, "the read model's generation pointer names no generation");
    if (rc == 0)
        rc = apply_read_checkpoint(p->redis, p->prefix, gen, &checkpoint, fingerprint,
                                   sizeof(fingerprint), err, sizeof(err));
    if (rc < 0) {
        record_error(p, "reading the generation", err);
        return -1;
    }
    if (rc == 1) return rebuild(p, gen, "the read model's generation has no checkpoint");
    uint64_t read = begin_log_read(p);
    rc = diverged(p, checkpoint, fingerprint, err, sizeof(err));
    if (rc < 0) {
        record_error(p, "reading the event log", err);
        return -1;
    }
    if (rc == 1) {
        LOG(LOG_ERROR, "projector: %s", err);
        return rebuild(p, gen, "the read model diverged from the write model");
    }
    note_checkpoint_event(p, checkpoint, fingerprint);
    cap_floor(p);
    struct apply_target target = {p->prefix, gen, NULL, 0};
    int64_t parked = 0;
    parked_set_clear(p->parked);
    rc = apply_list_parked(p->redis, &target, note_parked, p->parked, &parked, err, sizeof(err));
    if (rc != APPLY_OK) {
        record_error(p, "reading parked events", err);
        return -1;
    }
    publish_parked(p);
    clear_batch(p);
    p->next_unpark_ms = clock_mono_ms();
    p->unpark_backoff_ms = UNPARK_MIN_MS;
    p->generation = gen;
    p->generation_text[digits_i64(p->generation_text, gen)] = '\0';
    /* What changed in Redis since the views were cached is not known here (a batch whose
     * answer was lost may have run after all, or a rebuild ran): Redis read the checkpoint
     * after all of it, so forgetting every view now, before the checkpoint moves, is enough. */
    view_cache_forget_all(p->config.view_cache);
    /* Rebuilt, or reloaded after Redis lost it (FLUSHALL): the confirmation may have gone too,
     * and no command may answer "applied" from this checkpoint before it is looked for. */
    atomic_store(&p->confirmed, 0);
    set_checkpoint(p, checkpoint, read); /* Redis' own, even if behind what we had */
    raise_head(p, checkpoint);
    atomic_store(&p->prefix_ours, 1); /* held, and its generation is a past of this catalog */
    set_state(p, PROJECTOR_CATCHING_UP);
    confirm(p, 1);
    if (p->applied) p->applied(checkpoint, p->applied_arg);
    return 0;
}

/* While idle: is our generation still current, at the checkpoint we put there, and still a
 * past of the write model? Anything else means reloading. */
static void check_generation(struct projector *p)
{
    char err[256], fingerprint[128];
    long long gen;
    int64_t checkpoint;
    int rc = redis_sync_get_generation(p->redis, p->gen_key, &gen, err, sizeof(err));
    if (rc == 0 && gen == p->generation)
        rc = apply_read_checkpoint(p->redis, p->prefix, gen, &checkpoint, fingerprint,
                                   sizeof(fingerprint), err, sizeof(err));
    else if (rc >= 0)
        rc = 1;
    if (rc < 0) {
        record_error(p, "checking the generation", err);
        if (redis_sync_broken(p->redis)) drop_redis(p);
        return;
    }
    if (rc == 1 || checkpoint != atomic_load(&p->checkpoint) ||
        diverged(p, checkpoint, fingerprint, err, sizeof(err)) == 1)
        forget_generation(p);
    else /* still ours; and still confirmed in this Redis? A FLUSHALL, or a hand, may undo that */
        confirm(p, 1);
}

static void advance(struct projector *p, int64_t checkpoint, uint64_t read)
{
    assert(checkpoint >= atomic_load(&p->checkpoint)); /* only a reload moves it back */
    set_checkpoint(p, checkpoint, read);
    if (checkpoint >= atomic_load(&p->head)) forget_unapplied(p);
    p->backoff_ms = BACKOFF_MIN_MS;
    if (p->applied) p->applied(checkpoint, p->applied_arg);
}

/* Where the scripts write, and what must hold for them to: the generation is still current
 * and, when several instances share the write model, no other instance took a newer epoch. */
static struct apply_target current_target(struct projector *p)
{
    p->guards[0] = (struct script_guard){p->gen_key, p->generation_text};
    p->guards[1] = (struct script_guard){p->epoch_key, p->fence};
    return (struct apply_target){p->prefix, p->generation, p->guards, p->config.leadership ? 2 : 1};
}

/* The event the news name at "checkpoint": the one Redis holds there, as the batch that
 * reached it or Redis' own checkpoint-event, checked against the log, said; "" when not known
 * (the generation forgotten: a pause, a backup restored or a FLUSHALL may have made the
 * checkpoint stale), and the others then wait for news that name it. Never the log's event
 * read afresh: that one says nothing of what Redis holds. */
static const char *news_event(const struct projector *p, int64_t checkpoint)
{
    return p->generation != 0 && p->news_event_seq == checkpoint ? p->news_event : "";
}

/* Tells the other instances how far the projection got (bus.h): after each batch, with the
 * events it parked, and while idle. A lost message costs them only a "pending" answer. */
static void send_news(struct projector *p, int64_t *parked, size_t parked_count)
{
    /* Without an epoch only to say that another catalog holds the prefix: the followers'
     * queries must not answer from its read model either. */
    int held_elsewhere = atomic_load(&p->state) == PROJECTOR_HELD_ELSEWHERE;
    if (!p->config.leadership || !p->redis || (!p->epoch && !held_elsewhere)) return;
    int64_t checkpoint = atomic_load(&p->checkpoint);
    struct projection_news news = {.epoch = p->epoch,
                                   .number = ++p->news_number,
                                   .generation = p->generation,
                                   .checkpoint = checkpoint,
                                   .parked_total = (int64_t)parked_set_count(p->parked),
                                   .parked = parked,
                                   .parked_count = parked_count};
    snprintf(news.state, sizeof(news.state), "%s", projector_state_name(atomic_load(&p->state)));
    snprintf(news.instance_id, sizeof(news.instance_id), "%s", p->instance_id);
    snprintf(news.checkpoint_event, sizeof(news.checkpoint_event), "%s", news_event(p, checkpoint));
    size_t len;
    char *text = bus_format_news(&news, &len), err[256];
    const char *argv[] = {"PUBLISH", p->channel, text};
    size_t lens[] = {7, strlen(p->channel), len};
    redisReply *reply = redis_sync_command(p->redis, 3, argv, lens, err, sizeof(err));
    free(text);
    if (reply)
        freeReplyObject(reply);
    else if (redis_sync_broken(p->redis))
        drop_redis(p);
    p->next_news_ms = clock_mono_ms() + NEWS_EVERY_MS;
}

/* Records what the batch's script call did: the events it parked (before the checkpoint
 * passes them, so no waiter takes them for applied) and the checkpoint it reached. */
static void take_progress(struct projector *p, const struct apply_result *result)
{
    for (size_t i = 0; i < result->parked_count; i++)
        parked_set_add(p->parked, result->parked[i]);
    if (result->parked_count > 0) publish_parked(p);
    if (result->refusal[0]) record_error(p, "parked an event Redis refused", result->refusal);
    if (result->checkpoint > atomic_load(&p->checkpoint))
        advance(p, result->checkpoint, p->batch_read);
}

/* Redis' checkpoint went past the whole batch (another instance applied further): before this
 * one takes it for its own, it must name the log's own event there, or the log went back in
 * time under Redis (a backup restored) and the events it says are applied are not these. */
static int checkpoint_is_the_logs(struct projector *p)
{
    char err[256], theirs[128], ours[APPLY_FINGERPRINT_MAX];
    int64_t at;
    if (apply_read_checkpoint(p->redis, p->prefix, p->generation, &at, theirs, sizeof(theirs), err,
                              sizeof(err)) != 0 ||
        open_store(p) < 0 || apply_log_fingerprint(p->store, at, ours) < 0 ||
        strcmp(theirs, ours) != 0)
        return 0;
    note_checkpoint_event(p, at, theirs);
    return 1;
}

static void apply_batch(struct projector *p)
{
    char err[256];
    struct apply_target target = current_target(p);
    int64_t last = p->batch[p->batch_count - 1].seq;
    int rc =
        apply_events(p->redis, &target, p->batch_after, p->batch_after > 0 ? p->event_after : NULL,
                     p->batch, p->batch_count, p->result, err, sizeof(err));
    if (rc == APPLY_OK && p->result->checkpoint > last && !checkpoint_is_the_logs(p)) {
        snprintf(err, sizeof(err),
                 "Redis is at seq %" PRId64 ", past the batch, at another event than the log's",
                 p->result->checkpoint);
        rc = APPLY_DIVERGED;
    }
    /* Before the checkpoint moves (take_progress): once a command can answer "applied", no
     * query may find the view the batch replaced. A batch without a clear outcome may have
     * written part of itself (a script stops at its first error, and keeps what it wrote);
     * a checkpoint past the batch means that events beyond it were applied too (a batch
     * whose answer was lost ran after all). */
    if (rc == APPLY_OK && p->result->checkpoint <= last)
        for (size_t i = 0; i < p->batch_count; i++)
            view_cache_forget(p->config.view_cache, p->batch[i].id);
    else
        view_cache_forget_all(p->config.view_cache);
    if (rc == APPLY_OK || rc == APPLY_STALLED) take_progress(p, p->result);
    for (size_t i = 0; (rc == APPLY_OK || rc == APPLY_STALLED) && i < p->batch_count; i++)
        if (p->batch[i].seq == atomic_load(&p->checkpoint)) { /* Redis holds it now */
            char fingerprint[APPLY_FINGERPRINT_MAX];
            apply_event_fingerprint(&p->batch[i], fingerprint);
            note_checkpoint_event(p, p->batch[i].seq, fingerprint);
        }
    clear_batch(p);
    switch (rc) {
    case APPLY_OK:
        set_state(p, atomic_load(&p->checkpoint) < atomic_load(&p->head) ? PROJECTOR_CATCHING_UP
                                                                         : PROJECTOR_LIVE);
        break;
    case APPLY_FENCED:
        /* The generation was replaced, or another instance took a newer epoch (or Redis lost
         * it): in that case take one again, once the store confirms this instance leads. */
        if (strstr(err, p->epoch_key)) p->epoch = 0;
        /* fall through */
    case APPLY_NO_CHECKPOINT:
    case APPLY_GAP:
    case APPLY_DIVERGED: /* the reload finds it diverged and rebuilds */
        LOG(LOG_INFO, "projector: %s; reloading the generation", err);
        forget_generation(p);
        break;
    case APPLY_REDIS_DOWN:
        record_error(p, "applying", err);
        drop_redis(p);
        set_state(p, PROJECTOR_REDIS_DOWN);
        back_off(p);
        break;
    default: /* Redis refuses writes: retry later, skip nothing */
        record_error(p, "applying", err);
        set_state(p, PROJECTOR_STALLED);
        back_off(p);
        break;
    }
    if (rc == APPLY_OK || rc == APPLY_STALLED)
        send_news(p, p->result->parked, p->result->parked_count);
}

/* Retries parked events, oldest first per queue, with capped exponential backoff. */
static void retry_parked(struct projector *p)
{
    if (parked_set_count(p->parked) == 0 || !p->redis || !p->generation ||
        clock_mono_ms() < p->next_unpark_ms)
        return;
    if (open_store(p) < 0) return;
    struct apply_target target = current_target(p);
    struct unpark_result result;
    unpark_all(p->redis, p->store, &target, p->parked, &result);
    if (result.applied > 0 || result.status != APPLY_OK) /* views changed, or may have */
        view_cache_forget_all(p->config.view_cache);
    publish_parked(p);
    if (result.applied > 0)
        LOG(LOG_INFO, "projector: applied %" PRId64 " parked events", result.applied);
    if (result.gone) {
        /* Deleted by hand, where it should have been repaired: the events parked behind it
         * would land on views it should have changed (of its product, or of another product
         * of its sku), and a deleted product's view would stay. The write model is the truth. */
        char why[128];
        snprintf(why, sizeof(why), "parked event %" PRId64 " is no longer in the event log",
                 result.gone);
        if (rebuild(p, p->generation, why) == 0) {
            forget_generation(p);
            return;
        }
        result.status = APPLY_STALLED; /* retried with the backoff below */
        snprintf(result.err, sizeof(result.err), "%s, and rebuilding failed", why);
    }
    if (result.status == APPLY_REDIS_DOWN)
        drop_redis(p);
    else if (result.status == APPLY_FENCED || result.status == APPLY_NOT_HEAD)
        forget_generation(p);
    if (result.status == APPLY_FENCED && strstr(result.err, p->epoch_key)) p->epoch = 0;
    if (result.status != APPLY_OK) {
        record_error(p, "retrying parked events", result.err);
        p->unpark_backoff_ms =
            p->unpark_backoff_ms * 2 > UNPARK_MAX_MS ? UNPARK_MAX_MS : p->unpark_backoff_ms * 2;
    } else {
        p->unpark_backoff_ms = UNPARK_MIN_MS;
    }
    p->next_unpark_ms = clock_mono_ms() + (uint64_t)p->unpark_backoff_ms;
}

/* Reads the log's head, which other instances' commits, or a row written by hand, moved. */
static void poll_head(struct projector *p)
{
    int64_t head;
    if (open_store(p) < 0) return;
    if (store_head_seq(p->store, &head) < 0) {
        record_error(p, "reading the event log's head", store_errmsg(p->store));
        return;
    }
    if (head > atomic_load(&p->checkpoint)) projector_notify(p, head);
}

/* The idle turn: parked events, then the periodic checks, then a nap until work comes. */
/* A read of the log that began while a commit was ending may have applied its events, which
 * counted the reads before that one began: its commands wait, by projector_applied, for a
 * checkpoint from a later read. Before napping, the projecting instance reads the log's event
 * at its checkpoint again; still the one Redis holds there, the checkpoint is as of this read.
 * Once per such commit: the read it publishes is past the commit's count. */
static void reconfirm_checkpoint(struct projector *p)
{
    char ours[APPLY_FINGERPRINT_MAX];
    int64_t checkpoint = atomic_load(&p->checkpoint);
    if (atomic_load(&p->commit_reads) < atomic_load(&p->checkpoint_read) || checkpoint <= 0 ||
        p->news_event_seq != checkpoint || open_store(p) < 0)
        return;
    uint64_t read = begin_log_read(p);
    if (apply_log_fingerprint(p->store, checkpoint, ours) <= 0 || strcmp(ours, p->news_event) != 0)
        return;
    set_checkpoint(p, checkpoint, read);
    if (p->applied) p->applied(checkpoint, p->applied_arg);
}

static void idle(struct projector *p)
{
    set_state(p, PROJECTOR_LIVE);
    if (p->redis && p->generation) reconfirm_checkpoint(p);
    forget_unapplied(p);
    retry_parked(p);
    uint64_t now = clock_mono_ms();
    if (atomic_exchange(&p->poked, 0)) p->next_check_ms = now;
    if (p->redis && p->generation && now >= p->next_check_ms) {
        check_generation(p);
        p->next_check_ms = now + CHECK_EVERY_MS;
    }
    if (p->redis && now >= p->next_policy_ms) {
        check_eviction_policy(p);
        p->next_policy_ms = now + POLICY_EVERY_MS;
    }
    if (p->config.leadership && now >= p->next_news_ms) send_news(p, NULL, 0);
    if (now >= p->next_head_poll_ms) {
        poll_head(p);
        p->next_head_poll_ms = now + (p->config.leadership ? HEAD_POLL_MS : CHECK_EVERY_MS);
    }
    int nap_ms = parked_set_count(p->parked) > 0 ? UNPARK_MIN_MS : CHECK_EVERY_MS;
    if (p->config.leadership) nap_ms = HEAD_POLL_MS;
    if (p->redis && p->generation) wait_for(p, nap_ms, 1);
}

/* Puts a term's fence in Redis, unless Redis holds another fence of an epoch as great or
 * greater: then answers that epoch (as text, compared as text: exact past 2^53), which the
 * term must pass; else answers 0. ARGV after the guards: the key, the term's epoch, its fence.
 * A fence written by an older build is its epoch alone. What names no epoch a store counts to
 * (a key of another type, no digits, leading zeros, or a number of EPOCH_CEILING or more, all
 * written by hand) fences nothing: it is replaced, rather than stopping every term for good.
 * The ceiling keeps the store's epoch, raised past one in Redis and counted on from there by
 * each term, far from int64's last, where PostgreSQL's next term would overflow it. */
#define EPOCH_CEILING "4611686018427387904" /* 2^62 */
static struct script CLAIM_EPOCH_SCRIPT =
    SCRIPT("local first = guards_hold()\n"
           "local held = redis.pcall('GET', ARGV[first])\n"
           "if type(held) ~= 'string' then held = '' end\n"
           "local digits = string.match(held, '^[1-9]%d*')\n"
           "if digits and decimal_above('" EPOCH_CEILING "', digits) and\n"
           "    held ~= ARGV[first + 2] and not decimal_above(ARGV[first + 1], digits) then\n"
           "  return digits\n"
           "end\n"
           "redis.call('SET', ARGV[first], ARGV[first + 2])\n"
           "return 0\n");

/* Several instances, when this one begins to lead (or Redis lost the epoch): once the store
 * confirms it leads, puts its term's fence in Redis, so the scripts of a leader that lost the
 * lock without knowing (an older term) are refused from now on; then reloads the generation,
 * which that leader may have moved. A fence is the term's epoch and a random part, so no two
 * terms ever fence alike: a write model restored from a backup counts epochs again from the
 * backup's, and may give a new term the very epoch a frozen older leader holds (or held, in a
 * Redis flushed since). Epochs in Redis only grow: one that was confirmed, then froze before
 * setting it, cannot put its older term back. An epoch in Redis as great as ours, with
 * another fence, means a newer leader (the next confirmation fails) or such a restore, whose
 * epoch the store then raises past it. Returns 0, or -1 to try again later. */
static int take_epoch(struct projector *p)
{
    char err[256], nonce[RANDOM_TOKEN_LEN + 1];
    int64_t epoch, above = 0;
    random_token(nonce);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!leadership_confirm(p->config.leadership, CONFIRM_MS, above, &epoch) || epoch <= 0)
            return -1;
        char epoch_text[DIGITS_U64_MAX + 1], fence[FENCE_MAX];
        size_t digits = digits_u64(epoch_text, (uint64_t)epoch);
        epoch_text[digits] = '\0';
        memcpy(fence, epoch_text, digits);
        fence[digits] = ':';
        memcpy(fence + digits + 1, nonce, sizeof(nonce));
        const char *argv[] = {p->epoch_key, epoch_text, fence};
        redisReply *reply = redis_sync_script(p->redis, &CLAIM_EPOCH_SCRIPT, NULL, 0, 3, argv, NULL,
                                              err, sizeof(err));
        above = 0;
        int answered =
            reply && ((reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) ||
                      (reply->type == REDIS_REPLY_STRING &&
                       digits_parse_canonical(reply->str, reply->len, 1, INT64_MAX, &above) == 0));
        if (!answered) {
            record_error(p, "setting the fencing epoch", reply ? "an unexpected reply" : err);
            if (reply) freeReplyObject(reply);
            if (redis_sync_broken(p->redis)) drop_redis(p);
            return -1;
        }
        freeReplyObject(reply);
        if (above != 0) {
            snprintf(err, sizeof(err),
                     "Redis holds another term's fence, of epoch %lld: taking a greater epoch",
                     (long long)above);
            record_error(p, "setting the fencing epoch", err);
            continue;
        }
        p->epoch = epoch;
        p->news_number = 0;
        memcpy(p->fence, fence, sizeof(fence));
        pthread_mutex_lock(&p->status_lock);
        p->status.epoch = epoch;
        pthread_mutex_unlock(&p->status_lock);
        forget_generation(p);
        LOG(LOG_INFO, "projector: projecting for all instances, fencing epoch %" PRId64, epoch);
        return 0;
    }
    return -1;
}

/* Whether this catalog holds the read model's prefix (prefix_hold.h), claimed or refreshed
 * once a second. While another catalog holds it, nothing of this projector reaches Redis:
 * the generation there is not this catalog's, and is forgotten so that it is loaded again,
 * and checked against the write model, once the hold is this catalog's. */
static int keeps_prefix(struct projector *p)
{
    char err[256];
    uint64_t good_until = atomic_load(&p->prefix_ours_until_ms);
    enum prefix_hold_status held = prefix_hold_keep(p->hold, p->redis, err, sizeof(err));
    note_hold_confirmed(p);
    if (held == PREFIX_HOLD_OURS) {
        if (atomic_load(&p->state) == PROJECTOR_HELD_ELSEWHERE) set_state(p, PROJECTOR_STARTING);
        /* Unconfirmed for longer than a hold lasts (Redis out of reach, this process frozen),
         * the hold may have been another catalog's meanwhile, and the generation there its
         * own: the generation is checked again before queries answer from it. */
        if (clock_mono_ms() >= good_until) {
            atomic_store(&p->prefix_ours, 0);
            forget_generation(p);
        }
        return 1;
    }
    if (held == PREFIX_HOLD_ERROR) { /* as a failed apply: Redis is away, or refuses writes */
        record_error(p, "holding the read model's prefix", err);
        int down = redis_sync_broken(p->redis);
        if (down) drop_redis(p);
        set_state(p, down ? PROJECTOR_REDIS_DOWN : PROJECTOR_STALLED);
        return 0;
    }
    atomic_store(&p->prefix_ours, 0);
    forget_generation(p);
    p->epoch = 0; /* taken again once this catalog holds the prefix */
    if (atomic_load(&p->state) != PROJECTOR_HELD_ELSEWHERE) {
        set_state(p, PROJECTOR_HELD_ELSEWHERE);
        const char *holder = prefix_hold_holder(p->hold);
        pthread_mutex_lock(&p->status_lock);
        snprintf(p->status.last_error, sizeof(p->status.last_error),
                 "another catalog holds the Redis prefix (its instance %.100s)", holder);
        pthread_mutex_unlock(&p->status_lock);
        LOG(LOG_ERROR,
            "projector: the Redis prefix \"%s\" holds the read model of another catalog (another "
            "write model), kept by its instance %s: writing nothing there, and queries answer "
            "503, until it lets go; give each catalog its own --redis-prefix",
            p->prefix, holder);
    }
    if (p->config.leadership && clock_mono_ms() >= p->next_news_ms) send_news(p, NULL, 0);
    return 0;
}

/* Several instances: this one leads from now on, in leadership term "term", or follows from
 * now on. A leader whose term changed lost the lock and won it again between two looks:
 * another instance may have led meanwhile, so it begins again as one that saw the loss, and
 * takes the epoch of its new term. */
static void set_following(struct projector *p, int following, uint64_t term)
{
    pthread_mutex_lock(&p->status_lock);
    int same = p->following == following && (following || p->term == term);
    if (!same) {
        p->following = following;
        p->term = term;
        p->news_ms = 0;
        p->status.epoch = 0;
        atomic_store(&p->parked_unsure, following); /* a leader knows its own */
        p->claimed_checkpoint = 0;
        atomic_store(&p->claim_new, 0);
    }
    pthread_mutex_unlock(&p->status_lock);
    if (same) return;
    /* One that follows answers by the leader's news; one that leads, once it confirmed. */
    atomic_store(&p->confirmed, following);
    p->epoch = 0;
    forget_generation(p);
    pthread_mutex_lock(&p->lock); /* what the writer offered is for a leader only */
    for (size_t i = 0; i < p->offered_count; i++)
        apply_event_clear(&p->offered[i]);
    p->offered_count = 0;
    pthread_mutex_unlock(&p->lock);
    parked_set_clear(p->parked);
    publish_parked(p);
    set_state(p, PROJECTOR_STARTING);
}

/* Following: takes the checkpoint the last news claimed once the log holds the event they
 * name there. News sent late by the instance that projected before a backup was restored name
 * an event the log lost: taken, their checkpoint would answer "applied" for commands whose
 * events took those seqs again and are not in Redis. One read of the log per news at most,
 * and one per LEADERSHIP_POLL_MS while a claim stays unproven. */
static void prove_claim(struct projector *p)
{
    char ours[APPLY_FINGERPRINT_MAX], theirs[BUS_EVENT_MAX];
    pthread_mutex_lock(&p->status_lock);
    atomic_store(&p->claim_new, 0);
    int64_t claimed = p->claimed_checkpoint;
    memcpy(theirs, p->claimed_event, sizeof(theirs));
    pthread_mutex_unlock(&p->status_lock);
    if (claimed <= atomic_load(&p->checkpoint) || open_store(p) < 0) return;
    uint64_t read = begin_log_read(p);
    if (apply_log_fingerprint(p->store, claimed, ours) <= 0 || strcmp(ours, theirs) != 0) return;
    set_checkpoint(p, claimed, read);
    if (claimed >= atomic_load(&p->head)) forget_unapplied(p);
    if (p->applied) p->applied(claimed, p->applied_arg);
}

/* Following, when the log went back in time (a backup restored): the checkpoint and the head
 * come down to the log's head. The seqs above it are taken again by new events, and those
 * wait for news that prove them applied (prove_claim); the writer takes the seqs up to it for
 * taken again while the checkpoint is above them (mark_seqs_taken_again), so none of those
 * answers "applied" from the checkpoint of before. A head left above would be a lag that never
 * clears, and no command would wait for its news; it stays where a commit notified since the
 * read began put it, as in forget_head_beyond_log. */
static void follow_log_back(struct projector *p)
{
    uint64_t notices = notices_so_far(p);
    int64_t head = cap_floor(p), checkpoint = atomic_load(&p->checkpoint);
    if (head < 0) return;
    if (checkpoint > head) {
        atomic_store(&p->checkpoint, head);
        LOG(LOG_WARN,
            "projector: the event log went back in time (its head is seq %" PRId64
            ", below the checkpoint %" PRId64 "): waiting for the projecting instance's news of it",
            head, checkpoint);
        checkpoint = head;
    }
    pthread_mutex_lock(&p->lock);
    if (p->notices == notices && atomic_load(&p->head) > head) atomic_store(&p->head, head);
    pthread_mutex_unlock(&p->lock);
    if (checkpoint >= atomic_load(&p->head)) forget_unapplied(p);
}

/* The turn of an instance that follows: the news (projector_take_news) and their proof do the
 * work; this also notices when the leader went quiet. */
static void follow(struct projector *p)
{
    prove_claim(p);
    if (clock_mono_ms() >= p->next_cap_ms) { /* the leader's news raise them; the log lowers them */
        follow_log_back(p);
        p->next_cap_ms = clock_mono_ms() + CHECK_EVERY_MS;
    }
    pthread_mutex_lock(&p->status_lock);
    int quiet = clock_mono_ms() - p->news_ms >= NEWS_STALE_MS;
    pthread_mutex_unlock(&p->status_lock);
    if (quiet && atomic_load(&p->state) != PROJECTOR_STARTING) set_state(p, PROJECTOR_STARTING);
    wait_for(p, LEADERSHIP_POLL_MS, 0);
}

static int should_stop(struct projector *p)
{
    pthread_mutex_lock(&p->lock);
    int stop = stop_due(p);
    pthread_mutex_unlock(&p->lock);
    return stop;
}

static void *projector_main(void *arg)
{
    struct projector *p = arg;
    while (!should_stop(p)) {
        if (p->config.leadership) {
            uint64_t term;
            int leading = leadership_leading(p->config.leadership, &term);
            set_following(p, !leading, term);
            if (!leading) {
                follow(p);
                continue;
            }
        }
        if (!p->redis && connect_redis(p) < 0) {
            set_state(p, PROJECTOR_REDIS_DOWN);
            if (p->batch_count == 0 && atomic_load(&p->head) > atomic_load(&p->checkpoint))
                fetch_batch(p); /* keeps the lag figure true while Redis is away */
            back_off(p);
            continue;
        }
        if (!keeps_prefix(p)) { /* first: another catalog's epoch is not to be raced */
            if (p->redis)
                wait_for(p, PREFIX_HOLD_EVERY_MS, 0);
            else
                back_off(p); /* the connection was lost: connect again soon, as at any loss */
            continue;
        }
        if (p->config.leadership && p->epoch == 0 && take_epoch(p) < 0) {
            back_off(p);
            continue;
        }
        if (p->generation == 0 && load_generation(p) < 0) {
            if (p->redis && redis_sync_broken(p->redis)) drop_redis(p);
            back_off(p);
            continue;
        }
        if (p->generation == 0) continue; /* rebuilt: load it */
        if (!p->confirmation.confirmed) confirm(p, 0);
        if (!p->redis) continue;
        if (p->batch_count > 0 && p->batch_after != atomic_load(&p->checkpoint))
            clear_batch(p); /* fetched while Redis was away, for another checkpoint */
        if (p->batch_count == 0 && atomic_load(&p->head) > atomic_load(&p->checkpoint) &&
            fetch_batch(p) < 0) {
            back_off(p);
            continue;
        }
        if (p->batch_count > 0)
            apply_batch(p);
        else
            idle(p);
    }
    clear_batch(p);
    if (p->redis) prefix_hold_release(p->hold, p->redis);
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
    layout_key(KEY_GEN, p->prefix, NULL, 0, p->gen_key, sizeof(p->gen_key));
    layout_key(KEY_PROJECTOR_EPOCH, p->prefix, NULL, 0, p->epoch_key, sizeof(p->epoch_key));
    confirmation_init(&p->confirmation, p->prefix);
    bus_channel(p->prefix, config->catalog, p->channel, sizeof(p->channel));
    snprintf(p->instance_id, sizeof(p->instance_id), "%s", config->instance_id);
    p->config.instance_id = p->instance_id;
    p->applied = applied;
    p->applied_arg = arg;
    p->backoff_ms = BACKOFF_MIN_MS;
    p->parked = parked_set_new();
    p->hold = prefix_hold_new(p->prefix, config->catalog, p->instance_id);
    p->result = xmalloc(sizeof(*p->result));
    atomic_init(&p->head, config->head_seq);
    atomic_init(&p->checkpoint, 0);
    atomic_init(&p->oldest_unapplied_ms, 0);
    atomic_init(&p->unapplied_known_ms, 0);
    atomic_init(&p->redis_up, 0);
    atomic_init(&p->poked, 0);
    atomic_init(&p->confirmed, 0);
    atomic_init(&p->parked_unsure, 0);
    atomic_init(&p->state, PROJECTOR_STARTING);
    atomic_init(&p->prefix_ours, 0);
    atomic_init(&p->prefix_ours_until_ms, 0);
    p->status.state = PROJECTOR_STARTING;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->status_lock, NULL);
    clock_cond_init(&p->wake);
    if (pthread_create(&p->thread, NULL, projector_main, p) != 0) {
        parked_set_free(p->parked);
        prefix_hold_free(p->hold);
        free(p->result);
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void projector_notify(struct projector *p, int64_t head_seq)
{
    /* The lock orders the head's store before a waiter's check of it, and the notice before
     * forget_head_beyond_log's; the signal comes after the unlock so that, on one core, the
     * woken projector does not run only to block on the lock still held here. */
    pthread_mutex_lock(&p->lock);
    raise_head(p, head_seq);
    p->notices++;
    pthread_mutex_unlock(&p->lock);
    note_now_unless_set(&p->oldest_unapplied_ms);
    note_now_unless_set(&p->unapplied_known_ms);
    pthread_cond_signal(&p->wake);
}

void projector_poke(struct projector *p)
{
    if (atomic_load(&p->poked)) return; /* the projector has yet to take the last one */
    pthread_mutex_lock(&p->lock);       /* as in projector_notify: no waiter misses it */
    atomic_store(&p->poked, 1);
    pthread_mutex_unlock(&p->lock);
    pthread_cond_signal(&p->wake);
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

int projector_keeping_up(const struct projector *p)
{
    int state = atomic_load(&p->state);
    if (!atomic_load(&p->redis_up) || (state != PROJECTOR_LIVE && state != PROJECTOR_CATCHING_UP))
        return 0;
    /* Waiting on the projector, that is since the events were known here: a commit that
     * waited for the write model's lock is not the projector falling behind. */
    uint64_t oldest = atomic_load(&p->oldest_unapplied_ms), now = clock_wall_ms();
    uint64_t known = atomic_load(&p->unapplied_known_ms);
    if (oldest && known > oldest) oldest = known;
    return oldest == 0 || now < oldest || now - oldest < STALL_MS;
}

void projector_take_news(struct projector *p, const struct projection_news *news)
{
    int state = PROJECTOR_STARTING;
    while (state < PROJECTOR_STATE_COUNT && strcmp(STATE_NAMES[state], news->state) != 0)
        state++;
    if (state == PROJECTOR_STATE_COUNT) return;
    pthread_mutex_lock(&p->status_lock);
    if (!p->following) {
        pthread_mutex_unlock(&p->status_lock);
        return;
    }
    /* Parked before the checkpoint passes them, as on the leader: no waiter may take them for
     * applied. When the leader says nothing is parked, nothing is; after a news missed (a
     * gap in the numbers), an event parked may be missing from the set, so every event is
     * taken for parked (answered "pending") until the leader says nothing is parked again.
     * Bounded: a follower that keeps too many forgets them and takes every event for parked. */
    if (news->parked_total == 0) {
        parked_set_clear(p->parked);
        atomic_store(&p->parked_unsure, 0);
    } else {
        if (!news->follows_last || parked_set_count(p->parked) > OFFERED_MAX) {
            atomic_store(&p->parked_unsure, 1);
            parked_set_clear(p->parked);
        }
        for (size_t i = 0; i < news->parked_count; i++)
            parked_set_add(p->parked, news->parked[i]);
    }
    p->news_ms = clock_mono_ms();
    p->status.generation = news->generation;
    p->status.parked_events = news->parked_total;
    p->status.state = (enum projector_state)state;
    p->status.epoch = news->epoch;
    atomic_store(&p->state, state);
    /* The leader's generation is this catalog's once it applies to it; while it starts or
     * rebuilds after a takeover, the generation there may still be the other catalog's. */
    if (state == PROJECTOR_HELD_ELSEWHERE)
        atomic_store(&p->prefix_ours, 0);
    else if (state == PROJECTOR_LIVE || state == PROJECTOR_CATCHING_UP)
        atomic_store(&p->prefix_ours, 1);
    /* A leader refreshes its hold every PREFIX_HOLD_EVERY_MS and tells at least as often; one
     * that went quiet may have lost it without a word (cut off from Redis). */
    if (state != PROJECTOR_HELD_ELSEWHERE)
        atomic_store(&p->prefix_ours_until_ms,
                     clock_mono_ms() + PREFIX_HOLD_TTL_MS - PREFIX_HOLD_EVERY_MS);
    atomic_store(&p->redis_up, 1);
    /* Checkpoints of one generation only grow, and a rebuilt one starts at least where the old
     * one was: a higher one is the one to wait for, once proven (prove_claim). */
    int64_t checkpoint = atomic_load(&p->checkpoint);
    int claim = news->checkpoint > checkpoint;
    if (claim) {
        p->claimed_checkpoint = news->checkpoint;
        memcpy(p->claimed_event, news->checkpoint_event, sizeof(p->claimed_event));
        atomic_store(&p->claim_new, 1);
    }
    if (checkpoint >= atomic_load(&p->head)) forget_unapplied(p);
    pthread_mutex_unlock(&p->status_lock);
    if (claim) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
    if (p->applied) p->applied(checkpoint, p->applied_arg);
}

int projector_seq_parked(struct projector *p, int64_t seq)
{
    return atomic_load(&p->parked_unsure) || parked_set_has(p->parked, seq);
}

int projector_prefix_ours(const struct projector *p)
{
    return atomic_load(&p->prefix_ours) && clock_mono_ms() < atomic_load(&p->prefix_ours_until_ms);
}

int64_t projector_checkpoint(const struct projector *p)
{
    return atomic_load(&p->checkpoint);
}

uint64_t projector_commit_reads(struct projector *p)
{
    uint64_t reads = atomic_load(&p->log_reads);
    atomic_store(&p->commit_reads, reads);
    return reads;
}

int projector_applied(const struct projector *p, int64_t seq, uint64_t log_reads_at_commit)
{
    /* The read first: a checkpoint loaded after it is its own or a later read's. */
    uint64_t read = atomic_load(&p->checkpoint_read);
    return atomic_load(&p->confirmed) && read > log_reads_at_commit &&
           atomic_load(&p->checkpoint) >= seq;
}

void projector_get_status(struct projector *p, struct projector_status *out)
{
    pthread_mutex_lock(&p->status_lock);
    *out = p->status;
    pthread_mutex_unlock(&p->status_lock);
    snprintf(out->instance_id, sizeof(out->instance_id), "%s", p->instance_id);
    if (p->config.leadership)
        leadership_leader(p->config.leadership, out->projecting_instance,
                          sizeof(out->projecting_instance));
    else
        snprintf(out->projecting_instance, sizeof(out->projecting_instance), "%s", p->instance_id);
    out->checkpoint = atomic_load(&p->checkpoint);
    out->head = atomic_load(&p->head);
    out->lag_events = out->head > out->checkpoint ? out->head - out->checkpoint : 0;
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
}

void projector_free(struct projector *p)
{
    if (!p) return;
    redis_sync_close(p->redis);
    store_close(p->store);
    for (size_t i = 0; i < p->offered_count; i++)
        apply_event_clear(&p->offered[i]);
    free(p->offered);
    parked_set_free(p->parked);
    prefix_hold_free(p->hold);
    free(p->result);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->status_lock);
    pthread_cond_destroy(&p->wake);
    free(p);
}
