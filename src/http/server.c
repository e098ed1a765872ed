/* server.c - event-loop threads, the route table, request ids and graceful shutdown.
 * Invariant: every socket and every piece of per-thread state is created and used on the
 * loop thread that owns it (h2o's buffers come from thread-local allocators). */
#include "http/server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "command/handlers.h"
#include "common/clock.h"
#include "common/digits.h"
#include "common/log.h"
#include "common/problem.h"
#include "common/xmalloc.h"
#include "http/conn_guard.h"
#include "http/docs.h"
#include "http/head_scan.h"
#include "http/loop.h"
#include "http/metrics.h"
#include "http/ops.h"
#include "http/router.h"
#include "http/routes.h"
#include "query/handlers.h"
#include "query/read_model.h"
#include "query/redis_client.h"

#define BODY_TOO_LARGE_DOCUMENT "/_errors/413" /* h2o's own 413 gets this as its body */
#define BAD_FRAMING_DOCUMENT    "/_errors/400" /* ... its 400 for a body it cannot frame */
#define BAD_EXPECT_DOCUMENT     "/_errors/417" /* ... its 417 for an Expect it does not know */
#define ACCEPT_BACKOFF_MS       100            /* after accept() ran out of descriptors */
#define REQUEST_ID_ENV          "CATALOGD_REQUEST_ID" /* h2o's own errors keep their id here */
#define HTTP2_MAX_CONCURRENT    16  /* requests of one HTTP/2 connection handled at once */
#define HTTP2_RESET_BURST       100 /* stream resets one HTTP/2 connection may send at once */
#define HTTP2_RESETS_PER_S      10  /* and then per second (conn_guard.h) */

#define BIND_ROUTE(method, pattern, handler, name, needs_token)                                    \
    {method, pattern, handler, name, needs_token},
static const struct route ROUTES[] = {CATALOGD_ROUTES(BIND_ROUTE)};
#define ROUTE_COUNT (sizeof(ROUTES) / sizeof(ROUTES[0]))
_Static_assert(ROUTE_COUNT < METRICS_ROUTES, "metrics need a slot per route plus one");

struct server {
    struct app *app;
    h2o_globalconf_t globalconf;
    struct loop_thread *loops;
    int loop_count;
    atomic_int draining;
    atomic_int exiting; /* the loops are to stop once they have run what is queued */
    int loops_stopped;  /* guarded by ready_lock */
    atomic_long in_flight;
    pthread_mutex_t ready_lock;
    pthread_cond_t ready_cond;
    int loops_ready; /* guarded by ready_lock */
    h2o_multithread_queue_t **queues;
};

__thread struct loop_thread *current_loop;

static void on_exchange_dispose(void *memory)
{
    struct http_exchange *ex = memory;
    if (ex->on_gone) ex->on_gone(ex->on_gone_arg);
    atomic_fetch_sub(&current_loop->server->in_flight, 1);
}

/* Copies "text" into "out" ("cap" bytes, NUL included) for a problem's detail: bytes outside
 * printable ASCII become '?' (a detail must be valid UTF-8), and a long value is cut. */
static const char *printable(struct slice text, char *out, size_t cap)
{
    size_t n = text.len < cap - 1 ? text.len : cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = text.p[i] >= 0x20 && text.p[i] <= 0x7e ? text.p[i] : '?';
    out[n] = '\0';
    return out;
}

static int sane_request_id(struct slice id)
{
    if (id.len == 0 || id.len > REQUEST_ID_MAX) return 0;
    for (size_t i = 0; i < id.len; i++)
        if (id.p[i] < 0x21 || id.p[i] > 0x7e) return 0;
    return 1;
}

/* A new request id: 8 hex digits of this loop's random salt, then the low 8 of its request
 * counter (they repeat after 2^32 requests on one loop: an id finds log lines, not records). */
static void new_request_id(struct loop_thread *loop, char out[REQUEST_ID_MAX + 1])
{
    digits_hex(out, loop->request_id_salt, 8);
    digits_hex(out + 8, ++loop->request_id_counter, 8);
    out[16] = '\0';
}

/* The request's id: the client's X-Request-Id when it is sane, else a new one. */
static void request_id_of(struct loop_thread *loop, h2o_req_t *req, char out[REQUEST_ID_MAX + 1])
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    struct slice given = {"", 0};
    if (i >= 0)
        given =
            (struct slice){req->headers.entries[i].value.base, req->headers.entries[i].value.len};
    if (sane_request_id(given)) {
        memcpy(out, given.p, given.len);
        out[given.len] = '\0';
    } else {
        new_request_id(loop, out);
    }
}

static void assign_request_id(struct loop_thread *loop, struct http_exchange *ex)
{
    request_id_of(loop, ex->impl, ex->request_id);
    http_add_header(ex, "x-request-id", ex->request_id, strlen(ex->request_id));
}

/* Responses that h2o makes itself, before any handler (the 413 of a body over its limit), get
 * an X-Request-Id here. It must run before the error document's filter, which keeps the
 * headers of the response it replaces: h2o runs the last registered filter first, so it is
 * registered after (test_openapi.py checks the header on that 413). */
