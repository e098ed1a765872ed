/* rebuild_lock.c - SET NX PX, refreshed by compare-and-expire, released by compare-and-delete. */
#include "projection/rebuild_lock.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/random_token.h"
#include "projection/redis_sync.h"

#define TTL_TEXT "5000"
_Static_assert(REBUILD_LOCK_TTL_MS == 5000, "TTL_TEXT spells REBUILD_LOCK_TTL_MS");

/* ARGV after the guards (the lock itself): the key, the TTL. */
static struct script REFRESH_SCRIPT = SCRIPT("local first, fenced = guards_hold()\n"
                                             "if not first then return 0 end\n"
                                             "return redis.call('PEXPIRE', ARGV[first], "
                                             "ARGV[first + 1])\n");
static struct script RELEASE_SCRIPT = SCRIPT("local first, fenced = guards_hold()\n"
                                             "if not first then return 0 end\n"
                                             "return redis.call('DEL', ARGV[first])\n");
/* Takes over a lock whose holder is gone, or that no holder wrote. ARGV after the guards (the dead
 * holder's value): the key, our value, the TTL. */
static struct script TAKE_OVER_SCRIPT = SCRIPT("local first, fenced = guards_hold()\n"
                                               "if not first then return 0 end\n"
                                               "redis.call('SET', ARGV[first], ARGV[first + 1], "
                                               "'PX', ARGV[first + 2])\n"
                                               "return 1\n");

/* The values of this process's takes and releases that got no answer. Redis may have run them
 * all the same, later (a command queued in a frozen Redis runs when it thaws), and left the lock
 * held by nobody until it expires: every rebuild asked for until then would be refused as busy.
 * A take that finds one of them holding the lock takes over. Nothing runs under such a value
 * (a take that got no answer failed; a release ends its holder's work), and every take has a
 * value of its own, so no live holder is ever taken over this way. */
#define LEFT_BEHIND_MAX 4
static struct {
    pthread_mutex_t mutex;
    char values[LEFT_BEHIND_MAX][REBUILD_LOCK_VALUE_MAX];
    unsigned next; /* the slot the next value replaces */
} left_behind = {.mutex = PTHREAD_MUTEX_INITIALIZER};

static void remember_left_behind(const struct rebuild_lock *lock)
{
    pthread_mutex_lock(&left_behind.mutex);
    snprintf(left_behind.values[left_behind.next], sizeof(left_behind.values[0]), "%s",
             lock->value);
    left_behind.next = (left_behind.next + 1) % LEFT_BEHIND_MAX;
    pthread_mutex_unlock(&left_behind.mutex);
}

static int left_behind_by_us(const char *value)
{
    int found = 0;
    pthread_mutex_lock(&left_behind.mutex);
    for (size_t i = 0; i < LEFT_BEHIND_MAX && !found; i++)
        found = left_behind.values[i][0] && strcmp(left_behind.values[i], value) == 0;
    pthread_mutex_unlock(&left_behind.mutex);
    return found;
}

/* This host's name, without spaces (the lock's value is space-separated). */
static void host_name(char out[64])
{
    if (gethostname(out, 63) != 0) snprintf(out, 64, "?");
    out[63] = '\0';
    for (char *c = out; *c; c++)
        if (*c == ' ') *c = '_';
}

static void our_value(struct rebuild_lock *lock)
{
    char token[RANDOM_TOKEN_LEN + 1], host[64];
    random_token(token);
    host_name(host);
    snprintf(lock->value, sizeof(lock->value), "%s %s %ld", token, host, (long)getpid());
}

