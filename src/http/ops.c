/* ops.c - liveness, readiness and the admin routes. /ready is 200 only when SQLite takes
 * writes, Redis answers (this loop asks it, every time, and every loop's connection is up)
 * and can be trusted with the read model, and the projection lag is under
 * READY_MAX_LAG_SECONDS; otherwise 503 naming what fails and why. */
#include "http/ops.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "projection/projector.h"
#include "command/writer.h"
#include "common/xmalloc.h"
#include "projection/rebuild.h"
#include "projection/maintenance.h"
#include "query/read_model.h"
#include "query/redis_client.h"

#define READY_MAX_LAG_SECONDS 5.0

/* openapi.json, linked in by the Makefile (ld -b binary). */
extern const char _binary_openapi_json_start[];
extern const char _binary_openapi_json_end[];

void ops_openapi(struct http_exchange *ex)
{
    http_respond(ex, 200, "application/json", _binary_openapi_json_start,
                 (size_t)(_binary_openapi_json_end - _binary_openapi_json_start));
}

void ops_health(struct http_exchange *ex)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_respond(ex, 200, "application/json", body, sizeof(body) - 1);
}

static void respond_json(struct http_exchange *ex, int status, json_t *document)
{
    char *body = json_dumps(document, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(document);
    if (!body) xmalloc_fail();
    http_respond(ex, status, "application/json", body, strlen(body));
    free(body);
}

static void forget_probe(void *arg)
{
    read_cancel(arg);
}

/* Answers /ready once this loop's Redis connection told whether there is a read model
 * ("read_status", an enum read_status). */
static void answer_ready(struct http_exchange *ex, int read_status)
{
    struct projector_status status;
    projector_get_status(ex->app->projector, &status);
    int model_ok = writer_healthy(ex->app->writer);
    const char *model = writer_store_name(ex->app->writer); /* "sqlite" or "postgresql" */
    /* A stalled projector is Redis refusing its writes (out of memory, an ACL without the
     * scripts, a read-only replica): the next command will not be applied, lag or not. The
     * queries' connections say why they failed too (a refused session: maxclients, a password
     * the projector's connection, made before, did not need). */
    const char *queries = NULL, *why = "";
    char others_why[200], queries_problem[256] = "";
    if (read_status == READ_UNAVAILABLE || read_status == READ_BAD) {
        queries = "Redis does not answer queries";
        why = redis_client_problem(ex->thread->redis);
    } else if (redis_clients_down() > 0) {
        queries = "a server thread's connection to Redis is not back yet";
        redis_clients_problem(others_why, sizeof(others_why));
        why = others_why;
    }
    if (queries)
        snprintf(queries_problem, sizeof(queries_problem), "%s%s%s", queries, why[0] ? ": " : "",
                 why);
    const char *redis_problem =
        status.redis_problem[0]                ? status.redis_problem
        : status.state == PROJECTOR_REDIS_DOWN ? status.last_error
        : status.state == PROJECTOR_STALLED
            ? (status.last_error[0] ? status.last_error : "Redis refuses the projector's writes")
        : queries_problem[0] ? queries_problem
                             : NULL;
    int redis_ok = redis_problem == NULL;
    const char *projection_problem =
        read_status == READ_REBUILDING || status.state == PROJECTOR_REBUILDING
            ? "the read model is being rebuilt"
        : read_status == READ_UNCONFIRMED
            ? "Redis restarted or went back to an older state, and the projector has not yet "
              "applied every change again"
        : status.state == PROJECTOR_HELD_ELSEWHERE
            ? "another catalog's projector holds the read model's Redis prefix"
        : status.state == PROJECTOR_STARTING          ? "the projector is starting"
        : status.lag_seconds >= READY_MAX_LAG_SECONDS ? "the projection lags 5 s or more behind"
                                                      : NULL;
    int lag_ok = projection_problem == NULL;
    int ready = model_ok && redis_ok && lag_ok;
    json_t *report = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:s, s:I, s:I, s:I, s:I, s:f}", "status",
        ready ? "ready" : "not_ready", "checks", model, model_ok ? "ok" : "failing", "redis",
        redis_ok ? "ok" : "failing", "projection", lag_ok ? "ok" : "failing", "state",
        projector_state_name(status.state), "generation", (json_int_t)status.generation,
        "checkpoint", (json_int_t)status.checkpoint, "head", (json_int_t)status.head, "lag_events",
        (json_int_t)status.lag_events, "lag_seconds", status.lag_seconds);
    if (ready) {
        respond_json(ex, 200, report);
        return;
    }
    /* Not ready is an error response like any other: a problem, with the report inside, and
     * why each failing check fails. */
    char detail[128];
    snprintf(detail, sizeof(detail), "not ready:%s%s%s%s", model_ok ? "" : " ",
             model_ok ? "" : model, redis_ok ? "" : " redis", lag_ok ? "" : " projection");
    json_t *reasons = json_object();
    if (!model_ok)
        json_object_set_new(reasons, model, json_string("the write model cannot take writes"));
    if (!redis_ok)
        json_object_set_new(reasons, "redis",
                            json_string(redis_problem[0] ? redis_problem : "Redis is down"));
    if (!lag_ok) json_object_set_new(reasons, "projection", json_string(projection_problem));
    json_object_set_new(report, "reasons", reasons);
    json_object_del(report, "status"); /* the problem's "status" is the HTTP status */
    http_respond_unavailable_with(ex, "not-ready", detail, report);
}