static void on_setup_request_id(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    if (h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1) < 0) {
        char *id = h2o_mem_alloc_pool(&req->pool, REQUEST_ID_MAX + 1);
        request_id_of(current_loop, req, id);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 1, NULL,
                              id, strlen(id));
        /* For the log line of this response (the error document's handler reads it). */
        *h2o_req_getenv(req, H2O_STRLIT(REQUEST_ID_ENV), 1) = h2o_iovec_init(id, strlen(id));
    }
    h2o_setup_next_ostream(req, slot);
}

/* Compares in time that depends only on the lengths, not on where the bytes differ. */
static int token_matches(struct slice given, const char *token)
{
    size_t n = strlen(token);
    if (given.len != n) return 0;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)given.p[i] ^ (unsigned char)token[i];
    return diff == 0;
}

/* Returns 0 when the request carries the configured bearer token; else answers 401 and
 * returns -1. */
static int authorized_or_reply(struct http_exchange *ex)
{
    const char *token = ex->app->config->api_token;
    struct slice auth = http_header(ex, "authorization");
    static const char scheme[] = "Bearer ";
    if (auth.len > sizeof(scheme) - 1 && strncasecmp(auth.p, scheme, sizeof(scheme) - 1) == 0 &&
        token_matches((struct slice){auth.p + sizeof(scheme) - 1, auth.len - (sizeof(scheme) - 1)},
                      token))
        return 0;
    http_add_header(ex, "www-authenticate", "Bearer", 6);
    http_respond_problem(ex, 401, "unauthorized", "this route needs Authorization: Bearer <token>",
                         NULL);
    return -1;
}

/* The detail of an ambiguous-request 400, whether the guard answers it as the head ends or
 * a handler does (framed_or_reply). */
static void ambiguous_detail(const char *reason, char *detail, size_t cap)
{
    snprintf(detail, cap,
             "the request has %s: its framing is ambiguous, so the connection is closed", reason);
}

/* The 400 of a request whose framing has more than one reading ("reason" says why). */
static void respond_ambiguous(struct http_exchange *ex, const char *reason)
{
    char detail[160];
    ambiguous_detail(reason, detail, sizeof(detail));
    http_respond_problem(ex, 400, "ambiguous-request", detail, NULL);
}

/* The raw bytes of an HTTP/1 request, the head first (framed_or_reply says where h2o keeps
 * them), or NULL (HTTP/2). */
static const h2o_buffer_t *raw_request_of(h2o_req_t *req)
{
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    return req->version < 0x200 && sock ? sock->input : NULL;
}

/* h2o's own 400 for a body it cannot frame (a Content-Length that is not one number, a
 * Transfer-Encoding other than chunked, a broken chunk), given our problem+json by its error
 * document: the raw head tells which. Over HTTP/2 (--http2), h2o's 400 is for header fields
 * that HTTP/2 forbids. h2o closes the connection after it. */
static void respond_bad_framing(struct http_exchange *ex, h2o_req_t *req)
{
    const h2o_buffer_t *raw = raw_request_of(req);
    char detail[320], shown[68];
    struct head_facts facts;
    struct slice value;
    const char *problem = NULL;
    if (!raw) {
        http_respond_problem(ex, 400, "malformed-request",
                             "the request's header fields are not valid in HTTP/2", NULL);
        return;
    }
    if (head_scan(raw->bytes, raw->size, &facts) == 0 &&
        (problem = head_framing_problem(&facts, req->version & 0xff))) {
        respond_ambiguous(ex, problem);
        return;
    }
    if (head_field(raw->bytes, raw->size, "transfer-encoding", &value) == 0) {
        if (slice_eq_nocase(value, "chunked"))
            snprintf(detail, sizeof(detail),
                     "the chunked body is malformed (a chunk size that is "
                     "not hexadecimal or too large, or a chunk not ended "
                     "by CRLF)");
        else
            snprintf(detail, sizeof(detail),
                     "Transfer-Encoding '%s' is not supported: only chunked is",
                     printable(value, shown, sizeof(shown)));
    } else if (head_field(raw->bytes, raw->size, "content-length", &value) == 0) {
        snprintf(detail, sizeof(detail), "Content-Length '%s' is not one decimal number",
                 printable(value, shown, sizeof(shown)));
    } else {
        snprintf(detail, sizeof(detail), "the length of the body cannot be read");
    }
    size_t n = strlen(detail);
    snprintf(detail + n, sizeof(detail) - n,
             ": the request's framing is ambiguous, so the connection is closed");
    http_respond_problem(ex, 400, "ambiguous-request", detail, NULL);
}

