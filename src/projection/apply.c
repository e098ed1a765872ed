/* apply.c - the apply and unpark scripts, and the C that feeds them. See apply.h for the
 * invariants they keep. */
#include "projection/apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/digits.h"
#include "common/xmalloc.h"
#include "domain/event.h"
#include "domain/uuid7.h"
#include "domain/view.h"
#include "projection/redis_sync.h"
#include "readmodel/layout.h"

/* The fields of one event in a script's ARGV, from ARGV[i]: seq, kind, id, sku, in_stock
 * "1"/"0", version, fingerprint, view. */
#define EVENT_ARGS      8
#define EVENT_ARGS_TEXT "8"

/* Shared by both scripts, so that every path applies an event the same way. Every key an event
 * writes is one of the shared keys that shared_keys_broken checks first: once they are of the
 * right type, no read or write of an event can fail. */
#define EVENT_LUA                                                                                  \
    /* The stored version of the event's product (text; '0' if none), its view and the set that    \
       holds it. Reads only. A product's first event (a create) is most events: its view can be    \
       there only if the product's sku entry names it (a sku never changes, and its entry is       \
       written with every view and removed with it), so one HGET answers it where the two range    \
       reads of view_of would both miss. The version is found by a plain find, not a pattern       \
       tried at every byte of the view, which cost three times as much.                            \
       SKU_TAKEN instead for a create, or a change of a product with no view, whose sku another    \
       product's entry names. It came before that product's create and before its own              \
       product's delete (a sku is taken again only after a delete, whose event removed the         \
       entry), so it is being applied again over a newer state: after a checkpoint set back by     \
       hand. Written, it would bring the deleted product back with its sku, and the delete         \
       after it would take the sku from the living one for good: it is passed over. */             \
    "local SKU_TAKEN = 'sku taken'\n"                                                              \
    "local function stored_version(base, i)\n"                                                     \
    "  local id, sku = ARGV[i + 2], ARGV[i + 3]\n"                                                 \
    "  if ARGV[i + 5] == '1' then\n"                                                               \
    "    local named = redis.call('HGET', base .. KEY_SKUS, sku)\n"                                \
    "    if named and named ~= id then return SKU_TAKEN end\n"                                     \
    "    if named ~= id then return '0' end\n"                                                     \
    "  end\n"                                                                                      \
    "  local view, set = view_of(base, id)\n"                                                      \
    "  if not view then\n"                                                                         \
    "    local named = ARGV[i + 1] ~= 'D' and redis.call('HGET', base .. KEY_SKUS, sku)\n"         \
    "    if named and named ~= id then return SKU_TAKEN end\n"                                     \
    "    return '0'\n"                                                                             \
    "  end\n"                                                                                      \
    "  local at = string.find(view, '\"version\":', 1, true)\n"                                    \
    "  return at and string.match(view, '^%d+', at + 10) or '0', view, set\n"                      \
    "end\n" /* Writes the event at ARGV[i] over what stored_version found. */                      \
    "local function write_event(base, i, stored, view, set)\n"                                     \
    "  if stored == SKU_TAKEN then return end\n"                                                   \
    "  local id, sku, version = ARGV[i + 2], ARGV[i + 3], ARGV[i + 5]\n"                           \
    "  if ARGV[i + 1] == 'D' then\n"                                                               \
    "    if not decimal_above(stored, version) then\n"                                             \
    "      if view then redis.call('ZREM', base .. set, view) end\n"                               \
    "      if redis.call('HGET', base .. KEY_SKUS, sku) == id then\n"                              \
    "        redis.call('HDEL', base .. KEY_SKUS, sku)\n"                                          \
    "      end\n"                                                                                  \
    "    end\n"                                                                                    \
    "  elseif decimal_above(version, stored) then\n"                                               \
    "    if view then redis.call('ZREM', base .. set, view) end\n"                                 \
    "    local into = KEY_OUT_OF_STOCK\n"                                                          \
    "    if ARGV[i + 4] == '1' then into = KEY_IN_STOCK end\n"                                     \
    "    redis.call('ZADD', base .. into, '0', ARGV[i + 7])\n"                                     \
    "    redis.call('HSET', base .. KEY_SKUS, sku, id)\n"                                          \
    "  end\n"                                                                                      \
    "end\n" /* The keys every event may write, or the first that has the wrong type. */            \
    "local function shared_keys_broken(base)\n"                                                    \
    "  if not type_is(base .. KEY_IN_STOCK, 'zset') then return base .. KEY_IN_STOCK end\n"        \
    "  if not type_is(base .. KEY_OUT_OF_STOCK, 'zset') then return base .. KEY_OUT_OF_STOCK "     \
    "end\n"                                                                                        \
    "  if not type_is(base .. KEY_SKUS, 'hash') then return base .. KEY_SKUS end\n"                \
    "  if not type_is(base .. KEY_PARKED, 'hash') then return base .. KEY_PARKED end\n"            \
    "  return nil\n"                                                                               \
    "end\n"

