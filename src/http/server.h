/* server.h - the HTTP server: N event-loop threads, each with its own h2o context, its own
 * SO_REUSEPORT listener and its own Redis connection; the route table; graceful shutdown. */
#ifndef CATALOGD_SERVER_H
#define CATALOGD_SERVER_H

#include <stdint.h>

#include "app.h"

struct server;

/* Binds "app->config->listen_address" (one socket per thread). Returns 0, or -1 with a
 * reason in "err". Nothing runs until server_run. */
int server_open(struct app *app, struct server **out, char *err, size_t errlen);

/* Runs the loop threads and blocks until SIGTERM or SIGINT; then stops accepting, lets
 * in-flight requests finish for at most "grace_ms" and returns. The loops keep running, so
 * that what the writer and the projector still hand them (answers to the commands they
 * finish) is delivered: stop those first, then call server_stop. Signals must be blocked in
 * every thread (main does it first). */
void server_run(struct server *server, int grace_ms);

/* Lets each loop run what is queued for it, then stops it and returns once every loop has
 * stopped: nothing of "app" is used by the server afterwards, and the process may free it and
 * exit (the loop threads stay parked until then). */
void server_stop(struct server *server);

/* Projector callback: the checkpoint moved; wakes loops that have commands waiting for it. */
void server_projection_applied(int64_t checkpoint, void *server);

#endif