/* h2o's own 417 for an Expect other than 100-continue, given our problem+json. */
static void respond_bad_expectation(struct http_exchange *ex, h2o_req_t *req)
{
    const h2o_buffer_t *raw = raw_request_of(req);
    char detail[200], shown[68];
    struct slice value = {"", 0};
    if (raw) head_field(raw->bytes, raw->size, "expect", &value);
    snprintf(detail, sizeof(detail),
             "Expect '%s' is not an expectation this server meets: only 100-continue is",
             printable(value, shown, sizeof(shown)));
    http_respond_problem(ex, 417, "invalid-header", detail, NULL);
}

static void respond_body_too_large(struct http_exchange *ex, h2o_req_t *req)
{
    (void)req;
    http_respond_body_too_large(ex);
}

/* The responses h2o makes itself before any handler, which its error-document filter
 * redirects to these paths (server_open registers them), so that they carry our problem+json
 * (h2o's own bodies are text/plain). */
static const struct {
    const char *path;
    void (*respond)(struct http_exchange *ex, h2o_req_t *req);
} ERROR_DOCUMENTS[] = {
    {BODY_TOO_LARGE_DOCUMENT, respond_body_too_large},
    {BAD_FRAMING_DOCUMENT, respond_bad_framing},
    {BAD_EXPECT_DOCUMENT, respond_bad_expectation},
};

/* An HTTP/2 request's header list as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113
 * 6.5.2): every field's name and value, decoded, and 32 bytes more, the pseudo-header fields
 * too. HPACK lets one byte on the wire stand for a field of any size sent before, so this, not
 * the frames' length, is what --max-header-bytes bounds over HTTP/2. */
static size_t http2_header_list_size(const h2o_req_t *req)
{
    size_t size = sizeof(":method:scheme:authority:path") - 1 + 4 * 32 + req->input.method.len +
                  req->input.scheme->name.len + req->input.authority.len + req->input.path.len;
    for (size_t i = 0; i < req->headers.size; i++)
        size += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 32;
    return size;
}

/* Reads the raw head of "req" again (head_scan.h says why) into "*head". h2o keeps an HTTP/1
 * request's bytes at the start of its socket's input buffer until the response is sent: the
 * head, then the body (a chunked body decoded in place after the head). Answers 400 and
 * returns -1 when the framing is ambiguous (or the head cannot be found, which would mean
 * that h2o changed under us): the connection then closes, so nothing the client sent after
 * this request runs. */
static int framed_or_reply(struct http_exchange *ex, h2o_req_t *req, struct head_facts *head)
{
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    const char *problem = "a head that could not be read";
    if (req->version >= 0x200) {
        /* HTTP/2 (--http2, over TLS): frames carry their lengths, h2o refuses a body whose
         * Content-Length differs, and :authority stands for Host. */
        *head = (struct head_facts){.length = http2_header_list_size(req), .host_fields = 1};
        return 0;
    }
    /* Over TLS, the socket's input holds the decrypted bytes: the same head as in clear. */
    if (sock && sock->input && head_scan(sock->input->bytes, sock->input->size, head) == 0)
        problem = head_framing_problem(head, req->version & 0xff);
    if (!problem) return 0;
    req->http1_is_persistent = 0;
    respond_ambiguous(ex, problem);
    return -1;
}

/* A request that may change state (any method but GET and HEAD) must name this server in its
 * Host and, in every Origin it carries, come from a page of this server (host_policy.h says
 * why: cross-site requests and DNS rebinding). Answers 421 or 403 and returns -1 otherwise.
 * "target_authority" is the host an absolute-form target names (router_target_path), which
 * stands in for the Host header (RFC 9112 3.2.2), or empty. */
static int named_this_server_or_reply(struct http_exchange *ex, h2o_req_t *req,
                                      const struct head_facts *head, struct slice target_authority)
{
    const struct host_policy *policy = &ex->app->config->host_policy;
    struct slice host = {req->input.authority.base, req->input.authority.len};
    int named = head->host_fields > 0;
    const char *named_by = "Host";
    if (target_authority.len) {
        host = target_authority;
        named = 1;
        named_by = "the request target's host";
    }
    char shown[72], detail[400];
    /* Without a Host header, h2o puts its default host's name in the authority. */
    if (!named || !host_policy_allows_host(policy, host)) {
        snprintf(detail, sizeof(detail),
                 "%s%s%s%s is not this server: a request that changes state must name the "
                 "--listen address, localhost, 127.0.0.1 or [::1] with port %d, or a host given "
                 "with --allowed-host",
                 named ? named_by : "a request without Host", named ? " '" : "",
                 named ? printable(host, shown, sizeof(shown)) : "", named ? "'" : "",
                 policy->listen.port);
        http_respond_problem(ex, 421, "misdirected-request", detail, NULL);
        return -1;
    }
    for (ssize_t i = -1;
         (i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), i)) >= 0;) {
        h2o_iovec_t origin = req->headers.entries[i].value;
        if (host_policy_allows_origin(policy, (struct slice){origin.base, origin.len})) continue;
        snprintf(detail, sizeof(detail),
                 "Origin '%s' is another site: a request that changes state is only taken from "
                 "pages of this server (the names its Host may give)",
                 printable((struct slice){origin.base, origin.len}, shown, sizeof(shown)));
        http_respond_problem(ex, 403, "cross-origin-request", detail, NULL);
        return -1;
    }
    return 0;
}

