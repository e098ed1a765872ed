/* handlers.c - GET /products/{id}, GET /products/by-sku/{sku}, GET /catalog.
 * Each handler validates its input, issues one Redis call and answers from the reply; the
 * views are sent as stored, byte for byte. */
#include "query/handlers.h"

#include <string.h>

#include "app.h"
#include "common/digits.h"
#include "domain/cursor.h"
#include "domain/uuid7.h"
#include "domain/view.h"
#include "query/page.h"
#include "query/params.h"
#include "query/read_model.h"

#define CATALOG_DEFAULT_LIMIT 100
#define CATALOG_MAX_LIMIT     1000

static const char JSON[] = "application/json";

static void forget_call(void *arg)
{
    redis_call_cancel(arg);
}

/* Issues the call made by "issue", or answers 503 when Redis is not available. The exchange
 * remembers the call so that a client that goes away cancels it. */
static void hold_call(struct http_exchange *ex, struct redis_call *call)
{
    if (!call) {
        http_respond_unavailable(ex, "read-model-unavailable",
                                 "the read model (Redis) is not reachable; retry shortly");
        return;
    }
    ex->on_gone = forget_call;
    ex->on_gone_arg = call;
}

static void answer_unready(struct http_exchange *ex)
{
    http_respond_unavailable(ex, "read-model-unavailable",
                             "the read model (Redis) is not reachable or is being rebuilt");
}

static void answer_rebuilding(struct http_exchange *ex)
{
    http_respond_unavailable(ex, "read-model-unavailable",
                             "the read model is being rebuilt; retry shortly");
}

static void answer_bad_read_model(struct http_exchange *ex)
{
    http_respond_unavailable(ex, "read-model-unavailable",
                             "the read model gave an unexpected answer");
}

/* Called first by every reply callback: the exchange is ours again. Returns 1 with a reply;
 * without one (Redis failed or did not answer in time) it answers 503 and returns 0. */
static int got_reply(struct http_exchange *ex, const redisReply *reply)
{
    ex->on_gone = NULL;
    ex->on_gone_arg = NULL;
    if (reply) return 1;
    http_respond_unavailable(ex, "read-model-unavailable",
                             "the read model (Redis) did not answer in time");
    return 0;
}

struct generation_wait {
    struct http_exchange *ex;
    void (*retry)(struct http_exchange *ex);
};

static void on_generation_known(const redisReply *reply, void *arg)
{
    struct generation_wait *wait = arg;
    if (!got_reply(wait->ex, reply)) return;
    read_model_generation_confirmed(wait->ex->thread->read_model, reply);
    if (read_model_ready(wait->ex->thread->read_model))
        wait->retry(wait->ex);
    else
        answer_unready(wait->ex);
}

/* Returns 0 when the query can go ahead. Otherwise it answers 503, or, when Redis is
 * connected but this loop does not know the generation yet (a new loop, or one that has not
 * refreshed since a rebuild), asks Redis for it and runs "retry" again once it is known. */
static int read_model_unready(struct http_exchange *ex, void (*retry)(struct http_exchange *ex))
{
    struct read_model *rm = ex->thread->read_model;
    if (read_model_ready(rm)) return 0;
    if (!redis_client_connected(read_model_client(rm))) {
        answer_unready(ex);
        return 1;
    }
    struct generation_wait *wait = http_alloc(ex, sizeof(*wait));
    wait->ex = ex;
    wait->retry = retry;
    hold_call(ex, read_model_fetch_generation(rm, on_generation_known, wait));
    return 1;
}

/* After a nil view: 404 if the generation read is still current, else 503 (rebuilding). */
static void confirm_not_found(struct http_exchange *ex, const redisReply *reply, const char *what)
{
    if (!got_reply(ex, reply)) return;
    if (read_model_generation_confirmed(ex->thread->read_model, reply))
        http_respond_problem(ex, 404, "not-found", what, NULL);
    else
        answer_rebuilding(ex);
}

static void on_product_not_found(const redisReply *reply, void *arg)
{
    confirm_not_found(arg, reply, "no product has this id");
}

static void on_sku_not_found(const redisReply *reply, void *arg)
{
    confirm_not_found(arg, reply, "no product has this sku");
}

static void answer_view(struct http_exchange *ex, const redisReply *reply, redis_reply_fn not_found)
{
    if (!got_reply(ex, reply)) return;
    if (reply->type == REDIS_REPLY_NIL) {
        hold_call(ex, read_model_fetch_generation(ex->thread->read_model, not_found, ex));
        return;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        answer_bad_read_model(ex);
        return;
    }
    char etag[DIGITS_U64_MAX + 3];
    int64_t version = view_version(reply->str, reply->len);
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
    http_respond(ex, 200, JSON, reply->str, reply->len);
}

static void on_product(const redisReply *reply, void *arg)
{
    answer_view(arg, reply, on_product_not_found);
}

void query_get_product(struct http_exchange *ex)
{
    struct slice id = ex->params[0];
    if (uuid_check_canonical(id.p, id.len) < 0) {
        http_respond_problem(ex, 404, "not-found", "no product has this id", NULL);
        return;
    }
    if (read_model_unready(ex, query_get_product)) return;
    hold_call(ex, read_model_get_view(ex->thread->read_model, id, on_product, ex));
}

