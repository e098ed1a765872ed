/* router.c - matches a path against patterns segment by segment; no allocation. */
#include "http/router.h"

#include <string.h>
#include <strings.h>

/* The scheme of an absolute form's text, case-insensitive (RFC 9110 4.2), and its "//". */
static size_t scheme_length(struct slice target)
{
    static const char *const SCHEMES[] = {"http://", "https://"};
    for (size_t i = 0; i < sizeof(SCHEMES) / sizeof(SCHEMES[0]); i++) {
        size_t len = strlen(SCHEMES[i]);
        if (target.len >= len && strncasecmp(target.p, SCHEMES[i], len) == 0) return len;
    }
    return 0;
}

enum request_target router_target_path(struct slice target, struct slice *path,
                                       struct slice *authority)
{
    *path = target;
    *authority = (struct slice){"", 0};
    /* Nearly every request: a path, which a scheme's letters cannot begin. */
    size_t at = target.len && target.p[0] == '/' ? 0 : scheme_length(target);
    if (at == 0) return TARGET_ORIGIN_FORM;
    const char *start = target.p + at, *end = target.p + target.len;
    const char *slash = memchr(start, '/', (size_t)(end - start));
    *authority = (struct slice){start, (size_t)((slash ? slash : end) - start)};
    *path = slash ? (struct slice){slash, (size_t)(end - slash)} : (struct slice){"/", 1};
    if (authority->len == 0 || memchr(authority->p, '@', authority->len))
        return TARGET_BAD_AUTHORITY; /* RFC 9110 4.2.4: user info is an error */
    return TARGET_ABSOLUTE_FORM;
}

/* Matches "path" against "pattern"; fills params. Returns 1 on a match. */
static int match_path(const char *pattern, struct slice path, struct slice *params, int *count)
{
    const char *p = path.p, *end = path.p + path.len;
    *count = 0;
    while (*pattern) {
        if (pattern[0] == '{' && pattern[1] == '}') {
            const char *start = p;
            while (p < end && *p != '/')
                p++;
            if (p == start || *count >= HTTP_MAX_PARAMS) return 0;
            params[(*count)++] = (struct slice){start, (size_t)(p - start)};
            pattern += 2;
        } else {
            if (p >= end || *p != *pattern) return 0;
            p++;
            pattern++;
        }
    }
    return p == end;
}

/* Appends ", method" to the Allow list unless it is there or would not fit. */
static size_t add_method(char *allow, size_t len, size_t cap, const char *method)
{
    size_t n = strlen(method);
    if (strstr(allow, method) || len + n + 3 > cap) return len;
    if (len) {
        memcpy(allow + len, ", ", 2);
        len += 2;
    }
    memcpy(allow + len, method, n + 1);
    return len + n;
}

int router_match(const struct route *routes, size_t count, struct slice method, struct slice path,
                 const struct route **found, struct slice *params, int *param_count, char *allow,
                 size_t allow_cap)
{
    int path_known = 0;
    size_t allow_len = 0;
    allow[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        struct slice scratch[HTTP_MAX_PARAMS];
        int scratch_count;
        if (!match_path(routes[i].pattern, path, scratch, &scratch_count)) continue;
        if (slice_eq(method, routes[i].method)) {
            *found = &routes[i];
            memcpy(params, scratch, sizeof(scratch));
            *param_count = scratch_count;
            return ROUTE_FOUND;
        }
        path_known = 1;
        allow_len = add_method(allow, allow_len, allow_cap, routes[i].method);
        if (strcmp(routes[i].method, "GET") == 0) /* the server answers HEAD wherever GET */
            allow_len = add_method(allow, allow_len, allow_cap, "HEAD");
    }
    return path_known ? ROUTE_NO_METHOD : ROUTE_NO_PATH;
}
