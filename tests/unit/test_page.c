/* test_page.c - reading a catalog page's Redis replies and assembling its body. */
#include <criterion/criterion.h>
#include <hiredis.h>
#include <stdio.h>
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

#define V(id, rest) "{\"id\":\"" id "\"," rest "}"
#define ID_A        "01a22e1c-66c4-7000-98ec-8a2b1f9c2b81"
#define ID_B        "01a22e1c-66ce-7000-bf9d-6b751cce8b40"
#define ID_C        "01a22e1c-66d6-7000-9215-d4b423c47155"

/* RESP of one bulk string. */
static char *bulk(char *out, const char *s)
{
    return out + sprintf(out, "$%zu\r\n%s\r\n", strlen(s), s);
}

/* The generation pointer as catalogd writes it, or -1: a hand-written "007" names no
   generation (the by-sku script would build its keys from that very text). */
Test(page, generation_only_as_catalogd_writes_it)
{
    const struct {
        const char *resp;
        int64_t gen;
    } cases[] = {{"$1\r\n7\r\n", 7},    {"$2\r\n12\r\n", 12}, {"$-1\r\n", 0},
                 {"$3\r\n007\r\n", -1}, {"$2\r\n01\r\n", -1}, {"$2\r\n 1\r\n", -1},
                 {"$2\r\n+1\r\n", -1},  {"$0\r\n\r\n", -1},   {":7\r\n", -1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        redisReply *reply = parse(cases[i].resp);
        cr_expect_eq(page_generation(reply), cases[i].gen, "case %zu", i);
        freeReplyObject(reply);
    }
}

/* The reply to MGET {prefix}:gen-v2 {prefix}:confirmed-run: "gen" then "run", each RESP. */
#define POINTER(gen, run) "*2\r\n" gen run
#define RUN               "1111111111222222222233333333334444444444"
#define CONFIRMED         "$40\r\n" RUN "\r\n"
#define NONE              "$-1\r\n"
#define CHECKPOINT        "$1\r\n5\r\n"

/* A pointer to the generation read in, which has no checkpoint, names none; one to another
 * generation is that one, whatever the checkpoint of the one read in. A generation that is
 * there, in a Redis the read model is not confirmed in, is PAGE_UNCONFIRMED. */
Test(page, live_generation_needs_the_checkpoint_of_the_one_read_in_and_a_confirmed_redis)
{
    const struct {
        const char *pointer, *checkpoint;
        int64_t read_in, gen;
    } cases[] = {
        {POINTER("$1\r\n7\r\n", CONFIRMED), CHECKPOINT, 7, 7},
        {POINTER("$1\r\n7\r\n", CONFIRMED), NONE, 7, 0},
        {POINTER("$1\r\n7\r\n", CONFIRMED), NONE, 6, 7},
        {POINTER("$1\r\n7\r\n", CONFIRMED), NONE, 0, 7},
        {POINTER(NONE, CONFIRMED), NONE, 0, 0},
        {POINTER(NONE, CONFIRMED), CHECKPOINT, 7, 0},
        {POINTER("$3\r\n007\r\n", CONFIRMED), CHECKPOINT, 7, -1},
        {POINTER("$1\r\n7\r\n", CONFIRMED), ":1\r\n", 7, -1}, /* EXISTS' reply */
        /* a checkpoint not as catalogd writes it is none (it is rebuilt over) */
        {POINTER("$1\r\n7\r\n", CONFIRMED), "$2\r\n05\r\n", 7, 0},
        {POINTER("$1\r\n7\r\n", CONFIRMED), "$2\r\n-1\r\n", 7, 0},
        {POINTER("$16\r\n9007199254740991\r\n", CONFIRMED), CHECKPOINT, 0, 9007199254740991},
        {POINTER("$16\r\n9007199254740992\r\n", CONFIRMED), CHECKPOINT, 0, -1},
        /* not confirmed: no key, another run, another length, another type */
        {POINTER("$1\r\n7\r\n", NONE), CHECKPOINT, 7, PAGE_UNCONFIRMED},
        {POINTER("$1\r\n7\r\n", "$40\r\n1111111111222222222233333333334444444445\r\n"), CHECKPOINT,
         7, PAGE_UNCONFIRMED},
        {POINTER("$1\r\n7\r\n", "$39\r\n111111111122222222223333333333444444444\r\n"), CHECKPOINT,
         7, PAGE_UNCONFIRMED},
        {POINTER("$1\r\n7\r\n", ":1\r\n"), CHECKPOINT, 7, -1},
        /* none, or none in the one read in, says so first */
        {POINTER(NONE, NONE), CHECKPOINT, 7, 0},
        {POINTER("$1\r\n7\r\n", NONE), NONE, 7, 0},
        /* not an MGET of two */
        {"$1\r\n7\r\n", CHECKPOINT, 7, -1},
        {"*1\r\n$1\r\n7\r\n", CHECKPOINT, 7, -1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        redisReply *pointer = parse(cases[i].pointer), *checkpoint = parse(cases[i].checkpoint);
        cr_expect_eq(page_live_generation(pointer, checkpoint, cases[i].read_in, RUN, 0),
                     cases[i].gen, "case %zu", i);
        freeReplyObject(pointer);
        freeReplyObject(checkpoint);
    }
}

/* A checkpoint of the generation read in below the applied floor is a Redis that went back:
 * PAGE_UNCONFIRMED. The floor of the generation read in says nothing of another one. */
Test(page, a_checkpoint_below_the_applied_floor_is_unconfirmed)
{
    const struct {
        const char *checkpoint;
        int64_t read_in, floor, gen;
    } cases[] = {{"$1\r\n5\r\n", 7, 5, 7},
                 {"$1\r\n5\r\n", 7, 4, 7},
                 {"$1\r\n5\r\n", 7, 6, PAGE_UNCONFIRMED},
                 {"$2\r\n10\r\n", 7, 9, 7},
                 {"$1\r\n9\r\n", 7, 10, PAGE_UNCONFIRMED},
                 {"$1\r\n5\r\n", 6, 6, 7},
                 {NONE, 7, 6, 0}};
    redisReply *pointer = parse(POINTER("$1\r\n7\r\n", CONFIRMED));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        redisReply *checkpoint = parse(cases[i].checkpoint);
        cr_expect_eq(
            page_live_generation(pointer, checkpoint, cases[i].read_in, RUN, cases[i].floor),
            cases[i].gen, "case %zu", i);
        freeReplyObject(checkpoint);
    }
    freeReplyObject(pointer);
}

/* A run id not known yet ("") is never the one confirmed. */
Test(page, a_run_id_not_known_yet_is_never_confirmed)
{
    redisReply *pointer = parse(POINTER("$1\r\n7\r\n", CONFIRMED)), *checkpoint = parse(CHECKPOINT);
    cr_expect_eq(page_live_generation(pointer, checkpoint, 7, "", 0), PAGE_UNCONFIRMED);
    freeReplyObject(pointer);
    freeReplyObject(checkpoint);
}

Test(page, reads_generation_views_and_totals)
{
    redisReply *reply = parse("*4\r\n" POINTER("$1\r\n7\r\n", CONFIRMED) CHECKPOINT
                              "*2\r\n$1\r\na\r\n$1\r\nb\r\n:42\r\n");
    struct page_reply page;
    cr_assert_eq(page_read(reply, 1, &page), 0);
    cr_assert_str_eq(page.pointer->element[0]->str, "7");
    cr_assert_str_eq(page.checkpoint->str, "5");
    cr_assert_eq(page.views[0]->elements, 2);
    cr_assert_null(page.views[1]);
    cr_assert_eq(page.total, 42);
    cr_assert_eq(page_read(reply, 2, &page), -1);
    freeReplyObject(reply);
    /* no generation, no checkpoint; two sets */
    reply = parse("*6\r\n" POINTER(NONE, NONE) NONE "*0\r\n:3\r\n*0\r\n:4\r\n");
    cr_assert_eq(page_read(reply, 2, &page), 0);
    cr_assert_eq(page.pointer->element[0]->type, REDIS_REPLY_NIL);
    cr_assert_eq(page.total, 7);
    freeReplyObject(reply);
}

Test(page, refuses_other_shapes)
{
    const char *bad[] = {
        ":1\r\n",
        "*1\r\n:1\r\n",
        "*2\r\n*0\r\n:2\r\n",
        "*4\r\n" POINTER("$1\r\n1\r\n", CONFIRMED) CHECKPOINT "*0\r\n$1\r\n1\r\n",
        "*4\r\n" POINTER("$1\r\n1\r\n", CONFIRMED) ":1\r\n*0\r\n:1\r\n", /* EXISTS' reply */
        "*3\r\n" POINTER("$1\r\n1\r\n", CONFIRMED) "*0\r\n:1\r\n",       /* no checkpoint */
        "*4\r\n" POINTER("$1\r\n1\r\n", CONFIRMED) CHECKPOINT "*0\r\n:-1\r\n",
        "*4\r\n$1\r\n1\r\n" CHECKPOINT "*0\r\n:1\r\n", /* a GET's reply, not an MGET's */
        "*3\r\n:1\r\n*0\r\n:1\r\n",
        "*5\r\n" POINTER("$1\r\n1\r\n", CONFIRMED) CHECKPOINT "*0\r\n:1\r\n:1\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *reply = parse(bad[i]);
        struct page_reply page;
        cr_assert_eq(page_read(reply, 1, &page), -1, "accepted case %zu", i);
        freeReplyObject(reply);
    }
}

Test(page, merges_both_sets_by_id_up_to_the_limit)
{
    char resp[2048], *at = resp;
    at += sprintf(at, "*6\r\n" POINTER("$1\r\n1\r\n", CONFIRMED) CHECKPOINT "*2\r\n");
    at = bulk(at, V(ID_A, "\"n\":1"));
    at = bulk(at, V(ID_C, "\"n\":3"));
    at += sprintf(at, ":2\r\n*1\r\n");
    at = bulk(at, V(ID_B, "\"n\":2"));
    sprintf(at, ":1\r\n");
    redisReply *reply = parse(resp);
    struct page_reply page;
    cr_assert_eq(page_read(reply, 2, &page), 0);
    cr_assert_eq(page.total, 3);
    struct slice views[3];
    int more = -1;
    size_t taken = 0;
    cr_assert_eq(page_merge(&page, 3, views, &more, &taken), 3);
    cr_assert_eq(more, 0);
    cr_assert_eq(taken, 1);
    char body[512];
    size_t size = page_body_size(views, 3);
    size_t used = page_write_body(views, 3, body);
    cr_assert_eq(used, size);
    const char *want = "[" V(ID_A, "\"n\":1") "," V(ID_B, "\"n\":2") "," V(ID_C, "\"n\":3") "]";
    cr_assert_eq(used, strlen(want));
    cr_assert_eq(memcmp(body, want, used), 0);
    cr_assert_eq(page_merge(&page, 1, views, &more, &taken), 1);
    cr_assert_eq(taken, 0); /* the second set's view is past a page of one */
    cr_assert_eq(page_merge(&page, 2, views, &more, &taken), 2);
    cr_assert_eq(more, 1);
    cr_assert_eq(taken, 1);
    cr_assert_eq(memcmp(views[1].p, V(ID_B, "\"n\":2"), views[1].len), 0);
    freeReplyObject(reply);
}

Test(page, refuses_a_member_that_is_not_a_view)
{
    redisReply *reply = parse("*4\r\n" POINTER("$1\r\n1\r\n", CONFIRMED) CHECKPOINT
                              "*1\r\n$7\r\n{\"a\":1}\r\n:1\r\n");
    struct page_reply page;
    cr_assert_eq(page_read(reply, 1, &page), 0);
    struct slice views[1];
    int more;
    size_t taken;
    cr_assert_eq(page_merge(&page, 1, views, &more, &taken), -1);
    freeReplyObject(reply);
}

Test(page, empty)
{
    redisReply *reply =
        parse("*6\r\n" POINTER("$1\r\n1\r\n", CONFIRMED) CHECKPOINT "*0\r\n:0\r\n*0\r\n:0\r\n");
    struct page_reply page;
    cr_assert_eq(page_read(reply, 2, &page), 0);
    struct slice views[1];
    int more = -1;
    size_t taken = 1;
    cr_assert_eq(page_merge(&page, 1, views, &more, &taken), 0);
    cr_assert_eq(taken, 0);
    cr_assert_eq(more, 0);
    char body[8];
    cr_assert_eq(page_body_size(views, 0), 2);
    cr_assert_eq(page_write_body(views, 0, body), 2);
    cr_assert_eq(memcmp(body, "[]", 2), 0);
    freeReplyObject(reply);
}
