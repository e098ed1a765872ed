/* metrics.c - Prometheus text exposition (version 0.0.4) of what catalogd counts. */
#include "http/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "command/writer.h"
#include "common/xmalloc.h"
#include "http/loop.h"
#include "projection/projector.h"
#include "query/redis_client.h"
#include "readmodel/view_cache.h"

static const int STATUSES[METRICS_STATUSES] = {200, 201, 202, 204, 304, 400, 401, 403, 404, 405,
                                               409, 412, 413, 415, 421, 422, 431, 500, 503, 0};
static const double BUCKET_SECONDS[METRICS_BUCKETS - 1] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};

static int status_slot(int status)
{
    for (int i = 0; i < METRICS_STATUSES - 1; i++)
        if (STATUSES[i] == status) return i;
    return METRICS_STATUSES - 1; /* other */
}

void metrics_record(struct loop_metrics *metrics, int route_index, int status, uint64_t duration_us)
{
    if (route_index < 0 || route_index >= METRICS_ROUTES) route_index = METRICS_ROUTES - 1;
    struct route_metrics *m = &metrics->routes[route_index];
    atomic_fetch_add_explicit(&m->by_status[status_slot(status)], 1, memory_order_relaxed);
    int bucket = 0;
    while (bucket < METRICS_BUCKETS - 1 && (double)duration_us / 1e6 > BUCKET_SECONDS[bucket])
        bucket++;
    atomic_fetch_add_explicit(&m->latency_buckets[bucket], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_sum_us, duration_us, memory_order_relaxed);
}

struct text {
    char *p;
    size_t len, cap;
};

static void emit(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list args;
        va_start(args, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, args);
        va_end(args);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = t->cap * 2 + (size_t)(n > 0 ? n : 0);
        t->p = xrealloc(t->p, t->cap);
    }
}

static uint64_t load(_Atomic uint64_t *value)
{
    return atomic_load_explicit(value, memory_order_relaxed);
}

static void emit_requests(struct text *t, struct server_view *view)
{
    emit(t, "# HELP catalogd_requests_total Requests answered, by route and status.\n"
            "# TYPE catalogd_requests_total counter\n");
    for (int r = 0; r < METRICS_ROUTES; r++) {
        if (!view->route_names[r]) continue;
        for (int s = 0; s < METRICS_STATUSES; s++) {
            uint64_t count = 0;
            for (int l = 0; l < view->loop_count; l++)
                count += load(&view->loops[l].metrics.routes[r].by_status[s]);
            if (count == 0) continue;
            char status[8];
            snprintf(status, sizeof(status), "%d", STATUSES[s]);
            emit(t, "catalogd_requests_total{route=\"%s\",status=\"%s\"} %" PRIu64 "\n",
                 view->route_names[r], STATUSES[s] ? status : "other", count);
        }
    }
    emit(t, "# HELP catalogd_request_duration_seconds Time from request to response.\n"
            "# TYPE catalogd_request_duration_seconds histogram\n");
    for (int r = 0; r < METRICS_ROUTES; r++) {
        if (!view->route_names[r]) continue;
        uint64_t cumulative = 0, sum_us = 0;
        for (int b = 0; b < METRICS_BUCKETS; b++) {
            for (int l = 0; l < view->loop_count; l++)
                cumulative += load(&view->loops[l].metrics.routes[r].latency_buckets[b]);
            if (b < METRICS_BUCKETS - 1)
                emit(t,
                     "catalogd_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %" PRIu64
                     "\n",
                     view->route_names[r], BUCKET_SECONDS[b], cumulative);
        }
        for (int l = 0; l < view->loop_count; l++)
            sum_us += load(&view->loops[l].metrics.routes[r].latency_sum_us);
        emit(t, "catalogd_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
             view->route_names[r], cumulative);
        emit(t, "catalogd_request_duration_seconds_sum{route=\"%s\"} %.6f\n", view->route_names[r],
             (double)sum_us / 1e6);
        emit(t, "catalogd_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n",
             view->route_names[r], cumulative);
    }
}

