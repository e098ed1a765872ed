/* test_product.c - unit tests of product.c: every validation rule of the create, patch and
 * stock-delta bodies, malformed bodies, numbers too large for the JSON parser, and the fast
 * path's verdicts against jansson's. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "domain/product.h"

typedef int body_parser(const char *body, size_t len, struct product_draft *out,
                        struct validation *v);

static int parse_delta(const char *body, size_t len, struct product_draft *out,
                       struct validation *v)
{
    int64_t delta = 0;
    int rc = product_parse_stock_delta(body, len, &delta, v);
    memset(out, 0, sizeof *out);
    out->stock = delta; /* carried in "stock" so one helper serves all three parsers */
    return rc;
}

/* An expected error: field and message. */
struct expect {
    const char *field;
    const char *message;
};

/* Runs "parser" on "body" (with "len" bytes, or strlen when len is (size_t)-1) and checks it
 * returns BODY_INVALID with exactly the errors "expected" in that order. */
static void expect_errors_n(body_parser *parser, const char *body, size_t len,
                            const struct expect *expected, int count)
{
    struct product_draft draft;
    struct validation v;

    if (len == (size_t)-1) len = strlen(body);
    int rc = parser(body, len, &draft, &v);
    cr_assert_eq(rc, BODY_INVALID, "body %s: status %d, want BODY_INVALID (detail: %s)", body, rc,
                 v.detail);
    for (int i = 0; i < v.error_count && i < count; i++) {
        cr_assert_str_eq(v.errors[i].field, expected[i].field, "body %s: error %d", body, i);
        cr_assert_str_eq(v.errors[i].message, expected[i].message, "body %s: error %d (%s)", body,
                         i, v.errors[i].field);
    }
    cr_assert_eq(v.error_count, count, "body %s: %d errors, want %d (first: %s %s)", body,
                 v.error_count, count, v.error_count ? v.errors[0].field : "",
                 v.error_count ? v.errors[0].message : "");
    cr_assert_eq(draft.fields, 0, "a failed parse must not leave fields set");
}

#define EXPECT_ERRORS(parser, body, ...)                                                           \
    do {                                                                                           \
        static const struct expect expected_[] = {__VA_ARGS__};                                    \
        expect_errors_n(parser, body, (size_t)-1, expected_,                                       \
                        (int)(sizeof expected_ / sizeof expected_[0]));                            \
    } while (0)

/* Checks that "parser" refuses "body" ("len" bytes) as malformed with a detail that contains
 * "detail_part". */
static void expect_malformed_n(body_parser *parser, const char *body, size_t len,
                               const char *detail_part)
{
    struct product_draft draft;
    struct validation v;

    int rc = parser(body, len, &draft, &v);
    cr_assert_eq(rc, BODY_MALFORMED, "body %.*s: status %d, want BODY_MALFORMED", (int)len, body,
                 rc);
    cr_assert_eq(v.error_count, 0);
    cr_assert(strstr(v.detail, detail_part) != NULL, "detail \"%s\" lacks \"%s\"", v.detail,
              detail_part);
    for (const char *c = v.detail; *c; c++)
        cr_assert((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7F, "detail not ASCII");
}

static void expect_malformed(body_parser *parser, const char *body, const char *detail_part)
{
    expect_malformed_n(parser, body, strlen(body), detail_part);
}

static struct product_draft expect_ok(body_parser *parser, const char *body)
{
    struct product_draft draft;
    struct validation v;

    int rc = parser(body, strlen(body), &draft, &v);
    cr_assert_eq(rc, BODY_OK, "body %s: status %d (%s; first error %s %s)", body, rc, v.detail,
                 v.error_count ? v.errors[0].field : "", v.error_count ? v.errors[0].message : "");
    cr_assert_eq(v.error_count, 0);
    return draft;
}

#define SKU_MSG         "must be 1-64 characters from A-Z a-z 0-9 . _ -"
#define NAME_LEN_MSG    "must be 1-200 characters after trimming"
#define NAME_CTRL_MSG   "must not contain control characters"
#define PRICE_RANGE_MSG "must be between 0 and 999999999.99"
#define PRICE_PREC_MSG  "must have at most two decimals"
#define STOCK_RANGE_MSG "must be between 0 and 2147483647"
#define DELTA_RANGE_MSG "must be between -2147483647 and 2147483647"
#define PATCH_EMPTY_MSG "must contain at least one of name, price, stock"

/* ---- create ---- */

Test(create, valid_body)
{
    struct product_draft d = expect_ok(
        product_parse_create,
        "{\"sku\":\"GAMER-PC-01\",\"name\":\"PC Gamer Ultra\",\"price\":5000.00,\"stock\":5}");
    cr_assert_eq(d.fields, PRODUCT_FIELD_SKU | PRODUCT_FIELD_NAME | PRODUCT_FIELD_PRICE |
                               PRODUCT_FIELD_STOCK);
    cr_assert_str_eq(d.sku, "GAMER-PC-01");
    cr_assert_str_eq(d.name, "PC Gamer Ultra");
    cr_assert_eq(d.price_cents, 500000);
    cr_assert_eq(d.stock, 5);
}

Test(create, key_order_and_whitespace_do_not_matter)
{
    struct product_draft d =
        expect_ok(product_parse_create, " \n{ \"stock\" : 0 ,\"price\":19.99,\t\"name\":\"x\","
                                        "\"sku\":\"a.b_c-D9\" }\r\n");
    cr_assert_str_eq(d.sku, "a.b_c-D9");
    cr_assert_eq(d.price_cents, 1999);
    cr_assert_eq(d.stock, 0);
}

Test(create, price_forms)
{
    static const struct {
        const char *price;
        int64_t cents;
    } cases[] = {
        {"0", 0},
        {"0.1", 10},
        {"19.99", 1999},
        {"1e2", 10000},
        {"1.50", 150},
        {"1.500", 150},
        {"-0.0", 0},
        {"-0", 0},
        {"999999999", 99999999900},
        {"999999999.99", 99999999999},
        {"5000", 500000},
        {"0.07", 7},
    };
    char body[200];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(body, sizeof body, "{\"sku\":\"S\",\"name\":\"N\",\"price\":%s,\"stock\":1}",
                 cases[i].price);
        struct product_draft d = expect_ok(product_parse_create, body);
        cr_assert_eq(d.price_cents, cases[i].cents, "price %s", cases[i].price);
    }
}

