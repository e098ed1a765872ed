/* digits.h - numbers written as text without printf, for the per-request paths (a request
 * formats a few: the RESP length lines, the ETag, the request id, a view's numbers), where
 * printf's parsing of its format string was a visible share of the CPU. Each returns the length
 * written; none writes a terminating NUL. And the one way back, digits_parse. */
#ifndef CATALOGD_DIGITS_H
#define CATALOGD_DIGITS_H

#include <stddef.h>
#include <stdint.h>

#define DIGITS_U64_MAX 20 /* decimal digits of UINT64_MAX */

/* v in decimal. */
static inline size_t digits_u64(char *out, uint64_t v)
{
    char tmp[DIGITS_U64_MAX];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* v in decimal, with a '-' when negative. */
static inline size_t digits_i64(char *out, int64_t v)
{
    if (v >= 0) return digits_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + digits_u64(out + 1, 0 - (uint64_t)v); /* INT64_MIN too */
}

/* v in exactly `width` lower-case hex digits (the high ones dropped if v is wider). */
static inline size_t digits_hex(char *out, uint64_t v, size_t width)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = width; i > 0; i--) {
        out[i - 1] = hex[v & 0xf];
        v >>= 4;
    }
    return width;
}

/* Reads a number as catalogd writes one into Redis (a seq, a generation): decimal digits with
 * no leading zero ("0" itself aside), at most INT64_MAX, in [min, max]. Any other spelling is
 * refused, so that no two texts name one number: scripts compare such numbers as text, and
 * build keys from them. Returns 0 and "*out", or -1. */
static inline int digits_parse_canonical(const char *text, size_t len, int64_t min, int64_t max,
                                         int64_t *out)
{
    if (len == 0 || len > 19 || (text[0] == '0' && len > 1)) return -1;
    int64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') return -1;
        int digit = text[i] - '0';
        if (value > (INT64_MAX - digit) / 10) return -1;
        value = value * 10 + digit;
    }
    if (value < min || value > max) return -1;
    *out = value;
    return 0;
}

/* Reads "len" bytes of decimal digits (no sign, no spaces, at most 18) as a number in
 * [min, max]. Returns 0 and "*out", or -1. */
static inline int digits_parse(const char *text, size_t len, int64_t min, int64_t max, int64_t *out)
{
    if (len == 0 || len > 18) return -1;
    int64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') return -1;
        value = value * 10 + (text[i] - '0');
    }
    if (value < min || value > max) return -1;
    *out = value;
    return 0;
}

#endif
