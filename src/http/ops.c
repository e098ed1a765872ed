/* ops.c - liveness and readiness. /ready is 200 only when SQLite takes writes, Redis answers
 * and the projection lag is under READY_MAX_LAG_SECONDS; otherwise 503 naming what fails. */
#include "http/ops.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int64_t lag_events = status.head > status.checkpoint ? status.head - status.checkpoint : 0;
    json_t *report = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:s, s:I, s:I, s:I, s:I, s:f}", "status",
        ready ? "ready" : "not_ready", "checks", "sqlite", sqlite_ok ? "ok" : "failing", "redis",
        redis_ok ? "ok" : "failing", "projection", lag_ok ? "ok" : "failing", "state",
        projector_state_name(status.state), "generation", (json_int_t)status.generation,
        "checkpoint", (json_int_t)status.checkpoint, "head", (json_int_t)status.head,
        "lag_events", (json_int_t)lag_events, "lag_seconds", status.lag_seconds);
    if (ready) {
        char *body = json_dumps(report, JSON_COMPACT | JSON_PRESERVE_ORDER);
        http_respond(ex, 200, "application/json", body, strlen(body));
        free(body);
        json_decref(report);
        return;
    }
    /* Not ready is an error response like any other: a problem, with the report inside. */
    char detail[128];
    snprintf(detail, sizeof(detail), "not ready:%s%s%s", sqlite_ok ? "" : " sqlite",
             redis_ok ? "" : " redis", lag_ok ? "" : " projection");
    json_object_del(report, "status"); /* the problem's "status" is the HTTP status */
    http_respond_unavailable_with(ex, "not-ready", detail, report);
}
