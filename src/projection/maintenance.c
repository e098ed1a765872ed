/* maintenance.c - the maintenance thread: rebuilds on request, collection on a timer.
 * Invariant: "started" of every accepted request is called exactly once. */
#include "projection/maintenance.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "command/store.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "projection/generations.h"
#include "projection/rebuild.h"
#include "projection/redis_sync.h"
#include "readmodel/layout.h"

#define REDIS_TIMEOUT_MS 5000

struct maintenance {
    char db_path[4096];
    struct redis_url redis_url;
    char prefix[LAYOUT_PREFIX_MAX + 1];
    int (*prefix_ours)(void *arg);
    void *prefix_ours_arg;
    pthread_t thread;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;                                            /* guarded by lock */
    void (*started)(int status, const char *err, void *arg); /* a request, guarded by lock */
    void *started_arg;
    struct maintenance_status status; /* guarded by lock */

    /* Owned by the thread. */
    struct redis_sync *redis;
    struct store *store;
};

static int stopping(void *arg)
{
    struct maintenance *m = arg;
    pthread_mutex_lock(&m->lock);
    int stop = m->stopping;
    pthread_mutex_unlock(&m->lock);
    return stop;
}

/* Sleeps up to "ms", or until stopping or a request comes. */
static void wait_for(struct maintenance *m, uint64_t ms)
{
    struct timespec deadline = clock_deadline_after_ms((uint64_t)ms);
    pthread_mutex_lock(&m->lock);
    while (!m->stopping && !m->started)
        if (pthread_cond_timedwait(&m->wake, &m->lock, &deadline) == ETIMEDOUT) break;
    pthread_mutex_unlock(&m->lock);
}

static void drop_connections(struct maintenance *m)
{
    redis_sync_close(m->redis);
    m->redis = NULL;
    store_close(m->store);
    m->store = NULL;
}

/* The Redis connection is kept between runs, and may have been dropped since, idle (Redis
 * restarted, a proxy cut it): a rebuild asked for then would fail on it with 503. A check
 * without a round trip, so that a frozen Redis costs a run no more than its one timeout. */
static int connect_all(struct maintenance *m, char *err, size_t errlen)
{
    if (m->redis && !redis_sync_idle_and_open(m->redis)) {
        redis_sync_close(m->redis);
        m->redis = NULL;
    }
    if (!m->redis) m->redis = redis_sync_connect(&m->redis_url, REDIS_TIMEOUT_MS, err, errlen);
    if (!m->redis) return -1;
    if (!m->store && store_open_reader(m->db_path, &m->store, err, errlen) < 0) return -1;
    return 0;
}

/* Drops the generations nobody reads (a failure is logged and retried next time). Only while
 * this catalog holds the prefix: the generations under it are another catalog's otherwise,
 * and a catalog kept out writes nothing there. */
static void collect(struct maintenance *m)
{
    char err[256];
    if (!m->prefix_ours(m->prefix_ours_arg)) return;
    if (connect_all(m, err, sizeof(err)) < 0) return; /* the projector reports Redis faults */
    int dropped = generations_collect(m->redis, m->prefix, stopping, m, err, sizeof(err));
    if (dropped > 0) {
        LOG(LOG_INFO, "maintenance: dropped %d generation%s nobody reads", dropped,
            dropped == 1 ? "" : "s");
        pthread_mutex_lock(&m->lock);
        m->status.generations_dropped += (uint64_t)dropped;
        pthread_mutex_unlock(&m->lock);
    } else if (dropped == -1) {
        LOG(LOG_WARN, "maintenance: collecting old generations: %s", err);
        if (redis_sync_broken(m->redis)) drop_connections(m);
    }
}

struct request {
    struct maintenance *m;
    void (*started)(int status, const char *err, void *arg);
    void *arg;
};

static void tell(struct request *request, int status, const char *err)
{
    if (!request->started) return;
    request->started(status, err, request->arg);
    request->started = NULL;
}

static void on_started(void *arg)
{
    tell(arg, REBUILD_OK, "");
}

static int request_should_stop(void *arg)
{
    return stopping(((struct request *)arg)->m);
}