Test(create, price_rules)
{
    static const struct {
        const char *price;
        const char *message;
    } cases[] = {
        {"\"5\"", "must be a number"},
        {"\"5000.00\"", "must be a number"},
        {"true", "must be a number"},
        {"null", "must be a number"},
        {"[1]", "must be a number"},
        {"{}", "must be a number"},
        {"-1", PRICE_RANGE_MSG},
        {"-0.01", PRICE_RANGE_MSG},
        {"1000000000", PRICE_RANGE_MSG},
        {"1000000000.00", PRICE_RANGE_MSG},
        {"1e300", PRICE_RANGE_MSG},
        {"1e309", PRICE_RANGE_MSG},
        {"-1e309", PRICE_RANGE_MSG},
        {"99999999999999999999", PRICE_RANGE_MSG},
        {"-99999999999999999999", PRICE_RANGE_MSG},
        {"0.001", PRICE_PREC_MSG},
        {"19.999", PRICE_PREC_MSG},
        {"0.30000000000000004", PRICE_PREC_MSG},
    };
    char body[200];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(body, sizeof body, "{\"sku\":\"S\",\"name\":\"N\",\"price\":%s,\"stock\":1}",
                 cases[i].price);
        struct expect expected = {"price", cases[i].message};
        expect_errors_n(product_parse_create, body, (size_t)-1, &expected, 1);
    }
}

/* What a double cannot tell apart: the price is read from its literal, exactly. */
Test(create, price_is_read_from_its_literal)
{
    static const struct {
        const char *price;
        const char *message; /* NULL: accepted */
        int64_t cents;
    } cases[] = {
        {"1e-400", PRICE_PREC_MSG, 0},
        {"5e-324", PRICE_PREC_MSG, 0},
        {"0.10000000000000001", PRICE_PREC_MSG, 0},
        {"19.990000000000001", PRICE_PREC_MSG, 0},
        {"1.0000000000000000001", PRICE_PREC_MSG, 0},
        {"999999999.994", PRICE_RANGE_MSG, 0}, /* above 999999999.99 */
        {"999999999.999", PRICE_RANGE_MSG, 0},
        {"0.10000000000000000000", NULL, 10},
        {"100.000000000000000000", NULL, 10000},
        {"1999e-2", NULL, 1999},
        {"0.000000000000000000000000001e27", NULL, 100},
    };
    char body[200];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(body, sizeof body, "{\"sku\":\"S\",\"name\":\"N\",\"price\":%s,\"stock\":1}",
                 cases[i].price);
        if (cases[i].message) {
            struct expect expected = {"price", cases[i].message};
            expect_errors_n(product_parse_create, body, (size_t)-1, &expected, 1);
        } else {
            cr_assert_eq(expect_ok(product_parse_create, body).price_cents, cases[i].cents,
                         "price %s", cases[i].price);
        }
    }
}

Test(create, a_price_with_sixty_thousand_zeros_is_not_two_decimals)
{
    static const char head[] = "{\"sku\":\"S\",\"name\":\"N\",\"stock\":1,\"price\":0.";
    size_t zeros = 60000, len = sizeof(head) - 1 + zeros + 2;
    char *body = malloc(len + 1);
    cr_assert_not_null(body);
    memcpy(body, head, sizeof(head) - 1);
    memset(body + sizeof(head) - 1, '0', zeros);
    memcpy(body + sizeof(head) - 1 + zeros, "1}", 3);
    struct expect expected = {"price", PRICE_PREC_MSG};
    expect_errors_n(product_parse_create, body, len, &expected, 1);
    free(body);
}