/* A batch. ARGV after the guards: base ("{prefix}:g{N}:"), the seq the batch was read after
 * (the caller's idea of the checkpoint), the fingerprint of the log's event at that seq (""
 * to not check it), then EVENT_ARGS per event. When Redis is at that seq but names another
 * event there, the log went back in time under it (a backup restored): the script refuses
 * (DIVERGED), else the batch's events, seqs taken again, would land on the lost ones' views
 * and hide the difference from every later check.
 * Replies {checkpoint, stall, refusal, parked seq...}: "stall" is why it stopped before the
 * end of the batch ("" when it did not), "refusal" why the first event it parked cannot be
 * applied. */
static struct script APPLY_SCRIPT = SCRIPT(
    EVENT_LUA
    /* The parked queue an event must wait behind: its product's own (an unreadable event of
       that product) or its sku's. */
    "local function queue_waiting(base, id, sku)\n"
    "  if redis.call('HEXISTS', base .. KEY_PARKED, '#' .. id) == 1 then return '#' .. id end\n"
    "  if sku ~= '' and redis.call('HEXISTS', base .. KEY_PARKED, sku) == 1 then return sku end\n"
    "  return nil\n"
    "end\n"
    /* Writes a run of creates (products' first events, none waiting behind a parked event): one
       HMGET of their skus, then one ZADD per view set and one HSET for every view not there
       yet, where one by one each would take three calls; a call from Lua costs about a
       microsecond besides its work. A create whose view is there already (its sku entry names
       it) goes the general way; one whose sku entry names another product is passed over
       (SKU_TAKEN). The run's products are distinct, and so are their skus (a sku
       comes back only after a delete, which ends a run). */
    "local function write_creates(base, run)\n"
    "  local skus = {}\n"
    "  for k, i in ipairs(run) do skus[k] = ARGV[i + 3] end\n"
    "  local named = redis.call('HMGET', base .. KEY_SKUS, unpack(skus))\n"
    "  local members, entries = {[KEY_IN_STOCK] = {}, [KEY_OUT_OF_STOCK] = {}}, {}\n"
    "  for k, i in ipairs(run) do\n"
    "    if named[k] == ARGV[i + 2] then\n"
    "      write_event(base, i, stored_version(base, i))\n"
    "    elseif not named[k] then\n"
    "      local into = members[KEY_OUT_OF_STOCK]\n"
    "      if ARGV[i + 4] == '1' then into = members[KEY_IN_STOCK] end\n"
    "      into[#into + 1], into[#into + 2] = '0', ARGV[i + 7]\n"
    "      entries[#entries + 1], entries[#entries + 2] = ARGV[i + 3], ARGV[i + 2]\n"
    "    end\n"
    "  end\n"
    "  for set, list in pairs(members) do\n"
    "    if #list > 0 then redis.call('ZADD', base .. set, unpack(list)) end\n"
    "  end\n"
    "  if #entries > 0 then redis.call('HSET', base .. KEY_SKUS, unpack(entries)) end\n"
    "end\n"
    /* The events that the next event of the same product in this batch overwrites whole: an
       event carries its product's entire view, so where the next one is a view of a higher
       version with the same sku, writing it alone leaves Redis as writing both in turn would.
       catalogd's own log is always so (a product's events in version order); an entry
       written by something else that repeats an older version, or a delete, is written in
       turn. Only where nothing parks: with a parked queue, or an unreadable event that would
       park and hold its product's later events back, every event is written in turn. A batch
       of stock changes on a few hot products writes each product once. */
    "local function superseded_events(from, any_parked)\n"
    "  local superseded, last_of = {}, {}\n"
    "  if any_parked then return superseded end\n"
    "  for i = from, #ARGV, " EVENT_ARGS_TEXT " do\n"
    "    if ARGV[i + 1] == 'P' then return {} end\n"
    "    local earlier = last_of[ARGV[i + 2]]\n"
    "    if earlier and ARGV[earlier + 1] == 'U' and ARGV[i + 1] == 'U'\n"
    "        and ARGV[earlier + 3] == ARGV[i + 3]\n"
    "        and decimal_above(ARGV[i + 5], ARGV[earlier + 5]) then\n"
    "      superseded[earlier] = true\n"
    "    end\n"
    "    last_of[ARGV[i + 2]] = i\n"
    "  end\n"
    "  return superseded\n"
    "end\n"
    /* A queue's list and its count in KEY_PARKED change together, in one script: a list
       without a count is not one of ours (written by hand in a generation not built yet), and
       its seqs, read from the log, would apply events that are not this queue's. */
    "local function park(base, queue, seq)\n"
    "  local list = base .. KEY_PARKED_QUEUE .. queue\n"
    "  if not type_is(list, 'list') then return false end\n"
    "  if redis.call('HEXISTS', base .. KEY_PARKED, queue) == 0 then redis.call('DEL', list) end\n"
    "  redis.call('HSET', base .. KEY_PARKED, queue, redis.call('RPUSH', list, seq))\n"
    "  return true\n"
    "end\n"
    "local first, fenced = guards_hold()\n"
    "if not first then return redis.error_reply(fenced) end\n"
    "local base = ARGV[first]\n"
    "local checkpoint = redis.call('GET', base .. KEY_CHECKPOINT)\n"
    /* A checkpoint no script wrote ("abc", "05") is none: seqs are compared as text. */
    "if not checkpoint or not (checkpoint == '0' or string.match(checkpoint, '^[1-9]%d*$')) then\n"
    "  return redis.error_reply('NOCHECKPOINT the generation has no checkpoint')\n"
    "end\n"
    "if decimal_above(ARGV[first + 1], checkpoint) then\n"
    "  return redis.error_reply('GAP ' .. checkpoint)\n"
    "end\n"
    "local at = redis.call('GET', base .. KEY_CHECKPOINT_EVENT)\n"
    "if checkpoint == ARGV[first + 1] then\n"
    "  if ARGV[first + 2] ~= '' and at ~= ARGV[first + 2] then\n"
    "    return redis.error_reply('DIVERGED at seq ' .. checkpoint)\n"
    "  end\n"
    "else\n"
    /* Redis is ahead of where the batch was read (another instance applied further): the
       event there, if in the batch, must be the one Redis names. One beyond the batch is the
       caller's to check (apply.h). */
    "  for i = first + 3, #ARGV, " EVENT_ARGS_TEXT " do\n"
    "    if ARGV[i] == checkpoint and at ~= ARGV[i + 6] then\n"
    "      return redis.error_reply('DIVERGED at seq ' .. checkpoint)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local broken = shared_keys_broken(base)\n"
    "if broken then return redis.error_reply('STALLED ' .. broken .. ' has the wrong type') end\n"
    /* The script's first write, and one Redis refuses out of memory: it refuses a script only
       at its first write, so a Redis that refuses writes refuses the whole batch here,
       whatever the batch's first event writes (a ZREM alone would let the rest in). */
    "redis.call('SET', base .. KEY_CHECKPOINT, checkpoint)\n"
    "local any_parked = redis.call('EXISTS', base .. KEY_PARKED) == 1\n"
    "local superseded = superseded_events(first + 3, any_parked)\n"
    "local reply, last, creates = {0, '', ''}, nil, {}\n"
    "for i = first + 3, #ARGV, " EVENT_ARGS_TEXT " do\n"
    "  if decimal_above(ARGV[i], checkpoint) and superseded[i] then\n"
    "    checkpoint, last = ARGV[i], i\n"
    "  elseif decimal_above(ARGV[i], checkpoint) then\n"
    "    local id, sku, queue = ARGV[i + 2], ARGV[i + 3], nil\n"
    "    if ARGV[i + 1] ~= 'P' then queue = any_parked and queue_waiting(base, id, sku) end\n"
    "    if ARGV[i + 1] == 'U' and ARGV[i + 5] == '1' and not queue then\n"
    "      creates[#creates + 1] = i\n"
    "    else\n"
    /* Every event before this one is written before it is looked at. */
    "      if #creates > 0 then\n"
    "        write_creates(base, creates)\n"
    "        creates = {}\n"
    "      end\n"
    "      if ARGV[i + 1] == 'P' then\n"
    "        if sku == '' then\n"
    "          local view = view_of(base, id)\n"
    "          if view then sku = string.match(view, '\"sku\":\"([^\"]*)\"') or '' end\n"
    "        end\n"
    "        queue = any_parked and queue_waiting(base, id, sku)\n"
    "      end\n"
    "      local stored, view, set, refusal = nil, nil, nil, 'the log entry is not a valid event'\n"
    "      if not queue and ARGV[i + 1] ~= 'P' then\n"
    "        stored, view, set = stored_version(base, i)\n"
    "      end\n"
    "      if stored then\n"
    "        write_event(base, i, stored, view, set)\n"
    "      else\n"
    "        if not queue then\n"
    "          if sku ~= '' then queue = sku else queue = '#' .. id end\n"
    "          if reply[3] == '' then reply[3] = refusal end\n"
    "        end\n"
    "        if not park(base, queue, ARGV[i]) then\n"
    "          reply[2] = base .. KEY_PARKED_QUEUE .. queue .. ' has the wrong type'\n"
    "          break\n"
    "        end\n"
    "        any_parked = true\n"
    "        reply[#reply + 1] = ARGV[i]\n"
    "      end\n"
    "    end\n"
    "    checkpoint, last = ARGV[i], i\n"
    "  end\n"
    "end\n"
    "if #creates > 0 then write_creates(base, creates) end\n"
    "if last then\n"
    "  redis.call('SET', base .. KEY_CHECKPOINT, checkpoint)\n"
    "  redis.call('SET', base .. KEY_CHECKPOINT_EVENT, ARGV[last + 6])\n"
    "end\n"
    "reply[1] = checkpoint\n"
    "return reply\n");

