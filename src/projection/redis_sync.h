/* redis_sync.h - blocking Redis connections with timeouts, for the threads and tools that
 * may block (projector, maintenance, rebuild, verify). Plain TCP and unix sockets go through
 * hiredis; rediss:// through a small TLS client of ours (hiredis 0.14 has no TLS), behind the
 * same functions. The query path uses its own non-blocking client. */
#ifndef CATALOGD_REDIS_SYNC_H
#define CATALOGD_REDIS_SYNC_H

#include <hiredis.h>

#include "common/redis_url.h"
#include "readmodel/script.h"

struct redis_sync;

/* Connects to "url" (TLS for rediss://, the server's certificate verified), authenticates and
 * selects its database. Every later command fails after "timeout_ms" instead of blocking.
 * Returns a connection (close with redis_sync_close), or NULL with a reason in "err". */
struct redis_sync *redis_sync_connect(const struct redis_url *url, int timeout_ms, char *err,
                                      size_t errlen);

/* Closes "redis" (NULL is fine). */
void redis_sync_close(struct redis_sync *redis);

/* 1 once the connection failed (I/O error, timeout, a broken reply): every later command
 * fails too, and the caller should close it and connect again. */
int redis_sync_broken(const struct redis_sync *redis);

/* 1 when an idle connection (no command waiting for its reply) is still open, without a round
 * trip: its socket has nothing to read. Redis sends nothing unasked, so an end of stream, an
 * error or any bytes (a TLS close_notify) mean it or something between dropped the connection.
 * A connection lost without a word (no FIN, no RST) still looks open here. */
int redis_sync_idle_and_open(const struct redis_sync *redis);

/* Pipelining: queues one command (argv form) without waiting; redis_sync_get_reply sends
 * whatever is queued and returns the replies in order. */
void redis_sync_append(struct redis_sync *redis, int argc, const char **argv,
                       const size_t *argvlen);

/* The next reply, whatever its type, in "*reply" (free with freeReplyObject). Returns 0, or
 * -1 with a reason in "err" when the connection failed. */
int redis_sync_get_reply(struct redis_sync *redis, redisReply **reply, char *err, size_t errlen);

/* Runs one command (argv form) and checks the reply type. Returns the reply (free with
 * freeReplyObject), or NULL with a reason in "err" when the connection failed or Redis
 * answered an error. */
redisReply *redis_sync_command(struct redis_sync *redis, int argc, const char **argv,
                               const size_t *argvlen, char *err, size_t errlen);

/* GET of the generation pointer ({prefix}:gen-v2): 0 and "*gen" when it names a generation
 * the way catalogd writes one (decimal digits, no sign, no leading zero), 1 when it is
 * missing, 2 when it holds anything else (a hand-written "007" or " 1", or a key of another
 * type: the queries refuse it too, so it names no generation), -1 on error (with "err"). */
int redis_sync_get_generation(struct redis_sync *redis, const char *key, long long *gen, char *err,
                              size_t errlen);

/* Reads an integer-valued string reply ("GET key" of a number): 0 and "*value", 1 when the
 * key is missing, -1 on error (with "err"). */
int redis_sync_get_int(struct redis_sync *redis, const char *key, long long *value, char *err,
                       size_t errlen);

/* Runs script "s" with its "guards" first, then "argc" arguments, by EVALSHA (and by EVAL
 * when Redis answers NOSCRIPT: a Redis that restarted or flushed its scripts). Returns the
 * reply, whatever its type (error replies included; free it), or NULL with "err" when the
 * connection failed. */
redisReply *redis_sync_script(struct redis_sync *redis, struct script *s,
                              const struct script_guard *guards, size_t guard_count, size_t argc,
                              const char *const *argv, const size_t *argvlen, char *err,
                              size_t errlen);

#endif
