/* prefix_hold.c - the hold of a read model's prefix by one catalog (prefix_hold.h).
 * The holder key holds "<catalog digest> <instance id>": the digest (32 hex digits of the
 * SHA-256 of the catalog's name) decides, the instance id is only told. */
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
    char value[CATALOG_DIGEST_LEN + 1 + 128];
    char ttl_ms[16];
    enum prefix_hold_status last;
    uint64_t next_ms; /* monotonic time of the next claim */
    char holder[128];
    int held_out;           /* the last answer Redis gave was another catalog's hold, or free */
    uint64_t free_since_ms; /* held out, and found the prefix free since then (0: not free) */
};

/* Refreshes this catalog's hold, or answers another's; a free key is claimed only when
 * ARGV[first + 3] is "1" (else the reply is 0). A hold is a string "<32 hex digits> <instance>"
 * with an expiry: anything else under the key (a value or a key of another type written by
 * hand, a key without expiry) was not put there by a catalogd and counts as free. */
static struct script HOLD_SCRIPT =
    SCRIPT("local first = guards_hold()\n"
           "local key, mine = ARGV[first], ARGV[first + 1]\n"
           "local claim = ARGV[first + 3] == '1'\n"
           "if redis.call('TYPE', key).ok == 'string' and redis.call('PTTL', key) > 0 then\n"
           "  local held = redis.call('GET', key)\n"
           "  if string.match(held, '^' .. string.rep('%x', 32) .. ' ') then\n"
           "    if string.sub(held, 1, 32) ~= string.sub(mine, 1, 32) then return held end\n"
           "    claim = true\n"
           "  end\n"
           "end\n"
           "if not claim then return 0 end\n"
           "redis.call('SET', key, mine, 'PX', ARGV[first + 2])\n"
           "return 1\n");

static struct script RELEASE_SCRIPT =
    SCRIPT("local first = guards_hold()\n"
           "local key, mine = ARGV[first], ARGV[first + 1]\n"
           "if redis.call('TYPE', key).ok == 'string' and redis.call('GET', key) == mine then\n"
           "  redis.call('DEL', key)\n"
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
    catalog_digest(catalog, hold->value);
    snprintf(hold->value + CATALOG_DIGEST_LEN, sizeof(hold->value) - CATALOG_DIGEST_LEN, " %s",
             instance_id);
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
    const char *argv[] = {hold->key, hold->value, hold->ttl_ms, claim ? "1" : "0"};
    redisReply *reply = redis_sync_script(redis, &HOLD_SCRIPT, NULL, 0, 4, argv, NULL, err, errlen);
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        hold->last = PREFIX_HOLD_OURS;
        hold->held_out = 0;
        hold->free_since_ms = 0;
    } else if (reply && reply->type == REDIS_REPLY_INTEGER) {
        hold->last = PREFIX_HOLD_ELSEWHERE;
        if (!hold->free_since_ms) hold->free_since_ms = now;
        snprintf(hold->holder, sizeof(hold->holder), "(none: its hold ended; waiting to claim)");
    } else if (reply && reply->type == REDIS_REPLY_STRING) {
        hold->last = PREFIX_HOLD_ELSEWHERE;
        hold->held_out = 1;
        hold->free_since_ms = 0;
        const char *instance = reply->str + CATALOG_DIGEST_LEN + 1; /* the script checked */
        snprintf(hold->holder, sizeof(hold->holder), "%s", instance);
    } else {
        if (reply)
            snprintf(err, errlen, "%s",
                     reply->type == REDIS_REPLY_ERROR ? reply->str : "an unexpected reply");
        hold->last = PREFIX_HOLD_ERROR;
    }
    if (reply) freeReplyObject(reply);
    hold->next_ms = now + PREFIX_HOLD_EVERY_MS;
    return hold->last;
}

const char *prefix_hold_holder(const struct prefix_hold *hold)
{
    return hold->holder;
}

void prefix_hold_release(struct prefix_hold *hold, struct redis_sync *redis)
{
    if (hold->last != PREFIX_HOLD_OURS) return;
    char err[128];
    const char *argv[] = {hold->key, hold->value};
    redisReply *reply =
        redis_sync_script(redis, &RELEASE_SCRIPT, NULL, 0, 2, argv, NULL, err, sizeof(err));
    if (reply) freeReplyObject(reply);
    hold->last = PREFIX_HOLD_ERROR;
}
