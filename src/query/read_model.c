/* read_model.c - the reads of the read model and the generation check each one carries:
 *   a view:         the range of the id in the in-stock set (ZRANGEBYLEX: one view, or
 *                   none), after a generation check written in the same batch (one for all
 *                   the views a batch reads); when it has none, the check and the ranges
 *                   of both sets in one MULTI. The view found goes to the view cache, which
 *                   answers while the batches' generation check is recent
 *   a view by sku:  one script that reads the generation, the sku entry and the view
 *   a catalog page: MULTI, the generation check, ZRANGEBYLEX and ZCARD of each view set it
 *                   lists, EXEC; the views of both sets are merged by id
 * A Redis out of memory refuses every command queued in a transaction, reads included, but
 * runs a script that only reads: a transaction it refused is made again as TRANSACTION_SCRIPT,
 * so that the read model is served while Redis cannot be written to.
 * The generation check is MGET {prefix}:gen-v2 {prefix}:confirmed-run, then GET of the
 * checkpoint of the generation the read is made in: a pointer to a generation that is not
 * there names none, and a Redis not known to hold every event applied (one back with an
 * older state: not confirmed in it, or a checkpoint below the applied floor) answers nothing
 * (page_live_generation, confirmed_run.h, applied_floor.h).
 * O(log N + limit) per page whatever the catalog's size, in one round trip; views go from
 * Redis to the client as stored. Reads are made again, at most MAX_ATTEMPTS times, when the
 * generation moved. */
#include "query/read_model.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/digits.h"
#include "common/xmalloc.h"
#include "domain/view.h"
#include "query/page.h"
#include "query/redis_client.h"
#include "readmodel/applied_floor.h"
#include "readmodel/confirmed_run.h"
#include "readmodel/layout.h"
#include "readmodel/script.h"
#include "readmodel/view_cache.h"

#define MAX_ATTEMPTS 3

/* The cache answers only while Redis named its generation within LIVE_MS: when Redis stops
 * answering, or loses the read model, the cache stops too, within that time, and queries
 * answer as they would without it. A lookup in the second half of it asks again. */
#define LIVE_MS 50

/* ARGV: the gen key, the confirmed-run key, "{prefix}:g", the sku. Replies {generation or
 * false, view or false, confirmed run id or false, checkpoint or false}; a generation without
 * its checkpoint is none (page_live_generation). */
static struct script BY_SKU_SCRIPT =
    SCRIPT("local gen = redis.call('GET', ARGV[1])\n"
           "local run = redis.call('GET', ARGV[2])\n"
           "if not gen then return {false, false, run, false} end\n"
           "local base = ARGV[3] .. gen .. ':'\n"
           "local checkpoint = redis.call('GET', base .. KEY_CHECKPOINT)\n"
           "if not checkpoint then return {false, false, run, false} end\n"
           "local id = redis.call('HGET', base .. KEY_SKUS, ARGV[4])\n"
           "if not id then return {gen, false, run, checkpoint} end\n"
           "return {gen, view_of(base, id) or false, run, checkpoint}\n");

/* ARGV: commands, each its number of arguments then its arguments. Runs them in turn and
 * replies as EXEC would: an array of their replies, an error among them where one failed. */
static struct script TRANSACTION_SCRIPT =
    SCRIPT("local replies, i = {}, 1\n"
           "while i <= #ARGV do\n"
           "  local n = tonumber(ARGV[i])\n"
           "  replies[#replies + 1] = redis.pcall(unpack(ARGV, i + 1, i + n))\n"
           "  i = i + n + 1\n"
           "end\n"
           "return replies\n");

/* A read made in one transaction: its commands, the generation check's first. */
#define TRANSACTION_COMMANDS_MAX 6
#define TRANSACTION_ARGS_MAX     32

struct command {
    int argc;
    const char *const *argv;
    const size_t *lens;
};

enum read_kind { READ_VIEW, READ_BY_SKU, READ_PAGE };

