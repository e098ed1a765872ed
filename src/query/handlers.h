/* handlers.h - the query routes: they read Redis only, never SQLite. */
#ifndef CATALOGD_QUERY_HANDLERS_H
#define CATALOGD_QUERY_HANDLERS_H

#include "http/exchange.h"

void query_get_product(struct http_exchange *ex);
void query_get_product_by_sku(struct http_exchange *ex);
void query_catalog(struct http_exchange *ex);

#endif
