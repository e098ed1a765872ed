/* timestamp.h - RFC 3339 UTC timestamps with milliseconds, both ways: "2026-11-28T12:00:00.000Z".
 */
#ifndef CATALOGD_TIMESTAMP_H
#define CATALOGD_TIMESTAMP_H

#include <stddef.h>
#include <stdint.h>

#define TIMESTAMP_LEN 24 /* without NUL */

/* Formats Unix milliseconds "unix_ms" into "out" (TIMESTAMP_LEN chars plus NUL). */
void timestamp_format(uint64_t unix_ms, char out[TIMESTAMP_LEN + 1]);

/* Parses exactly that form ("len" bytes) back into Unix milliseconds. Returns 0, or -1 when
 * the text is not one (wrong length or shape, a field out of range, before 1970). */
int timestamp_parse(const char *text, size_t len, uint64_t *unix_ms);

#endif
