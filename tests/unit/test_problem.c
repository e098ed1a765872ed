/* test_problem.c - problem.c: the problem's JSON, written by hand, read back by jansson. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/problem.h"

/* Renders a problem and reads it back as one JSON object. */
static json_t *render_and_read(int status, const char *slug, const char *detail, json_t *extra)
{
    size_t len = 0;
    char *text = problem_render(status, slug, detail, extra, &len);
    cr_assert_eq(len, strlen(text));
    json_error_t error;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &error);
    cr_assert(json_is_object(doc), "%s: %s", text, error.text);
    free(text);
    return doc;
}

static void expect_string(const json_t *doc, const char *key, const char *want)
{
    const json_t *value = json_object_get(doc, key);
    cr_assert(json_is_string(value), "%s is not a string", key);
    cr_assert_str_eq(json_string_value(value), want);
}

Test(problem, members_in_order_with_the_slugs_title)
{
    json_t *doc = render_and_read(409, "insufficient-stock", "stock is 0, a delta of -1 would",
                                  json_pack("{s:I}", "current_stock", (json_int_t)0));
    const char *keys[] = {"type", "title", "status", "detail", "current_stock"};
    size_t i = 0;
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value)
    {
        cr_assert_lt(i, sizeof keys / sizeof keys[0]);
        cr_assert_str_eq(key, keys[i++]);
    }
    cr_assert_eq(i, sizeof keys / sizeof keys[0]);
    expect_string(doc, "type", "urn:catalogd:problem:insufficient-stock");
    expect_string(doc, "title", "Not enough stock");
    cr_assert_eq(json_integer_value(json_object_get(doc, "status")), 409);
    cr_assert_eq(json_integer_value(json_object_get(doc, "current_stock")), 0);
    json_decref(doc);
}

/* Every byte a detail may hold comes back as it went in: quotes, backslashes, each control
 * character, UTF-8. */
Test(problem, a_detail_reads_back_byte_for_byte)
{
    char detail[64 + 32];
    size_t n = 0;
    for (int c = 1; c < 0x20; c++)
        detail[n++] = (char)c;
    memcpy(detail + n, "\"\\/ caf\xc3\xa9 \x7f end", 16);
    n += 16;
    detail[n] = '\0';
    json_t *doc = render_and_read(400, "malformed-body", detail, NULL);
    expect_string(doc, "detail", detail);
    cr_assert_eq(json_object_size(doc), 4);
    json_decref(doc);
}

Test(problem, an_unknown_slug_is_titled_error_and_an_empty_extra_adds_nothing)
{
    json_t *doc = render_and_read(500, "no-such-slug", "", json_object());
    expect_string(doc, "title", "Error");
    expect_string(doc, "detail", "");
    cr_assert_eq(json_object_size(doc), 4);
    json_decref(doc);

    doc = render_and_read(422, "validation-failed", "1 field failed validation",
                          json_pack("{s:[{s:s,s:s}]}", "errors", "field", "delta", "message",
                                    "would make stock exceed 2147483647"));
    const json_t *errors = json_object_get(doc, "errors");
    cr_assert(json_is_array(errors) && json_array_size(errors) == 1);
    json_decref(doc);
}
