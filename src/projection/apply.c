/* apply.c - the projector's one write path into Redis, shared by the live projector and the
 * catch-up phase of a rebuild. */
#include "projection/apply.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "domain/event.h"
#include "domain/view.h"
#include "projection/layout.h"

/* ARGV: base ("{prefix}:g{N}:"), the gen key, N, require_current, then 7 per event:
 * seq, "D" (delete) or "U" (upsert), id, sku, in_stock "1"/"0", version, view. */
static const char APPLY_SCRIPT[] =
    "local base = ARGV[1]\n"
    "if ARGV[4] == '1' then\n"
    "  local current = redis.call('GET', ARGV[2])\n"
    "  if current ~= ARGV[3] then return redis.error_reply('GENCHANGED') end\n"
    "end\n"
    "local checkpoint = redis.call('GET', base .. 'checkpoint')\n"
    "if not checkpoint then return redis.error_reply('NOCHECKPOINT') end\n"
    "checkpoint = tonumber(checkpoint)\n"
    "for i = 5, #ARGV, 7 do\n"
    "  local seq = tonumber(ARGV[i])\n"
    "  if seq > checkpoint then\n"
    "    local id, sku, version = ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 5])\n"
    "    local key = base .. 'p:' .. id\n"
    "    local stored = redis.call('GET', key)\n"
    "    local stored_version = 0\n"
    "    if stored then stored_version = tonumber(string.match(stored, '\"version\":(%d+)')) or 0 end\n"
    "    if ARGV[i + 1] == 'D' then\n"
    "      if stored_version <= version then\n"
    "        redis.call('DEL', key)\n"
    "        if redis.call('GET', base .. 'sku:' .. sku) == id then\n"
    "          redis.call('DEL', base .. 'sku:' .. sku)\n"
    "        end\n"
    "        redis.call('ZREM', base .. 'all', id)\n"
    "        redis.call('ZREM', base .. 'in_stock', id)\n"
    "      end\n"
    "    elseif version > stored_version then\n"
    "      redis.call('SET', key, ARGV[i + 6])\n"
    "      redis.call('SET', base .. 'sku:' .. sku, id)\n"
    "      redis.call('ZADD', base .. 'all', 0, id)\n"
    "      if ARGV[i + 4] == '1' then redis.call('ZADD', base .. 'in_stock', 0, id)\n"
    "      else redis.call('ZREM', base .. 'in_stock', id) end\n"
    "    end\n"
    "    checkpoint = seq\n"
    "  end\n"
    "end\n"
    "redis.call('SET', base .. 'checkpoint', checkpoint)\n"
    "return checkpoint\n";

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

void apply_event_clear(struct apply_event *event)
{
    free(event->view);
    event->view = NULL;
}

/* Numbers for the script's ARGV live in one arena: 2 per event, 21 bytes each. */
#define NUMBER_TEXT 21

int apply_events(redisContext *redis, const char *prefix, int64_t gen, int require_current,
                 const struct apply_event *events, size_t count, int64_t *checkpoint, char *err,
                 size_t errlen)
{
    /* EVAL, script, numkeys, 4 leading ARGV, then 7 per event */
    size_t argc = 7 + 7 * count;
    const char **argv = xmalloc(argc * sizeof(*argv));
    size_t *argvlen = xmalloc(argc * sizeof(*argvlen));
    char *numbers = xmalloc((2 * count + 1) * NUMBER_TEXT);
    char base[LAYOUT_KEY_MAX], gen_key[LAYOUT_KEY_MAX];
    layout_generation_base(prefix, gen, base, sizeof(base));
    layout_global_key(prefix, "gen", gen_key, sizeof(gen_key));
    char *gen_text = numbers + 2 * count * NUMBER_TEXT;
    snprintf(gen_text, NUMBER_TEXT, "%" PRId64, gen);

    const char *head[] = {"EVAL", APPLY_SCRIPT, "0", base, gen_key, gen_text,
                          require_current ? "1" : "0"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
        argv[n] = head[i];
        argvlen[n++] = strlen(head[i]);
    }
    for (size_t i = 0; i < count; i++) {
        const struct apply_event *e = &events[i];
        char *seq_text = numbers + 2 * i * NUMBER_TEXT;
        char *version_text = seq_text + NUMBER_TEXT;
        snprintf(seq_text, NUMBER_TEXT, "%" PRId64, e->seq);
        snprintf(version_text, NUMBER_TEXT, "%" PRId64, e->version);
        const char *fields[] = {seq_text, e->deleted ? "D" : "U", e->id, e->sku,
                                e->in_stock ? "1" : "0", version_text};
        for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
            argv[n] = fields[f];
            argvlen[n++] = strlen(fields[f]);
        }
        argv[n] = e->view;
        argvlen[n++] = e->view_len;
    }

    int rc;
    redisReply *reply = redisCommandArgv(redis, (int)n, argv, argvlen);
    if (!reply) {
        snprintf(err, errlen, "Redis: %s", redis->errstr[0] ? redis->errstr : "no reply");
        rc = APPLY_REDIS_DOWN;
    } else if (reply->type == REDIS_REPLY_INTEGER) {
        *checkpoint = reply->integer;
        rc = APPLY_OK;
    } else if (reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "GENCHANGED")) {
        snprintf(err, errlen, "the generation changed");
        rc = APPLY_GENERATION_CHANGED;
    } else if (reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "NOCHECKPOINT")) {
        snprintf(err, errlen, "generation %" PRId64 " has no checkpoint", gen);
        rc = APPLY_NO_CHECKPOINT;
    } else {
        snprintf(err, errlen, "Redis refused the batch: %.*s",
                 reply->type == REDIS_REPLY_ERROR ? (int)reply->len : 0,
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        rc = APPLY_REJECTED;
    }
    freeReplyObject(reply);
    free(argv);
    free(argvlen);
    free(numbers);
    return rc;
}
