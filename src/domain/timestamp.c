/* timestamp.c - formats Unix milliseconds as RFC 3339 UTC text with milliseconds.
 * Invariant: the output is always exactly TIMESTAMP_LEN characters, "YYYY-MM-DDTHH:MM:SS.mmmZ";
 * instants after 9999-12-31T23:59:59.999Z are clamped to it rather than widen the year. */
#include "timestamp.h"

#include <string.h>

#define TIMESTAMP_MAX_MS 253402300799999ull /* 9999-12-31T23:59:59.999Z */
#define MS_PER_DAY       86400000ull

/* Converts days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
 * civil_from_days, for non-negative day counts only: we never see times before 1970). */
static void civil_from_days(uint64_t days, unsigned *year, unsigned *month, unsigned *day)
{
    uint64_t z = days + 719468; /* days since 0000-03-01 */
    uint64_t era = z / 146097;
    uint64_t day_of_era = z - era * 146097;
    uint64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    uint64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    uint64_t month_index = (5 * day_of_year + 2) / 153; /* 0 = March */

    *day = (unsigned)(day_of_year - (153 * month_index + 2) / 5 + 1);
    *month = (unsigned)(month_index < 10 ? month_index + 3 : month_index - 9);
    *year = (unsigned)(year_of_era + era * 400 + (*month <= 2));
}

/* Writes "value" as exactly "width" decimal digits at "out" (the caller keeps it in range). */
static void put_digits(char *out, unsigned value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

void timestamp_format(uint64_t unix_ms, char out[TIMESTAMP_LEN + 1])
{
    unsigned year, month, day;

    if (unix_ms > TIMESTAMP_MAX_MS) unix_ms = TIMESTAMP_MAX_MS;
    unsigned ms_of_day = (unsigned)(unix_ms % MS_PER_DAY);
    civil_from_days(unix_ms / MS_PER_DAY, &year, &month, &day);

    memcpy(out, "0000-00-00T00:00:00.000Z", TIMESTAMP_LEN + 1);
    put_digits(out, year, 4);
    put_digits(out + 5, month, 2);
    put_digits(out + 8, day, 2);
    put_digits(out + 11, ms_of_day / 3600000, 2);
    put_digits(out + 14, ms_of_day / 60000 % 60, 2);
    put_digits(out + 17, ms_of_day / 1000 % 60, 2);
    put_digits(out + 20, ms_of_day % 1000, 3);
}
