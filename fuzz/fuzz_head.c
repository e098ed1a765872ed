/* fuzz_head.c - libFuzzer target: raw HTTP/1 request heads through head_scan, head_end and
 * head_framing_problem (src/http/head_scan.c), which read again the bytes h2o parsed to refuse
 * ambiguous framing and to cut heads over --max-header-bytes as they arrive.
 * Invariants checked, beyond "no crash" and no read past the input:
 * - a complete head has a length within the input, ending in an empty line, and head_end of
 *   the input finds that same length;
 * - head_end fed the input in two pieces (the split taken from the input's hash, the second
 *   call told how much the first saw) finds what one call over the whole input finds;
 * - head_end is 0 or an offset within the input just after "\n\n" or "\n\r\n";
 * - the framing verdict is NULL or a non-empty reason, and a head with more than one
 *   Host, Transfer-Encoding or differing Content-Length is never accepted;
 * - head_field (the X-Request-Id of a head cut for its size) finds a value within the input,
 *   trimmed, without a line end;
 * - head_syntax_check agrees with picohttpparser, the parser h2o really uses (linked from the
 *   installed libh2o): every head it refuses is refused here; every head it accepts is
 *   accepted here, ending at the same byte; a head refused here that it calls unfinished is
 *   one whose request line is wrong before the 9 bytes of "HTTP/1.x\r" it waits for; and the
 *   verdict is the same when the head comes in two pieces. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "http/h2o_parser.h"
#include "http/head_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_syntax_against_h2o(const char *bytes, size_t size, size_t split)
{
    const char *method, *path;
    size_t method_len, path_len, num_headers = HEAD_MAX_FIELD_LINES;
    int minor;
    struct phr_header headers[HEAD_MAX_FIELD_LINES];
    int h2o = phr_parse_request(bytes, size, &method, &method_len, &path, &path_len, &minor,
                                headers, &num_headers, 0);
    struct head_syntax whole = {0}, pieces = {0};
    const char *problem = head_syntax_check(bytes, size, &whole);
    if (h2o == -1) CHECK(problem != NULL);
    if (h2o >= 0) CHECK(problem == NULL && whole.checked == (size_t)h2o);
    if (h2o >= 0) CHECK(head_http_minor(bytes, size) == minor); /* the version the rules read */
    if (h2o == -2 && problem) CHECK(whole.field_len == 0 && strstr(problem, "request line"));
    if (problem && whole.field_len) CHECK(whole.field_at + whole.field_len <= size);
    head_syntax_check(bytes, split, &pieces);
    CHECK(head_syntax_check(bytes, size, &pieces) == problem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly "size" bytes, so that AddressSanitizer catches a read one past it. */
    char *bytes = malloc(size ? size : 1);
    if (!bytes) abort();
    if (size) memcpy(bytes, data, size);

    size_t end = head_end(bytes, size, 0);
    CHECK(end <= size);
    if (end) {
        CHECK(end >= 2 && bytes[end - 1] == '\n');
        CHECK(bytes[end - 2] == '\n' ||
              (end >= 3 && bytes[end - 2] == '\r' && bytes[end - 3] == '\n'));
    }
    size_t split = size ? (size_t)(fuzz_hash(data, size) % (size + 1)) : 0;
    size_t first = head_end(bytes, split, 0);
    if (first) {
        CHECK(first == end);
    } else {
        CHECK(head_end(bytes, size, split) == end);
    }

    /* A field found lies within the input, trimmed, on a line of its own. */
    struct slice value;
    if (head_field(bytes, size, "x-request-id", &value) == 0) {
        CHECK(value.p >= bytes && value.p + value.len <= bytes + size);
        CHECK(value.len == 0 || (value.p[0] != ' ' && value.p[value.len - 1] != ' '));
        CHECK(memchr(value.p, '\n', value.len) == NULL);
    }

    check_syntax_against_h2o(bytes, size, split);

    struct head_facts facts;
    int rc = head_scan(bytes, size, &facts);
    CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        CHECK(facts.length > 0 && facts.length <= size);
        CHECK(head_end(bytes, size, 0) == facts.length);
        for (int minor = 0; minor <= 1; minor++) {
            const char *problem = head_framing_problem(&facts, minor);
            CHECK(problem == NULL || problem[0] != '\0');
            if (facts.host_fields > 1 || facts.transfer_encoding_fields > 1 ||
                facts.content_lengths_differ || facts.folded_lines > 0 ||
                (facts.transfer_encoding_fields && facts.content_length_fields) ||
                (facts.transfer_encoding_fields && minor == 0))
                CHECK(problem != NULL);
            else
                CHECK(problem == NULL);
        }
    }
    free(bytes);
    return 0;
}
