/* cursor.c - the catalog cursor: a product id's 16 bytes in unpadded base64url (RFC 4648 §5).
 * Invariant: cursor_decode accepts exactly the strings cursor_encode produces (22 characters
 * of the URL-safe alphabet whose last 4 padding bits are zero), so each id has one cursor. */
#include "cursor.h"

#include <stdint.h>

static const char base64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of a base64url character, or -1. */
static int base64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

int cursor_encode(const char *id, char out[CURSOR_LEN + 1])
{
    uint8_t bytes[16];
    uint32_t bits = 0;
    int bit_count = 0;
    size_t pos = 0;

    if (id == NULL || uuid_from_text(id, UUID_TEXT_LEN, bytes) < 0) return -1;
    for (size_t i = 0; i < sizeof bytes; i++) {
        bits = bits << 8 | bytes[i];
        bit_count += 8;
        while (bit_count >= 6) {
            bit_count -= 6;
            out[pos++] = base64url_alphabet[(bits >> bit_count) & 0x3F];
        }
    }
    /* 128 bits leave 2; pad them with 4 zero bits into a last character. */
    out[pos++] = base64url_alphabet[(bits << (6 - bit_count)) & 0x3F];
    out[pos] = '\0';
    return 0;
}

int cursor_decode(const char *text, size_t len, char id_out[UUID_TEXT_LEN + 1])
{
    uint8_t bytes[16];
    uint32_t bits = 0;
    int bit_count = 0;
    size_t byte = 0;

    if (text == NULL || len != CURSOR_LEN) return -1;
    for (size_t i = 0; i < CURSOR_LEN; i++) {
        int value = base64url_value((unsigned char)text[i]);
        if (value < 0) return -1;
        bits = bits << 6 | (uint32_t)value;
        bit_count += 6;
        if (bit_count >= 8) {
            bit_count -= 8;
            bytes[byte++] = (uint8_t)(bits >> bit_count);
        }
    }
    /* 132 bits read, 128 used: the 4 left over must be zero, or two texts would map to one id. */
    if ((bits & ((1u << bit_count) - 1)) != 0) return -1;
    uuid_to_text(bytes, id_out);
    return 0;
}
