/* cursor.h - the opaque catalog cursor: the last product id of a page, as 22 base64url
 * characters (16 bytes, no padding). Decoding accepts exactly what encoding produces. */
#ifndef CATALOGD_CURSOR_H
#define CATALOGD_CURSOR_H

#include <stddef.h>

#include "uuid7.h"

#define CURSOR_LEN 22 /* without NUL */

/* Encodes the canonical id "id" (UUID_TEXT_LEN chars) into "out" (CURSOR_LEN chars plus NUL).
 * Returns 0, or -1 when "id" is not canonical. */
int cursor_encode(const char *id, char out[CURSOR_LEN + 1]);

/* Decodes "text" ("len" bytes, untrusted) into the canonical id "id_out" (UUID_TEXT_LEN chars
 * plus NUL). Returns 0, or -1 for anything that cursor_encode cannot have produced: wrong
 * length, characters outside base64url, non-zero padding bits. */
int cursor_decode(const char *text, size_t len, char id_out[UUID_TEXT_LEN + 1]);

#endif