/* The literal found is the top-level "price" member's, whatever the text around it. */
Test(create, the_price_literal_is_the_top_level_members)
{
    cr_assert_eq(
        expect_ok(
            product_parse_create,
            "{\"name\":\"a\\\"b,\\\"price\\\":9.999\",\"sku\":\"S\",\"stock\":1,\"price\":1.5}")
            .price_cents,
        150);
    cr_assert_eq(expect_ok(product_parse_create,
                           "{\"sku\":\"S\",\"name\":\"N\",\"stock\":1,\"pr\\u0069ce\" : 2.25 }")
                     .price_cents,
                 225);
    EXPECT_ERRORS(product_parse_create,
                  "{\"sku\":\"S\",\"name\":\"N\",\"stock\":1,\"pr\\u0069ce\":2.251}",
                  {"price", PRICE_PREC_MSG});
    EXPECT_ERRORS(product_parse_create,
                  "{\"x\":{\"price\":1},\"sku\":\"S\",\"name\":\"N\",\"stock\":1,\"price\":0.001}",
                  {"x", "unknown field"}, {"price", PRICE_PREC_MSG});
    cr_assert_eq(expect_ok(product_parse_patch, "{\"price\":\n\t7.10\n}").price_cents, 710);
    EXPECT_ERRORS(product_parse_patch, "{\"price\":7.100000000000001}", {"price", PRICE_PREC_MSG});
}

Test(create, stock_rules)
{
    static const struct {
        const char *stock;
        const char *message;
    } cases[] = {
        {"\"5\"", "must be an integer"},
        {"5.0", "must be an integer"},
        {"5.5", "must be an integer"},
        {"1e3", "must be an integer"},
        {"1e309", "must be an integer"},
        {"false", "must be an integer"},
        {"null", "must be an integer"},
        {"-1", STOCK_RANGE_MSG},
        {"2147483648", STOCK_RANGE_MSG},
        {"9223372036854775807", STOCK_RANGE_MSG},
        {"99999999999999999999", STOCK_RANGE_MSG},
        {"-99999999999999999999", STOCK_RANGE_MSG},
    };
    char body[200];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(body, sizeof body, "{\"sku\":\"S\",\"name\":\"N\",\"price\":1,\"stock\":%s}",
                 cases[i].stock);
        struct expect expected = {"stock", cases[i].message};
        expect_errors_n(product_parse_create, body, (size_t)-1, &expected, 1);
    }
    struct product_draft d =
        expect_ok(product_parse_create, "{\"sku\":\"S\",\"name\":\"N\",\"price\":1,"
                                        "\"stock\":2147483647}");
    cr_assert_eq(d.stock, 2147483647);
}

Test(create, sku_rules)
{
    static const struct {
        const char *sku;
        const char *message;
    } cases[] = {
        {"\"\"", SKU_MSG},
        {"\"has space\"", SKU_MSG},
        {"\"slash/\"", SKU_MSG},
        {"\"caf\xc3\xa9\"", SKU_MSG},
        {"\"nul\\u0000\"", SKU_MSG},
        {"\"tab\\t\"", SKU_MSG},
        {"\"0123456789012345678901234567890123456789012345678901234567890123X\"", SKU_MSG},
        {"42", "must be a string"},
        {"null", "must be a string"},
        {"[\"A\"]", "must be a string"},
        {"99999999999999999999", "must be a string"},
    };
    char body[300];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(body, sizeof body, "{\"sku\":%s,\"name\":\"N\",\"price\":1,\"stock\":1}",
                 cases[i].sku);
        struct expect expected = {"sku", cases[i].message};
        expect_errors_n(product_parse_create, body, (size_t)-1, &expected, 1);
    }
    struct product_draft d =
        expect_ok(product_parse_create,
                  "{\"sku\":\"0123456789012345678901234567890123456789012345678901234567890123\","
                  "\"name\":\"N\",\"price\":1,\"stock\":1}");
    cr_assert_eq(strlen(d.sku), 64);
}

/* Builds a create body whose name is the JSON string literal "name_literal". */
static void create_body(char *body, size_t cap, const char *name_literal)
{
    snprintf(body, cap, "{\"sku\":\"S\",\"name\":%s,\"price\":1,\"stock\":1}", name_literal);
}

