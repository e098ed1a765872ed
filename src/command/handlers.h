/* handlers.h - the command routes: they validate, hand the command to the writer, and
 * answer once it is committed (and, for read-your-writes, projected). Never read Redis. */
#ifndef CATALOGD_COMMAND_HANDLERS_H
#define CATALOGD_COMMAND_HANDLERS_H

#include "http/exchange.h"

void command_create_product(struct http_exchange *ex); /* POST /products */
void command_update_product(struct http_exchange *ex); /* PATCH /products/{id} */
void command_delete_product(struct http_exchange *ex); /* DELETE /products/{id} */
void command_adjust_stock(struct http_exchange *ex);   /* POST /products/{id}/stock */

#endif
