/* prefix_hold.c - the hold of a read model's prefix by one catalog (prefix_hold.h).
 * The holder key holds "<catalog digest> <expiry> <instance id>": the digest (32 hex digits of
 * the SHA-256 of the catalog's name) decides, the expiry (Unix ms, by Redis' clock) bounds it,
 * the instance id is only told. The key also expires by itself then. */
#include "projection/prefix_hold.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/xmalloc.h"
#include "projection/redis_sync.h"
#include "readmodel/layout.h"
#include "readmodel/script.h"

struct prefix_hold {
    char key[LAYOUT_KEY_MAX];
    char digest[CATALOG_DIGEST_LEN + 1];
    char instance_id[128];
    char ttl_ms[16];
    enum prefix_hold_status last;
    uint64_t next_ms; /* monotonic time of the next claim */
    char holder[128];
    int held_out;           /* the last answer Redis gave was another catalog's hold, or free */
    uint64_t free_since_ms; /* held out, and found the prefix free since then (0: not free) */
    uint64_t confirmed_ms;  /* when the last call began that Redis answered, not for another */
};

/* Refreshes this catalog's hold, or answers another's value; a free key is claimed only when
 * ARGV[first + 4] is "1" (else the reply is 0). Anything under the key but a string of the
 * holder's form whose expiry is ahead, and not further than one hold's length, was not put
 * there by a live catalogd (a value or a key of another type written by hand, a hold whose
 * key outlived it) and counts as free. */
static struct script HOLD_SCRIPT =
    SCRIPT("local first = guards_hold()\n"
           "local key, digest, instance = ARGV[first], ARGV[first + 1], ARGV[first + 2]\n"
           "local ttl, claim = tonumber(ARGV[first + 3]), ARGV[first + 4] == '1'\n"
           "local clock = redis.call('TIME')\n"
           "local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)\n"
           "if redis.call('TYPE', key).ok == 'string' then\n"
           "  local held = redis.call('GET', key)\n"
           "  local by, expiry = string.match(held, '^(' .. string.rep('%x', 32) .. ') (%d+) ')\n"
           "  expiry = tonumber(expiry)\n"
           "  if by and expiry > now and expiry <= now + ttl then\n"
           "    if by ~= digest then return held end\n"
           "    claim = true\n"
           "  end\n"
           "end\n"
           "if not claim then return 0 end\n"
           "redis.call('SET', key, digest .. ' ' .. (now + ttl) .. ' ' .. instance, 'PX', ttl)\n"
           "return 1\n");

/* Deletes the key if it is this instance's hold. */
static struct script RELEASE_SCRIPT =
    SCRIPT("local first = guards_hold()\n"
           "local key, digest, instance = ARGV[first], ARGV[first + 1], ARGV[first + 2]\n"
           "if redis.call('TYPE', key).ok == 'string' then\n"
           "  local by, of = string.match(redis.call('GET', key), '^(%x+) %d+ (.*)$')\n"
           "  if by == digest and of == instance then redis.call('DEL', key) end\n"
           "end\n"
           "return 1\n");

