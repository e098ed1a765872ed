/* redis_sync.c - thin checked wrappers around hiredis' blocking API. */
#include "projection/redis_sync.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/digits.h"
#include "common/xmalloc.h"

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
    if (url->password[0]) {
        /* AUTH [user] password: without a user, the password moves to the user's place. */
        int argc = url->user[0] ? 3 : 2;
        const char *argv[] = {"AUTH", argc == 3 ? url->user : url->password, url->password};
        char why[200];
        redisReply *reply = redis_sync_command(redis, argc, argv, NULL, why, sizeof(why));
        if (!reply) {
            snprintf(err, errlen, "Redis refused the credentials: %s", why);
            redisFree(redis);
            return NULL;
        }
        freeReplyObject(reply);
    }
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

redisReply *redis_sync_script(redisContext *redis, struct script *s,
                              const struct script_guard *guards, size_t guard_count, size_t argc,
                              const char *const *argv, const size_t *argvlen, char *err,
                              size_t errlen)
{
    /* EVALSHA sha numkeys guard_count, the guards' pairs, then the arguments */
    size_t total = 4 + 2 * guard_count + argc;
    const char **all = xmalloc(total * sizeof(*all));
    size_t *lens = xmalloc(total * sizeof(*lens));
    char count_text[DIGITS_U64_MAX];
    size_t n = 0;
    all[n] = "EVALSHA";
    lens[n++] = 7;
    all[n] = script_sha(s);
    lens[n++] = SCRIPT_SHA_LEN;
    all[n] = "0";
    lens[n++] = 1;
    all[n] = count_text;
    lens[n++] = digits_u64(count_text, guard_count);
    for (size_t i = 0; i < guard_count; i++) {
        all[n] = guards[i].key;
        lens[n++] = strlen(guards[i].key);
        all[n] = guards[i].value;
        lens[n++] = strlen(guards[i].value);
    }
    for (size_t i = 0; i < argc; i++) {
        all[n] = argv[i];
        lens[n++] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    redisReply *reply = redisCommandArgv(redis, (int)n, all, lens);
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(reply);
        all[0] = "EVAL";
        lens[0] = 4;
        all[1] = script_text(s, &lens[1]);
        reply = redisCommandArgv(redis, (int)n, all, lens);
    }
    free(all);
    free(lens);
    if (!reply) snprintf(err, errlen, "Redis: %s", redis->errstr[0] ? redis->errstr : "no reply");
    return reply;
}
