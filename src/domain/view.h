/* view.h - the read model's JSON view of a product, encoded once per change and served byte
 * for byte:
 * {"id":"...","sku":"...","name":"...","price":5000.00,"stock":5,"available":true,
 *  "desc":"PC Gamer Ultra - $5000.00","version":1,"created_at":"...","updated_at":"..."}
 * (one line, no spaces). Invariant: view_encode's output is valid JSON that view_parse reads
 * back to the same id, sku, stock and version. */
#ifndef CATALOGD_VIEW_H
#define CATALOGD_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "product.h"

#define VIEW_MAX 4096 /* bytes; the largest possible view is well under this */

/* Encodes "p" into "out" ("cap" bytes, at least VIEW_MAX). Strings are escaped for JSON
 * (quote, backslash, control characters); non-ASCII UTF-8 is kept as is. Returns the length
 * (no NUL is counted, one is written), or 0 if "cap" is too small. */
size_t view_encode(const struct product *p, char *out, size_t cap);

/* The fields of a view that the read model indexes. */
struct view_fields {
    char id[UUID_TEXT_LEN + 1];
    char sku[PRODUCT_SKU_MAX + 1];
    int64_t stock;
    int64_t version;
};

/* Reads the indexed fields back from a stored view ("json", "len" bytes). Returns 0, or -1 if
 * the bytes are not a view (missing fields, wrong types): the caller treats that as a
 * corrupt read model, never as a crash. */
int view_parse(const char *json, size_t len, struct view_fields *out);

/* Every view starts with {"id":"<id>", (view_encode), so that stored views sort by id
 * (readmodel/layout.h). The id of a stored view (UUID_TEXT_LEN bytes, not NUL-terminated,
 * not checked to be canonical), or NULL when "json" does not start that way. */
#define VIEW_ID_OFFSET 7 /* strlen("{\"id\":\"") */
const char *view_id(const char *json, size_t len);

/* Finds the "version" of a view without a full parse, for ETags on the query path. Returns
 * the version, or -1 if none is found. */
int64_t view_version(const char *json, size_t len);

#endif
