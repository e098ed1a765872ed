/* view.c - encodes a product as the read model's JSON view, and reads its indexed fields back.
 * Invariant: view_encode writes the fixed key order of the contract with no spaces, so the
 * bytes depend only on the product; every string is escaped, so the output is valid JSON. */
#include "view.h"

#include <jansson.h>
#include <string.h>

#include "common/digits.h"
#include "common/json_out.h"
#include "money.h"

size_t view_encode(const struct product *p, char *out, size_t cap)
{
    struct json_out w = {out, cap, 0, 0};
    char price[MONEY_TEXT_MAX];
    char number[DIGITS_U64_MAX + 2]; /* a sign, the digits, the NUL */

    if (out == NULL || cap == 0) return 0;
    money_format(p->price_cents, price);

    json_out_text(&w, "{\"id\":\"");
    json_out_escaped(&w, p->id);
    json_out_text(&w, "\",\"sku\":\"");
    json_out_escaped(&w, p->sku);
    json_out_text(&w, "\",\"name\":\"");
    json_out_escaped(&w, p->name);
    json_out_text(&w, "\",\"price\":");
    json_out_text(&w, price);
    number[digits_i64(number, p->stock)] = '\0';
    json_out_text(&w, ",\"stock\":");
    json_out_text(&w, number);
    json_out_text(&w, p->stock > 0 ? ",\"available\":true" : ",\"available\":false");
    json_out_text(&w, ",\"desc\":\"");
    json_out_escaped(&w, p->name);
    json_out_text(&w, " - $");
    json_out_text(&w, price);
    number[digits_i64(number, p->version)] = '\0';
    json_out_text(&w, "\",\"version\":");
    json_out_text(&w, number);
    json_out_text(&w, ",\"created_at\":\"");
    json_out_escaped(&w, p->created_at);
    json_out_text(&w, "\",\"updated_at\":\"");
    json_out_escaped(&w, p->updated_at);
    json_out_text(&w, "\"}");

    return json_out_finish(&w);
}

/* Copies the string member "key" of "object" into "out" ("cap" bytes with the NUL). Returns 0,
 * or -1 when it is missing, not a string, holds a NUL or does not fit. */
static int copy_string_member(const json_t *object, const char *key, char *out, size_t cap)
{
    const json_t *value = json_object_get(object, key);
    if (!json_is_string(value)) return -1;
    size_t len = json_string_length(value);
    const char *text = json_string_value(value);
    if (len >= cap || memchr(text, '\0', len) != NULL) return -1;
    memcpy(out, text, len + 1);
    return 0;
}

int view_parse(const char *json, size_t len, struct view_fields *out)
{
    json_error_t error;
    json_t *view;
    const json_t *stock, *version;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (json == NULL) return -1;
    view = json_loadb(json, len, JSON_REJECT_DUPLICATES, &error);
    if (!json_is_object(view)) goto out;
    stock = json_object_get(view, "stock");
    version = json_object_get(view, "version");
    if (copy_string_member(view, "id", out->id, sizeof out->id) < 0 ||
        uuid_check_canonical(out->id, strlen(out->id)) < 0 ||
        copy_string_member(view, "sku", out->sku, sizeof out->sku) < 0 || !json_is_integer(stock) ||
        !json_is_integer(version))
        goto out;
    out->stock = json_integer_value(stock);
    out->version = json_integer_value(version);
    rc = 0;
out:
    json_decref(view);
    if (rc < 0) memset(out, 0, sizeof *out);
    return rc;
}

const char *view_id(const char *json, size_t len)
{
    static const char head[] = "{\"id\":\"";
    const size_t end = VIEW_ID_OFFSET + UUID_TEXT_LEN;
    if (len < end + 2 || memcmp(json, head, VIEW_ID_OFFSET) != 0 || json[end] != '"' ||
        json[end + 1] != ',')
        return NULL;
    return json + VIEW_ID_OFFSET;
}

int64_t view_version(const char *json, size_t len)
{
    static const char key[] = "\"version\":";
    const size_t key_len = sizeof key - 1;
    int64_t version = 0;

    if (json == NULL) return -1;
    const char *found = memmem(json, len, key, key_len);
    if (found == NULL) return -1;
    size_t i = (size_t)(found - json) + key_len, digits = 0;
    for (; i < len && json[i] >= '0' && json[i] <= '9'; i++, digits++) {
        if (version > (INT64_MAX - 9) / 10) return -1;
        version = version * 10 + (json[i] - '0');
    }
    /* The number must end where a view's does: at the next member or the closing brace. */
    if (digits == 0 || i == len || (json[i] != ',' && json[i] != '}')) return -1;
    return version;
}
