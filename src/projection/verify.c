/* verify.c - walks the write model's products in id order and checks, page by page, their
 * views and index entries in Redis (one pipeline per page); then looks for read-model
 * entries that no product explains: members of the catalog indexes (page by page, by id
 * range), views and sku entries (a SCAN of the generation's keys, each looked up in the
 * write model's snapshot). Nothing is loaded whole. */
#include "projection/verify.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/xmalloc.h"
#include "domain/view.h"
#include "projection/apply.h"
#include "projection/redis_sync.h"
#include "readmodel/layout.h"

#define PAGE 1000

struct page_product {
    char id[UUID_TEXT_LEN + 1];
    char sku[PRODUCT_SKU_MAX + 1];
    int64_t version;
    int in_stock;
    char view[VIEW_MAX];
    size_t view_len;
};

struct verify {
    struct store *store;
    struct redis_sync *redis;
    char base[LAYOUT_BASE_MAX];
    FILE *out;
    struct verify_report *report;
    struct page_product *page;
    int page_count;
    char *scratch;     /* PAGE arguments of LAYOUT_KEY_MAX bytes, for the page commands */
    const char **argv; /* PAGE + 2 */
    size_t *lens;
    char *err;
    size_t errlen;
};

static void difference(struct verify *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void difference(struct verify *v, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vfprintf(v->out, fmt, args);
    va_end(args);
    fputc('\n', v->out);
    v->report->differences++;
}

static int collect_product(const struct product *p, void *arg)
{
    struct verify *v = arg;
    struct page_product *pp = &v->page[v->page_count++];
    memcpy(pp->id, p->id, sizeof(pp->id));
    memcpy(pp->sku, p->sku, sizeof(pp->sku));
    pp->version = p->version;
    pp->in_stock = p->stock > 0;
    pp->view_len = view_encode(p, pp->view, sizeof(pp->view));
    return 0;
}

static redisReply *next_reply(struct verify *v)
{
    redisReply *reply = NULL;
    char why[256];
    if (redis_sync_get_reply(v->redis, &reply, why, sizeof(why)) < 0) {
        snprintf(v->err, v->errlen, "Redis: %s", why);
        return NULL;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(v->err, v->errlen, "Redis: %s", reply->str);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

static void check_product(struct verify *v, const struct page_product *p, redisReply *view,
                          redisReply *sku_owner, redisReply *in_all, redisReply *in_stock)
{
    if (view->type != REDIS_REPLY_STRING) {
        difference(v, "missing view: %s (sku %s, version %" PRId64 ")", p->id, p->sku, p->version);
    } else if (view->len != p->view_len || memcmp(view->str, p->view, p->view_len) != 0) {
        int64_t stored = view_version(view->str, view->len);
        if (stored != p->version)
            difference(v, "stale view: %s has version %" PRId64 ", write model has %" PRId64, p->id,
                       stored, p->version);
        else
            difference(v, "different view: %s (version %" PRId64 ")", p->id, p->version);
    }
    if (sku_owner->type != REDIS_REPLY_STRING || strcmp(sku_owner->str, p->id) != 0)
        difference(v, "sku index: %s should name %s", p->sku, p->id);
    if (in_all->type == REDIS_REPLY_NIL) difference(v, "catalog index: %s missing", p->id);
    if ((in_stock->type != REDIS_REPLY_NIL) != p->in_stock)
        difference(v, "in-stock index: %s %s", p->id, p->in_stock ? "missing" : "extra");
}

/* Sends one variadic command over the page: "name" ["key"] then, per product, the argument
 * "arg_of" writes into "scratch" (an arena of LAYOUT_KEY_MAX bytes per product). */
static void send_page_command(struct verify *v, const char *name, const char *key,
                              int (*arg_of)(const struct verify *v, int i, char *out),
                              char *scratch, const char **argv, size_t *lens)
{
    int n = 0;
    argv[n] = name;
    lens[n++] = strlen(name);
    if (key) {
        argv[n] = key;
        lens[n++] = strlen(key);
    }
    for (int i = 0; i < v->page_count; i++) {
        char *out = scratch + (size_t)i * LAYOUT_KEY_MAX;
        lens[n] = (size_t)arg_of(v, i, out);
        argv[n++] = out;
    }
    redis_sync_append(v->redis, n, argv, lens);
}

static int view_key_of(const struct verify *v, int i, char *out)
{
    return (int)layout_key(KEY_VIEW, v->base, v->page[i].id, UUID_TEXT_LEN, out, LAYOUT_KEY_MAX);
}

static int sku_key_of(const struct verify *v, int i, char *out)
{
    const char *sku = v->page[i].sku;
    return (int)layout_key(KEY_SKU, v->base, sku, strlen(sku), out, LAYOUT_KEY_MAX);
}

static int id_of(const struct verify *v, int i, char *out)
{
    return snprintf(out, LAYOUT_KEY_MAX, "%s", v->page[i].id);
}

/* Four commands for the whole page: MGET of the views, MGET of the sku entries, ZMSCORE in
 * "all" and in "in_stock"; then one check per product. */
static int check_page(struct verify *v)
{
    if (v->page_count == 0) return 0;
    char all_key[LAYOUT_KEY_MAX], stock_key[LAYOUT_KEY_MAX];
    layout_key(KEY_ALL, v->base, NULL, 0, all_key, sizeof(all_key));
    layout_key(KEY_IN_STOCK, v->base, NULL, 0, stock_key, sizeof(stock_key));
    send_page_command(v, "MGET", NULL, view_key_of, v->scratch, v->argv, v->lens);
    send_page_command(v, "MGET", NULL, sku_key_of, v->scratch, v->argv, v->lens);
    send_page_command(v, "ZMSCORE", all_key, id_of, v->scratch, v->argv, v->lens);
    send_page_command(v, "ZMSCORE", stock_key, id_of, v->scratch, v->argv, v->lens);
    redisReply *replies[4] = {0};
    int rc = 0;
    for (int r = 0; r < 4; r++) {
        replies[r] = next_reply(v);
        if (!replies[r] || replies[r]->type != REDIS_REPLY_ARRAY ||
            replies[r]->elements != (size_t)v->page_count) {
            if (replies[r]) snprintf(v->err, v->errlen, "unexpected reply to a verify command");
            rc = -1;
        }
    }
    for (int i = 0; rc == 0 && i < v->page_count; i++)
        check_product(v, &v->page[i], replies[0]->element[i], replies[1]->element[i],
                      replies[2]->element[i], replies[3]->element[i]);
    for (int r = 0; r < 4; r++)
        freeReplyObject(replies[r]);
    return rc;
}

/* Members of sorted set "set" in the id range (after, upto] that are not in the page:
 * entries for products the write model does not have. "upto" NULL means to the end. */
static int check_extras(struct verify *v, enum layout_key set, const char *after, const char *upto)
{
    char key[LAYOUT_KEY_MAX], min[UUID_TEXT_LEN + 2], max[UUID_TEXT_LEN + 2];
    const char *name = set == KEY_ALL ? "catalog" : "in-stock";
    layout_key(set, v->base, NULL, 0, key, sizeof(key));
    snprintf(min, sizeof(min), "%s%s", after[0] ? "(" : "-", after);
    snprintf(max, sizeof(max), "%s%s", upto ? "[" : "+", upto ? upto : "");
    for (;;) {
        const char *argv[] = {"ZRANGEBYLEX", key, min, max, "LIMIT", "0", "1000"};
        redisReply *reply = redis_sync_command(v->redis, 7, argv, NULL, v->err, v->errlen);
        if (!reply) return -1;
        if (reply->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(reply);
            snprintf(v->err, v->errlen, "unexpected ZRANGEBYLEX reply");
            return -1;
        }
        int j = 0;
        for (size_t i = 0; i < reply->elements; i++) {
            const char *id = reply->element[i]->str;
            while (j < v->page_count && strcmp(v->page[j].id, id) < 0)
                j++;
            if (j >= v->page_count || strcmp(v->page[j].id, id) != 0)
                difference(v, "extra %s index entry: %s (no such product)", name, id);
        }
        size_t n = reply->elements;
        if (n > 0) snprintf(min, sizeof(min), "(%s", reply->element[n - 1]->str);
        freeReplyObject(reply);
        if (n < 1000) return 0;
    }
}

static int compare(struct verify *v)
{
    char after[UUID_TEXT_LEN + 1] = "";
    int visited;
    do {
        v->page_count = 0;
        visited = store_scan_products(v->store, after, PAGE, collect_product, v);
        if (visited < 0) {
            snprintf(v->err, v->errlen, "%s", store_errmsg(v->store));
            return -1;
        }
        v->report->products += visited;
        const char *upto = visited == PAGE ? v->page[visited - 1].id : NULL;
        if (check_page(v) < 0 || check_extras(v, KEY_ALL, after, upto) < 0 ||
            check_extras(v, KEY_IN_STOCK, after, upto) < 0)
            return -1;
        if (visited > 0) memcpy(after, v->page[visited - 1].id, sizeof(after));
    } while (visited == PAGE);
    return 0;
}

/* A view or sku key of the generation, found by SCAN: is there a product it stands for? */
static void check_stray_key(struct verify *v, const char *key, size_t len)
{
    struct product product;
    char owner[UUID_TEXT_LEN + 1];
    size_t base_len = strlen(v->base);
    char view_start[LAYOUT_KEY_MAX], sku_start[LAYOUT_KEY_MAX];
    size_t view_len = layout_key(KEY_VIEW, v->base, NULL, 0, view_start, sizeof(view_start));
    size_t sku_len = layout_key(KEY_SKU, v->base, NULL, 0, sku_start, sizeof(sku_start));
    if (len > view_len && memcmp(key, view_start, view_len) == 0) {
        const char *id = key + view_len;
        if (len - view_len != UUID_TEXT_LEN ||
            store_get_product(v->store, id, &product) == STORE_NOT_FOUND)
            difference(v, "extra view: %s (no such product)", key + base_len);
    } else if (len > sku_len && memcmp(key, sku_start, sku_len) == 0) {
        if (store_find_sku(v->store, key + sku_len, owner) == STORE_NOT_FOUND)
            difference(v, "extra sku entry: %s (no product has this sku)", key + sku_len);
    }
}

/* Views and sku entries that no product explains: one SCAN of the generation's keys. */
static int check_stray_keys(struct verify *v)
{
    char pattern[2 * LAYOUT_BASE_MAX + 2], cursor[32] = "0";
    layout_match_pattern(v->base, pattern, sizeof(pattern));
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        redisReply *reply = redis_sync_command(v->redis, 6, argv, NULL, v->err, v->errlen);
        if (!reply) return -1;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(reply);
            snprintf(v->err, v->errlen, "unexpected SCAN reply");
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", reply->element[0]->str);
        const redisReply *keys = reply->element[1];
        for (size_t i = 0; i < keys->elements; i++)
            if (keys->element[i]->type == REDIS_REPLY_STRING)
                check_stray_key(v, keys->element[i]->str, keys->element[i]->len);
        freeReplyObject(reply);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* Events parked in the generation: their views are not in Redis yet. */
static int check_parked(struct verify *v, const char *prefix, int64_t gen)
{
    struct apply_target target = {prefix, gen, NULL, 0};
    int64_t parked = 0;
    if (apply_list_parked(v->redis, &target, NULL, NULL, &parked, v->err, v->errlen) != APPLY_OK)
        return -1;
    if (parked > 0)
        difference(v, "parked: %lld event%s Redis refused, not applied yet", (long long)parked,
                   parked == 1 ? "" : "s");
    return 0;
}

/* Waits until Redis' checkpoint reaches the write model's head, or "settle_ms" passes. */
static int settle(struct verify *v, const char *checkpoint_key, int settle_ms)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)settle_ms;
    for (;;) {
        long long checkpoint = 0;
        int64_t head = 0;
        if (redis_sync_get_int(v->redis, checkpoint_key, &checkpoint, v->err, v->errlen) < 0)
            return -1;
        if (store_head_seq(v->store, &head) < 0) {
            snprintf(v->err, v->errlen, "%s", store_errmsg(v->store));
            return -1;
        }
        if (checkpoint >= head || clock_mono_ms() >= deadline) return 0;
        usleep(50 * 1000);
    }
}

/* Opens a snapshot in which Redis' checkpoint equals the write model's head, so that lag is
 * not reported as a difference; under a steady write load that may take a few tries, and
 * after "settle_ms" the comparison runs on whatever it has (reporting the lag). */
static int open_settled_snapshot(struct verify *v, const char *checkpoint_key, int settle_ms,
                                 long long *checkpoint)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)settle_ms;
    for (;;) {
        int64_t remaining = (int64_t)(deadline - clock_mono_ms());
        if (settle(v, checkpoint_key, remaining > 0 ? (int)remaining : 0) < 0) return -1;
        if (store_snapshot_begin(v->store, &v->report->head) < 0) {
            snprintf(v->err, v->errlen, "%s", store_errmsg(v->store));
            return -1;
        }
        int rc = redis_sync_get_int(v->redis, checkpoint_key, checkpoint, v->err, v->errlen);
        if (rc < 0) {
            store_snapshot_end(v->store);
            return -1;
        }
        if (rc == 1) *checkpoint = -1;
        if (*checkpoint == v->report->head || clock_mono_ms() >= deadline) return 0;
        store_snapshot_end(v->store); /* writes came in between: look again */
    }
}

