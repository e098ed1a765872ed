/* problem.c - one table of problem types and their titles. */
#include "common/problem.h"

#include <stdio.h>
#include <string.h>

#include "common/xmalloc.h"

static const char *const PROBLEM_TITLES[][2] = {
    {"malformed-body", "The request body is not one JSON object"},
    {"invalid-query", "A query parameter is not valid"},
    {"invalid-header", "A request header is not valid"},
    {"ambiguous-request", "The request could be read in more than one way"},
    {"malformed-request", "The request is not valid HTTP/1.1"},
    {"misdirected-request", "The request names another host"},
    {"cross-origin-request", "A page of another origin may not change state here"},
    {"not-found", "Not found"},
    {"method-not-allowed", "Method not allowed on this resource"},
    {"duplicate-sku", "A product with this SKU already exists"},
    {"insufficient-stock", "Not enough stock"},
    {"version-mismatch", "The product changed since the version you sent"},
    {"idempotency-key-in-use", "A request with this Idempotency-Key is still in progress"},
    {"idempotency-key-reused", "This Idempotency-Key was used for a different request"},
    {"headers-too-large", "The request headers are too large"},
    {"payload-too-large", "The request body is too large"},
    {"unsupported-media-type", "The body must be application/json"},
    {"validation-failed", "The request did not pass validation"},
    {"read-model-unavailable", "The read model is unavailable"},
    {"write-model-unavailable", "The write model is unavailable"},
    {"idempotency-keys-full", "No room for another Idempotency-Key"},
    {"write-queue-full", "Too many commands are waiting for the write model"},
    {"rebuild-in-progress", "A rebuild is already running"},
    {"not-ready", "The service is not ready"},
    {"shutting-down", "The server is shutting down"},
    {"unauthorized", "A valid bearer token is required"},
    {"internal-error", "Internal error"},
};

static const char *problem_title(const char *slug)
{
    for (size_t i = 0; i < sizeof(PROBLEM_TITLES) / sizeof(PROBLEM_TITLES[0]); i++)
        if (strcmp(PROBLEM_TITLES[i][0], slug) == 0) return PROBLEM_TITLES[i][1];
    return "Error";
}

char *problem_render(int status, const char *slug, const char *detail, json_t *extra, size_t *len)
{
    char type[96];
    snprintf(type, sizeof(type), "urn:catalogd:problem:%s", slug);
    json_t *problem = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", problem_title(slug),
                                "status", status, "detail", detail);
    if (!problem) xmalloc_fail();
    if (extra) {
        json_object_update(problem, extra);
        json_decref(extra);
    }
    char *text = json_dumps(problem, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(problem);
    if (!text) xmalloc_fail();
    *len = strlen(text);
    return text;
}
