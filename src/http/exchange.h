/* exchange.h - what a handler sees of an HTTP request and how it answers. Handlers of the
 * command, query and operations sides get this small struct, never h2o's types.
 * Invariant: an exchange is answered exactly once, on the loop thread that received it;
 * memory from http_alloc lives until the exchange is gone, so handlers free nothing. */
#ifndef CATALOGD_EXCHANGE_H
#define CATALOGD_EXCHANGE_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "common/slice.h"
#include "domain/product.h"

struct app;
struct app_thread;

#define HTTP_MAX_PARAMS 2
#define REQUEST_ID_MAX  64

struct http_exchange {
    struct slice method;
    struct slice path;  /* without the query string */
    struct slice query; /* after '?', empty when none */
    struct slice body;
    struct slice params[HTTP_MAX_PARAMS]; /* the {} segments of the route, in order */
    int param_count;
    char request_id[REQUEST_ID_MAX + 1];

    struct app *app;           /* shared services: writer, projector, settings */
    struct app_thread *thread; /* this loop thread's services: the read model */

    /* Called when the client goes away before the exchange is answered (its memory is about
     * to be freed): whoever holds the exchange for later drops it here. One holder at a time. */
    void (*on_gone)(void *arg);
    void *on_gone_arg;

    /* For http/ only. */
    void *impl; /* h2o_req_t */
    const char *route_name;
    int route_index; /* in the route table, -1 when no route matched */
    uint64_t started_at_us;
    int answered;
};

/* Request helpers. http_header returns the first value of header "name" (lowercase), or an
 * empty slice. */
struct slice http_header(const struct http_exchange *ex, const char *name);
int http_has_header(const struct http_exchange *ex, const char *name);

/* How many times the request carries the header "name" (lowercase). */
size_t http_header_count(const struct http_exchange *ex, const char *name);

/* 1 when the Content-Type value "content_type" is application/json (case-insensitive,
 * parameters allowed, a charset only if UTF-8), else 0. */
int http_is_json(struct slice content_type);

/* Memory that lives as long as the exchange. Never NULL (aborts on out of memory). */
void *http_alloc(struct http_exchange *ex, size_t size);

/* Adds a response header; "value" is copied. */
void http_add_header(struct http_exchange *ex, const char *name, const char *value,
                     size_t value_len);
void http_add_headerf(struct http_exchange *ex, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sends the response; "body" is copied. A NULL "content_type" sends no Content-Type. */
void http_respond(struct http_exchange *ex, int status, const char *content_type, const char *body,
                  size_t body_len);

/* Like http_respond, for a body from http_alloc: sent as it is, not copied (a catalog page is
 * tens of KiB). */
void http_respond_allocated(struct http_exchange *ex, int status, const char *content_type,
                            char *body, size_t body_len);

/* Sends application/problem+json (RFC 9457): {"type","title","status","detail"} plus the
 * members of "extra" when given (its reference is taken). */
void http_respond_problem(struct http_exchange *ex, int status, const char *type_slug,
                          const char *detail, json_t *extra);

/* A 413 naming the configured body limit. */
void http_respond_body_too_large(struct http_exchange *ex);

/* A 422 that lists every failing field of "v". */
void http_respond_invalid(struct http_exchange *ex, const struct validation *v);

/* A 503 with Retry-After: the read model (Redis) or write model (SQLite) is unavailable.
 * The _with form adds the members of "extra" (its reference is taken). */
void http_respond_unavailable(struct http_exchange *ex, const char *type_slug, const char *detail);
void http_respond_unavailable_with(struct http_exchange *ex, const char *type_slug,
                                   const char *detail, json_t *extra);

/* Answering later from another thread's work. http_resume_new registers "fn"; any thread may
 * then call http_resume_post once, and "fn" runs on the exchange's loop thread with the
 * exchange, or with NULL if the client went away meanwhile ("fn" must then release "arg"). */
struct http_resume;
struct http_resume *http_resume_new(struct http_exchange *ex,
                                    void (*fn)(struct http_exchange *ex, void *arg), void *arg);
void http_resume_post(struct http_resume *resume);
/* Drops a resume that will never be posted (the work could not start). */
void http_resume_cancel(struct http_resume *resume);

/* Read-your-writes: calls "fn(ex, applied, arg)" on the loop thread once the projector's
 * checkpoint reaches "seq", committed at "log_reads_at_commit" (projector_applied;
 * "applied" = 1), or after the configured projection wait ("applied" = 0). "ex" is NULL if
 * the client went away. */
void http_when_applied(struct http_exchange *ex, int64_t seq, uint64_t log_reads_at_commit,
                       void (*fn)(struct http_exchange *ex, int applied, void *arg), void *arg);

#endif
