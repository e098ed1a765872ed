/* handlers.c - POST /products (and, later, the other commands). A command travels:
 * loop thread (validate) -> writer thread (commit) -> loop thread (wait briefly for the
 * projector) -> client. The struct command is malloc'd because the writer thread uses it,
 * and it is freed on the loop thread at the end of the trip. */
#include "command/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "command/writer.h"
#include "common/xmalloc.h"

#define BODY_LIMIT (64 * 1024)

static const char JSON[] = "application/json";

struct pending_command {
    struct command command;
    struct http_resume *resume;
};

/* Media type check: application/json, parameters allowed, case-insensitive. */
static int is_json(struct slice content_type)
{
    static const char type[] = "application/json";
    size_t n = sizeof(type) - 1;
    if (content_type.len < n || strncasecmp(content_type.p, type, n) != 0) return 0;
    if (content_type.len == n) return 1;
    for (size_t i = n; i < content_type.len; i++) {
        if (content_type.p[i] == ';') return 1;
        if (content_type.p[i] != ' ' && content_type.p[i] != '\t') return 0;
    }
    return 1;
}

/* Answers 415 or 413 and returns -1 when the body cannot be a command. */
static int body_acceptable_or_reply(struct http_exchange *ex)
{
    if (!is_json(http_header(ex, "content-type"))) {
        http_respond_problem(ex, 415, "unsupported-media-type",
                             "send the body as Content-Type: application/json", NULL);
        return -1;
    }
    if (ex->body.len > BODY_LIMIT) {
        http_respond_problem(ex, 413, "payload-too-large",
                             "the body is larger than 65536 bytes", NULL);
        return -1;
    }
    return 0;
}

static void send_result(struct http_exchange *ex, int applied, void *arg)
{
    struct command *cmd = arg;
    if (ex) {
        http_add_headerf(ex, "location", "/products/%s", cmd->product.id);
        http_add_headerf(ex, "etag", "\"%lld\"", (long long)cmd->product.version);
        http_add_header(ex, "projection", applied ? "applied" : "pending", applied ? 7 : 7);
        http_respond(ex, 201, JSON, cmd->view, cmd->view_len);
    }
    free(cmd);
}

static void on_committed(struct http_exchange *ex, void *arg)
{
    struct command *cmd = arg;
    if (!ex) {
        free(cmd);
        return;
    }
    char extra[UUID_TEXT_LEN + 32];
    switch (cmd->outcome) {
    case COMMAND_DONE:
        http_when_applied(ex, cmd->seq, send_result, cmd);
        return;
    case COMMAND_DUPLICATE_SKU:
        snprintf(extra, sizeof(extra), "\"existing_id\":\"%s\"", cmd->conflict_id);
        http_respond_problem(ex, 409, "duplicate-sku",
                             "a product with this sku already exists", extra);
        break;
    case COMMAND_NOT_FOUND:
        http_respond_problem(ex, 404, "not-found", "no product has this id", NULL);
        break;
    case COMMAND_UNAVAILABLE:
        http_respond_unavailable(ex, "write-model-unavailable",
                                 "the write model cannot take writes right now; retry shortly");
        break;
    }
    free(cmd);
}

/* Runs on the writer thread: hand the result back to the exchange's loop. */
static void on_complete(struct command *cmd)
{
    struct pending_command *pending = (struct pending_command *)cmd;
    http_resume_post(pending->resume);
}

void command_create_product(struct http_exchange *ex)
{
    if (body_acceptable_or_reply(ex) < 0) return;
    struct validation validation;
    struct pending_command *pending = xcalloc(1, sizeof(*pending));
    struct command *cmd = &pending->command;
    int status = product_parse_create(ex->body.p, ex->body.len, &cmd->draft, &validation);
    if (status != BODY_OK) {
        free(pending);
        if (status == BODY_MALFORMED)
            http_respond_problem(ex, 400, "malformed-body", validation.detail, NULL);
        else
            http_respond_invalid(ex, &validation);
        return;
    }
    cmd->kind = COMMAND_CREATE_PRODUCT;
    cmd->complete = on_complete;
    pending->resume = http_resume_new(ex, on_committed, cmd);
    writer_submit(ex->app->writer, cmd);
}
