/* test_reply_reader.c - unit tests of reply_reader.c: replies built in the reader's arena
 * read exactly as hiredis' own, across partial feeds, releases and oversized replies. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "query/reply_reader.h"

/* Feeds "bytes" one byte at a time and returns the first complete reply (NULL if none). */
static redisReply *feed_bytewise(redisReader *reader, const char *bytes, size_t n)
{
    void *reply = NULL;
    for (size_t i = 0; i < n && !reply; i++) {
        cr_assert_eq(redisReaderFeed(reader, bytes + i, 1), REDIS_OK);
        cr_assert_eq(redisReaderGetReply(reader, &reply), REDIS_OK);
    }
    return reply;
}

Test(reply_reader, nested_reply_fed_byte_by_byte)
{
    redisReader *reader = reply_reader_new();
    static const char wire[] = "*3\r\n*2\r\n$5\r\nab\0cd\r\n$-1\r\n:42\r\n+QUEUED\r\n";
    redisReply *r = feed_bytewise(reader, wire, sizeof(wire) - 1);
    cr_assert_not_null(r);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 3);
    redisReply *inner = r->element[0];
    cr_assert_eq(inner->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(inner->elements, 2);
    cr_assert_eq(inner->element[0]->len, 5);
    cr_assert(memcmp(inner->element[0]->str, "ab\0cd", 6) == 0, "binary-safe, NUL-terminated");
    cr_assert_eq(inner->element[1]->type, REDIS_REPLY_NIL);
    cr_assert_eq(r->element[1]->type, REDIS_REPLY_INTEGER);
    cr_assert_eq(r->element[1]->integer, 42);
    cr_assert_eq(r->element[2]->type, REDIS_REPLY_STATUS);
    cr_assert_str_eq(r->element[2]->str, "QUEUED");
    reply_reader_release(reader);
    reply_reader_free(reader);
}

Test(reply_reader, replies_after_a_release_are_whole)
{
    redisReader *reader = reply_reader_new();
    static const char wire[] = "$3\r\none\r\n-ERR two\r\n*0\r\n$5\r\nthree\r\n";
    cr_assert_eq(redisReaderFeed(reader, wire, sizeof(wire) - 1), REDIS_OK);
    const char *want[] = {"one", "ERR two", NULL, "three"};
    for (int i = 0; i < 4; i++) {
        void *got = NULL;
        cr_assert_eq(redisReaderGetReply(reader, &got), REDIS_OK);
        redisReply *r = got;
        cr_assert_not_null(r, "reply %d", i);
        if (want[i])
            cr_assert_str_eq(r->str, want[i]);
        else
            cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 0 && r->element == NULL);
        reply_reader_release(reader);
    }
    reply_reader_free(reader);
}

/* 1000 views of 300 bytes: several blocks past the first; each element intact. */
Test(reply_reader, a_reply_bigger_than_the_first_block)
{
    redisReader *reader = reply_reader_new();
    char value[301];
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(redisReaderFeed(reader, "*1000\r\n", 7), REDIS_OK);
        for (int i = 0; i < 1000; i++) {
            memset(value, 'a' + (i + round) % 26, 300);
            char head[16];
            int n = snprintf(head, sizeof(head), "$300\r\n");
            cr_assert_eq(redisReaderFeed(reader, head, (size_t)n), REDIS_OK);
            cr_assert_eq(redisReaderFeed(reader, value, 300), REDIS_OK);
            cr_assert_eq(redisReaderFeed(reader, "\r\n", 2), REDIS_OK);
        }
        void *got = NULL;
        cr_assert_eq(redisReaderGetReply(reader, &got), REDIS_OK);
        redisReply *r = got;
        cr_assert_eq(r->elements, 1000);
        for (int i = 0; i < 1000; i++) {
            cr_assert_eq(r->element[i]->len, 300);
            cr_assert_eq(r->element[i]->str[0], 'a' + (i + round) % 26);
            cr_assert_eq(r->element[i]->str[299], 'a' + (i + round) % 26);
        }
        reply_reader_release(reader);
    }
    reply_reader_free(reader);
}

Test(reply_reader, an_absurd_array_header_fails_the_reader)
{
    redisReader *reader = reply_reader_new();
    static const char wire[] = "*2147483647\r\n";
    cr_assert_eq(redisReaderFeed(reader, wire, sizeof(wire) - 1), REDIS_OK);
    void *got = NULL;
    cr_assert_eq(redisReaderGetReply(reader, &got), REDIS_ERR);
    cr_assert_null(got);
    reply_reader_free(reader);
}

Test(reply_reader, a_partial_reply_is_freed_with_the_reader)
{
    redisReader *reader = reply_reader_new();
    static const char wire[] = "*2\r\n$3\r\nabc\r\n$10\r\nabc";
    cr_assert_null(feed_bytewise(reader, wire, sizeof(wire) - 1));
    reply_reader_free(reader); /* LeakSanitizer (make asan) checks nothing is left */
}