struct read {
    struct read_model *rm;
    enum read_kind kind;
    union {
        read_fn read;
        page_fn page;
    } fn;
    void *arg;
    int attempts;
    int delivered; /* the caller has its outcome */
    int pending;   /* calls whose callback is still to come */
    struct redis_call *calls[2];
    int64_t generation; /* the one the read is made in */
    int64_t floor;      /* the applied floor when the read was sent */
    int evaluated;      /* READ_BY_SKU: sent as EVAL after NOSCRIPT */
    int as_script;      /* made in a transaction that Redis refused: now TRANSACTION_SCRIPT */
    int cacheable;      /* READ_VIEW: its view may go to the cache, with "ticket" */
    struct view_cache_ticket ticket;
    char argument[LAYOUT_KEY_MAX]; /* the id or sku */
    size_t argument_len;
    /* READ_PAGE */
    int in_stock, limit;
    int out_limit; /* views asked of the out-of-stock set */
    char after[UUID_TEXT_LEN + 1];
    struct catalog_page page;
    struct read *next_free;
};

struct read_model {
    struct redis_client *client;
    const struct applied_floor *floor;
    char prefix[LAYOUT_PREFIX_MAX + 1];
    char gen_key[LAYOUT_KEY_MAX];
    char confirmed_key[LAYOUT_KEY_MAX];
    char gen_start[LAYOUT_BASE_MAX]; /* "{prefix}:g" */
    int64_t generation;              /* the last one Redis named; 0 when none yet */
    char base[LAYOUT_BASE_MAX];      /* of that generation */
    size_t base_len;
    struct read *free_reads;
    struct slice views[CATALOG_PAGE_MAX]; /* a page's views, while its callback runs */
    long long set_sizes[2];               /* in stock and out of stock, as a page last saw */
    /* The generation check views share: an MGET of the generation and the confirmed run, and
     * a GET of the checkpoint of the generation the batch's reads are made in, queued in
     * batch "checked_batch" (redis_client_batch), and what the last one answered (as
     * page_live_generation; -1: no answer that names a generation). Replies come in order, so a
     * view's range, queued after a check in the same batch, is answered after that check and before
     * any later one: "generation_seen" is then what Redis named just before the range ran. */
    uint64_t checked_batch; /* UINT64_MAX: none yet */
    int64_t checked_floor;  /* the applied floor that check holds Redis to */
    int64_t generation_seen;
    int confirmed_seen; /* between the check's two replies: what page_pointer said */
    /* The views this process holds (NULL: none), and what the last generation check said
     * and when (h2o_now): the cache answers in that generation while it is recent. */
    struct view_cache *cache;
    int64_t live_generation;
    uint64_t live_at;
};

/* Generation 0 never exists (they are numbered from 1): reads made in it find nothing, and
 * their generation check names the real one. */
static void set_generation(struct read_model *rm, int64_t gen)
{
    rm->generation = gen;
    rm->base_len = layout_base(rm->prefix, gen, rm->base, sizeof(rm->base));
}

struct read_model *read_model_new(struct redis_client *client, const char *prefix,
                                  struct view_cache *cache, const struct applied_floor *floor)
{
    struct read_model *rm = xcalloc(1, sizeof(*rm));
    rm->client = client;
    rm->floor = floor;
    rm->cache = cache;
    snprintf(rm->prefix, sizeof(rm->prefix), "%s", prefix);
    layout_key(KEY_GEN, rm->prefix, NULL, 0, rm->gen_key, sizeof(rm->gen_key));
    layout_key(KEY_CONFIRMED_RUN, rm->prefix, NULL, 0, rm->confirmed_key,
               sizeof(rm->confirmed_key));
    snprintf(rm->gen_start, sizeof(rm->gen_start), "%s:g", rm->prefix);
    set_generation(rm, 0);
    rm->checked_batch = UINT64_MAX;
    return rm;
}

static struct read *read_new(struct read_model *rm, enum read_kind kind, void *arg)
{
    struct read *read = rm->free_reads;
    if (read)
        rm->free_reads = read->next_free;
    else
        read = xmalloc(sizeof(*read));
    memset(read, 0, sizeof(*read));
    read->rm = rm;
    read->kind = kind;
    read->arg = arg;
    return read;
}

static void read_recycle(struct read *read)
{
    struct read_model *rm = read->rm;
    read->next_free = rm->free_reads;
    rm->free_reads = read;
}