static void on_product_by_sku(const redisReply *reply, void *arg)
{
    answer_view(arg, reply, on_sku_not_found);
}

void query_get_product_by_sku(struct http_exchange *ex)
{
    if (!query_sku_plausible(ex->params[0].p, ex->params[0].len)) {
        http_respond_problem(ex, 404, "not-found", "no product has this sku", NULL);
        return;
    }
    if (read_model_unready(ex, query_get_product_by_sku)) return;
    hold_call(ex,
              read_model_get_by_sku(ex->thread->read_model, ex->params[0], on_product_by_sku, ex));
}

struct catalog_request {
    struct http_exchange *ex;
    int limit;
    int in_stock;
    long long total;
    int more;                        /* another page follows */
    char last_id[UUID_TEXT_LEN + 1]; /* of this page, for the next page's cursor */
};

static void on_empty_catalog_confirmed(const redisReply *reply, void *arg)
{
    struct http_exchange *ex = arg;
    if (!got_reply(ex, reply)) return;
    if (read_model_generation_confirmed(ex->thread->read_model, reply)) {
        http_add_header(ex, "x-total-count", "0", 1);
        http_respond(ex, 200, JSON, "[]", 2);
    } else {
        answer_rebuilding(ex);
    }
}

/* Step 2: the views, sent as stored; a product deleted since step 1 is left out. */
static void on_catalog_views(const redisReply *reply, void *arg)
{
    struct catalog_request *request = arg;
    struct http_exchange *ex = request->ex;
    if (!got_reply(ex, reply)) return;
    size_t size = page_body_size(reply);
    if (size == 0) {
        answer_bad_read_model(ex);
        return;
    }
    char *body = http_alloc(ex, size);
    size_t used = page_write_body(reply, body);
    http_add_headerf(ex, "x-total-count", "%lld", request->total);
    char cursor[CURSOR_LEN + 1];
    if (request->more && cursor_encode(request->last_id, cursor) == 0)
        http_add_headerf(ex, "link", "</catalog?limit=%d&cursor=%s%s>; rel=\"next\"",
                         request->limit, cursor, request->in_stock ? "&in_stock=true" : "");
    http_respond_allocated(ex, 200, JSON, body, used);
}

/* Step 1: EXEC's [[id...], total]. */
static void on_catalog_ids(const redisReply *reply, void *arg)
{
    struct catalog_request *request = arg;
    struct http_exchange *ex = request->ex;
    if (!got_reply(ex, reply)) return;
    const redisReply *ids;
    if (page_read_ids(reply, &ids, &request->total) < 0) {
        answer_bad_read_model(ex);
        return;
    }
    if (request->total == 0) { /* an empty catalog, or a flushed read model? */
        hold_call(ex, read_model_fetch_generation(ex->thread->read_model,
                                                  on_empty_catalog_confirmed, ex));
        return;
    }
    size_t count = ids->elements;
    request->more = count > (size_t)request->limit;
    if (request->more) count = (size_t)request->limit;
    if (count == 0) { /* a cursor past the end */
        http_add_headerf(ex, "x-total-count", "%lld", request->total);
        http_respond(ex, 200, JSON, "[]", 2);
        return;
    }
    const redisReply *last = ids->element[count - 1];
    if (last->type != REDIS_REPLY_STRING || uuid_check_canonical(last->str, last->len) < 0) {
        answer_bad_read_model(ex);
        return;
    }
    memcpy(request->last_id, last->str, UUID_TEXT_LEN);
    request->last_id[UUID_TEXT_LEN] = '\0';
    struct redis_call *call =
        read_model_get_views(ex->thread->read_model, (const redisReply *const *)ids->element, count,
                             on_catalog_views, request);
    if (!call && redis_client_connected(read_model_client(ex->thread->read_model))) {
        answer_bad_read_model(ex); /* an id that is not one */
        return;
    }
    hold_call(ex, call);
}

void query_catalog(struct http_exchange *ex)
{
    struct catalog_request *request = http_alloc(ex, sizeof(*request));
    request->ex = ex;
    request->limit = CATALOG_DEFAULT_LIMIT;
    request->in_stock = 0;
    char after[UUID_TEXT_LEN + 1] = "";
    struct slice value;
    if (http_query_param(ex, "limit", &value) &&
        query_parse_limit(value.p, value.len, CATALOG_MAX_LIMIT, &request->limit) < 0) {
        http_respond_problem(ex, 400, "invalid-query", "limit must be an integer from 1 to 1000",
                             NULL);
        return;
    }
    if (http_query_param(ex, "cursor", &value) && cursor_decode(value.p, value.len, after) < 0) {
        http_respond_problem(ex, 400, "invalid-query",
                             "cursor is not one this server handed out (use the Link header)",
                             NULL);
        return;
    }
    if (http_query_param(ex, "in_stock", &value)) {
        if (slice_eq(value, "true"))
            request->in_stock = 1;
        else if (!slice_eq(value, "false")) {
            http_respond_problem(ex, 400, "invalid-query", "in_stock must be true or false", NULL);
            return;
        }
    }
    if (read_model_unready(ex, query_catalog)) return;
    hold_call(ex, read_model_catalog_ids(ex->thread->read_model, request->in_stock, after,
                                         request->limit, on_catalog_ids, request));
}
