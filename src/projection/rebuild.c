/* rebuild.c - snapshot, catch up, switch. See rebuild.h for the guarantees. */
#include "projection/rebuild.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/digits.h"
#include "common/slice.h"
#include "common/xmalloc.h"
#include "domain/view.h"
#include "projection/apply.h"
#include "projection/generations.h"
#include "projection/rebuild_lock.h"
#include "projection/redis_sync.h"
#include "readmodel/layout.h"

#define SNAPSHOT_PAGE       1000
#define MAX_SWITCH_ATTEMPTS 1000

/* One page of the snapshot: a ZADD to each view set and an HSET of the sku entries, fenced by
 * the lock. A few commands per thousand products instead of a few per product keeps Redis'
 * per-command cost out of the rebuild. ARGV after the guards: the in-stock set, the
 * out-of-stock set and the skus hash, then a run of arguments for each, each run preceded by
 * its length. */
static struct script PAGE_SCRIPT =
    SCRIPT("local first, fenced = guards_hold()\n"
           "if not first then return redis.error_reply(fenced) end\n"
           "local i = first + 3\n"
           "local function run(command, key)\n"
           "  local n = tonumber(ARGV[i])\n"
           "  if n > 0 then redis.call(command, key, unpack(ARGV, i + 1, i + n)) end\n"
           "  i = i + n + 1\n"
           "end\n"
           "run('ZADD', ARGV[first])\n"
           "run('ZADD', ARGV[first + 1])\n"
           "run('HSET', ARGV[first + 2])\n"
           "return 1\n");

/* Sets the snapshot's checkpoint and its fingerprint. ARGV after the guards: the base, the
 * checkpoint, the fingerprint. */
static struct script CHECKPOINT_SCRIPT =
    SCRIPT("local first, fenced = guards_hold()\n"
           "if not first then return redis.error_reply(fenced) end\n"
           "redis.call('SET', ARGV[first] .. KEY_CHECKPOINT, ARGV[first + 1])\n"
           "redis.call('SET', ARGV[first] .. KEY_CHECKPOINT_EVENT, ARGV[first + 2])\n"
           "return 1\n");

/* Switches the generation queries read to the new one and retires the old one (stamped with
 * Redis' clock), if the new one is whole and not behind. ARGV after the guards: the gen key,
 * the registry key, "{prefix}:g" (the start of every generation's base), the new generation,
 * its checkpoint, and the generation it replaces whatever its checkpoint ("" for an ordinary
 * rebuild). Returns the old generation (0 if none), or -1 when the new one is behind. */
static struct script SWITCH_SCRIPT = SCRIPT(
    "local first, fenced = guards_hold()\n"
    "if not first then return redis.error_reply(fenced) end\n"
    "local gen_key, registry, gen_start = ARGV[first], ARGV[first + 1], ARGV[first + 2]\n"
    "local new_gen, new_checkpoint, replace = ARGV[first + 3], ARGV[first + 4], ARGV[first + 5]\n"
    "if not redis.call('GET', gen_start .. new_gen .. ':' .. KEY_CHECKPOINT) then\n"
    "  return redis.error_reply('the new generation has no checkpoint')\n"
    "end\n"
    /* A pointer of another type (a hash written there by hand) names no generation: SET
       below replaces it like any other. */
    "local current = pointer_at(gen_key)\n"
    "if current and replace ~= '' then\n"
    "  if current ~= replace then return -1 end\n"
    "elseif current then\n"
    "  local theirs = redis.call('GET', gen_start .. current .. ':' .. KEY_CHECKPOINT)\n"
    "  if decimal_above(theirs or '0', new_checkpoint) then return -1 end\n"
    "end\n"
    "redis.call('SET', gen_key, new_gen)\n"
    /* The generation replaced, by its number for the collection (none: nothing to keep). */
    "local old = generation_named(current)\n"
    "if not old then return 0 end\n"
    "local now = redis.call('TIME')\n"
    "local retired_ms = now[1] * 1000 + math.floor(now[2] / 1000)\n"
    "redis.call('HSET', registry, old, retired_ms)\n"
    "return tonumber(old)\n");

struct event_batch {
    struct apply_event events[APPLY_BATCH_MAX];
    size_t count;
};

/* One page of the snapshot as PAGE_SCRIPT's arguments: the three keys, then the in-stock run
 * and the out-of-stock run (score and view per member) and the skus run (sku and id per
 * product), each preceded by its length. Views, skus and ids live in the arena. */
