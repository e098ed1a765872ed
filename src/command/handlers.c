/* handlers.c - the command routes. A command travels: loop thread (validate) -> writer thread
 * (commit) -> loop thread (wait briefly for the projector) -> client. The struct command is
 * malloc'd because the writer thread uses it; it is freed on the loop thread at the end of
 * the trip, whether or not the client is still there. */
#include "command/handlers.h"

#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "command/inflight_keys.h"
#include "command/response.h"
#include "command/writer.h"
#include "common/xmalloc.h"
#include "domain/uuid7.h"

struct pending_command {
    struct command command; /* first: the writer hands back this pointer */
    struct command_response response;
    struct http_resume *resume;
    struct inflight_keys *inflight_keys; /* where the command's key is held while in flight */
    struct writer *writer;               /* that took the command */
};

static void pending_free(struct pending_command *pending)
{
    command_response_clear(&pending->response);
    command_free(&pending->command); /* frees pending too: command is its first member */
}

/* The headers that decide what a command does. Sent twice, one has two readings: a proxy in
 * front that keeps the other one would see, say, a retry with another Idempotency-Key as a
 * new command, where this server replays (or the reverse), and the command would run twice. */
static const struct {
    const char *name; /* as h2o keeps it: lowercase */
    const char *shown;
} SINGLE_HEADERS[] = {
    {"idempotency-key", "Idempotency-Key"},
    {"if-match", "If-Match"},
    {"content-type", "Content-Type"},
};

/* Answers 400 and returns -1 when one of SINGLE_HEADERS comes more than once. */
static int single_headers_or_reply(struct http_exchange *ex)
{
    for (size_t i = 0; i < sizeof(SINGLE_HEADERS) / sizeof(SINGLE_HEADERS[0]); i++) {
        size_t count = http_header_count(ex, SINGLE_HEADERS[i].name);
        if (count <= 1) continue;
        char detail[200];
        snprintf(detail, sizeof(detail),
                 "%s is sent %zu times: send it once (a proxy that keeps another one than this "
                 "server would read the command differently); nothing was done",
                 SINGLE_HEADERS[i].shown, count);
        http_respond_problem(ex, 400, "invalid-header", detail, NULL);
        return -1;
    }
    return 0;
}

/* Answers 415 or 413 and returns -1 when the body cannot be a command. */
static int body_acceptable_or_reply(struct http_exchange *ex)
{
    if (!http_is_json(http_header(ex, "content-type"))) {
        http_respond_problem(ex, 415, "unsupported-media-type",
                             "send the body as Content-Type: application/json, in UTF-8 "
                             "(charset=utf-8 or none)",
                             NULL);
        return -1;
    }
    if (ex->body.len > ex->app->config->max_body_bytes) { /* h2o refuses these already */
        http_respond_body_too_large(ex);
        return -1;
    }
    return 0;
}

/* Answers a parser's verdict (400 or 422) and returns -1 unless it is BODY_OK. */
static int parsed_or_reply(struct http_exchange *ex, int status, const struct validation *v)
{
    if (status == BODY_OK) return 0;
    if (status == BODY_MALFORMED)
        http_respond_problem(ex, 400, "malformed-body", v->detail, NULL);
    else
        http_respond_invalid(ex, v);
    return -1;
}

/* The product id of the path, or a 404 when it cannot name a product. */
static int product_id_or_reply(struct http_exchange *ex, struct command *cmd)
{
    struct slice id = ex->params[0];
    if (uuid_check_canonical(id.p, id.len) < 0) {
        http_respond_problem(ex, 404, "not-found", "no product has this id", NULL);
        return -1;
    }
    memcpy(cmd->product_id, id.p, UUID_TEXT_LEN);
    cmd->product_id[UUID_TEXT_LEN] = '\0';
    return 0;
}

/* If-Match: absent or "*" accepts any version; "N" (quoted) expects version N. N is written
 * as the ETag writes it, without leading zeros: an entity tag matches character by character
 * (RFC 9110), so "03" is no tag catalogd hands out, and is refused with the other forms. */
