/* fuzz_router.c - libFuzzer target: a request line through the route table (router_match)
 * and the catalog's query string through the cursor decoder.
 * The input is "METHOD PATH[?QUERY]" (without a space: the whole input is a GET's target).
 * The table is the server's own (src/http/routes.h), with a dummy handler, since the real
 * ones need h2o; HEAD is routed as GET, as on_request does. Invariants checked, beyond "no crash":
 * - ROUTE_FOUND names a route of that method whose pattern, with the parameters put back in
 *   its {} segments, spells the path exactly; each parameter is one non-empty segment, and no
 *   earlier route of the table matches (first match wins);
 * - ROUTE_NO_METHOD lists in "allow" only methods that the server serves for the path (HEAD,
 *   served as GET, is listed exactly when GET is), never the one asked; ROUTE_NO_PATH means
 *   that no method matches the path; "allow" never overflows, whatever its capacity;
 * - the query string is split by the server's own query_find_param (src/query/params.c): a
 *   value is decoded whole or not at all, within QUERY_VALUE_MAX; a limit that
 *   query_parse_limit accepts is 1-1000; a cursor parameter that cursor_decode accepts encodes
 *   back to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/slice.h"
#include "domain/cursor.h"
#include "domain/uuid7.h"
#include "fuzz_check.h"
#include "http/router.h"
#include "http/routes.h"
#include "query/params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void dummy_handler(struct http_exchange *ex)
{
    (void)ex;
}

/* The server's own table (src/http/routes.h), every route bound to the stand-in. */
#define STAND_IN_ROUTE(method, pattern, handler, name, needs_token)                                \
    {method, pattern, dummy_handler, name, needs_token},
static const struct route ROUTES[] = {CATALOGD_ROUTES(STAND_IN_ROUTE)};
#define ROUTE_COUNT (sizeof ROUTES / sizeof ROUTES[0])
#define ALLOW_MAX   64 /* on_request's allow[] */

/* The server's own query-string lookup (src/query/params.c). A value it hands over is
 * NUL-terminated at its length, no longer than the query's bytes, and no longer than it may be;
 * one it cannot read is empty. */
static int query_param(struct slice query, const char *name, struct query_value *value)
{
    int found = query_find_param(query.p, query.len, name, value);
    CHECK(found >= 0 && found <= 2);
    if (found) {
        CHECK(value->len <= QUERY_VALUE_MAX && value->len <= query.len);
        CHECK(strlen(value->text) == value->len);
        CHECK(value->fault == 0 || value->fault == PERCENT_MALFORMED ||
              value->fault == PERCENT_TOO_LONG);
        CHECK(value->fault == 0 || value->len == 0);
    }
    return found;
}

/* router_match with "allow" and "params" on the heap at their exact sizes, so ASan sees a
 * write past either. */
static int match(size_t count, struct slice method, struct slice path, const struct route **found,
                 struct slice found_params[HTTP_MAX_PARAMS], int *param_count, char *allow_out,
                 size_t allow_cap)
{
    struct slice *params = malloc(HTTP_MAX_PARAMS * sizeof *params);
    char *allow = malloc(allow_cap);
    CHECK(params != NULL && allow != NULL);
    *found = NULL;
    *param_count = -1;
    int rc =
        router_match(ROUTES, count, method, path, found, params, param_count, allow, allow_cap);
    CHECK(rc == ROUTE_FOUND || rc == ROUTE_NO_PATH || rc == ROUTE_NO_METHOD);
    CHECK(memchr(allow, '\0', allow_cap) != NULL);
    if (rc == ROUTE_FOUND) memcpy(found_params, params, HTTP_MAX_PARAMS * sizeof *params);
    if (allow_out) memcpy(allow_out, allow, strlen(allow) + 1);
    free(params);
    free(allow);
    return rc;
}

/* The pattern of "route" with "params" in its {} segments spells "path" exactly. */
static void check_found(const struct route *route, struct slice method, struct slice path,
                        const struct slice *params, int param_count)
{
    const char *p = path.p, *end = path.p + path.len;
    int used = 0;

    CHECK(route >= ROUTES && route < ROUTES + ROUTE_COUNT);
    CHECK(slice_eq(method, route->method));
    CHECK(param_count >= 0 && param_count <= HTTP_MAX_PARAMS);
    for (const char *q = route->pattern; *q;) {
        if (q[0] == '{' && q[1] == '}') {
            CHECK(used < param_count);
            struct slice param = params[used++];
            CHECK(param.p == p && param.len > 0 && param.len <= (size_t)(end - p));
            CHECK(memchr(param.p, '/', param.len) == NULL);
            p += param.len;
            q += 2;
        } else {
            CHECK(p < end && *p == *q);
            p++;
            q++;
        }
    }
    CHECK(p == end && used == param_count);

    /* First match wins: no earlier route takes this request. */
    const struct route *earlier;
    struct slice scratch[HTTP_MAX_PARAMS];
    int scratch_count;
    CHECK(match((size_t)(route - ROUTES), method, path, &earlier, scratch, &scratch_count, NULL,
                ALLOW_MAX) != ROUTE_FOUND);
}

