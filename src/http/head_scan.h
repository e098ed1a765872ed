/* head_scan.h - what the raw head of an HTTP/1 request says about its framing, which h2o 2.2.5
 * does not tell a handler. h2o keeps the first Content-Length and lets Transfer-Encoding win
 * over it, keeps the last Host, accepts folded lines and chunked HTTP/1.0, and hides
 * Content-Length and Transfer-Encoding from the request's header list; a proxy in front may
 * read the same bytes differently (request smuggling). So the head is read again, from the
 * bytes h2o parsed, and a request that could be framed two ways is refused (RFC 9112 6.1, 6.3).
 * Pure: no h2o types, no allocation. */
#ifndef CATALOGD_HEAD_SCAN_H
#define CATALOGD_HEAD_SCAN_H

#include <stddef.h>

#include "common/slice.h"

struct head_facts {
    size_t length; /* bytes of the head: the request line, the fields, the empty line */
    int content_length_fields;
    int content_lengths_differ; /* two Content-Length fields whose values are not the same text */
    int transfer_encoding_fields;
    int host_fields;
    int folded_lines; /* field lines continued on the next line (obs-fold) */
};

/* Reads the head at the start of "bytes" ("len" of them), as picohttpparser (h2o's parser) does:
 * one empty line before the request line is skipped, lines end in LF or CRLF, the head ends at
 * the first empty line. Returns 0 and fills "*out" when the head is complete within "len"
 * bytes, else -1 ("*out" then holds what was seen). */
int head_scan(const char *bytes, size_t len, struct head_facts *out);

/* Finds the first field named "name" (lowercase) among the complete lines of the head at
 * "bytes" ("len" bytes; the head may be unfinished). Returns 0 and its value, trimmed, in
 * "*value", or -1. */
int head_field(const char *bytes, size_t len, const char *name, struct slice *value);

/* The reason a request with this head must be refused (400, then the connection closed), or
 * NULL when its framing is unambiguous. "http_minor" is 0 for HTTP/1.0, 1 for HTTP/1.1. */
const char *head_framing_problem(const struct head_facts *facts, int http_minor);

/* The minor version of the request line at the start of "bytes" ("len" of them), whose syntax
 * head_syntax_check passed: the digit that ends it. -1 before the line is complete. */
int head_http_minor(const char *bytes, size_t len);

/* How far the syntax of a head has been checked (head_syntax_check): zero it for a new head. */
struct head_syntax {
    size_t checked;      /* bytes of the head read so far */
    int state;           /* where in the head the next byte falls (head_scan.c) */
    int version_at;      /* bytes of "HTTP/1." matched in the request line */
    int field_lines;     /* complete field lines, folded ones too */
    size_t field_at;     /* the offset of the name of the field being read */
    size_t field_len;    /* and its length, once its colon has come */
    const char *problem; /* why the head is refused, once it is (then checking stops) */
};

#define HEAD_MAX_FIELD_LINES 100 /* h2o 2.2.5's H2O_MAX_HEADERS */

/* Checks the head at the start of "bytes" ("len" bytes read of it so far, perhaps unfinished)
 * against the grammar picohttpparser (h2o's parser) accepts, from where "*syntax" stopped:
 * each byte is looked at once, however the head arrives. A head h2o would refuse gets its 400
 * from catalogd (problem+json, X-Request-Id) instead of h2o's bare text. The grammar: at most
 * one empty line first; a request line "METHOD SP TARGET SP HTTP/1.d" whose method and target
 * hold no control character (below 0x20) nor DEL; field lines "NAME:VALUE" whose name is 1 or
 * more RFC 9110 tchar and whose value holds no control character but HTAB, at most
 * HEAD_MAX_FIELD_LINES of them (a line starting with SP or HTAB continues the previous one);
 * every CR followed by LF; then an empty line. Returns NULL while the bytes so far can begin
 * such a head (the bytes after its empty line are not looked at), else the reason it is
 * refused (also in syntax->problem; when syntax->field_len is not 0, the field at fault is
 * named by the "field_len" bytes at "field_at": its name, as far as it was read). */
const char *head_syntax_check(const char *bytes, size_t len, struct head_syntax *syntax);

/* The length of the complete head at the start of "bytes" ("len" of them): the offset just
 * past its empty line, or 0 when no empty line has come yet. "from" says that no empty line
 * ends before that offset (a caller reading a head as it arrives passes the previous "len"),
 * so each call looks only at new bytes. */
size_t head_end(const char *bytes, size_t len, size_t from);

#endif