/* Applies a parked event if it is the oldest of its queue. ARGV after the guards: base, the
 * queue, then the event's EVENT_ARGS. Returns the events still in the queue. */
static struct script UNPARK_SCRIPT = SCRIPT(
    EVENT_LUA
    "local first, fenced = guards_hold()\n"
    "if not first then return redis.error_reply(fenced) end\n"
    "local base, queue, i = ARGV[first], ARGV[first + 1], first + 2\n"
    "local list = base .. KEY_PARKED_QUEUE .. queue\n"
    "if redis.call('LINDEX', list, 0) ~= ARGV[i] then\n"
    "  return redis.error_reply('NOTHEAD the event is not the oldest of its queue')\n"
    "end\n"
    "local broken = shared_keys_broken(base)\n"
    "if broken then return redis.error_reply('STALLED ' .. broken .. ' has the wrong type') end\n"
    /* The first write, refused out of memory before the event is touched (APPLY_SCRIPT). */
    "redis.call('HSET', base .. KEY_PARKED, queue, redis.call('LLEN', list))\n"
    "write_event(base, i, stored_version(base, i))\n"
    "redis.call('LPOP', list)\n"
    "local left = redis.call('LLEN', list)\n"
    "if left == 0 then redis.call('HDEL', base .. KEY_PARKED, queue)\n"
    "else redis.call('HSET', base .. KEY_PARKED, queue, left) end\n"
    "return left\n");

