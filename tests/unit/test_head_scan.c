/* test_head_scan.c - the framing fields of a raw HTTP/1 head, and which heads are refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "http/h2o_parser.h"
#include "http/head_scan.h"

static const char *problem_of(const char *head, int minor)
{
    struct head_facts facts;
    cr_assert_eq(head_scan(head, strlen(head), &facts), 0, "no complete head in: %s", head);
    return head_framing_problem(&facts, minor);
}

Test(head_scan, counts_the_framing_fields_and_the_head_length)
{
    static const char head[] = "POST /products HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 5\r\n"
                               "X-Other: 1\r\n\r\nabcde";
    struct head_facts facts;
    cr_assert_eq(head_scan(head, sizeof(head) - 1, &facts), 0);
    cr_assert_eq(facts.length, sizeof(head) - 1 - 5);
    cr_assert_eq(facts.content_length_fields, 1);
    cr_assert_eq(facts.host_fields, 1);
    cr_assert_eq(facts.transfer_encoding_fields, 0);
    cr_assert_null(head_framing_problem(&facts, 1));
}

Test(head_scan, an_unfinished_head_is_not_complete)
{
    struct head_facts facts;
    cr_assert_eq(head_scan("GET / HTTP/1.1\r\nHost: a\r\n", 25, &facts), -1);
    cr_assert_eq(head_scan("GET / HTTP/1.1", 14, &facts), -1);
    cr_assert_eq(head_scan("", 0, &facts), -1);
}

Test(head_scan, accepts_bare_line_feeds_and_one_empty_line_before_the_request)
{
    struct head_facts facts;
    static const char head[] = "\r\nGET / HTTP/1.1\nHost: a\n\n";
    cr_assert_eq(head_scan(head, sizeof(head) - 1, &facts), 0);
    cr_assert_eq(facts.length, sizeof(head) - 1);
    cr_assert_eq(facts.host_fields, 1);
}

Test(head_scan, refuses_what_could_be_framed_two_ways)
{
    cr_assert_not_null(problem_of(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 64\r\n\r\n", 1));
    cr_assert_not_null(problem_of(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        1));
    cr_assert_not_null(problem_of(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        1));
    cr_assert_not_null(problem_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0));
    cr_assert_not_null(problem_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                                  "chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                                  1));
    cr_assert_not_null(problem_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 1));
    cr_assert_not_null(problem_of("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", 1));
    cr_assert_not_null(problem_of("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n", 1));
}

Test(head_scan, accepts_what_has_one_reading)
{
    cr_assert_null(problem_of(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length:5 \r\n\r\n", 1));
    cr_assert_null(
        problem_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 1));
    cr_assert_null(problem_of("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n", 0));
    cr_assert_null(problem_of("GET / HTTP/1.0\r\n\r\n", 0));
    /* names that only contain a framing field's name are other fields */
    cr_assert_null(problem_of(
        "POST / HTTP/1.1\r\nHost: a\r\nX-Content-Length: 9\r\nContent-Length: 5\r\n\r\n", 1));
}

