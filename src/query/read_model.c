/* read_model.c - generation tracking and the query commands. A page is two round trips:
 * ZRANGEBYLEX + ZCARD in one MULTI, then one MGET of the views: O(log N + limit) whatever
 * the catalog's size, and the views go from Redis to the client without a Lua copy. */
#include "query/read_model.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "domain/uuid7.h"
#include "projection/layout.h"

#define GENERATION_REFRESH_MS 250

/* KEYS[1]: the generation base. ARGV[1]: the sku. */
static const char BY_SKU_SCRIPT[] = "local id = redis.call('GET', KEYS[1] .. 'sku:' .. ARGV[1])\n"
                                    "if not id then return false end\n"
                                    "return redis.call('GET', KEYS[1] .. 'p:' .. id)\n";

struct read_model {
    struct redis_client *client;
    char prefix[LAYOUT_PREFIX_MAX + 1];
    char gen_key[LAYOUT_KEY_MAX];
    int64_t generation; /* 0: unknown, the read model is not ready */
    char base[LAYOUT_BASE_MAX];
    size_t base_len;
    h2o_loop_t *loop;
    h2o_timeout_t refresh_timeout;
    h2o_timeout_entry_t refresh_entry;
    int refresh_in_flight;
    /* Reused for MGET's arguments (the client copies them at once). */
    char *scratch_keys;
    const char **scratch_argv;
    size_t *scratch_lens;
    size_t scratch_count;
};

/* Takes a reply to GET {prefix}:gen. Returns 1 if the generation did not change. */
static int take_generation(struct read_model *rm, const redisReply *reply)
{
    int64_t gen = 0;
    if (reply->type == REDIS_REPLY_STRING) gen = strtoll(reply->str, NULL, 10);
    if (gen < 0) gen = 0;
    if (gen == rm->generation) return 1;
    rm->generation = gen;
    int n = layout_generation_base(rm->prefix, rm->generation, rm->base, sizeof(rm->base));
    rm->base_len = (size_t)n;
    return 0;
}

static void on_generation(const redisReply *reply, void *arg)
{
    struct read_model *rm = arg;
    rm->refresh_in_flight = 0;
    if (reply) take_generation(rm, reply); /* else: reconnecting; refreshed again on connect */
}

struct redis_call *read_model_fetch_generation(struct read_model *rm, redis_reply_fn fn, void *arg)
{
    const char *argv[] = {"GET", rm->gen_key};
    const size_t lens[] = {3, strlen(rm->gen_key)};
    return redis_client_call(rm->client, fn, arg, 2, argv, lens);
}

int read_model_generation_confirmed(struct read_model *rm, const redisReply *reply)
{
    return take_generation(rm, reply) && rm->generation > 0;
}

static void refresh_generation(void *arg)
{
    struct read_model *rm = arg;
    if (rm->refresh_in_flight) return;
    if (read_model_fetch_generation(rm, on_generation, rm)) rm->refresh_in_flight = 1;
}

static void on_refresh_timer(h2o_timeout_entry_t *entry)
{
    struct read_model *rm = H2O_STRUCT_FROM_MEMBER(struct read_model, refresh_entry, entry);
    refresh_generation(rm);
    h2o_timeout_link(rm->loop, &rm->refresh_timeout, &rm->refresh_entry);
}

struct read_model *read_model_new(h2o_loop_t *loop, const struct app_config *config)
{
    struct read_model *rm = xcalloc(1, sizeof(*rm));
    rm->loop = loop;
    snprintf(rm->prefix, sizeof(rm->prefix), "%s", config->prefix);
    layout_global_key(rm->prefix, "gen", rm->gen_key, sizeof(rm->gen_key));
    rm->client =
        redis_client_new(loop, &config->redis, config->redis_timeout_ms, refresh_generation, rm);
    h2o_timeout_init(loop, &rm->refresh_timeout, GENERATION_REFRESH_MS);
    rm->refresh_entry.cb = on_refresh_timer;
    h2o_timeout_link(loop, &rm->refresh_timeout, &rm->refresh_entry);
    return rm;
}

int read_model_ready(const struct read_model *rm)
{
    return rm->generation > 0 && redis_client_connected(rm->client);
}

