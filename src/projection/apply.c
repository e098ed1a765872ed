/* apply.c - the projector's one write path into Redis, shared by the live projector and the
 * catch-up phase of a rebuild. */
#include "projection/apply.h"

#include <inttypes.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "domain/event.h"
#include "domain/view.h"
#include "projection/layout.h"

/* Applies one event (ARGV[i] .. ARGV[i + 6]: seq, "D" or "U", id, sku, in_stock "1"/"0",
 * version, view) to generation "base" unless the stored view is as new or newer. Shared by
 * every script below, so that all paths apply an event the same way. */
#define APPLY_ONE_LUA                                                                              \
    "local function apply_one(base, i)\n"                                                          \
    "  local id, sku, version = ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 5])\n"                 \
    "  local key = base .. 'p:' .. id\n"                                                           \
    "  local stored = redis.call('GET', key)\n"                                                    \
    "  local stored_version = 0\n"                                                                 \
    "  if stored then stored_version = tonumber(string.match(stored, '\"version\":(%d+)')) or 0 "  \
    "end\n"                                                                                        \
    "  if ARGV[i + 1] == 'D' then\n"                                                               \
    "    if stored_version <= version then\n"                                                      \
    "      redis.call('DEL', key)\n"                                                               \
    "      if redis.call('GET', base .. 'sku:' .. sku) == id then\n"                               \
    "        redis.call('DEL', base .. 'sku:' .. sku)\n"                                           \
    "      end\n"                                                                                  \
    "      redis.call('ZREM', base .. 'all', id)\n"                                                \
    "      redis.call('ZREM', base .. 'in_stock', id)\n"                                           \
    "    end\n"                                                                                    \
    "  elseif version > stored_version then\n"                                                     \
    "    redis.call('SET', key, ARGV[i + 6])\n"                                                    \
    "    redis.call('SET', base .. 'sku:' .. sku, id)\n"                                           \
    "    redis.call('ZADD', base .. 'all', 0, id)\n"                                               \
    "    if ARGV[i + 4] == '1' then redis.call('ZADD', base .. 'in_stock', 0, id)\n"               \
    "    else redis.call('ZREM', base .. 'in_stock', id) end\n"                                    \
    "  end\n"                                                                                      \
    "end\n"

/* A batch. ARGV: base ("{prefix}:g{N}:"), the gen key, N, require_current, then 7 per event.
 * Events of a parked product are parked behind its earlier ones instead of applied. */
static const char APPLY_SCRIPT[] =
    APPLY_ONE_LUA "local base = ARGV[1]\n"
                  "if ARGV[4] == '1' then\n"
                  "  local current = redis.call('GET', ARGV[2])\n"
                  "  if current ~= ARGV[3] then return redis.error_reply('GENCHANGED') end\n"
                  "end\n"
                  "local checkpoint = redis.call('GET', base .. 'checkpoint')\n"
                  "if not checkpoint then return redis.error_reply('NOCHECKPOINT') end\n"
                  "checkpoint = tonumber(checkpoint)\n"
                  "local any_parked = redis.call('EXISTS', base .. 'parked') == 1\n"
                  "for i = 5, #ARGV, 7 do\n"
                  "  local seq = tonumber(ARGV[i])\n"
                  "  if seq > checkpoint then\n"
                  "    local id = ARGV[i + 2]\n"
                  "    if any_parked and redis.call('HEXISTS', base .. 'parked', id) == 1 then\n"
                  "      redis.call('RPUSH', base .. 'parked:' .. id, seq)\n"
                  "      redis.call('HINCRBY', base .. 'parked', id, 1)\n"
                  "    else\n"
                  "      apply_one(base, i)\n"
                  "    end\n"
                  "    checkpoint = seq\n"
                  "  end\n"
                  "end\n"
                  "redis.call('SET', base .. 'checkpoint', checkpoint)\n"
                  "return checkpoint\n";

/* Parks the event after the checkpoint that Redis refused: moves the checkpoint over it and
 * queues it under its product. ARGV: base, then the event's 7 fields. */