Test(head_scan, finds_the_end_of_a_head_as_it_arrives)
{
    static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next";
    size_t whole = strlen("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    size_t seen = 0, end = 0, len = 0;
    while (end == 0 && len < sizeof(head) - 1) { /* a byte at a time, as a trickling client */
        end = head_end(head, ++len, seen);
        seen = len;
    }
    cr_assert_eq(end, whole);
    cr_assert_eq(len, whole, "the end was found only after %zu bytes", len);
    cr_assert_eq(head_end(head, sizeof(head) - 1, 0), whole);
    cr_assert_eq(head_end("GET / HTTP/1.1\n\n", 16, 0), 16);
    cr_assert_eq(head_end("\r\n", 2, 0), 0);
    cr_assert_eq(head_end("GET / HTTP/1.1\r\nX: 1\r\n", 22, 0), 0);
}

Test(head_scan, finds_a_field_among_the_complete_lines_of_a_head)
{
    static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\nx-request-ID:  abc-1 \r\nX-Pad: zzz";
    struct slice value;
    cr_assert_eq(head_field(head, sizeof(head) - 1, "x-request-id", &value), 0);
    cr_assert_eq(value.len, 5);
    cr_assert_eq(memcmp(value.p, "abc-1", 5), 0);
    cr_assert_eq(head_field(head, sizeof(head) - 1, "x-pad", &value), -1); /* unfinished */
    cr_assert_eq(head_field(head, sizeof(head) - 1, "x-request", &value), -1);
    cr_assert_eq(head_field("GET / HTTP/1.1\r\n\r\nX-A: 1\r\n", 27, "x-a", &value), -1);
    cr_assert_eq(head_field("X-A: 1\r\n", 8, "x-a", &value), -1); /* the request line */
}

/* ---- head_syntax_check: the heads h2o's parser refuses, refused first ---- */

/* What h2o's parser says of "len" bytes: -1 refused, -2 unfinished, else the head's length. */
static int h2o_verdict(const char *bytes, size_t len)
{
    const char *method, *path;
    size_t method_len, path_len, num_headers = HEAD_MAX_FIELD_LINES;
    int minor;
    struct phr_header headers[HEAD_MAX_FIELD_LINES];
    return phr_parse_request(bytes, len, &method, &method_len, &path, &path_len, &minor, headers,
                             &num_headers, 0);
}

static const char *syntax_problem(const char *bytes, size_t len)
{
    struct head_syntax syntax = {0};
    return head_syntax_check(bytes, len, &syntax);
}

/* Heads h2o refuses with its own bare 400: each must be refused here, whole and at every
 * prefix from the byte at fault on. */
static const struct {
    const char *head;
    size_t len;
    const char *reason_part;
} REFUSED[] = {
#define HEAD(text, reason)                                                                         \
    {                                                                                              \
        text, sizeof(text) - 1, reason                                                             \
    }
    HEAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 11\r\n\r\n", "not a token"),
    HEAD("GET / HTTP/1.1\r\nX-Request-Id: a\x1b[31mb\r\n\r\n", "control character in a header"),
    HEAD("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", "control character in a header"),
    HEAD("GET / HTTP/1.1\r\nX\0A: 1\r\n\r\n", "not a token"),
    HEAD("GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n", "control character in a header"),
    HEAD("GET /health HTTP/2.0\r\nHost: a\r\n\r\n", "request line"),
    HEAD("GET /health HTTP/0.9\r\n\r\n", "request line"),
    HEAD("GET /health HTTP/1.10\r\n\r\n", "request line"),
    HEAD("GET /health\r\n\r\n", "control character in the request line"),
    HEAD("GET  /health HTTP/1.1\r\n\r\n", "request line"),
    HEAD("GET /a\tb HTTP/1.1\r\n\r\n", "control character in the request line"),
    HEAD("G\0T / HTTP/1.1\r\n\r\n", "control character in the request line"),
    HEAD("GET / HTTP/1.1\r\nX-A 1\r\n\r\n", "not a token"),
    HEAD("GET / HTTP/1.1\r\nX-A\r\n\r\n", "without a colon"),
    HEAD("GET / HTTP/1.1\r\n: 1\r\n\r\n", "empty name"),
    HEAD("GET / HTTP/1.1\r\n Host: a\r\n\r\n", "not a token"),
    HEAD("GET / HTTP/1.1\r\nX-A: 1\rX-B: 2\r\n\r\n", "CR"),
    HEAD("GET / HTTP/1.1\rHost: a\r\n\r\n", "CR"),
    HEAD("\r\n\r\nGET / HTTP/1.1\r\n\r\n", "control character in the request line"),
    HEAD("\rGET / HTTP/1.1\r\n\r\n", "CR"),
    HEAD("GET / HTTP/1.1\r\nX-\xc3\xa9: 1\r\n\r\n", "not a token"),
#undef HEAD
};

Test(head_syntax, refuses_what_h2o_refuses_with_the_reason)
{
    for (size_t i = 0; i < sizeof(REFUSED) / sizeof(REFUSED[0]); i++) {
        const char *head = REFUSED[i].head, *problem = syntax_problem(head, REFUSED[i].len);
        cr_assert_eq(h2o_verdict(head, REFUSED[i].len), -1, "h2o accepts case %zu", i);
        cr_assert_not_null(problem, "case %zu accepted", i);
        cr_assert_not_null(strstr(problem, REFUSED[i].reason_part), "case %zu: %s", i, problem);
    }
}

Test(head_syntax, names_the_field_at_fault)
{
    static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: a\x1b"
                               "b\r\n\r\n";
    struct head_syntax syntax = {0};
    cr_assert_not_null(head_syntax_check(head, sizeof(head) - 1, &syntax));
    cr_assert_eq(syntax.field_len, 12);
    cr_assert_eq(memcmp(head + syntax.field_at, "X-Request-Id", 12), 0);
    struct head_syntax line = {0};
    cr_assert_not_null(head_syntax_check("GET / HTTP/3\r\n\r\n", 16, &line));
    cr_assert_eq(line.field_len, 0, "a request line is no field");
}

Test(head_syntax, accepts_what_h2o_accepts_up_to_the_end_of_the_head)
{
    static const char *const heads[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\nPOST /products HTTP/1.0\nContent-Type:application/json\n\nbody\0\x1b",
        "\nGET /%e9?x=\xc3\xa9 HTTP/1.9\r\nX-A: \t a\xff\tb \r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: 1\r\n  folded\r\n\tagain\r\nX-B:\r\n\r\n",
        "GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\nGET / HTTP/9",
    };
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        size_t len = strlen(heads[i]) + (i == 1 ? 6 : 0);
        struct head_syntax syntax = {0};
        int h2o = h2o_verdict(heads[i], len);
        cr_assert_gt(h2o, 0, "h2o refuses case %zu", i);
        cr_assert_null(head_syntax_check(heads[i], len, &syntax), "case %zu: %s", i,
                       syntax.problem);
        cr_assert_eq(syntax.checked, (size_t)h2o, "case %zu: the head ends elsewhere", i);
    }
}