static int on_request(h2o_handler_t *handler, h2o_req_t *req)
{
    (void)handler;
    struct loop_thread *loop = current_loop;
    struct server *server = loop->server;
    conn_guard_request_taken(req);
    struct http_exchange *ex = h2o_mem_alloc_shared(&req->pool, sizeof(*ex), on_exchange_dispose);
    memset(ex, 0, sizeof(*ex));
    ex->route_index = -1;
    atomic_fetch_add(&server->in_flight, 1);
    ex->impl = req;
    ex->app = server->app;
    ex->thread = &loop->app_thread;
    ex->started_at_us = clock_mono_us();
    ex->method = (struct slice){req->method.base, req->method.len};
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    ex->path = (struct slice){req->path.base, path_len};
    if (req->query_at != SIZE_MAX)
        ex->query =
            (struct slice){req->path.base + req->query_at + 1, req->path.len - req->query_at - 1};
    ex->body = (struct slice){req->entity.base ? req->entity.base : "", req->entity.len};
    assign_request_id(loop, ex);

    size_t document = 0;
    while (document < sizeof(ERROR_DOCUMENTS) / sizeof(ERROR_DOCUMENTS[0]) &&
           !slice_eq(ex->path, ERROR_DOCUMENTS[document].path))
        document++;
    if (document < sizeof(ERROR_DOCUMENTS) / sizeof(ERROR_DOCUMENTS[0])) {
        /* h2o's own 413, 400 or 417 (on a connection it closes), redirected here by its
         * error-document filter: logged as the request the client sent, under the id its
         * response already carries. */
        size_t input_path_len =
            req->input.query_at != SIZE_MAX ? req->input.query_at : req->input.path.len;
        ex->method = (struct slice){req->input.method.base, req->input.method.len};
        ex->path = (struct slice){req->input.path.base, input_path_len};
        ex->query = req->input.query_at != SIZE_MAX
                        ? (struct slice){req->input.path.base + req->input.query_at + 1,
                                         req->input.path.len - req->input.query_at - 1}
                        : (struct slice){"", 0};
        h2o_iovec_t *id = h2o_req_getenv(req, H2O_STRLIT(REQUEST_ID_ENV), 0);
        if (id && id->len <= REQUEST_ID_MAX) {
            memcpy(ex->request_id, id->base, id->len);
            ex->request_id[id->len] = '\0';
        }
        ERROR_DOCUMENTS[document].respond(ex, req);
        return 0;
    }
    struct head_facts head;
    if (framed_or_reply(ex, req, &head) < 0) return 0;
    if (atomic_load(&server->draining)) {
        req->http1_is_persistent = 0;
        http_respond_unavailable(ex, "shutting-down", "the server is shutting down");
        return 0;
    }
    if (head.length > server->app->config->max_header_bytes) {
        req->http1_is_persistent = 0;
        char detail[96];
        snprintf(detail, sizeof(detail), "the request line and headers are larger than %zu bytes",
                 server->app->config->max_header_bytes);
        http_respond_problem(ex, 431, "headers-too-large", detail, NULL);
        return 0;
    }
    struct slice target_authority;
    if (router_target_path(ex->path, &ex->path, &target_authority) == TARGET_BAD_AUTHORITY) {
        http_respond_problem(ex, 400, "malformed-request",
                             "the request target is an absolute URI with no host, or with user "
                             "information (RFC 9110 4.2)",
                             NULL);
        return 0;
    }
    /* HEAD is GET without the body; h2o leaves the body out of the response. */
    struct slice method = slice_eq(ex->method, "HEAD") ? SLICE_LIT("GET") : ex->method;
    if (!slice_eq(method, "GET") &&
        named_this_server_or_reply(ex, req, &head, target_authority) < 0)
        return 0;
    const struct route *route = NULL;
    char allow[64];
    int match = router_match(ROUTES, ROUTE_COUNT, method, ex->path, &route, ex->params,
                             &ex->param_count, allow, sizeof(allow));
    if (match == ROUTE_NO_PATH) {
        http_respond_problem(ex, 404, "not-found", "no such resource", NULL);
    } else if (match == ROUTE_NO_METHOD) {
        http_add_header(ex, "allow", allow, strlen(allow));
        char detail[128];
        snprintf(detail, sizeof(detail), "this resource allows %s", allow);
        http_respond_problem(ex, 405, "method-not-allowed", detail, NULL);
    } else if (!route->needs_token || !server->app->config->api_token ||
               authorized_or_reply(ex) == 0) {
        ex->route_name = route->name;
        ex->route_index = (int)(route - ROUTES);
        route->handler(ex);
    }
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err);

/* A request head passed --max-header-bytes before it ended, is one h2o's parser would refuse
 * ("malformed" says why), or frames its body ambiguously ("ambiguous" says how; conn_guard.h):
 * the 431 or 400 is made here, for the guard to write on the connection, since h2o has no
 * request to answer yet. */
