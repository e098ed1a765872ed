/* test_router.c - route matching, parameters, the Allow list and request targets, on the
 * server's own route table (http/routes.h) with a stand-in handler. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "http/router.h"
#include "http/routes.h"

static void handler(struct http_exchange *ex)
{
    (void)ex;
}

#define STAND_IN(method, pattern, real_handler, name, needs_token)                                 \
    {method, pattern, handler, name, needs_token},
static const struct route ROUTES[] = {CATALOGD_ROUTES(STAND_IN)};
#define COUNT (sizeof(ROUTES) / sizeof(ROUTES[0]))

static int match(const char *method, const char *path, const struct route **found,
                 struct slice *params, int *count, char *allow)
{
    return router_match(ROUTES, COUNT, (struct slice){method, strlen(method)},
                        (struct slice){path, strlen(path)}, found, params, count, allow, 64);
}

Test(router, finds_routes_and_their_parameters)
{
    const struct route *found = NULL;
    struct slice params[HTTP_MAX_PARAMS];
    int count = 0;
    char allow[64];
    cr_assert_eq(match("GET", "/products/abc", &found, params, &count, allow), ROUTE_FOUND);
    cr_assert_str_eq(found->name, "get_product");
    cr_assert_eq(count, 1);
    cr_assert_eq(params[0].len, 3);
    cr_assert_eq(memcmp(params[0].p, "abc", 3), 0);
    cr_assert_eq(match("GET", "/products/by-sku/X-1", &found, params, &count, allow), ROUTE_FOUND);
    cr_assert_str_eq(found->name, "get_product_by_sku");
    cr_assert_eq(match("POST", "/products/abc/stock", &found, params, &count, allow), ROUTE_FOUND);
    cr_assert_str_eq(found->name, "adjust_stock");
}

Test(router, unknown_paths_are_404)
{
    const struct route *found = NULL;
    struct slice params[HTTP_MAX_PARAMS];
    int count;
    char allow[64];
    const char *paths[] = {"/",
                           "/product",
                           "/products/",
                           "/products//stock",
                           "/products/a/b",
                           "/products/a/stock/",
                           "/catalogue"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        cr_assert_eq(match("GET", paths[i], &found, params, &count, allow), ROUTE_NO_PATH, "%s",
                     paths[i]);
}

Test(router, wrong_method_lists_allow_with_head_for_get)
{
    const struct route *found = NULL;
    struct slice params[HTTP_MAX_PARAMS];
    int count;
    char allow[64];
    cr_assert_eq(match("PUT", "/products/abc", &found, params, &count, allow), ROUTE_NO_METHOD);
    cr_assert_str_eq(allow, "GET, HEAD, PATCH, DELETE");
    cr_assert_eq(match("GET", "/products", &found, params, &count, allow), ROUTE_NO_METHOD);
    cr_assert_str_eq(allow, "POST");
}

static enum request_target target(const char *text, const char **path, const char **authority)
{
    static char path_text[64], authority_text[64];
    struct slice p, a;
    enum request_target form = router_target_path((struct slice){text, strlen(text)}, &p, &a);
    snprintf(path_text, sizeof(path_text), "%.*s", (int)p.len, p.p);
    snprintf(authority_text, sizeof(authority_text), "%.*s", (int)a.len, a.p);
    *path = path_text;
    *authority = authority_text;
    return form;
}

Test(router, absolute_form_targets_give_their_path_and_host)
{
    const char *path, *authority;
    cr_assert_eq(target("/products/1", &path, &authority), TARGET_ORIGIN_FORM);
    cr_assert_str_eq(path, "/products/1");
    cr_assert_str_eq(authority, "");
    cr_assert_eq(target("http://127.0.0.1:8000/products/1", &path, &authority),
                 TARGET_ABSOLUTE_FORM);
    cr_assert_str_eq(path, "/products/1");
    cr_assert_str_eq(authority, "127.0.0.1:8000");
    cr_assert_eq(target("HTTPS://Example.COM", &path, &authority), TARGET_ABSOLUTE_FORM);
    cr_assert_str_eq(path, "/");
    cr_assert_str_eq(authority, "Example.COM");
    cr_assert_eq(target("http:///products", &path, &authority), TARGET_BAD_AUTHORITY);
    cr_assert_eq(target("http://me@localhost:8000/products", &path, &authority),
                 TARGET_BAD_AUTHORITY);
    /* Not a scheme of ours: a path like any other, which no route has. */
    cr_assert_eq(target("ftp://localhost/x", &path, &authority), TARGET_ORIGIN_FORM);
    cr_assert_eq(target("http:/x", &path, &authority), TARGET_ORIGIN_FORM);
}
