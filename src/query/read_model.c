/* read_model.c - generation tracking and the query commands. A page is one Lua script
 * (ZRANGEBYLEX + ZCARD + MGET): O(log N + limit) whatever the catalog's size. */
#include "query/read_model.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "projection/layout.h"

#define GENERATION_REFRESH_MS 250

/* KEYS[1]: the generation base. ARGV[1]: the sku. */
static const char BY_SKU_SCRIPT[] = "local id = redis.call('GET', KEYS[1] .. 'sku:' .. ARGV[1])\n"
                                    "if not id then return false end\n"
                                    "return redis.call('GET', KEYS[1] .. 'p:' .. id)\n";

/* KEYS[1]: the generation base. ARGV: index name, min ("-" or "(id"), limit. */
static const char PAGE_SCRIPT[] =
    "local index = KEYS[1] .. ARGV[1]\n"
    "local limit = tonumber(ARGV[3])\n"
    "local ids = redis.call('ZRANGEBYLEX', index, ARGV[2], '+', 'LIMIT', 0, limit + 1)\n"
    "local result = {redis.call('ZCARD', index), 0}\n"
    "local n = #ids\n"
    "if n > limit then result[2] = 1; n = limit end\n"
    "if n == 0 then return result end\n"
    "local keys = {}\n"
    "for i = 1, n do keys[i] = KEYS[1] .. 'p:' .. ids[i] end\n"
    "local views = redis.call('MGET', unpack(keys))\n"
    "for i = 1, n do result[i + 2] = views[i] end\n"
    "return result\n";

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

struct redis_call *read_model_catalog_page(struct read_model *rm, int in_stock, const char *after,
                                           int limit, redis_reply_fn fn, void *arg)
{
    char min[64], limit_text[16];
    int min_len =
        after[0] ? snprintf(min, sizeof(min), "(%s", after) : snprintf(min, sizeof(min), "-");
    int limit_len = snprintf(limit_text, sizeof(limit_text), "%d", limit);
    const char *index = in_stock ? "in_stock" : "all";
    const char *argv[] = {"EVAL", PAGE_SCRIPT, "1", rm->base, index, min, limit_text};
    const size_t lens[] = {4,
                           sizeof(PAGE_SCRIPT) - 1,
                           1,
                           rm->base_len,
                           strlen(index),
                           (size_t)min_len,
                           (size_t)limit_len};
    return redis_client_call(rm->client, fn, arg, 7, argv, lens);
}
