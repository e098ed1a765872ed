/* test_view.c - unit tests of view.c: the exact bytes of a view, escaping, validity as JSON,
 * and reading the indexed fields and the version back. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "domain/view.h"

static struct product sample(void)
{
    struct product p = {
        .id = "0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f",
        .sku = "GAMER-PC-01",
        .name = "PC Gamer Ultra",
        .price_cents = 500000,
        .stock = 5,
        .version = 1,
        .created_at = "2026-11-28T12:00:00.000Z",
        .updated_at = "2026-11-28T12:00:00.000Z",
    };
    return p;
}

/* Encodes "p", checks the length, the NUL and that jansson reads the bytes as one object;
 * returns the decoded object (to json_decref). */
static json_t *encode_valid(const struct product *p, char *out, size_t cap)
{
    json_error_t error;

    memset(out, 'x', cap);
    size_t n = view_encode(p, out, cap);
    cr_assert_gt(n, 0);
    cr_assert_eq(out[n], '\0');
    cr_assert_eq(strlen(out), n);
    json_t *view = json_loadb(out, n, JSON_REJECT_DUPLICATES, &error);
    cr_assert_not_null(view, "not JSON (%s): %s", error.text, out);
    cr_assert(json_is_object(view));
    return view;
}

Test(view_encode, exact_bytes)
{
    struct product p = sample();
    char out[VIEW_MAX];

    json_decref(encode_valid(&p, out, sizeof out));
    cr_assert_str_eq(out,
                     "{\"id\":\"0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f\",\"sku\":\"GAMER-PC-01\","
                     "\"name\":\"PC Gamer Ultra\",\"price\":5000.00,\"stock\":5,"
                     "\"available\":true,\"desc\":\"PC Gamer Ultra - $5000.00\",\"version\":1,"
                     "\"created_at\":\"2026-11-28T12:00:00.000Z\","
                     "\"updated_at\":\"2026-11-28T12:00:00.000Z\"}");
}

Test(view_encode, price_two_decimals_and_availability)
{
    struct product p = sample();
    char out[VIEW_MAX];

    p.price_cents = 10;
    p.stock = 0;
    p.version = 42;
    json_decref(encode_valid(&p, out, sizeof out));
    cr_assert(strstr(out, "\"price\":0.10,\"stock\":0,\"available\":false,") != NULL, "%s", out);
    cr_assert(strstr(out, "\"desc\":\"PC Gamer Ultra - $0.10\",\"version\":42,") != NULL, "%s",
              out);

    p.price_cents = 0;
    p.stock = 2147483647;
    json_decref(encode_valid(&p, out, sizeof out));
    cr_assert(strstr(out, "\"price\":0.00,\"stock\":2147483647,\"available\":true,") != NULL, "%s",
              out);

    p.price_cents = 99999999999;
    json_t *view = encode_valid(&p, out, sizeof out);
    cr_assert(strstr(out, "\"price\":999999999.99,") != NULL, "%s", out);
    cr_assert_float_eq(json_number_value(json_object_get(view, "price")), 999999999.99, 1e-6);
    json_decref(view);
}

Test(view_encode, escapes_quotes_backslashes_and_controls)
{
    struct product p = sample();
    char out[VIEW_MAX];

    strcpy(p.name, "12\" \\ rack\n\ttab\x01\x1f");
    json_t *view = encode_valid(&p, out, sizeof out);
    cr_assert(strstr(out, "\"name\":\"12\\\" \\\\ rack\\n\\ttab\\u0001\\u001f\",") != NULL, "%s",
              out);
    cr_assert(strstr(out, "\"desc\":\"12\\\" \\\\ rack\\n\\ttab\\u0001\\u001f - $5000.00\",") !=
                  NULL,
              "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(view, "name")), p.name);
    cr_assert_str_eq(json_string_value(json_object_get(view, "desc")),
                     "12\" \\ rack\n\ttab\x01\x1f - $5000.00");
    json_decref(view);
}

Test(view_encode, keeps_non_ascii_raw)
{
    struct product p = sample();
    char out[VIEW_MAX];

    strcpy(p.name, "Caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x8e\xae \xe2\x80\xa8");
    json_t *view = encode_valid(&p, out, sizeof out);
    cr_assert(strstr(out, "\"name\":\"Caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x8e\xae \xe2\x80\xa8\"") !=
                  NULL,
              "%s", out);
    cr_assert(strstr(out, "\\u") == NULL, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(view, "name")), p.name);
    json_decref(view);
}

Test(view_encode, key_order)
{
    static const char *const keys[] = {"id",        "sku",  "name",    "price",      "stock",
                                       "available", "desc", "version", "created_at", "updated_at"};
    struct product p = sample();
    char out[VIEW_MAX];

    json_t *view = encode_valid(&p, out, sizeof out);
    cr_assert_eq(json_object_size(view), 10);
    const char *key;
    json_t *value;
    size_t i = 0;
    json_object_foreach(view, key, value)
    {
        cr_assert_str_eq(key, keys[i], "key %zu", i);
        i++;
    }
    cr_assert(strchr(out, ' ') == strstr(out, "Gamer") - 1, "no spaces but the name's");
    json_decref(view);
}

