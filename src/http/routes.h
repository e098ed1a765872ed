/* routes.h - the API's routes, written once. CATALOGD_ROUTES(ROUTE) calls
 * ROUTE(method, pattern, handler, name, needs_token) for each, in matching order (a literal
 * segment before "{}" where both could match). server.c binds them to their handlers; the
 * routing fuzz target (fuzz/fuzz_router.c) routes through the same table with a stand-in
 * handler, so the two cannot drift apart. Names label /metrics; needs_token marks the routes
 * --api-token guards. */
#ifndef CATALOGD_ROUTES_H
#define CATALOGD_ROUTES_H

#define CATALOGD_ROUTES(ROUTE)                                                                     \
    ROUTE("POST", "/products", command_create_product, "create_product", 1)                        \
    ROUTE("GET", "/products/by-sku/{}", query_get_product_by_sku, "get_product_by_sku", 0)         \
    ROUTE("GET", "/products/{}", query_get_product, "get_product", 0)                              \
    ROUTE("PATCH", "/products/{}", command_update_product, "update_product", 1)                    \
    ROUTE("DELETE", "/products/{}", command_delete_product, "delete_product", 1)                   \
    ROUTE("POST", "/products/{}/stock", command_adjust_stock, "adjust_stock", 1)                   \
    ROUTE("GET", "/catalog", query_catalog, "catalog", 0)                                          \
    ROUTE("GET", "/health", ops_health, "health", 0)                                               \
    ROUTE("GET", "/ready", ops_ready, "ready", 0)                                                  \
    ROUTE("GET", "/admin/projection", ops_admin_projection, "admin_projection", 1)                 \
    ROUTE("POST", "/admin/rebuild", ops_admin_rebuild, "admin_rebuild", 1)                         \
    ROUTE("GET", "/metrics", ops_metrics, "metrics", 0)                                            \
    ROUTE("GET", "/openapi.json", ops_openapi, "openapi", 0)                                       \
    ROUTE("GET", "/docs", docs_page, "docs", 0)                                                    \
    ROUTE("GET", "/docs/{}/{}", docs_asset, "docs_asset", 0)

#endif