static const char PARK_SCRIPT[] =
    "local base = ARGV[1]\n"
    "local checkpoint = redis.call('GET', base .. 'checkpoint')\n"
    "if not checkpoint then return redis.error_reply('NOCHECKPOINT') end\n"
    "local seq = tonumber(ARGV[2])\n"
    "if seq <= tonumber(checkpoint) then return tonumber(checkpoint) end\n"
    "redis.call('RPUSH', base .. 'parked:' .. ARGV[4], seq)\n"
    "redis.call('HINCRBY', base .. 'parked', ARGV[4], 1)\n"
    "redis.call('SET', base .. 'checkpoint', seq)\n"
    "return seq\n";

/* Applies a parked event if it is its product's oldest; unparks the product when none are
 * left. ARGV: base, then the event's 7 fields. Returns the events still parked for it. */
static const char UNPARK_SCRIPT[] = APPLY_ONE_LUA
    "local base = ARGV[1]\n"
    "local queue = base .. 'parked:' .. ARGV[4]\n"
    "if redis.call('LINDEX', queue, 0) ~= ARGV[2] then return redis.error_reply('NOTHEAD') end\n"
    "apply_one(base, 2)\n"
    "redis.call('LPOP', queue)\n"
    "local left = redis.call('HINCRBY', base .. 'parked', ARGV[4], -1)\n"
    "if left <= 0 then redis.call('HDEL', base .. 'parked', ARGV[4]); redis.call('DEL', queue) "
    "end\n"
    "return left\n";

int apply_event_from_store(const struct store_event *event, struct apply_event *out)
{
    struct view_fields fields;
    memset(out, 0, sizeof(*out));
    if (view_parse(event->payload, event->payload_len, &fields) < 0) return -1;
    out->seq = event->seq;
    out->deleted = event_type_from_name(event->type) == EVENT_PRODUCT_DELETED;
    memcpy(out->id, fields.id, sizeof(out->id));
    memcpy(out->sku, fields.sku, sizeof(out->sku));
    out->in_stock = fields.stock > 0;
    out->version = fields.version;
    out->view = xmalloc(event->payload_len);
    memcpy(out->view, event->payload, event->payload_len);
    out->view_len = event->payload_len;
    return 0;
}

void apply_event_from_product(int64_t seq, int deleted, const struct product *product,
                              const char *view, size_t view_len, struct apply_event *out)
{
    memset(out, 0, sizeof(*out));
    out->seq = seq;
    out->deleted = deleted;
    memcpy(out->id, product->id, sizeof(out->id));
    memcpy(out->sku, product->sku, sizeof(out->sku));
    out->in_stock = product->stock > 0;
    out->version = product->version;
    out->view = xmalloc(view_len);
    memcpy(out->view, view, view_len);
    out->view_len = view_len;
}

void apply_event_clear(struct apply_event *event)
{
    free(event->view);
    event->view = NULL;
}

/* Numbers for the script's ARGV live in one arena: 2 per event, 21 bytes each. */
#define NUMBER_TEXT 21
#define EVENT_ARGS  7

/* Appends the 7 arguments of "e" at argv[*n]; "numbers" has room for its 2 numbers. */
static void push_event_args(const struct apply_event *e, char *numbers, const char **argv,
                            size_t *argvlen, size_t *n)
{
    char *seq_text = numbers, *version_text = numbers + NUMBER_TEXT;
    snprintf(seq_text, NUMBER_TEXT, "%" PRId64, e->seq);
    snprintf(version_text, NUMBER_TEXT, "%" PRId64, e->version);
    const char *fields[EVENT_ARGS - 1] = {seq_text, e->deleted ? "D" : "U",  e->id,
                                          e->sku,   e->in_stock ? "1" : "0", version_text};
    for (size_t f = 0; f < EVENT_ARGS - 1; f++) {
        argv[*n] = fields[f];
        argvlen[(*n)++] = strlen(fields[f]);
    }
    argv[*n] = e->view;
    argvlen[(*n)++] = e->view_len;
}

