/* ops.h - operations routes: /health, /ready and the admin routes. */
#ifndef CATALOGD_OPS_H
#define CATALOGD_OPS_H

#include "http/exchange.h"

void ops_health(struct http_exchange *ex);
void ops_openapi(struct http_exchange *ex); /* GET /openapi.json: the document in the repo */
void ops_ready(struct http_exchange *ex);
void ops_admin_projection(struct http_exchange *ex); /* GET /admin/projection */
void ops_admin_rebuild(struct http_exchange *ex);    /* POST /admin/rebuild */

#endif
