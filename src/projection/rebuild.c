/* rebuild.c - snapshot, catch up, switch. See rebuild.h for the guarantees. */
#include "projection/rebuild.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/xmalloc.h"
#include "domain/view.h"
#include "projection/apply.h"
#include "projection/layout.h"
#include "projection/redis_sync.h"

#define SNAPSHOT_PAGE       1000
#define CATCH_UP_BATCH      512
#define LOCK_TTL_MS         "60000"
#define MAX_SWITCH_ATTEMPTS 1000

/* Hands out a generation number above both the counter and the current generation. */
static const char NEW_GENERATION_SCRIPT[] =
    "local current = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local n = redis.call('INCR', KEYS[2])\n"
    "if n <= current then n = current + 1; redis.call('SET', KEYS[2], n) end\n"
    "return n\n";

/* Switches KEYS[1] (gen) to ARGV[1] once the new generation has applied at least what the
 * current one has. Returns the old generation (0 if none), or -1 when not caught up yet. */
static const char SWITCH_SCRIPT[] =
    "local current = redis.call('GET', KEYS[1])\n"
    "if current then\n"
    "  local theirs = tonumber(redis.call('GET', ARGV[2] .. current .. ':checkpoint') or '0')\n"
    "  if tonumber(ARGV[3]) < theirs then return -1 end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "return tonumber(current or '0')\n";

