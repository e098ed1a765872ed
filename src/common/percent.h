/* percent.h - RFC 3986 percent-decoding, for the two places catalogd reads it: the Redis URL's
 * user and password, and the catalog's query string. */
#ifndef CATALOGD_PERCENT_H
#define CATALOGD_PERCENT_H

#include <stddef.h>

#define PERCENT_MALFORMED (-1) /* '%' not followed by two hex digits, or an encoded NUL */
#define PERCENT_TOO_LONG  (-2) /* the result does not fit */

/* Decodes "len" bytes of "text" into "out" ("cap" bytes, NUL-terminated). Returns the decoded
 * length, or PERCENT_MALFORMED or PERCENT_TOO_LONG, whichever the text meets first. A '+' stays
 * a '+' (a space only in HTML forms' encoding). */
int percent_decode(const char *text, size_t len, char *out, size_t cap);

#endif