static void copy_id(const char *text, char out[UUID_TEXT_LEN + 1])
{
    size_t len = text ? strlen(text) : 0;
    if (len == UUID_TEXT_LEN && uuid_check_canonical(text, len) == 0)
        memcpy(out, text, UUID_TEXT_LEN + 1);
    else
        snprintf(out, UUID_TEXT_LEN + 1, "%s", "unreadable-product-id");
}

/* Whether "payload", which view_parse read as "fields", is written the way view_encode writes
 * it where the read model relies on that: it becomes a member of a view set, whose order is
 * its leading {"id":"<id>","sku":"<sku>", (readmodel/layout.h), and the scripts read its sku
 * and version by those exact bytes. A valid view written by another tool (spaces, another key
 * order) is refused like any log entry that is not an event, rather than stored where no id
 * range finds it. */
static int in_view_form(const char *payload, size_t len, const struct view_fields *fields)
{
    char head[VIEW_ID_OFFSET + UUID_TEXT_LEN + PRODUCT_SKU_MAX + 16];
    int head_len =
        snprintf(head, sizeof(head), "{\"id\":\"%s\",\"sku\":\"%s\",", fields->id, fields->sku);
    return head_len > 0 && (size_t)head_len < sizeof(head) && len > (size_t)head_len &&
           memcmp(payload, head, (size_t)head_len) == 0 &&
           view_version(payload, len) == fields->version;
}

