/* exchange.c - the handler-facing side of a request, on top of h2o's request. Also the two
 * ways of answering later: resume (work done on another thread) and read-your-writes waits.
 * Invariant: a response is sent once; anything holding an exchange is told when it goes. */
#include "http/exchange.h"

#include <assert.h>
#include <h2o.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "app.h"
#include "common/problem.h"
#include "common/xmalloc.h"
#include "http/loop.h"
#include "projection/projector.h"

static h2o_req_t *req_of(const struct http_exchange *ex)
{
    return ex->impl;
}

struct slice http_header(const struct http_exchange *ex, const char *name)
{
    h2o_req_t *req = req_of(ex);
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0) return (struct slice){"", 0};
    return (struct slice){req->headers.entries[i].value.base, req->headers.entries[i].value.len};
}

int http_has_header(const struct http_exchange *ex, const char *name)
{
    return h2o_find_header_by_str(&req_of(ex)->headers, name, strlen(name), -1) >= 0;
}

size_t http_header_count(const struct http_exchange *ex, const char *name)
{
    h2o_req_t *req = req_of(ex);
    size_t count = 0;
    for (ssize_t i = -1; (i = h2o_find_header_by_str(&req->headers, name, strlen(name), i)) >= 0;)
        count++;
    return count;
}

/* 1 unless the parameters of a Content-Type ("params", from its first ';') name a charset
 * other than UTF-8, the only one JSON is exchanged in (RFC 8259): a body announced as UTF-16
 * would otherwise be read as UTF-8. A parameter that is not name=value is let be. */
static int charset_is_utf8(struct slice params)
{
    const char *p = params.p, *end = params.p + params.len;
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
            p++;
        const char *name = p;
        while (p < end && *p != '=' && *p != ';')
            p++;
        size_t name_len = (size_t)(p - name);
        while (name_len > 0 && (name[name_len - 1] == ' ' || name[name_len - 1] == '\t'))
            name_len--;
        if (p == end || *p != '=') continue;
        const char *value = ++p;
        while (p < end && *p != ';')
            p++;
        size_t value_len = (size_t)(p - value);
        while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
            value_len--;
        if (value_len >= 2 && value[0] == '"' && value[value_len - 1] == '"') {
            value++;
            value_len -= 2;
        }
        if (name_len == 7 && strncasecmp(name, "charset", 7) == 0 &&
            !(value_len == 5 && strncasecmp(value, "utf-8", 5) == 0))
            return 0;
    }
    return 1;
}

int http_is_json(struct slice content_type)
{
    static const char type[] = "application/json";
    size_t n = sizeof(type) - 1;
    if (content_type.len < n || strncasecmp(content_type.p, type, n) != 0) return 0;
    for (size_t i = n; i < content_type.len; i++) {
        if (content_type.p[i] == ';')
            return charset_is_utf8((struct slice){content_type.p + i, content_type.len - i});
        if (content_type.p[i] != ' ' && content_type.p[i] != '\t') return 0;
    }
    return 1;
}

void *http_alloc(struct http_exchange *ex, size_t size)
{
    return h2o_mem_alloc_pool(&req_of(ex)->pool, size);
}

void http_add_header(struct http_exchange *ex, const char *name, const char *value,
                     size_t value_len)
{
    h2o_req_t *req = req_of(ex);
    char *copy = h2o_mem_alloc_pool(&req->pool, value_len);
    memcpy(copy, value, value_len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, copy,
                          value_len);
}

void http_add_headerf(struct http_exchange *ex, const char *name, const char *fmt, ...)
{
    char value[512];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(value, sizeof(value), fmt, args);
    va_end(args);
    if (n < 0) return;
    http_add_header(ex, name, value, (size_t)n < sizeof(value) ? (size_t)n : sizeof(value) - 1);
}