int verify_run(struct store *store, struct redis_sync *redis, const char *prefix, int settle_ms,
               FILE *out, struct verify_report *report, char *err, size_t errlen)
{
    struct verify v = {
        .store = store, .redis = redis, .out = out, .report = report, .err = err, .errlen = errlen};
    memset(report, 0, sizeof(*report));
    char key[LAYOUT_KEY_MAX];
    long long gen = 0, checkpoint = 0, gen_after = 0;
    layout_key(KEY_GEN, prefix, NULL, 0, key, sizeof(key));
    int rc = redis_sync_get_int(redis, key, &gen, err, errlen);
    if (rc < 0) return -1;
    if (rc == 1) {
        difference(&v, "no generation: the read model is empty or was never built");
        return 0;
    }
    report->generation = gen;
    layout_base(prefix, gen, v.base, sizeof(v.base));
    char checkpoint_key[LAYOUT_KEY_MAX];
    layout_key(KEY_CHECKPOINT, v.base, NULL, 0, checkpoint_key, sizeof(checkpoint_key));
    if (open_settled_snapshot(&v, checkpoint_key, settle_ms, &checkpoint) < 0) return -1;
    report->checkpoint = checkpoint;
    if (checkpoint < 0)
        difference(&v, "checkpoint: missing for generation %lld", gen);
    else if (checkpoint != report->head)
        difference(&v, "checkpoint: %lld, but the event log's head is %" PRId64, checkpoint,
                   report->head);
    v.page = xmalloc(PAGE * sizeof(*v.page));
    v.scratch = xmalloc((size_t)PAGE * LAYOUT_KEY_MAX);
    v.argv = xmalloc((PAGE + 2) * sizeof(*v.argv));
    v.lens = xmalloc((PAGE + 2) * sizeof(*v.lens));
    rc = compare(&v);
    if (rc == 0) rc = check_stray_keys(&v);
    if (rc == 0) rc = check_parked(&v, prefix, gen);
    /* A rebuild that switched meanwhile may have dropped what was compared: say so rather
     * than report its keys as missing. */
    if (rc == 0 && redis_sync_get_int(redis, key, &gen_after, err, errlen) == 0 && gen_after != gen)
        difference(&v, "generation changed from %lld to %lld during verify: run it again", gen,
                   gen_after);
    free(v.page);
    free(v.scratch);
    free(v.argv);
    free(v.lens);
    store_snapshot_end(store);
    return rc < 0 ? -1 : 0;
}
