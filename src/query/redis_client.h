/* redis_client.h - a non-blocking Redis connection owned by one event-loop thread.
 * Commands issued during one loop turn are written in one batch; replies come back in order
 * and go to their callbacks. When Redis does not answer within the timeout, or the
 * connection breaks, every waiting call fails at once and the client reconnects with
 * backoff, so no query ever waits on a dead Redis longer than the timeout.
 * It runs on h2o's event loop (sockets and timers only; no HTTP types). */
#ifndef CATALOGD_REDIS_CLIENT_H
#define CATALOGD_REDIS_CLIENT_H

#include <h2o.h>
#include <hiredis.h>

#include "common/redis_url.h"

struct redis_client;
struct redis_call;

/* Receives the reply (owned by the client: valid during the call only), or NULL when the
 * command failed: connection lost, timeout, or the client is shutting down. */
typedef void (*redis_reply_fn)(const redisReply *reply, void *arg);

/* Creates a client on "loop" and starts connecting. "on_connect" (may be NULL) runs each
 * time a connection is ready, before any queued call (to load state such as the current
 * generation). */
struct redis_client *redis_client_new(h2o_loop_t *loop, const struct redis_url *url, int timeout_ms,
                                      void (*on_connect)(void *arg), void *arg);

/* How many clients in the process (one per loop) have no usable session since an attempt
 * failed or a session was lost. A client's first attempt, while under way, does not count. */
int redis_clients_down(void);

/* Why a client of the process that is down failed, into "out" ("cap" bytes), or "" when the
 * last one to fail has a session again: what /ready tells while redis_clients_down() > 0. */
void redis_clients_problem(char *out, size_t cap);

/* Why this client's last attempt failed or its session was lost, "" once it has a session. */
const char *redis_client_problem(const struct redis_client *client);

/* 1 while connected. */
int redis_client_connected(const struct redis_client *client);

/* The run id of the Redis connected to (confirmed_run.h), or "" until it said. A reply to a
 * call queued on this connection comes after it. */
const char *redis_client_run_id(const struct redis_client *client);

/* Queues a command (argv form; the bytes are copied). Returns a handle for cancelling, or
 * NULL when Redis is not connected (then "fn" is never called). */
struct redis_call *redis_client_call(struct redis_client *client, redis_reply_fn fn, void *arg,
                                     int argc, const char *const *argv, const size_t *argvlen);

/* The number of the batch a call queued now goes out in: the calls queued while it stays
 * the same are written in one write, in the order they were queued. */
uint64_t redis_client_batch(const struct redis_client *client);

/* The loop's clock (ms), as of this loop turn. */
uint64_t redis_client_now(const struct redis_client *client);

/* The caller no longer wants the reply (its request went away): "fn" will not be called. */
void redis_call_cancel(struct redis_call *call);

/* Counters for /metrics. */
/* Counts a reply its caller cannot use (an error, or an answer of another form than the
 * command's) among the client's errors, and logs what Redis said, once while it is among the
 * last few things said: a Redis that refuses a command to catalogd's user (an ACL without it)
 * or answers LOADING is told in the log and in /metrics, not only in 503s. */
void redis_client_count_bad_reply(struct redis_client *client, const redisReply *reply);
unsigned long redis_client_errors(const struct redis_client *client);
unsigned long redis_client_reconnects(const struct redis_client *client);

#endif
