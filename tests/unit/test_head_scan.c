/* test_head_scan.c - the framing fields of a raw HTTP/1 head, and which heads are refused. */
#include <criterion/criterion.h>
#include <string.h>

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
