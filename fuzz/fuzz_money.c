/* fuzz_money.c - libFuzzer target: prices as JSON number text (money_parse) and as the double
 * jansson hands over (money_from_double).
 * Invariants checked, beyond "no crash" (money.h: every accepted price is a whole number of
 * cents in 0..MONEY_MAX_CENTS, and the parser never uses floating point):
 * - money_parse returns MONEY_OK or one of the enum money_error values, each with a message;
 * - an accepted price is in range, and money_format of it parses back to the same cents;
 * - money_from_double of strtod of the same text gives the same cents whenever money_parse
 *   accepted it (the exact parser and the double path agree on every valid price). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain/money.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t cents = -1, again = -1, from_double = -1;
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

    /* strtod reads a C string; it accepts more than JSON (hex, "inf", "nan", spaces). */
    char *copy = fuzz_strndup(data, size);
    double value = strtod(copy, NULL);
    int rc_double = money_from_double(value, &from_double);
    CHECK(rc_double == MONEY_OK || rc_double == MONEY_ERR_SYNTAX ||
          rc_double == MONEY_ERR_PRECISION || rc_double == MONEY_ERR_RANGE);
    if (rc_double == MONEY_OK) CHECK(from_double >= 0 && from_double <= MONEY_MAX_CENTS);
    if (rc == MONEY_OK && memchr(data, '\0', size) == NULL) {
        CHECK(rc_double == MONEY_OK);
        CHECK(from_double == cents);
    }
    free(copy);

    /* Formatting takes any int64, negative and extreme ones too, without overflowing. */
    if (size >= 8) {
        int64_t any;
        memcpy(&any, data, sizeof any);
        size_t n = money_format(any, text);
        CHECK(n > 0 && n < MONEY_TEXT_MAX && strlen(text) == n);
    }
    return 0;
}