/* Runs a script by its SHA1 (EVALSHA), so that Redis neither receives nor hashes the script
 * text on every call; on NOSCRIPT (a Redis that restarted or flushed its scripts) it sends
 * the text once with EVAL, which caches it again. argv[0] and argv[1] are filled here. */
#define SHA_TEXT (2 * SHA_DIGEST_LENGTH)

static struct {
    const char *script;
    char sha[SHA_TEXT + 1];
} script_shas[] = {{APPLY_SCRIPT, ""}, {PARK_SCRIPT, ""}, {UNPARK_SCRIPT, ""}};
static pthread_once_t script_shas_once = PTHREAD_ONCE_INIT;

static void hash_scripts(void)
{
    for (size_t s = 0; s < sizeof(script_shas) / sizeof(script_shas[0]); s++) {
        unsigned char digest[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)script_shas[s].script, strlen(script_shas[s].script), digest);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(script_shas[s].sha + 2 * i, 3, "%02x", digest[i]);
    }
}

static const char *sha_of(const char *script)
{
    pthread_once(&script_shas_once, hash_scripts);
    for (size_t s = 0; s < sizeof(script_shas) / sizeof(script_shas[0]); s++)
        if (script_shas[s].script == script) return script_shas[s].sha;
    abort(); /* every script of this file is in the table */
}

static redisReply *eval_script(redisContext *redis, const char *script, const char **argv,
                               size_t *argvlen, size_t argc)
{
    argv[0] = "EVALSHA";
    argvlen[0] = 7;
    argv[1] = sha_of(script);
    argvlen[1] = SHA_TEXT;
    redisReply *reply = redisCommandArgv(redis, (int)argc, argv, argvlen);
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(reply);
        argv[0] = "EVAL";
        argvlen[0] = 4;
        argv[1] = script;
        argvlen[1] = strlen(script);
        reply = redisCommandArgv(redis, (int)argc, argv, argvlen);
    }
    return reply;
}

/* Classifies a script's reply. */
static int reply_status(redisContext *redis, redisReply *reply, int64_t *value, char *err,
                        size_t errlen)
{
    if (!reply) {
        snprintf(err, errlen, "Redis: %s", redis->errstr[0] ? redis->errstr : "no reply");
        return APPLY_REDIS_DOWN;
    }
    if (reply->type == REDIS_REPLY_INTEGER) {
        *value = reply->integer;
        return APPLY_OK;
    }
    if (reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "GENCHANGED")) {
        snprintf(err, errlen, "the generation changed");
        return APPLY_GENERATION_CHANGED;
    }
    if (reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "NOCHECKPOINT")) {
        snprintf(err, errlen, "the generation has no checkpoint");
        return APPLY_NO_CHECKPOINT;
    }
    snprintf(err, errlen, "Redis refused: %.*s",
             reply->type == REDIS_REPLY_ERROR ? (int)reply->len : 0,
             reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    return APPLY_REJECTED;
}

/* Runs a one-event script (PARK_SCRIPT or UNPARK_SCRIPT) on generation "gen". */
static int run_event_script(redisContext *redis, const char *script, const char *prefix,
                            int64_t gen, const struct apply_event *event, int64_t *value, char *err,
                            size_t errlen)
{
    char base[LAYOUT_BASE_MAX], numbers[2 * NUMBER_TEXT];
    layout_generation_base(prefix, gen, base, sizeof(base));
    const char *argv[4 + EVENT_ARGS] = {NULL, NULL, "0", base};
    size_t argvlen[4 + EVENT_ARGS] = {0, 0, 1, strlen(base)};
    size_t n = 4;
    push_event_args(event, numbers, argv, argvlen, &n);
    redisReply *reply = eval_script(redis, script, argv, argvlen, n);
    int rc = reply_status(redis, reply, value, err, errlen);
    freeReplyObject(reply);
    return rc;
}

