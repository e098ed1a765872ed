/* ops.c - liveness and readiness. /ready is 200 only when SQLite takes writes, Redis answers
 * and the projection lag is under READY_MAX_LAG_SECONDS; otherwise 503 naming what fails. */
#include "http/ops.h"

#include <inttypes.h>
#include <stdio.h>

#include "app.h"
#include "query/read_model.h"

#define READY_MAX_LAG_SECONDS 5.0

void ops_health(struct http_exchange *ex)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_respond(ex, 200, "application/json", body, sizeof(body) - 1);
}

void ops_ready(struct http_exchange *ex)
{
    struct projector_status status;
    projector_get_status(ex->app->projector, &status);
    int sqlite_ok = writer_healthy(ex->app->writer);
    int redis_ok = read_model_ready(ex->thread->read_model) &&
                   status.state != PROJECTOR_REDIS_DOWN && status.state != PROJECTOR_STARTING;
    int lag_ok = status.state != PROJECTOR_REBUILDING && status.lag_seconds < READY_MAX_LAG_SECONDS;
    int ready = sqlite_ok && redis_ok && lag_ok;
    char body[1024];
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"checks\":{\"sqlite\":\"%s\",\"redis\":\"%s\","
                     "\"projection\":\"%s\"},\"state\":\"%s\",\"generation\":%" PRId64
                     ",\"checkpoint\":%" PRId64 ",\"head\":%" PRId64 ",\"lag_events\":%" PRId64
                     ",\"lag_seconds\":%.3f}",
                     ready ? "ready" : "not_ready", sqlite_ok ? "ok" : "failing",
                     redis_ok ? "ok" : "failing", lag_ok ? "ok" : "failing",
                     projector_state_name(status.state), status.generation, status.checkpoint,
                     status.head, status.head > status.checkpoint ? status.head - status.checkpoint : 0,
                     status.lag_seconds);
    if (!ready) http_add_header(ex, "retry-after", "1", 1);
    http_respond(ex, ready ? 200 : 503, "application/json", body, (size_t)n);
}