/* Is "text" a nonce as the writer makes them? */
static int is_nonce(const char *text)
{
    size_t len = text ? strlen(text) : 0;
    if (len != EVENT_NONCE_LEN) return 0;
    for (size_t i = 0; i < len; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f'))) return 0;
    return 1;
}

/* What names an entry of the log, whether or not it is a valid event: its seq, version, time
 * and nonce, and its product's id. A valid event's id is its view's, which is the row's
 * (checked below), so the row's names it too. A nonce no writer made (a row written by hand)
 * is none. */
static void take_identity(const struct store_event *event, struct apply_event *out)
{
    memset(out, 0, sizeof(*out));
    out->seq = event->seq;
    out->version = event->version;
    snprintf(out->recorded_at, sizeof(out->recorded_at), "%s",
             event->recorded_at ? event->recorded_at : "");
    if (is_nonce(event->nonce)) memcpy(out->nonce, event->nonce, sizeof(out->nonce));
    copy_id(event->product_id, out->id);
}

int apply_event_from_store(const struct store_event *event, struct apply_event *out)
{
    struct view_fields fields;
    take_identity(event, out);
    int type = event->type ? event_type_from_name(event->type) : -1;
    if (type < 0 || !event->payload ||
        view_parse(event->payload, event->payload_len, &fields) < 0 || !event->product_id ||
        strcmp(fields.id, event->product_id) != 0 || fields.version != event->version ||
        !in_view_form(event->payload, event->payload_len, &fields)) {
        out->kind = APPLY_POISON;
        return -1;
    }
    out->kind = type == EVENT_PRODUCT_DELETED ? APPLY_DELETE : APPLY_UPSERT;
    memcpy(out->sku, fields.sku, sizeof(out->sku));
    out->in_stock = fields.stock > 0;
    out->view = xmalloc(event->payload_len);
    memcpy(out->view, event->payload, event->payload_len);
    out->view_len = event->payload_len;
    return 0;
}

void apply_poison_sku(struct store *store, struct apply_event *event)
{
    struct product product;
    if (store_get_product(store, event->id, &product) == STORE_OK)
        memcpy(event->sku, product.sku, sizeof(event->sku));
}

void apply_event_from_product(int64_t seq, int deleted, const struct product *product,
                              const char *view, size_t view_len, const char *nonce,
                              struct apply_event *out)
{
    memset(out, 0, sizeof(*out));
    out->seq = seq;
    out->kind = deleted ? APPLY_DELETE : APPLY_UPSERT;
    memcpy(out->id, product->id, sizeof(out->id));
    memcpy(out->sku, product->sku, sizeof(out->sku));
    out->in_stock = product->stock > 0;
    out->version = product->version;
    /* The writer records every event at its product's updated_at (writer.c new_event). */
    memcpy(out->recorded_at, product->updated_at, sizeof(out->recorded_at));
    snprintf(out->nonce, sizeof(out->nonce), "%s", nonce);
    out->view = xmalloc(view_len);
    memcpy(out->view, view, view_len);
    out->view_len = view_len;
}

void apply_event_clear(struct apply_event *event)
{
    free(event->view);
    event->view = NULL;
}

void apply_event_fingerprint(const struct apply_event *event, char out[APPLY_FINGERPRINT_MAX])
{
    /* Built by hand: it is made for every event the writer hands over, where a snprintf
     * would cost more than the rest of the handover. */
    size_t id_len = strnlen(event->id, UUID_TEXT_LEN);
    size_t at_len = strnlen(event->recorded_at, TIMESTAMP_LEN);
    memcpy(out, event->id, id_len);
    size_t n = id_len;
    out[n++] = ' ';
    n += digits_i64(out + n, event->version);
    out[n++] = ' ';
    memcpy(out + n, event->recorded_at, at_len);
    n += at_len;
    if (event->nonce[0] != '\0') {
        out[n++] = ' ';
        memcpy(out + n, event->nonce, EVENT_NONCE_LEN);
        n += EVENT_NONCE_LEN;
    }
    out[n] = '\0';
}

struct fingerprint_at {
    int64_t seq;
    char *out;
    int found;
};

static int take_fingerprint(const struct store_event *event, void *arg)
{
    struct fingerprint_at *at = arg;
    if (event->seq == at->seq) {
        struct apply_event identity;
        take_identity(event, &identity);
        apply_event_fingerprint(&identity, at->out);
        at->found = 1;
    }
    return 1; /* one is all we asked for */
}

int apply_log_fingerprint(struct store *store, int64_t seq, char out[APPLY_FINGERPRINT_MAX])
{
    struct fingerprint_at at = {seq, out, 0};
    out[0] = '\0';
    if (store_read_events(store, seq - 1, 1, take_fingerprint, &at) < 0) return -1;
    return at.found;
}

/* The text of an event's arguments not kept in it, kept while the script's arguments point at
 * them. */
struct event_texts {
    char seq[DIGITS_U64_MAX + 2];
    char version[DIGITS_U64_MAX + 2];
    char kind[2];
    char fingerprint[APPLY_FINGERPRINT_MAX];
};

/* Appends the EVENT_ARGS arguments of "e" at argv[*n]. */
static void push_event_args(const struct apply_event *e, struct event_texts *texts,
                            const char **argv, size_t *lens, size_t *n)
{
    size_t seq_len = digits_i64(texts->seq, e->seq);
    size_t version_len = digits_i64(texts->version, e->version);
    texts->kind[0] = (char)e->kind;
    texts->kind[1] = '\0';
    apply_event_fingerprint(e, texts->fingerprint);
    const char *fields[EVENT_ARGS] = {texts->seq,
                                      texts->kind,
                                      e->id,
                                      e->sku,
                                      e->in_stock ? "1" : "0",
                                      texts->version,
                                      texts->fingerprint,
                                      e->view ? e->view : ""};
    size_t field_lens[EVENT_ARGS] = {
        seq_len,    1, strlen(e->id), strlen(e->sku), 1, version_len, strlen(texts->fingerprint),
        e->view_len};
    for (size_t f = 0; f < EVENT_ARGS; f++) {
        argv[*n] = fields[f];
        lens[(*n)++] = field_lens[f];
    }
}

/* Classifies a script's error reply (or the lack of one). */
static int error_status(redisReply *reply, struct apply_result *result, char *err, size_t errlen)
{
    if (!reply) return APPLY_REDIS_DOWN; /* "err" says why already */
    if (reply->type != REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "unexpected reply type %d from an apply script", reply->type);
        return APPLY_STALLED;
    }
    snprintf(err, errlen, "Redis: %.*s", (int)reply->len, reply->str);
    static const struct {
        const char *prefix;
        int status;
    } KNOWN[] = {
        {"FENCED", APPLY_FENCED},     {"NOCHECKPOINT", APPLY_NO_CHECKPOINT}, {"GAP", APPLY_GAP},
        {"DIVERGED", APPLY_DIVERGED}, {"NOTHEAD", APPLY_NOT_HEAD},
    };
    for (size_t i = 0; i < sizeof(KNOWN) / sizeof(KNOWN[0]); i++) {
        if (strncmp(reply->str, KNOWN[i].prefix, strlen(KNOWN[i].prefix)) != 0) continue;
        if (KNOWN[i].status == APPLY_GAP && result)
            result->checkpoint = strtoll(reply->str + 4, NULL, 10);
        return KNOWN[i].status;
    }
    return APPLY_STALLED; /* OOM, a shared key of the wrong type, READONLY, NOPERM... */
}

