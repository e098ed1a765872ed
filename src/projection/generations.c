/* generations.c - hand out, drop and collect generations; see generations.h. */
#include "projection/generations.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/digits.h"
#include "common/xmalloc.h"
#include "projection/redis_sync.h"
#include "readmodel/layout.h"

#define DROP_BATCH "1000" /* keys per SCAN step */

/* How the scripts below begin an error that is their own refusal, not Redis's: the reason
 * that follows is told as it is, for an operator to read. */
#define REFUSED     "REFUSED "
#define REFUSED_LEN (sizeof(REFUSED) - 1)

/* ARGV after the guards: the gen key, the counter key, the registry key, the prefix. The
 * next number past the counter and the current generation that no generation holds: none
 * registered (a build that failed and is not collected yet, when the counter was set back by
 * hand) and none of its keys there (written by hand), so a rebuild starts from nothing. Past
 * a current generation of GENERATION_MAX, the counter alone, set back by hand, says where. */
static struct script NEW_SCRIPT =
    SCRIPT("local first, fenced = guards_hold()\n"
           "if not first then return redis.error_reply(fenced) end\n"
           "local counter, registry = ARGV[first + 1], ARGV[first + 2]\n"
           "local function taken(n)\n"
           "  if redis.call('HEXISTS', registry, n) == 1 then return true end\n"
           "  local base = ARGV[first + 3] .. ':g' .. string.format('%d', n) .. ':'\n"
           "  return redis.call('EXISTS', base .. KEY_CHECKPOINT, base .. KEY_CHECKPOINT_EVENT,\n"
           "    base .. KEY_IN_STOCK, base .. KEY_OUT_OF_STOCK, base .. KEY_SKUS,\n"
           "    base .. KEY_PARKED) > 0\n"
           "end\n"
           "local current = tonumber(generation_named(pointer_at(ARGV[first])) or '0')\n"
           /* Read, not INCR: a refused number must leave the counter as it was. */
           "local n = redis.call('GET', counter) or '0'\n"
           "if not string.match(n, '^-?%d+$') then\n"
           "  return redis.error_reply('REFUSED ' .. counter .. ' holds no generation number: '"
           " .. 'set it right by hand')\n"
           "end\n"
           "n = tonumber(n) + 1\n"
           /* Above the current generation too, unless that is the last one Lua counts:
              then from the counter, once it is set back by hand. */
           "if n <= current and current < tonumber(GENERATION_MAX) then n = current + 1 end\n"
           "if n < 1 then n = 1 end\n" /* a counter set below 0: generations start at 1 */
           "for _ = 1, 1000 do\n"
           "  if n ~= current and not taken(n) then break end\n"
           "  n = n + 1\n"
           "end\n"
           /* Lua's numbers are doubles: past 2^53, n + 1 reads as n, and a rebuild would hand
              out a number handed out before. */
           "if n > tonumber(GENERATION_MAX) then\n"
           "  return redis.error_reply('REFUSED the next generation is 2^53 or past it, which '"
           " .. 'Lua cannot count exactly: set ' .. counter .. ' back by hand')\n"
           "end\n"
           "if n == current or taken(n) then\n"
           "  return redis.error_reply('REFUSED the next 1000 generations all have keys')\n"
           "end\n"
           "redis.call('SET', counter, string.format('%d', n))\n"
           "redis.call('HSET', registry, string.format('%d', n), 0)\n"
           "return n\n");

/* ARGV after the guards: the gen key, the generation, then keys to delete. */
static struct script UNLINK_SCRIPT =
    SCRIPT("local first, fenced = guards_hold()\n"
           "if not first then return redis.error_reply(fenced) end\n"
           "if pointer_at(ARGV[first]) == ARGV[first + 1] then\n"
           "  return redis.error_reply('REFUSED generation ' .. ARGV[first + 1]\n"
           "    .. ' is the current one')\n"
           "end\n"
           "if #ARGV < first + 2 then return 0 end\n"
           "return redis.call('UNLINK', unpack(ARGV, first + 2))\n");

/* ARGV after the guards: the gen key, the registry key, the generation. */
static struct script FORGET_SCRIPT =
    SCRIPT("local first, fenced = guards_hold()\n"
           "if not first then return redis.error_reply(fenced) end\n"
           "if pointer_at(ARGV[first]) == ARGV[first + 2] then\n"
           "  return redis.error_reply('REFUSED generation ' .. ARGV[first + 2]\n"
           "    .. ' is the current one')\n"
           "end\n"
           "return redis.call('HDEL', ARGV[first + 1], ARGV[first + 2])\n");