Test(create, name_trimming_and_characters)
{
    static const struct {
        const char *literal;
        const char *name;
    } good[] = {
        {"\"  PC Gamer  \"", "PC Gamer"},
        {"\"\\t\\n\\r x \\r\\n\\t\"", "x"},
        {"\"\xc2\xa0\xe3\x80\x80x\xe2\x80\x83\"", "x"}, /* NBSP, ideographic and em spaces */
        {"\"Caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x8e\xae\"",
         "Caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x8e\xae"},
        {"\"quote \\\" and \\\\ backslash\"", "quote \" and \\ backslash"},
        {"\"\\u00e9\"", "\xc3\xa9"},
        {"\"a  b\"", "a  b"},
    };
    char body[400];

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        create_body(body, sizeof body, good[i].literal);
        struct product_draft d = expect_ok(product_parse_create, body);
        cr_assert_str_eq(d.name, good[i].name, "literal %s", good[i].literal);
    }

    static const struct {
        const char *literal;
        const char *message;
    } bad[] = {
        {"\"\"", NAME_LEN_MSG},           {"\"   \"", NAME_LEN_MSG},
        {"\"\\t\\n\"", NAME_LEN_MSG},     {"\"\xe3\x80\x80\"", NAME_LEN_MSG},
        {"\"a\\nb\"", NAME_CTRL_MSG},     {"\"a\\tb\"", NAME_CTRL_MSG},
        {"\"a\\u0000\"", NAME_CTRL_MSG},  {"\"a\\u001fb\"", NAME_CTRL_MSG},
        {"\"a\\u007f\"", NAME_CTRL_MSG},  {"\"a\\u0080b\"", NAME_CTRL_MSG},
        {"\"a\\u009fb\"", NAME_CTRL_MSG}, {"5", "must be a string"},
        {"null", "must be a string"},     {"{\"x\":1}", "must be a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        create_body(body, sizeof body, bad[i].literal);
        struct expect expected = {"name", bad[i].message};
        expect_errors_n(product_parse_create, body, (size_t)-1, &expected, 1);
    }
}

Test(create, name_length_counts_code_points)
{
    char literal[1200], body[1400];

    /* 200 four-byte characters (800 bytes) fit; 201 do not. */
    strcpy(literal, "\"");
    for (int i = 0; i < 200; i++)
        strcat(literal, "\xf0\x9f\x8e\xae");
    strcat(literal, "\"");
    create_body(body, sizeof body, literal);
    struct product_draft d = expect_ok(product_parse_create, body);
    cr_assert_eq(strlen(d.name), 800);

    strcpy(literal, "\"");
    for (int i = 0; i < 201; i++)
        strcat(literal, "a");
    strcat(literal, "\"");
    create_body(body, sizeof body, literal);
    struct expect expected = {"name", NAME_LEN_MSG};
    expect_errors_n(product_parse_create, body, (size_t)-1, &expected, 1);

    /* 200 characters plus surrounding spaces: fine after trimming. */
    strcpy(literal, "\"   ");
    for (int i = 0; i < 200; i++)
        strcat(literal, "\xc3\xa9");
    strcat(literal, "   \"");
    create_body(body, sizeof body, literal);
    d = expect_ok(product_parse_create, body);
    cr_assert_eq(strlen(d.name), 400);
}

Test(create, missing_fields_in_order)
{
    EXPECT_ERRORS(product_parse_create, "{}", {"sku", "is required"}, {"name", "is required"},
                  {"price", "is required"}, {"stock", "is required"});
    EXPECT_ERRORS(product_parse_create, "{\"name\":\"N\",\"stock\":1}", {"sku", "is required"},
                  {"price", "is required"});
}

Test(create, every_error_at_once_in_body_order)
{
    EXPECT_ERRORS(product_parse_create,
                  "{\"stock\":-5,\"color\":\"red\",\"name\":\"\",\"price\":\"10\",\"sku\":\"a b\","
                  "\"id\":\"x\"}",
                  {"stock", STOCK_RANGE_MSG}, {"color", "unknown field"}, {"name", NAME_LEN_MSG},
                  {"price", "must be a number"}, {"sku", SKU_MSG}, {"id", "unknown field"});
    EXPECT_ERRORS(product_parse_create, "{\"price\":0.001,\"extra\":null}",
                  {"price", PRICE_PREC_MSG}, {"extra", "unknown field"}, {"sku", "is required"},
                  {"name", "is required"}, {"stock", "is required"});
}

Test(create, unknown_field_alone_fails_a_valid_body)
{
    EXPECT_ERRORS(product_parse_create,
                  "{\"sku\":\"S\",\"name\":\"N\",\"price\":1,\"stock\":1,\"Price\":2}",
                  {"Price", "unknown field"});
}

/* 20 unknown fields ahead of four bad known ones: the first 16 unknown ones are listed, every
 * known field's error too, and the detail counts all 24. They crowded the known ones out. */
static void expect_unknown_fields_counted(body_parser *parser, const char *tail,
                                          const char *const *known, int known_count)
{
    char body[1024];
    size_t at = 0;
    for (int i = 0; i < 20; i++)
        at += (size_t)snprintf(body + at, sizeof body - at, "%s\"k%d\":1", i ? "," : "{", i);
    snprintf(body + at, sizeof body - at, "%s}", tail);
    struct product_draft draft;
    struct validation v;
    cr_assert_eq(parser(body, strlen(body), &draft, &v), BODY_INVALID, "%s", v.detail);
    cr_assert_eq(v.error_count, VALIDATION_MAX_UNKNOWN + known_count);
    for (int i = 0; i < VALIDATION_MAX_UNKNOWN; i++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", i);
        cr_assert_str_eq(v.errors[i].field, name);
    }
    for (int i = 0; i < known_count; i++)
        cr_assert_str_eq(v.errors[VALIDATION_MAX_UNKNOWN + i].field, known[i]);
    cr_assert_eq(v.unlisted_count, 20 - VALIDATION_MAX_UNKNOWN);
    char detail[200];
    snprintf(detail, sizeof detail,
             "%d fields failed validation: see errors (it lists the first 16 of the 20 unknown "
             "fields)",
             20 + known_count);
    cr_assert_str_eq(v.detail, detail);
}

