/* money.c - exact decimal parsing and formatting of prices as integer cents.
 * Invariant: money_parse never uses floating point and accepts only JSON number literals whose
 * exact value is a whole number of cents in 0..MONEY_MAX_CENTS; no double is ever turned into
 * cents (a price is read from the literal the client wrote, see product.c). */
#include "money.h"

#include "common/digits.h"

/* Digits of MONEY_MAX_CENTS (99999999999): any cents value with more digits is out of range. */
#define MONEY_MAX_CENTS_DIGITS 11

/* Explicit exponents are clamped to this magnitude while they are read: far beyond anything
 * that can still give an in-range price, and far from int64 overflow once the digit counts
 * (each at most the text length) are added. */
#define EXPONENT_CLAMP 1000000000000000LL

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The exact value of a JSON number literal: negative, and its significant digits
 * text[first..first+count) (no leading or trailing zeros; a fraction's dot may sit among them)
 * times ten to the power "scale". A zero has count == 0. */
struct decimal {
    int negative;
    size_t first;
    int64_t count;
    int64_t scale;
};

/* Reads "text" by the JSON number grammar -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? into
 * "*d". Returns 0, or MONEY_ERR_SYNTAX when "text" is anything else. */
static int decimal_read(const char *text, size_t len, struct decimal *d)
{
    size_t i = 0, int_start, int_end, frac_start = 0, frac_end = 0;
    int64_t exponent = 0;

    d->negative = 0;
    if (i < len && text[i] == '-') {
        d->negative = 1;
        i++;
    }
    int_start = i;
    if (i < len && text[i] == '0') {
        i++;
    } else {
        while (i < len && is_digit(text[i]))
            i++;
    }
    int_end = i;
    if (int_end == int_start) return MONEY_ERR_SYNTAX;
    if (i < len && text[i] == '.') {
        frac_start = ++i;
        while (i < len && is_digit(text[i]))
            i++;
        frac_end = i;
        if (frac_end == frac_start) return MONEY_ERR_SYNTAX;
    }
    if (i < len && (text[i] == 'e' || text[i] == 'E')) {
        int exponent_negative = 0;
        size_t exp_start;

        i++;
        if (i < len && (text[i] == '+' || text[i] == '-')) exponent_negative = text[i++] == '-';
        exp_start = i;
        while (i < len && is_digit(text[i])) {
            if (exponent < EXPONENT_CLAMP) exponent = exponent * 10 + (text[i] - '0');
            i++;
        }
        if (i == exp_start) return MONEY_ERR_SYNTAX;
        if (exponent_negative) exponent = -exponent;
    }
    if (i != len) return MONEY_ERR_SYNTAX;

    /* The digits run from int_start to the end of the fraction (or of the integer part), with
     * the dot, if any, in between. Trim zeros from both ends, counting how they move the scale. */
    size_t digits_end = frac_end ? frac_end : int_end;
    size_t first = int_start, last = digits_end; /* half-open */
    int64_t frac_digits = frac_end ? (int64_t)(frac_end - frac_start) : 0;

    while (first < last && (text[first] == '0' || text[first] == '.'))
        first++;
    while (last > first && (text[last - 1] == '0' || text[last - 1] == '.')) {
        /* Each trailing zero dropped from the digits makes the scale one larger. */
        if (text[last - 1] == '0') frac_digits--;
        last--;
    }
    d->first = first;
    d->count = 0;
    for (size_t k = first; k < last; k++)
        d->count += text[k] != '.';
    d->scale = exponent - frac_digits;
    return 0;
}

int money_parse(const char *text, size_t len, int64_t *cents)
{
    struct decimal d;
    int rc;

    if (text == NULL) return MONEY_ERR_SYNTAX;
    rc = decimal_read(text, len, &d);
    if (rc < 0) return rc;
    if (d.count == 0) { /* zero, whatever its sign or exponent: "-0.0", "0e-400" */
        *cents = 0;
        return MONEY_OK;
    }
    if (d.negative) return MONEY_ERR_RANGE;
    /* In cents the value is digits * 10^cents_scale: its integer part has count + cents_scale
     * digits (none when that is not positive), and it has a fraction when cents_scale < 0
     * (the last digit is not zero). */
    int64_t cents_scale = d.scale + 2;
    int64_t integer_digits = d.count + cents_scale;
    if (integer_digits > MONEY_MAX_CENTS_DIGITS) return MONEY_ERR_RANGE;

    /* At most MONEY_MAX_CENTS_DIGITS digits: no overflow below. */
    int64_t value = 0, taken = 0;
    for (size_t k = d.first; taken < integer_digits && taken < d.count; k++) {
        if (text[k] == '.') continue;
        value = value * 10 + (text[k] - '0');
        taken++;
    }
    for (; taken < integer_digits; taken++)
        value *= 10;
    int has_fraction = cents_scale < 0;
    if (value > MONEY_MAX_CENTS || (value == MONEY_MAX_CENTS && has_fraction))
        return MONEY_ERR_RANGE;
    if (has_fraction) return MONEY_ERR_PRECISION;
    *cents = value;
    return MONEY_OK;
}

size_t money_format(int64_t cents, char *out)
{
    /* The magnitude as unsigned, so INT64_MIN has one too. */
    uint64_t magnitude = cents < 0 ? 0 - (uint64_t)cents : (uint64_t)cents;
    size_t n = 0;
    if (cents < 0) out[n++] = '-';
    n += digits_u64(out + n, magnitude / 100);
    out[n++] = '.';
    out[n++] = (char)('0' + magnitude % 100 / 10);
    out[n++] = (char)('0' + magnitude % 10);
    out[n] = '\0';
    return n;
}

/* Indexed by -error. */
static const char *const money_messages[] = {
    [-MONEY_OK] = "is a valid price",
    [-MONEY_ERR_SYNTAX] = "must be a number",
    [-MONEY_ERR_PRECISION] = "must have at most two decimals",
    [-MONEY_ERR_RANGE] = "must be between 0 and 999999999.99",
};

const char *money_error_message(int error)
{
    if (error > 0 || -error >= (int)(sizeof money_messages / sizeof money_messages[0]))
        return "is not a valid price";
    return money_messages[-error];
}