Test(view_encode, largest_view_fits_and_small_buffers_refuse)
{
    struct product p = sample();
    char out[VIEW_MAX];

    /* The worst valid name: 200 quotes would be 400 bytes escaped; 200 four-byte characters
     * are 800. Try the quotes with a 64-character sku and the largest numbers. */
    memset(p.name, '"', PRODUCT_NAME_MAX);
    p.name[PRODUCT_NAME_MAX] = '\0';
    memset(p.sku, 'S', PRODUCT_SKU_MAX);
    p.sku[PRODUCT_SKU_MAX] = '\0';
    p.price_cents = 99999999999;
    p.stock = 2147483647;
    p.version = INT64_MAX;
    json_decref(encode_valid(&p, out, sizeof out));
    size_t n = strlen(out);
    cr_assert_lt(n, VIEW_MAX / 2);

    for (int i = 0; i < PRODUCT_NAME_MAX; i++)
        memcpy(p.name + 4 * i, "\xf0\x9f\x8e\xae", 4);
    p.name[PRODUCT_NAME_MAX_BYTES] = '\0';
    json_decref(encode_valid(&p, out, sizeof out));
    n = strlen(out);
    cr_assert_lt(n, VIEW_MAX / 2);

    /* Exactly n + 1 bytes is enough; n is not (no room for the NUL). */
    char *exact = malloc(n + 1);
    cr_assert_eq(view_encode(&p, exact, n + 1), n);
    cr_assert_str_eq(exact, out);
    cr_assert_eq(view_encode(&p, exact, n), 0);
    cr_assert_eq(view_encode(&p, exact, 1), 0);
    cr_assert_eq(view_encode(&p, exact, 0), 0);
    free(exact);
}

Test(view_parse, round_trip)
{
    struct product p = sample();
    struct view_fields f;
    char out[VIEW_MAX];

    p.stock = 0;
    p.version = 17;
    strcpy(p.name, "\"version\":99, \\ \xc3\xa9");
    size_t n = view_encode(&p, out, sizeof out);
    cr_assert_eq(view_parse(out, n, &f), 0);
    cr_assert_str_eq(f.id, p.id);
    cr_assert_str_eq(f.sku, p.sku);
    cr_assert_eq(f.stock, 0);
    cr_assert_eq(f.version, 17);
}

Test(view_parse, refuses_non_views)
{
    static const char *const bad[] = {
        "",
        "[]",
        "null",
        "{}",
        "{\"id\":\"0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f\",\"sku\":\"S\",\"stock\":1}",
        "{\"id\":\"0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f\",\"sku\":\"S\",\"version\":1}",
        "{\"id\":\"0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f\",\"sku\":\"S\",\"stock\":\"1\","
        "\"version\":1}",
        "{\"id\":\"0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f\",\"sku\":\"S\",\"stock\":1,"
        "\"version\":1.0}",
        "{\"id\":\"not-an-id\",\"sku\":\"S\",\"stock\":1,\"version\":1}",
        "{\"id\":\"0190B8E2-7C1A-7D3E-9F00-1A2B3C4D5E6F\",\"sku\":\"S\",\"stock\":1,\"version\":1}",
        "{\"id\":\"0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f\",\"sku\":5,\"stock\":1,\"version\":1}",
        "{\"id\":\"0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f\",\"sku\":"
        "\"SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS\",\"stock\":1,"
        "\"version\":1}",
        "{\"id\":\"0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f\",\"sku\":\"S\",\"stock\":1,\"version\":1",
    };
    struct view_fields f;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&f, 'x', sizeof f);
        cr_assert_eq(view_parse(bad[i], strlen(bad[i]), &f), -1, "%s", bad[i]);
        cr_assert_eq(f.id[0], '\0', "out is cleared on failure");
    }
    const char *good =
        "{\"id\":\"0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f\",\"sku\":\"S\",\"stock\":1,\"version\":1}";
    cr_assert_eq(view_parse(good, strlen(good), &f), 0);
    cr_assert_eq(view_parse(good, strlen(good) - 1, &f), -1);
    cr_assert_eq(view_parse(NULL, 0, &f), -1);
}

Test(view_version, finds_the_version)
{
    struct product p = sample();
    char out[VIEW_MAX];

    for (int64_t version = 1; version < 2000000; version = version * 7 + 3) {
        p.version = version;
        size_t n = view_encode(&p, out, sizeof out);
        cr_assert_eq(view_version(out, n), version);
    }
    /* A name that mentions "version": it is escaped, so the key is still found. */
    strcpy(p.name, "\"version\":5");
    p.version = 12;
    size_t n = view_encode(&p, out, sizeof out);
    cr_assert_eq(view_version(out, n), 12);
}

Test(view_version, refuses_garbage)
{
    cr_assert_eq(view_version("", 0), -1);
    cr_assert_eq(view_version(NULL, 0), -1);
    cr_assert_eq(view_version("{\"stock\":1}", 11), -1);
    cr_assert_eq(view_version("{\"version\":}", 12), -1);
    cr_assert_eq(view_version("{\"version\":\"1\"}", 15), -1);
    cr_assert_eq(view_version("{\"version\":-1}", 14), -1);
    cr_assert_eq(view_version("{\"version\":12", 13), -1); /* cut short */
    cr_assert_eq(view_version("{\"version\":12x}", 15), -1);
    cr_assert_eq(view_version("{\"version\":99999999999999999999}", 32), -1);
    cr_assert_eq(view_version("{\"version\":7}", 13), 7);
    cr_assert_eq(view_version("{\"version\":7,\"x\":1}", 19), 7);
    /* Only "len" bytes are looked at. */
    cr_assert_eq(view_version("{\"x\":1}{\"version\":7}", 7), -1);
}