/* What query_catalog does with "cursor" and "limit" (src/query/handlers.c). */
static void check_query(struct slice query)
{
    struct query_value value;
    char after[UUID_TEXT_LEN + 1], cursor[CURSOR_LEN + 1];
    int limit = -1;

    if (query_param(query, "limit", &value)) {
        if (query_parse_limit(value.text, value.len, 1000, &limit) == 0)
            CHECK(limit >= 1 && limit <= 1000);
        else
            CHECK(limit == -1);
    }

    if (query_param(query, "cursor", &value)) {
        if (cursor_decode(value.text, value.len, after) == 0) {
            CHECK(uuid_check_canonical(after, strlen(after)) == 0);
            CHECK(cursor_encode(after, cursor) == 0);
            CHECK(value.len == CURSOR_LEN && memcmp(cursor, value.text, CURSOR_LEN) == 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *space = memchr(text, ' ', size);
    struct slice method = SLICE_LIT("GET"), target = {text, size};
    if (space) {
        method = (struct slice){text, (size_t)(space - text)};
        target = (struct slice){space + 1, size - (size_t)(space - text) - 1};
    }
    const char *question = memchr(target.p, '?', target.len);
    struct slice path = target, query = {"", 0};
    if (question) {
        path.len = (size_t)(question - target.p);
        query = (struct slice){question + 1, target.len - path.len - 1};
    }
    if (slice_eq(method, "HEAD")) method = SLICE_LIT("GET");

    const struct route *found;
    struct slice params[HTTP_MAX_PARAMS];
    int param_count;
    char allow[ALLOW_MAX];
    /* A capacity from 1 to ALLOW_MAX, from the input, probes the bounds of the allow list. */
    size_t allow_cap = 1 + fuzz_hash(data, size) % ALLOW_MAX;

    int rc = match(ROUTE_COUNT, method, path, &found, params, &param_count, NULL, allow_cap);
    int rc_full = match(ROUTE_COUNT, method, path, &found, params, &param_count, allow, ALLOW_MAX);
    CHECK(rc == rc_full);
    if (rc_full == ROUTE_FOUND) {
        check_found(found, method, path, params, param_count);
    } else if (rc_full == ROUTE_NO_METHOD) {
        /* Every method listed is served for the path (HEAD as GET, and listed with it); the
         * one asked is not listed. */
        int get_listed = 0, head_listed = 0;
        CHECK(allow[0] != '\0');
        for (char *name = allow; *name;) {
            size_t len = strcspn(name, ",");
            struct slice listed = {name, len};
            const struct route *other;
            struct slice other_params[HTTP_MAX_PARAMS];
            int other_count;
            CHECK(len > 0);
            get_listed |= slice_eq(listed, "GET");
            head_listed |= slice_eq(listed, "HEAD");
            if (slice_eq(listed, "HEAD")) listed = SLICE_LIT("GET");
            CHECK(!(method.len == listed.len && memcmp(method.p, listed.p, listed.len) == 0));
            CHECK(match(ROUTE_COUNT, listed, path, &other, other_params, &other_count, NULL,
                        ALLOW_MAX) == ROUTE_FOUND);
            check_found(other, listed, path, other_params, other_count);
            name += len;
            if (*name == ',') {
                CHECK(name[1] == ' ');
                name += 2;
            }
        }
        CHECK(get_listed == head_listed);
    } else {
        CHECK(allow[0] == '\0');
        for (size_t i = 0; i < ROUTE_COUNT; i++) {
            const struct route *other;
            struct slice other_params[HTTP_MAX_PARAMS];
            int other_count;
            struct slice route_method = {ROUTES[i].method, strlen(ROUTES[i].method)};
            CHECK(match(ROUTE_COUNT, route_method, path, &other, other_params, &other_count, NULL,
                        ALLOW_MAX) == ROUTE_NO_PATH);
        }
    }
    check_query(query);
    return 0;
}