static int64_t integer_of(const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_INTEGER) return reply->integer;
    if (reply->type == REDIS_REPLY_STRING) return strtoll(reply->str, NULL, 10);
    return -1;
}

/* Reads {checkpoint, stall, refusal, parked seq...}. */
static int read_apply_reply(const redisReply *reply, struct apply_result *result, char *err,
                            size_t errlen)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[1]->type != REDIS_REPLY_STRING ||
        reply->element[2]->type != REDIS_REPLY_STRING || reply->elements - 3 > APPLY_BATCH_MAX) {
        snprintf(err, errlen, "unexpected reply from the apply script");
        return APPLY_STALLED;
    }
    result->checkpoint = integer_of(reply->element[0]);
    snprintf(result->refusal, sizeof(result->refusal), "%s", reply->element[2]->str);
    for (size_t i = 3; i < reply->elements; i++)
        result->parked[result->parked_count++] = integer_of(reply->element[i]);
    if (reply->element[1]->len == 0) return APPLY_OK;
    snprintf(err, errlen, "cannot park an event: %s", reply->element[1]->str);
    return APPLY_STALLED;
}

int apply_events(struct redis_sync *redis, const struct apply_target *target, int64_t read_after,
                 const char *event_after, const struct apply_event *events, size_t count,
                 struct apply_result *result, char *err, size_t errlen)
{
    char base[LAYOUT_BASE_MAX], after_text[DIGITS_U64_MAX + 2];
    size_t argc = 3 + EVENT_ARGS * count;
    const char **argv = xmalloc(argc * sizeof(*argv));
    size_t *lens = xmalloc(argc * sizeof(*lens));
    struct event_texts *texts = xmalloc((count ? count : 1) * sizeof(*texts));
    memset(result, 0, sizeof(*result));
    result->checkpoint = -1;
    size_t n = 0;
    argv[n] = base;
    lens[n++] = layout_base(target->prefix, target->gen, base, sizeof(base));
    argv[n] = after_text;
    lens[n++] = digits_i64(after_text, read_after);
    argv[n] = event_after ? event_after : "";
    lens[n] = strlen(argv[n]);
    n++;
    for (size_t i = 0; i < count; i++)
        push_event_args(&events[i], &texts[i], argv, lens, &n);
    redisReply *reply = redis_sync_script(redis, &APPLY_SCRIPT, target->guards, target->guard_count,
                                          n, argv, lens, err, errlen);
    int rc = reply && reply->type != REDIS_REPLY_ERROR
                 ? read_apply_reply(reply, result, err, errlen)
                 : error_status(reply, result, err, errlen);
    freeReplyObject(reply);
    free(argv);
    free(lens);
    free(texts);
    return rc;
}

