/* apply.h - applies a batch of events to one generation of the read model in one atomic
 * Redis step (a Lua script): the views, their index entries and the checkpoint change
 * together or not at all. Idempotent: an event at or below the checkpoint, or older than the
 * stored view's version, changes nothing. */
#ifndef CATALOGD_APPLY_H
#define CATALOGD_APPLY_H

#include <hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "command/store.h"
#include "domain/product.h"

struct apply_event {
    int64_t seq;
    int deleted; /* a ProductDeleted: remove instead of upsert */
    char id[UUID_TEXT_LEN + 1];
    char sku[PRODUCT_SKU_MAX + 1];
    int in_stock;
    int64_t version;
    char *view; /* owned, the event's payload */
    size_t view_len;
};

enum apply_status {
    APPLY_OK = 0,
    APPLY_REDIS_DOWN = -1,         /* no reply: reconnect and retry */
    APPLY_GENERATION_CHANGED = -2, /* a rebuild switched generations: reload and retry */
    APPLY_NO_CHECKPOINT = -3,      /* the generation lost its data: rebuild */
    APPLY_REJECTED = -4,           /* Redis answered an error (OOM...): retry later */
};

/* Fills "out" from an event of the log; the payload is the view. Returns 0, or -1 when the
 * payload is not a view (a corrupt log entry). Free with apply_event_clear. */
int apply_event_from_store(const struct store_event *event, struct apply_event *out);
void apply_event_clear(struct apply_event *event);

/* Fills "out" from a product's state just committed, with a copy of its "view". */
void apply_event_from_product(int64_t seq, int deleted, const struct product *product,
                              const char *view, size_t view_len, struct apply_event *out);

/* Applies "events" (in seq order) to generation "gen" under "prefix". With
 * "require_current", the step is refused (APPLY_GENERATION_CHANGED) unless "gen" is the one
 * queries read. On APPLY_OK "*checkpoint" is the generation's checkpoint afterwards. */
int apply_events(redisContext *redis, const char *prefix, int64_t gen, int require_current,
                 const struct apply_event *events, size_t count, int64_t *checkpoint, char *err,
                 size_t errlen);

/* Parks "event", which Redis refused on its own (so the cause is this product's keys, not
 * Redis as a whole): the checkpoint moves over it and it waits under its product, and that
 * product's later events are parked behind it by apply_events, in order. The other products
 * go on. On APPLY_OK "*checkpoint" is the new checkpoint. */
int apply_park(redisContext *redis, const char *prefix, int64_t gen,
               const struct apply_event *event, int64_t *checkpoint, char *err, size_t errlen);

/* Applies a parked event, which must be the oldest parked for its product. On APPLY_OK
 * "*still_parked" is how many of that product's events remain parked. */
int apply_unpark(redisContext *redis, const char *prefix, int64_t gen,
                 const struct apply_event *event, int64_t *still_parked, char *err, size_t errlen);

/* Visits the parked events of generation "gen", product by product, oldest first; "fn" (may
 * be NULL) returns non-zero to skip the rest of that product. Sets "*parked_events". */
int apply_list_parked(redisContext *redis, const char *prefix, int64_t gen,
                      int (*fn)(const char *product_id, int64_t seq, void *arg), void *arg,
                      int64_t *parked_events, char *err, size_t errlen);

#endif
