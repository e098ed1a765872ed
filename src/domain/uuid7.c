/* uuid7.c - UUIDv7 generation (RFC 9562, method 1: a 12-bit counter in rand_a) and canonical
 * text conversion.
 * Invariant: a generator never goes back: each id it makes has a larger (timestamp, sequence)
 * pair than the one before, so ids increase in binary and in lowercase text, whatever the
 * clock does. */
#include "uuid7.h"

#define UUID7_SEQUENCE_MAX   0x0FFFu
#define UUID7_TIMESTAMP_MASK 0xFFFFFFFFFFFFull /* 48 bits */

static const char hex_digits[] = "0123456789abcdef";

/* Value of a lowercase hex digit, or -1. Uppercase is refused: the canonical form is lowercase
 * so that one id has one text (and one Redis key). */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Dashes sit at these text offsets in the 8-4-4-4-12 form. */
static int is_dash_offset(size_t i)
{
    return i == 8 || i == 13 || i == 18 || i == 23;
}

void uuid7_next(struct uuid7_generator *gen, uint64_t now_ms, const uint8_t random[8],
                char out[UUID_TEXT_LEN + 1])
{
    uint8_t bytes[16];

    now_ms &= UUID7_TIMESTAMP_MASK;
    if (now_ms > gen->last_ms) {
        gen->last_ms = now_ms;
        gen->sequence = 0;
    } else {
        /* Same millisecond, or the clock went back: stay on last_ms and count on. When the
         * counter is spent, borrow the next millisecond; the clock catches up later. */
        if (gen->sequence >= UUID7_SEQUENCE_MAX) {
            gen->last_ms = (gen->last_ms + 1) & UUID7_TIMESTAMP_MASK;
            gen->sequence = 0;
        } else {
            gen->sequence++;
        }
    }

    for (int i = 0; i < 6; i++)
        bytes[i] = (uint8_t)(gen->last_ms >> (40 - 8 * i));
    bytes[6] = (uint8_t)(0x70 | ((gen->sequence >> 8) & 0x0F)); /* version 7 */
    bytes[7] = (uint8_t)(gen->sequence & 0xFF);
    bytes[8] = (uint8_t)(0x80 | (random[0] & 0x3F)); /* variant 10 */
    for (int i = 1; i < 8; i++)
        bytes[8 + i] = random[i];
    uuid_to_text(bytes, out);
}

int uuid_check_canonical(const char *text, size_t len)
{
    uint8_t bytes[16];

    return uuid_from_text(text, len, bytes);
}

int uuid_from_text(const char *text, size_t len, uint8_t bytes[16])
{
    size_t pos = 0;

    if (text == NULL || len != UUID_TEXT_LEN) return -1;
    for (size_t byte = 0; byte < 16; byte++) {
        if (is_dash_offset(pos) && text[pos++] != '-') return -1;
        int high = hex_value(text[pos]), low = hex_value(text[pos + 1]);
        if (high < 0 || low < 0) return -1;
        bytes[byte] = (uint8_t)(high << 4 | low);
        pos += 2;
    }
    return 0;
}

void uuid_to_text(const uint8_t bytes[16], char out[UUID_TEXT_LEN + 1])
{
    size_t pos = 0;

    for (size_t byte = 0; byte < 16; byte++) {
        if (is_dash_offset(pos)) out[pos++] = '-';
        out[pos++] = hex_digits[bytes[byte] >> 4];
        out[pos++] = hex_digits[bytes[byte] & 0x0F];
    }
    out[pos] = '\0';
}

uint64_t uuid7_timestamp_ms(const uint8_t bytes[16])
{
    uint64_t ms = 0;

    for (int i = 0; i < 6; i++)
        ms = ms << 8 | bytes[i];
    return ms;
}
