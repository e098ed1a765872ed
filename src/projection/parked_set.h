/* parked_set.h - which events the projector has parked (Redis refused them for their
 * product), kept in memory so that a command can tell "applied" from "parked" without asking
 * Redis. Written by the projector thread; parked_set_has_seq may be called from any thread.
 * Invariant: it mirrors the parked events of the current generation in Redis as of the
 * projector's last look, plus those it parked since. */
#ifndef CATALOGD_PARKED_SET_H
#define CATALOGD_PARKED_SET_H

#include <stddef.h>
#include <stdint.h>

struct parked_set;

struct parked_set *parked_set_new(void);
void parked_set_free(struct parked_set *set); /* accepts NULL */

/* Records that event "seq" of product "product_id" is parked. */
void parked_set_add(struct parked_set *set, const char *product_id, int64_t seq);

/* Forgets everything (before reloading it from Redis). */
void parked_set_clear(struct parked_set *set);

/* 1 when "product_id" has parked events: its later events are parked behind them. */
int parked_set_has_product(struct parked_set *set, const char *product_id);

/* 1 when event "seq" is parked. */
int parked_set_has_seq(struct parked_set *set, int64_t seq);

/* The number of products with parked events. */
size_t parked_set_products(struct parked_set *set);

#endif
