/* verify.c - walks the write model's products in id order and checks, page by page, their
 * views (the members of both view sets in the page's id range, which also finds views no
 * product explains) and their sku entries; then looks for sku entries no product explains and
 * for keys of the generation that the layout does not have. Nothing is loaded whole.
 *
 * The write model is read in one snapshot, but Redis is read live: a write committed after
 * the snapshot and applied while a page is compared would show as a difference (a view newer
 * than the snapshot's product, a product the snapshot does not have). So what a page finds
 * about a product or a sku entry is held until Redis' checkpoint is read again: still where
 * it was when the snapshot opened, no event was applied meanwhile, and the lines are printed
 * (an unparked event changes a view without moving the checkpoint, but only toward the
 * snapshot's state: at worst a parked event's view is reported as it was a moment before);
 * moved on, their products and skus are looked at again, one by one, each in a new snapshot,
 * until one is compared while the checkpoint stays put (recheck_suspects). */
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

/* What a held line is about, to look at again: a product id or a sku (or nothing: a line
 * about Redis' content alone, which no write explains, is printed whatever happens). */
enum subject_kind { SUBJECT_NONE, SUBJECT_PRODUCT, SUBJECT_SKU };

struct subject {
    enum subject_kind kind;
    char text[PRODUCT_SKU_MAX + 1]; /* an id (UUID_TEXT_LEN) or a sku */
};

struct held_line {
    struct subject about;
    char *line;
};

struct page_product {
    char id[UUID_TEXT_LEN + 1];
    char sku[PRODUCT_SKU_MAX + 1];
    int64_t version;
    int in_stock;
    int views_found; /* members of either view set with this id */
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
    const char **argv; /* PAGE + 2 */
    size_t *lens;
    long long skus_naming_their_product; /* sku entries that check_page found right */
    char checkpoint_key[LAYOUT_KEY_MAX];
    long long checkpoint_seen; /* Redis' checkpoint when the current snapshot opened */
    int holding;               /* lines about products and skus wait in "held" */
    struct held_line *held;
    size_t held_count, held_cap;
    struct subject *suspects; /* to look at again: what held lines were about */
    size_t suspect_count, suspect_cap;
    char *err;
    size_t errlen;
};

/* Formats one line of the report into "out". What Redis holds is shown as it is only where it
 * is printable ASCII, and as \xNN elsewhere: a broken read model may hold any bytes, a
 * terminal's escape sequences too. */
static void format_line(char *out, size_t cap, const char *fmt, va_list args)
{
    char line[1024];
    int len = vsnprintf(line, sizeof(line), fmt, args);
    size_t n = 0;
    for (size_t i = 0; len > 0 && i < (size_t)len && i < sizeof(line) - 1 && n + 5 < cap; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c >= 0x20 && c < 0x7f)
            out[n++] = (char)c;
        else
            n += (size_t)snprintf(out + n, cap - n, "\\x%02x", c);
    }
    out[n] = '\0';
}

static void print_line(struct verify *v, const char *line)
{
    fprintf(v->out, "%s\n", line);
    v->report->differences++;
}

/* A line about "about": printed, or held while v->holding (see the top of the file). */
static void report_line(struct verify *v, const struct subject *about, const char *fmt,
                        va_list args)
{
    char line[4 * 1024];
    format_line(line, sizeof(line), fmt, args);
    if (!v->holding || about->kind == SUBJECT_NONE) {
        print_line(v, line);
        return;
    }
    if (v->held_count == v->held_cap) {
        v->held_cap = v->held_cap ? 2 * v->held_cap : 64;
        v->held = xrealloc(v->held, v->held_cap * sizeof(*v->held));
    }
    size_t len = strlen(line) + 1;
    v->held[v->held_count] = (struct held_line){*about, xmalloc(len)};
    memcpy(v->held[v->held_count++].line, line, len);
}