#define PAGE_ARGS (3 + 3 + 2 * SNAPSHOT_PAGE + 2 * SNAPSHOT_PAGE)

struct page {
    char *arena;
    size_t used;
    const char **argv;
    size_t *lens;
    size_t argc;
    struct slice views[SNAPSHOT_PAGE], skus[SNAPSHOT_PAGE]; /* in the arena */
    const char *ids[SNAPSHOT_PAGE];
    unsigned char in_stock[SNAPSHOT_PAGE];
    size_t count;
    char lengths[3][DIGITS_U64_MAX + 1];
};

struct rebuild {
    struct store *store;
    struct redis_sync *redis;
    const char *prefix;
    const struct rebuild_options *options;
    int64_t gen;
    char base[LAYOUT_BASE_MAX];
    char keys[3][LAYOUT_KEY_MAX]; /* the in-stock and out-of-stock sets, the skus hash */
    struct rebuild_lock lock;
    char last_id[UUID_TEXT_LEN + 1];
    int64_t products;
    struct event_batch *batch;
    struct page *page;
    char *err;
    size_t errlen;
};

static struct page *page_new(void)
{
    struct page *page = xcalloc(1, sizeof(*page));
    page->arena = xmalloc((size_t)SNAPSHOT_PAGE * (VIEW_MAX + PRODUCT_SKU_MAX + UUID_TEXT_LEN));
    page->argv = xmalloc(PAGE_ARGS * sizeof(*page->argv));
    page->lens = xmalloc(PAGE_ARGS * sizeof(*page->lens));
    return page;
}

static void page_free(struct page *page)
{
    if (!page) return;
    free(page->arena);
    free(page->argv);
    free(page->lens);
    free(page);
}

static void push(struct page *page, const char *arg, size_t len)
{
    page->argv[page->argc] = arg;
    page->lens[page->argc++] = len;
}

/* Copies "n" bytes into the arena and returns where. */
static const char *keep(struct page *page, const char *bytes, size_t n)
{
    char *at = page->arena + page->used;
    memcpy(at, bytes, n);
    page->used += n;
    return at;
}

/* Starts a run of arguments; run_end writes its length. Returns where the length goes. */
static size_t run_start(struct page *page)
{
    push(page, NULL, 0);
    return page->argc - 1;
}

static void run_end(struct page *page, size_t length_at, int which)
{
    size_t count = page->argc - length_at - 1;
    page->argv[length_at] = page->lengths[which];
    page->lens[length_at] = digits_u64(page->lengths[which], count);
}

static int fail(struct rebuild *r, const char *what)
{
    snprintf(r->err, r->errlen, "%s", what);
    return -1;
}

/* Runs a fenced script whose reply must not be an error; "*value" gets an integer reply. */
static int run_fenced(struct rebuild *r, struct script *script, size_t argc,
                      const char *const *argv, const size_t *lens, long long *value)
{
    struct script_guard guard = rebuild_lock_guard(&r->lock);
    redisReply *reply =
        redis_sync_script(r->redis, script, &guard, 1, argc, argv, lens, r->err, r->errlen);
    if (!reply) return -1;
    int rc = reply->type == REDIS_REPLY_ERROR ? -1 : 0;
    if (rc < 0) snprintf(r->err, r->errlen, "Redis: %.*s", (int)reply->len, reply->str);
    if (rc == 0 && value) *value = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
    freeReplyObject(reply);
    return rc;
}

/* Between pages and batches: keeps the lock, and gives up when asked to stop. */
static int keep_going(struct rebuild *r)
{
    if (r->options->should_stop && r->options->should_stop(r->options->arg))
        return fail(r, "the rebuild was stopped");
    int rc = rebuild_lock_refresh(r->redis, &r->lock, 0, r->err, r->errlen);
    return rc == REBUILD_LOCK_OK ? 0 : -1;
}

/* Keeps one product's view, sku and id in the page. */
static int queue_product(const struct product *p, void *arg)
{
    struct rebuild *r = arg;
    struct page *page = r->page;
    char view[VIEW_MAX];
    size_t n = view_encode(p, view, sizeof(view));
    page->views[page->count] = (struct slice){keep(page, view, n), n};
    n = strlen(p->sku);
    page->skus[page->count] = (struct slice){keep(page, p->sku, n), n};
    page->ids[page->count] = keep(page, p->id, UUID_TEXT_LEN);
    page->in_stock[page->count++] = p->stock > 0;
    memcpy(r->last_id, p->id, sizeof(r->last_id));
    r->products++;
    return 0;
}

