/* read_model.c - the reads of the read model and the generation check each one carries:
 *   a view:         GET {prefix}:gen, GET {base}p:{id}                  (one write, two replies)
 *   a view by sku:  one script that reads the generation, the sku entry and the view
 *   a catalog page: MULTI, GET {prefix}:gen, ZRANGEBYLEX, ZCARD, EXEC; then MGET of the
 *                   views, from the generation step 1 confirmed. The views stay readable
 *                   there for the whole page: a replaced generation is dropped only after
 *                   GENERATION_GRACE_MS (2 s), longer than step 1 may take (the query
 *                   timeout, 0.5 s).
 * O(log N + limit) per page whatever the catalog's size; views go from Redis to the client
 * as stored. Reads are made again, at most MAX_ATTEMPTS times, when the generation moved. */
#include "query/read_model.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/digits.h"
#include "common/xmalloc.h"
#include "query/page.h"
#include "query/redis_client.h"
#include "readmodel/layout.h"
#include "readmodel/script.h"

#define MAX_ATTEMPTS 3

/* ARGV: the gen key, "{prefix}:g", the sku. Replies {generation or false, view or false}. */
static struct script BY_SKU_SCRIPT =
    SCRIPT("local gen = redis.call('GET', ARGV[1])\n"
           "if not gen then return {false, false} end\n"
           "local base = ARGV[2] .. gen .. ':'\n"
           "local id = redis.call('GET', base .. KEY_SKU .. ARGV[3])\n"
           "if not id then return {gen, false} end\n"
           "return {gen, redis.call('GET', base .. KEY_VIEW .. id)}\n");

enum read_kind { READ_VIEW, READ_BY_SKU, READ_PAGE, READ_PROBE };

struct read {
    struct read_model *rm;
    enum read_kind kind;
    union {
        read_fn read;
        page_fn page;
    } fn;
    void *arg;
    int attempts;
    int delivered; /* the caller has its outcome */
    int pending;   /* calls whose callback is still to come */
    struct redis_call *calls[2];
    int64_t generation;            /* the one the read is made in */
    int64_t generation_seen;       /* the one Redis said is current (READ_VIEW) */
    int evaluated;                 /* READ_BY_SKU: sent as EVAL after NOSCRIPT */
    char argument[LAYOUT_KEY_MAX]; /* the id or sku */
    size_t argument_len;
    /* READ_PAGE */
    int in_stock, limit;
    char after[UUID_TEXT_LEN + 1];
    int page_read_again; /* step 2 found a listed view missing; steps 1 and 2 made again */
    struct catalog_page page;
    struct read *next_free;
};

struct read_model {
    struct redis_client *client;
    char prefix[LAYOUT_PREFIX_MAX + 1];
    char gen_key[LAYOUT_KEY_MAX];
    char gen_start[LAYOUT_BASE_MAX]; /* "{prefix}:g" */
    int64_t generation;              /* the last one Redis named; 0 when none yet */
    char base[LAYOUT_BASE_MAX];      /* of that generation */
    size_t base_len;
    struct read *free_reads;
    /* Reused for MGET's arguments (the client copies them at once). */
    char *keys;
    size_t keys_cap; /* bytes */
    const char **argv;
    size_t *lens;
    size_t args_cap; /* entries */
};

/* Generation 0 never exists (they are numbered from 1): reads made in it find nothing, and
 * their generation check names the real one. */
static void set_generation(struct read_model *rm, int64_t gen)
{
    rm->generation = gen;
    rm->base_len = layout_base(rm->prefix, gen, rm->base, sizeof(rm->base));
}

struct read_model *read_model_new(struct redis_client *client, const char *prefix)
{
    struct read_model *rm = xcalloc(1, sizeof(*rm));
    rm->client = client;
    snprintf(rm->prefix, sizeof(rm->prefix), "%s", prefix);
    layout_key(KEY_GEN, rm->prefix, NULL, 0, rm->gen_key, sizeof(rm->gen_key));
    snprintf(rm->gen_start, sizeof(rm->gen_start), "%s:g", rm->prefix);
    set_generation(rm, 0);
    return rm;
}

static struct read *read_new(struct read_model *rm, enum read_kind kind, void *arg)
{
    struct read *read = rm->free_reads;
    if (read)
        rm->free_reads = read->next_free;
    else
        read = xmalloc(sizeof(*read));
    memset(read, 0, sizeof(*read));
    read->rm = rm;
    read->kind = kind;
    read->arg = arg;
    return read;
}

static void read_recycle(struct read *read)
{
    struct read_model *rm = read->rm;
    read->next_free = rm->free_reads;
    rm->free_reads = read;
}