/* 1 when "value" names a process on this host that no longer exists. */
static int holder_is_gone(const char *value)
{
    char host[64], holder_host[64];
    long pid;
    host_name(host);
    if (sscanf(value, "%*s %63s %ld", holder_host, &pid) != 2) return 0;
    if (strcmp(host, holder_host) != 0 || pid <= 0 || pid == (long)getpid()) return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static int integer_reply(redisReply *reply, long long *out)
{
    if (!reply || reply->type != REDIS_REPLY_INTEGER) return -1;
    *out = reply->integer;
    return 0;
}

/* 1 when the lock has no expiry: every holder sets one with the lock and refreshes it, so such a
 * value was written by something else (by hand), and no rebuild holds it. */
static int never_expires(struct redis_sync *redis, const char *key)
{
    char ignored[64];
    const char *argv[] = {"PTTL", key};
    redisReply *reply = redis_sync_command(redis, 2, argv, NULL, ignored, sizeof(ignored));
    long long ttl = 0;
    int never = integer_reply(reply, &ttl) == 0 && ttl == -1;
    freeReplyObject(reply);
    return never;
}

static int take_over(struct redis_sync *redis, struct rebuild_lock *lock, char *err, size_t errlen)
{
    const char *argv[] = {"GET", lock->key};
    redisReply *holder = redis_sync_command(redis, 2, argv, NULL, err, errlen);
    if (!holder) return REBUILD_LOCK_FAILED;
    int rc = REBUILD_LOCK_BUSY;
    if (holder->type == REDIS_REPLY_STRING &&
        (left_behind_by_us(holder->str) || holder_is_gone(holder->str) ||
         never_expires(redis, lock->key))) {
        struct script_guard guard = {lock->key, holder->str};
        const char *args[] = {lock->key, lock->value, TTL_TEXT};
        redisReply *reply =
            redis_sync_script(redis, &TAKE_OVER_SCRIPT, &guard, 1, 3, args, NULL, err, errlen);
        long long taken = 0;
        if (!reply) {
            rc = REBUILD_LOCK_FAILED;
            remember_left_behind(lock);
        } else if (integer_reply(reply, &taken) == 0 && taken == 1)
            rc = REBUILD_LOCK_OK;
        freeReplyObject(reply);
    }
    freeReplyObject(holder);
    return rc;
}

int rebuild_lock_take(struct redis_sync *redis, const char *prefix, struct rebuild_lock *lock,
                      char *err, size_t errlen)
{
    layout_key(KEY_REBUILD_LOCK, prefix, NULL, 0, lock->key, sizeof(lock->key));
    our_value(lock);
    const char *argv[] = {"SET", lock->key, lock->value, "NX", "PX", TTL_TEXT};
    redisReply *reply = redis_sync_command(redis, 6, argv, NULL, err, errlen);
    if (!reply) {
        remember_left_behind(lock);
        return REBUILD_LOCK_FAILED;
    }
    int taken = reply->type == REDIS_REPLY_STATUS;
    freeReplyObject(reply);
    int rc = taken ? REBUILD_LOCK_OK : take_over(redis, lock, err, errlen);
    if (rc == REBUILD_LOCK_OK) lock->refreshed_ms = clock_mono_ms();
    if (rc == REBUILD_LOCK_BUSY) snprintf(err, errlen, "another rebuild is running");
    return rc;
}

int rebuild_lock_refresh(struct redis_sync *redis, struct rebuild_lock *lock, int force, char *err,
                         size_t errlen)
{
    uint64_t now = clock_mono_ms();
    if (!force && now - lock->refreshed_ms < REBUILD_LOCK_REFRESH_MS) return REBUILD_LOCK_OK;
    struct script_guard guard = rebuild_lock_guard(lock);
    const char *args[] = {lock->key, TTL_TEXT};
    redisReply *reply =
        redis_sync_script(redis, &REFRESH_SCRIPT, &guard, 1, 2, args, NULL, err, errlen);
    long long extended = 0;
    int rc = !reply                                                  ? REBUILD_LOCK_FAILED
             : integer_reply(reply, &extended) == 0 && extended == 1 ? REBUILD_LOCK_OK
                                                                     : REBUILD_LOCK_LOST;
    freeReplyObject(reply);
    if (rc == REBUILD_LOCK_OK) lock->refreshed_ms = now;
    if (rc == REBUILD_LOCK_LOST) snprintf(err, errlen, "the rebuild lock was lost");
    return rc;
}

void rebuild_lock_release(struct redis_sync *redis, struct rebuild_lock *lock)
{
    char ignored[128];
    struct script_guard guard = rebuild_lock_guard(lock);
    const char *args[] = {lock->key};
    redisReply *reply = redis_sync_script(redis, &RELEASE_SCRIPT, &guard, 1, 1, args, NULL, ignored,
                                          sizeof(ignored));
    if (!reply) remember_left_behind(lock);
    freeReplyObject(reply);
}

struct script_guard rebuild_lock_guard(const struct rebuild_lock *lock)
{
    return (struct script_guard){lock->key, lock->value};
}
