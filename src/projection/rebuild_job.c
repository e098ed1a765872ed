/* rebuild_job.c - runs rebuild_run on a detached thread and keeps its outcome for
 * /admin/projection. */
#include "projection/rebuild_job.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "command/store.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "projection/layout.h"
#include "projection/rebuild.h"
#include "projection/redis_sync.h"

#define OLD_GENERATION_GRACE_MS 2000 /* longer than a loop's generation refresh (250 ms) */
#define REDIS_TIMEOUT_MS        30000

struct rebuild_jobs {
    char db_path[4096];
    struct redis_url redis;
    char prefix[LAYOUT_PREFIX_MAX + 1];
    pthread_mutex_t lock;
    struct rebuild_job_status status; /* guarded by lock */
};

struct job {
    struct rebuild_jobs *jobs;
    void (*started)(int status, const char *err, void *arg);
    void *arg;
    int told; /* "started" has been called */
};

struct rebuild_jobs *rebuild_jobs_new(const char *db_path, const struct redis_url *redis,
                                      const char *prefix)
{
    struct rebuild_jobs *jobs = xcalloc(1, sizeof(*jobs));
    snprintf(jobs->db_path, sizeof(jobs->db_path), "%s", db_path);
    jobs->redis = *redis;
    snprintf(jobs->prefix, sizeof(jobs->prefix), "%s", prefix);
    pthread_mutex_init(&jobs->lock, NULL);
    return jobs;
}

static void tell(struct job *job, int status, const char *err)
{
    if (job->told) return;
    job->told = 1;
    job->started(status, err, job->arg);
}

static void on_locked(void *arg)
{
    tell(arg, REBUILD_OK, "");
}

static void finish(struct job *job, int status, const struct rebuild_result *result,
                   const char *err, uint64_t took_ms)
{
    struct rebuild_jobs *jobs = job->jobs;
    pthread_mutex_lock(&jobs->lock);
    jobs->status.running = 0;
    jobs->status.runs++;
    jobs->status.last_seconds = (double)took_ms / 1000.0;
    if (status == REBUILD_OK) {
        jobs->status.last_generation = result->generation;
        jobs->status.last_products = result->products;
        jobs->status.last_error[0] = '\0';
    } else {
        snprintf(jobs->status.last_error, sizeof(jobs->status.last_error), "%s", err);
    }
    pthread_mutex_unlock(&jobs->lock);
}

static void *job_main(void *arg)
{
    struct job *job = arg;
    struct rebuild_jobs *jobs = job->jobs;
    uint64_t started_ms = clock_mono_ms();
    char err[256] = "";
    struct rebuild_result result = {0};
    int status = REBUILD_FAILED;
    struct store *store = NULL;
    redisContext *redis = redis_sync_connect(&jobs->redis, REDIS_TIMEOUT_MS, err, sizeof(err));
    if (redis && store_open_reader(jobs->db_path, &store, err, sizeof(err)) == 0)
        status = rebuild_run(store, redis, jobs->prefix, on_locked, job, &result, err, sizeof(err));
    tell(job, status, err);
    uint64_t took_ms = clock_mono_ms() - started_ms; /* to the switch, not the cleanup */
    if (status == REBUILD_OK) {
        LOG(LOG_INFO, "rebuild: generation %lld is live with %lld products",
            (long long)result.generation, (long long)result.products);
        if (result.old_generation > 0) {
            usleep(OLD_GENERATION_GRACE_MS * 1000);
            if (rebuild_drop_generation(redis, jobs->prefix, result.old_generation, err,
                                        sizeof(err)) < 0)
                LOG(LOG_WARN, "rebuild: could not drop generation %lld: %s",
                    (long long)result.old_generation, err);
        }
    } else if (status == REBUILD_FAILED) {
        LOG(LOG_WARN, "rebuild: failed: %s", err);
    }
    finish(job, status, &result, err, took_ms);
    redisFree(redis);
    store_close(store);
    free(job);
    return NULL;
}

int rebuild_jobs_start(struct rebuild_jobs *jobs,
                       void (*started)(int status, const char *err, void *arg), void *arg)
{
    pthread_mutex_lock(&jobs->lock);
    if (jobs->status.running) {
        pthread_mutex_unlock(&jobs->lock);
        return -1;
    }
    jobs->status.running = 1;
    pthread_mutex_unlock(&jobs->lock);
    struct job *job = xcalloc(1, sizeof(*job));
    job->jobs = jobs;
    job->started = started;
    job->arg = arg;
    pthread_t thread;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attributes, job_main, job) != 0) {
        pthread_attr_destroy(&attributes);
        free(job);
        pthread_mutex_lock(&jobs->lock);
        jobs->status.running = 0;
        pthread_mutex_unlock(&jobs->lock);
        return -1;
    }
    pthread_attr_destroy(&attributes);
    return 0;
}

void rebuild_jobs_get_status(struct rebuild_jobs *jobs, struct rebuild_job_status *out)
{
    pthread_mutex_lock(&jobs->lock);
    *out = jobs->status;
    pthread_mutex_unlock(&jobs->lock);
}

void rebuild_jobs_free(struct rebuild_jobs *jobs)
{
    if (!jobs) return;
    pthread_mutex_lock(&jobs->lock);
    int running = jobs->status.running;
    pthread_mutex_unlock(&jobs->lock);
    if (running) return;
    pthread_mutex_destroy(&jobs->lock);
    free(jobs);
}