/* Pushes the run of view set members (score and view) of the products in stock or not. */
static void push_views(struct page *page, int in_stock, int which)
{
    size_t length_at = run_start(page);
    for (size_t i = 0; i < page->count; i++) {
        if (page->in_stock[i] != in_stock) continue;
        push(page, "0", 1);
        push(page, page->views[i].p, page->views[i].len);
    }
    run_end(page, length_at, which);
}

/* Writes the next page of up to SNAPSHOT_PAGE products. Returns how many, or -1. */
static int write_page(struct rebuild *r)
{
    struct page *page = r->page;
    page->used = page->argc = page->count = 0;
    for (int key = 0; key < 3; key++)
        push(page, r->keys[key], strlen(r->keys[key]));
    char after[UUID_TEXT_LEN + 1];
    memcpy(after, r->last_id, sizeof(after));
    int visited = store_scan_products(r->store, after, SNAPSHOT_PAGE, queue_product, r);
    if (visited < 0) return fail(r, store_errmsg(r->store));
    if (visited == 0) return 0;
    push_views(page, 1, 0);
    push_views(page, 0, 1);
    size_t length_at = run_start(page);
    for (size_t i = 0; i < page->count; i++) {
        push(page, page->skus[i].p, page->skus[i].len);
        push(page, page->ids[i], UUID_TEXT_LEN);
    }
    run_end(page, length_at, 2);
    if (run_fenced(r, &PAGE_SCRIPT, page->argc, page->argv, page->lens, NULL) < 0) return -1;
    return visited;
}

/* The fingerprint of event "seq" of the log ("" for seq 0). */
static int fingerprint_of(struct store *store, int64_t seq, char out[APPLY_FINGERPRINT_MAX])
{
    out[0] = '\0';
    if (seq == 0) return 0;
    return apply_log_fingerprint(store, seq, out) == 1 ? 0 : -1;
}

/* Writes every product of a snapshot, then its checkpoint ("*head_seq"). */
static int write_snapshot(struct rebuild *r, int64_t *head_seq)
{
    if (store_snapshot_begin(r->store, head_seq) < 0) return fail(r, store_errmsg(r->store));
    char fingerprint[APPLY_FINGERPRINT_MAX];
    int rc = fingerprint_of(r->store, *head_seq, fingerprint);
    if (rc < 0) fail(r, "the log's last event cannot be read");
    r->last_id[0] = '\0';
    int visited = SNAPSHOT_PAGE;
    while (rc == 0 && visited == SNAPSHOT_PAGE) {
        visited = write_page(r);
        if (visited < 0 || keep_going(r) < 0) rc = -1;
    }
    store_snapshot_end(r->store);
    if (rc < 0) return -1;
    char seq[DIGITS_U64_MAX + 2];
    seq[digits_i64(seq, *head_seq)] = '\0';
    const char *argv[] = {r->base, seq, fingerprint};
    return run_fenced(r, &CHECKPOINT_SCRIPT, 3, argv, NULL, NULL);
}

static int collect_event(const struct store_event *event, void *arg)
{
    struct rebuild *r = arg;
    struct apply_event *out = &r->batch->events[r->batch->count++];
    if (apply_event_from_store(event, out) < 0) apply_poison_sku(r->store, out);
    return 0;
}

/* Applies the events after "*checkpoint" to the new generation. Returns how many, or -1. */
static int catch_up(struct rebuild *r, int64_t *checkpoint)
{
    struct event_batch *batch = r->batch;
    batch->count = 0;
    int visited = store_read_events(r->store, *checkpoint, APPLY_BATCH_MAX, collect_event, r);
    int rc = visited < 0 ? fail(r, store_errmsg(r->store)) : 0;
    if (rc == 0 && batch->count > 0) {
        struct script_guard guard = rebuild_lock_guard(&r->lock);
        struct apply_target target = {r->prefix, r->gen, &guard, 1};
        struct apply_result *result = xmalloc(sizeof(*result));
        if (apply_events(r->redis, &target, *checkpoint, NULL, batch->events, batch->count, result,
                         r->err, r->errlen) != APPLY_OK)
            rc = -1;
        else
            *checkpoint = result->checkpoint;
        free(result);
    }
    for (size_t i = 0; i < batch->count; i++)
        apply_event_clear(&batch->events[i]);
    return rc < 0 ? -1 : (int)batch->count;
}

