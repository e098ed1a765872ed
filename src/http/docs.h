/* docs.h - GET /docs: the interactive API page (Swagger UI) and the assets it loads, all
 * linked into the binary by the Makefile (docs/NOTICE names them, their version and licence). */
#ifndef CATALOGD_DOCS_H
#define CATALOGD_DOCS_H

#include "http/exchange.h"

void docs_page(struct http_exchange *ex);  /* GET /docs: the HTML, revalidated by ETag */
void docs_asset(struct http_exchange *ex); /* GET /docs/{tag}/{file}: immutable, or 404 */

#endif