int apply_unpark(struct redis_sync *redis, const struct apply_target *target, const char *queue,
                 const struct apply_event *event, int64_t *still_parked, char *err, size_t errlen)
{
    char base[LAYOUT_BASE_MAX];
    struct event_texts texts;
    const char *argv[2 + EVENT_ARGS];
    size_t lens[2 + EVENT_ARGS], n = 0;
    argv[n] = base;
    lens[n++] = layout_base(target->prefix, target->gen, base, sizeof(base));
    argv[n] = queue;
    lens[n++] = strlen(queue);
    push_event_args(event, &texts, argv, lens, &n);
    redisReply *reply = redis_sync_script(redis, &UNPARK_SCRIPT, target->guards,
                                          target->guard_count, n, argv, lens, err, errlen);
    int rc;
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        *still_parked = reply->integer;
        rc = APPLY_OK;
    } else {
        rc = error_status(reply, NULL, err, errlen);
    }
    freeReplyObject(reply);
    return rc;
}

int apply_list_parked(struct redis_sync *redis, const struct apply_target *target,
                      int (*fn)(const char *queue, int64_t seq, void *arg), void *arg,
                      int64_t *parked_events, char *err, size_t errlen)
{
    char base[LAYOUT_BASE_MAX], key[LAYOUT_KEY_MAX];
    layout_base(target->prefix, target->gen, base, sizeof(base));
    layout_key(KEY_PARKED, base, NULL, 0, key, sizeof(key));
    const char *argv[] = {"HKEYS", key};
    redisReply *queues = redis_sync_command(redis, 2, argv, NULL, err, errlen);
    if (!queues) return redis_sync_broken(redis) ? APPLY_REDIS_DOWN : APPLY_STALLED;
    *parked_events = 0;
    int rc = queues->type == REDIS_REPLY_ARRAY ? APPLY_OK : APPLY_STALLED;
    for (size_t i = 0; rc == APPLY_OK && i < queues->elements; i++) {
        const redisReply *queue = queues->element[i];
        if (queue->type != REDIS_REPLY_STRING ||
            !layout_key(KEY_PARKED_QUEUE, base, queue->str, queue->len, key, sizeof(key)))
            continue; /* not a queue catalogd could have made */
        const char *range[] = {"LRANGE", key, "0", "-1"};
        redisReply *seqs = redis_sync_command(redis, 4, range, NULL, err, errlen);
        if (!seqs) {
            rc = redis_sync_broken(redis) ? APPLY_REDIS_DOWN : APPLY_STALLED;
            break;
        }
        *parked_events += (int64_t)seqs->elements;
        for (size_t j = 0; fn && j < seqs->elements; j++)
            if (fn(queue->str, integer_of(seqs->element[j]), arg))
                break; /* the rest of this queue waits behind the one that failed */
        freeReplyObject(seqs);
    }
    freeReplyObject(queues);
    return rc;
}