int apply_park(redisContext *redis, const char *prefix, int64_t gen,
               const struct apply_event *event, int64_t *checkpoint, char *err, size_t errlen)
{
    return run_event_script(redis, PARK_SCRIPT, prefix, gen, event, checkpoint, err, errlen);
}

int apply_unpark(redisContext *redis, const char *prefix, int64_t gen,
                 const struct apply_event *event, int64_t *still_parked, char *err, size_t errlen)
{
    return run_event_script(redis, UNPARK_SCRIPT, prefix, gen, event, still_parked, err, errlen);
}

int apply_events(redisContext *redis, const char *prefix, int64_t gen, int require_current,
                 const struct apply_event *events, size_t count, int64_t *checkpoint, char *err,
                 size_t errlen)
{
    /* EVAL, script, numkeys, 4 leading ARGV, then 7 per event */
    size_t argc = 7 + EVENT_ARGS * count;
    const char **argv = xmalloc(argc * sizeof(*argv));
    size_t *argvlen = xmalloc(argc * sizeof(*argvlen));
    char *numbers = xmalloc((2 * count + 1) * NUMBER_TEXT);
    char base[LAYOUT_BASE_MAX], gen_key[LAYOUT_KEY_MAX];
    layout_generation_base(prefix, gen, base, sizeof(base));
    layout_global_key(prefix, "gen", gen_key, sizeof(gen_key));
    char *gen_text = numbers + 2 * count * NUMBER_TEXT;
    snprintf(gen_text, NUMBER_TEXT, "%" PRId64, gen);

    const char *head[] = {
        "EVAL", APPLY_SCRIPT, "0", base, gen_key, gen_text, require_current ? "1" : "0"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
        argv[n] = head[i];
        argvlen[n++] = strlen(head[i]);
    }
    for (size_t i = 0; i < count; i++)
        push_event_args(&events[i], numbers + 2 * i * NUMBER_TEXT, argv, argvlen, &n);

    redisReply *reply = eval_script(redis, APPLY_SCRIPT, argv, argvlen, n);
    int rc = reply_status(redis, reply, checkpoint, err, errlen);
    freeReplyObject(reply);
    free(argv);
    free(argvlen);
    free(numbers);
    return rc;
}

int apply_list_parked(redisContext *redis, const char *prefix, int64_t gen,
                      int (*fn)(const char *product_id, int64_t seq, void *arg), void *arg,
                      int64_t *parked_events, char *err, size_t errlen)
{
    char key[LAYOUT_KEY_MAX];
    layout_generation_base(prefix, gen, key, sizeof(key) - 8);
    strcat(key, "parked");
    const char *argv[] = {"HKEYS", key};
    redisReply *ids = redisCommandArgv(redis, 2, argv, NULL);
    int64_t ignored;
    int rc = reply_status(redis, ids, &ignored, err, errlen);
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(ids);
        return rc == APPLY_OK ? APPLY_REJECTED : rc;
    }
    *parked_events = 0;
    rc = APPLY_OK;
    for (size_t i = 0; rc == APPLY_OK && i < ids->elements; i++) {
        char queue[LAYOUT_KEY_MAX];
        layout_generation_base(prefix, gen, queue, LAYOUT_BASE_MAX);
        snprintf(queue + strlen(queue), sizeof(queue) - strlen(queue), "parked:%s",
                 ids->element[i]->str);
        const char *range[] = {"LRANGE", queue, "0", "-1"};
        redisReply *seqs = redisCommandArgv(redis, 4, range, NULL);
        if (!seqs || seqs->type != REDIS_REPLY_ARRAY) {
            rc = reply_status(redis, seqs, &ignored, err, errlen);
            if (rc == APPLY_OK) rc = APPLY_REJECTED;
        } else {
            *parked_events += (int64_t)seqs->elements;
            for (size_t j = 0; fn && j < seqs->elements; j++)
                if (fn(ids->element[i]->str, strtoll(seqs->element[j]->str, NULL, 10), arg))
                    break; /* the rest of this product waits behind the one that failed */
        }
        freeReplyObject(seqs);
    }
    freeReplyObject(ids);
    return rc;
}