/* A string reply as a view; nothing (NULL) for nil or no reply. */
static struct slice view_of_reply(const redisReply *reply)
{
    if (!reply || reply->type != REDIS_REPLY_STRING) return (struct slice){NULL, 0};
    return (struct slice){reply->str, reply->len};
}

/* Gives the caller its outcome, once; the read is recycled when no call is pending. */
static void deliver(struct read *read, int status, const redisReply *reply)
{
    if (!read->delivered) {
        read->delivered = 1;
        if (read->kind == READ_PAGE)
            read->fn.page(status, status == READ_OK ? &read->page : NULL, read->arg);
        else
            read->fn.read(status, view_of_reply(reply), read->arg);
    }
    if (read->pending == 0) read_recycle(read);
}

/* The read cannot use "reply": counted and told (redis_client_count_bad_reply), then a 503. */
static void deliver_bad(struct read *read, const redisReply *reply)
{
    redis_client_count_bad_reply(read->rm->client, reply);
    deliver(read, READ_BAD, NULL);
}

/* Called first by every reply callback. Returns 1 when the reply may be used; else the read
 * is failed (if it was not yet) and 0 returned. */
static int take_reply(struct read *read, int slot, const redisReply *reply)
{
    read->pending--;
    read->calls[slot] = NULL;
    if (read->delivered) {
        if (read->pending == 0) read_recycle(read);
        return 0;
    }
    if (reply) return 1;
    for (int i = 0; i < 2; i++) /* the other call of a pair is of no use any more */
        if (read->calls[i]) {
            redis_call_cancel(read->calls[i]);
            read->calls[i] = NULL;
            read->pending--;
        }
    deliver(read, READ_UNAVAILABLE, NULL);
    return 0;
}

static struct redis_call *call(struct read *read, int slot, redis_reply_fn fn, int argc,
                               const char *const *argv, const size_t *lens)
{
    struct redis_call *made = redis_client_call(read->rm->client, fn, read, argc, argv, lens);
    if (made) {
        read->calls[slot] = made;
        read->pending++;
    }
    return made;
}

/* The generation moved under the read: make it again in the new one, a few times. */
static int retry(struct read *read, int64_t gen, int (*send)(struct read *read))
{
    set_generation(read->rm, gen);
    if (gen > 0 && ++read->attempts < MAX_ATTEMPTS && send(read) == 0) return 1;
    return 0;
}

/* The generation check's two commands: MGET of the generation and the confirmed run, and GET
 * of the checkpoint of the generation reads are made in now. */
struct generation_check {
    char checkpoint_key[LAYOUT_KEY_MAX];
    const char *pointer[3], *checkpoint[2];
    size_t pointer_lens[3], checkpoint_lens[2];
};

static void generation_check_init(struct read_model *rm, struct generation_check *check)
{
    check->pointer[0] = "MGET";
    check->pointer[1] = rm->gen_key;
    check->pointer[2] = rm->confirmed_key;
    check->pointer_lens[0] = 4;
    check->pointer_lens[1] = strlen(rm->gen_key);
    check->pointer_lens[2] = strlen(rm->confirmed_key);
    check->checkpoint[0] = "GET";
    check->checkpoint[1] = check->checkpoint_key;
    check->checkpoint_lens[0] = 3;
    check->checkpoint_lens[1] = layout_key(KEY_CHECKPOINT, rm->base, NULL, 0, check->checkpoint_key,
                                           sizeof(check->checkpoint_key));
}

/* Queues the generation check, its replies to "on_pointer" and "on_checkpoint" (with
 * "checkpoint_arg"). Returns -1 when Redis is not connected. */
static int call_generation_check(struct read_model *rm, redis_reply_fn on_pointer,
                                 redis_reply_fn on_checkpoint, void *checkpoint_arg)
{
    struct generation_check check;
    generation_check_init(rm, &check);
    if (!redis_client_call(rm->client, on_pointer, rm, 3, check.pointer, check.pointer_lens))
        return -1;
    redis_client_call(rm->client, on_checkpoint, checkpoint_arg, 2, check.checkpoint,
                      check.checkpoint_lens);
    return 0;
}

static const char *const MULTI[] = {"MULTI"};
static const size_t MULTI_LEN[] = {5};
static const char *const EXEC[] = {"EXEC"};
static const size_t EXEC_LEN[] = {4};

