/* test_money.c - unit tests of money.c: exact decimal parsing, conversion from doubles and
 * two-decimal formatting. */
#include <criterion/criterion.h>
#include <string.h>

#include "domain/money.h"

/* Parses NUL-terminated "text" and returns the money_parse result, "*cents" set on success. */
static int parse(const char *text, int64_t *cents)
{
    *cents = -12345; /* a value no case expects, to see it was written */
    return money_parse(text, strlen(text), cents);
}

static void expect_cents(const char *text, int64_t expected)
{
    int64_t cents;
    int rc = parse(text, &cents);
    cr_assert_eq(rc, MONEY_OK, "money_parse(\"%s\") = %d, want MONEY_OK", text, rc);
    cr_assert_eq(cents, expected, "money_parse(\"%s\") gave %lld cents, want %lld", text,
                 (long long)cents, (long long)expected);
}

static void expect_error(const char *text, int expected)
{
    int64_t cents;
    int rc = parse(text, &cents);
    cr_assert_eq(rc, expected, "money_parse(\"%s\") = %d, want %d", text, rc, expected);
    cr_assert_eq(cents, -12345, "money_parse(\"%s\") wrote cents on failure", text);
}

Test(money_parse, plain_values)
{
    expect_cents("5000.00", 500000);
    expect_cents("0.1", 10);
    expect_cents("19.99", 1999);
    expect_cents("0", 0);
    expect_cents("7", 700);
    expect_cents("1.50", 150);
    expect_cents("1.500", 150);
    expect_cents("1.5000000000000000000000000", 150);
    expect_cents("0.01", 1);
    expect_cents("10.10", 1010);
    expect_cents("100", 10000);
}

Test(money_parse, exponents)
{
    expect_cents("1e2", 10000);
    expect_cents("1E2", 10000);
    expect_cents("1e+2", 10000);
    expect_cents("1e-2", 1);
    expect_cents("150e-2", 150);
    expect_cents("1.5e1", 1500);
    expect_cents("0.0001e4", 100);
    expect_cents("1e08", 10000000000);
    expect_cents("0e-400", 0);
    expect_cents("0e400", 0);
    expect_cents("0.000e99999999999999999999999", 0);
    expect_error("1e309", MONEY_ERR_RANGE);
    expect_error("1e99999999999999999999999999", MONEY_ERR_RANGE);
    expect_error("1e-400", MONEY_ERR_PRECISION);
    expect_error("1e-99999999999999999999999999", MONEY_ERR_PRECISION);
    expect_error("1e-3", MONEY_ERR_PRECISION);
}

Test(money_parse, negative_zero_is_zero)
{
    expect_cents("-0", 0);
    expect_cents("-0.0", 0);
    expect_cents("-0.00e5", 0);
}

Test(money_parse, range)
{
    expect_cents("999999999.99", 99999999999);
    expect_cents("999999999.990000", 99999999999);
    expect_cents("99999999999e-2", 99999999999);
    expect_error("1000000000.00", MONEY_ERR_RANGE);
    expect_error("1000000000", MONEY_ERR_RANGE);
    expect_error("999999999.999", MONEY_ERR_RANGE);
    expect_error("1e9", MONEY_ERR_RANGE);
    expect_error("-1", MONEY_ERR_RANGE);
    expect_error("-0.01", MONEY_ERR_RANGE);
    expect_error("-0.001", MONEY_ERR_RANGE);
    expect_error("123456789012345678901234567890", MONEY_ERR_RANGE);
}

Test(money_parse, precision)
{
    expect_error("0.001", MONEY_ERR_PRECISION);
    expect_error("19.999", MONEY_ERR_PRECISION);
    expect_error("0.30000000000000004", MONEY_ERR_PRECISION);
    expect_error("1.001", MONEY_ERR_PRECISION);
}

Test(money_parse, syntax)
{
    static const char *const bad[] = {
        "",     "-",   "01",  "-01", "00",  "1.",  ".5",   "+1",       "1e",    "1e+",
        "1.e2", " 1",  "1 ",  "1,5", "0x1", "NaN", "inf",  "1.2.3",    "1e2e3", "--1",
        "1..2", "5\"", "1e-", "one", "1_0", "١",   "1.0f", "Infinity",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error(bad[i], MONEY_ERR_SYNTAX);
}

Test(money_parse, reads_only_len_bytes)
{
    int64_t cents = -1;
    cr_assert_eq(money_parse("12.34garbage", 5, &cents), MONEY_OK);
    cr_assert_eq(cents, 1234);
    cr_assert_eq(money_parse("1.5", 0, &cents), MONEY_ERR_SYNTAX);
    cr_assert_eq(money_parse(NULL, 0, &cents), MONEY_ERR_SYNTAX);
    /* An embedded NUL is not part of a number. */
    cr_assert_eq(money_parse("1\0002", 3, &cents), MONEY_ERR_SYNTAX);
}

Test(money_format, two_decimals)
{
    static const struct {
        int64_t cents;
        const char *text;
    } cases[] = {
        {0, "0.00"},
        {1, "0.01"},
        {10, "0.10"},
        {150, "1.50"},
        {1999, "19.99"},
        {500000, "5000.00"},
        {99999999999, "999999999.99"},
        {-5, "-0.05"},
        {-123456, "-1234.56"},
        {INT64_MAX, "92233720368547758.07"},
        {INT64_MIN, "-92233720368547758.08"},
    };
    char out[MONEY_TEXT_MAX];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(out, 'x', sizeof out);
        size_t n = money_format(cases[i].cents, out);
        cr_assert_str_eq(out, cases[i].text);
        cr_assert_eq(n, strlen(cases[i].text));
    }
}

Test(money_format, round_trips_through_parse)
{
    char out[MONEY_TEXT_MAX];

    for (int64_t cents = 0; cents <= 100000; cents += 7) {
        int64_t back = -1;
        size_t n = money_format(cents, out);
        cr_assert_eq(money_parse(out, n, &back), MONEY_OK, "%s", out);
        cr_assert_eq(back, cents, "%s", out);
    }
}

Test(money_error_message, one_per_error)
{
    cr_assert_str_eq(money_error_message(MONEY_ERR_SYNTAX), "must be a number");
    cr_assert_str_eq(money_error_message(MONEY_ERR_PRECISION), "must have at most two decimals");
    cr_assert_str_eq(money_error_message(MONEY_ERR_RANGE), "must be between 0 and 999999999.99");
    cr_assert_not_null(money_error_message(-99));
    cr_assert_not_null(money_error_message(42));
}