void catalog_digest(const char *catalog, char out[CATALOG_DIGEST_LEN + 1])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (!EVP_Digest(catalog, strlen(catalog), digest, &digest_len, EVP_sha256(), NULL))
        xmalloc_fail();
    for (int i = 0; i < CATALOG_DIGEST_LEN / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

struct prefix_hold *prefix_hold_new(const char *prefix, const char *catalog,
                                    const char *instance_id)
{
    struct prefix_hold *hold = xcalloc(1, sizeof(*hold));
    layout_key(KEY_HOLDER, prefix, NULL, 0, hold->key, sizeof(hold->key));
    catalog_digest(catalog, hold->digest);
    snprintf(hold->instance_id, sizeof(hold->instance_id), "%s", instance_id);
    snprintf(hold->ttl_ms, sizeof(hold->ttl_ms), "%d", PREFIX_HOLD_TTL_MS);
    hold->last = PREFIX_HOLD_ERROR;
    return hold;
}

void prefix_hold_free(struct prefix_hold *hold)
{
    free(hold);
}

enum prefix_hold_status prefix_hold_keep(struct prefix_hold *hold, struct redis_sync *redis,
                                         char *err, size_t errlen)
{
    uint64_t now = clock_mono_ms();
    if (hold->last != PREFIX_HOLD_ERROR && now < hold->next_ms) return hold->last;
    /* A catalog held out claims a free prefix only once it has stayed free for
     * PREFIX_HOLD_YIELD_MS: a holder that lost its key with all of Redis' data (FLUSHALL, a
     * restart without persistence) takes it back at its next refresh, before. */
    int claim = !hold->held_out ||
                (hold->free_since_ms && now - hold->free_since_ms >= PREFIX_HOLD_YIELD_MS);
    const char *argv[] = {hold->key, hold->digest, hold->instance_id, hold->ttl_ms,
                          claim ? "1" : "0"};
    redisReply *reply = redis_sync_script(redis, &HOLD_SCRIPT, NULL, 0, 5, argv, NULL, err, errlen);
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        hold->last = PREFIX_HOLD_OURS;
        hold->held_out = 0;
        hold->free_since_ms = 0;
        hold->confirmed_ms = now;
    } else if (reply && reply->type == REDIS_REPLY_INTEGER) {
        hold->last = PREFIX_HOLD_ELSEWHERE;
        if (!hold->free_since_ms) hold->free_since_ms = now;
        snprintf(hold->holder, sizeof(hold->holder), "(none: its hold ended; waiting to claim)");
    } else if (reply && reply->type == REDIS_REPLY_STRING) {
        hold->last = PREFIX_HOLD_ELSEWHERE;
        hold->held_out = 1;
        hold->free_since_ms = 0;
        const char *expiry = reply->str + CATALOG_DIGEST_LEN + 1; /* the script checked */
        snprintf(hold->holder, sizeof(hold->holder), "%s", strchr(expiry, ' ') + 1);
    } else {
        /* Refused (out of memory, a replica): no other catalog can claim it meanwhile either. */
        if (reply && reply->type == REDIS_REPLY_ERROR && !hold->held_out) hold->confirmed_ms = now;
        if (reply)
            snprintf(err, errlen, "%s",
                     reply->type == REDIS_REPLY_ERROR ? reply->str : "an unexpected reply");
        hold->last = PREFIX_HOLD_ERROR;
        hold->free_since_ms = 0; /* seen free again only after Redis answers again */
    }
    if (reply) freeReplyObject(reply);
    hold->next_ms = now + PREFIX_HOLD_EVERY_MS;
    return hold->last;
}

int prefix_hold_peek_elsewhere(struct prefix_hold *hold, struct redis_sync *redis, char *err,
                               size_t errlen)
{
    /* No hold names "-" (a digest is hex), and no claim: the script only answers the hold. */
    const char *argv[] = {hold->key, "-", hold->instance_id, hold->ttl_ms, "0"};
    redisReply *reply = redis_sync_script(redis, &HOLD_SCRIPT, NULL, 0, 5, argv, NULL, err, errlen);
    if (!reply || (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_INTEGER)) {
        if (reply && reply->type == REDIS_REPLY_ERROR) snprintf(err, errlen, "%s", reply->str);
        if (reply) freeReplyObject(reply);
        return -1;
    }
    int elsewhere = reply->type == REDIS_REPLY_STRING &&
                    strncmp(reply->str, hold->digest, CATALOG_DIGEST_LEN) != 0;
    if (elsewhere) {
        const char *expiry = reply->str + CATALOG_DIGEST_LEN + 1; /* the script checked */
        snprintf(hold->holder, sizeof(hold->holder), "%s", strchr(expiry, ' ') + 1);
    }
    freeReplyObject(reply);
    return elsewhere;
}

uint64_t prefix_hold_confirmed_ms(const struct prefix_hold *hold)
{
    return hold->confirmed_ms;
}

const char *prefix_hold_holder(const struct prefix_hold *hold)
{
    return hold->holder;
}

void prefix_hold_release(struct prefix_hold *hold, struct redis_sync *redis)
{
    if (hold->last != PREFIX_HOLD_OURS) return;
    char err[128];
    const char *argv[] = {hold->key, hold->digest, hold->instance_id};
    redisReply *reply =
        redis_sync_script(redis, &RELEASE_SCRIPT, NULL, 0, 3, argv, NULL, err, sizeof(err));
    if (reply) freeReplyObject(reply);
    hold->last = PREFIX_HOLD_ERROR;
}
