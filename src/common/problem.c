/* problem.c - one table of problem types and their titles, and the problem's JSON, written by
 * hand (json_out.h): a refused stock change answers one, and jansson's pack and dump of it
 * cost as much as the rest of the request. */
#include "common/problem.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/digits.h"
#include "common/json_out.h"
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
    /* The members of "extra" as jansson writes them, "{...}", spliced in without the braces. */
    char *members = NULL;
    size_t members_len = 0;
    if (extra) {
        members = json_dumps(extra, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        json_decref(extra);
        if (!members) xmalloc_fail();
        members_len = strlen(members);
    }
    const char *title = problem_title(slug);
    char number[DIGITS_U64_MAX + 2];
    number[digits_i64(number, status)] = '\0';
    /* Every byte written but the escaped strings, the status and the members, with the NUL. */
    static const char FIXED[] = "{\"type\":\"urn:catalogd:problem:\",\"title\":\"\",\"status\":"
                                ",\"detail\":\"\",}";
    size_t cap = sizeof(FIXED) + 6 * (strlen(slug) + strlen(title) + strlen(detail)) +
                 strlen(number) + members_len;
    struct json_out w = {xmalloc(cap), cap, 0, 0};

    json_out_text(&w, "{\"type\":\"urn:catalogd:problem:");
    json_out_escaped(&w, slug);
    json_out_text(&w, "\",\"title\":\"");
    json_out_escaped(&w, title);
    json_out_text(&w, "\",\"status\":");
    json_out_text(&w, number);
    json_out_text(&w, ",\"detail\":\"");
    json_out_escaped(&w, detail);
    json_out_text(&w, "\"");
    if (members_len > 2) {
        json_out_text(&w, ",");
        json_out_bytes(&w, members + 1, members_len - 2);
    }
    json_out_text(&w, "}");
    free(members);
    *len = json_out_finish(&w);
    assert(*len > 0); /* "cap" holds the longest it can be */
    return w.out;
}