static size_t on_head_refused(const char *head, size_t len, const struct head_syntax *malformed,
                              const char *ambiguous, char *out, size_t cap, void *arg)
{
    struct loop_thread *loop = arg;
    char id[REQUEST_ID_MAX + 1], detail[320], field[68];
    struct slice given;
    if (head_field(head, len, "x-request-id", &given) == 0 && sane_request_id(given)) {
        memcpy(id, given.p, given.len); /* the client's, as on every other response */
        id[given.len] = '\0';
    } else {
        new_request_id(loop, id);
    }
    int status = malformed || ambiguous ? 400 : 431;
    const char *type = malformed   ? "malformed-request"
                       : ambiguous ? "ambiguous-request"
                                   : "headers-too-large";
    if (ambiguous) {
        ambiguous_detail(ambiguous, detail, sizeof(detail));
    } else if (!malformed) {
        snprintf(detail, sizeof(detail), "the request line and headers are larger than %zu bytes",
                 loop->server->app->config->max_header_bytes);
    } else {
        int named = malformed->field_len && malformed->field_at < len;
        struct slice name = {head + malformed->field_at,
                             named && malformed->field_len < len - malformed->field_at
                                 ? malformed->field_len
                                 : len - malformed->field_at};
        snprintf(detail, sizeof(detail),
                 "the request is not valid HTTP/1.1: %s%s%s%s; the connection is closed",
                 malformed->problem, named ? " (header '" : "",
                 named ? printable(name, field, sizeof(field)) : "", named ? "')" : "");
    }
    size_t body_len;
    char *body = problem_render(status, type, detail, NULL, &body_len);
    int n = snprintf(out, cap,
                     "HTTP/1.1 %s\r\nConnection: close\r\n"
                     "Content-Type: " PROBLEM_CONTENT_TYPE "\r\n"
                     "Content-Length: %zu\r\nX-Request-Id: %s\r\n\r\n%.*s",
                     status == 400 ? "400 Bad Request" : "431 Request Header Fields Too Large",
                     body_len, id, (int)body_len, body);
    free(body);
    size_t response_len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
    metrics_record(&loop->metrics, -1, status, 0);
    /* The request line, when it came whole: "METHOD TARGET HTTP/1.1". */
    const char *line_end = memchr(head, '\n', len);
    size_t line_len = line_end ? (size_t)(line_end - head) : 0;
    const char *space = line_len ? memchr(head, ' ', line_len) : NULL;
    size_t method_len = space ? (size_t)(space - head) : 0;
    const char *target_start = space ? space + 1 : head;
    const char *target_end = space ? memchr(target_start, ' ', line_len - method_len - 1) : NULL;
    size_t target_len = target_end ? (size_t)(target_end - target_start) : 0;
    char method[40] = "-", target[640] = "-", note[64];
    if (method_len) log_escape(method, sizeof(method), head, method_len);
    if (target_len) log_escape(target, sizeof(target), target_start, target_len);
    if (malformed)
        snprintf(note, sizeof(note), "(malformed head)");
    else if (ambiguous)
        snprintf(note, sizeof(note), "(ambiguous framing)");
    else
        snprintf(note, sizeof(note), "(cut after %zu bytes of head)", len);
    log_request(method, target, status, 0.0, id, note);
    return response_len;
}

/* Logs a connection the guard closed with no answer: at most once a minute per loop and kind,
 * since any client can cause it at will. */
static void on_cut_unanswered(enum conn_cut why, void *arg)
{
    struct loop_thread *loop = arg;
    uint64_t now_ms = clock_mono_ms();
    if (loop->cut_warned_ms[why] && now_ms - loop->cut_warned_ms[why] < 60000) return;
    loop->cut_warned_ms[why] = now_ms;
    if (why == CONN_CUT_ANSWER_NOT_TAKEN)
        LOG(LOG_WARN,
            "server: a client took no byte of its answer for %llu s (it does not read): its "
            "connection was reset (logged at most once a minute per loop)",
            (unsigned long long)(loop->guard_config.answer_stall_ms / 1000));
    else if (why == CONN_CUT_TOO_MANY_RESETS)
        LOG(LOG_WARN,
            "server: an HTTP/2 connection reset more than %d streams (then %d a second): closed "
            "(rapid reset; logged at most once a minute per loop)",
            HTTP2_RESET_BURST, HTTP2_RESETS_PER_S);
    else
        LOG(LOG_WARN,
            "server: a connection sent more than %zu bytes ahead of the requests it waits on "
            "(pipelined too far ahead): closed with no answer to them (logged at most once a "
            "minute per loop)",
            loop->guard_config.max_buffered_bytes);
}

/* Accepting is on unless the loop is at its connection cap or backing off from a failed
 * accept; either way new connections wait in the kernel's backlog. */
static void update_accepting(struct loop_thread *loop)
{
    if (!loop->listener) return; /* draining */
    if (loop->accept_paused || loop->accept_backoff)
        h2o_socket_read_stop(loop->listener);
    else
        h2o_socket_read_start(loop->listener, on_accept);
}

