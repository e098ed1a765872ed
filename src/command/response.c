/* response.c - what each command outcome answers. Pure: the writer renders it to store it
 * under an Idempotency-Key, the handler renders it to send it, and both get the same bytes. */
#include "command/response.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/digits.h"
#include "common/problem.h"
#include "common/xmalloc.h"

static void render_problem(struct command_response *out, int status, const char *slug,
                           const char *detail, json_t *extra)
{
    out->status = status;
    out->content_type = PROBLEM_CONTENT_TYPE;
    out->body = problem_render(status, slug, detail, extra, &out->body_len);
}

/* The ETag and Location of a product, written without printf: every command that succeeds
 * answers them (digits.h). */
static void render_etag(int64_t version, char out[24])
{
    _Static_assert(sizeof(((struct command_response *)0)->etag) >= 1 + DIGITS_U64_MAX + 2,
                   "an ETag of any int64 fits");
    out[0] = '"';
    size_t n = 1 + digits_i64(out + 1, version); /* at most 20 characters */
    out[n++] = '"';
    out[n] = '\0';
}

static void render_location(const char *id, char out[64])
{
    static const char prefix[] = "/products/";
    _Static_assert(sizeof(((struct command_response *)0)->location) >=
                       sizeof(prefix) - 1 + UUID_TEXT_LEN + 1,
                   "a product's Location fits");
    memcpy(out, prefix, sizeof(prefix) - 1);
    memcpy(out + sizeof(prefix) - 1, id, UUID_TEXT_LEN + 1);
}

static void render_success(const struct command *cmd, struct command_response *out)
{
    render_etag(cmd->product.version, out->etag);
    if (cmd->kind == COMMAND_DELETE_PRODUCT) {
        out->status = 204;
        return;
    }
    out->status = cmd->kind == COMMAND_CREATE_PRODUCT ? 201 : 200;
    if (cmd->kind == COMMAND_CREATE_PRODUCT) render_location(cmd->product.id, out->location);
    out->content_type = "application/json";
    out->body = xmalloc(cmd->view_len);
    memcpy(out->body, cmd->view, cmd->view_len);
    out->body_len = cmd->view_len;
}

void command_response_render(const struct command *cmd, struct command_response *out)
{
    char detail[200];
    memset(out, 0, sizeof(*out));
    switch (cmd->outcome) {
    case COMMAND_DONE:
        render_success(cmd, out);
        break;
    case COMMAND_DUPLICATE_SKU:
        render_problem(out, 409, "duplicate-sku", "a product with this sku already exists",
                       json_pack("{s:s}", "existing_id", cmd->conflict_id));
        break;
    case COMMAND_NOT_FOUND:
        render_problem(out, 404, "not-found", "no product has this id", NULL);
        break;
    case COMMAND_VERSION_MISMATCH:
        snprintf(detail, sizeof(detail),
                 "If-Match expected version %" PRId64 ", the product is at version %" PRId64,
                 cmd->expected_version, cmd->product.version);
        render_problem(out, 412, "version-mismatch", detail,
                       json_pack("{s:I}", "current_version", (json_int_t)cmd->product.version));
        break;
    case COMMAND_INSUFFICIENT_STOCK:
        snprintf(detail, sizeof(detail),
                 "stock is %" PRId64 ", a delta of %" PRId64 " would make it negative",
                 cmd->product.stock, cmd->delta);
        render_problem(out, 409, "insufficient-stock", detail,
                       json_pack("{s:I}", "current_stock", (json_int_t)cmd->product.stock));
        break;
    case COMMAND_STOCK_OVERFLOW:
        snprintf(detail, sizeof(detail),
                 "stock is %" PRId64 ", a delta of %" PRId64 " would exceed 2147483647",
                 cmd->product.stock, cmd->delta);
        render_problem(out, 422, "validation-failed", detail,
                       json_pack("{s:[{s:s,s:s}]}", "errors", "field", "delta", "message",
                                 "would make stock exceed 2147483647"));
        break;
    case COMMAND_REPLAYED:
        out->status = cmd->replay.status;
        snprintf(out->location, sizeof(out->location), "%s", cmd->replay.location);
        snprintf(out->etag, sizeof(out->etag), "%s", cmd->replay.etag);
        out->content_type = cmd->replay.content_type[0] ? cmd->replay.content_type : NULL;
        out->body = xmalloc(cmd->replay.body_len + 1);
        memcpy(out->body, cmd->replay.body, cmd->replay.body_len);
        out->body_len = cmd->replay.body_len;
        break;
    case COMMAND_KEY_REUSED:
        render_problem(out, 422, "idempotency-key-reused",
                       "this Idempotency-Key was first used with another method, path or body",
                       NULL);
        break;
    case COMMAND_UNAVAILABLE:
        render_problem(out, 503, "write-model-unavailable",
                       "the write model cannot take writes right now; retry shortly", NULL);
        out->retry_after_s = 1;
        break;
    case COMMAND_KEY_IN_FLIGHT:
        render_problem(out, 409, "idempotency-key-in-use",
                       "a request with this Idempotency-Key is still being processed; retry "
                       "after it completes",
                       NULL);
        break;
    case COMMAND_KEYS_FULL:
        render_problem(out, 503, "idempotency-keys-full",
                       "the server keeps as many Idempotency-Keys as it may "
                       "(--max-idempotency-keys) until older ones expire after 24 h; nothing was "
                       "done: send the command later, or without an Idempotency-Key",
                       NULL);
        out->retry_after_s = 60; /* expired keys are purged once a minute */
        break;
    }
}

void command_response_clear(struct command_response *response)
{
    free(response->body);
    response->body = NULL;
}
