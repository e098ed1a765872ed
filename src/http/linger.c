/* linger.c - the lingering close described in linger.h.
 *
 * When the filter sees h2o's 413 go out on a connection h2o will close, it takes a duplicate
 * of the socket's descriptor and hooks the socket's on_close. h2o then writes the 413 and
 * closes its descriptor; the duplicate keeps the connection open, so the kernel sends no
 * reset. The hook shuts down the sending side (the client sees the 413, then FIN) and reads
 * the duplicate until the client closes or the deadline passes, discarding every byte. Only
 * then does the connection count as closed (the connection cap still holds it). */
#include "http/linger.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct lingering {
    h2o_loop_t *loop;
    int fd;               /* the duplicate descriptor */
    h2o_socket_t *sock;   /* h2o's socket over fd, once h2o has closed its own */
    void (*then)(void *); /* the connection's own on_close, run when lingering ends */
    void *then_data;
    h2o_timeout_entry_t deadline;
};

static __thread h2o_timeout_t *linger_timeout; /* one per loop thread, made on first use */

static void finish(struct lingering *linger)
{
    if (h2o_timeout_is_linked(&linger->deadline)) h2o_timeout_unlink(&linger->deadline);
    h2o_socket_close(linger->sock); /* closes fd */
    if (linger->then) linger->then(linger->then_data);
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

/* h2o has written its response and closed its descriptor. */
static void on_h2o_closed(void *data)
{
    struct lingering *linger = data;
    shutdown(linger->fd, SHUT_WR); /* may fail if the client is gone: the read then ends it */
    linger->sock = h2o_evloop_socket_create(linger->loop, linger->fd, 0);
    linger->sock->data = linger;
    if (!linger_timeout) {
        linger_timeout = calloc(1, sizeof(*linger_timeout));
        if (!linger_timeout) abort();
        h2o_timeout_init(linger->loop, linger_timeout, LINGER_MS);
    }
    linger->deadline.cb = on_deadline;
    h2o_timeout_link(linger->loop, linger_timeout, &linger->deadline);
    h2o_socket_read_start(linger->sock, on_discard_read);
}

static void arm(h2o_req_t *req)
{
    if (!req->conn->callbacks->get_socket) return;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (!sock || sock->ssl || sock->on_close.cb == on_h2o_closed) return;
    int fd = fcntl(h2o_socket_get_fd(sock), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return; /* then h2o's plain close, as without this module */
    struct lingering *linger = calloc(1, sizeof(*linger));
    if (!linger) {
        close(fd);
        return;
    }
    linger->loop = req->conn->ctx->loop;
    linger->fd = fd;
    linger->then = sock->on_close.cb;
    linger->then_data = sock->on_close.data;
    sock->on_close.cb = on_h2o_closed;
    sock->on_close.data = linger;
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    /* An error that closes the connection: h2o's 413 for a body it did not read, or a request
     * refused with bytes after it that must not run (ambiguous framing, oversized head). */
    if (req->res.status >= 400 && !req->http1_is_persistent) arm(req);
    h2o_setup_next_ostream(req, slot);
}

void linger_register(h2o_pathconf_t *pathconf)
{
    h2o_create_filter(pathconf, sizeof(h2o_filter_t))->on_setup_ostream = on_setup_ostream;
}
