/* fuzz_body.c - libFuzzer target: a request body through the three command parsers
 * (product_parse_create, _patch, _stock_delta), and every draft they accept through the view
 * the read model stores (view_encode, view_parse, view_version).
 * Invariants checked, beyond "no crash":
 * - a parser returns BODY_OK, BODY_MALFORMED or BODY_INVALID; malformed-ness depends on the
 *   body only, so the three parsers agree on it, with the same detail;
 * - a BODY_MALFORMED detail is printable ASCII and renders as a problem; a BODY_INVALID
 *   lists 1..VALIDATION_MAX_ERRORS fields, each valid UTF-8 and renderable in the 422;
 * - a BODY_OK draft holds only what the contract allows (product.h's invariant);
 * - the view of a product built from an accepted draft is valid JSON that reads back to the
 *   same id, sku, name, price, stock, availability, desc and version (view.h's invariant),
 *   view_version finds that version (the ETag), and view_encode refuses a buffer one byte
 *   short without writing past it;
 * - each parser gives the same verdict with its fast path as with jansson alone (product_parse
 *   with fast 1 and 0): the same status, draft or delta, detail and field errors. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "common/problem.h"
#include "domain/money.h"
#include "domain/product.h"
#include "domain/timestamp.h"
#include "domain/uuid7.h"
#include "domain/view.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 when "s" ("len" bytes) is valid UTF-8 without NUL: what jansson's json_pack "s" takes. */
static int is_packable_text(const char *s, size_t len)
{
    json_t *text = json_stringn(s, len);
    int ok = text != NULL && memchr(s, '\0', len) == NULL;
    json_decref(text);
    return ok;
}

/* Renders a problem as the HTTP layer does and checks the text is one JSON object. */
static void check_problem_renders(int status, const char *slug, const char *detail, json_t *extra)
{
    size_t len = 0;
    char *text = problem_render(status, slug, detail, extra, &len); /* aborts on failure */
    json_error_t error;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &error);
    CHECK(json_is_object(doc));
    json_decref(doc);
    free(text);
}

static void check_validation(int rc, const struct validation *v)
{
    CHECK(rc == BODY_OK || rc == BODY_MALFORMED || rc == BODY_INVALID);
    CHECK(memchr(v->detail, '\0', sizeof v->detail) != NULL);
    if (rc == BODY_OK) {
        CHECK(v->error_count == 0);
        return;
    }
    CHECK(v->detail[0] != '\0');
    if (rc == BODY_MALFORMED) {
        CHECK(v->error_count == 0);
        for (const char *c = v->detail; *c; c++)
            CHECK(*c >= 0x20 && *c <= 0x7E);
        check_problem_renders(400, "malformed-body", v->detail, NULL);
        return;
    }
    CHECK(v->error_count >= 1 && v->error_count <= VALIDATION_MAX_ERRORS);
    /* The 422 as http_respond_invalid (src/http/exchange.c) builds it: a field that jansson
     * refuses would silently vanish from the response. */
    json_t *errors = json_array();
    for (int i = 0; i < v->error_count; i++) {
        const struct field_error *e = &v->errors[i];
        const char *nul = memchr(e->field, '\0', sizeof e->field);
        CHECK(nul != NULL); /* "" is a key JSON allows, so an empty name is fine */
        CHECK(is_packable_text(e->field, (size_t)(nul - e->field)));
        CHECK(e->message != NULL && e->message[0] != '\0');
        json_t *item = json_pack("{s:s, s:s}", "field", e->field, "message", e->message);
        CHECK(item != NULL);
        CHECK(json_array_append_new(errors, item) == 0);
    }
    check_problem_renders(422, "validation-failed", v->detail,
                          json_pack("{s:o}", "errors", errors));
}

static int is_sku_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static int is_ascii_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* The draft holds only fields in "allowed", each within the contract's rules. */
static void check_draft(const struct product_draft *d, unsigned allowed)
{
    CHECK((d->fields & ~allowed) == 0);
    if (d->fields & PRODUCT_FIELD_SKU) {
        size_t len = strnlen(d->sku, sizeof d->sku);
        CHECK(len >= 1 && len <= PRODUCT_SKU_MAX);
        for (size_t i = 0; i < len; i++)
            CHECK(is_sku_char(d->sku[i]));
    }
    if (d->fields & PRODUCT_FIELD_NAME) {
        size_t len = strnlen(d->name, sizeof d->name), code_points = 0;
        CHECK(len >= 1 && len <= PRODUCT_NAME_MAX_BYTES);
        CHECK(is_packable_text(d->name, len));
        CHECK(!is_ascii_space(d->name[0]) && !is_ascii_space(d->name[len - 1])); /* trimmed */
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)d->name[i];
            CHECK(c >= 0x20 && c != 0x7F);
            code_points += (c & 0xC0) != 0x80;
        }
        CHECK(code_points <= PRODUCT_NAME_MAX);
    }
    if (d->fields & PRODUCT_FIELD_PRICE)
        CHECK(d->price_cents >= 0 && d->price_cents <= MONEY_MAX_CENTS);
    if (d->fields & PRODUCT_FIELD_STOCK) CHECK(d->stock >= 0 && d->stock <= PRODUCT_STOCK_MAX);
}

