/* xmalloc.h - long-lived allocations: out of memory is not a condition catalogd can serve
 * through, so these abort instead of returning NULL. Request memory comes from the request's
 * pool instead. */
#ifndef CATALOGD_XMALLOC_H
#define CATALOGD_XMALLOC_H

#include <stdio.h>
#include <stdlib.h>

static inline void *xmalloc_fail(void)
{
    fputs("catalogd: out of memory\n", stderr);
    abort();
}

static inline void *xmalloc(size_t size)
{
    void *p = malloc(size);
    return p ? p : xmalloc_fail();
}

static inline void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count, size);
    return p ? p : xmalloc_fail();
}

static inline void *xrealloc(void *old, size_t size)
{
    void *p = realloc(old, size);
    return p ? p : xmalloc_fail();
}

#endif
