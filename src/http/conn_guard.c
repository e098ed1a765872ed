/* conn_guard.c - the per-connection guard described in conn_guard.h.
 * Invariant: the guard outlives every call of h2o's that it makes (a depth count), and it
 * touches its socket only while h2o has not closed it ("sock" is NULL from then on). */
#include "http/conn_guard.h"

#include <assert.h>
#include <fcntl.h>
#include <h2o/http1.h>
#include <h2o/http2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/xmalloc.h"
#include "http/head_scan.h"
#include "http/linger.h"
#include "http/tcp_acked.h"

struct conn_guard {
    h2o_socket_t *sock; /* NULL once h2o has closed it */
    h2o_loop_t *loop;
    const struct conn_guard_config *config;
    h2o_socket_cb h2o_on_read; /* h2o's callbacks, called after the guard's */
    h2o_socket_cb h2o_on_written;
    size_t head_length;  /* of the request h2o is reading, once its head is complete; else 0 */
    size_t head_scanned; /* bytes of that head searched for its end so far */
    struct head_syntax head_syntax; /* how far that head's syntax is checked (head_scan.h) */
    const char *framing_problem;    /* why that head is HEAD_AMBIGUOUS */
    int linger_fd;                  /* a duplicate descriptor to linger on once h2o closes, or -1 */
    int depth;                      /* calls into h2o of the guard's on the stack */
    int finished;                   /* closed, lingered, accounted for: freed at depth 0 */
    h2o_accept_ctx_t *accept_ctx;   /* TLS: for h2o's HTTP once the handshake is done */
    struct timeval connected_at;    /* ditto */
    h2o_timeout_entry_t handshake_timer; /* TLS: the handshake's deadline */
    int http2_preface_seen;
    int http2_answers_open;     /* HTTP/2 responses begun and not yet disposed of */
    int64_t reset_budget_milli; /* HTTP/2 stream resets still allowed, in thousandths */
    uint64_t reset_budget_at_ms;
    h2o_timeout_entry_t check_timer; /* every CONN_GUARD_CHECK_MS: does the answer move? */
    uint64_t acked_seen;             /* bytes the client had acknowledged at the last check */
    uint64_t stalled_since_ms;       /* the first check that found the answer stuck, or 0 */
};

static void on_read(h2o_socket_t *sock, const char *err);
static void on_read_while_answering(h2o_socket_t *sock, const char *err);
static void on_socket_closed(void *data);

static struct conn_guard *guard_of(h2o_socket_t *sock)
{
    return sock && sock->on_close.cb == on_socket_closed ? sock->on_close.data : NULL;
}

/* The guard of an HTTP/1 request's connection, or NULL (HTTP/2 has no per-request guard). */
static struct conn_guard *http1_guard_of(h2o_req_t *req)
{
    if (req->version >= 0x200 || !req->conn->callbacks->get_socket) return NULL;
    return guard_of(req->conn->callbacks->get_socket(req->conn));
}

/* Frees a finished guard once nothing refers to it: no call of its into h2o on the stack, no
 * HTTP/2 request of its connection that h2o has not disposed of yet. */
static void free_when_unused(struct conn_guard *guard)
{
    if (guard->finished && guard->depth == 0 && guard->http2_answers_open == 0) free(guard);
}

static void finish(void *data)
{
    struct conn_guard *guard = data;
    guard->finished = 1;
    guard->config->closed(guard->config->arg);
    free_when_unused(guard);
}