struct redis_client *read_model_client(struct read_model *rm)
{
    return rm->client;
}

struct redis_call *read_model_get_view(struct read_model *rm, struct slice id, redis_reply_fn fn,
                                       void *arg)
{
    char key[LAYOUT_KEY_MAX + 64];
    if (rm->base_len + 2 + id.len > sizeof(key)) return NULL;
    memcpy(key, rm->base, rm->base_len);
    memcpy(key + rm->base_len, "p:", 2);
    memcpy(key + rm->base_len + 2, id.p, id.len);
    const char *argv[] = {"GET", key};
    const size_t lens[] = {3, rm->base_len + 2 + id.len};
    return redis_client_call(rm->client, fn, arg, 2, argv, lens);
}

struct redis_call *read_model_get_by_sku(struct read_model *rm, struct slice sku, redis_reply_fn fn,
                                         void *arg)
{
    const char *argv[] = {"EVAL", BY_SKU_SCRIPT, "1", rm->base, sku.p};
    const size_t lens[] = {4, sizeof(BY_SKU_SCRIPT) - 1, 1, rm->base_len, sku.len};
    return redis_client_call(rm->client, fn, arg, 5, argv, lens);
}

struct redis_call *read_model_catalog_ids(struct read_model *rm, int in_stock, const char *after,
                                          int limit, redis_reply_fn fn, void *arg)
{
    char index[LAYOUT_KEY_MAX], min[64], count[16];
    size_t index_len = (size_t)snprintf(index, sizeof(index), "%.*s%s", (int)rm->base_len, rm->base,
                                        in_stock ? "in_stock" : "all");
    size_t min_len = (size_t)(after[0] ? snprintf(min, sizeof(min), "(%s", after)
                                       : snprintf(min, sizeof(min), "-"));
    size_t count_len = (size_t)snprintf(count, sizeof(count), "%d", limit + 1);
    const char *multi[] = {"MULTI"};
    const size_t multi_len[] = {5};
    const char *range[] = {"ZRANGEBYLEX", index, min, "+", "LIMIT", "0", count};
    const size_t range_len[] = {11, index_len, min_len, 1, 5, 1, count_len};
    const char *card[] = {"ZCARD", index};
    const size_t card_len[] = {5, index_len};
    const char *exec[] = {"EXEC"};
    const size_t exec_len[] = {4};
    /* Only EXEC's reply matters; the client is either connected for all four or for none. */
    if (!redis_client_call(rm->client, NULL, NULL, 1, multi, multi_len)) return NULL;
    redis_client_call(rm->client, NULL, NULL, 7, range, range_len);
    redis_client_call(rm->client, NULL, NULL, 2, card, card_len);
    return redis_client_call(rm->client, fn, arg, 1, exec, exec_len);
}

struct redis_call *read_model_get_views(struct read_model *rm, const redisReply *const *ids,
                                        size_t count, redis_reply_fn fn, void *arg)
{
    size_t key_len = rm->base_len + 2 + UUID_TEXT_LEN;
    if (count > rm->scratch_count) {
        rm->scratch_count = count;
        rm->scratch_keys = xrealloc(rm->scratch_keys, count * key_len);
        rm->scratch_argv = xrealloc(rm->scratch_argv, (count + 1) * sizeof(*rm->scratch_argv));
        rm->scratch_lens = xrealloc(rm->scratch_lens, (count + 1) * sizeof(*rm->scratch_lens));
    }
    rm->scratch_argv[0] = "MGET";
    rm->scratch_lens[0] = 4;
    for (size_t i = 0; i < count; i++) {
        if (ids[i]->type != REDIS_REPLY_STRING || ids[i]->len != UUID_TEXT_LEN) return NULL;
        char *key = rm->scratch_keys + i * key_len;
        memcpy(key, rm->base, rm->base_len);
        memcpy(key + rm->base_len, "p:", 2);
        memcpy(key + rm->base_len + 2, ids[i]->str, UUID_TEXT_LEN);
        rm->scratch_argv[i + 1] = key;
        rm->scratch_lens[i + 1] = key_len;
    }
    return redis_client_call(rm->client, fn, arg, (int)count + 1, rm->scratch_argv,
                             rm->scratch_lens);
}
