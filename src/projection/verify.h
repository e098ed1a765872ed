/* verify.h - compares the read model with the write model, product by product and index
 * entry by index entry, streaming both sides in id order (constant memory at any size). */
#ifndef CATALOGD_VERIFY_H
#define CATALOGD_VERIFY_H

#include <hiredis.h>
#include <stdint.h>
#include <stdio.h>

#include "command/store.h"

struct redis_sync; /* projection/redis_sync.h */

struct verify_report {
    int64_t products;    /* rows in the write model's snapshot */
    int64_t differences; /* lines printed to the report stream */
    int64_t generation;
    int64_t checkpoint;
    int64_t head;
};

/* Prints one line per difference to "out" ("missing view", "stale view", "extra view", index
 * entries...) and fills "report". Waits up to "settle_ms" for the projector to reach the
 * write model's head first. Returns 0 when the comparison ran (differences or not), -1 when
 * it could not run ("err" says why). */
int verify_run(struct store *store, struct redis_sync *redis, const char *prefix, int settle_ms,
               FILE *out, struct verify_report *report, char *err, size_t errlen);

#endif