static int expected_version_or_reply(struct http_exchange *ex, struct command *cmd)
{
    struct slice value = http_header(ex, "if-match");
    cmd->expected_version = COMMAND_ANY_VERSION;
    if (!http_has_header(ex, "if-match") || slice_eq(value, "*")) return 0;
    int64_t version = 0;
    int ok = value.len >= 3 && value.len <= 20 && value.p[0] == '"' && value.p[1] != '0' &&
             value.p[value.len - 1] == '"';
    for (size_t i = 1; ok && i + 1 < value.len; i++) {
        ok = value.p[i] >= '0' && value.p[i] <= '9';
        version = version * 10 + (value.p[i] - '0');
    }
    if (!ok || version < 1) {
        http_respond_problem(ex, 400, "invalid-header",
                             "If-Match must be a product version in quotes, like \"3\"", NULL);
        return -1;
    }
    cmd->expected_version = version;
    return 0;
}

/* SHA-256 of method, path and body: what "the same request" means for a key. */
static void fingerprint(const struct http_exchange *ex, unsigned char out[STORE_FINGERPRINT_LEN])
{
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) xmalloc_fail();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, ex->method.p, ex->method.len);
    EVP_DigestUpdate(ctx, "\n", 1);
    EVP_DigestUpdate(ctx, ex->path.p, ex->path.len);
    EVP_DigestUpdate(ctx, "\n", 1);
    EVP_DigestUpdate(ctx, ex->body.p, ex->body.len);
    EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
}

/* Idempotency-Key: 1-255 visible ASCII characters; not while the same key is in flight. */
static int idempotency_key_or_reply(struct http_exchange *ex, struct command *cmd)
{
    struct slice key = http_header(ex, "idempotency-key");
    cmd->idempotency_key[0] = '\0';
    if (!http_has_header(ex, "idempotency-key")) return 0;
    int ok = key.len >= 1 && key.len <= IDEMPOTENCY_KEY_MAX;
    for (size_t i = 0; ok && i < key.len; i++)
        ok = key.p[i] >= 0x21 && key.p[i] <= 0x7e;
    if (!ok) {
        http_respond_problem(ex, 400, "invalid-header",
                             "Idempotency-Key must be 1-255 visible ASCII characters", NULL);
        return -1;
    }
    memcpy(cmd->idempotency_key, key.p, key.len);
    cmd->idempotency_key[key.len] = '\0';
    if (inflight_keys_add(ex->app->inflight_keys, cmd->idempotency_key) < 0) {
        cmd->idempotency_key[0] = '\0'; /* not ours to remove */
        http_respond_problem(ex, 409, "idempotency-key-in-use",
                             "a request with this Idempotency-Key is still being processed; "
                             "retry after it completes",
                             NULL);
        return -1;
    }
    fingerprint(ex, cmd->fingerprint);
    return 0;
}

static void send_response(struct http_exchange *ex, int applied, void *arg)
{
    struct pending_command *pending = arg;
    struct command_response *response = &pending->response;
    if (ex) {
        if (response->location[0])
            http_add_header(ex, "location", response->location, strlen(response->location));
        if (response->etag[0]) http_add_header(ex, "etag", response->etag, strlen(response->etag));
        if (pending->command.outcome == COMMAND_DONE)
            http_add_header(ex, "projection", applied ? "applied" : "pending", 7);
        if (pending->command.outcome == COMMAND_REPLAYED)
            http_add_header(ex, "idempotent-replayed", "true", 4);
        if (response->retry_after_s > 0)
            http_add_headerf(ex, "retry-after", "%d", response->retry_after_s);
        http_respond(ex, response->status, response->content_type, response->body,
                     response->body_len);
    }
    writer_command_answered(pending->writer);
    pending_free(pending);
}

static void on_committed(struct http_exchange *ex, void *arg)
{
    struct pending_command *pending = arg;
    struct command *cmd = &pending->command;
    /* Committed (or refused): a retry with this key now finds the stored response. */
    if (cmd->idempotency_key[0]) inflight_keys_remove(pending->inflight_keys, cmd->idempotency_key);
    command_response_render(cmd, &pending->response);
    if (ex && cmd->outcome == COMMAND_DONE && !cmd->seq_taken_again)
        http_when_applied(ex, cmd->seq, cmd->log_reads_at_commit, send_response, pending);
    else
        send_response(ex, 0, pending);
}