/* Runs a fenced script whose reply must be an integer. Returns 0 and "*value", or -1. */
static int run_integer(struct redis_sync *redis, struct script *script,
                       const struct rebuild_lock *lock, size_t argc, const char *const *argv,
                       const size_t *lens, long long *value, char *err, size_t errlen)
{
    struct script_guard guard = rebuild_lock_guard(lock);
    redisReply *reply = redis_sync_script(redis, script, &guard, 1, argc, argv, lens, err, errlen);
    if (!reply) return -1;
    int rc = reply->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (rc == 0)
        *value = reply->integer;
    else if (reply->type == REDIS_REPLY_ERROR && reply->len > REFUSED_LEN &&
             memcmp(reply->str, REFUSED, REFUSED_LEN) == 0)
        snprintf(err, errlen, "%.*s", (int)(reply->len - REFUSED_LEN), reply->str + REFUSED_LEN);
    else if (reply->type == REDIS_REPLY_ERROR)
        snprintf(err, errlen, "Redis: %.*s", (int)reply->len, reply->str);
    else
        snprintf(err, errlen, "unexpected reply type %d", reply->type);
    freeReplyObject(reply);
    return rc;
}

int generations_new(struct redis_sync *redis, const char *prefix, const struct rebuild_lock *lock,
                    int64_t *gen, char *err, size_t errlen)
{
    char gen_key[LAYOUT_KEY_MAX], counter_key[LAYOUT_KEY_MAX], registry_key[LAYOUT_KEY_MAX];
    layout_key(KEY_GEN, prefix, NULL, 0, gen_key, sizeof(gen_key));
    layout_key(KEY_GEN_COUNTER, prefix, NULL, 0, counter_key, sizeof(counter_key));
    layout_key(KEY_GENERATIONS, prefix, NULL, 0, registry_key, sizeof(registry_key));
    const char *argv[] = {gen_key, counter_key, registry_key, prefix};
    long long value;
    if (run_integer(redis, &NEW_SCRIPT, lock, 4, argv, NULL, &value, err, errlen) < 0) return -1;
    *gen = value;
    return 0;
}

/* Deletes the keys of one SCAN reply, fenced. */
static int unlink_keys(struct redis_sync *redis, const struct rebuild_lock *lock,
                       const char *gen_key, const char *gen_text, const redisReply *keys, char *err,
                       size_t errlen)
{
    size_t argc = 2 + keys->elements;
    const char **argv = xmalloc(argc * sizeof(*argv));
    size_t *lens = xmalloc(argc * sizeof(*lens));
    argv[0] = gen_key;
    lens[0] = strlen(gen_key);
    argv[1] = gen_text;
    lens[1] = strlen(gen_text);
    for (size_t i = 0; i < keys->elements; i++) {
        argv[2 + i] = keys->element[i]->str;
        lens[2 + i] = keys->element[i]->len;
    }
    long long ignored;
    int rc = run_integer(redis, &UNLINK_SCRIPT, lock, argc, argv, lens, &ignored, err, errlen);
    free(argv);
    free(lens);
    return rc;
}

int generations_drop(struct redis_sync *redis, const char *prefix, struct rebuild_lock *lock,
                     int64_t gen, int (*should_stop)(void *arg), void *arg, char *err,
                     size_t errlen)
{
    char base[LAYOUT_BASE_MAX], pattern[2 * LAYOUT_BASE_MAX + 2], gen_key[LAYOUT_KEY_MAX];
    char registry_key[LAYOUT_KEY_MAX], gen_text[DIGITS_U64_MAX + 2], cursor[32] = "0";
    layout_base(prefix, gen, base, sizeof(base));
    layout_match_pattern(base, pattern, sizeof(pattern));
    layout_key(KEY_GEN, prefix, NULL, 0, gen_key, sizeof(gen_key));
    layout_key(KEY_GENERATIONS, prefix, NULL, 0, registry_key, sizeof(registry_key));
    gen_text[digits_i64(gen_text, gen)] = '\0';
    do {
        if (should_stop && should_stop(arg)) {
            snprintf(err, errlen, "stopped while dropping generation %" PRId64, gen);
            return -1;
        }
        if (rebuild_lock_refresh(redis, lock, 0, err, errlen) != REBUILD_LOCK_OK) return -1;
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", DROP_BATCH};
        redisReply *reply = redis_sync_command(redis, 6, argv, NULL, err, errlen);
        if (!reply) return -1;
        int rc = -1;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            snprintf(err, errlen, "unexpected SCAN reply");
        } else {
            snprintf(cursor, sizeof(cursor), "%s", reply->element[0]->str);
            rc = unlink_keys(redis, lock, gen_key, gen_text, reply->element[1], err, errlen);
        }
        freeReplyObject(reply);
        if (rc < 0) return -1;
    } while (strcmp(cursor, "0") != 0);
    const char *argv[] = {gen_key, registry_key, gen_text};
    long long ignored;
    return run_integer(redis, &FORGET_SCRIPT, lock, 3, argv, NULL, &ignored, err, errlen);
}

