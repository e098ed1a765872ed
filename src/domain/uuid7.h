/* uuid7.h - UUIDv7 ids (RFC 9562): 48-bit Unix milliseconds, version 7, a 12-bit sequence,
 * variant 10, 62 random bits. Invariant: ids made by one generator are strictly increasing,
 * in binary and in their lowercase canonical text form, even within one millisecond or when
 * the clock steps back. */
#ifndef CATALOGD_UUID7_H
#define CATALOGD_UUID7_H

#include <stddef.h>
#include <stdint.h>

#define UUID_TEXT_LEN 36 /* 8-4-4-4-12 lowercase hex, without NUL */

struct uuid7_generator {
    uint64_t last_ms;  /* timestamp of the last id */
    uint16_t sequence; /* 12-bit counter within last_ms */
};

/* Makes the next id for "now_ms" into "out" (UUID_TEXT_LEN chars plus NUL). "random" supplies
 * 8 random bytes (the caller reads them from getrandom(); tests pass fixed bytes). If the
 * sequence overflows within one millisecond or the clock went back, the id borrows the next
 * millisecond so order still holds. */
void uuid7_next(struct uuid7_generator *gen, uint64_t now_ms, const uint8_t random[8],
                char out[UUID_TEXT_LEN + 1]);

/* Returns 0 when "text" ("len" bytes) is a UUID in lowercase canonical form (any version),
 * -1 otherwise. Queries use it to answer 404 without asking Redis about garbage. */
int uuid_check_canonical(const char *text, size_t len);

/* Converts between canonical text and 16 bytes. uuid_from_text returns 0, or -1 if "text" is
 * not canonical. uuid_to_text writes UUID_TEXT_LEN chars plus NUL. */
int uuid_from_text(const char *text, size_t len, uint8_t bytes[16]);
void uuid_to_text(const uint8_t bytes[16], char out[UUID_TEXT_LEN + 1]);

/* The Unix milliseconds stored in a UUIDv7's first 48 bits. */
uint64_t uuid7_timestamp_ms(const uint8_t bytes[16]);

#endif
