/* redis_sync.h - blocking Redis connections with timeouts, for the threads and tools that
 * may block (projector, rebuild, verify). The query path uses its own non-blocking client. */
#ifndef CATALOGD_REDIS_SYNC_H
#define CATALOGD_REDIS_SYNC_H

#include <hiredis.h>

#include "common/redis_url.h"
#include "readmodel/script.h"

/* Connects to "url" and selects its database. Every later command fails after
 * "timeout_ms" instead of blocking. Returns a context, or NULL with a reason in "err". */
redisContext *redis_sync_connect(const struct redis_url *url, int timeout_ms, char *err,
                                 size_t errlen);

/* Runs one command (argv form) and checks the reply type. Returns the reply (free with
 * freeReplyObject), or NULL with a reason in "err" when the connection failed or Redis
 * answered an error. */
redisReply *redis_sync_command(redisContext *redis, int argc, const char **argv,
                               const size_t *argvlen, char *err, size_t errlen);

/* Reads an integer-valued string reply ("GET key" of a number): 0 and "*value", 1 when the
 * key is missing, -1 on error (with "err"). */
int redis_sync_get_int(redisContext *redis, const char *key, long long *value, char *err,
                       size_t errlen);

/* Runs script "s" with its "guards" first, then "argc" arguments, by EVALSHA (and by EVAL
 * when Redis answers NOSCRIPT: a Redis that restarted or flushed its scripts). Returns the
 * reply, whatever its type (error replies included; free it), or NULL with "err" when the
 * connection failed. */
redisReply *redis_sync_script(redisContext *redis, struct script *s,
                              const struct script_guard *guards, size_t guard_count, size_t argc,
                              const char *const *argv, const size_t *argvlen, char *err,
                              size_t errlen);

#endif
