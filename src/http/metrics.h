/* metrics.h - request counters and latency histograms, one set per loop thread (written only
 * by that thread, read by the /metrics handler with relaxed atomics), and the Prometheus text
 * rendering of them plus the projector's and writer's figures. */
#ifndef CATALOGD_METRICS_H
#define CATALOGD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "http/exchange.h"

#define METRICS_ROUTES   16 /* route table entries, plus one for "unmatched" */
#define METRICS_STATUSES 20
#define METRICS_BUCKETS  14

struct route_metrics {
    _Atomic uint64_t by_status[METRICS_STATUSES];
    _Atomic uint64_t latency_buckets[METRICS_BUCKETS]; /* not cumulative; rendered cumulative */
    _Atomic uint64_t latency_sum_us;
};

struct loop_metrics {
    struct route_metrics routes[METRICS_ROUTES];
};

/* Counts one answered request of route "route_index" (METRICS_ROUTES - 1 for none). */
void metrics_record(struct loop_metrics *metrics, int route_index, int status,
                    uint64_t duration_us);

/* GET /metrics. */
void ops_metrics(struct http_exchange *ex);

#endif