/* Sends a read made in one transaction: the generation check, then the "count" "commands".
 * "on_exec" gets one reply, an array of theirs (its first two read by page_live_generation):
 * EXEC's, or TRANSACTION_SCRIPT's once Redis refused the transaction (made_again_as_script).
 * Returns -1 when Redis is not connected. */
static int send_transaction(struct read *read, const struct command *commands, int count,
                            redis_reply_fn on_exec)
{
    struct read_model *rm = read->rm;
    struct generation_check check;
    generation_check_init(rm, &check);
    struct command all[TRANSACTION_COMMANDS_MAX] = {{3, check.pointer, check.pointer_lens},
                                                    {2, check.checkpoint, check.checkpoint_lens}};
    assert(count + 2 <= TRANSACTION_COMMANDS_MAX);
    memcpy(all + 2, commands, (size_t)count * sizeof(*commands));
    count += 2;
    if (!read->as_script) {
        if (!redis_client_call(rm->client, NULL, NULL, 1, MULTI, MULTI_LEN)) return -1;
        for (int i = 0; i < count; i++)
            redis_client_call(rm->client, NULL, NULL, all[i].argc, all[i].argv, all[i].lens);
        call(read, 0, on_exec, 1, EXEC, EXEC_LEN); /* connected: cannot fail now */
        return 0;
    }
    /* EVAL, not EVALSHA: this runs only while Redis refuses transactions, and needs no
     * NOSCRIPT round trip after a restart. */
    const char *argv[3 + TRANSACTION_COMMANDS_MAX + TRANSACTION_ARGS_MAX];
    size_t lens[3 + TRANSACTION_COMMANDS_MAX + TRANSACTION_ARGS_MAX];
    char counts[TRANSACTION_COMMANDS_MAX][DIGITS_U64_MAX];
    argv[0] = "EVAL";
    lens[0] = 4;
    argv[1] = script_text(&TRANSACTION_SCRIPT, &lens[1]);
    argv[2] = "0";
    lens[2] = 1;
    int argc = 3;
    for (int i = 0; i < count; i++) {
        assert(argc + 1 + all[i].argc <= 3 + TRANSACTION_COMMANDS_MAX + TRANSACTION_ARGS_MAX);
        argv[argc] = counts[i];
        lens[argc++] = digits_u64(counts[i], (uint64_t)all[i].argc);
        memcpy(argv + argc, all[i].argv, (size_t)all[i].argc * sizeof(*argv));
        memcpy(lens + argc, all[i].lens, (size_t)all[i].argc * sizeof(*lens));
        argc += all[i].argc;
    }
    return call(read, 0, on_exec, argc, argv, lens) ? 0 : -1;
}

/* Redis refused the read's transaction (EXECABORT: out of memory, it refuses every command
 * queued in one): the read is made again, once, as TRANSACTION_SCRIPT. Returns 1 when it
 * was (or failed to be, and was answered). */
static int made_again_as_script(struct read *read, const redisReply *reply,
                                int (*send)(struct read *read))
{
    if (read->as_script || reply->type != REDIS_REPLY_ERROR ||
        strncmp(reply->str, "EXECABORT", 9) != 0)
        return 0;
    read->as_script = 1;
    if (send(read) < 0) deliver(read, READ_UNAVAILABLE, NULL);
    return 1;
}

/* ---- a view by id ---- */

static int send_view(struct read *read);
static int send_view_in_both_sets(struct read *read);

/* Reads the range of one id in one view set: 0 with "*view" the view or NULL (none), or -1
 * when the reply is not such a range (none or one view). */
static int read_view_range(const redisReply *range, const redisReply **view)
{
    if (range->type != REDIS_REPLY_ARRAY || range->elements > 1 ||
        (range->elements == 1 && range->element[0]->type != REDIS_REPLY_STRING))
        return -1;
    *view = range->elements == 1 ? range->element[0] : NULL;
    return 0;
}

/* The outcome of a look in generation "seen" that found "view" (or none); "last" when no
 * other look follows. Returns 1 when the read was answered or made again. */
