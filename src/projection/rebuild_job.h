/* rebuild_job.h - a rebuild started from the API (POST /admin/rebuild): it runs on its own
 * thread with its own connections while the server keeps serving, then drops the old
 * generation after a grace period. One at a time per process; the Redis lock also keeps
 * out a rebuild run by another process (catalogd rebuild). */
#ifndef CATALOGD_REBUILD_JOB_H
#define CATALOGD_REBUILD_JOB_H

#include <stdint.h>

#include "common/redis_url.h"

struct rebuild_jobs;

struct rebuild_job_status {
    int running;
    uint64_t runs;
    int64_t last_generation; /* of the last successful rebuild */
    int64_t last_products;
    double last_seconds;
    char last_error[200]; /* empty when the last run succeeded */
};

struct rebuild_jobs *rebuild_jobs_new(const char *db_path, const struct redis_url *redis,
                                      const char *prefix);

/* Starts a rebuild. "started" is called once, on the job's thread: with 0 once the rebuild
 * holds the lock and builds, with REBUILD_BUSY if another holds it, or REBUILD_FAILED ("err"
 * says why). Returns -1 (and never calls "started") when this process is already
 * rebuilding. */
int rebuild_jobs_start(struct rebuild_jobs *jobs,
                       void (*started)(int status, const char *err, void *arg), void *arg);

/* Frees "jobs" unless a rebuild is still running (then its thread still needs it; at exit
 * the process takes it down). Accepts NULL. */
void rebuild_jobs_free(struct rebuild_jobs *jobs);

void rebuild_jobs_get_status(struct rebuild_jobs *jobs, struct rebuild_job_status *out);

#endif
