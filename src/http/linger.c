/* linger.c - the lingering close described in linger.h.
 *
 * The caller took a duplicate of the connection's descriptor before h2o closed its own; the
 * duplicate keeps the connection open, so the kernel sends no reset. Here the sending side is
 * shut down (the client sees the answer, then FIN) and the duplicate is read until the client
 * closes or the deadline passes, discarding every byte; then the caller is told. */
#include "http/linger.h"

#include <stdlib.h>
#include <sys/socket.h>

#include "common/xmalloc.h"

struct lingering {
    h2o_socket_t *sock; /* h2o's socket over the duplicate descriptor */
    void (*done)(void *arg);
    void *done_arg;
    h2o_timeout_entry_t deadline;
};

static __thread h2o_timeout_t *linger_timeout; /* one per loop thread, made on first use */

static void finish(struct lingering *linger)
{
    if (h2o_timeout_is_linked(&linger->deadline)) h2o_timeout_unlink(&linger->deadline);
    h2o_socket_close(linger->sock); /* closes the descriptor */
    linger->done(linger->done_arg);
    free(linger);
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    finish(H2O_STRUCT_FROM_MEMBER(struct lingering, deadline, entry));
}

static void on_discard_read(h2o_socket_t *sock, const char *err)
{
    if (err) { /* the client closed (or reset): done */
        finish(sock->data);
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
}

void linger_start(h2o_loop_t *loop, int fd, void (*done)(void *arg), void *arg)
{
    struct lingering *linger = xcalloc(1, sizeof(*linger));
    shutdown(fd, SHUT_WR); /* may fail if the client is gone: the read then ends it */
    linger->sock = h2o_evloop_socket_create(loop, fd, 0);
    linger->sock->data = linger;
    linger->done = done;
    linger->done_arg = arg;
    if (!linger_timeout) {
        linger_timeout = xcalloc(1, sizeof(*linger_timeout));
        h2o_timeout_init(loop, linger_timeout, LINGER_MS);
    }
    linger->deadline.cb = on_deadline;
    h2o_timeout_link(loop, linger_timeout, &linger->deadline);
    h2o_socket_read_start(linger->sock, on_discard_read);
}
