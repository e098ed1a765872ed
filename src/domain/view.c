/* view.c - encodes a product as the read model's JSON view, and reads its indexed fields back.
 * Invariant: view_encode writes the fixed key order of the contract with no spaces, so the
 * bytes depend only on the product; every string is escaped, so the output is valid JSON. */
#include "view.h"

#include <jansson.h>
#include <string.h>

#include "common/digits.h"
#include "money.h"

/* An output buffer that remembers running out of room instead of writing past it. */
struct json_out {
    char *out;
    size_t cap; /* bytes, one kept for the NUL */
    size_t len;
    int full;
};

static void put_bytes(struct json_out *w, const char *bytes, size_t n)
{
    if (w->full || n > w->cap - 1 - w->len) {
        w->full = 1;
        return;
    }
    memcpy(w->out + w->len, bytes, n);
    w->len += n;
}

static void put_text(struct json_out *w, const char *text)
{
    put_bytes(w, text, strlen(text));
}

/* Short escapes JSON has names for; other control characters become \u00XX. */
static const char *const named_escapes[0x20] = {
    ['\b'] = "\\b", ['\t'] = "\\t", ['\n'] = "\\n", ['\f'] = "\\f", ['\r'] = "\\r",
};

/* Writes the NUL-terminated "text" as the inside of a JSON string: quote, backslash and
 * control characters escaped, every other byte (UTF-8 included) as is. */
static void put_escaped(struct json_out *w, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = text; /* start of the bytes not yet written */

    for (const char *c = text;; c++) {
        unsigned char byte = (unsigned char)*c;
        if (byte >= 0x20 && byte != '"' && byte != '\\') continue;
        put_bytes(w, run, (size_t)(c - run));
        if (byte == '\0') return;
        if (byte == '"') {
            put_text(w, "\\\"");
        } else if (byte == '\\') {
            put_text(w, "\\\\");
        } else if (named_escapes[byte] != NULL) {
            put_text(w, named_escapes[byte]);
        } else {
            char escape[7] = {'\\', 'u', '0', '0', hex[byte >> 4], hex[byte & 0x0F], '\0'};
            put_text(w, escape);
        }
        run = c + 1;
    }
}

size_t view_encode(const struct product *p, char *out, size_t cap)
{
    struct json_out w = {out, cap, 0, 0};
    char price[MONEY_TEXT_MAX];
    char number[DIGITS_U64_MAX + 2]; /* a sign, the digits, the NUL */

    if (out == NULL || cap == 0) return 0;
    money_format(p->price_cents, price);

    put_text(&w, "{\"id\":\"");
    put_escaped(&w, p->id);
    put_text(&w, "\",\"sku\":\"");
    put_escaped(&w, p->sku);
    put_text(&w, "\",\"name\":\"");
    put_escaped(&w, p->name);
    put_text(&w, "\",\"price\":");
    put_text(&w, price);
    number[digits_i64(number, p->stock)] = '\0';
    put_text(&w, ",\"stock\":");
    put_text(&w, number);
    put_text(&w, p->stock > 0 ? ",\"available\":true" : ",\"available\":false");
    put_text(&w, ",\"desc\":\"");
    put_escaped(&w, p->name);
    put_text(&w, " - $");
    put_text(&w, price);
    number[digits_i64(number, p->version)] = '\0';
    put_text(&w, "\",\"version\":");
    put_text(&w, number);
    put_text(&w, ",\"created_at\":\"");
    put_escaped(&w, p->created_at);
    put_text(&w, "\",\"updated_at\":\"");
    put_escaped(&w, p->updated_at);
    put_text(&w, "\"}");

    if (w.full) {
        out[0] = '\0';
        return 0;
    }
    out[w.len] = '\0';
    return w.len;
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
