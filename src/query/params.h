/* params.h - the pure parsing of query inputs: the query string, the catalog's limit, a plausible
 * SKU in a path, If-None-Match. No I/O, so unit tests and fuzzers reach them directly. */
#ifndef CATALOGD_PARAMS_H
#define CATALOGD_PARAMS_H

#include <stddef.h>

#include "common/percent.h"

/* A query parameter's value, percent-decoded. QUERY_VALUE_MAX is longer than any value a
 * catalog parameter accepts. */
#define QUERY_VALUE_MAX 64
struct query_value {
    char text[QUERY_VALUE_MAX + 1]; /* NUL-terminated; empty unless "fault" is 0 */
    size_t len;
    int fault; /* 0, or why the value could not be read: PERCENT_MALFORMED, PERCENT_TOO_LONG */
};

/* Finds parameter "name" in the query string "query" ("len" bytes, after the '?'). Names and
 * values are read percent-decoded (RFC 3986 2.1: "%6Cimit" is "limit"), as a cache or proxy in
 * front that normalizes the query reads them. Returns how often it occurs, 2 standing for "more
 * than once" (0 when absent), and the first occurrence's value in "*value"; "name" alone (no
 * '=') has an empty value. */
int query_find_param(const char *query, size_t len, const char *name, struct query_value *value);

/* Parses "text" ("len" bytes) as a decimal integer from 1 to "max". Returns 0 and "*limit",
 * or -1 (empty, signs, spaces, leading garbage, too large). */
int query_parse_limit(const char *text, size_t len, int max, int *limit);

/* 1 when the If-None-Match value "header" ("len" bytes: a list of entity tags, or "*")
 * matches "etag" (a quoted tag, "etag_len" bytes). Weak tags compare equal (RFC 9110 13.1.2). */
int query_etag_matches(const char *header, size_t len, const char *etag, size_t etag_len);

#endif