int apply_read_checkpoint(struct redis_sync *redis, const char *prefix, int64_t gen,
                          int64_t *checkpoint, char *fingerprint, size_t cap, char *err,
                          size_t errlen)
{
    char base[LAYOUT_BASE_MAX], checkpoint_key[LAYOUT_KEY_MAX], event_key[LAYOUT_KEY_MAX];
    layout_base(prefix, gen, base, sizeof(base));
    layout_key(KEY_CHECKPOINT, base, NULL, 0, checkpoint_key, sizeof(checkpoint_key));
    layout_key(KEY_CHECKPOINT_EVENT, base, NULL, 0, event_key, sizeof(event_key));
    const char *argv[] = {"MGET", checkpoint_key, event_key};
    redisReply *reply = redis_sync_command(redis, 3, argv, NULL, err, errlen);
    if (!reply) return -1;
    int rc = -1;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        snprintf(err, errlen, "unexpected reply to MGET of the checkpoint");
    } else if (reply->element[0]->type != REDIS_REPLY_STRING) {
        rc = 1;
    } else {
        /* Anything but a seq as the scripts write it (digits, no leading zero: they compare
         * seqs as text) is no checkpoint, and the generation is rebuilt. */
        const redisReply *text = reply->element[0];
        rc = digits_parse_canonical(text->str, text->len, 0, INT64_MAX, checkpoint) == 0 ? 0 : 1;
        const redisReply *stored = reply->element[1];
        snprintf(fingerprint, cap, "%s", stored->type == REDIS_REPLY_STRING ? stored->str : "");
    }
    freeReplyObject(reply);
    return rc;
}