/* Gives the caller its outcome, once; the read is recycled when no call is pending. */
static void deliver(struct read *read, int status, const redisReply *reply)
{
    if (!read->delivered) {
        read->delivered = 1;
        if (read->kind == READ_PAGE)
            read->fn.page(status, status == READ_OK ? &read->page : NULL, read->arg);
        else
            read->fn.read(status, reply, read->arg);
    }
    if (read->pending == 0) read_recycle(read);
}

/* Called first by every reply callback. Returns 1 when the reply may be used; else the read
 * is failed (if it was not yet) and 0 returned. */
static int take_reply(struct read *read, int slot, const redisReply *reply)
{
    read->pending--;
    read->calls[slot] = NULL;
    if (read->delivered) {
        if (read->pending == 0) read_recycle(read);
        return 0;
    }
    if (reply) return 1;
    for (int i = 0; i < 2; i++) /* the other call of a pair is of no use any more */
        if (read->calls[i]) {
            redis_call_cancel(read->calls[i]);
            read->calls[i] = NULL;
            read->pending--;
        }
    deliver(read, READ_UNAVAILABLE, NULL);
    return 0;
}

static struct redis_call *call(struct read *read, int slot, redis_reply_fn fn, int argc,
                               const char *const *argv, const size_t *lens)
{
    struct redis_call *made = redis_client_call(read->rm->client, fn, read, argc, argv, lens);
    if (made) {
        read->calls[slot] = made;
        read->pending++;
    }
    return made;
}

/* The generation moved under the read: make it again in the new one, a few times. */
static int retry(struct read *read, int64_t gen, int (*send)(struct read *read))
{
    set_generation(read->rm, gen);
    if (gen > 0 && ++read->attempts < MAX_ATTEMPTS && send(read) == 0) return 1;
    return 0;
}

/* ---- a view by id ---- */

static int send_view(struct read *read);

static void on_view_generation(const redisReply *reply, void *arg)
{
    struct read *read = arg;
    if (!take_reply(read, 0, reply)) return;
    read->generation_seen = page_generation(reply);
}

static void on_view(const redisReply *reply, void *arg)
{
    struct read *read = arg;
    if (!take_reply(read, 1, reply)) return;
    int64_t seen = read->generation_seen;
    if (seen < 0 || (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_NIL))
        deliver(read, READ_BAD, NULL);
    else if (seen == 0) /* no generation at all: never "not found" */
        deliver(read, READ_REBUILDING, NULL);
    else if (seen == read->generation)
        deliver(read, READ_OK, reply);
    else if (!retry(read, seen, send_view))
        deliver(read, READ_UNAVAILABLE, NULL);
}

static int send_view(struct read *read)
{
    struct read_model *rm = read->rm;
    char key[LAYOUT_KEY_MAX];
    read->generation = rm->generation;
    size_t key_len =
        layout_key(KEY_VIEW, rm->base, read->argument, read->argument_len, key, sizeof(key));
    const char *get_gen[] = {"GET", rm->gen_key};
    const size_t get_gen_lens[] = {3, strlen(rm->gen_key)};
    const char *get_view[] = {"GET", key};
    const size_t get_view_lens[] = {3, key_len};
    if (!call(read, 0, on_view_generation, 2, get_gen, get_gen_lens)) return -1;
    call(read, 1, on_view, 2, get_view, get_view_lens); /* connected: cannot fail now */
    return 0;
}

static struct read *start(struct read *read, int (*send)(struct read *read))
{
    if (send(read) == 0) return read;
    read_recycle(read);
    return NULL;
}

struct read *read_model_get_view(struct read_model *rm, struct slice id, read_fn fn, void *arg)
{
    if (id.len > UUID_TEXT_LEN) return NULL; /* callers check ids; a longer one names nothing */
    struct read *read = read_new(rm, READ_VIEW, arg);
    read->fn.read = fn;
    memcpy(read->argument, id.p, id.len);
    read->argument_len = id.len;
    return start(read, send_view);
}

/* ---- a view by sku ---- */

static int send_by_sku(struct read *read);

static void on_by_sku(const redisReply *reply, void *arg)
{
    struct read *read = arg;
    if (!take_reply(read, 0, reply)) return;
    if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0 &&
        !read->evaluated) {
        read->evaluated = 1; /* Redis forgot the script (restarted, SCRIPT FLUSH): send it */
        if (send_by_sku(read) < 0) deliver(read, READ_UNAVAILABLE, NULL);
        return;
    }
    int64_t gen = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
                      ? page_generation(reply->element[0])
                      : -1;
    const redisReply *view = gen >= 0 ? reply->element[1] : NULL;
    if (gen < 0 || (view->type != REDIS_REPLY_STRING && view->type != REDIS_REPLY_NIL)) {
        deliver(read, READ_BAD, NULL);
        return;
    }
    set_generation(read->rm, gen);
    deliver(read, gen == 0 ? READ_REBUILDING : READ_OK, view);
}

