/* fuzz_check.h - what the fuzz targets share: CHECK, an invariant that aborts (so libFuzzer
 * keeps the input as a crash), and a copy of the input that is NUL-terminated for the few
 * functions that need a C string. Invariant: a target never returns normally from a state
 * that breaks a documented property of the code under test. */
#ifndef CATALOGD_FUZZ_CHECK_H
#define CATALOGD_FUZZ_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Unlike assert(), never compiled out: these are the targets' whole point. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A malloc'd copy of "data" ("size" bytes) with a NUL after it; the caller frees it. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (copy == NULL) abort();
    if (size) memcpy(copy, data, size);
    copy[size] = '\0';
    return copy;
}

/* FNV-1a over the input: a deterministic source of "random" ids, clocks and versions, so a
 * crash reproduces from its input file alone. */
static inline uint64_t fuzz_hash(const uint8_t *data, size_t size)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ull;
    return h;
}

#endif