/* h2o has closed the connection's socket. */
static void on_socket_closed(void *data)
{
    struct conn_guard *guard = data;
    guard->sock = NULL;
    if (h2o_timeout_is_linked(&guard->handshake_timer)) h2o_timeout_unlink(&guard->handshake_timer);
    if (h2o_timeout_is_linked(&guard->check_timer)) h2o_timeout_unlink(&guard->check_timer);
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

/* Whether h2o reads the connection (a request's head or body): not while a request is
 * answered, when the socket is either stopped or polled by the guard alone. */
static int h2o_reads(const h2o_socket_t *sock)
{
    return sock->_cb.read && sock->_cb.read != on_read_while_answering;
}

/* Wraps h2o's read callback again if h2o has set it since (it is reading a new request). */
static void wrap_reading(struct conn_guard *guard)
{
    h2o_socket_t *sock = guard->sock;
    if (h2o_reads(sock) && sock->_cb.read != on_read) {
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
        free_when_unused(guard);
        return -1;
    }
    return guard->sock ? 0 : -1;
}

enum bound {
    WITHIN_BOUNDS = 0,
    HEAD_TOO_LARGE,    /* the head of the request being read */
    HEAD_MALFORMED,    /* that head is one h2o's parser refuses (head_syntax_check) */
    HEAD_AMBIGUOUS,    /* that head, complete, frames its body ambiguously (head_scan.h) */
    TOO_MUCH_BUFFERED, /* the bytes read and not yet consumed, in all */
    TOO_MANY_RESETS,   /* HTTP/2 stream resets (rapid reset) */
};

/* Whether the connection speaks HTTP/2 (h2, chosen by ALPN over TLS; --http2). */
static int speaks_http2(h2o_socket_t *sock)
{
    if (!sock->ssl) return 0;
    h2o_iovec_t protocol = h2o_socket_ssl_get_selected_protocol(sock);
    return protocol.len == 2 && memcmp(protocol.base, "h2", 2) == 0;
}

/* Whether "len" bytes are at most 4 line ends: h2o closes such a connection without an answer
 * (a client's stray CRLFs after a body), so the guard leaves it to h2o. */
static int only_line_ends(const char *bytes, size_t len)
{
    if (len > 4) return 0;
    for (size_t i = 0; i < len; i++)
        if (bytes[i] != '\r' && bytes[i] != '\n') return 0;
    return 1;
}

/* Which bound, if any, the bytes buffered on the connection pass. Over TLS, "input" holds
 * the decrypted bytes (h2o decrypts into it before calling the read callback). An HTTP/2
 * connection has frames, not heads: only the buffered bound applies (h2o's HPACK decoder has
 * bounds of its own on a header block). */
static enum bound over_a_bound(struct conn_guard *guard)
{
    h2o_buffer_t *input = guard->sock->input;
    if (input->size > guard->config->max_buffered_bytes) return TOO_MUCH_BUFFERED;
    if (guard->head_length || speaks_http2(guard->sock))
        return WITHIN_BOUNDS; /* a body, or the next request pipelined behind it */
    size_t end = head_end(input->bytes, input->size, guard->head_scanned);
    if (end)
        guard->head_length = end;
    else
        guard->head_scanned = input->size;
    size_t head_bytes = end ? end : input->size;
    if (head_bytes > guard->config->max_head_bytes) return HEAD_TOO_LARGE;
    if (head_syntax_check(input->bytes, head_bytes, &guard->head_syntax) &&
        !only_line_ends(input->bytes, input->size))
        return HEAD_MALFORMED;
    /* Answered as the head ends: h2o would wait for a body whose length it cannot know, and
     * the handler, which refuses it too (a request pipelined behind another reaches h2o
     * without the guard), would run only once that body came. */
    struct head_facts facts;
    if (end && head_scan(input->bytes, end, &facts) == 0 &&
        (guard->framing_problem = head_framing_problem(&facts, head_http_minor(input->bytes, end))))
        return HEAD_AMBIGUOUS;
    return WITHIN_BOUNDS;
}

#define HTTP2_PREFACE_LEN 24 /* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */
#define HTTP2_FRAME_HEAD  9
#define HTTP2_RST_STREAM  0x3

/* Counts the RST_STREAM frames among the complete HTTP/2 frames in "input". h2o 2.2.5 reads an
 * HTTP/2 connection without pause and, on each read, consumes every complete frame (its
 * parse_input), leaving at most one unfinished frame at the start: so counting the complete
 * frames before each of h2o's reads counts each frame once. */
static int64_t count_resets(struct conn_guard *guard, const h2o_buffer_t *input)
{
    const unsigned char *bytes = (const unsigned char *)input->bytes;
    size_t at = 0;
    if (!guard->http2_preface_seen) {
        if (input->size < HTTP2_PREFACE_LEN) return 0;
        guard->http2_preface_seen = 1;
        at = HTTP2_PREFACE_LEN;
    }
    int64_t resets = 0;
    while (input->size - at >= HTTP2_FRAME_HEAD) {
        size_t length = (size_t)bytes[at] << 16 | (size_t)bytes[at + 1] << 8 | bytes[at + 2];
        if (input->size - at - HTTP2_FRAME_HEAD < length) break;
        if (bytes[at + 3] == HTTP2_RST_STREAM) resets++;
        at += HTTP2_FRAME_HEAD + length;
    }
    return resets;
}

/* Whether an HTTP/2 connection has reset more streams than its budget allows (rapid reset,
 * CVE-2023-44487: h2o 2.2.5 frees a reset stream's slot at once, while its request may still
 * run, so without this one connection could start requests without bound). The budget holds
 * http2_reset_burst resets and refills at http2_resets_per_s. */
static int over_reset_budget(struct conn_guard *guard)
{
    const struct conn_guard_config *config = guard->config;
    int64_t resets = count_resets(guard, guard->sock->input);
    uint64_t now_ms = h2o_now(guard->loop);
    int64_t cap = (int64_t)config->http2_reset_burst * 1000;
    if (guard->reset_budget_at_ms == 0) {
        guard->reset_budget_milli = cap;
    } else {
        guard->reset_budget_milli +=
            (int64_t)(now_ms - guard->reset_budget_at_ms) * config->http2_resets_per_s;
        if (guard->reset_budget_milli > cap) guard->reset_budget_milli = cap;
    }
    guard->reset_budget_at_ms = now_ms;
    guard->reset_budget_milli -= resets * 1000;
    return guard->reset_budget_milli < 0;
}

/* over_a_bound, and for HTTP/2 the reset budget too. */
static enum bound over_a_bound_or_resets(struct conn_guard *guard)
{
    enum bound bound = over_a_bound(guard);
    if (bound != WITHIN_BOUNDS || !guard->sock->input->size || !speaks_http2(guard->sock))
        return bound;
    return over_reset_budget(guard) ? TOO_MANY_RESETS : WITHIN_BOUNDS;
}

/* Closes the connection: h2o's HTTP is told its read failed ("reason"), or, for a TLS
 * connection not yet handed to h2o's HTTP, the socket is closed here. */
static void end_connection(struct conn_guard *guard, const char *reason)
{
    guard->depth++;
    if (guard->h2o_on_read)
        guard->h2o_on_read(guard->sock, reason);
    else
        h2o_socket_close(guard->sock);
    leave(guard);
}

/* The 431 or 400 of a TLS connection has been written (or failed): now the connection closes. */
static void on_refusal_written(h2o_socket_t *sock, const char *err)
{
    (void)err;
    struct conn_guard *guard = guard_of(sock);
    assert(guard);
    end_connection(guard, "request head refused");
}

/* Ends a connection over a bound: a head too large is answered 431 first, a malformed one 400
 * (lingering, so the client reads it); then h2o is told its read failed, and closes the
 * connection. In clear, the answer goes straight to the descriptor (a fresh socket's buffer
 * takes it; else it is lost); over TLS, h2o encrypts it and reading stops until it is
 * written, unless h2o is still writing a response (then the connection is only cut). */
static void cut(struct conn_guard *guard, enum bound bound)
{
    h2o_socket_t *sock = guard->sock;
    if (bound == HEAD_TOO_LARGE || bound == HEAD_MALFORMED || bound == HEAD_AMBIGUOUS) {
        size_t shown = sock->input->size < guard->config->max_head_bytes
                           ? sock->input->size
                           : guard->config->max_head_bytes;
        char response[CONN_GUARD_REFUSAL_MAX];
        size_t len = guard->config->refuse_head(
            sock->input->bytes, shown, bound == HEAD_MALFORMED ? &guard->head_syntax : NULL,
            bound == HEAD_AMBIGUOUS ? guard->framing_problem : NULL, response, sizeof(response),
            guard->config->arg);
        linger_on_close(guard);
        if (!sock->ssl) {
            ssize_t written = write(h2o_socket_get_fd(sock), response, len);
            (void)written;
        } else if (!sock->_cb.write) {
            h2o_iovec_t buf = h2o_iovec_init(response, len); /* h2o copies it as it encrypts */
            h2o_socket_read_stop(sock);
            h2o_socket_write(sock, &buf, 1, on_refusal_written);
            return;
        }
        end_connection(guard, "request head refused");
        return;
    }
    enum conn_cut why =
        bound == TOO_MANY_RESETS ? CONN_CUT_TOO_MANY_RESETS : CONN_CUT_TOO_MUCH_BUFFERED;
    if (guard->config->cut_unanswered) guard->config->cut_unanswered(why, guard->config->arg);
    end_connection(guard,
                   bound == TOO_MANY_RESETS ? "too many stream resets" : "too much buffered input");
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    struct conn_guard *guard = guard_of(sock);
    assert(guard); /* only the guard puts on_read there */
    enum bound bound = err ? WITHIN_BOUNDS : over_a_bound_or_resets(guard);
    if (bound != WITHIN_BOUNDS) {
        cut(guard, bound);
        return;
    }
    guard->depth++;
    guard->h2o_on_read(sock, err);
    if (leave(guard) < 0) return;
    wrap_reading(guard);
}

/* ---- polled, not read, while a request is answered (conn_guard_request_taken) ---- */

static int polled_while_answering(const h2o_socket_t *sock)
{
    return sock->_cb.read == on_read_while_answering;
}

/* Puts the socket back as h2o left it when it handed the request over: not reading. */
static void stop_polling(h2o_socket_t *sock)
{
    h2o_socket_read_stop(sock);
    h2o_socket_dont_read(sock, 0);
}

/* The client sent something (a pipelined request, its close) while its request is answered:
 * nothing was read (DONT_READ), and the bytes wait in the kernel until h2o reads again. */
static void on_read_while_answering(h2o_socket_t *sock, const char *err)
{
    (void)err;
    stop_polling(sock);
}

void conn_guard_request_taken(h2o_req_t *req)
{
    struct conn_guard *guard = http1_guard_of(req);
    if (!guard || !req->http1_is_persistent || guard->sock->_cb.read) return;
    h2o_socket_dont_read(guard->sock, 1);
    h2o_socket_read_start(guard->sock, on_read_while_answering);
}

/* A persistent response has been written: h2o drops the request's bytes and starts reading
 * the next request, perhaps from bytes it already holds. (Or a TLS handshake's flight has been
 * written: nothing of a head was read yet, and h2o goes on reading.) */
static void on_written(h2o_socket_t *sock, const char *err)
{
    struct conn_guard *guard = guard_of(sock);
    assert(guard);
    guard->head_length = guard->head_scanned = 0;
    memset(&guard->head_syntax, 0, sizeof(guard->head_syntax));
    guard->depth++;
    guard->h2o_on_written(sock, err);
    if (leave(guard) < 0) return;
    wrap_reading(guard);
    enum bound bound = h2o_reads(guard->sock) ? over_a_bound(guard) : WITHIN_BOUNDS;
    if (bound != WITHIN_BOUNDS) cut(guard, bound);
}

static void on_handshake_timeout(h2o_timeout_entry_t *entry)
{
    struct conn_guard *guard = H2O_STRUCT_FROM_MEMBER(struct conn_guard, handshake_timer, entry);
    end_connection(guard, NULL);
}

/* The TLS handshake is over. The guard, not h2o_accept, hands the connection to h2o's HTTP/1 or
 * HTTP/2, so that it sees the bytes that came with the handshake first: h2o would parse them
 * at once, and a client may send thousands of HTTP/2 frames right behind its Finished. */
static void on_handshake_done(h2o_socket_t *sock, const char *err)
{
    struct conn_guard *guard = guard_of(sock);
    assert(guard);
    if (h2o_timeout_is_linked(&guard->handshake_timer)) h2o_timeout_unlink(&guard->handshake_timer);
    enum bound bound = err ? WITHIN_BOUNDS : over_a_bound_or_resets(guard);
    if (err || bound != WITHIN_BOUNDS) {
        if (bound != WITHIN_BOUNDS)
            cut(guard, bound);
        else
            end_connection(guard, NULL);
        return;
    }
    guard->depth++;
    if (speaks_http2(sock))
        h2o_http2_accept(guard->accept_ctx, sock, guard->connected_at);
    else
        h2o_http1_accept(guard->accept_ctx, sock, guard->connected_at);
    if (leave(guard) == 0) wrap_reading(guard);
}

/* ---- an answer the client does not take ---- */

/* Whether the connection has an answer to send that waits on the client: h2o has a write in
 * flight (the kernel's send buffer is full), or, over HTTP/2, a response has begun and is not
 * done (catalogd's answers are whole when they begin: one that does not end waits for the
 * client's flow-control window). */
static int answer_waits_on_client(const struct conn_guard *guard)
{
    return guard->sock->_cb.write || guard->http2_answers_open > 0;
}

/* Ends a connection whose answer the client does not take. h2o is not called: the socket is
 * shut down under it, so that its next read (HTTP/2 reads all along) or write (the one in
 * flight, polled) fails as for a client gone, and it closes the connection on its own path.
 * The linger of zero makes that close a reset: the answer still in the kernel is dropped, not
 * kept for a peer that does not read. */
static void cut_stalled(struct conn_guard *guard)
{
    /* Said first: once the reset is out, the client may look for the reason. */
    if (guard->config->cut_unanswered)
        guard->config->cut_unanswered(CONN_CUT_ANSWER_NOT_TAKEN, guard->config->arg);
    int fd = h2o_socket_get_fd(guard->sock);
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    shutdown(fd, SHUT_RDWR);
}

static void on_check(h2o_timeout_entry_t *entry)
{
    struct conn_guard *guard = H2O_STRUCT_FROM_MEMBER(struct conn_guard, check_timer, entry);
    uint64_t acked = 0, now_ms = clock_mono_ms();
    /* Unknown (not TCP) counts as moving: a connection is never cut on a guess. */
    int moved = !answer_waits_on_client(guard) ||
                tcp_bytes_acked(h2o_socket_get_fd(guard->sock), &acked) < 0 ||
                acked != guard->acked_seen;
    guard->acked_seen = acked;
    if (moved) {
        guard->stalled_since_ms = 0;
    } else if (!guard->stalled_since_ms) {
        guard->stalled_since_ms = now_ms;
    } else if (now_ms - guard->stalled_since_ms >= guard->config->answer_stall_ms) {
        cut_stalled(guard); /* h2o closes it from the next turn on: no more checks */
        return;
    }
    h2o_timeout_link(guard->loop, guard->config->check_every, &guard->check_timer);
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
    guard->check_timer.cb = on_check;
    h2o_timeout_link(guard->loop, config->check_every, &guard->check_timer);
    guard->depth++;
    if (accept_ctx->ssl_ctx) {
        /* What h2o_accept does for TLS, minus session resumption (not configured here). */
        guard->accept_ctx = accept_ctx;
        guard->connected_at = *h2o_get_timestamp(accept_ctx->ctx, NULL, NULL);
        guard->handshake_timer.cb = on_handshake_timeout;
        h2o_timeout_link(guard->loop, &accept_ctx->ctx->handshake_timeout, &guard->handshake_timer);
        /* Its reads are not wrapped: nothing decrypted reaches "input" before it is done. */
        h2o_socket_ssl_handshake(sock, accept_ctx->ssl_ctx, NULL, on_handshake_done);
        leave(guard);
        return;
    }
    h2o_accept(accept_ctx, sock); /* HTTP/1: h2o starts reading, synchronously */
    if (leave(guard) == 0) wrap_reading(guard);
}

/* ---- the filter ---- */

struct guard_ostream {
    h2o_ostream_t super;
    struct conn_guard *guard;
};

/* Whether the bytes pipelined behind "req" begin a head h2o's parser refuses. h2o keeps the
 * request's bytes at the start of the input until its response is written (its body, a
 * chunked one decoded in place, right after the head), then parses what follows at once,
 * before the guard sees it again. So a request that was itself pipelined reached h2o without
 * the guard: its head's end is found here. */
static int pipelined_head_malformed(struct conn_guard *guard, h2o_req_t *req)
{
    h2o_buffer_t *input = guard->sock->input;
    size_t head_length =
        guard->head_length ? guard->head_length : head_end(input->bytes, input->size, 0);
    const char *request_end =
        req->entity.base ? req->entity.base + req->entity.len : input->bytes + head_length;
    if (!head_length || request_end < input->bytes || request_end >= input->bytes + input->size)
        return 0;
    size_t offset = (size_t)(request_end - input->bytes), len = input->size - offset;
    struct head_syntax syntax = {0};
    return head_syntax_check(request_end, len, &syntax) && !only_line_ends(request_end, len);
}

static void on_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                    h2o_send_state_t state)
{
    struct conn_guard *guard = ((struct guard_ostream *)self)->guard;
    int last = !h2o_send_state_is_in_progress(state);
    /* h2o would answer such a head with its bare text 400 and no request id: the connection
     * ends after this response instead. */
    if (last && req->http1_is_persistent && pipelined_head_malformed(guard, req))
        req->http1_is_persistent = 0;
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

struct answer_ref {
    struct conn_guard *guard;
};

static void on_answer_disposed(void *data)
{
    struct conn_guard *guard = ((struct answer_ref *)data)->guard;
    guard->http2_answers_open--;
    free_when_unused(guard);
}

/* Counts an HTTP/2 response as open until h2o disposes of its request: its stream has ended,
 * or been reset, or its connection closed. */
static void count_http2_answer(h2o_req_t *req)
{
    if (req->version < 0x200 || !req->conn->callbacks->get_socket) return;
    struct conn_guard *guard = guard_of(req->conn->callbacks->get_socket(req->conn));
    if (!guard) return;
    struct answer_ref *ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref), on_answer_disposed);
    ref->guard = guard;
    guard->http2_answers_open++;
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    count_http2_answer(req);
    struct conn_guard *guard = http1_guard_of(req);
    /* h2o starts reading again once the response is written: it finds the socket as it left
     * it, whichever way the response goes (every response starts here). */
    if (guard && polled_while_answering(guard->sock)) stop_polling(guard->sock);
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
