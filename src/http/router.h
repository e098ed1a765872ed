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

/* Finds the route for "method" and "path" in "routes" ("count" entries). On ROUTE_FOUND,
 * "*found" is set and "params"/"param_count" receive the {} segments. On ROUTE_NO_METHOD,
 * "allow" ("allow_cap" bytes) receives "GET, POST"-style text. */
int router_match(const struct route *routes, size_t count, struct slice method, struct slice path,
                 const struct route **found, struct slice *params, int *param_count, char *allow,
                 size_t allow_cap);

#endif