static int send_by_sku(struct read *read)
{
    struct read_model *rm = read->rm;
    size_t text_len;
    const char *text = script_text(&BY_SKU_SCRIPT, &text_len);
    const char *argv[] = {read->evaluated ? "EVAL" : "EVALSHA",
                          read->evaluated ? text : script_sha(&BY_SKU_SCRIPT),
                          "0",
                          rm->gen_key,
                          rm->gen_start,
                          read->argument};
    const size_t lens[] = {read->evaluated ? 4 : 7,
                           read->evaluated ? text_len : SCRIPT_SHA_LEN,
                           1,
                           strlen(rm->gen_key),
                           strlen(rm->gen_start),
                           read->argument_len};
    return call(read, 0, on_by_sku, 6, argv, lens) ? 0 : -1;
}

struct read *read_model_get_by_sku(struct read_model *rm, struct slice sku, read_fn fn, void *arg)
{
    if (sku.len >= sizeof(((struct read *)0)->argument)) return NULL;
    struct read *read = read_new(rm, READ_BY_SKU, arg);
    read->fn.read = fn;
    memcpy(read->argument, sku.p, sku.len);
    read->argument_len = sku.len;
    return start(read, send_by_sku);
}

/* ---- a catalog page ---- */

static int send_page_ids(struct read *read);

/* Makes room in the MGET scratch for "count" keys of "stride" bytes each: the room is
 * counted in bytes, since a key is longer by a digit when the generation number is. */
static void reserve_keys(struct read_model *rm, size_t count, size_t stride)
{
    if (count * stride > rm->keys_cap) {
        rm->keys_cap = count * stride;
        rm->keys = xrealloc(rm->keys, rm->keys_cap);
    }
    if (count + 1 > rm->args_cap) {
        rm->args_cap = count + 1;
        rm->argv = xrealloc(rm->argv, rm->args_cap * sizeof(*rm->argv));
        rm->lens = xrealloc(rm->lens, rm->args_cap * sizeof(*rm->lens));
    }
}

static void on_page_views(const redisReply *reply, void *arg)
{
    struct read *read = arg;
    if (!take_reply(read, 0, reply)) return;
    if (reply->type != REDIS_REPLY_ARRAY) {
        deliver(read, READ_BAD, NULL);
        return;
    }
    size_t missing = 0;
    for (size_t i = 0; i < reply->elements; i++)
        missing += reply->element[i]->type != REDIS_REPLY_STRING;
    /* A view listed in step 1 and gone in step 2: deleted in between, or broken (a key of
     * another type). The page is read once more: a deleted product is then no longer
     * listed; a view still missing is a broken read model, answered as such rather than
     * left out of the page in silence. */
    if (missing > 0 && !read->page_read_again) {
        read->page_read_again = 1;
        memset(&read->page, 0, sizeof(read->page));
        if (send_page_ids(read) < 0) deliver(read, READ_UNAVAILABLE, NULL);
        return;
    }
    read->page.views = reply;
    deliver(read, missing > 0 ? READ_BAD : READ_OK, NULL);
}

/* Step 2: MGET of "count" ids (string replies of step 1) in the generation step 1 read. */
static int send_page_views(struct read *read, const redisReply *const *ids, size_t count)
{
    struct read_model *rm = read->rm;
    char base[LAYOUT_BASE_MAX];
    layout_base(rm->prefix, read->generation, base, sizeof(base));
    size_t key_len = layout_key(KEY_VIEW, base, ids[0]->str, UUID_TEXT_LEN, NULL, 0);
    size_t stride = key_len + 1; /* layout_key ends each key with a NUL */
    reserve_keys(rm, count, stride);
    rm->argv[0] = "MGET";
    rm->lens[0] = 4;
    for (size_t i = 0; i < count; i++) {
        char *key = rm->keys + i * stride;
        size_t len = layout_key(KEY_VIEW, base, ids[i]->str, UUID_TEXT_LEN, key, stride);
        assert(len == key_len);
        rm->argv[i + 1] = key;
        rm->lens[i + 1] = len;
    }
    return call(read, 0, on_page_views, (int)count + 1, rm->argv, rm->lens) ? 0 : -1;
}

