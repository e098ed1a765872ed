/* redis_sync.c - thin checked wrappers around hiredis' blocking API. */
#include "projection/redis_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

redisContext *redis_sync_connect(const struct redis_url *url, int timeout_ms, char *err,
                                 size_t errlen)
{
    struct timeval timeout = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *redis = url->path[0] ? redisConnectUnixWithTimeout(url->path, timeout)
                                       : redisConnectWithTimeout(url->host, url->port, timeout);
    if (!redis || redis->err) {
        snprintf(err, errlen, "cannot connect to Redis: %s", redis ? redis->errstr : "no memory");
        redisFree(redis);
        return NULL;
    }
    redisSetTimeout(redis, timeout);
    if (url->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", url->db);
        const char *argv[] = {"SELECT", db};
        redisReply *reply = redis_sync_command(redis, 2, argv, NULL, err, errlen);
        if (!reply) {
            redisFree(redis);
            return NULL;
        }
        freeReplyObject(reply);
    }
    return redis;
}

redisReply *redis_sync_command(redisContext *redis, int argc, const char **argv,
                               const size_t *argvlen, char *err, size_t errlen)
{
    redisReply *reply = redisCommandArgv(redis, argc, argv, argvlen);
    if (!reply) {
        snprintf(err, errlen, "Redis %s: %s", argv[0],
                 redis->errstr[0] ? redis->errstr : "no reply");
        return NULL;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "Redis %s: %.*s", argv[0], (int)reply->len, reply->str);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

int redis_sync_get_int(redisContext *redis, const char *key, long long *value, char *err,
                       size_t errlen)
{
    const char *argv[] = {"GET", key};
    redisReply *reply = redis_sync_command(redis, 2, argv, NULL, err, errlen);
    if (!reply) return -1;
    int rc = 1;
    if (reply->type == REDIS_REPLY_STRING) {
        char *end;
        *value = strtoll(reply->str, &end, 10);
        rc = (reply->len > 0 && *end == '\0') ? 0 : -1;
        if (rc < 0) snprintf(err, errlen, "%s holds no number", key);
    } else if (reply->type != REDIS_REPLY_NIL) {
        snprintf(err, errlen, "%s: unexpected reply type %d", key, reply->type);
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}
