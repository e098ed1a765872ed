/* test_digits.c - unit tests of digits.h against printf, which it replaces on the hot paths. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/digits.h"

static void expect_decimal(uint64_t v)
{
    char got[DIGITS_U64_MAX + 1] = {0}, want[32];
    size_t n = digits_u64(got, v);
    snprintf(want, sizeof(want), "%" PRIu64, v);
    cr_assert_eq(n, strlen(want), "length for %s", want);
    cr_assert_str_eq(got, want);
}

Test(digits, decimal_matches_printf)
{
    uint64_t cases[] = {0, 1, 9, 10, 99, 100, 12345, 4294967295u, 4294967296u, UINT64_MAX};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_decimal(cases[i]);
    for (uint64_t v = 1; v < UINT64_MAX / 7; v *= 7)
        expect_decimal(v);
}

Test(digits, hex_is_zero_padded_to_its_width)
{
    char got[17] = {0};
    cr_assert_eq(digits_hex(got, 0x2a, 8), 8);
    cr_assert_str_eq(got, "0000002a");
    cr_assert_eq(digits_hex(got, 0xdeadbeefcafe0123ull, 16), 16);
    cr_assert_str_eq(got, "deadbeefcafe0123");
}

Test(digits, hex_keeps_the_low_digits_of_a_wider_value)
{
    char got[9] = {0};
    digits_hex(got, 0x123456789abcdefull, 8);
    cr_assert_str_eq(got, "89abcdef");
}

Test(digits, signed_decimal_matches_printf)
{
    int64_t cases[] = {0, 7, -7, 42, -1000, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char got[DIGITS_U64_MAX + 2] = {0}, want[32];
        size_t n = digits_i64(got, cases[i]);
        snprintf(want, sizeof(want), "%" PRId64, cases[i]);
        cr_assert_eq(n, strlen(want));
        cr_assert_str_eq(got, want);
    }
}

Test(digits, canonical_parse_takes_only_the_form_catalogd_writes)
{
    int64_t v = -1;
    cr_assert_eq(digits_parse_canonical("0", 1, 0, INT64_MAX, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(digits_parse_canonical("9007199254740993", 16, 0, INT64_MAX, &v), 0);
    cr_assert_eq(v, 9007199254740993LL);
    /* 19 digits: seqs go to INT64_MAX, one past it is no number */
    cr_assert_eq(digits_parse_canonical("9223372036854775807", 19, 0, INT64_MAX, &v), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(digits_parse_canonical("9223372036854775808", 19, 0, INT64_MAX, &v), -1);
    cr_assert_eq(digits_parse_canonical("99999999999999999999", 20, 0, INT64_MAX, &v), -1);
    const char *others[] = {"", "05", "00", "007", "-5", "+5", "1e3", "abc", " 1", "1 "};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        cr_assert_eq(digits_parse_canonical(others[i], strlen(others[i]), 0, INT64_MAX, &v), -1,
                     "%s", others[i]);
    cr_assert_eq(digits_parse_canonical("0", 1, 1, INT64_MAX, &v), -1); /* below min */
}