static void difference(struct verify *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void difference(struct verify *v, const char *fmt, ...)
{
    static const struct subject nothing = {SUBJECT_NONE, ""};
    va_list args;
    va_start(args, fmt);
    report_line(v, &nothing, fmt, args);
    va_end(args);
}

/* A difference about product "id" or sku "sku" (its text, when it could be one). */
static void product_difference(struct verify *v, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void product_difference(struct verify *v, const char *id, const char *fmt, ...)
{
    struct subject about = {SUBJECT_PRODUCT, ""};
    memcpy(about.text, id, UUID_TEXT_LEN);
    va_list args;
    va_start(args, fmt);
    report_line(v, &about, fmt, args);
    va_end(args);
}

static void sku_difference(struct verify *v, const char *sku, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sku_difference(struct verify *v, const char *sku, size_t len, const char *fmt, ...)
{
    struct subject about = {SUBJECT_NONE, ""};
    if (len <= PRODUCT_SKU_MAX && !memchr(sku, '\0', len)) {
        about.kind = SUBJECT_SKU;
        memcpy(about.text, sku, len);
    }
    va_list args;
    va_start(args, fmt);
    report_line(v, &about, fmt, args);
    va_end(args);
}

static void add_suspect(struct verify *v, const struct subject *about)
{
    if (v->suspect_count == v->suspect_cap) {
        v->suspect_cap = v->suspect_cap ? 2 * v->suspect_cap : 64;
        v->suspects = xrealloc(v->suspects, v->suspect_cap * sizeof(*v->suspects));
    }
    v->suspects[v->suspect_count++] = *about;
}

/* Ends a stretch of held lines: reads Redis' checkpoint; where it still is where it was when
 * the snapshot opened, prints them ("settled" 1), else makes what they are about suspects
 * (or, when "keep" is 0, drops them: the caller keeps its own suspect). */
static int release_held(struct verify *v, int keep, int *settled)
{
    long long checkpoint = -1;
    int rc = redis_sync_get_int(v->redis, v->checkpoint_key, &checkpoint, v->err, v->errlen);
    if (rc < 0) return -1;
    if (rc == 1) checkpoint = -1; /* none, as when the snapshot opened: it did not move */
    *settled = checkpoint == v->checkpoint_seen;
    for (size_t i = 0; i < v->held_count; i++) {
        if (*settled)
            print_line(v, v->held[i].line);
        else if (keep)
            add_suspect(v, &v->held[i].about);
        free(v->held[i].line);
    }
    v->held_count = 0;
    v->holding = 0;
    return 0;
}

static int collect_product(const struct product *p, void *arg)
{
    struct verify *v = arg;
    struct page_product *pp = &v->page[v->page_count++];
    memcpy(pp->id, p->id, sizeof(pp->id));
    memcpy(pp->sku, p->sku, sizeof(pp->sku));
    pp->version = p->version;
    pp->in_stock = p->stock > 0;
    pp->views_found = 0;
    pp->view_len = view_encode(p, pp->view, sizeof(pp->view));
    return 0;
}

/* A member of a view set (the in-stock one when "in_stock") against the page's product of
 * the same id, if any. */
static void check_view(struct verify *v, const redisReply *view, int in_stock, int *j)
{
    const char *id = view->type == REDIS_REPLY_STRING ? view_id(view->str, view->len) : NULL;
    if (!id) {
        difference(v, "not a view in the %s set: %.60s", in_stock ? "in-stock" : "out-of-stock",
                   view->type == REDIS_REPLY_STRING ? view->str : "");
        return;
    }
    while (*j < v->page_count && memcmp(v->page[*j].id, id, UUID_TEXT_LEN) < 0)
        (*j)++;
    if (*j >= v->page_count || memcmp(v->page[*j].id, id, UUID_TEXT_LEN) != 0) {
        product_difference(v, id, "extra view: %.*s (no such product)", UUID_TEXT_LEN, id);
        return;
    }
    struct page_product *p = &v->page[*j];
    if (++p->views_found > 1) product_difference(v, p->id, "duplicate view: %s", p->id);
    if (in_stock != p->in_stock)
        product_difference(v, p->id, "in-stock index: %s %s", p->id,
                           p->in_stock ? "missing" : "extra");
    if (view->len != p->view_len || memcmp(view->str, p->view, p->view_len) != 0) {
        int64_t stored = view_version(view->str, view->len);
        if (stored != p->version)
            product_difference(v, p->id,
                               "stale view: %s has version %" PRId64 ", write model has %" PRId64,
                               p->id, stored, p->version);
        else
            product_difference(v, p->id, "different view: %s (version %" PRId64 ")", p->id,
                               p->version);
    }
}

/* The members of one view set from bound "first" to bound "last" (ZRANGEBYLEX's forms), a
 * thousand at a time, each checked against the page. */
static int check_view_range(struct verify *v, enum layout_key set, const char *first,
                            size_t first_len, const char *last, size_t last_len)
{
    char key[LAYOUT_KEY_MAX];
    layout_key(set, v->base, NULL, 0, key, sizeof(key));
    /* Past the first thousand: "(" and the whole last member read (any member of a broken
       read model: a cut one would sort before it and read it again). */
    char *low = xmalloc(first_len);
    memcpy(low, first, first_len);
    size_t low_len = first_len;
    int j = 0, rc = 0;
    for (;;) {
        const char *argv[] = {"ZRANGEBYLEX", key, low, last, "LIMIT", "0", "1000"};
        const size_t lens[] = {11, strlen(key), low_len, last_len, 5, 1, 4};
        redisReply *reply = redis_sync_command(v->redis, 7, argv, lens, v->err, v->errlen);
        if (!reply) {
            rc = -1;
            break;
        }
        if (reply->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(reply);
            snprintf(v->err, v->errlen, "unexpected ZRANGEBYLEX reply");
            rc = -1;
            break;
        }
        for (size_t i = 0; i < reply->elements; i++)
            check_view(v, reply->element[i], set == KEY_IN_STOCK, &j);
        size_t n = reply->elements;
        if (n > 0 && reply->element[n - 1]->type == REDIS_REPLY_STRING) {
            const redisReply *member = reply->element[n - 1];
            low = xrealloc(low, member->len + 1);
            low[0] = '(';
            memcpy(low + 1, member->str, member->len);
            low_len = member->len + 1;
        }
        freeReplyObject(reply);
        if (n < 1000) break;
    }
    free(low);
    return rc;
}

/* The members of one view set in the id range (after, upto] ("upto" NULL: to the end). */
static int check_view_set(struct verify *v, enum layout_key set, const char *after,
                          const char *upto)
{
    char low[LAYOUT_VIEW_BOUND_MAX] = "-", high[LAYOUT_VIEW_BOUND_MAX] = "+";
    size_t low_len = 1, high_len = 1;
    if (after[0]) low_len = layout_view_bound('(', after, UUID_TEXT_LEN, 1, low, sizeof(low));
    /* Inclusive: the next page starts after this very bound, so a member equal to it (no view
       is: it ends the id's range) is read once, not by neither page. */
    if (upto) high_len = layout_view_bound('[', upto, UUID_TEXT_LEN, 1, high, sizeof(high));
    return check_view_range(v, set, low, low_len, high, high_len);
}

/* HMGET of the page's skus: each must name its product; and every product has a view. */
static int check_page(struct verify *v)
{
    if (v->page_count == 0) return 0;
    char skus_key[LAYOUT_KEY_MAX];
    layout_key(KEY_SKUS, v->base, NULL, 0, skus_key, sizeof(skus_key));
    int n = 0;
    v->argv[n] = "HMGET";
    v->lens[n++] = 5;
    v->argv[n] = skus_key;
    v->lens[n++] = strlen(skus_key);
    for (int i = 0; i < v->page_count; i++) {
        v->argv[n] = v->page[i].sku;
        v->lens[n++] = strlen(v->page[i].sku);
    }
    redisReply *owners = redis_sync_command(v->redis, n, v->argv, v->lens, v->err, v->errlen);
    if (!owners) return -1;
    int rc = 0;
    if (owners->type != REDIS_REPLY_ARRAY || owners->elements != (size_t)v->page_count) {
        snprintf(v->err, v->errlen, "unexpected reply to HMGET of the skus");
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < v->page_count; i++) {
        const struct page_product *p = &v->page[i];
        const redisReply *owner = owners->element[i];
        if (owner->type != REDIS_REPLY_STRING || owner->len != UUID_TEXT_LEN ||
            memcmp(owner->str, p->id, UUID_TEXT_LEN) != 0)
            product_difference(v, p->id, "sku index: %s should name %s", p->sku, p->id);
        else
            v->skus_naming_their_product++;
        if (p->views_found == 0)
            product_difference(v, p->id, "missing view: %s (sku %s, version %" PRId64 ")", p->id,
                               p->sku, p->version);
    }
    freeReplyObject(owners);
    return rc;
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
        int settled;
        v->holding = 1;
        if (check_view_set(v, KEY_IN_STOCK, after, upto) < 0 ||
            check_view_set(v, KEY_OUT_OF_STOCK, after, upto) < 0 || check_page(v) < 0 ||
            release_held(v, 1, &settled) < 0)
            return -1;
        if (visited > 0) memcpy(after, v->page[visited - 1].id, sizeof(after));
    } while (visited == PAGE);
    return 0;
}

/* Runs a SCAN-like command ("argv", the cursor at argv[cursor_at]) from cursor 0 until
 * Redis says it is done, handing "visit" the items of each reply; stops if it fails. */
static int scan_all(struct verify *v, const char **argv, int argc, int cursor_at,
                    int (*visit)(struct verify *v, const redisReply *items))
{
    char cursor[32] = "0";
    argv[cursor_at] = cursor;
    do {
        redisReply *reply = redis_sync_command(v->redis, argc, argv, NULL, v->err, v->errlen);
        if (!reply) return -1;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(reply);
            snprintf(v->err, v->errlen, "unexpected %s reply", argv[0]);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", reply->element[0]->str);
        int rc = visit(v, reply->element[1]);
        freeReplyObject(reply);
        if (rc < 0) return -1;
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* "len" bytes of Redis as text for a report line: a NUL as \x00, which difference's format
 * would otherwise end the text at (the other bytes difference escapes itself). */
static void nul_escaped(const char *bytes, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 5 < cap; i++) {
        if (bytes[i] == '\0') {
            memcpy(out + n, "\\x00", 4);
            n += 4;
        } else {
            out[n++] = bytes[i];
        }
    }
    out[n] = '\0';
}

/* A sku entry's field ("len" bytes): is there a product with this sku? A field with a NUL in
 * it is no sku the write model can hold, and would be looked up as the sku it begins with. */
static int check_sku_entry(struct verify *v, const char *sku, size_t len)
{
    char owner[UUID_TEXT_LEN + 1], shown[4 * PRODUCT_SKU_MAX + 8];
    int rc = memchr(sku, '\0', len) ? STORE_NOT_FOUND : store_find_sku(v->store, sku, owner);
    if (rc == STORE_NOT_FOUND) {
        nul_escaped(sku, len, shown, sizeof(shown));
        sku_difference(v, sku, len, "extra sku entry: %s (no product has this sku)", shown);
    } else if (rc != STORE_OK) {
        snprintf(v->err, v->errlen, "%s", store_errmsg(v->store));
        return -1;
    }
    return 0;
}

/* HSCAN's sku, id pairs, each a sku entry to check. */
static int check_skus(struct verify *v, const redisReply *pairs)
{
    int settled;
    v->holding = 1;
    for (size_t i = 0; i + 1 < pairs->elements; i += 2) {
        const redisReply *sku = pairs->element[i];
        if (sku->type == REDIS_REPLY_STRING && check_sku_entry(v, sku->str, sku->len) < 0)
            return -1;
    }
    return release_held(v, 1, &settled);
}

/* Keys of the generation: is each of a kind the layout has? */
static int check_keys(struct verify *v, const redisReply *keys)
{
    size_t base_len = strlen(v->base);
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *key = keys->element[i];
        if (key->type == REDIS_REPLY_STRING && key->len > base_len &&
            !layout_known_in_generation(key->str + base_len, key->len - base_len))
            difference(v, "extra key: %s (not of the read model's layout)", key->str);
    }
    return 0;
}

/* Sku entries that no product explains, and keys of the generation that the layout does not
 * have (a SCAN of a handful of keys: the layout keeps no key per product).
 *
 * The skus hash holds one entry for each product whose entry check_page found right (skus are
 * unique in the write model); when it holds no more than those, no other entry exists and the
 * HSCAN, one write-model lookup per entry (a million round trips to PostgreSQL at a million
 * products), is skipped. Only when there are more does it look for them, to name each. */
static int check_strays(struct verify *v)
{
    char skus[LAYOUT_KEY_MAX], pattern[2 * LAYOUT_BASE_MAX + 2];
    layout_key(KEY_SKUS, v->base, NULL, 0, skus, sizeof(skus));
    layout_match_pattern(v->base, pattern, sizeof(pattern));
    /* An HLEN that fails (a Redis user without +hlen, README) leaves the HSCAN to run: a broken
       connection fails that too. */
    const char *hlen[] = {"HLEN", skus};
    redisReply *entries = redis_sync_command(v->redis, 2, hlen, NULL, v->err, v->errlen);
    int others = !entries || entries->type != REDIS_REPLY_INTEGER ||
                 entries->integer != v->skus_naming_their_product;
    if (entries) freeReplyObject(entries);
    const char *hscan[] = {"HSCAN", skus, NULL, "COUNT", "1000"};
    const char *scan[] = {"SCAN", NULL, "MATCH", pattern, "COUNT", "1000"};
    if (others && scan_all(v, hscan, 5, 2, check_skus) < 0) return -1;
    return scan_all(v, scan, 6, 1, check_keys);
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
 * after "settle_ms" the comparison runs on whatever it has (reporting the lag). Sets "*head",
 * and "*checkpoint" (-1 when there is none) and v->checkpoint_seen to Redis' checkpoint. */
static int open_settled_snapshot(struct verify *v, int settle_ms, int64_t *head,
                                 long long *checkpoint)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)(settle_ms > 0 ? settle_ms : 0);
    for (;;) {
        int64_t remaining = (int64_t)(deadline - clock_mono_ms());
        if (settle(v, v->checkpoint_key, remaining > 0 ? (int)remaining : 0) < 0) return -1;
        if (store_snapshot_begin(v->store, head) < 0) {
            snprintf(v->err, v->errlen, "%s", store_errmsg(v->store));
            return -1;
        }
        int rc = redis_sync_get_int(v->redis, v->checkpoint_key, checkpoint, v->err, v->errlen);
        if (rc < 0) {
            store_snapshot_end(v->store);
            return -1;
        }
        if (rc == 1) *checkpoint = -1;
        v->checkpoint_seen = *checkpoint;
        if (*checkpoint == *head || clock_mono_ms() >= deadline) return 0;
        store_snapshot_end(v->store); /* writes came in between: look again */
    }
}

/* Looks at product "id" alone, as a page of one: its views in both sets, its sku entry. */
static int check_one_product(struct verify *v, const char *id)
{
    struct product product;
    int rc = store_get_product(v->store, id, &product);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
        snprintf(v->err, v->errlen, "%s", store_errmsg(v->store));
        return -1;
    }
    v->page_count = 0;
    if (rc == STORE_OK) collect_product(&product, v);
    char first[LAYOUT_VIEW_BOUND_MAX], last[LAYOUT_VIEW_BOUND_MAX];
    size_t first_len = layout_view_bound('[', id, UUID_TEXT_LEN, 0, first, sizeof(first));
    size_t last_len = layout_view_bound('(', id, UUID_TEXT_LEN, 1, last, sizeof(last));
    if (check_view_range(v, KEY_IN_STOCK, first, first_len, last, last_len) < 0 ||
        check_view_range(v, KEY_OUT_OF_STOCK, first, first_len, last, last_len) < 0)
        return -1;
    return check_page(v);
}