static int answer_view(struct read *read, int64_t seen, const redisReply *view, int last)
{
    if (seen == 0) { /* no generation at all: never "not found" */
        deliver(read, READ_REBUILDING, NULL);
    } else if (seen == PAGE_UNCONFIRMED) {
        deliver(read, READ_UNCONFIRMED, NULL);
    } else if (seen != read->generation) {
        if (!retry(read, seen, send_view)) deliver(read, READ_UNAVAILABLE, NULL);
    } else if (view || last) {
        if (view && read->cacheable)
            view_cache_store(read->rm->cache, read->argument, seen, read->ticket, view->str,
                             view->len);
        deliver(read, READ_OK, view);
    } else {
        return 0;
    }
    return 1;
}

static void on_pointer_checked(const redisReply *reply, void *arg)
{
    struct read_model *rm = arg;
    rm->generation_seen =
        reply ? page_pointer(reply, redis_client_run_id(rm->client), &rm->confirmed_seen) : -1;
}

/* A check's second half: the generation whose checkpoint it asked for, and the applied floor
 * when it was sent. Its own, not the read model's: a check queued later, after the
 * generation moved, asks for another one, and its reply comes after this one's. */
struct checkpoint_check {
    struct read_model *rm;
    int64_t in, floor;
};

/* The check's second reply: what it saw is now whole (page_live_generation). */
static void on_checkpoint_checked(const redisReply *reply, void *arg)
{
    struct checkpoint_check *check = arg;
    struct read_model *rm = check->rm;
    rm->generation_seen = page_checked_generation(rm->generation_seen, rm->confirmed_seen, reply,
                                                  check->in, check->floor);
    rm->live_generation = rm->generation_seen;
    rm->live_at = redis_client_now(rm->client);
    free(check);
}

/* Queues the generation check unless this batch has one already, held to the floor there is
 * now: every view read after it in the batch is checked by it. (A batch waits while Redis is
 * still taking the one before, so it may span loop turns, and a command answered "applied"
 * meanwhile raises the floor.) Returns -1 when Redis is not connected. */
static int check_generation(struct read_model *rm)
{
    uint64_t batch = redis_client_batch(rm->client);
    int64_t floor = applied_floor_get(rm->floor);
    if (rm->checked_batch == batch && rm->checked_floor == floor) return 0;
    struct checkpoint_check *check = xmalloc(sizeof(*check));
    *check = (struct checkpoint_check){rm, rm->generation, floor};
    if (call_generation_check(rm, on_pointer_checked, on_checkpoint_checked, check) < 0) {
        free(check);
        return -1;
    }
    rm->checked_batch = batch;
    rm->checked_floor = floor;
    return 0;
}

/* The id's range in the in-stock set, where most views are. */
static void on_view_in_stock(const redisReply *reply, void *arg)
{
    struct read *read = arg;
    if (!take_reply(read, 1, reply)) return;
    const redisReply *view;
    int64_t seen = read->rm->generation_seen;
    if (seen == -1 || read_view_range(reply, &view) < 0)
        deliver_bad(read, reply);
    else if (!answer_view(read, seen, view, 0) && send_view_in_both_sets(read) < 0)
        deliver(read, READ_UNAVAILABLE, NULL);
}

/* The id's range in the in-stock set, after the batch's generation check. */
static int send_view(struct read *read)
{
    struct read_model *rm = read->rm;
    char set[LAYOUT_KEY_MAX], low[LAYOUT_VIEW_BOUND_MAX], high[LAYOUT_VIEW_BOUND_MAX];
    if (check_generation(rm) < 0) return -1;
    read->generation = rm->generation;
    size_t set_len = layout_key(KEY_IN_STOCK, rm->base, NULL, 0, set, sizeof(set));
    size_t low_len =
        layout_view_bound('[', read->argument, read->argument_len, 0, low, sizeof(low));
    size_t high_len =
        layout_view_bound('(', read->argument, read->argument_len, 1, high, sizeof(high));
    const char *range[] = {"ZRANGEBYLEX", set, low, high};
    const size_t range_lens[] = {11, set_len, low_len, high_len};
    call(read, 1, on_view_in_stock, 4, range, range_lens); /* connected: cannot fail now */
    return 0;
}