/* Targets, names and values are checked a run at a time (plain_run): every byte value, at each
 * offset of a 16-byte run, gets h2o's verdict. */
Test(head_syntax, gets_h2o_verdict_for_every_byte_within_a_run)
{
    static const char *const heads[] = {
        "GET /abcdefghijklmnop HTTP/1.1\r\nX-A: v\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: abcdefghijklmnop\r\n\r\n",
        "POST / HTTP/1.1\r\nabcdefghijklmnop: v\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        for (size_t offset = 0; offset < 16; offset++) {
            for (int c = 0; c < 256; c++) {
                char head[64];
                size_t len = strlen(heads[i]);
                memcpy(head, heads[i], len);
                ((char *)memmem(head, len, "abcdefghijklmnop", 16))[offset] = (char)c;
                int refused = h2o_verdict(head, len) == -1;
                const char *problem = syntax_problem(head, len);
                cr_assert_eq(problem != NULL, refused, "case %zu, byte 0x%02x at %zu: %s", i, c,
                             offset, problem ? problem : "accepted");
            }
        }
    }
}

Test(head_syntax, counts_header_lines_as_h2o_does)
{
    char head[4096];
    size_t len = (size_t)sprintf(head, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HEAD_MAX_FIELD_LINES; i++)
        len += (size_t)sprintf(head + len, "X-%d: %d\r\n", i, i);
    len += (size_t)sprintf(head + len, "\r\n");
    cr_assert_gt(h2o_verdict(head, len), 0);
    cr_assert_null(syntax_problem(head, len), "100 lines are allowed");
    len -= 2;
    len += (size_t)sprintf(head + len, "X-Last: 1\r\n\r\n");
    cr_assert_eq(h2o_verdict(head, len), -1);
    cr_assert_not_null(strstr(syntax_problem(head, len), "more than 100"));
}

Test(head_syntax, gives_the_same_verdict_however_the_head_arrives)
{
    for (size_t i = 0; i < sizeof(REFUSED) / sizeof(REFUSED[0]); i++) {
        struct head_syntax syntax = {0};
        const char *problem = NULL;
        for (size_t len = 0; len <= REFUSED[i].len && !problem; len++) /* a byte at a time */
            problem = head_syntax_check(REFUSED[i].head, len, &syntax);
        cr_assert_str_eq(problem, syntax_problem(REFUSED[i].head, REFUSED[i].len), "case %zu", i);
    }
    static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\n";
    struct head_syntax syntax = {0};
    cr_assert_null(head_syntax_check(head, 10, &syntax));
    cr_assert_null(head_syntax_check(head, sizeof(head) - 1, &syntax));
    cr_assert_eq(syntax.checked, sizeof(head) - 1);
}

/* ---- head_http_minor: the version the framing rules read ---- */

Test(head_http_minor, reads_the_digit_that_ends_the_request_line)
{
    cr_assert_eq(head_http_minor("GET / HTTP/1.1\r\n\r\n", 18), 1);
    cr_assert_eq(head_http_minor("GET / HTTP/1.0\n\n", 16), 0);
    cr_assert_eq(head_http_minor("\r\nPOST /x HTTP/1.0\r\nA: 1\r\n\r\n", 29), 0);
    cr_assert_eq(head_http_minor("GET / HTTP/1.1", 14), -1); /* the line has not ended */
    cr_assert_eq(head_http_minor("\r\n", 2), -1);
}
