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
};

/* Claims the key unless another catalog holds it (whose value it then answers); a key of
 * another type than a string was not written by any catalogd and is taken over. */
static struct script HOLD_SCRIPT =
    SCRIPT("local first = guards_hold()\n"
           "local key, mine = ARGV[first], ARGV[first + 1]\n"
           "if redis.call('TYPE', key).ok == 'string' then\n"
           "  local held = redis.call('GET', key)\n"
           "  if string.sub(held, 1, 32) ~= string.sub(mine, 1, 32) then return held end\n"
           "end\n"
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
    const char *argv[] = {hold->key, hold->value, hold->ttl_ms};
    redisReply *reply = redis_sync_script(redis, &HOLD_SCRIPT, NULL, 0, 3, argv, NULL, err, errlen);
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        hold->last = PREFIX_HOLD_OURS;
    } else if (reply && reply->type == REDIS_REPLY_STRING) {
        hold->last = PREFIX_HOLD_ELSEWHERE;
        const char *instance =
            reply->len > CATALOG_DIGEST_LEN ? reply->str + CATALOG_DIGEST_LEN + 1 : "?";
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
