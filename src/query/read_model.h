/* read_model.h - the queries' reads of the Redis read model on one loop thread. Never touches
 * the write model.
 * Invariant: every read learns the generation queries must read in the same round trip as
 * its data (the pointer pipelined before the read, or inside it), and is made again when the
 * generation moved. A read therefore never comes from a generation that was already replaced
 * when it began, so after a rebuild's switch no query can miss a change that a command already
 * answered as applied. Nor from a Redis that went back since (READ_UNCONFIRMED: the same round
 * trip reads the confirmed run and the checkpoint). The generation this loop last saw is only a
 * guess that saves a retry. A view from the view cache (read_model_cached_view) is the exception:
 * it was read in the generation that Redis named to this loop within the last 50 ms, and the
 * projector forgets it before a command that replaced it can answer as applied. */
#ifndef CATALOGD_READ_MODEL_H
#define CATALOGD_READ_MODEL_H

#include <hiredis.h>
#include <stdint.h>

#include "common/redis_url.h"
#include "common/slice.h"
#include "domain/uuid7.h"
#include "query/page.h"

struct applied_floor;
struct read_model;
struct read;
struct redis_client;
struct view_cache;

enum read_status {
    READ_OK = 0,
    READ_UNAVAILABLE = -1, /* Redis failed or did not answer in time */
    READ_REBUILDING = -2,  /* there is no generation: the read model is being built */
    READ_BAD = -3,         /* Redis answered something the read model never holds */
    READ_UNCONFIRMED = -4, /* Redis is not known to hold every event applied: it restarted,
                            * or went back, and may show an older state */
};

/* Gets the outcome of a read: with READ_OK, the view (valid during the call only; "p" NULL
 * when there is none). */
typedef void (*read_fn)(int status, struct slice view, void *arg);

/* A catalog page: "count" views in id order (valid during the call only), the number of
 * products listed (in stock, or all), whether more follow, and the last id (for the next
 * cursor). */
struct catalog_page {
    const struct slice *views;
    size_t count;
    int64_t total;
    int more;
    char last_id[UUID_TEXT_LEN + 1];
};
typedef void (*page_fn)(int status, const struct catalog_page *page, void *arg);

/* "client" is the loop's Redis client; the read model uses it on the loop's thread only.
 * "cache" (NULL for none) holds views that the reads by id find, for read_model_cached_view;
 * several read models may share it, and "floor" (NULL for none, applied_floor.h). */
struct read_model *read_model_new(struct redis_client *client, const char *prefix,
                                  struct view_cache *cache, const struct applied_floor *floor);

/* Each read returns a handle for read_cancel, or NULL when Redis is not connected (then the
 * callback is never called). The callback is called exactly once otherwise. */

/* The view of product "id", or none. */
struct read *read_model_get_view(struct read_model *rm, struct slice id, read_fn fn, void *arg);

/* The view of product "id" from the cache, copied into memory from "alloc" ("*view"): its
 * length, or 0 when it must be read (read_model_get_view). The cache answers only while Redis
 * named the generation of the view within the last 50 ms, so that a query answers from it
 * only when it would have answered from Redis the same view (view_cache.h). */
size_t read_model_cached_view(struct read_model *rm, struct slice id,
                              char *(*alloc)(void *arg, size_t len), void *arg, char **view);

/* The view of the product that owns "sku", or none. */
struct read *read_model_get_by_sku(struct read_model *rm, struct slice sku, read_fn fn, void *arg);

/* Up to "limit" (at most CATALOG_PAGE_MAX) views after id "after" ("" for the first page), in
 * id order, of all products or only those in stock: one round trip, the views as stored. */
struct read *read_model_catalog_page(struct read_model *rm, int in_stock, const char *after,
                                     int limit, page_fn fn, void *arg);

/* The caller no longer wants the outcome (its request went away): the callback will not be
 * called. */
void read_cancel(struct read *read);

#endif