static void check_string_member(const json_t *doc, const char *key, const char *expected)
{
    const json_t *value = json_object_get(doc, key);
    CHECK(json_is_string(value));
    CHECK(json_string_length(value) == strlen(expected));
    CHECK(memcmp(json_string_value(value), expected, strlen(expected)) == 0);
}

/* Encodes "p" and checks what a client and the read model read back from the bytes. */
static void check_view(const struct product *p)
{
    char out[VIEW_MAX];
    size_t n = view_encode(p, out, sizeof out);
    CHECK(n > 0 && n < sizeof out);
    CHECK(out[n] == '\0' && strlen(out) == n);

    json_error_t error;
    json_t *doc = json_loadb(out, n, JSON_REJECT_DUPLICATES, &error);
    CHECK(json_is_object(doc));
    check_string_member(doc, "id", p->id);
    check_string_member(doc, "sku", p->sku);
    check_string_member(doc, "name", p->name);
    check_string_member(doc, "created_at", p->created_at);
    check_string_member(doc, "updated_at", p->updated_at);

    /* The price's literal in the view is the price stored, to the cent, and what a client
     * parses as a double rounds to it. */
    char price[MONEY_TEXT_MAX], desc[PRODUCT_NAME_MAX_BYTES + MONEY_TEXT_MAX + 8];
    size_t price_len = money_format(p->price_cents, price);
    char member[MONEY_TEXT_MAX + 16];
    snprintf(member, sizeof member, "\"price\":%s,", price);
    CHECK(strstr(out, member) != NULL);
    int64_t cents = -1;
    CHECK(money_parse(price, price_len, &cents) == MONEY_OK && cents == p->price_cents);
    const json_t *price_value = json_object_get(doc, "price");
    CHECK(json_is_number(price_value));
    CHECK(llround(json_number_value(price_value) * 100.0) == p->price_cents);
    snprintf(desc, sizeof desc, "%s - $%s", p->name, price);
    check_string_member(doc, "desc", desc);

    const json_t *stock = json_object_get(doc, "stock"), *version = json_object_get(doc, "version");
    CHECK(json_is_integer(stock) && json_integer_value(stock) == p->stock);
    CHECK(json_is_integer(version) && json_integer_value(version) == p->version);
    CHECK(json_is_boolean(json_object_get(doc, "available")));
    CHECK(json_is_true(json_object_get(doc, "available")) == (p->stock > 0));
    CHECK(json_object_size(doc) == 10);
    json_decref(doc);

    struct view_fields fields;
    CHECK(view_parse(out, n, &fields) == 0);
    CHECK(strcmp(fields.id, p->id) == 0);
    CHECK(strcmp(fields.sku, p->sku) == 0);
    CHECK(fields.stock == p->stock);
    CHECK(fields.version == p->version);

    /* The ETag the query path sends for these bytes. */
    CHECK(view_version(out, n) == p->version);

    /* Exactly n + 1 bytes fit; n do not, and nothing is written past them (ASan watches). */
    char *exact = malloc(n + 1), *short_by_one = malloc(n);
    CHECK(exact != NULL && short_by_one != NULL);
    CHECK(view_encode(p, exact, n + 1) == n && memcmp(exact, out, n + 1) == 0);
    CHECK(view_encode(p, short_by_one, n) == 0 && short_by_one[0] == '\0');
    free(exact);
    free(short_by_one);
}

/* A product as the writer would create it from "draft": id, clock and version derived from
 * the input so that a crash reproduces from its file alone. */
static void product_from_draft(const struct product_draft *draft, uint64_t seed, struct product *p)
{
    struct uuid7_generator generator = {0, 0};
    uint8_t random[8];

    memset(p, 0, sizeof *p);
    memcpy(random, &seed, sizeof random);
    uint64_t now_ms = seed >> 21; /* up to 2^43 ms: before the year 2250 */
    uuid7_next(&generator, now_ms, random, p->id);
    timestamp_format(now_ms, p->created_at);
    timestamp_format(now_ms + (seed & 0xFFFFF), p->updated_at);
    p->version = 1 + (int64_t)(seed % 2147483647u);
    product_apply_draft(p, draft);
}

