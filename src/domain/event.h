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

/* Returns the enum event_type named "name", or -1. */
static inline int event_type_from_name(const char *name)
{
    for (int i = 0; i < EVENT_TYPE_COUNT; i++)
        if (strcmp(EVENT_TYPE_NAMES[i], name) == 0) return i;
    return -1;
}

#endif
