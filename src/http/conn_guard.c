/* conn_guard.c - the per-connection guard described in conn_guard.h.
 * Invariant: the guard outlives every call of h2o's that it makes (a depth count), and it
 * touches its socket only while h2o has not closed it ("sock" is NULL from then on). */
#include "http/conn_guard.h"

#include <assert.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "http/head_scan.h"
#include "http/linger.h"

struct conn_guard {
    h2o_socket_t *sock; /* NULL once h2o has closed it */
    h2o_loop_t *loop;
    const struct conn_guard_config *config;
    h2o_socket_cb h2o_on_read; /* h2o's callbacks, called after the guard's */
    h2o_socket_cb h2o_on_written;
    size_t head_length;  /* of the request h2o is reading, once its head is complete; else 0 */
    size_t head_scanned; /* bytes of that head searched for its end so far */
    int linger_fd;       /* a duplicate descriptor to linger on once h2o closes, or -1 */
    int depth;           /* calls into h2o of the guard's on the stack */
    int finished;        /* closed, lingered, accounted for: freed at depth 0 */
};

static void on_read(h2o_socket_t *sock, const char *err);
static void on_socket_closed(void *data);

static struct conn_guard *guard_of(h2o_socket_t *sock)
{
    return sock && sock->on_close.cb == on_socket_closed ? sock->on_close.data : NULL;
}

static void finish(void *data)
{
    struct conn_guard *guard = data;
    guard->finished = 1;
    guard->config->closed(guard->config->arg);
    if (guard->depth == 0) free(guard);
}

/* h2o has closed the connection's socket. */
static void on_socket_closed(void *data)
{
    struct conn_guard *guard = data;
    guard->sock = NULL;
    if (guard->linger_fd < 0) {
        finish(guard);
        return;
    }
    linger_start(guard->loop, guard->linger_fd, finish, guard);
    guard->linger_fd = -1;
}

/* Asks for a lingering close: the duplicate descriptor keeps the connection open past h2o's
 * close. Without one (no descriptor left), the close is h2o's plain one. */
static void linger_on_close(struct conn_guard *guard)
{
    if (guard->linger_fd < 0 && guard->sock)
        guard->linger_fd = fcntl(h2o_socket_get_fd(guard->sock), F_DUPFD_CLOEXEC, 0);
}

/* Wraps h2o's read callback again if h2o has set it since (it is reading a new request). */
static void wrap_reading(struct conn_guard *guard)
{
    h2o_socket_t *sock = guard->sock;
    if (sock->_cb.read && sock->_cb.read != on_read) {
        guard->h2o_on_read = sock->_cb.read;
        sock->_cb.read = on_read;
    }
}

/* Leaves a call into h2o: frees a guard that finished meanwhile. Returns 0 while the
 * connection goes on, -1 when it is gone. */
static int leave(struct conn_guard *guard)
{
    if (--guard->depth > 0) return guard->sock ? 0 : -1;
    if (guard->finished) {
        free(guard);
        return -1;
    }
    return guard->sock ? 0 : -1;
}

enum bound {
    WITHIN_BOUNDS = 0,
    HEAD_TOO_LARGE,    /* the head of the request being read */
    TOO_MUCH_BUFFERED, /* the bytes read and not yet consumed, in all */
};

/* Which bound, if any, the bytes buffered on the connection pass. */
static enum bound over_a_bound(struct conn_guard *guard)
{
    h2o_buffer_t *input = guard->sock->input;
    if (input->size > guard->config->max_buffered_bytes) return TOO_MUCH_BUFFERED;
    if (guard->head_length) return WITHIN_BOUNDS; /* a body, or a request pipelined behind it */
    size_t end = head_end(input->bytes, input->size, guard->head_scanned);
    if (end)
        guard->head_length = end;
    else
        guard->head_scanned = input->size;
    return (end ? end : input->size) > guard->config->max_head_bytes ? HEAD_TOO_LARGE
                                                                     : WITHIN_BOUNDS;
}

