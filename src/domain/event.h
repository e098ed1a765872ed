/* event.h - the event types of the log. Events are state-carrying: the payload of every
 * event is the product's view after the change (for ProductDeleted, the view before it), so
 * the read model can be built from events alone. */
#ifndef CATALOGD_EVENT_H
#define CATALOGD_EVENT_H

#include <string.h>

enum event_type {
    EVENT_PRODUCT_CREATED,
    EVENT_PRODUCT_UPDATED,
    EVENT_STOCK_ADJUSTED,
    EVENT_PRODUCT_DELETED,
    EVENT_TYPE_COUNT,
};

static const char *const EVENT_TYPE_NAMES[EVENT_TYPE_COUNT] = {
    [EVENT_PRODUCT_CREATED] = "ProductCreated",
    [EVENT_PRODUCT_UPDATED] = "ProductUpdated",
    [EVENT_STOCK_ADJUSTED] = "StockAdjusted",
    [EVENT_PRODUCT_DELETED] = "ProductDeleted",
};

/* Every event the writer records carries a nonce: 16 random hex digits that tell it from any
 * other event the log holds, or held, at its seq. A write model restored from a backup hands
 * its seqs out again, and the events that take them may name the same product, version and
 * time as the lost ones (clocks set back or frozen, hosts' clocks apart): only the nonce then
 * tells the read model that the event it applied there is not the log's. Rows written before
 * events had one hold "". */
#define EVENT_NONCE_BYTES 8
#define EVENT_NONCE_LEN   (2 * EVENT_NONCE_BYTES)

/* Returns the enum event_type named "name", or -1. */
static inline int event_type_from_name(const char *name)
{
    for (int i = 0; i < EVENT_TYPE_COUNT; i++)
        if (strcmp(EVENT_TYPE_NAMES[i], name) == 0) return i;
    return -1;
}

#endif
