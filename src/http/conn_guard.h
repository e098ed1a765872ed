/* conn_guard.h - what catalogd keeps per connection on top of h2o's HTTP/1: bounds on the bytes
 * read that h2o 2.2.5 has no setting for, and the connection's end (lingering, accounting).
 *
 * - The head of a request (request line and headers) may not pass --max-header-bytes. h2o
 *   buffers up to 412 KiB of an unfinished head (H2O_MAX_REQLEN, fixed when h2o is built)
 *   before its own 400, so a 431 from the handler came only after all of it had been read and
 *   held: 300 connections sending an endless header held 119 MB. The guard looks at every read
 *   before h2o parses it and, as soon as an unfinished head passes the limit, answers 431 and
 *   closes the connection.
 * - A head that h2o's parser would refuse (a header name that is not a token, a control
 *   character, a request line that is not HTTP/1.x: head_syntax_check) is answered here,
 *   with catalogd's 400 problem+json and an X-Request-Id, before h2o parses it: h2o's own
 *   answer to such a head is a fixed text/plain 400 that no filter sees. (A malformed head
 *   pipelined behind a request h2o parses as that response is written, without the guard:
 *   see on_send, which ends the connection there instead.)
 * - One connection may not buffer more than a head and a body at their limits, twice over:
 *   bytes pipelined far ahead of their requests are not held either.
 * - An error answer that closes its connection (413, 431, an ambiguous request) gets a
 *   lingering close (linger.h), so the client reads it instead of a reset.
 * - While a request is answered, its connection stays polled without being read, where h2o
 *   would stop and start polling it (conn_guard_request_taken).
 * - Over TLS the same holds: h2o decrypts into the socket's input before its read callback, so
 *   the guard sees the plain bytes, and the 431 goes out through h2o's encryption. The guard
 *   runs the handshake itself (as h2o_accept would) and checks the bytes that came with it
 *   before it hands the connection to h2o's HTTP/1 or HTTP/2, which would parse them at once.
 *   An HTTP/2 connection (--http2) gets the bound on buffered bytes, and a budget of stream
 *   resets (RST_STREAM frames, counted as they arrive): past it, the connection is closed.
 * - An answer the client does not take is not held for it: a connection whose answer waits on
 *   the client (h2o's write of it is stuck on a full send buffer, or over HTTP/2 a response's
 *   body waits for the client's flow-control window) and of which the client acknowledged no
 *   byte for answer_stall_ms is reset. h2o 2.2.5 times out only the reading of a request (and
 *   an HTTP/2 connection with no request), so a client that sent requests and never read
 *   held its connection, and the answers buffered for it, for good.
 *
 * h2o offers no hook on its reads, so the guard wraps the socket's read callback (the `_cb`
 * member of h2o_socket_t: declared in h2o/socket.h, meant for h2o's own use). h2o sets it anew
 * with h2o_socket_read_start whenever it starts reading the next request, which it does when a
 * response has been written; the guard's ostream filter wraps that write's completion, so the
 * read callback is wrapped again before the event loop can read. Invariant: a connection's
 * on_close is the guard's from accept to the end, so the guard is found from its socket. */
#ifndef CATALOGD_CONN_GUARD_H
#define CATALOGD_CONN_GUARD_H

#include <h2o.h>

#include "http/head_scan.h"

#define CONN_GUARD_REFUSAL_MAX 1024 /* bytes of the 431 or 400 response refuse_head makes */
#define CONN_GUARD_CHECK_MS    1000 /* how often a connection checks whether its answer moves */

/* Why the guard closed a connection with no answer, or with its answer unfinished: it sent
 * too much ahead of its requests, its HTTP/2 streams are reset too fast, or it does not take
 * the answer it asked for. */
enum conn_cut {
    CONN_CUT_TOO_MUCH_BUFFERED, /* more than max_buffered_bytes read and not yet consumed */
    CONN_CUT_TOO_MANY_RESETS,   /* HTTP/2: past the budget of stream resets */
    CONN_CUT_ANSWER_NOT_TAKEN,  /* the client took no byte of its answer for answer_stall_ms */
    CONN_CUT_KINDS
};

struct conn_guard_config {
    size_t max_head_bytes;     /* --max-header-bytes */
    size_t max_buffered_bytes; /* read ahead and not yet consumed by h2o */
    /* Answers a head over the limit ("malformed" and "ambiguous" NULL), one h2o's parser would
     * refuse ("malformed" says why), or one whose framing is ambiguous ("ambiguous", a reason
     * of head_framing_problem), before the connection is cut: puts the whole 431 or 400
     * response (at most "cap" bytes) in "out", logs it, and returns its length. "head" holds
     * the first "len" bytes read of it. The guard writes it (encrypted over TLS). */
    size_t (*refuse_head)(const char *head, size_t len, const struct head_syntax *malformed,
                          const char *ambiguous, char *out, size_t cap, void *arg);
    /* HTTP/2 (--http2): RST_STREAM frames a connection may send at once, and then per second;
     * past that budget the connection is closed (rapid reset, conn_guard.c). */
    int http2_reset_burst;
    int http2_resets_per_s;
    /* How long an answer may wait on a client that acknowledges none of it, and the loop's
     * timeout list, of CONN_GUARD_CHECK_MS, on which every connection checks it. */
    uint64_t answer_stall_ms;
    h2o_timeout_t *check_every;
    /* Called as the guard closes a connection with no answer, and why (may be NULL). */
    void (*cut_unanswered)(enum conn_cut why, void *arg);
    /* The connection is gone (after any lingering). */
    void (*closed)(void *arg);
    void *arg;
};

/* Hands the accepted socket "sock" to h2o (h2o_accept on "accept_ctx"; with its ssl_ctx set,
 * a TLS handshake first, within the context's handshake timeout) under a guard that follows
 * "config" (which must outlive the connection). */
void conn_guard_accept(h2o_accept_ctx_t *accept_ctx, h2o_socket_t *sock,
                       const struct conn_guard_config *config);

/* h2o has handed over "req", a complete HTTP/1 request, and stopped reading its connection
 * until the response is written (h2o 2.2.5 reads no request while one is answered). When the
 * response comes in a later turn of the event loop (it waits on Redis or the writer, as most
 * do), that stop and the start after it each cost an epoll_ctl: two of a GET's four system
 * calls. So the guard keeps the socket polled meanwhile with h2o's DONT_READ flag, which reads
 * nothing: should the client send (a pipelined request, its close), the socket is stopped as
 * h2o left it and the bytes wait in the kernel, as they did. As the response starts (in the
 * guard's filter, which every response passes) it is stopped likewise, so h2o starts reading
 * from the state it left.
 * Call it first thing in the handler. */
void conn_guard_request_taken(h2o_req_t *req);

/* Adds, to "pathconf", the filter that rewraps reading after each response and makes error
 * answers that close their connection linger. Register it on every path a response can be
 * bound to (h2o binds its own early errors to the host's fallback path). */
void conn_guard_register(h2o_pathconf_t *pathconf);

#endif