/* Reason phrases, looked up for every response: by number, without formatting. */
static const struct {
    int status;
    const char *reason;
} REASONS[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {409, "Conflict"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {503, "Service Unavailable"},
};

static const char *reason_phrase(int status)
{
    for (size_t i = 0; i < sizeof(REASONS) / sizeof(REASONS[0]); i++)
        if (REASONS[i].status == status) return REASONS[i].reason;
    return "Unknown";
}

/* Everything of a response but its body. */
static void start_response(struct http_exchange *ex, int status, const char *content_type,
                           size_t body_len)
{
    assert(!ex->answered);
    ex->answered = 1;
    ex->on_gone = NULL;
    h2o_req_t *req = req_of(ex);
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    if (content_type)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
    /* 204 and 304 carry no body and, per RFC 9110, no Content-Length for it. */
    if (status != 204 && status != 304) req->res.content_length = body_len;
    uint64_t duration_us = clock_mono_us() - ex->started_at_us;
    metrics_record(&current_loop->metrics, ex->route_index, status, duration_us);
    if (LOG_INFO <= log_threshold) {
        /* The method and target as sent, escaped (log_escape): a path may carry any byte. */
        char method[40], target[640];
        log_escape(method, sizeof(method), ex->method.p, ex->method.len);
        size_t n = log_escape(target, sizeof(target), ex->path.p, ex->path.len);
        if (ex->query.len && n + 2 < sizeof(target)) {
            target[n++] = '?';
            log_escape(target + n, sizeof(target) - n, ex->query.p, ex->query.len);
        }
        log_request(method, target, status, (double)duration_us / 1000.0, ex->request_id, "");
    }
}

void http_respond(struct http_exchange *ex, int status, const char *content_type, const char *body,
                  size_t body_len)
{
    start_response(ex, status, content_type, body_len);
    h2o_send_inline(req_of(ex), body, body_len);
}

void http_respond_allocated(struct http_exchange *ex, int status, const char *content_type,
                            char *body, size_t body_len)
{
    static h2o_generator_t no_more_data = {NULL, NULL};
    start_response(ex, status, content_type, body_len);
    h2o_req_t *req = req_of(ex);
    h2o_iovec_t chunk = h2o_iovec_init(body, body_len);
    h2o_start_response(req, &no_more_data);
    int head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
    h2o_send(req, head ? NULL : &chunk, head ? 0 : 1, H2O_SEND_STATE_FINAL); /* as send_inline */
}

static void send_problem(struct http_exchange *ex, int status, char *text, size_t len)
{
    http_respond(ex, status, PROBLEM_CONTENT_TYPE, text, len); /* copies */
    free(text);
}

void http_respond_problem(struct http_exchange *ex, int status, const char *type_slug,
                          const char *detail, json_t *extra)
{
    size_t len;
    char *text = problem_render(status, type_slug, detail, extra, &len);
    send_problem(ex, status, text, len);
}

void http_respond_body_too_large(struct http_exchange *ex)
{
    char detail[64];
    snprintf(detail, sizeof(detail), "the body is larger than %zu bytes",
             ex->app->config->max_body_bytes);
    http_respond_problem(ex, 413, "payload-too-large", detail, NULL);
}

void http_respond_invalid(struct http_exchange *ex, const struct validation *v)
{
    json_t *errors = json_array();
    for (int i = 0; i < v->error_count; i++)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "field", v->errors[i].field,
                                                "message", v->errors[i].message));
    http_respond_problem(ex, 422, "validation-failed", v->detail,
                         json_pack("{s:o}", "errors", errors));
}

void http_respond_unavailable_with(struct http_exchange *ex, const char *type_slug,
                                   const char *detail, json_t *extra)
{
    http_add_header(ex, "retry-after", "1", 1);
    http_respond_problem(ex, 503, type_slug, detail, extra);
}

void http_respond_unavailable(struct http_exchange *ex, const char *type_slug, const char *detail)
{
    http_respond_unavailable_with(ex, type_slug, detail, NULL);
}

/* ---- answering from another thread ---- */

struct http_resume {
    h2o_multithread_message_t message; /* first: the receiver hands us this */
    struct http_exchange *ex;          /* NULL once the client went away */
    void (*fn)(struct http_exchange *ex, void *arg);
    void *arg;
    h2o_multithread_receiver_t *receiver;
};

static void resume_gone(void *arg)
{
    struct http_resume *resume = arg;
    resume->ex = NULL;
}

