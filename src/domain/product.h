/* product.h - the Product of the write model and the validation of command bodies.
 * Pure: no I/O. Invariant: a struct product_draft that a parser returned with BODY_OK holds
 * only values the contract allows (sku charset and length, trimmed name, price and stock
 * ranges), so the store never sees an invalid product. */
#ifndef CATALOGD_PRODUCT_H
#define CATALOGD_PRODUCT_H

#include <stddef.h>
#include <stdint.h>

#include "timestamp.h"
#include "uuid7.h"

#define PRODUCT_SKU_MAX        64  /* characters, all ASCII */
#define PRODUCT_NAME_MAX       200 /* characters (code points), after trimming */
#define PRODUCT_NAME_MAX_BYTES 800 /* 200 code points of at most 4 bytes */
#define PRODUCT_STOCK_MAX      2147483647LL
#define PRODUCT_DELTA_MAX      2147483647LL

struct product {
    char id[UUID_TEXT_LEN + 1];
    char sku[PRODUCT_SKU_MAX + 1];
    char name[PRODUCT_NAME_MAX_BYTES + 1];
    int64_t price_cents;
    int64_t stock;
    int64_t version; /* 1 at creation, +1 per change */
    char created_at[TIMESTAMP_LEN + 1];
    char updated_at[TIMESTAMP_LEN + 1];
};

/* Which fields a draft carries (a create carries all four; a patch any non-empty subset of
 * name, price and stock). */
enum product_field {
    PRODUCT_FIELD_SKU = 1 << 0,
    PRODUCT_FIELD_NAME = 1 << 1,
    PRODUCT_FIELD_PRICE = 1 << 2,
    PRODUCT_FIELD_STOCK = 1 << 3,
};

struct product_draft {
    unsigned fields; /* enum product_field bits present */
    char sku[PRODUCT_SKU_MAX + 1];
    char name[PRODUCT_NAME_MAX_BYTES + 1]; /* trimmed */
    int64_t price_cents;
    int64_t stock;
};

/* A 422 lists every failing field of the body's own rules (at most VALIDATION_MAX_KNOWN,
 * "body" included) and the first VALIDATION_MAX_UNKNOWN unknown fields; the others it counts.
 * A 64 KiB body can name thousands of unknown fields, and listing each would make the answer
 * ten times the request. */
#define VALIDATION_MAX_UNKNOWN 16
#define VALIDATION_MAX_KNOWN   9
#define VALIDATION_MAX_ERRORS  (VALIDATION_MAX_KNOWN + VALIDATION_MAX_UNKNOWN)
#define VALIDATION_FIELD_MAX   64 /* a longer (unknown) field name is cut and ends in "..." */

struct field_error {
    char field[VALIDATION_FIELD_MAX + 1];
    const char *message; /* static text, e.g. "must be a string of 1-64 characters ..." */
};

/* What a body parser found wrong. On BODY_MALFORMED, "detail" says why (for a 400); on
 * BODY_INVALID, "detail" counts the failing fields and "errors" lists them (for a 422), in
 * body order, then missing fields in the order sku, name, price, stock. */
struct validation {
    char detail[200];
    int error_count;    /* listed in "errors" */
    int unknown_listed; /* of those, unknown fields */
    int unlisted_count; /* unknown fields past VALIDATION_MAX_UNKNOWN: counted, not listed */
    struct field_error errors[VALIDATION_MAX_ERRORS];
};

enum body_status {
    BODY_OK = 0,
    BODY_MALFORMED = -1, /* not one JSON object: malformed, empty, array, duplicate keys... */
    BODY_INVALID = -2,   /* one JSON object, but fields fail validation */
};

/* Parse and validate a request body ("body", "len" bytes, untrusted, not NUL-terminated).
 * Each returns an enum body_status; on BODY_OK "*out" is filled, otherwise "*v" says why.
 * - create: {"sku","name","price","stock"}, all required.
 * - patch: a non-empty subset of {"name","price","stock"}; "id", "sku", "version", or any
 *   other key is an error for that field.
 * - stock delta: {"delta": n}, a JSON integer, n != 0, |n| <= PRODUCT_DELTA_MAX.
 * Unknown fields, wrong JSON types (no coercion: "5" is not a number, 5.0 is not an integer)
 * and out-of-range values are field errors. A number too large for the JSON parser (1e309,
 * 99999999999999999999) is reported as a field error when its key can be found. */
int product_parse_create(const char *body, size_t len, struct product_draft *out,
                         struct validation *v);
int product_parse_patch(const char *body, size_t len, struct product_draft *out,
                        struct validation *v);
int product_parse_stock_delta(const char *body, size_t len, int64_t *delta, struct validation *v);

/* The three parsers as one call, and a switch for their fast path. Each parser reads a plain
 * body (one flat object of known keys, strings without escapes, numbers without exponent) in
 * a pass of its own, and has jansson decode any other; "fast" 0 has jansson decode every
 * body. Both ways give the same verdict: fuzz_body and the unit tests compare them. "draft"
 * or "delta" may be NULL when the kind has none. */
enum body_kind {
    BODY_CREATE,
    BODY_PATCH,
    BODY_STOCK_DELTA,
};
int product_parse(enum body_kind kind, const char *body, size_t len, int fast,
                  struct product_draft *draft, int64_t *delta, struct validation *v);

/* 1 when "sku" ("len" bytes) is one the contract allows: 1-PRODUCT_SKU_MAX characters from
 * [A-Za-z0-9._-]. Shared by the body rules and the by-sku query. */
static inline int product_sku_valid(const char *sku, size_t len)
{
    if (len < 1 || len > PRODUCT_SKU_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = sku[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Copies the fields present in "draft" onto "p" (does not touch version or timestamps). */
void product_apply_draft(struct product *p, const struct product_draft *draft);

#endif