static void on_connection_closed(void *data)
{
    struct loop_thread *loop = data;
    loop->connections--;
    if (loop->accept_paused && loop->connections < loop->max_connections) {
        loop->accept_paused = 0;
        update_accepting(loop);
    }
}

static void on_accept_backoff_over(h2o_timeout_entry_t *entry)
{
    struct loop_thread *loop =
        H2O_STRUCT_FROM_MEMBER(struct loop_thread, accept_backoff_entry, entry);
    loop->accept_backoff = 0;
    update_accepting(loop);
}

/* accept() failed for want of descriptors or memory. The listener stays readable, so
 * accepting again at once would spin the loop: stop for ACCEPT_BACKOFF_MS instead (warning
 * at most once a minute per loop). */
static void back_off_accepting(struct loop_thread *loop, int error)
{
    uint64_t now_ms = clock_mono_ms();
    if (!loop->accept_backoff_warned_ms || now_ms - loop->accept_backoff_warned_ms > 60000) {
        loop->accept_backoff_warned_ms = now_ms;
        LOG(LOG_WARN,
            "server: cannot accept connections: %s (%d open on this loop); pausing %d ms at a "
            "time until it can",
            strerror(error), atomic_load(&loop->connections), ACCEPT_BACKOFF_MS);
    }
    loop->accept_backoff = 1;
    update_accepting(loop);
    h2o_timeout_link(loop->ctx.loop, &loop->accept_backoff_timeout, &loop->accept_backoff_entry);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err) return;
    struct loop_thread *loop = listener->data;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (!sock) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            back_off_accepting(loop, errno);
        return; /* else the client went away first (ECONNABORTED...): nothing to do */
    }
    if (++loop->connections >= loop->max_connections) {
        /* At the cap: stop accepting; the kernel holds new connections until one closes. */
        loop->accept_paused = 1;
        update_accepting(loop);
    }
    conn_guard_accept(&loop->accept_ctx, sock, &loop->guard_config);
}

static void on_applied_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct loop_thread *loop =
        H2O_STRUCT_FROM_MEMBER(struct loop_thread, applied_receiver, receiver);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    atomic_store(&loop->applied_message_queued, 0);
    http_release_applied_waiters(loop, loop->server->app->projector);
}

static void on_control_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct loop_thread *loop =
        H2O_STRUCT_FROM_MEMBER(struct loop_thread, control_receiver, receiver);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    if (loop->listener) { /* stop accepting: the kernel refuses new connections from now on */
        h2o_socket_read_stop(loop->listener);
        h2o_socket_close(loop->listener);
        loop->listener = NULL;
    }
    if (atomic_load(&loop->server->exiting)) loop->exiting = 1;
}

/* Everything a loop owns is created here, on its own thread: h2o allocates socket buffers
 * from thread-local pools, so a socket (the message queue's too) made on another thread
 * would share that thread's pool and corrupt it. */