/* EXEC's [[generation, confirmed run], checkpoint, range in stock, range out of stock]. */
static void on_view_in_both_sets(const redisReply *reply, void *arg)
{
    struct read *read = arg;
    if (!take_reply(read, 0, reply) || made_again_as_script(read, reply, send_view_in_both_sets))
        return;
    const redisReply *in_stock, *out_of_stock;
    int64_t seen =
        reply->type == REDIS_REPLY_ARRAY && reply->elements == 4
            ? page_live_generation(reply->element[0], reply->element[1], read->generation,
                                   redis_client_run_id(read->rm->client), read->floor)
            : -1;
    if (seen == -1 || read_view_range(reply->element[2], &in_stock) < 0 ||
        read_view_range(reply->element[3], &out_of_stock) < 0)
        deliver_bad(read, reply);
    else
        answer_view(read, seen, in_stock ? in_stock : out_of_stock, 1);
}

/* The second look, when the in-stock set had no view: both sets in one MULTI, so that a view
 * moving from one set to the other in between (its stock changed) is seen in one of them,
 * never missed by two looks at two moments. */
static int send_view_in_both_sets(struct read *read)
{
    struct read_model *rm = read->rm;
    char keys[2][LAYOUT_KEY_MAX], low[LAYOUT_VIEW_BOUND_MAX], high[LAYOUT_VIEW_BOUND_MAX];
    size_t key_lens[2];
    read->generation = rm->generation; /* the keys, the checkpoint and the answer agree */
    read->floor = applied_floor_get(rm->floor);
    key_lens[0] = layout_key(KEY_IN_STOCK, rm->base, NULL, 0, keys[0], sizeof(keys[0]));
    key_lens[1] = layout_key(KEY_OUT_OF_STOCK, rm->base, NULL, 0, keys[1], sizeof(keys[1]));
    size_t low_len =
        layout_view_bound('[', read->argument, read->argument_len, 0, low, sizeof(low));
    size_t high_len =
        layout_view_bound('(', read->argument, read->argument_len, 1, high, sizeof(high));
    const char *ranges[2][4] = {{"ZRANGEBYLEX", keys[0], low, high},
                                {"ZRANGEBYLEX", keys[1], low, high}};
    const size_t range_lens[2][4] = {{11, key_lens[0], low_len, high_len},
                                     {11, key_lens[1], low_len, high_len}};
    const struct command commands[] = {{4, ranges[0], range_lens[0]},
                                       {4, ranges[1], range_lens[1]}};
    return send_transaction(read, commands, 2, on_view_in_both_sets);
}

static struct read *start(struct read *read, int (*send)(struct read *read))
{
    if (send(read) == 0) return read;
    read_recycle(read);
    return NULL;
}

struct read *read_model_get_view(struct read_model *rm, struct slice id, read_fn fn, void *arg)
{
    if (id.len > UUID_TEXT_LEN) return NULL; /* callers check ids; a longer one names nothing */
    struct read *read = read_new(rm, READ_VIEW, arg);
    read->fn.read = fn;
    memcpy(read->argument, id.p, id.len);
    read->argument_len = id.len;
    if (rm->cache && id.len == UUID_TEXT_LEN) { /* the ticket before the read is sent */
        read->cacheable = 1;
        read->ticket = view_cache_ticket(rm->cache, read->argument);
    }
    return start(read, send_view);
}

size_t read_model_cached_view(struct read_model *rm, struct slice id,
                              char *(*alloc)(void *arg, size_t len), void *arg, char **view)
{
    if (!rm->cache || id.len != UUID_TEXT_LEN) return 0;
    uint64_t age = redis_client_now(rm->client) - rm->live_at;
    if (rm->live_generation <= 0 || !redis_client_connected(rm->client) || age > LIVE_MS) {
        view_cache_count_miss(rm->cache, id.p); /* Redis answers, or says why it cannot */
        return 0;
    }
    if (age > LIVE_MS / 2) check_generation(rm); /* keeps it live while Redis answers */
    return view_cache_copy(rm->cache, id.p, rm->live_generation, alloc, arg, view);
}

/* ---- a view by sku ---- */

static int send_by_sku(struct read *read);

