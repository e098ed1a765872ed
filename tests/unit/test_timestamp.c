/* test_timestamp.c - unit tests of timestamp.c: RFC 3339 UTC with milliseconds, fixed width. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "domain/timestamp.h"

static void expect_text(uint64_t unix_ms, const char *expected)
{
    char out[TIMESTAMP_LEN + 1];

    memset(out, 'x', sizeof out);
    timestamp_format(unix_ms, out);
    cr_assert_str_eq(out, expected, "timestamp_format(%llu)", (unsigned long long)unix_ms);
}

Test(timestamp_format, known_instants)
{
    expect_text(0, "1970-01-01T00:00:00.000Z");
    expect_text(1, "1970-01-01T00:00:00.001Z");
    expect_text(999, "1970-01-01T00:00:00.999Z");
    expect_text(1795867200000ull, "2026-11-28T12:00:00.000Z");
    expect_text(951782400000ull, "2000-02-29T00:00:00.000Z");  /* leap day of a /400 year */
    expect_text(4107542399999ull, "2100-02-28T23:59:59.999Z"); /* 2100 is not a leap year */
    expect_text(4107542400000ull, "2100-03-01T00:00:00.000Z");
    expect_text(253402300799999ull, "9999-12-31T23:59:59.999Z");
    expect_text(UINT64_MAX, "9999-12-31T23:59:59.999Z"); /* clamped, never wider */
}

Test(timestamp_format, agrees_with_gmtime)
{
    char out[TIMESTAMP_LEN + 1], expected[64];

    /* Every 7919th hour plus odd milliseconds, 1970 to about 2150. */
    for (uint64_t ms = 0; ms < 5700000000000ull; ms += 7919ull * 3600000 + 12345) {
        time_t seconds = (time_t)(ms / 1000);
        struct tm tm;
        cr_assert_not_null(gmtime_r(&seconds, &tm));
        snprintf(expected, sizeof expected, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ms % 1000));
        timestamp_format(ms, out);
        cr_assert_str_eq(out, expected);
        cr_assert_eq(strlen(out), TIMESTAMP_LEN);
    }
}

Test(timestamp_parse, reads_back_what_format_writes)
{
    for (uint64_t ms = 0; ms < 4102444800000ull; ms += 7777777777ull) {
        char text[TIMESTAMP_LEN + 1];
        uint64_t back = 0;
        timestamp_format(ms, text);
        cr_assert_eq(timestamp_parse(text, TIMESTAMP_LEN, &back), 0, "%s", text);
        cr_assert_eq(back, ms, "%s", text);
    }
}

Test(timestamp_parse, refuses_what_is_not_one)
{
    uint64_t ms;
    const char *bad[] = {"2026-11-28T12:00:00.000",  "2026-11-28 12:00:00.000Z",
                         "2026-13-28T12:00:00.000Z", "2026-11-28T24:00:00.000Z",
                         "1969-12-31T23:59:59.999Z", "2026-11-28T12:00:0x.000Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(timestamp_parse(bad[i], strlen(bad[i]), &ms), -1, "%s", bad[i]);
}