static void init_loop(struct loop_thread *loop)
{
    struct server *server = loop->server;
    h2o_evloop_t *evloop = h2o_evloop_create();
    h2o_context_init(&loop->ctx, evloop, &server->globalconf);
    loop->accept_ctx.ctx = &loop->ctx;
    loop->accept_ctx.hosts = server->globalconf.hosts;
    loop->accept_ctx.ssl_ctx = server->app->config->tls; /* NULL: plain HTTP */
    h2o_multithread_queue_t *queue = h2o_multithread_create_queue(evloop);
    h2o_multithread_register_receiver(queue, &loop->resume_receiver, http_on_resume_messages);
    h2o_multithread_register_receiver(queue, &loop->applied_receiver, on_applied_message);
    h2o_multithread_register_receiver(queue, &loop->control_receiver, on_control_message);
    h2o_linklist_init_anchor(&loop->waiters);
    h2o_timeout_init(evloop, &loop->projection_wait,
                     (uint64_t)server->app->config->projection_wait_ms);
    h2o_timeout_init(evloop, &loop->accept_backoff_timeout, ACCEPT_BACKOFF_MS);
    h2o_timeout_init(evloop, &loop->connection_checks, CONN_GUARD_CHECK_MS);
    loop->guard_config.check_every = &loop->connection_checks;
    loop->accept_backoff_entry.cb = on_accept_backoff_over;
    uint32_t salt = 0;
    if (getrandom(&salt, sizeof(salt), 0) != sizeof(salt)) salt = (uint32_t)(uintptr_t)loop;
    loop->request_id_salt = salt;
    const struct app_config *config = server->app->config;
    loop->app_thread.redis =
        redis_client_new(evloop, &config->redis, config->redis_timeout_ms, NULL, NULL);
    loop->app_thread.read_model =
        read_model_new(loop->app_thread.redis, config->prefix, server->app->view_cache,
                       server->app->applied_floor);
    loop->listener = h2o_evloop_socket_create(evloop, loop->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    loop->listener->data = loop;
    h2o_socket_read_start(loop->listener, on_accept);
}

static void *loop_main(void *arg)
{
    struct loop_thread *loop = arg;
    struct server *server = loop->server;
    current_loop = loop;
    init_loop(loop);
    atomic_store(&loop->ready, 1);
    pthread_mutex_lock(&server->ready_lock);
    server->loops_ready++;
    pthread_cond_signal(&server->ready_cond);
    pthread_mutex_unlock(&server->ready_lock);
    while (!loop->exiting)
        h2o_evloop_run(loop->ctx.loop, INT32_MAX);
    /* Stopped: tell server_stop, then stay parked. The thread is not ended, so its h2o state
     * (open connections, thread-local buffers) simply goes with the process, instead of
     * being unwound piece by piece; nothing runs on this loop any more. */
    pthread_mutex_lock(&server->ready_lock);
    server->loops_stopped++;
    pthread_cond_broadcast(&server->ready_cond);
    for (;;)
        pthread_cond_wait(&server->ready_cond, &server->ready_lock);
    return NULL;
}

/* A listening socket of its own for a loop thread, on "address" (SO_REUSEPORT: the kernel
 * spreads connections over the loops). Returns the descriptor, or -1 with "err" set. */
static int bind_listener(const struct listen_address *address, const char *text, char *err,
                         size_t errlen)
{
    int fd = socket(address->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        bind(fd, (const struct sockaddr *)&address->addr, address->len) != 0 ||
        listen(fd, 4096) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", text, strerror(errno));
        if (fd >= 0) close(fd);
        fd = -1;
    }
    return fd;
}

/* Refuses an address that another process listens on. The loops' listeners share their port
 * with SO_REUSEPORT, which would just as well join them to another process's listeners (of the
 * same user): a second catalogd started by mistake on a port in use, say with another
 * database, would silently get a share of the first one's connections. A socket bound without
 * SO_REUSEPORT cannot join them, so binding one first tells. Returns 0, or -1 with "err" set. */
static int check_address_free(const struct listen_address *address, const char *text, char *err,
                              size_t errlen)
{
    int fd = socket(address->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, (const struct sockaddr *)&address->addr, address->len) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s%s", text, strerror(errno),
                 errno == EADDRINUSE ? " (another process listens there)" : "");
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int server_open(struct app *app, struct server **out, char *err, size_t errlen)
{
    struct server *server = xcalloc(1, sizeof(*server));
    server->app = app;
    server->loop_count = app->config->threads;
    server->loops = xcalloc((size_t)server->loop_count, sizeof(*server->loops));
    pthread_mutex_init(&server->ready_lock, NULL);
    pthread_cond_init(&server->ready_cond, NULL);
    h2o_config_init(&server->globalconf);
    /* h2o refuses a body over the limit from its Content-Length, before reading it (and cuts
     * a chunked one there). Its 413 gets our problem+json (error document below), an
     * X-Request-Id (on_setup_request_id) and a lingering close, so that a client still
     * sending reads the 413 instead of a reset (conn_guard.h, linger.h). */
    server->globalconf.max_request_entity_size = app->config->max_body_bytes;
    /* A connection that sends nothing, or takes too long over one request, is closed. */
    server->globalconf.http1.req_timeout = (uint64_t)app->config->idle_timeout_s * 1000;
    /* ... and so is one that does not finish its TLS handshake (--tls-cert) in that time. */
    server->globalconf.handshake_timeout = (uint64_t)app->config->idle_timeout_s * 1000;
    /* No Server header: it tells a client nothing it needs, and h2o formats it anew with
     * sprintf for every response (an empty name is left out). */
    server->globalconf.server_name = h2o_iovec_init(H2O_STRLIT(""));
    /* No cleartext HTTP/2: h2o 2.2.5 turns it on by default, both for "Upgrade: h2c" and for
     * a connection that starts with the HTTP/2 preface, and its HTTP/2 escapes every bound
     * kept here (header and body bytes, the idle timeout, one request at a time per
     * connection) and has no mitigation for rapid reset (CVE-2023-44487). With this off, the
     * Upgrade header is ignored and the preface fails HTTP/1 parsing: a 400, then close. */
    server->globalconf.http1.upgrade_to_http2 = 0;
    /* HTTP/2 over TLS, only with --http2 (README "Security": it cannot be bounded against
     * rapid reset here). What h2o lets us bound is bound: requests handled at once on one
     * connection, and how long a connection may stay idle. */
    server->globalconf.http2.idle_timeout = (uint64_t)app->config->idle_timeout_s * 1000;
    server->globalconf.http2.max_concurrent_requests_per_connection = HTTP2_MAX_CONCURRENT;
    h2o_hostconf_t *host =
        h2o_config_register_host(&server->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(path, sizeof(h2o_handler_t))->on_req = on_request;
    /* h2o refuses a body over the limit itself, before any handler and without reading
     * it; its error-document filter lets that 413 carry our problem+json body. So do its 400
     * for a body it cannot frame and its 417 for an unknown Expect. The fallback path is the
     * configuration h2o binds to such early errors; on the handlers' path only the 413 is
     * redirected: the handlers' own 400s are problem+json already, each with its detail. */
    static h2o_errordoc_t errordocs[] = {{413, {H2O_STRLIT(BODY_TOO_LARGE_DOCUMENT)}},
                                         {400, {H2O_STRLIT(BAD_FRAMING_DOCUMENT)}},
                                         {417, {H2O_STRLIT(BAD_EXPECT_DOCUMENT)}}};
    h2o_errordoc_register(&host->fallback_path, errordocs, 3);
    h2o_create_filter(&host->fallback_path, sizeof(h2o_filter_t))->on_setup_ostream =
        on_setup_request_id;
    conn_guard_register(&host->fallback_path);
    h2o_errordoc_register(path, errordocs, 1);
    conn_guard_register(path);

    if (check_address_free(&app->config->listen_address, app->config->listen, err, errlen) < 0)
        return -1; /* the process exits: nothing to unwind */
    for (int i = 0; i < server->loop_count; i++) {
        struct loop_thread *loop = &server->loops[i];
        loop->server = server;
        loop->guard_config = (struct conn_guard_config){
            .max_head_bytes = app->config->max_header_bytes,
            /* a head and a body at their limits, and as much again pipelined behind them */
            .max_buffered_bytes = 2 * (app->config->max_header_bytes + app->config->max_body_bytes),
            .refuse_head = on_head_refused,
            .http2_reset_burst = HTTP2_RESET_BURST,
            .http2_resets_per_s = HTTP2_RESETS_PER_S,
            .answer_stall_ms = (uint64_t)app->config->idle_timeout_s * 1000,
            .cut_unanswered = on_cut_unanswered,
            .closed = on_connection_closed,
            .arg = loop};
        loop->max_connections = app->config->max_connections / server->loop_count;
        if (loop->max_connections < 1) loop->max_connections = 1;
        loop->listen_fd =
            bind_listener(&app->config->listen_address, app->config->listen, err, errlen);
        if (loop->listen_fd < 0) return -1; /* the process exits: nothing to unwind */
    }
    *out = server;
    return 0;
}

static const char *route_names[METRICS_ROUTES];
static pthread_once_t route_names_once = PTHREAD_ONCE_INIT;

static void fill_route_names(void)
{
    for (size_t i = 0; i < ROUTE_COUNT; i++)
        route_names[i] = ROUTES[i].name;
    route_names[METRICS_ROUTES - 1] = "unmatched";
}

void server_describe(struct server_view *view)
{
    pthread_once(&route_names_once, fill_route_names);
    struct server *server = current_loop->server;
    view->loops = server->loops;
    view->loop_count = server->loop_count;
    view->route_names = route_names;
}

/* Called on the projector thread. */
void server_projection_applied(int64_t checkpoint, void *arg)
{
    (void)checkpoint;
    struct server *server = arg;
    for (int i = 0; i < server->loop_count; i++) {
        struct loop_thread *loop = &server->loops[i];
        if (!atomic_load(&loop->ready) || atomic_load(&loop->waiter_count) == 0) continue;
        if (atomic_exchange(&loop->applied_message_queued, 1)) continue;
        h2o_multithread_send_message(&loop->applied_receiver, &loop->applied_message);
    }
}

/* Starts the loop threads and returns once every loop can receive messages. */
static void start_loops(struct server *server)
{
    for (int i = 0; i < server->loop_count; i++)
        h2o_multithread_create_thread(&server->loops[i].thread, NULL, loop_main, &server->loops[i]);
    pthread_mutex_lock(&server->ready_lock);
    while (server->loops_ready < server->loop_count)
        pthread_cond_wait(&server->ready_cond, &server->ready_lock);
    pthread_mutex_unlock(&server->ready_lock);
}

void server_run(struct server *server, int grace_ms)
{
    start_loops(server);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    LOG(LOG_INFO, "server: %s received; no new connections, finishing in-flight requests",
        strsignal(signal_number));
    atomic_store(&server->draining, 1);
    for (int i = 0; i < server->loop_count; i++)
        h2o_multithread_send_message(&server->loops[i].control_receiver,
                                     &server->loops[i].control_message);
    for (int waited = 0; waited < grace_ms && atomic_load(&server->in_flight) > 0; waited += 10)
        usleep(10 * 1000);
    if (atomic_load(&server->in_flight) > 0)
        LOG(LOG_WARN, "server: %ld requests still in flight after %d ms",
            atomic_load(&server->in_flight), grace_ms);
}

void server_stop(struct server *server)
{
    atomic_store(&server->exiting, 1);
    for (int i = 0; i < server->loop_count; i++)
        h2o_multithread_send_message(&server->loops[i].control_receiver,
                                     &server->loops[i].exit_message);
    pthread_mutex_lock(&server->ready_lock);
    while (server->loops_stopped < server->loop_count)
        pthread_cond_wait(&server->ready_cond, &server->ready_lock);
    pthread_mutex_unlock(&server->ready_lock);
}