static void on_by_sku(const redisReply *reply, void *arg)
{
    struct read *read = arg;
    if (!take_reply(read, 0, reply)) return;
    if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0 &&
        !read->evaluated) {
        read->evaluated = 1; /* Redis forgot the script (restarted, SCRIPT FLUSH): send it */
        if (send_by_sku(read) < 0) deliver(read, READ_UNAVAILABLE, NULL);
        return;
    }
    int64_t named = reply->type == REDIS_REPLY_ARRAY && reply->elements == 4
                        ? page_generation(reply->element[0])
                        : -1;
    const redisReply *view = named >= 0 ? reply->element[1] : NULL;
    if (named < 0 || (view->type != REDIS_REPLY_STRING && view->type != REDIS_REPLY_NIL)) {
        deliver_bad(read, reply);
        return;
    }
    /* The script read the checkpoint of the generation it found. */
    int confirmed = confirmed_run_is(reply->element[2], redis_client_run_id(read->rm->client));
    int64_t gen = page_checked_generation(named, confirmed, reply->element[3], named, read->floor);
    if (gen == -1) {
        deliver_bad(read, reply);
        return;
    }
    set_generation(read->rm, named);
    deliver(read,
            gen == 0                  ? READ_REBUILDING
            : gen == PAGE_UNCONFIRMED ? READ_UNCONFIRMED
                                      : READ_OK,
            view);
}

static int send_by_sku(struct read *read)
{
    struct read_model *rm = read->rm;
    read->floor = applied_floor_get(rm->floor);
    size_t text_len;
    const char *text = script_text(&BY_SKU_SCRIPT, &text_len);
    const char *argv[] = {read->evaluated ? "EVAL" : "EVALSHA",
                          read->evaluated ? text : script_sha(&BY_SKU_SCRIPT),
                          "0",
                          rm->gen_key,
                          rm->confirmed_key,
                          rm->gen_start,
                          read->argument};
    const size_t lens[] = {read->evaluated ? 4 : 7,
                           read->evaluated ? text_len : SCRIPT_SHA_LEN,
                           1,
                           strlen(rm->gen_key),
                           strlen(rm->confirmed_key),
                           strlen(rm->gen_start),
                           read->argument_len};
    return call(read, 0, on_by_sku, 7, argv, lens) ? 0 : -1;
}

struct read *read_model_get_by_sku(struct read_model *rm, struct slice sku, read_fn fn, void *arg)
{
    if (sku.len >= sizeof(((struct read *)0)->argument)) return NULL;
    struct read *read = read_new(rm, READ_BY_SKU, arg);
    read->fn.read = fn;
    memcpy(read->argument, sku.p, sku.len);
    read->argument_len = sku.len;
    return start(read, send_by_sku);
}

/* ---- a catalog page ---- */

/* A page of the whole catalog merges the views of both sets after the cursor. The
 * out-of-stock set is usually the small one, and "limit" of its views would mostly fall past
 * the page: it is asked for about twice as many as its share of the catalog, and asked again
 * for "limit" when the page used every view it gave (the ones it did not give might belong
 * to the page). */
static int out_of_stock_limit(const struct read_model *rm, int limit)
{
    long long in = rm->set_sizes[0], out = rm->set_sizes[1];
    long long share = in + out > 0 ? (limit * out + in + out - 1) / (in + out) : limit;
    return share * 2 + 2 < limit + 1 ? (int)(share * 2 + 2) : limit + 1;
}

static int send_page(struct read *read);

/* EXEC's reply: the generation check's two, then the range and the size of each view
 * set read. */
