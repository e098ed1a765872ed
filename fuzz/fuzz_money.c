/* fuzz_money.c - libFuzzer target: prices as JSON number text (money_parse), the only way a
 * price is read (never through a double).
 * Invariants checked, beyond "no crash" (money.h: every accepted price is a whole number of
 * cents in 0..MONEY_MAX_CENTS, and the parser never uses floating point):
 * - money_parse returns MONEY_OK or one of the enum money_error values, each with a message;
 * - an accepted price is in range, and money_format of it parses back to the same cents;
 * - what a client's double makes of an accepted literal rounds to the same cents (strtod, the
 *   way a client reads the view's price). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain/money.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t cents = -1, again = -1;
    char text[MONEY_TEXT_MAX];

    int rc = money_parse((const char *)data, size, &cents);
    CHECK(rc == MONEY_OK || rc == MONEY_ERR_SYNTAX || rc == MONEY_ERR_PRECISION ||
          rc == MONEY_ERR_RANGE);
    CHECK(money_error_message(rc) != NULL && money_error_message(rc)[0] != '\0');
    if (rc == MONEY_OK) {
        CHECK(cents >= 0 && cents <= MONEY_MAX_CENTS);
        size_t n = money_format(cents, text);
        CHECK(n > 0 && n < MONEY_TEXT_MAX && strlen(text) == n);
        CHECK(money_parse(text, n, &again) == MONEY_OK);
        CHECK(again == cents);
    }

    /* strtod reads a C string; it accepts more than JSON (hex, "inf", "nan", spaces). Cents
     * up to MONEY_MAX_CENTS are exact in a double, so a valid price rounds back to itself. */
    if (rc == MONEY_OK && memchr(data, '\0', size) == NULL) {
        char *copy = fuzz_strndup(data, size);
        CHECK(llround(strtod(copy, NULL) * 100.0) == cents);
        free(copy);
    }

    /* Formatting takes any int64, negative and extreme ones too, without overflowing. */
    if (size >= 8) {
        int64_t any;
        memcpy(&any, data, sizeof any);
        size_t n = money_format(any, text);
        CHECK(n > 0 && n < MONEY_TEXT_MAX && strlen(text) == n);
    }
    return 0;
}