/* Redis' clock in Unix milliseconds (the one the switch stamps retirements with). */
static int redis_now_ms(struct redis_sync *redis, int64_t *now_ms, char *err, size_t errlen)
{
    const char *argv[] = {"TIME"};
    redisReply *reply = redis_sync_command(redis, 1, argv, NULL, err, errlen);
    if (!reply) return -1;
    int rc = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 ? 0 : -1;
    if (rc == 0)
        *now_ms = strtoll(reply->element[0]->str, NULL, 10) * 1000 +
                  strtoll(reply->element[1]->str, NULL, 10) / 1000;
    else
        snprintf(err, errlen, "unexpected TIME reply");
    freeReplyObject(reply);
    return rc;
}

/* The generations to drop now, from the registry: "*out" (malloc'd) and their count. */
static int collectable(struct redis_sync *redis, const char *prefix, int64_t **out, size_t *count,
                       char *err, size_t errlen)
{
    char registry_key[LAYOUT_KEY_MAX];
    long long current = 0;
    int64_t now_ms;
    layout_key(KEY_GENERATIONS, prefix, NULL, 0, registry_key, sizeof(registry_key));
    char gen_key[LAYOUT_KEY_MAX];
    layout_key(KEY_GEN, prefix, NULL, 0, gen_key, sizeof(gen_key));
    if (redis_sync_get_generation(redis, gen_key, &current, err, errlen) < 0 ||
        redis_now_ms(redis, &now_ms, err, errlen) < 0)
        return -1;
    const char *argv[] = {"HGETALL", registry_key};
    redisReply *reply = redis_sync_command(redis, 2, argv, NULL, err, errlen);
    if (!reply) return -1;
    *count = 0;
    *out = xmalloc((reply->elements / 2 + 1) * sizeof(**out));
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i + 1 < reply->elements; i += 2) {
        int64_t gen = strtoll(reply->element[i]->str, NULL, 10);
        int64_t retired_ms = strtoll(reply->element[i + 1]->str, NULL, 10);
        if (gen <= 0 || gen == current) continue;
        if (retired_ms > 0 && now_ms - retired_ms < GENERATION_GRACE_MS) continue;
        (*out)[(*count)++] = gen;
    }
    freeReplyObject(reply);
    return 0;
}

int generations_collect(struct redis_sync *redis, const char *prefix, int (*should_stop)(void *arg),
                        void *arg, char *err, size_t errlen)
{
    int64_t *gens = NULL;
    size_t count = 0;
    /* A look without the lock first, so that the usual answer (nothing to drop) never keeps a
     * rebuild from starting; the list that counts is made again under the lock. */
    if (collectable(redis, prefix, &gens, &count, err, errlen) < 0) return -1;
    free(gens);
    gens = NULL;
    if (count == 0) return 0;
    struct rebuild_lock lock;
    int rc = rebuild_lock_take(redis, prefix, &lock, err, errlen);
    if (rc != REBUILD_LOCK_OK) return rc == REBUILD_LOCK_BUSY ? REBUILD_LOCK_BUSY : -1;
    rc = collectable(redis, prefix, &gens, &count, err, errlen);
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = generations_drop(redis, prefix, &lock, gens[i], should_stop, arg, err, errlen);
    rebuild_lock_release(redis, &lock);
    free(gens);
    return rc < 0 ? -1 : (int)count;
}
