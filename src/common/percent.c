/* percent.c - see percent.h. */
#include "common/percent.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int percent_decode(const char *text, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)text[i];
        if (c == '%') {
            if (i + 2 >= len) return PERCENT_MALFORMED;
            int high = hex_value(text[i + 1]), low = hex_value(text[i + 2]);
            if (high < 0 || low < 0) return PERCENT_MALFORMED;
            c = high * 16 + low;
            i += 2;
        }
        if (c == 0) return PERCENT_MALFORMED;
        if (n + 1 >= cap) return PERCENT_TOO_LONG;
        out[n++] = (char)c;
    }
    if (cap == 0) return PERCENT_TOO_LONG;
    out[n] = '\0';
    return (int)n;
}