Test(create, past_16_unknown_fields_the_known_ones_are_still_listed_and_all_counted)
{
    static const char *const create_known[] = {"sku", "name", "price", "stock"};
    expect_unknown_fields_counted(product_parse_create,
                                  ",\"sku\":\"\",\"name\":\"\",\"price\":-1,\"stock\":-1",
                                  create_known, 4);
    static const char *const patch_known[] = {"price", "(body)"};
    expect_unknown_fields_counted(product_parse_patch, ",\"price\":-1", patch_known, 1);
    expect_unknown_fields_counted(product_parse_patch, "", patch_known + 1, 1);
    static const char *const delta_known[] = {"delta"};
    expect_unknown_fields_counted(parse_delta, "", delta_known, 1);
}

Test(create, long_unknown_field_name_is_cut)
{
    char body[400];
    struct product_draft draft;
    struct validation v;

    snprintf(body, sizeof body,
             "{\"sku\":\"S\",\"name\":\"N\",\"price\":1,\"stock\":1,\"%s\xc3\xa9%s\":1}",
             "0123456789012345678901234567890123456789012345678901234567890", /* 61 bytes */
             "tail");
    cr_assert_eq(product_parse_create(body, strlen(body), &draft, &v), BODY_INVALID);
    cr_assert_eq(v.error_count, 1);
    /* 61 bytes then a 2-byte character would cross the 61-byte cut: it is dropped whole. */
    cr_assert_str_eq(v.errors[0].field,
                     "0123456789012345678901234567890123456789012345678901234567890...");
    cr_assert_leq(strlen(v.errors[0].field), VALIDATION_FIELD_MAX);

    snprintf(body, sizeof body, "{\"%s\":1}",
             "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
    cr_assert_eq(product_parse_create(body, strlen(body), &draft, &v), BODY_INVALID);
    cr_assert_str_eq(v.errors[0].field,
                     "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghi...");
}

Test(create, unknown_fields_are_capped_missing_ones_still_listed)
{
    char body[2000] = "{";

    for (int i = 0; i < 40; i++)
        snprintf(body + strlen(body), sizeof body - strlen(body), "%s\"k%d\":%d", i ? "," : "", i,
                 i);
    strcat(body, "}");
    struct product_draft draft;
    struct validation v;
    cr_assert_eq(product_parse_create(body, strlen(body), &draft, &v), BODY_INVALID);
    cr_assert_eq(v.error_count, VALIDATION_MAX_UNKNOWN + 4);
    cr_assert_eq(v.unlisted_count, 40 - VALIDATION_MAX_UNKNOWN);
    cr_assert_str_eq(v.errors[0].field, "k0");
    cr_assert_str_eq(v.errors[15].field, "k15");
    cr_assert_str_eq(v.errors[16].field, "sku"); /* dropped once 16 unknown ones were listed */
    cr_assert_str_eq(v.errors[19].field, "stock");
    cr_assert_str_eq(v.errors[19].message, "is required");
}

/* ---- malformed bodies ---- */

Test(malformed, not_one_json_object)
{
    expect_malformed(product_parse_create, "", "empty");
    expect_malformed(product_parse_create, "   \r\n\t", "empty");
    expect_malformed_n(product_parse_create, NULL, 0, "empty");
    expect_malformed(product_parse_create, "[]", "must be a JSON object, got an array");
    expect_malformed(product_parse_create, "[{\"sku\":\"S\"}]", "got an array");
    expect_malformed(product_parse_create, "\"sku\"", "got a string");
    expect_malformed(product_parse_create, "42", "got a number");
    expect_malformed(product_parse_create, "4.2", "got a number");
    expect_malformed(product_parse_create, "null", "got null");
    expect_malformed(product_parse_create, "true", "got true");
    expect_malformed(product_parse_patch, "false", "got false");
    expect_malformed(product_parse_create, "{", "not valid JSON");
    expect_malformed(product_parse_create, "{\"sku\":\"S\",}", "not valid JSON");
    expect_malformed(product_parse_create, "{\"sku\":'S'}", "not valid JSON");
    expect_malformed(product_parse_create, "{} {}", "not valid JSON");
    expect_malformed(product_parse_create, "{}x", "not valid JSON");
    expect_malformed(product_parse_create, "{\"price\":NaN}", "not valid JSON");
    expect_malformed(product_parse_create, "{\"price\":Infinity}", "not valid JSON");
    expect_malformed(product_parse_create, "{\"price\":-Infinity}", "not valid JSON");
    expect_malformed(product_parse_create, "{\"price\":01}", "not valid JSON");
    expect_malformed(product_parse_create, "{\"price\":.5}", "not valid JSON");
    expect_malformed(product_parse_create, "{\"name\":\"\\ud800\"}", "not valid JSON");
    expect_malformed(product_parse_create, "{\"name\":\"\xff\"}", "not valid JSON");
    expect_malformed(product_parse_create, "{\"name\":\"a\nb\"}", "not valid JSON");
    expect_malformed_n(product_parse_create, "{\"sku\":\"S\"}\0", 12, "not valid JSON");
    expect_malformed(product_parse_create, "{\"a\\u0000b\":1}", "not valid JSON");
    expect_malformed(parse_delta, "[1]", "got an array");
}

Test(malformed, duplicate_keys)
{
    expect_malformed(product_parse_create,
                     "{\"sku\":\"S\",\"name\":\"N\",\"price\":1,\"stock\":1,\"sku\":\"T\"}",
                     "duplicate");
    expect_malformed(product_parse_patch, "{\"name\":\"a\",\"name\":\"a\"}", "duplicate");
    expect_malformed(parse_delta, "{\"delta\":1,\"delta\":1}", "duplicate");
}

Test(malformed, detail_says_where)
{
    struct product_draft draft;
    struct validation v;

    cr_assert_eq(product_parse_create("{\n\"sku\": x}", 11, &draft, &v), BODY_MALFORMED);
    cr_assert(strstr(v.detail, "line 2") != NULL, "%s", v.detail);
}

Test(malformed, parses_only_len_bytes)
{
    const char *body = "{\"sku\":\"S\",\"name\":\"N\",\"price\":1,\"stock\":1}GARBAGE";
    struct product_draft draft;
    struct validation v;

    cr_assert_eq(product_parse_create(body, strlen(body) - 7, &draft, &v), BODY_OK);
    cr_assert_eq(product_parse_create(body, strlen(body), &draft, &v), BODY_MALFORMED);
}

/* ---- numbers too large for jansson ---- */

Test(overflow, reported_for_its_field_with_the_others)
{
    EXPECT_ERRORS(product_parse_create,
                  "{\"sku\":\"S\",\"name\":\"N\",\"price\":1e309,\"stock\":99999999999999999999}",
                  {"price", PRICE_RANGE_MSG}, {"stock", STOCK_RANGE_MSG});
    EXPECT_ERRORS(product_parse_create,
                  "{\"stock\" :\n -99999999999999999999 ,\"bogus\": 1E400, \"sku\":1}",
                  {"stock", STOCK_RANGE_MSG}, {"bogus", "unknown field"},
                  {"sku", "must be a string"}, {"name", "is required"}, {"price", "is required"});
    EXPECT_ERRORS(product_parse_patch, "{\"version\":99999999999999999999}",
                  {"version", "is read-only"}, {"(body)", PATCH_EMPTY_MSG});
    EXPECT_ERRORS(parse_delta, "{\"delta\":-99999999999999999999}", {"delta", DELTA_RANGE_MSG});
    EXPECT_ERRORS(parse_delta, "{\"delta\":1e400}", {"delta", "must be an integer"});
}

Test(overflow, malformed_when_not_a_top_level_value)
{
    expect_malformed(product_parse_create, "{\"sku\":[1e309]}", "out of range");
    expect_malformed(product_parse_create, "{\"sku\":{\"price\":1e309}}", "out of range");
    expect_malformed(product_parse_create, "[1e309]", "out of range");
    expect_malformed(product_parse_create, "1e309", "out of range");
    expect_malformed(product_parse_create, "{\"pr\\u0069ce\":1e309}", "out of range");
    /* The rest of the body must still be JSON. */
    expect_malformed(product_parse_create, "{\"price\":1e309,", "not valid JSON");
    expect_malformed(product_parse_create, "{\"price\":1e309 garbage}", "not valid JSON");
}

Test(overflow, a_key_after_a_string_value_is_found)
{
    EXPECT_ERRORS(product_parse_create,
                  "{\"name\":\"a\\\"b:{[\",\"sku\":\"{[\",\"price\":1e999,\"stock\":1}",
                  {"sku", SKU_MSG}, {"price", PRICE_RANGE_MSG});
}

Test(overflow, too_many_is_malformed)
{
    char body[2000] = "{";

    for (int i = 0; i < 20; i++)
        snprintf(body + strlen(body), sizeof body - strlen(body), "%s\"k%d\":1e999", i ? "," : "",
                 i);
    strcat(body, "}");
    expect_malformed(product_parse_create, body, "too many");
}

/* ---- patch ---- */

Test(patch, subsets)
{
    struct product_draft d = expect_ok(product_parse_patch, "{\"price\":19.99}");
    cr_assert_eq(d.fields, PRODUCT_FIELD_PRICE);
    cr_assert_eq(d.price_cents, 1999);

    d = expect_ok(product_parse_patch, "{\"name\":\"  New  \",\"stock\":0}");
    cr_assert_eq(d.fields, PRODUCT_FIELD_NAME | PRODUCT_FIELD_STOCK);
    cr_assert_str_eq(d.name, "New");
    cr_assert_eq(d.stock, 0);

    d = expect_ok(product_parse_patch, "{\"name\":\"N\",\"price\":0,\"stock\":7}");
    cr_assert_eq(d.fields, PRODUCT_FIELD_NAME | PRODUCT_FIELD_PRICE | PRODUCT_FIELD_STOCK);
}

Test(patch, empty_object)
{
    EXPECT_ERRORS(product_parse_patch, "{}", {"(body)", PATCH_EMPTY_MSG});
    EXPECT_ERRORS(product_parse_patch, " { } ", {"(body)", PATCH_EMPTY_MSG});
}

Test(patch, read_only_and_unknown_fields)
{
    EXPECT_ERRORS(product_parse_patch, "{\"id\":\"x\",\"sku\":\"S\",\"version\":2,\"colour\":1}",
                  {"id", "is read-only"}, {"sku", "is read-only"}, {"version", "is read-only"},
                  {"colour", "unknown field"}, {"(body)", PATCH_EMPTY_MSG});
    EXPECT_ERRORS(product_parse_patch, "{\"sku\":\"S\",\"stock\":3}", {"sku", "is read-only"});
    EXPECT_ERRORS(product_parse_patch, "{\"created_at\":\"x\",\"name\":\"N\"}",
                  {"created_at", "unknown field"});
}

Test(patch, bad_values_all_reported)
{
    EXPECT_ERRORS(product_parse_patch, "{\"name\":\"\",\"price\":-1,\"stock\":1.5}",
                  {"name", NAME_LEN_MSG}, {"price", PRICE_RANGE_MSG},
                  {"stock", "must be an integer"});
    EXPECT_ERRORS(product_parse_patch, "{\"name\":null}", {"name", "must be a string"});
    EXPECT_ERRORS(product_parse_patch, "{\"price\":\"1.00\"}", {"price", "must be a number"});
}

/* ---- stock delta ---- */

Test(delta, valid)
{
    static const struct {
        const char *body;
        int64_t delta;
    } cases[] = {
        {"{\"delta\":1}", 1},
        {"{\"delta\":-1}", -1},
        {"{\"delta\":2147483647}", 2147483647},
        {"{\"delta\":-2147483647}", -2147483647},
        {" {\"delta\" : 42 } ", 42},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t delta = 0;
        struct validation v;
        cr_assert_eq(product_parse_stock_delta(cases[i].body, strlen(cases[i].body), &delta, &v),
                     BODY_OK, "%s", cases[i].body);
        cr_assert_eq(delta, cases[i].delta);
    }
}

Test(delta, rules)
{
    EXPECT_ERRORS(parse_delta, "{}", {"delta", "is required"});
    EXPECT_ERRORS(parse_delta, "{\"delta\":0}", {"delta", "must not be zero"});
    EXPECT_ERRORS(parse_delta, "{\"delta\":-0}", {"delta", "must not be zero"});
    EXPECT_ERRORS(parse_delta, "{\"delta\":5.0}", {"delta", "must be an integer"});
    EXPECT_ERRORS(parse_delta, "{\"delta\":0.0}", {"delta", "must be an integer"});
    EXPECT_ERRORS(parse_delta, "{\"delta\":\"5\"}", {"delta", "must be an integer"});
    EXPECT_ERRORS(parse_delta, "{\"delta\":null}", {"delta", "must be an integer"});
    EXPECT_ERRORS(parse_delta, "{\"delta\":2147483648}", {"delta", DELTA_RANGE_MSG});
    EXPECT_ERRORS(parse_delta, "{\"delta\":-2147483648}", {"delta", DELTA_RANGE_MSG});
    EXPECT_ERRORS(parse_delta, "{\"delta\":-9223372036854775808}", {"delta", DELTA_RANGE_MSG});
    EXPECT_ERRORS(parse_delta, "{\"delta\":1,\"reason\":\"x\"}", {"reason", "unknown field"});
    EXPECT_ERRORS(parse_delta, "{\"stock\":1}", {"stock", "unknown field"},
                  {"delta", "is required"});
}

/* ---- apply ---- */

Test(apply, copies_only_present_fields)
{
    struct product p = {
        .id = "0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f",
        .sku = "OLD",
        .name = "Old name",
        .price_cents = 100,
        .stock = 1,
        .version = 3,
    };
    struct product_draft d = expect_ok(product_parse_patch, "{\"name\":\"New\",\"stock\":9}");

    product_apply_draft(&p, &d);
    cr_assert_str_eq(p.name, "New");
    cr_assert_eq(p.stock, 9);
    cr_assert_eq(p.price_cents, 100);
    cr_assert_str_eq(p.sku, "OLD");
    cr_assert_eq(p.version, 3);

    d = expect_ok(product_parse_create,
                  "{\"sku\":\"NEW\",\"name\":\"N2\",\"price\":2.5,\"stock\":0}");
    product_apply_draft(&p, &d);
    cr_assert_str_eq(p.sku, "NEW");
    cr_assert_str_eq(p.name, "N2");
    cr_assert_eq(p.price_cents, 250);
    cr_assert_eq(p.stock, 0);
    cr_assert_str_eq(p.id, "0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f");
}

/* ---- the fast path against jansson ---- */

/* One parse's whole verdict as text: status, fields, values, detail and every field error. */
static void verdict(enum body_kind kind, const char *body, size_t len, int fast, char *out,
                    size_t cap)
{
    struct product_draft d;
    int64_t delta = 0;
    struct validation v;
    int rc = product_parse(kind, body, len, fast, &d, &delta, &v);
    int n = snprintf(out, cap,
                     "rc %d fields %u sku '%s' name '%s' price %lld stock %lld delta "
                     "%lld detail '%s' errors %d:",
                     rc, d.fields, d.sku, d.name, (long long)d.price_cents, (long long)d.stock,
                     (long long)delta, v.detail, v.error_count);
    for (int i = 0; i < v.error_count && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, " %s %s;", v.errors[i].field, v.errors[i].message);
}

/* Every kind of body gives "body" the same verdict with the fast path as with jansson alone. */
static void expect_fast_path_agrees(const char *body, size_t len)
{
    static const enum body_kind kinds[] = {BODY_CREATE, BODY_PATCH, BODY_STOCK_DELTA};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char fast[4096], slow[4096];
        verdict(kinds[k], body, len, 1, fast, sizeof fast);
        verdict(kinds[k], body, len, 0, slow, sizeof slow);
        cr_assert_str_eq(fast, slow,
                         "body %.*s, kind %zu: the fast path's verdict is not jansson's", (int)len,
                         body, k);
    }
}