static void rebuild(struct maintenance *m, struct request *request)
{
    char err[256] = "";
    struct rebuild_result result = {0};
    int status = REBUILD_FAILED;
    uint64_t started_ms = clock_mono_ms(), switched_ms;
    if (connect_all(m, err, sizeof(err)) == 0) {
        struct rebuild_options options = {
            .on_started = on_started, .should_stop = request_should_stop, .arg = request};
        status = rebuild_run(m->store, m->redis, m->prefix, &options, &result, err, sizeof(err));
    }
    tell(request, status, err);
    switched_ms = clock_mono_ms();
    if (status == REBUILD_OK)
        LOG(LOG_INFO, "rebuild: generation %lld is live with %lld products",
            (long long)result.generation, (long long)result.products);
    else if (status == REBUILD_FAILED)
        LOG(LOG_WARN, "rebuild: failed: %s", err);
    if (status == REBUILD_FAILED && m->redis && redis_sync_broken(m->redis)) drop_connections(m);
    if (status == REBUILD_OK && result.old_generation > 0) {
        wait_for(m, GENERATION_GRACE_MS + 100); /* readers may still be in the old one */
        collect(m);
    }
    /* Running until the old generation is gone: the whole of the rebuild's work. A request
     * refused because another process, or the projector, holds the lock ran nothing: the last
     * rebuild's figures stay. */
    pthread_mutex_lock(&m->lock);
    m->status.rebuilding = 0;
    if (status == REBUILD_BUSY) {
        pthread_mutex_unlock(&m->lock);
        return;
    }
    m->status.rebuilds++;
    m->status.last_seconds = (double)(switched_ms - started_ms) / 1000.0; /* to the switch */
    if (status == REBUILD_OK) {
        m->status.last_generation = result.generation;
        m->status.last_products = result.products;
        m->status.last_error[0] = '\0';
    } else {
        snprintf(m->status.last_error, sizeof(m->status.last_error), "%s", err);
    }
    pthread_mutex_unlock(&m->lock);
}

static void *maintenance_main(void *arg)
{
    struct maintenance *m = arg;
    uint64_t next_collect_ms = clock_mono_ms();
    for (;;) {
        pthread_mutex_lock(&m->lock);
        struct request request = {m, m->started, m->started_arg};
        m->started = NULL;
        int stop = m->stopping;
        pthread_mutex_unlock(&m->lock);
        if (stop) {
            tell(&request, REBUILD_FAILED, "the server is shutting down");
            break;
        }
        if (request.started) {
            rebuild(m, &request);
        } else if (clock_mono_ms() >= next_collect_ms) {
            collect(m);
            next_collect_ms = clock_mono_ms() + MAINTENANCE_COLLECT_EVERY_MS;
        } else {
            wait_for(m, next_collect_ms - clock_mono_ms());
        }
    }
    drop_connections(m);
    return NULL;
}

struct maintenance *maintenance_start(const char *db_path, const struct redis_url *redis,
                                      const char *prefix, int (*prefix_ours)(void *arg),
                                      void *prefix_ours_arg)
{
    struct maintenance *m = xcalloc(1, sizeof(*m));
    m->prefix_ours = prefix_ours;
    m->prefix_ours_arg = prefix_ours_arg;
    snprintf(m->db_path, sizeof(m->db_path), "%s", db_path);
    m->redis_url = *redis;
    snprintf(m->prefix, sizeof(m->prefix), "%s", prefix);
    pthread_mutex_init(&m->lock, NULL);
    clock_cond_init(&m->wake);
    if (pthread_create(&m->thread, NULL, maintenance_main, m) != 0) {
        pthread_mutex_destroy(&m->lock);
        pthread_cond_destroy(&m->wake);
        free(m);
        return NULL;
    }
    return m;
}

int maintenance_request_rebuild(struct maintenance *m,
                                void (*started)(int status, const char *err, void *arg), void *arg)
{
    pthread_mutex_lock(&m->lock);
    int busy = m->status.rebuilding || m->stopping;
    if (!busy) {
        m->status.rebuilding = 1;
        m->started = started;
        m->started_arg = arg;
        pthread_cond_signal(&m->wake);
    }
    pthread_mutex_unlock(&m->lock);
    return busy ? -1 : 0;
}

void maintenance_get_status(struct maintenance *m, struct maintenance_status *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->status;
    pthread_mutex_unlock(&m->lock);
}

void maintenance_stop(struct maintenance *m)
{
    if (!m) return;
    pthread_mutex_lock(&m->lock);
    m->stopping = 1;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->wake);
    free(m);
}
