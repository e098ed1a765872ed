/* handlers.c - GET /products/{id}, GET /products/by-sku/{sku}, GET /catalog.
 * Each handler validates its input, starts one read of the read model (read_model.h) and
 * answers from its outcome; the views are sent as stored, byte for byte. A product by id is
 * answered from the view cache when it holds the view (readmodel/view_cache.h). */
#include "query/handlers.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "common/digits.h"
#include "domain/cursor.h"
#include "domain/product.h"
#include "domain/uuid7.h"
#include "domain/view.h"
#include "query/page.h"
#include "query/params.h"
#include "query/read_model.h"

#define CATALOG_DEFAULT_LIMIT 100
#define CATALOG_MAX_LIMIT     CATALOG_PAGE_MAX

static const char JSON[] = "application/json";

static void forget_read(void *arg)
{
    read_cancel(arg);
}

/* Remembers the read the exchange waits for, so that a client that goes away cancels it;
 * answers 503 when there is none (Redis is not connected). */
static void hold(struct http_exchange *ex, struct read *read)
{
    if (!read) {
        http_respond_unavailable(ex, "read-model-unavailable",
                                 "the read model (Redis) is not reachable; retry shortly");
        return;
    }
    ex->on_gone = forget_read;
    ex->on_gone_arg = read;
}

/* Called first by every read callback: the exchange is ours again. Returns 0 when the read
 * succeeded; otherwise answers the 503 that says why and returns -1. */
static int read_ok_or_reply(struct http_exchange *ex, int status)
{
    static const char *const WHY[] = {
        [-READ_UNAVAILABLE] = "the read model (Redis) is not reachable or did not answer in time",
        [-READ_REBUILDING] = "the read model is being rebuilt; retry shortly",
        [-READ_BAD] = "the read model gave an unexpected answer",
        [-READ_UNCONFIRMED] = "Redis restarted or went back to an older state, and the projector "
                              "has not yet applied every change again; retry shortly",
    };
    ex->on_gone = NULL;
    ex->on_gone_arg = NULL;
    const char *refusal = status == READ_OK && ex->app->read_model_refusal
                              ? ex->app->read_model_refusal(ex->app)
                              : NULL;
    if (refusal) {
        http_respond_unavailable(ex, "read-model-unavailable", refusal);
        return -1;
    }
    if (status == READ_OK) return 0;
    assert(status < 0 && -status < (int)(sizeof(WHY) / sizeof(WHY[0])));
    if (status == READ_UNCONFIRMED && ex->app->read_model_unconfirmed)
        ex->app->read_model_unconfirmed(ex->app);
    http_respond_unavailable(ex, "read-model-unavailable", WHY[-status]);
    return -1;
}

/* "view" is copied into the response, unless it is "allocated" (from http_alloc: sent as it
 * is). */
static void answer_view(struct http_exchange *ex, int status, struct slice view, char *allocated,
                        const char *not_found)
{
    if (read_ok_or_reply(ex, status) < 0) return;
    if (!view.p) { /* read in the current generation: truly absent */
        http_respond_problem(ex, 404, "not-found", not_found, NULL);
        return;
    }
    char etag[DIGITS_U64_MAX + 3];
    int64_t version = view_version(view.p, view.len);
    size_t etag_len = 0;
    etag[etag_len++] = '"';
    etag_len += digits_u64(etag + etag_len, version > 0 ? (uint64_t)version : 0);
    etag[etag_len++] = '"';
    http_add_header(ex, "etag", etag, etag_len);
    struct slice if_none_match = http_header(ex, "if-none-match");
    if (if_none_match.len &&
        query_etag_matches(if_none_match.p, if_none_match.len, etag, etag_len)) {
        http_respond(ex, 304, NULL, NULL, 0);
        return;
    }
    if (allocated)
        http_respond_allocated(ex, 200, JSON, allocated, view.len);
    else
        http_respond(ex, 200, JSON, view.p, view.len);
}

static char *alloc_in_exchange(void *ex, size_t len)
{
    return http_alloc(ex, len);
}

static void on_product(int status, struct slice view, void *arg)
{
    answer_view(arg, status, view, NULL, "no product has this id");
}