static void check_same_validation(const struct validation *a, const struct validation *b)
{
    CHECK(strcmp(a->detail, b->detail) == 0);
    CHECK(a->error_count == b->error_count && a->unlisted_count == b->unlisted_count);
    for (int i = 0; i < a->error_count && i < VALIDATION_MAX_ERRORS; i++) {
        CHECK(strcmp(a->errors[i].field, b->errors[i].field) == 0);
        CHECK(strcmp(a->errors[i].message, b->errors[i].message) == 0);
    }
}

/* The fast path reads "body" as jansson does, for every kind of body. */
static void check_fast_path_agrees(const char *body, size_t size)
{
    static const enum body_kind kinds[] = {BODY_CREATE, BODY_PATCH, BODY_STOCK_DELTA};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        struct product_draft fast_draft, slow_draft;
        int64_t fast_delta = 0, slow_delta = 0;
        struct validation fast_v, slow_v;
        int fast_rc = product_parse(kinds[k], body, size, 1, &fast_draft, &fast_delta, &fast_v);
        int slow_rc = product_parse(kinds[k], body, size, 0, &slow_draft, &slow_delta, &slow_v);
        CHECK(fast_rc == slow_rc);
        check_same_validation(&fast_v, &slow_v);
        CHECK(fast_draft.fields == slow_draft.fields);
        CHECK(strcmp(fast_draft.sku, slow_draft.sku) == 0);
        CHECK(strcmp(fast_draft.name, slow_draft.name) == 0);
        CHECK(fast_draft.price_cents == slow_draft.price_cents);
        CHECK(fast_draft.stock == slow_draft.stock);
        CHECK(fast_delta == slow_delta);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    uint64_t seed = fuzz_hash(data, size);
    struct product_draft created, patch;
    struct validation v_create, v_patch, v_delta;
    int64_t delta = 0;
    struct product product;

    int rc_create = product_parse_create(body, size, &created, &v_create);
    int rc_patch = product_parse_patch(body, size, &patch, &v_patch);
    int rc_delta = product_parse_stock_delta(body, size, &delta, &v_delta);
    check_validation(rc_create, &v_create);
    check_validation(rc_patch, &v_patch);
    check_validation(rc_delta, &v_delta);
    check_fast_path_agrees(body, size);

    CHECK((rc_create == BODY_MALFORMED) == (rc_patch == BODY_MALFORMED));
    CHECK((rc_create == BODY_MALFORMED) == (rc_delta == BODY_MALFORMED));
    if (rc_create == BODY_MALFORMED) {
        CHECK(strcmp(v_create.detail, v_patch.detail) == 0);
        CHECK(strcmp(v_create.detail, v_delta.detail) == 0);
    }

    if (rc_create == BODY_OK) {
        CHECK(created.fields ==
              (PRODUCT_FIELD_SKU | PRODUCT_FIELD_NAME | PRODUCT_FIELD_PRICE | PRODUCT_FIELD_STOCK));
        check_draft(&created, created.fields);
    }
    if (rc_patch == BODY_OK) {
        CHECK(patch.fields != 0);
        check_draft(&patch, PRODUCT_FIELD_NAME | PRODUCT_FIELD_PRICE | PRODUCT_FIELD_STOCK);
    }
    if (rc_delta == BODY_OK)
        CHECK(delta != 0 && delta >= -PRODUCT_DELTA_MAX && delta <= PRODUCT_DELTA_MAX);

    /* Patch a product: the accepted create, or a fixed one. Fields the patch lacks stay. */
    static const struct product_draft base_draft = {
        .fields =
            PRODUCT_FIELD_SKU | PRODUCT_FIELD_NAME | PRODUCT_FIELD_PRICE | PRODUCT_FIELD_STOCK,
        .sku = "GAMER-PC-01",
        .name = "PC Gamer Ultra",
        .price_cents = 500000,
        .stock = 5,
    };
    product_from_draft(rc_create == BODY_OK ? &created : &base_draft, seed, &product);
    if (rc_create == BODY_OK) check_view(&product);
    if (rc_patch == BODY_OK) {
        struct product before = product;
        product_apply_draft(&product, &patch);
        product.version++;
        CHECK(strcmp(product.sku, before.sku) == 0 && strcmp(product.id, before.id) == 0);
        if (!(patch.fields & PRODUCT_FIELD_NAME)) CHECK(strcmp(product.name, before.name) == 0);
        if (!(patch.fields & PRODUCT_FIELD_PRICE)) CHECK(product.price_cents == before.price_cents);
        if (!(patch.fields & PRODUCT_FIELD_STOCK)) CHECK(product.stock == before.stock);
        check_view(&product);
    }
    return 0;
}
