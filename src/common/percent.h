/* percent.h - RFC 3986 percent-decoding, for the two places catalogd reads it: the Redis URL's
 * user and password, and the catalog's query string. */
#ifndef CATALOGD_PERCENT_H
#define CATALOGD_PERCENT_H

#include <stddef.h>

/* Decodes "len" bytes of "text" into "out" ("cap" bytes, NUL-terminated). Returns the decoded
 * length, or -1 for a bad escape ('%' not followed by two hex digits), an encoded NUL or a
 * result that does not fit. A '+' stays a '+' (a space only in HTML forms' encoding). */
int percent_decode(const char *text, size_t len, char *out, size_t cap);

#endif
