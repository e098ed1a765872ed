/* params.c - see params.h. */
#include "query/params.h"

#include "common/digits.h"

#include <string.h>

/* 1 when "key" ("len" bytes, as the query writes it) is "name" ("name_len" bytes) once
 * percent-decoded. */
static int key_is(const char *key, size_t len, const char *name, size_t name_len)
{
    if (!memchr(key, '%', len)) return len == name_len && memcmp(key, name, name_len) == 0;
    char decoded[QUERY_VALUE_MAX + 1];
    int n = percent_decode(key, len, decoded, sizeof(decoded));
    return n >= 0 && (size_t)n == name_len && memcmp(decoded, name, name_len) == 0;
}

int query_find_param(const char *query, size_t len, const char *name, struct query_value *value)
{
    size_t name_len = strlen(name);
    const char *p = query, *end = query + len;
    int found = 0;
    while (p < end && found < 2) {
        const char *pair_end = memchr(p, '&', (size_t)(end - p));
        if (!pair_end) pair_end = end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *key_end = eq ? eq : pair_end;
        if (key_is(p, (size_t)(key_end - p), name, name_len) &&
            found++ == 0) { /* the first occurrence's value */
            const char *text = eq ? eq + 1 : pair_end;
            int n =
                percent_decode(text, (size_t)(pair_end - text), value->text, sizeof(value->text));
            value->fault = n < 0 ? n : 0;
            value->len = n < 0 ? 0 : (size_t)n;
            if (n < 0) value->text[0] = '\0';
        }
        p = pair_end + 1;
    }
    return found;
}

int query_parse_limit(const char *text, size_t len, int max, int *limit)
{
    int64_t value;
    if (digits_parse(text, len, 1, max, &value) < 0) return -1;
    *limit = (int)value;
    return 0;
}

int query_etag_matches(const char *header, size_t len, const char *etag, size_t etag_len)
{
    const char *p = header, *end = header + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',' || *p == '\t'))
            p++;
        const char *start = p;
        while (p < end && *p != ',')
            p++;
        const char *stop = p;
        while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if (stop - start >= 2 && start[0] == 'W' && start[1] == '/') start += 2;
        if ((stop - start == 1 && *start == '*') ||
            ((size_t)(stop - start) == etag_len && memcmp(start, etag, etag_len) == 0))
            return 1;
    }
    return 0;
}