void query_get_product(struct http_exchange *ex)
{
    struct slice id = ex->params[0];
    if (uuid_check_canonical(id.p, id.len) < 0) {
        http_respond_problem(ex, 404, "not-found", "no product has this id", NULL);
        return;
    }
    char *cached;
    size_t cached_len =
        read_model_cached_view(ex->thread->read_model, id, alloc_in_exchange, ex, &cached);
    if (cached_len > 0) {
        answer_view(ex, READ_OK, (struct slice){cached, cached_len}, cached,
                    "no product has this id");
        return;
    }
    hold(ex, read_model_get_view(ex->thread->read_model, id, on_product, ex));
}

static void on_product_by_sku(int status, struct slice view, void *arg)
{
    answer_view(arg, status, view, NULL, "no product has this sku");
}

void query_get_product_by_sku(struct http_exchange *ex)
{
    if (!product_sku_valid(ex->params[0].p, ex->params[0].len)) {
        http_respond_problem(ex, 404, "not-found", "no product has this sku", NULL);
        return;
    }
    hold(ex, read_model_get_by_sku(ex->thread->read_model, ex->params[0], on_product_by_sku, ex));
}

struct catalog_request {
    struct http_exchange *ex;
    int limit;
    int in_stock;
};

/* The views, sent as stored. */
static void on_catalog_page(int status, const struct catalog_page *page, void *arg)
{
    struct catalog_request *request = arg;
    struct http_exchange *ex = request->ex;
    if (read_ok_or_reply(ex, status) < 0) return;
    http_add_headerf(ex, "x-total-count", "%lld", (long long)page->total);
    char *body = http_alloc(ex, page_body_size(page->views, page->count));
    size_t used = page_write_body(page->views, page->count, body);
    char cursor[CURSOR_LEN + 1];
    if (page->more && cursor_encode(page->last_id, cursor) == 0)
        http_add_headerf(ex, "link", "</catalog?limit=%d&cursor=%s%s>; rel=\"next\"",
                         request->limit, cursor, request->in_stock ? "&in_stock=true" : "");
    http_respond_allocated(ex, 200, JSON, body, used);
}

/* Parameter "name" of a catalog request: 1 with its value, 0 when absent, or -1 after
 * answering 400 when it is given more than once or its value cannot be read. Which copy
 * counts would be a guess: a cache or proxy in front that reads the last one would not serve
 * what this server reads. */
static int catalog_param(struct http_exchange *ex, const char *name, struct query_value *value)
{
    int found = query_find_param(ex->query.p, ex->query.len, name, value);
    if (found == 0 || (found == 1 && !value->fault)) return found;
    const char *why = found > 1                           ? "is given more than once"
                      : value->fault == PERCENT_MALFORMED ? "is not validly percent-encoded"
                                                          : "is longer than any value it takes";
    char detail[64];
    snprintf(detail, sizeof(detail), "%s %s", name, why);
    http_respond_problem(ex, 400, "invalid-query", detail, NULL);
    return -1;
}

void query_catalog(struct http_exchange *ex)
{
    struct catalog_request *request = http_alloc(ex, sizeof(*request));
    request->ex = ex;
    request->limit = CATALOG_DEFAULT_LIMIT;
    request->in_stock = 0;
    char after[UUID_TEXT_LEN + 1] = "";
    struct query_value value;
    int found = catalog_param(ex, "limit", &value);
    if (found < 0) return;
    if (found && query_parse_limit(value.text, value.len, CATALOG_MAX_LIMIT, &request->limit) < 0) {
        http_respond_problem(ex, 400, "invalid-query", "limit must be an integer from 1 to 1000",
                             NULL);
        return;
    }
    if ((found = catalog_param(ex, "cursor", &value)) < 0) return;
    if (found && cursor_decode(value.text, value.len, after) < 0) {
        http_respond_problem(ex, 400, "invalid-query",
                             "cursor is not one this server handed out (use the Link header)",
                             NULL);
        return;
    }
    if ((found = catalog_param(ex, "in_stock", &value)) < 0) return;
    if (found) {
        if (strcmp(value.text, "true") == 0)
            request->in_stock = 1;
        else if (strcmp(value.text, "false") != 0) {
            http_respond_problem(ex, 400, "invalid-query", "in_stock must be true or false", NULL);
            return;
        }
    }
    hold(ex, read_model_catalog_page(ex->thread->read_model, request->in_stock, after,
                                     request->limit, on_catalog_page, request));
}
