/* timestamp.c - Unix milliseconds to RFC 3339 UTC text with milliseconds, and back.
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

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's days_from_civil). */
static uint64_t days_from_civil(unsigned year, unsigned month, unsigned day)
{
    uint64_t y = year - (month <= 2);
    uint64_t era = y / 400;
    uint64_t year_of_era = y - era * 400;
    uint64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    uint64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

/* Reads "width" digits at "text" into "*value". Returns 0, or -1 on a non-digit. */
static int get_digits(const char *text, int width, unsigned *value)
{
    *value = 0;
    for (int i = 0; i < width; i++) {
        if (text[i] < '0' || text[i] > '9') return -1;
        *value = *value * 10 + (unsigned)(text[i] - '0');
    }
    return 0;
}

int timestamp_parse(const char *text, size_t len, uint64_t *unix_ms)
{
    static const char shape[] = "0000-00-00T00:00:00.000Z";
    unsigned year, month, day, hour, minute, second, ms;
    if (len != TIMESTAMP_LEN) return -1;
    for (size_t i = 0; i < TIMESTAMP_LEN; i++)
        if (shape[i] != '0' && text[i] != shape[i]) return -1;
    if (get_digits(text, 4, &year) < 0 || get_digits(text + 5, 2, &month) < 0 ||
        get_digits(text + 8, 2, &day) < 0 || get_digits(text + 11, 2, &hour) < 0 ||
        get_digits(text + 14, 2, &minute) < 0 || get_digits(text + 17, 2, &second) < 0 ||
        get_digits(text + 20, 3, &ms) < 0)
        return -1;
    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 ||
        second > 59)
        return -1;
    *unix_ms = days_from_civil(year, month, day) * MS_PER_DAY +
               (uint64_t)(((hour * 60 + minute) * 60 + second) * 1000 + ms);
    return 0;
}
