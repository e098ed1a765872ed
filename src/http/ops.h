/* ops.h - operations routes: /health and /ready. */
#ifndef CATALOGD_OPS_H
#define CATALOGD_OPS_H

#include "http/exchange.h"

void ops_health(struct http_exchange *ex);
void ops_ready(struct http_exchange *ex);

#endif
