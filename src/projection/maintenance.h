/* maintenance.h - the background work on the read model that queries and commands never wait
 * for: rebuilds asked for through the API (POST /admin/rebuild), and the collection of
 * generations nobody reads any more (generations.h), after every rebuild and every few
 * seconds. One thread with its own connections; one rebuild at a time per process (the
 * rebuild lock keeps out those of other processes). */
#ifndef CATALOGD_MAINTENANCE_H
#define CATALOGD_MAINTENANCE_H

#include <stdint.h>

#include "common/redis_url.h"

#define MAINTENANCE_COLLECT_EVERY_MS 5000

struct maintenance;

struct maintenance_status {
    int rebuilding;
    uint64_t rebuilds;
    int64_t last_generation; /* of the last successful rebuild */
    int64_t last_products;
    double last_seconds;
    char last_error[200]; /* empty when the last rebuild succeeded */
    uint64_t generations_dropped;
};

/* Starts the thread. "prefix_ours" (called on the thread) says whether this catalog holds
 * the read model's prefix: generations are collected only then. Returns NULL if it cannot
 * start. */
struct maintenance *maintenance_start(const char *db_path, const struct redis_url *redis,
                                      const char *prefix, int (*prefix_ours)(void *arg),
                                      void *prefix_ours_arg);

/* Asks for a rebuild. "started" is called once, on the maintenance thread: with REBUILD_OK
 * once the rebuild holds the lock and builds, with REBUILD_BUSY if another holds it, or
 * REBUILD_FAILED ("err" says why; also when the process stops first). Returns -1 (and never
 * calls "started") when this process is already rebuilding. */
int maintenance_request_rebuild(struct maintenance *m,
                                void (*started)(int status, const char *err, void *arg), void *arg);

void maintenance_get_status(struct maintenance *m, struct maintenance_status *out);

/* Abandons a running rebuild, stops the thread and frees "m" (accepts NULL). */
void maintenance_stop(struct maintenance *m);

#endif