/* Plain bodies, which the fast path reads, and the bodies at each edge of what it reads. */
Test(fast_path, gives_jansson_verdict)
{
    static const char *const bodies[] = {
        "{\"sku\":\"GAMER-PC-01\",\"name\":\"PC Gamer Ultra\",\"price\":5000.00,\"stock\":5}",
        " \t\r\n{ \"stock\" : 0 ,\"price\":0.1, \"name\":\"  Caf\xc3\xa9 \xe3\x80\x80\", "
        "\"sku\":\"a.b_c-d\" } \n",
        "{\"delta\":-1}",
        "{\"delta\":0}",
        "{\"delta\":-0}",
        "{\"delta\":1.0}",
        "{\"delta\":2147483648}",
        "{\"delta\":999999999999999999}",   /* 18 digits: the fast path's largest */
        "{\"delta\":-9999999999999999999}", /* 19: jansson's */
        "{\"delta\":99999999999999999999}", /* too big for jansson: recover_overflow */
        "{\"delta\":18446744073709551617}", /* 2^64 + 1, which wraps to 1 */
        "{\"delta\":1e3}",
        "{\"delta\":01}",
        "{\"delta\":1.}",
        "{\"delta\":-}",
        "{\"delta\":\"1\"}",
        "{\"delta\":true}",
        "{\"delta\":null}",
        "{\"delta\":1,}",
        "{\"delta\":1} x",
        "{\"delta\":1}{}",
        "{\"delta\":1",
        "{\"delta\" 1}",
        "{\"delta\":1,\"delta\":2}",
        "{\"de\\u006cta\":1}",
        "{\"Delta\":1}",
        "{}",
        "{ }",
        "[]",
        "",
        "{\"name\":\"x\x7fy\",\"price\":-0}",
        "{\"name\":\"\xed\xa0\x80\"}",     /* a surrogate */
        "{\"name\":\"\xc0\xaf\"}",         /* an overlong */
        "{\"name\":\"\xf4\x90\x80\x80\"}", /* past U+10FFFF */
        "{\"name\":\"\xc3\"}",             /* cut short */
        "{\"name\":\"tab\there\"}",
        "{\"name\":\"a\\\"b\"}",
        "{\"name\":\"\"}",
        "{\"name\":5}",
        "{\"price\":\"5.00\"}",
        "{\"price\":0.1000000000000000000000000000000000001}",
        "{\"price\":0.10000000000000000000000000000000000001}",
        "{\"price\":1234567890.00}",
        "{\"price\":-1.5}",
        "{\"price\":1.234}",
        "{\"stock\":-1,\"name\":\" \",\"price\":1e2}",
        "{\"id\":\"x\",\"sku\":\"y\",\"version\":1}",
        "{\"sku\":\"has space\",\"name\":\"n\",\"price\":1,\"stock\":1}",
        "{\"sku\":\"A\",\"name\":\"n\",\"price\":1,\"stock\":1,\"extra\":1}",
        "{\"sku\":\"A\",\"name\":{},\"price\":[1],\"stock\":1}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        expect_fast_path_agrees(bodies[i], strlen(bodies[i]));
}

/* A NUL byte is not JSON outside a string, nor inside one unescaped. */
Test(fast_path, reads_only_len_bytes_and_no_nul)
{
    static const char body[] = "{\"delta\":1}\0{\"delta\":\"a\0b\"}";
    expect_fast_path_agrees(body, sizeof body - 1);
    expect_fast_path_agrees(body, strlen(body));
    expect_fast_path_agrees(body, strlen(body) - 1);
    expect_fast_path_agrees(body + strlen(body) + 1, sizeof body - strlen(body) - 2);
}