static void emit_sync(struct text *t, struct http_exchange *ex, struct server_view *view)
{
    struct projector_status status;
    struct writer_stats stats;
    projector_get_status(ex->app->projector, &status);
    writer_get_stats(ex->app->writer, &stats);
    unsigned long client_errors = 0, client_reconnects = 0;
    long connections = 0;
    for (int l = 0; l < view->loop_count; l++) {
        connections += atomic_load_explicit(&view->loops[l].connections, memory_order_relaxed);
        struct redis_client *redis = view->loops[l].app_thread.redis;
        if (!redis) continue;
        client_errors += redis_client_errors(redis);
        client_reconnects += redis_client_reconnects(redis);
    }
    emit(
        t,
        "# HELP catalogd_projection_lag_events Events committed but not yet in Redis.\n"
        "# TYPE catalogd_projection_lag_events gauge\ncatalogd_projection_lag_events %" PRId64 "\n"
        "# HELP catalogd_projection_lag_seconds Age of the oldest event not yet in Redis.\n"
        "# TYPE catalogd_projection_lag_seconds gauge\ncatalogd_projection_lag_seconds %.3f\n"
        "# TYPE catalogd_projection_checkpoint gauge\ncatalogd_projection_checkpoint %" PRId64 "\n"
        "# TYPE catalogd_events_head gauge\ncatalogd_events_head %" PRId64 "\n"
        "# TYPE catalogd_read_model_generation gauge\ncatalogd_read_model_generation %" PRId64 "\n"
        "# HELP catalogd_redis_errors_total Failed Redis attempts, by component.\n"
        "# TYPE catalogd_redis_errors_total counter\n"
        "catalogd_redis_errors_total{component=\"projector\"} %" PRIu64 "\n"
        "catalogd_redis_errors_total{component=\"queries\"} %lu\n"
        "# TYPE catalogd_redis_reconnects_total counter\n"
        "catalogd_redis_reconnects_total{component=\"projector\"} %" PRIu64 "\n"
        "catalogd_redis_reconnects_total{component=\"queries\"} %lu\n"
        "# TYPE catalogd_projection_rebuilds_total counter\ncatalogd_projection_rebuilds_total "
        "%" PRIu64 "\n"
        "# HELP catalogd_projection_parked_events Events Redis refused for their product, "
        "retried.\n"
        "# TYPE catalogd_projection_parked_events gauge\ncatalogd_projection_parked_events %" PRId64
        "\n",
        status.lag_events, status.lag_seconds, status.checkpoint, status.head, status.generation,
        status.redis_errors, client_errors, status.reconnects, client_reconnects, status.rebuilds,
        status.parked_events);
    emit(t,
         "# HELP catalogd_idempotency_keys Idempotency-Keys stored (each kept at least 24 h).\n"
         "# TYPE catalogd_idempotency_keys gauge\ncatalogd_idempotency_keys %" PRId64 "\n"
         "# HELP catalogd_idempotency_keys_limit --max-idempotency-keys: a new key beyond is "
         "refused.\n"
         "# TYPE catalogd_idempotency_keys_limit gauge\ncatalogd_idempotency_keys_limit %" PRId64
         "\n",
         stats.idempotency_keys, stats.max_idempotency_keys);
    emit(t,
         "# HELP catalogd_writer_queue_depth Commands waiting for the writer.\n"
         "# TYPE catalogd_writer_queue_depth gauge\ncatalogd_writer_queue_depth %" PRId64 "\n"
         "# HELP catalogd_writer_queue_limit --max-queued-commands: more are refused with 503.\n"
         "# TYPE catalogd_writer_queue_limit gauge\ncatalogd_writer_queue_limit %" PRId64 "\n",
         stats.queued, stats.max_queued);
    emit(t,
         "# HELP catalogd_open_connections HTTP connections open now.\n"
         "# TYPE catalogd_open_connections gauge\ncatalogd_open_connections %ld\n",
         connections);
    emit(t, "# HELP catalogd_write_batch_size Commands per group commit.\n"
            "# TYPE catalogd_write_batch_size histogram\n");
    uint64_t cumulative = 0;
    for (int b = 0; b < 8; b++) {
        cumulative += stats.batch_size_histogram[b];
        if (b < 7)
            emit(t, "catalogd_write_batch_size_bucket{le=\"%d\"} %" PRIu64 "\n", (2 << b) - 1,
                 cumulative);
    }
    emit(t,
         "catalogd_write_batch_size_bucket{le=\"+Inf\"} %" PRIu64 "\n"
         "catalogd_write_batch_size_sum %" PRIu64 "\ncatalogd_write_batch_size_count %" PRIu64 "\n",
         cumulative, stats.commands, stats.batches);
    emit(t,
         "# HELP catalogd_write_batch_fill_waits_total Group commits that waited (1 ms at most) "
         "for commands in flight to fill the batch.\n"
         "# TYPE catalogd_write_batch_fill_waits_total counter\n"
         "catalogd_write_batch_fill_waits_total %" PRIu64 "\n",
         stats.fill_waits);
    struct view_cache_stats cache;
    view_cache_get_stats(ex->app->view_cache, &cache);
    emit(t,
         "# HELP catalogd_view_cache_hits_total GET /products/{id} answered from the views kept "
         "in memory.\n"
         "# TYPE catalogd_view_cache_hits_total counter\n"
         "catalogd_view_cache_hits_total %" PRIu64 "\n"
         "# HELP catalogd_view_cache_misses_total GET /products/{id} read from Redis instead: "
         "the view was not kept, or Redis had not named its generation in the last 50 ms.\n"
         "# TYPE catalogd_view_cache_misses_total counter\n"
         "catalogd_view_cache_misses_total %" PRIu64 "\n"
         "# HELP catalogd_view_cache_bytes Bytes of the views kept in memory.\n"
         "# TYPE catalogd_view_cache_bytes gauge\ncatalogd_view_cache_bytes %" PRIu64 "\n",
         cache.hits, cache.misses, cache.bytes);
}

void ops_metrics(struct http_exchange *ex)
{
    struct server_view view;
    server_describe(&view);
    struct text t = {.p = xmalloc(16384), .cap = 16384};
    emit_requests(&t, &view);
    emit_sync(&t, ex, &view);
    http_respond(ex, 200, "text/plain; version=0.0.4", t.p, t.len);
    free(t.p);
}