static const char UNLOCK_SCRIPT[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

struct event_batch {
    struct apply_event events[CATCH_UP_BATCH];
    size_t count;
    int corrupt;
};

struct rebuild {
    struct store *store;
    redisContext *redis;
    const char *prefix;
    char base[LAYOUT_BASE_MAX];
    char lock_key[LAYOUT_KEY_MAX];
    char token[33];
    char last_id[UUID_TEXT_LEN + 1];
    int64_t products;
    int pipelined; /* replies owed by Redis for the current page */
    struct event_batch *batch;
    struct page_commands *page;
    char *err;
    size_t errlen;
};

static int command_ok(struct rebuild *r, int argc, const char **argv)
{
    redisReply *reply = redis_sync_command(r->redis, argc, argv, NULL, r->err, r->errlen);
    if (!reply) return -1;
    freeReplyObject(reply);
    return 0;
}

static int eval_integer(struct rebuild *r, int argc, const char **argv, long long *out)
{
    redisReply *reply = redis_sync_command(r->redis, argc, argv, NULL, r->err, r->errlen);
    if (!reply) return -1;
    int rc = reply->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (rc == 0)
        *out = reply->integer;
    else
        snprintf(r->err, r->errlen, "unexpected reply to a rebuild script");
    freeReplyObject(reply);
    return rc;
}

static int take_lock(struct rebuild *r)
{
    uint8_t random[16];
    if (getrandom(random, sizeof(random), 0) != sizeof(random)) return -1;
    for (int i = 0; i < 16; i++)
        snprintf(r->token + 2 * i, 3, "%02x", random[i]);
    const char *argv[] = {"SET", r->lock_key, r->token, "NX", "PX", LOCK_TTL_MS};
    redisReply *reply = redis_sync_command(r->redis, 6, argv, NULL, r->err, r->errlen);
    if (!reply) return REBUILD_FAILED;
    int taken = reply->type == REDIS_REPLY_STATUS;
    freeReplyObject(reply);
    if (!taken) snprintf(r->err, r->errlen, "another rebuild is running");
    return taken ? 0 : REBUILD_BUSY;
}

static void release_lock(struct rebuild *r)
{
    const char *argv[] = {"EVAL", UNLOCK_SCRIPT, "1", r->lock_key, r->token};
    char ignored[64];
    redisReply *reply = redis_sync_command(r->redis, 5, argv, NULL, ignored, sizeof(ignored));
    freeReplyObject(reply);
}

static int refresh_lock(struct rebuild *r)
{
    const char *argv[] = {"PEXPIRE", r->lock_key, LOCK_TTL_MS};
    return command_ok(r, 3, argv);
}

/* A page of the snapshot as three variadic commands: MSET of views and sku entries, ZADD of
 * every id to "all", ZADD of the ids in stock to "in_stock". A few commands per thousand
 * products instead of four per product keeps Redis' per-command cost out of the rebuild. */
struct page_commands {
    char *arena; /* keys and views of the page */
    size_t used, cap;
    const char **mset, **all, **in_stock;
    size_t *mset_len, *all_len, *in_stock_len;
    int mset_count, all_count, in_stock_count;
};

static struct page_commands *page_commands_new(void)
{
    struct page_commands *c = xcalloc(1, sizeof(*c));
    c->cap = (size_t)SNAPSHOT_PAGE * (VIEW_MAX + 2 * LAYOUT_KEY_MAX + UUID_TEXT_LEN);
    c->arena = xmalloc(c->cap);
    size_t args = 2 + 4 * (size_t)SNAPSHOT_PAGE;
    c->mset = xmalloc(args * sizeof(*c->mset));
    c->all = xmalloc(args * sizeof(*c->all));
    c->in_stock = xmalloc(args * sizeof(*c->in_stock));
    c->mset_len = xmalloc(args * sizeof(*c->mset_len));
    c->all_len = xmalloc(args * sizeof(*c->all_len));
    c->in_stock_len = xmalloc(args * sizeof(*c->in_stock_len));
    return c;
}

static void page_commands_free(struct page_commands *c)
{
    if (!c) return;
    free(c->arena);
    free(c->mset);
    free(c->all);
    free(c->in_stock);
    free(c->mset_len);
    free(c->all_len);
    free(c->in_stock_len);
    free(c);
}

/* Starts a page: the command names and set keys, stored in the arena. */
static void page_start(struct page_commands *c, const char *base)
{
    c->used = 0;
    c->mset[0] = "MSET";
    c->mset_len[0] = 4;
    c->mset_count = 1;
    const char *names[] = {"all", "in_stock"};
    const char **argvs[] = {c->all, c->in_stock};
    size_t *lens[] = {c->all_len, c->in_stock_len};
    for (int i = 0; i < 2; i++) {
        char *key = c->arena + c->used;
        size_t n = (size_t)snprintf(key, LAYOUT_KEY_MAX, "%s%s", base, names[i]);
        c->used += n;
        argvs[i][0] = "ZADD";
        lens[i][0] = 4;
        argvs[i][1] = key;
        lens[i][1] = n;
    }
    c->all_count = c->in_stock_count = 2;
}

/* Copies "n" bytes into the arena and returns where. */
static const char *page_keep(struct page_commands *c, const char *bytes, size_t n)
{
    char *at = c->arena + c->used;
    memcpy(at, bytes, n);
    c->used += n;
    return at;
}

static void push(const char **argv, size_t *lens, int *count, const char *arg, size_t n)
{
    argv[*count] = arg;
    lens[(*count)++] = n;
}

/* Adds one product's view and index entries to the page. */
static int queue_product(const struct product *p, void *arg)
{
    struct rebuild *r = arg;
    struct page_commands *c = r->page;
    char text[VIEW_MAX];
    size_t n = (size_t)snprintf(text, sizeof(text), "%sp:%s", r->base, p->id);
    push(c->mset, c->mset_len, &c->mset_count, page_keep(c, text, n), n);
    n = view_encode(p, text, sizeof(text));
    push(c->mset, c->mset_len, &c->mset_count, page_keep(c, text, n), n);
    n = (size_t)snprintf(text, sizeof(text), "%ssku:%s", r->base, p->sku);
    push(c->mset, c->mset_len, &c->mset_count, page_keep(c, text, n), n);
    const char *id = page_keep(c, p->id, UUID_TEXT_LEN);
    push(c->mset, c->mset_len, &c->mset_count, id, UUID_TEXT_LEN);
    push(c->all, c->all_len, &c->all_count, "0", 1);
    push(c->all, c->all_len, &c->all_count, id, UUID_TEXT_LEN);
    if (p->stock > 0) {
        push(c->in_stock, c->in_stock_len, &c->in_stock_count, "0", 1);
        push(c->in_stock, c->in_stock_len, &c->in_stock_count, id, UUID_TEXT_LEN);
    }
    memcpy(r->last_id, p->id, sizeof(r->last_id));
    r->products++;
    return 0;
}

/* Sends the page's commands (none for an empty page). */
static void page_send(struct rebuild *r)
{
    struct page_commands *c = r->page;
    if (c->mset_count > 1) {
        redisAppendCommandArgv(r->redis, c->mset_count, c->mset, c->mset_len);
        redisAppendCommandArgv(r->redis, c->all_count, c->all, c->all_len);
        r->pipelined += 2;
    }
    if (c->in_stock_count > 2) {
        redisAppendCommandArgv(r->redis, c->in_stock_count, c->in_stock, c->in_stock_len);
        r->pipelined++;
    }
}

/* Reads every reply owed for the page; the first failure fails the page. */
static int collect_replies(struct rebuild *r)
{
    int rc = 0;
    for (; r->pipelined > 0; r->pipelined--) {
        void *reply = NULL;
        if (redisGetReply(r->redis, &reply) != REDIS_OK) {
            snprintf(r->err, r->errlen, "Redis: %s", r->redis->errstr);
            return -1; /* the connection is unusable; stop reading */
        }
        redisReply *typed = reply;
        if (typed->type == REDIS_REPLY_ERROR && rc == 0) {
            snprintf(r->err, r->errlen, "Redis refused a rebuild write: %s", typed->str);
            rc = -1;
        }
        freeReplyObject(reply);
    }
    return rc;
}

static int write_snapshot(struct rebuild *r, int64_t *head_seq)
{
    if (store_snapshot_begin(r->store, head_seq) < 0) {
        snprintf(r->err, r->errlen, "%s", store_errmsg(r->store));
        return -1;
    }
    int rc = 0, visited;
    r->last_id[0] = '\0';
    do {
        page_start(r->page, r->base);
        visited = store_scan_products(r->store, r->last_id, SNAPSHOT_PAGE, queue_product, r);
        if (visited < 0) snprintf(r->err, r->errlen, "%s", store_errmsg(r->store));
        page_send(r);
        if (collect_replies(r) < 0 || visited < 0 || refresh_lock(r) < 0) rc = -1;
    } while (rc == 0 && visited == SNAPSHOT_PAGE);
    store_snapshot_end(r->store);
    if (rc < 0) return -1;

    char key[LAYOUT_KEY_MAX], seq[24];
    snprintf(key, sizeof(key), "%scheckpoint", r->base);
    snprintf(seq, sizeof(seq), "%" PRId64, *head_seq);
    const char *argv[] = {"SET", key, seq};
    return command_ok(r, 3, argv);
}

static int collect_event(const struct store_event *event, void *arg)
{
    struct event_batch *batch = arg;
    if (apply_event_from_store(event, &batch->events[batch->count]) < 0) {
        batch->corrupt = 1;
        return 1;
    }
    batch->count++;
    return 0;
}

/* Applies the events after "*checkpoint" to the new generation. Returns how many, or -1. */
static int catch_up(struct rebuild *r, int64_t gen, int64_t *checkpoint)
{
    struct event_batch *batch = r->batch;
    batch->count = 0;
    batch->corrupt = 0;
    int visited = store_read_events(r->store, *checkpoint, CATCH_UP_BATCH, collect_event, batch);
    int rc = 0;
    if (visited < 0 || batch->corrupt) {
        snprintf(r->err, r->errlen, "%s",
                 visited < 0 ? store_errmsg(r->store) : "an event payload is not a view");
        rc = -1;
    } else if (batch->count > 0 && apply_events(r->redis, r->prefix, gen, 0, batch->events,
                                                batch->count, checkpoint, r->err, r->errlen) < 0) {
        rc = -1;
    }
    for (size_t i = 0; i < batch->count; i++)
        apply_event_clear(&batch->events[i]);
    return rc < 0 ? -1 : (int)batch->count;
}

static int switch_generation(struct rebuild *r, int64_t gen, int64_t checkpoint, long long *old_gen)
{
    char gen_key[LAYOUT_KEY_MAX], gen_text[24], cp_text[24], gen_prefix[LAYOUT_KEY_MAX];
    layout_global_key(r->prefix, "gen", gen_key, sizeof(gen_key));
    snprintf(gen_prefix, sizeof(gen_prefix), "%s:g", r->prefix);
    snprintf(gen_text, sizeof(gen_text), "%" PRId64, gen);
    snprintf(cp_text, sizeof(cp_text), "%" PRId64, checkpoint);
    const char *argv[] = {"EVAL", SWITCH_SCRIPT, "1", gen_key, gen_text, gen_prefix, cp_text};
    return eval_integer(r, 7, argv, old_gen);
}

static int build_and_switch(struct rebuild *r, struct rebuild_result *result)
{
    char gen_key[LAYOUT_KEY_MAX], counter_key[LAYOUT_KEY_MAX];
    layout_global_key(r->prefix, "gen", gen_key, sizeof(gen_key));
    layout_global_key(r->prefix, "gen-counter", counter_key, sizeof(counter_key));
    const char *argv[] = {"EVAL", NEW_GENERATION_SCRIPT, "2", gen_key, counter_key};
    long long gen;
    if (eval_integer(r, 5, argv, &gen) < 0) return -1;
    layout_generation_base(r->prefix, gen, r->base, sizeof(r->base));

    int64_t checkpoint;
    if (write_snapshot(r, &checkpoint) < 0) goto abandon;
    for (int attempt = 0; attempt < MAX_SWITCH_ATTEMPTS; attempt++) {
        int applied;
        while ((applied = catch_up(r, gen, &checkpoint)) > 0)
            ;
        if (applied < 0) goto abandon;
        long long old_gen;
        if (switch_generation(r, gen, checkpoint, &old_gen) < 0) goto abandon;
        if (old_gen >= 0) {
            result->generation = gen;
            result->old_generation = old_gen;
            result->products = r->products;
            result->checkpoint = checkpoint;
            return 0;
        }
        /* The live projector applied events our snapshot reader has not seen yet. */
        refresh_lock(r);
    }
    snprintf(r->err, r->errlen, "the new generation could not catch up with the live one");
abandon : {
    /* Keep the error that brought us here; dropping is best effort. */
    char ignored[128];
    rebuild_drop_generation(r->redis, r->prefix, gen, ignored, sizeof(ignored));
    return -1;
}
}

int rebuild_run(struct store *store, redisContext *redis, const char *prefix,
                void (*on_locked)(void *arg), void *arg, struct rebuild_result *result, char *err,
                size_t errlen)
{
    struct rebuild r = {
        .store = store, .redis = redis, .prefix = prefix, .err = err, .errlen = errlen};
    memset(result, 0, sizeof(*result));
    layout_global_key(prefix, "rebuild-lock", r.lock_key, sizeof(r.lock_key));
    int rc = take_lock(&r);
    if (rc != 0) return rc;
    if (on_locked) on_locked(arg);
    r.batch = xmalloc(sizeof(*r.batch));
    r.page = page_commands_new();
    rc = build_and_switch(&r, result) == 0 ? REBUILD_OK : REBUILD_FAILED;
    page_commands_free(r.page);
    free(r.batch);
    release_lock(&r);
    return rc;
}

int rebuild_drop_generation(redisContext *redis, const char *prefix, int64_t gen, char *err,
                            size_t errlen)
{
    long long current = 0;
    char gen_key[LAYOUT_KEY_MAX], pattern[LAYOUT_KEY_MAX];
    layout_global_key(prefix, "gen", gen_key, sizeof(gen_key));
    if (redis_sync_get_int(redis, gen_key, &current, err, errlen) < 0) return -1;
    if (current == gen) {
        snprintf(err, errlen, "generation %" PRId64 " is current", gen);
        return -1;
    }
    layout_generation_base(prefix, gen, pattern, sizeof(pattern) - 1);
    strcat(pattern, "*");
    char cursor[32] = "0";
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        redisReply *reply = redis_sync_command(redis, 6, argv, NULL, err, errlen);
        if (!reply) return -1;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(reply);
            snprintf(err, errlen, "unexpected SCAN reply");
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", reply->element[0]->str);
        redisReply *keys = reply->element[1];
        if (keys->elements > 0) {
            const char **unlink_argv = xmalloc((keys->elements + 1) * sizeof(*unlink_argv));
            size_t *lengths = xmalloc((keys->elements + 1) * sizeof(*lengths));
            unlink_argv[0] = "UNLINK";
            lengths[0] = 6;
            for (size_t i = 0; i < keys->elements; i++) {
                unlink_argv[i + 1] = keys->element[i]->str;
                lengths[i + 1] = keys->element[i]->len;
            }
            redisReply *done = redis_sync_command(redis, (int)keys->elements + 1, unlink_argv,
                                                  lengths, err, errlen);
            free(unlink_argv);
            free(lengths);
            if (!done) {
                freeReplyObject(reply);
                return -1;
            }
            freeReplyObject(done);
        }
        freeReplyObject(reply);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}