struct http_resume *http_resume_new(struct http_exchange *ex,
                                    void (*fn)(struct http_exchange *ex, void *arg), void *arg)
{
    struct http_resume *resume = xcalloc(1, sizeof(*resume));
    resume->ex = ex;
    resume->fn = fn;
    resume->arg = arg;
    resume->receiver = &current_loop->resume_receiver;
    assert(!ex->on_gone);
    ex->on_gone = resume_gone;
    ex->on_gone_arg = resume;
    return resume;
}

void http_resume_post(struct http_resume *resume)
{
    h2o_multithread_send_message(resume->receiver, &resume->message);
}

void http_resume_cancel(struct http_resume *resume)
{
    if (resume->ex) resume->ex->on_gone = NULL;
    free(resume);
}

/* Receiver callback on the loop thread: runs each resumed exchange's continuation. */
void http_on_resume_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        struct http_resume *resume =
            H2O_STRUCT_FROM_MEMBER(struct http_resume, message.link, messages->next);
        h2o_linklist_unlink(&resume->message.link);
        if (resume->ex) resume->ex->on_gone = NULL;
        resume->fn(resume->ex, resume->arg);
        free(resume);
    }
}

/* ---- read-your-writes ---- */

static void waiter_gone(void *arg)
{
    struct applied_waiter *waiter = arg;
    waiter->ex = NULL;
}

static void fire_waiter(struct loop_thread *loop, struct applied_waiter *waiter, int applied)
{
    h2o_linklist_unlink(&waiter->link);
    if (h2o_timeout_is_linked(&waiter->timeout_entry)) h2o_timeout_unlink(&waiter->timeout_entry);
    atomic_fetch_sub(&loop->waiter_count, 1);
    if (waiter->ex) waiter->ex->on_gone = NULL;
    waiter->fn(waiter->ex, applied, waiter->arg);
    free(waiter);
}

static void on_wait_timeout(h2o_timeout_entry_t *entry)
{
    struct applied_waiter *waiter =
        H2O_STRUCT_FROM_MEMBER(struct applied_waiter, timeout_entry, entry);
    fire_waiter(current_loop, waiter, 0);
}

/* Fires every waiter whose seq the projector has reached. */
void http_release_applied_waiters(struct loop_thread *loop, struct projector *projector)
{
    h2o_linklist_t *node = loop->waiters.next;
    while (node != &loop->waiters) {
        struct applied_waiter *waiter = H2O_STRUCT_FROM_MEMBER(struct applied_waiter, link, node);
        node = node->next;
        if (projector_applied(projector, waiter->seq, waiter->log_reads_at_commit))
            fire_waiter(loop, waiter, !projector_seq_parked(projector, waiter->seq));
    }
}

void http_when_applied(struct http_exchange *ex, int64_t seq, uint64_t log_reads_at_commit,
                       void (*fn)(struct http_exchange *ex, int applied, void *arg), void *arg)
{
    struct loop_thread *loop = current_loop;
    struct projector *projector = ex->app->projector;
    /* A parked event is behind the checkpoint without its view in Redis: not applied. When
     * the projector is not keeping up (Redis down, refusing writes, far behind), the view
     * cannot appear within the wait: answer at once. */
    int applied = projector_applied(projector, seq, log_reads_at_commit);
    if (applied || !projector_keeping_up(projector)) {
        fn(ex, applied && !projector_seq_parked(projector, seq), arg);
        return;
    }
    struct applied_waiter *waiter = xcalloc(1, sizeof(*waiter));
    waiter->ex = ex;
    waiter->seq = seq;
    waiter->log_reads_at_commit = log_reads_at_commit;
    waiter->fn = fn;
    waiter->arg = arg;
    waiter->timeout_entry.cb = on_wait_timeout;
    assert(!ex->on_gone);
    ex->on_gone = waiter_gone;
    ex->on_gone_arg = waiter;
    h2o_linklist_insert(&loop->waiters, &waiter->link);
    h2o_timeout_link(loop->ctx.loop, &loop->projection_wait, &waiter->timeout_entry);
    /* Count first, then look again: either the projector sees the count and wakes us, or we
     * see its new checkpoint here (both sides use sequentially consistent atomics). */
    atomic_fetch_add(&loop->waiter_count, 1);
    if (projector_applied(projector, seq, log_reads_at_commit))
        fire_waiter(loop, waiter, !projector_seq_parked(projector, seq));
}
