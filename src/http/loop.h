/* loop.h - internal to http/: one event-loop thread and what hangs off it. */
#ifndef CATALOGD_LOOP_H
#define CATALOGD_LOOP_H

#include <h2o.h>
#include <pthread.h>
#include <stdatomic.h>

#include "app.h"
#include "http/conn_guard.h"
#include "http/exchange.h"
#include "http/metrics.h"

struct server;

/* A command waiting for its view to be projected (read-your-writes). */
struct applied_waiter {
    struct http_exchange *ex; /* NULL once the client went away */
    int64_t seq;
    uint64_t log_reads_at_commit; /* projector_applied */
    void (*fn)(struct http_exchange *ex, int applied, void *arg);
    void *arg;
    h2o_timeout_entry_t timeout_entry;
    h2o_linklist_t link;
};

struct loop_thread {
    struct server *server;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    int listen_fd;
    h2o_socket_t *listener;
    atomic_int connections; /* open on this loop (read by /metrics) */
    int max_connections;    /* this loop's share of --max-connections */
    int accept_paused;      /* at the cap: new connections wait in the kernel's backlog */
    int accept_backoff;     /* accept() ran out of descriptors: wait for the timeout */
    h2o_timeout_t accept_backoff_timeout;
    h2o_timeout_entry_t accept_backoff_entry;
    uint64_t accept_backoff_warned_ms;
    uint64_t cut_warned_ms[CONN_CUT_KINDS]; /* when a close of that kind was last logged */
    struct conn_guard_config guard_config;  /* every connection's bounds */
    h2o_timeout_t connection_checks;        /* guard_config.check_every */
    pthread_t thread;
    struct app_thread app_thread;

    atomic_int ready;                            /* its receivers are registered */
    h2o_multithread_receiver_t resume_receiver;  /* http_resume_post lands here */
    h2o_multithread_receiver_t applied_receiver; /* projector progress lands here */
    h2o_multithread_receiver_t control_receiver; /* stop accepting; exit */
    h2o_multithread_message_t applied_message, control_message, exit_message;
    int exiting; /* on the loop's own thread: return from the loop */
    atomic_int applied_message_queued;

    h2o_linklist_t waiters; /* struct applied_waiter, oldest first */
    atomic_int waiter_count;
    h2o_timeout_t projection_wait;

    struct loop_metrics metrics;
    uint32_t request_id_salt;
    uint64_t request_id_counter;
};

/* What /metrics needs to know of the server: its loops and the names of its routes (by
 * route index; NULL for unused slots). */
struct server_view {
    struct loop_thread *loops;
    int loop_count;
    const char *const *route_names;
};
void server_describe(struct server_view *view);

/* exchange.c's side of a loop's message queue: the receiver of resumed exchanges
 * (http_resume_post lands there), and the release of the commands waiting for their view
 * when the projector's checkpoint moved. */
void http_on_resume_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);
struct projector;
void http_release_applied_waiters(struct loop_thread *loop, struct projector *projector);

/* The loop thread running the calling code (set on each loop thread). */
extern __thread struct loop_thread *current_loop;

#endif