static void on_page(const redisReply *reply, void *arg)
{
    struct read *read = arg;
    if (!take_reply(read, 0, reply) || made_again_as_script(read, reply, send_page)) return;
    struct read_model *rm = read->rm;
    struct page_reply page;
    int sets = read->in_stock ? 1 : 2;
    int64_t gen = page_read(reply, sets, &page) < 0
                      ? -1
                      : page_live_generation(page.pointer, page.checkpoint, read->generation,
                                             redis_client_run_id(rm->client), read->floor);
    if (gen == -1) {
        deliver_bad(read, reply);
        return;
    }
    if (gen == 0 || gen == PAGE_UNCONFIRMED) { /* no generation at all: never an empty catalog */
        deliver(read, gen == 0 ? READ_REBUILDING : READ_UNCONFIRMED, NULL);
        return;
    }
    if (gen != read->generation) {
        if (!retry(read, gen, send_page)) deliver(read, READ_UNAVAILABLE, NULL);
        return;
    }
    size_t out_taken;
    int count = page_merge(&page, read->limit, rm->views, &read->page.more, &out_taken);
    const char *last = count > 0 ? view_id(rm->views[count - 1].p, rm->views[count - 1].len) : NULL;
    if (count < 0 || (last && uuid_check_canonical(last, UUID_TEXT_LEN) < 0)) {
        deliver_bad(read, reply); /* the next cursor must be a canonical id */
        return;
    }
    if (sets == 2) {
        rm->set_sizes[0] = page.sizes[0];
        rm->set_sizes[1] = page.sizes[1];
        if (read->out_limit <= read->limit && out_taken == (size_t)read->out_limit) {
            read->out_limit = read->limit + 1; /* the page may need views it was not given */
            if (send_page(read) < 0) deliver(read, READ_UNAVAILABLE, NULL);
            return;
        }
    }
    read->page.total = page.total;
    read->page.views = rm->views;
    read->page.count = (size_t)count;
    if (last) {
        memcpy(read->page.last_id, last, UUID_TEXT_LEN);
        read->page.last_id[UUID_TEXT_LEN] = '\0';
    }
    deliver(read, READ_OK, NULL);
}

/* MULTI, the generation check, ZRANGEBYLEX and ZCARD of each set the page lists, EXEC. */
static int send_page(struct read *read)
{
    struct read_model *rm = read->rm;
    char keys[2][LAYOUT_KEY_MAX], low[LAYOUT_VIEW_BOUND_MAX], counts[2][DIGITS_U64_MAX];
    size_t key_lens[2], count_lens[2];
    read->generation = rm->generation;
    read->floor = applied_floor_get(rm->floor);
    key_lens[0] = layout_key(KEY_IN_STOCK, rm->base, NULL, 0, keys[0], sizeof(keys[0]));
    key_lens[1] = layout_key(KEY_OUT_OF_STOCK, rm->base, NULL, 0, keys[1], sizeof(keys[1]));
    count_lens[0] = digits_u64(counts[0], (uint64_t)read->limit + 1);
    count_lens[1] = digits_u64(counts[1], (uint64_t)read->out_limit);
    size_t low_len = 1;
    low[0] = '-';
    if (read->after[0])
        low_len = layout_view_bound('(', read->after, UUID_TEXT_LEN, 1, low, sizeof(low));
    const char *ranges[2][7] = {{"ZRANGEBYLEX", keys[0], low, "+", "LIMIT", "0", counts[0]},
                                {"ZRANGEBYLEX", keys[1], low, "+", "LIMIT", "0", counts[1]}};
    const size_t range_lens[2][7] = {{11, key_lens[0], low_len, 1, 5, 1, count_lens[0]},
                                     {11, key_lens[1], low_len, 1, 5, 1, count_lens[1]}};
    const char *cards[2][2] = {{"ZCARD", keys[0]}, {"ZCARD", keys[1]}};
    const size_t card_lens[2][2] = {{5, key_lens[0]}, {5, key_lens[1]}};
    /* The in-stock set's range and size, then the out-of-stock set's unless in stock only. */
    const struct command commands[] = {{7, ranges[0], range_lens[0]},
                                       {2, cards[0], card_lens[0]},
                                       {7, ranges[1], range_lens[1]},
                                       {2, cards[1], card_lens[1]}};
    return send_transaction(read, commands, read->in_stock ? 2 : 4, on_page);
}

struct read *read_model_catalog_page(struct read_model *rm, int in_stock, const char *after,
                                     int limit, page_fn fn, void *arg)
{
    assert(limit >= 1 && limit <= CATALOG_PAGE_MAX);
    struct read *read = read_new(rm, READ_PAGE, arg);
    read->fn.page = fn;
    read->in_stock = in_stock;
    read->limit = limit;
    read->out_limit = out_of_stock_limit(rm, limit);
    snprintf(read->after, sizeof(read->after), "%s", after);
    return start(read, send_page);
}

void read_cancel(struct read *read)
{
    for (int i = 0; i < 2; i++)
        if (read->calls[i]) redis_call_cancel(read->calls[i]);
    read->pending = 0;
    read->delivered = 1;
    read_recycle(read);
}
