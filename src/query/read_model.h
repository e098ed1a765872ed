/* read_model.h - the queries' view of the Redis read model on one loop thread: which
 * generation to read (refreshed every few hundred milliseconds and on every reconnect) and
 * the three reads queries need, each one round trip. Never touches SQLite. */
#ifndef CATALOGD_READ_MODEL_H
#define CATALOGD_READ_MODEL_H

#include <h2o.h>

#include "app.h"
#include "common/slice.h"
#include "query/redis_client.h"

struct read_model;

struct read_model *read_model_new(h2o_loop_t *loop, const struct app_config *config);

/* 1 when Redis is connected and the current generation is known. */
int read_model_ready(const struct read_model *rm);

/* The view of product "id": a string reply, or nil. */
struct redis_call *read_model_get_view(struct read_model *rm, struct slice id, redis_reply_fn fn,
                                       void *arg);

/* The view of the product that owns "sku": a string reply, or nil. */
struct redis_call *read_model_get_by_sku(struct read_model *rm, struct slice sku, redis_reply_fn fn,
                                         void *arg);

/* A catalog page, step 1: up to "limit" + 1 ids after id "after" ("" for the first page),
 * from all products or only those in stock, and the size of that set. The reply is EXEC's:
 * [[id...], total]. */
struct redis_call *read_model_catalog_ids(struct read_model *rm, int in_stock, const char *after,
                                          int limit, redis_reply_fn fn, void *arg);

/* Step 2: the views of "count" ids (string replies from step 1), in order; the reply is an
 * array of views or nils (a product deleted in between). NULL when not connected or when an
 * id is not one. */
struct redis_call *read_model_get_views(struct read_model *rm, const redisReply *const *ids,
                                        size_t count, redis_reply_fn fn, void *arg);

/* An empty answer (no such view, an empty catalog) is only true if the generation it was read
 * from is still the current one: after FLUSHALL this loop may read a generation that no
 * longer exists for up to the refresh interval. read_model_fetch_generation asks Redis;
 * read_model_generation_confirmed takes its reply, updates the cached generation, and returns
 * 1 when the answer read before still stands, 0 when the read model changed under it. */
struct redis_call *read_model_fetch_generation(struct read_model *rm, redis_reply_fn fn, void *arg);
int read_model_generation_confirmed(struct read_model *rm, const redisReply *reply);

struct redis_client *read_model_client(struct read_model *rm);

#endif
