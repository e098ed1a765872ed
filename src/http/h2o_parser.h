/* h2o_parser.h - the entry point of the HTTP/1 parser h2o uses (picohttpparser), which the
 * installed libh2o exports without a header of its own. catalogd does not call it: the unit
 * tests and fuzz_head compare head_syntax_check (head_scan.h) with it, so that what the
 * connection guard refuses is exactly what h2o's parser would. */
#ifndef CATALOGD_H2O_PARSER_H
#define CATALOGD_H2O_PARSER_H

#include <stddef.h>

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Returns the head's length, -1 when the bytes are not a valid head, -2 when unfinished. */
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

#endif
