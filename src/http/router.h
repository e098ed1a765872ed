/* router.h - the route table: method + path pattern -> handler. A pattern segment "{}"
 * matches one non-empty path segment and becomes a parameter. */
#ifndef CATALOGD_ROUTER_H
#define CATALOGD_ROUTER_H

#include "http/exchange.h"

typedef void (*route_handler)(struct http_exchange *ex);

struct route {
    const char *method;
    const char *pattern;
    route_handler handler;
    const char *name; /* for logs and metrics: "create_product" */
    int needs_token;  /* commands and admin routes, when --api-token is set */
};

enum route_match {
    ROUTE_FOUND = 0,
    ROUTE_NO_PATH = -1,   /* 404 */
    ROUTE_NO_METHOD = -2, /* 405: "allow" lists the methods of that path */
};

enum request_target {
    TARGET_ORIGIN_FORM = 0,   /* "/products/1": the path as it is */
    TARGET_ABSOLUTE_FORM = 1, /* "http://host:port/products/1" (RFC 9112 3.2.2) */
    TARGET_BAD_AUTHORITY = -1 /* an absolute form with no host, or with user info */
};

/* Reads the path of a request target ("target", its query left out). A server must take the
 * absolute form, which a client sends to a proxy, as well: then "*path" is its path ("/" when
 * it has none) and "*authority" its host[:port], which the request names in place of its Host
 * header. Otherwise "*path" is "target". */
enum request_target router_target_path(struct slice target, struct slice *path,
                                       struct slice *authority);

/* Finds the route for "method" and "path" in "routes" ("count" entries). On ROUTE_FOUND,
 * "*found" is set and "params"/"param_count" receive the {} segments. On ROUTE_NO_METHOD,
 * "allow" ("allow_cap" bytes) receives "GET, POST"-style text. */
int router_match(const struct route *routes, size_t count, struct slice method, struct slice path,
                 const struct route **found, struct slice *params, int *param_count, char *allow,
                 size_t allow_cap);

#endif
