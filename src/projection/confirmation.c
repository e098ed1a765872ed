/* confirmation.c - see confirmation.h. */
#include "projection/confirmation.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "command/store.h"
#include "common/log.h"
#include "projection/redis_sync.h"

void confirmation_init(struct confirmation *c, const char *prefix)
{
    memset(c, 0, sizeof(*c));
    layout_key(KEY_CONFIRMED_RUN, prefix, NULL, 0, c->key, sizeof(c->key));
    c->needed = -1;
}

static void forget(struct confirmation *c)
{
    c->confirmed = 0;
    c->needed = -1;
}

int confirmation_connected(struct confirmation *c, struct redis_sync *redis, char *err,
                           size_t errlen)
{
    forget(c);
    c->run_id[0] = '\0';
    char why[200];
    const char *info[] = {"INFO", "server"};
    redisReply *reply = redis_sync_command(redis, 2, info, NULL, why, sizeof(why));
    if (!reply) {
        snprintf(err, errlen, "%s: %s",
                 redis_sync_broken(redis) ? "reading Redis' run id" : run_id_refusal(why), why);
        return -1;
    }
    int rc = reply->type == REDIS_REPLY_STRING
                 ? confirmed_run_parse(reply->str, reply->len, c->run_id)
                 : -1;
    freeReplyObject(reply);
    if (rc < 0) snprintf(err, errlen, "Redis' INFO names no run_id");
    return rc;
}

int confirmation_advance(struct confirmation *c, struct redis_sync *redis, struct store *store,
                         int64_t checkpoint, char *err, size_t errlen)
{
    char why[200];
    if (c->confirmed) return 0;
    if (c->needed < 0) {
        const char *get[] = {"GET", c->key};
        redisReply *reply = redis_sync_command(redis, 2, get, NULL, why, sizeof(why));
        if (!reply && redis_sync_broken(redis)) {
            snprintf(err, errlen, "reading %s: %s", c->key, why);
            return -1;
        }
        /* An error (a key of another type, by hand) is no confirmation either: SET replaces it. */
        c->confirmed = reply && confirmed_run_is(reply, c->run_id);
        freeReplyObject(reply);
        if (c->confirmed) return 0;
        if (store_head_seq(store, &c->needed) < 0) {
            c->needed = -1;
            snprintf(err, errlen, "reading the event log's head: %s", store_errmsg(store));
            return -1;
        }
    }
    if (checkpoint < c->needed) return 0;
    const char *set[] = {"SET", c->key, c->run_id};
    redisReply *reply = redis_sync_command(redis, 3, set, NULL, why, sizeof(why));
    if (!reply) {
        snprintf(err, errlen, "writing %s: %s", c->key, why);
        return -1;
    }
    freeReplyObject(reply);
    c->confirmed = 1;
    LOG(LOG_INFO,
        "projector: the read model is confirmed in Redis (run %.8s) at seq %" PRId64
        ": queries read from it",
        c->run_id, c->needed);
    return 0;
}

int confirmation_check(struct confirmation *c, struct redis_sync *redis, struct store *store,
                       int64_t checkpoint, char *err, size_t errlen)
{
    forget(c);
    return confirmation_advance(c, redis, store, checkpoint, err, errlen);
}

int confirmation_rebuilt(struct confirmation *c, struct redis_sync *redis, struct store *store,
                         int64_t checkpoint, char *err, size_t errlen)
{
    forget(c);
    c->needed = checkpoint;
    return confirmation_advance(c, redis, store, checkpoint, err, errlen);
}
