/* slice.h - bytes from the network: a pointer and a length, never NUL-terminated, never
 * strlen'd. */
#ifndef CATALOGD_SLICE_H
#define CATALOGD_SLICE_H

#include <stddef.h>
#include <string.h>
#include <strings.h>

struct slice {
    const char *p;
    size_t len;
};

#define SLICE_LIT(s) ((struct slice){(s), sizeof(s) - 1})

static inline int slice_eq(struct slice a, const char *text)
{
    size_t n = strlen(text);
    return a.len == n && memcmp(a.p, text, n) == 0;
}

static inline int slice_eq_nocase(struct slice a, const char *text)
{
    size_t n = strlen(text);
    return a.len == n && strncasecmp(a.p, text, n) == 0;
}

#endif