/* Runs on the writer thread: hand the result back to the exchange's loop. */
static void on_complete(struct command *cmd)
{
    http_resume_post(((struct pending_command *)cmd)->resume);
}

/* A new command, zeroed but for its view buffer: that is most of its bytes, and it is read
 * only up to view_len, which the writer sets when it writes the view. */
static struct pending_command *pending_new(enum command_kind kind)
{
    struct pending_command *pending = xmalloc(sizeof(*pending));
    size_t view_at = offsetof(struct pending_command, command.view);
    size_t view_end = view_at + sizeof(pending->command.view);
    memset(pending, 0, view_at);
    memset((char *)pending + view_end, 0, sizeof(*pending) - view_end);
    pending->command.kind = kind;
    pending->command.expected_version = COMMAND_ANY_VERSION;
    pending->command.complete = on_complete;
    return pending;
}

/* The checks every command shares, then off to the writer. Takes "pending". */
static void submit(struct http_exchange *ex, struct pending_command *pending)
{
    struct command *cmd = &pending->command;
    if ((cmd->kind != COMMAND_CREATE_PRODUCT && expected_version_or_reply(ex, cmd) < 0) ||
        idempotency_key_or_reply(ex, cmd) < 0) {
        pending_free(pending);
        return;
    }
    pending->inflight_keys = ex->app->inflight_keys;
    pending->resume = http_resume_new(ex, on_committed, pending);
    pending->writer = ex->app->writer;
    if (writer_submit(ex->app->writer, cmd) == 0) return;
    http_resume_cancel(pending->resume);
    if (cmd->idempotency_key[0]) inflight_keys_remove(pending->inflight_keys, cmd->idempotency_key);
    pending_free(pending);
    http_add_header(ex, "retry-after", "1", 1);
    http_respond_problem(ex, 503, "write-queue-full",
                         "the writer has --max-queued-commands commands waiting already; nothing "
                         "was done: retry shortly",
                         NULL);
}

void command_create_product(struct http_exchange *ex)
{
    struct validation v;
    if (single_headers_or_reply(ex) < 0 || body_acceptable_or_reply(ex) < 0) return;
    struct pending_command *pending = pending_new(COMMAND_CREATE_PRODUCT);
    if (parsed_or_reply(ex,
                        product_parse_create(ex->body.p, ex->body.len, &pending->command.draft, &v),
                        &v) < 0) {
        pending_free(pending);
        return;
    }
    submit(ex, pending);
}

void command_update_product(struct http_exchange *ex)
{
    struct validation v;
    struct pending_command *pending = pending_new(COMMAND_UPDATE_PRODUCT);
    if (product_id_or_reply(ex, &pending->command) < 0 || single_headers_or_reply(ex) < 0 ||
        body_acceptable_or_reply(ex) < 0 ||
        parsed_or_reply(ex,
                        product_parse_patch(ex->body.p, ex->body.len, &pending->command.draft, &v),
                        &v) < 0) {
        pending_free(pending);
        return;
    }
    submit(ex, pending);
}

void command_delete_product(struct http_exchange *ex)
{
    struct pending_command *pending = pending_new(COMMAND_DELETE_PRODUCT);
    if (product_id_or_reply(ex, &pending->command) < 0 || single_headers_or_reply(ex) < 0) {
        pending_free(pending);
        return;
    }
    submit(ex, pending);
}

void command_adjust_stock(struct http_exchange *ex)
{
    struct validation v;
    struct pending_command *pending = pending_new(COMMAND_ADJUST_STOCK);
    if (product_id_or_reply(ex, &pending->command) < 0 || single_headers_or_reply(ex) < 0 ||
        body_acceptable_or_reply(ex) < 0 ||
        parsed_or_reply(
            ex, product_parse_stock_delta(ex->body.p, ex->body.len, &pending->command.delta, &v),
            &v) < 0) {
        pending_free(pending);
        return;
    }
    submit(ex, pending);
}