/* Step 1's reply, EXEC's [generation, [id...], total]. */
static void on_page_ids(const redisReply *reply, void *arg)
{
    struct read *read = arg;
    if (!take_reply(read, 0, reply)) return;
    const redisReply *gen_reply, *ids;
    long long total;
    if (page_read_ids(reply, &gen_reply, &ids, &total) < 0 || page_generation(gen_reply) < 0) {
        deliver(read, READ_BAD, NULL);
        return;
    }
    int64_t gen = page_generation(gen_reply);
    if (gen == 0) { /* no generation at all: never an empty catalog */
        deliver(read, READ_REBUILDING, NULL);
        return;
    }
    if (gen != read->generation) {
        if (!retry(read, gen, send_page_ids)) deliver(read, READ_UNAVAILABLE, NULL);
        return;
    }
    size_t count = ids->elements;
    read->page.total = total;
    read->page.more = count > (size_t)read->limit;
    if (read->page.more) count = (size_t)read->limit;
    for (size_t i = 0; i < count; i++) {
        const redisReply *id = ids->element[i];
        if (id->type != REDIS_REPLY_STRING || uuid_check_canonical(id->str, id->len) < 0) {
            deliver(read, READ_BAD, NULL);
            return;
        }
    }
    if (count == 0) { /* an empty catalog, or a cursor past the end */
        deliver(read, READ_OK, NULL);
        return;
    }
    memcpy(read->page.last_id, ids->element[count - 1]->str, UUID_TEXT_LEN);
    read->page.last_id[UUID_TEXT_LEN] = '\0';
    if (send_page_views(read, (const redisReply *const *)ids->element, count) < 0)
        deliver(read, READ_UNAVAILABLE, NULL);
}

static int send_page_ids(struct read *read)
{
    struct read_model *rm = read->rm;
    char index[LAYOUT_KEY_MAX], min[UUID_TEXT_LEN + 2], count[DIGITS_U64_MAX];
    read->generation = rm->generation;
    size_t index_len = layout_key(read->in_stock ? KEY_IN_STOCK : KEY_ALL, rm->base, NULL, 0, index,
                                  sizeof(index));
    size_t min_len = 1;
    min[0] = read->after[0] ? '(' : '-';
    if (read->after[0]) {
        memcpy(min + 1, read->after, UUID_TEXT_LEN);
        min_len += UUID_TEXT_LEN;
    }
    size_t count_len = digits_u64(count, (uint64_t)read->limit + 1);
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    const size_t multi_len[] = {5}, exec_len[] = {4};
    const char *get_gen[] = {"GET", rm->gen_key};
    const size_t get_gen_lens[] = {3, strlen(rm->gen_key)};
    const char *range[] = {"ZRANGEBYLEX", index, min, "+", "LIMIT", "0", count};
    const size_t range_len[] = {11, index_len, min_len, 1, 5, 1, count_len};
    const char *card[] = {"ZCARD", index};
    const size_t card_len[] = {5, index_len};
    /* Only EXEC's reply matters; the client is either connected for all five or for none. */
    if (!redis_client_call(rm->client, NULL, NULL, 1, multi, multi_len)) return -1;
    redis_client_call(rm->client, NULL, NULL, 2, get_gen, get_gen_lens);
    redis_client_call(rm->client, NULL, NULL, 7, range, range_len);
    redis_client_call(rm->client, NULL, NULL, 2, card, card_len);
    call(read, 0, on_page_ids, 1, exec, exec_len);
    return 0;
}

struct read *read_model_catalog_page(struct read_model *rm, int in_stock, const char *after,
                                     int limit, page_fn fn, void *arg)
{
    struct read *read = read_new(rm, READ_PAGE, arg);
    read->fn.page = fn;
    read->in_stock = in_stock;
    read->limit = limit;
    snprintf(read->after, sizeof(read->after), "%s", after);
    return start(read, send_page_ids);
}

/* ---- is there a read model? ---- */

static void on_probe(const redisReply *reply, void *arg)
{
    struct read *read = arg;
    if (!take_reply(read, 0, reply)) return;
    int64_t gen = page_generation(reply);
    if (gen > 0) set_generation(read->rm, gen);
    deliver(read, gen > 0 ? READ_OK : gen == 0 ? READ_REBUILDING : READ_BAD, NULL);
}

static int send_probe(struct read *read)
{
    const char *argv[] = {"GET", read->rm->gen_key};
    const size_t lens[] = {3, strlen(read->rm->gen_key)};
    return call(read, 0, on_probe, 2, argv, lens) ? 0 : -1;
}

struct read *read_model_probe(struct read_model *rm, read_fn fn, void *arg)
{
    struct read *read = read_new(rm, READ_PROBE, arg);
    read->fn.read = fn;
    return start(read, send_probe);
}

void read_cancel(struct read *read)
{
    for (int i = 0; i < 2; i++)
        if (read->calls[i]) redis_call_cancel(read->calls[i]);
    read->pending = 0;
    read->delivered = 1;
    read_recycle(read);
}