/* Returns 0 with "*old_gen" the generation replaced (-1 when the new one is behind). */
static int switch_generation(struct rebuild *r, int64_t checkpoint, long long *old_gen)
{
    char gen_key[LAYOUT_KEY_MAX], registry_key[LAYOUT_KEY_MAX], gen_start[LAYOUT_BASE_MAX];
    char gen_text[DIGITS_U64_MAX + 2], checkpoint_text[DIGITS_U64_MAX + 2];
    char replace_text[DIGITS_U64_MAX + 2] = "";
    layout_key(KEY_GEN, r->prefix, NULL, 0, gen_key, sizeof(gen_key));
    layout_key(KEY_GENERATIONS, r->prefix, NULL, 0, registry_key, sizeof(registry_key));
    snprintf(gen_start, sizeof(gen_start), "%s:g", r->prefix);
    gen_text[digits_i64(gen_text, r->gen)] = '\0';
    checkpoint_text[digits_i64(checkpoint_text, checkpoint)] = '\0';
    if (r->options->replace_generation > 0)
        replace_text[digits_i64(replace_text, r->options->replace_generation)] = '\0';
    const char *argv[] = {gen_key,  registry_key,    gen_start,
                          gen_text, checkpoint_text, replace_text};
    return run_fenced(r, &SWITCH_SCRIPT, 6, argv, NULL, old_gen);
}

static int build_and_switch(struct rebuild *r, struct rebuild_result *result)
{
    if (generations_new(r->redis, r->prefix, &r->lock, &r->gen, r->err, r->errlen) < 0) return -1;
    if (r->options->on_started) r->options->on_started(r->options->arg);
    layout_base(r->prefix, r->gen, r->base, sizeof(r->base));
    layout_key(KEY_IN_STOCK, r->base, NULL, 0, r->keys[0], sizeof(r->keys[0]));
    layout_key(KEY_OUT_OF_STOCK, r->base, NULL, 0, r->keys[1], sizeof(r->keys[1]));
    layout_key(KEY_SKUS, r->base, NULL, 0, r->keys[2], sizeof(r->keys[2]));
    int64_t checkpoint;
    if (write_snapshot(r, &checkpoint) < 0) goto abandon;
    for (int attempt = 0; attempt < MAX_SWITCH_ATTEMPTS; attempt++) {
        int applied;
        while ((applied = catch_up(r, &checkpoint)) > 0)
            if (keep_going(r) < 0) goto abandon;
        if (applied < 0) goto abandon;
        long long old_gen;
        if (switch_generation(r, checkpoint, &old_gen) < 0) goto abandon;
        if (old_gen >= 0) {
            result->generation = r->gen;
            result->old_generation = old_gen;
            result->products = r->products;
            result->checkpoint = checkpoint;
            return 0;
        }
        /* The live projector applied events our snapshot reader has not seen yet. */
        if (keep_going(r) < 0) goto abandon;
    }
    fail(r, "the new generation could not catch up with the live one");
abandon : {
    /* Keep the error that brought us here. Without the lock, the drop is refused and the
     * next collection (generations.h) finds the generation instead. */
    char ignored[128];
    generations_drop(r->redis, r->prefix, &r->lock, r->gen, NULL, NULL, ignored, sizeof(ignored));
    return -1;
}
}

int rebuild_run(struct store *store, struct redis_sync *redis, const char *prefix,
                const struct rebuild_options *options, struct rebuild_result *result, char *err,
                size_t errlen)
{
    static const struct rebuild_options ordinary = {0};
    struct rebuild r = {.store = store,
                        .redis = redis,
                        .prefix = prefix,
                        .options = options ? options : &ordinary,
                        .err = err,
                        .errlen = errlen};
    memset(result, 0, sizeof(*result));
    int rc = rebuild_lock_take(redis, prefix, &r.lock, err, errlen);
    if (rc == REBUILD_LOCK_BUSY) return REBUILD_BUSY;
    if (rc != REBUILD_LOCK_OK) return REBUILD_FAILED;
    r.batch = xmalloc(sizeof(*r.batch));
    r.page = page_new();
    rc = build_and_switch(&r, result) == 0 ? REBUILD_OK : REBUILD_FAILED;
    page_free(r.page);
    free(r.batch);
    rebuild_lock_release(redis, &r.lock);
    return rc;
}