static void on_ready_probe(int read_status, const struct catalog_page *page, void *arg)
{
    struct http_exchange *ex = arg;
    (void)page;
    ex->on_gone = NULL;
    answer_ready(ex, read_status);
}

/* The probe is the first page of one view of the whole catalog: it sends the commands every
 * query sends (the generation check, the range reads), so a Redis that refuses them (an ACL
 * without them, LOADING) fails /ready as it fails the queries. */
void ops_ready(struct http_exchange *ex)
{
    struct read *probe =
        read_model_catalog_page(ex->thread->read_model, 0, "", 1, on_ready_probe, ex);
    if (!probe) {
        answer_ready(ex, READ_UNAVAILABLE);
        return;
    }
    ex->on_gone = forget_probe;
    ex->on_gone_arg = probe;
}

void ops_admin_projection(struct http_exchange *ex)
{
    struct projector_status status;
    struct maintenance_status maintenance;
    projector_get_status(ex->app->projector, &status);
    maintenance_get_status(ex->app->maintenance, &maintenance);
    respond_json(
        ex, 200,
        json_pack("{s:s, s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:s, s:s, "
                  "s:I, s:{s:b, s:I, s:I, s:I, s:f, s:s}}",
                  "state", projector_state_name(status.state), "instance_id", status.instance_id,
                  "projecting_instance",
                  status.projecting_instance[0] ? status.projecting_instance : NULL, "epoch",
                  (json_int_t)status.epoch, "generation", (json_int_t)status.generation,
                  "checkpoint", (json_int_t)status.checkpoint, "head", (json_int_t)status.head,
                  "lag_events", (json_int_t)status.lag_events, "lag_seconds", status.lag_seconds,
                  "redis_errors", (json_int_t)status.redis_errors, "reconnects",
                  (json_int_t)status.reconnects, "automatic_rebuilds", (json_int_t)status.rebuilds,
                  "parked_events", (json_int_t)status.parked_events, "last_error",
                  status.last_error, "redis_problem", status.redis_problem, "generations_dropped",
                  (json_int_t)maintenance.generations_dropped, "rebuild", "running",
                  maintenance.rebuilding, "runs", (json_int_t)maintenance.rebuilds,
                  "last_generation", (json_int_t)maintenance.last_generation, "last_products",
                  (json_int_t)maintenance.last_products, "last_seconds", maintenance.last_seconds,
                  "last_error", maintenance.last_error));
}

struct rebuild_request {
    struct http_resume *resume;
    int status;
    char error[200];
};

static void on_rebuild_started(int status, const char *err, void *arg)
{
    struct rebuild_request *request = arg;
    request->status = status;
    snprintf(request->error, sizeof(request->error), "%s", err);
    http_resume_post(request->resume);
}

static void answer_rebuild(struct http_exchange *ex, void *arg)
{
    struct rebuild_request *request = arg;
    if (!ex) {
        free(request);
        return;
    }
    if (request->status == REBUILD_OK) {
        http_add_header(ex, "location", "/admin/projection", 17);
        respond_json(ex, 202,
                     json_pack("{s:s, s:s}", "status", "rebuilding", "detail",
                               "a new generation is being built; follow "
                               "/admin/projection"));
    } else if (request->status == REBUILD_BUSY) {
        http_respond_problem(ex, 409, "rebuild-in-progress", "another rebuild is running", NULL);
    } else {
        http_respond_unavailable(ex, "read-model-unavailable", request->error);
    }
    free(request);
}

/* An admin command takes no parameters: no body, or a JSON object (its members are ignored).
 * Anything else is refused like a command's body (415, 400), so that a form or a text/plain
 * POST, which a browser sends across sites without asking first, never starts one. Answers
 * and returns -1 when the body is refused. */
static int no_body_or_json_or_reply(struct http_exchange *ex)
{
    int typed = http_has_header(ex, "content-type");
    if ((typed && !http_is_json(http_header(ex, "content-type"))) || (!typed && ex->body.len)) {
        http_respond_problem(ex, 415, "unsupported-media-type",
                             "send no body, or a JSON object as Content-Type: application/json",
                             NULL);
        return -1;
    }
    if (ex->body.len == 0) return 0;
    json_t *body = json_loadb(ex->body.p, ex->body.len, JSON_REJECT_DUPLICATES, NULL);
    int object = json_is_object(body);
    json_decref(body);
    if (object) return 0;
    http_respond_problem(ex, 400, "malformed-body", "the body must be one JSON object, or none",
                         NULL);
    return -1;
}

void ops_admin_rebuild(struct http_exchange *ex)
{
    if (no_body_or_json_or_reply(ex) < 0) return;
    if (!projector_prefix_ours(ex->app->projector)) {
        http_respond_unavailable(ex, "read-model-unavailable",
                                 "the read model's Redis prefix is not known to be this "
                                 "catalog's (another catalog may hold it): a rebuild from this "
                                 "one could replace another catalog's read model");
        return;
    }
    struct rebuild_request *request = xcalloc(1, sizeof(*request));
    request->resume = http_resume_new(ex, answer_rebuild, request);
    if (maintenance_request_rebuild(ex->app->maintenance, on_rebuild_started, request) < 0) {
        http_resume_cancel(request->resume);
        free(request);
        http_respond_problem(ex, 409, "rebuild-in-progress",
                             "this server is already rebuilding the read model", NULL);
    }
}
