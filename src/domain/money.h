/* money.h - prices as integer cents; never a floating-point number in storage.
 * Invariant: every accepted price is 0 <= cents <= MONEY_MAX_CENTS with at most two decimals. */
#ifndef CATALOGD_MONEY_H
#define CATALOGD_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define MONEY_MAX_CENTS 99999999999LL /* 999999999.99 */
#define MONEY_TEXT_MAX  24            /* "-999999999.99" and more, with NUL */

enum money_error {
    MONEY_OK = 0,
    MONEY_ERR_SYNTAX = -1,    /* not a JSON number literal */
    MONEY_ERR_PRECISION = -2, /* more than two decimals */
    MONEY_ERR_RANGE = -3,     /* negative, or above MONEY_MAX_CENTS */
};

/* Parses the JSON number literal "text" (exactly "len" bytes, not NUL-terminated) as an exact
 * decimal: "5000.00" -> 500000, "1e2" -> 10000, "-0.0" -> 0, "0.001" -> MONEY_ERR_PRECISION,
 * "1e309" -> MONEY_ERR_RANGE. Trailing zeros do not count as decimals ("1.500" is fine).
 * Returns MONEY_OK and sets "*cents", or a negative enum money_error. */
int money_parse(const char *text, size_t len, int64_t *cents);

/* Writes "cents" as a decimal with exactly two decimals ("5000.00", "0.10") and a NUL into
 * "out" (at least MONEY_TEXT_MAX bytes). Returns the length without the NUL. */
size_t money_format(int64_t cents, char *out);

/* A one-line, human message for a money_error ("must have at most two decimals"...). */
const char *money_error_message(int error);

#endif