/* Ends a connection over a bound: a head too large is answered 431 first (lingering, so the
 * client reads it); then h2o is told its read failed, and closes the connection. */
static void cut(struct conn_guard *guard, enum bound bound)
{
    h2o_socket_t *sock = guard->sock;
    if (bound == HEAD_TOO_LARGE) {
        size_t shown = sock->input->size < guard->config->max_head_bytes
                           ? sock->input->size
                           : guard->config->max_head_bytes;
        guard->config->refuse_head(h2o_socket_get_fd(sock), sock->input->bytes, shown,
                                   guard->config->arg);
        linger_on_close(guard);
    }
    guard->depth++;
    guard->h2o_on_read(sock, bound == HEAD_TOO_LARGE ? "request head too large"
                                                     : "too much buffered input");
    leave(guard);
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    struct conn_guard *guard = guard_of(sock);
    assert(guard); /* only the guard puts on_read there */
    enum bound bound = err ? WITHIN_BOUNDS : over_a_bound(guard);
    if (bound != WITHIN_BOUNDS) {
        cut(guard, bound);
        return;
    }
    guard->depth++;
    guard->h2o_on_read(sock, err);
    if (leave(guard) == 0) wrap_reading(guard);
}

/* A persistent response has been written: h2o drops the request's bytes and starts reading
 * the next request, perhaps from bytes it already holds. */
static void on_written(h2o_socket_t *sock, const char *err)
{
    struct conn_guard *guard = guard_of(sock);
    assert(guard);
    guard->head_length = guard->head_scanned = 0;
    guard->depth++;
    guard->h2o_on_written(sock, err);
    if (leave(guard) < 0) return;
    wrap_reading(guard);
    enum bound bound = guard->sock->_cb.read ? over_a_bound(guard) : WITHIN_BOUNDS;
    if (bound != WITHIN_BOUNDS) cut(guard, bound);
}

void conn_guard_accept(h2o_accept_ctx_t *accept_ctx, h2o_socket_t *sock,
                       const struct conn_guard_config *config)
{
    struct conn_guard *guard = xcalloc(1, sizeof(*guard));
    guard->sock = sock;
    guard->loop = accept_ctx->ctx->loop;
    guard->config = config;
    guard->linger_fd = -1;
    sock->on_close.cb = on_socket_closed;
    sock->on_close.data = guard;
    guard->depth++;
    h2o_accept(accept_ctx, sock); /* HTTP/1: h2o starts reading, synchronously */
    if (leave(guard) == 0) wrap_reading(guard);
}

/* ---- the filter ---- */

struct guard_ostream {
    h2o_ostream_t super;
    struct conn_guard *guard;
};

static void on_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                    h2o_send_state_t state)
{
    struct conn_guard *guard = ((struct guard_ostream *)self)->guard;
    int last = !h2o_send_state_is_in_progress(state);
    guard->depth++;
    h2o_ostream_send_next(self, req, bufs, bufcnt, state); /* "req" may be gone after this */
    if (leave(guard) < 0 || !last) return;
    h2o_socket_t *sock = guard->sock;
    if (sock->_cb.write && sock->_cb.write != on_written) {
        guard->h2o_on_written = sock->_cb.write;
        sock->_cb.write = on_written;
    } else if (!sock->_cb.write) {
        wrap_reading(guard); /* written at once: h2o already reads the next request */
    }
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    struct conn_guard *guard = guard_of(sock);
    if (guard && !req->http1_is_persistent && req->res.status >= 400) {
        linger_on_close(guard);
    } else if (guard && req->http1_is_persistent) {
        struct guard_ostream *ostream = (void *)h2o_add_ostream(req, sizeof(*ostream), slot);
        ostream->super.do_send = on_send;
        ostream->guard = guard;
        slot = &ostream->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void conn_guard_register(h2o_pathconf_t *pathconf)
{
    h2o_create_filter(pathconf, sizeof(h2o_filter_t))->on_setup_ostream = on_setup_ostream;
}
