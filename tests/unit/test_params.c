/* test_params.c - the query side's pure input parsing. */
#include <criterion/criterion.h>
#include <string.h>

#include "domain/product.h"
#include "query/params.h"

static int limit_of(const char *text, int *out)
{
    return query_parse_limit(text, strlen(text), 1000, out);
}

Test(params, limit_accepts_1_to_max)
{
    int limit = 0;
    cr_assert_eq(limit_of("1", &limit), 0);
    cr_assert_eq(limit, 1);
    cr_assert_eq(limit_of("1000", &limit), 0);
    cr_assert_eq(limit, 1000);
    cr_assert_eq(limit_of("0100", &limit), 0);
    cr_assert_eq(limit, 100);
}

Test(params, limit_rejects_everything_else)
{
    const char *bad[] = {"", "0", "1001", "-1", "+5", " 5", "5 ", "abc", "1e2", "99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int limit = 42;
        cr_assert_eq(limit_of(bad[i], &limit), -1, "accepted '%s'", bad[i]);
        cr_assert_eq(limit, 42, "changed the limit for '%s'", bad[i]);
    }
}

Test(params, sku_plausible_follows_the_contract)
{
    cr_assert(product_sku_valid("GAMER-PC-01", 11));
    cr_assert(product_sku_valid("a.b_c-9", 7));
    char longest[65];
    memset(longest, 'x', 64);
    cr_assert(product_sku_valid(longest, 64));
    cr_assert_not(product_sku_valid("", 0));
    cr_assert_not(product_sku_valid("a b", 3));
    cr_assert_not(product_sku_valid("a/b", 3));
    cr_assert_not(product_sku_valid("caf\xc3\xa9", 5));
}

Test(params, sku_longer_than_64_is_not_plausible)
{
    char text[65];
    memset(text, 'x', sizeof(text));
    cr_assert_not(product_sku_valid(text, 65));
}

static int matches(const char *header, const char *etag)
{
    return query_etag_matches(header, strlen(header), etag, strlen(etag));
}

Test(params, etag_lists_star_and_weak_tags)
{
    cr_assert(matches("\"3\"", "\"3\""));
    cr_assert(matches("\"1\", \"3\"", "\"3\""));
    cr_assert(matches("W/\"3\"", "\"3\""));
    cr_assert(matches("*", "\"3\""));
    cr_assert(matches(" \"2\" ,\t\"3\" ", "\"3\""));
    cr_assert_not(matches("\"30\"", "\"3\""));
    cr_assert_not(matches("3", "\"3\""));
    cr_assert_not(matches("", "\"3\""));
    cr_assert_not(matches("\"2\", W/\"4\"", "\"3\""));
}

/* The first value of "name" in "query" into "out" (QUERY_VALUE_MAX + 1 bytes; "" when it does
 * not decode); 0 if absent. */
static int find(const char *query, const char *name, char *out)
{
    struct query_value value;
    if (!query_find_param(query, strlen(query), name, &value)) return 0;
    cr_assert_eq(strlen(value.text), value.len);
    memcpy(out, value.text, value.len + 1);
    return 1;
}

/* The first value of "name" in "query" is "expected". */
static void assert_value(const char *query, const char *name, const char *expected)
{
    char value[QUERY_VALUE_MAX + 1];
    cr_assert(find(query, name, value), "%s is not in %s", name, query);
    cr_assert_str_eq(value, expected, "%s in %s", name, query);
}

/* How often "name" occurs in "query", as query_find_param counts (2: more than once). */
static int occurrences(const char *query, const char *name)
{
    struct query_value value;
    return query_find_param(query, strlen(query), name, &value);
}

/* Why the first value of "name" in "query" cannot be read (0: it can). */
static int fault(const char *query, const char *name)
{
    struct query_value value;
    cr_assert(query_find_param(query, strlen(query), name, &value));
    cr_assert(value.fault == 0 || (value.len == 0 && value.text[0] == '\0'));
    return value.fault;
}

Test(params, query_parameters)
{
    char value[QUERY_VALUE_MAX + 1];
    assert_value("limit=5&cursor=abc", "cursor", "abc");
    assert_value("limit=5&cursor=abc", "limit", "5");
    assert_value("in_stock&limit=1", "in_stock", "");
    assert_value("limit=1&limit=2", "limit", "1");
    cr_assert_eq(occurrences("limit=1&limit=2", "limit"), 2);
    cr_assert_eq(occurrences("limit&cursor=a&limit=3&limit=4", "limit"), 2);
    cr_assert_eq(occurrences("limit=1&cursor=a", "limit"), 1);
    cr_assert_eq(occurrences("limits=1&cursor=a", "limit"), 0);
    cr_assert_not(find("limitx=1&xlimit=2", "limit", value));
    cr_assert_not(find("", "limit", value));
    cr_assert_not(find("&&=&", "limit", value));
}

Test(params, query_names_and_values_are_percent_decoded)
{
    char value[QUERY_VALUE_MAX + 1];
    assert_value("%6Cimit=5", "limit", "5");
    assert_value("in_%73tock=%74rue", "in_stock", "true");
    assert_value("limit=%31%30", "limit", "10");
    assert_value("cursor=a+b", "cursor", "a+b"); /* '+' is not a space here */
    /* A copy spelled otherwise is still a second copy. */
    cr_assert_eq(occurrences("limit=1&%6c%69%6d%69%74=2", "limit"), 2);
    cr_assert_eq(occurrences("%6Cimit=1&limit", "limit"), 2);
    /* A name that does not decode, or decodes to another, is not the parameter. */
    cr_assert_eq(occurrences("%6Gimit=1&limit%=2&%6Cimits=3&lim%00it=4", "limit"), 0);
    /* A value that does not decode, or is longer than any parameter takes, is found but
     * cannot be read; one of the longest length is read whole. */
    cr_assert_eq(fault("limit=%zz", "limit"), PERCENT_MALFORMED);
    cr_assert_eq(fault("limit=5%", "limit"), PERCENT_MALFORMED);
    cr_assert_eq(fault("limit=%4", "limit"), PERCENT_MALFORMED);
    cr_assert_eq(fault("cursor=%00", "cursor"), PERCENT_MALFORMED);
    char longest[3 * QUERY_VALUE_MAX + 16] = "cursor=";
    for (int i = 0; i < QUERY_VALUE_MAX; i++)
        strcat(longest, "%41");
    cr_assert_eq(fault(longest, "cursor"), 0);
    cr_assert(find(longest, "cursor", value));
    cr_assert_eq(strlen(value), QUERY_VALUE_MAX);
    strcat(longest, "A");
    cr_assert_eq(fault(longest, "cursor"), PERCENT_TOO_LONG);
    strcat(longest, "%zz"); /* what it meets first */
    cr_assert_eq(fault(longest, "cursor"), PERCENT_TOO_LONG);
    cr_assert_eq(
        fault("cursor=%zzAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
              "cursor"),
        PERCENT_MALFORMED);
}