/* Looks at the entry of sku "sku" alone: is there a product with this sku? */
static int check_one_sku(struct verify *v, const char *sku)
{
    char key[LAYOUT_KEY_MAX];
    layout_key(KEY_SKUS, v->base, NULL, 0, key, sizeof(key));
    const char *argv[] = {"HGET", key, sku};
    redisReply *owner = redis_sync_command(v->redis, 3, argv, NULL, v->err, v->errlen);
    if (!owner) return -1;
    int rc = owner->type == REDIS_REPLY_NIL ? 0 : check_sku_entry(v, sku, strlen(sku));
    freeReplyObject(owner);
    return rc;
}

static int subject_order(const void *a, const void *b)
{
    const struct subject *x = a, *y = b;
    return x->kind != y->kind ? (int)x->kind - (int)y->kind : strcmp(x->text, y->text);
}

/* Looks again at what pages found while Redis moved on, each product or sku alone in a new
 * settled snapshot, until one is looked at while Redis' checkpoint stays put: its lines are
 * then printed (none, when a write explained them). Gives up after "settle_ms", with a line
 * saying how many could not be compared. */
static int recheck_suspects(struct verify *v, int settle_ms)
{
    qsort(v->suspects, v->suspect_count, sizeof(*v->suspects), subject_order);
    size_t unique = 0;
    for (size_t i = 0; i < v->suspect_count; i++)
        if (unique == 0 || subject_order(&v->suspects[unique - 1], &v->suspects[i]) != 0)
            v->suspects[unique++] = v->suspects[i];
    size_t next = 0; /* suspects[next..unique) are left */
    uint64_t deadline = clock_mono_ms() + (uint64_t)settle_ms;
    while (next < unique && clock_mono_ms() < deadline) {
        store_snapshot_end(v->store);
        int64_t head;
        long long checkpoint;
        uint64_t now = clock_mono_ms();
        if (open_settled_snapshot(v, (int)(deadline > now ? deadline - now : 0), &head,
                                  &checkpoint) < 0)
            return -1;
        int settled = 1;
        while (settled && next < unique) {
            const struct subject *about = &v->suspects[next];
            v->holding = 1;
            int rc = about->kind == SUBJECT_PRODUCT ? check_one_product(v, about->text)
                                                    : check_one_sku(v, about->text);
            if (rc < 0 || release_held(v, 0, &settled) < 0) return -1;
            if (settled) next++;
        }
    }
    if (next < unique)
        difference(v,
                   "%zu product%s or sku entries could not be compared: Redis moved on each "
                   "time (writes during verify); run it again",
                   unique - next, unique - next == 1 ? "" : "s");
    return 0;
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
    int rc = redis_sync_get_generation(redis, key, &gen, err, errlen);
    if (rc < 0) return -1;
    if (rc == 1) {
        difference(&v, "no generation: the read model is empty or was never built");
        return 0;
    }
    if (rc == 2) {
        difference(&v, "no generation: %s names none", key);
        return 0;
    }
    report->generation = gen;
    layout_base(prefix, gen, v.base, sizeof(v.base));
    layout_key(KEY_CHECKPOINT, v.base, NULL, 0, v.checkpoint_key, sizeof(v.checkpoint_key));
    if (open_settled_snapshot(&v, settle_ms, &report->head, &checkpoint) < 0) return -1;
    report->checkpoint = checkpoint;
    if (checkpoint < 0)
        difference(&v, "checkpoint: missing for generation %lld", gen);
    else if (checkpoint != report->head)
        difference(&v, "checkpoint: %lld, but the event log's head is %" PRId64, checkpoint,
                   report->head);
    v.page = xmalloc(PAGE * sizeof(*v.page));
    v.argv = xmalloc((PAGE + 2) * sizeof(*v.argv));
    v.lens = xmalloc((PAGE + 2) * sizeof(*v.lens));
    rc = compare(&v);
    if (rc == 0) rc = check_strays(&v);
    if (rc == 0) rc = check_parked(&v, prefix, gen);
    if (rc == 0 && v.suspect_count > 0) rc = recheck_suspects(&v, settle_ms);
    /* A rebuild that switched meanwhile may have dropped what was compared: say so rather
     * than report its keys as missing. */
    if (rc == 0 && redis_sync_get_generation(redis, key, &gen_after, err, errlen) == 0 &&
        gen_after != gen)
        difference(&v, "generation changed from %lld to %lld during verify: run it again", gen,
                   gen_after);
    for (size_t i = 0; i < v.held_count; i++) /* left by a failure */
        free(v.held[i].line);
    free(v.held);
    free(v.suspects);
    free(v.page);
    free(v.argv);
    free(v.lens);
    store_snapshot_end(store);
    return rc < 0 ? -1 : 0;
}
