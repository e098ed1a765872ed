/* test_page.c - reading a catalog page's Redis replies and assembling its body. */
#include <criterion/criterion.h>
#include <hiredis.h>
#include <string.h>

#include "query/page.h"

/* Parses one RESP reply from "resp". */
static redisReply *parse(const char *resp)
{
    redisReader *reader = redisReaderCreate();
    redisReaderFeed(reader, resp, strlen(resp));
    void *reply = NULL;
    cr_assert_eq(redisReaderGetReply(reader, &reply), REDIS_OK);
    cr_assert_not_null(reply);
    redisReaderFree(reader);
    return reply;
}

Test(page, reads_generation_ids_and_total)
{
    redisReply *reply = parse("*3\r\n$1\r\n7\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n:42\r\n");
    const redisReply *gen, *ids;
    long long total;
    cr_assert_eq(page_read_ids(reply, &gen, &ids, &total), 0);
    cr_assert_str_eq(gen->str, "7");
    cr_assert_eq(ids->elements, 2);
    cr_assert_eq(total, 42);
    freeReplyObject(reply);
    reply = parse("*3\r\n$-1\r\n*0\r\n:0\r\n"); /* no generation */
    cr_assert_eq(page_read_ids(reply, &gen, &ids, &total), 0);
    cr_assert_eq(gen->type, REDIS_REPLY_NIL);
    freeReplyObject(reply);
}

Test(page, refuses_other_shapes)
{
    const char *bad[] = {":1\r\n",
                         "*1\r\n:1\r\n",
                         "*2\r\n*0\r\n:2\r\n",
                         "*3\r\n$1\r\n1\r\n*0\r\n$1\r\n1\r\n",
                         "*3\r\n$1\r\n1\r\n*0\r\n:-1\r\n",
                         "*3\r\n:1\r\n*0\r\n:1\r\n",
                         "*4\r\n$1\r\n1\r\n*0\r\n:1\r\n:1\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *reply = parse(bad[i]);
        const redisReply *gen = NULL, *ids = NULL;
        long long total = -7;
        cr_assert_eq(page_read_ids(reply, &gen, &ids, &total), -1, "accepted case %zu", i);
        freeReplyObject(reply);
    }
}

Test(page, body_is_the_views_as_stored_without_nils)
{
    redisReply *reply = parse("*4\r\n$7\r\n{\"a\":1}\r\n$-1\r\n$7\r\n{\"b\":2}\r\n$-1\r\n");
    size_t size = page_body_size(reply);
    char body[64];
    cr_assert_leq(size, sizeof(body));
    size_t used = page_write_body(reply, body);
    cr_assert_leq(used, size);
    cr_assert_eq(used, strlen("[{\"a\":1},{\"b\":2}]"));
    cr_assert_eq(memcmp(body, "[{\"a\":1},{\"b\":2}]", used), 0);
    freeReplyObject(reply);
}

Test(page, empty_and_not_an_array)
{
    redisReply *empty = parse("*0\r\n");
    char body[8];
    cr_assert_eq(page_body_size(empty), 2);
    cr_assert_eq(page_write_body(empty, body), 2);
    cr_assert_eq(memcmp(body, "[]", 2), 0);
    freeReplyObject(empty);
    redisReply *scalar = parse("$2\r\nhi\r\n");
    cr_assert_eq(page_body_size(scalar), 0);
    freeReplyObject(scalar);
}
