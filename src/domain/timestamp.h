/* timestamp.h - RFC 3339 UTC timestamps with milliseconds: "2026-11-28T12:00:00.000Z". */
#ifndef CATALOGD_TIMESTAMP_H
#define CATALOGD_TIMESTAMP_H

#include <stdint.h>

#define TIMESTAMP_LEN 24 /* without NUL */

/* Formats Unix milliseconds "unix_ms" into "out" (TIMESTAMP_LEN chars plus NUL). */
void timestamp_format(uint64_t unix_ms, char out[TIMESTAMP_LEN + 1]);

#endif
