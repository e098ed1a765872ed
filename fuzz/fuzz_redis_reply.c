/* fuzz_redis_reply.c - libFuzzer target: bytes from Redis through hiredis' reply reader, fed
 * in pieces and drained after each one as src/query/redis_client.c's on_read does, and every
 * reply through what the query path does with it:
 * - a view (GET, the by-sku script): view_version for the ETag, view_parse;
 * - a catalog page: page_read, page_merge, page_body_size and page_write_body on EXEC's
 *   reply (src/query/page.c, the server's own);
 * - the generation (GET {prefix}:gen-v2): page_generation and layout_base;
 * - INFO server: confirmed_run_parse, the run id.
 * Invariants checked, beyond "no crash": the ETag fits its buffer; a view that view_parse
 * accepts has a canonical id whose cursor decodes back to it; a page that passes the shape
 * check has room for every view in the body the handler builds; the generation base fits.

 *
 * The reader is the server's own (src/query/reply_reader.c), which refuses arrays of more than
 * REPLY_MAX_ELEMENTS: hiredis 0.14 would otherwise calloc 16 GiB for "*2147483647\r\n". */
#include <hiredis.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain/cursor.h"
#include "domain/uuid7.h"
#include "domain/view.h"
#include "query/page.h"
#include "query/reply_reader.h"
#include "fuzz_check.h"
#include "readmodel/confirmed_run.h"
#include "readmodel/layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The server's own bounded reader (src/query/reply_reader.c). */
static redisReader *reader_new(void)
{
    redisReader *reader = reply_reader_new();
    CHECK(reader != NULL);
    return reader;
}

/* What answer_view does with a string reply, and what add_next_link does with a view. */
static void check_view_reply(const redisReply *reply)
{
    char etag[32], cursor[CURSOR_LEN + 1], id[UUID_TEXT_LEN + 1];
    struct view_fields fields;

    int64_t version = view_version(reply->str, reply->len);
    CHECK(version >= -1);
    int etag_len = snprintf(etag, sizeof etag, "\"%" PRId64 "\"", version);
    CHECK(etag_len > 0 && (size_t)etag_len < sizeof etag);

    if (view_parse(reply->str, reply->len, &fields) == 0) {
        CHECK(uuid_check_canonical(fields.id, strlen(fields.id)) == 0);
        CHECK(strnlen(fields.sku, sizeof fields.sku) < sizeof fields.sku);
        CHECK(cursor_encode(fields.id, cursor) == 0);
        CHECK(cursor_decode(cursor, CURSOR_LEN, id) == 0 && strcmp(id, fields.id) == 0);
    }
}

/* A catalog page with the server's own functions (src/query/page.c): EXEC's [[generation,
 * confirmed run], checkpoint, views, size] or [[...], checkpoint, views, size, views, size] as
 * read_model.c reads it, merged by id
 * and assembled into exactly the bytes the page handler allocates; the last view feeds the
 * Link header. */
static void check_catalog_page(const redisReply *reply)
{
    static struct slice views[CATALOG_PAGE_MAX];
    for (int sets = 1; sets <= 2; sets++) {
        struct page_reply page;
        if (page_read(reply, sets, &page) < 0) continue;
        CHECK(page.total >= 0);
        CHECK(page.pointer->type == REDIS_REPLY_ARRAY);
        CHECK(page.checkpoint->type == REDIS_REPLY_STRING ||
              page.checkpoint->type == REDIS_REPLY_NIL);
        static const char run_id[] = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
        int64_t floor = page.total % 16; /* some floor, from the input */
        int64_t live = page_live_generation(page.pointer, page.checkpoint, 1, run_id, floor);
        int confirmed = 0;
        int64_t named = page_pointer(page.pointer, run_id, &confirmed);
        int64_t at = page_checkpoint(page.checkpoint);
        CHECK(live == named || (live == 0 && named == 1 && at < 0) ||
              (live == PAGE_UNCONFIRMED && named > 0 &&
               (!confirmed || (named == 1 && at >= 0 && at < floor))));
        int more = 0;
        size_t taken = 0;
        int count = page_merge(&page, CATALOG_PAGE_MAX, views, &more, &taken);
        if (count < 0) continue;
        CHECK(count <= CATALOG_PAGE_MAX);
        size_t size = page_body_size(views, (size_t)count);
        char *body = malloc(size); /* exactly: ASan sees a write past it */
        CHECK(body != NULL);
        size_t used = page_write_body(views, (size_t)count, body);
        CHECK(used == size && body[0] == '[' && body[used - 1] == ']');
        free(body);
    }
}

/* What every read does with the reply to GET {prefix}:gen (src/query/read_model.c). */
static void check_generation_reply(const redisReply *reply)
{
    static const char longest_prefix[LAYOUT_PREFIX_MAX + 1] =
        "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp";
    char base[LAYOUT_BASE_MAX];

    int64_t generation = page_generation(reply);
    CHECK(generation >= -1);
    if (generation < 0) return;
    size_t n = layout_base(longest_prefix, generation, base, sizeof base);
    CHECK(n > 0 && n < sizeof base);
}

/* What every Redis connection does with the reply to INFO server: its run id. */
static void check_info_reply(const redisReply *reply)
{
    char run_id[RUN_ID_LEN + 1];
    if (confirmed_run_parse(reply->str, reply->len, run_id) < 0) return;
    CHECK(strlen(run_id) == RUN_ID_LEN && strspn(run_id, "0123456789abcdef") == RUN_ID_LEN);
    CHECK(confirmed_run_is(
        &(redisReply){.type = REDIS_REPLY_STRING, .str = run_id, .len = RUN_ID_LEN}, run_id));
}

/* Every reply, and every element of an array at any depth, gets the checks its type gets
 * somewhere on the query path. */
static void check_reply(const redisReply *reply, int depth)
{
    CHECK(reply != NULL && depth < 16);
    switch (reply->type) {
    case REDIS_REPLY_STRING:
        CHECK(reply->str != NULL && reply->str[reply->len] == '\0');
        check_view_reply(reply);
        check_generation_reply(reply);
        check_info_reply(reply);
        break;
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        CHECK(reply->str != NULL && reply->str[reply->len] == '\0');
        break;
    case REDIS_REPLY_ARRAY:
        check_catalog_page(reply);
        for (size_t i = 0; i < reply->elements; i++)
            check_reply(reply->element[i], depth + 1);
        break;
    case REDIS_REPLY_INTEGER:
    case REDIS_REPLY_NIL:
        break;
    default:
        CHECK(!"a reply type hiredis 0.14 does not produce");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *reader = reader_new();
    uint64_t seed = fuzz_hash(data, size);
    size_t fed = 0;

    /* Bytes arrive in pieces of 1..64 bytes; after each piece every complete reply is taken. */
    while (fed < size) {
        size_t piece = 1 + (seed & 63);
        seed = seed >> 6 | seed << 58;
        if (piece > size - fed) piece = size - fed;
        if (redisReaderFeed(reader, (const char *)data + fed, piece) != REDIS_OK) break;
        fed += piece;
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(reader, &reply) != REDIS_OK) goto out; /* disconnect */
            if (reply == NULL) break;
            check_reply(reply, 0);
            reply_reader_release(reader);
        }
    }
out:
    reply_reader_free(reader);
    return 0;
}
