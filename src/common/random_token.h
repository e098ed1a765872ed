/* random_token.h - a random text that no other process, or other call, writes: the value of a
 * lock or a fence that must be told apart from every other holder's. */
#ifndef CATALOGD_RANDOM_TOKEN_H
#define CATALOGD_RANDOM_TOKEN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/random.h>

#include "common/clock.h"
#include "common/digits.h"

#define RANDOM_TOKEN_BYTES 16
#define RANDOM_TOKEN_LEN   (2 * RANDOM_TOKEN_BYTES) /* hex digits, without the NUL */

/* Writes RANDOM_TOKEN_LEN lower-case hex digits and a NUL. getrandom does not fail on Linux
 * once the pool is ready; if it did, the clock still tells calls apart. */
static inline void random_token(char out[RANDOM_TOKEN_LEN + 1])
{
    uint8_t random[RANDOM_TOKEN_BYTES];
    if (getrandom(random, sizeof(random), 0) != (ssize_t)sizeof(random))
        for (size_t i = 0; i < sizeof(random); i++)
            random[i] = (uint8_t)(clock_mono_us() >> (i % 8));
    for (size_t i = 0; i < sizeof(random); i++)
        digits_hex(out + 2 * i, random[i], 2);
    out[RANDOM_TOKEN_LEN] = '\0';
}

#endif
