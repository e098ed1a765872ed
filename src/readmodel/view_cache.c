/* view_cache.c - a set-associative table of views: each id belongs to one set of WAYS slots,
 * and a new view takes a free slot of its set, or else its slots in turn. Sets
 * are guarded by STRIPES mutexes, each over an equal run of consecutive sets, and each stripe
 * counts what was forgotten in it: a ticket is that count, so a view stored with a ticket is
 * known not to predate a forget of its stripe. The slots take a quarter of the budget at
 * most (their tags a sixteenth of that), the views the rest.
 * Each slot has a tag beside it, a hash of its id (0 when empty), and a set's tags share a
 * cache line apart from the slots: looking up an id the set does not hold, as the projector
 * does for every product it creates, reads that one line rather than each slot's. */
#include "readmodel/view_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "domain/uuid7.h"

#define STRIPES          256 /* a power of two */
#define WAYS             4   /* slots per set */
#define SLOTS_SHARE      4   /* the slots take at most 1/4 of the budget: one per 256 bytes */
#define UUID_RANDOM_TAIL 8   /* the last hex digits of a UUIDv7 are random: the hash */
#define CACHE_LINE       64

/* One cache line: a hit reads its tag's line, then this one. */
struct slot {
    char id[UUID_TEXT_LEN]; /* empty when view is NULL */
    uint32_t len;           /* at most VIEW_CACHE_MAX_VIEW */
    int64_t generation;
    char *view;
} __attribute__((aligned(CACHE_LINE)));

struct stripe {
    pthread_mutex_t lock;
    uint64_t seq; /* forgets in this stripe (tickets) */
    uint64_t hits, misses;
    size_t held;          /* views in this stripe's sets: forgetting all skips it at 0 */
    unsigned next_victim; /* the way a full set of this stripe gives up next */
} __attribute__((aligned(CACHE_LINE)));

struct view_cache {
    struct stripe stripes[STRIPES];
    struct slot *slots; /* set i is slots[i * WAYS ... i * WAYS + WAYS - 1] */
    uint32_t *tags;     /* tags[k] is slots[k]'s: 0 when it is empty, else tag_of its id */
    size_t set_mask;
    unsigned stripe_shift; /* set i is guarded by stripe i >> stripe_shift */
    size_t max_bytes;      /* of the views */
    _Atomic uint64_t bytes, views;
};

/* Zeroed memory on a cache line's boundary: calloc's would split each slot across two lines.
 * "bytes" is a multiple of CACHE_LINE (aligned_alloc's rule). */
static void *zeroed_lines(size_t bytes)
{
    void *p = aligned_alloc(CACHE_LINE, bytes);
    if (!p) xmalloc_fail();
    return memset(p, 0, bytes);
}

struct view_cache *view_cache_new(size_t max_bytes)
{
    if (max_bytes == 0) return NULL;
    struct view_cache *cache = zeroed_lines(sizeof(*cache)); /* stripes are lines too */
    size_t sets = STRIPES;
    while (sets * 2 * WAYS * sizeof(struct slot) <= max_bytes / SLOTS_SHARE)
        sets *= 2;
    size_t slot_bytes = sets * WAYS * (sizeof(struct slot) + sizeof(uint32_t)); /* and tags */
    /* Both multiples of CACHE_LINE: there are STRIPES sets at least. */
    cache->slots = zeroed_lines(sets * WAYS * sizeof(*cache->slots));
    cache->tags = zeroed_lines(sets * WAYS * sizeof(*cache->tags));
    cache->set_mask = sets - 1;
    while ((size_t)STRIPES << cache->stripe_shift < sets)
        cache->stripe_shift++;
    cache->max_bytes = max_bytes > slot_bytes ? max_bytes - slot_bytes : 0;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&cache->stripes[i].lock, NULL);
    return cache;
}

static void empty_slot(struct view_cache *cache, struct stripe *stripe, struct slot *slot)
{
    if (!slot->view) return;
    atomic_fetch_sub(&cache->bytes, slot->len);
    atomic_fetch_sub(&cache->views, 1);
    stripe->held--;
    free(slot->view);
    slot->view = NULL;
    slot->len = 0;
    cache->tags[slot - cache->slots] = 0;
}

/* Empties every slot of the sets stripe "s" guards (its lock held, or no other thread). */
static void empty_stripe(struct view_cache *cache, size_t s)
{
    struct stripe *stripe = &cache->stripes[s];
    size_t first = s << cache->stripe_shift, end = (s + 1) << cache->stripe_shift;
    for (size_t i = first * WAYS; stripe->held > 0 && i < end * WAYS; i++)
        empty_slot(cache, stripe, &cache->slots[i]);
}

void view_cache_free(struct view_cache *cache)
{
    if (!cache) return;
    for (size_t s = 0; s < STRIPES; s++) {
        empty_stripe(cache, s);
        pthread_mutex_destroy(&cache->stripes[s].lock);
    }
    free(cache->slots);
    free(cache->tags);
    free(cache);
}

static uint64_t id_hash(const char *id)
{
    uint64_t tail;
    memcpy(&tail, id + UUID_TEXT_LEN - UUID_RANDOM_TAIL, sizeof(tail));
    return tail * 0x9E3779B97F4A7C15ULL;
}

static size_t set_index(const struct view_cache *cache, const char *id)
{
    return (size_t)(id_hash(id) >> 32) & cache->set_mask;
}

/* Never 0, the tag of an empty slot. The hash's low half depends on only 4 of the tail's
 * digits; its high half, which also picks the set, on all 8. */
static uint32_t tag_of(const char *id)
{
    uint64_t hash = id_hash(id);
    return (uint32_t)(hash ^ hash >> 32) | 1;
}

static struct stripe *stripe_of(struct view_cache *cache, size_t set)
{
    return &cache->stripes[set >> cache->stripe_shift];
}

/* The slot of set "set" that holds "id", or NULL. */
static struct slot *find(struct view_cache *cache, size_t set, const char *id)
{
    struct slot *slots = &cache->slots[set * WAYS];
    const uint32_t *tags = &cache->tags[set * WAYS];
    uint32_t tag = tag_of(id);
    for (int way = 0; way < WAYS; way++)
        if (tags[way] == tag && memcmp(slots[way].id, id, UUID_TEXT_LEN) == 0) return &slots[way];
    return NULL;
}

/* The slot for a new view of "id" in set "set": its own, a free one, or the next victim. */
static struct slot *claim(struct view_cache *cache, struct stripe *stripe, size_t set,
                          const char *id)
{
    struct slot *slot = find(cache, set, id), *slots = &cache->slots[set * WAYS];
    const uint32_t *tags = &cache->tags[set * WAYS];
    for (int way = 0; !slot && way < WAYS; way++)
        if (tags[way] == 0) slot = &slots[way];
    if (!slot) slot = &slots[stripe->next_victim++ % WAYS];
    empty_slot(cache, stripe, slot);
    return slot;
}

struct view_cache_ticket view_cache_ticket(struct view_cache *cache, const char *id)
{
    if (!cache) return (struct view_cache_ticket){0};
    struct stripe *stripe = stripe_of(cache, set_index(cache, id));
    pthread_mutex_lock(&stripe->lock);
    struct view_cache_ticket ticket = {stripe->seq};
    pthread_mutex_unlock(&stripe->lock);
    return ticket;
}

/* Takes "len" bytes of the budget, or returns -1 when they do not fit. */
static int take_budget(struct view_cache *cache, size_t len)
{
    if (atomic_fetch_add(&cache->bytes, len) + len <= cache->max_bytes) return 0;
    atomic_fetch_sub(&cache->bytes, len);
    return -1;
}

void view_cache_store(struct view_cache *cache, const char *id, int64_t generation,
                      struct view_cache_ticket ticket, const char *view, size_t len)
{
    if (!cache || len == 0 || len > VIEW_CACHE_MAX_VIEW) return;
    size_t set = set_index(cache, id);
    struct stripe *stripe = stripe_of(cache, set);
    pthread_mutex_lock(&stripe->lock);
    if (stripe->seq == ticket.seq) {
        struct slot *slot = claim(cache, stripe, set, id);
        if (take_budget(cache, len) == 0) {
            slot->view = xmalloc(len);
            memcpy(slot->view, view, len);
            slot->len = (uint32_t)len;
            memcpy(slot->id, id, UUID_TEXT_LEN);
            slot->generation = generation;
            cache->tags[slot - cache->slots] = tag_of(id);
            atomic_fetch_add(&cache->views, 1);
            stripe->held++;
        }
    }
    pthread_mutex_unlock(&stripe->lock);
}

size_t view_cache_copy(struct view_cache *cache, const char *id, int64_t generation,
                       char *(*alloc)(void *arg, size_t len), void *arg, char **out)
{
    if (!cache) return 0;
    size_t set = set_index(cache, id), len = 0;
    struct stripe *stripe = stripe_of(cache, set);
    pthread_mutex_lock(&stripe->lock);
    struct slot *slot = find(cache, set, id);
    if (slot && slot->generation == generation) {
        char *copy = alloc(arg, slot->len);
        memcpy(copy, slot->view, slot->len);
        *out = copy;
        len = slot->len;
        stripe->hits++;
    } else {
        stripe->misses++;
    }
    pthread_mutex_unlock(&stripe->lock);
    return len;
}

void view_cache_count_miss(struct view_cache *cache, const char *id)
{
    if (!cache) return;
    struct stripe *stripe = stripe_of(cache, set_index(cache, id));
    pthread_mutex_lock(&stripe->lock);
    stripe->misses++;
    pthread_mutex_unlock(&stripe->lock);
}

void view_cache_forget(struct view_cache *cache, const char *id)
{
    if (!cache) return;
    size_t set = set_index(cache, id);
    struct stripe *stripe = stripe_of(cache, set);
    pthread_mutex_lock(&stripe->lock);
    stripe->seq++;
    struct slot *slot = find(cache, set, id);
    if (slot) empty_slot(cache, stripe, slot);
    pthread_mutex_unlock(&stripe->lock);
}

void view_cache_forget_all(struct view_cache *cache)
{
    if (!cache) return;
    for (size_t s = 0; s < STRIPES; s++) {
        struct stripe *stripe = &cache->stripes[s];
        pthread_mutex_lock(&stripe->lock);
        stripe->seq++;
        empty_stripe(cache, s);
        pthread_mutex_unlock(&stripe->lock);
    }
}

void view_cache_get_stats(struct view_cache *cache, struct view_cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!cache) return;
    for (int s = 0; s < STRIPES; s++) {
        struct stripe *stripe = &cache->stripes[s];
        pthread_mutex_lock(&stripe->lock);
        out->hits += stripe->hits;
        out->misses += stripe->misses;
        pthread_mutex_unlock(&stripe->lock);
    }
    out->bytes = atomic_load(&cache->bytes);
    out->views = atomic_load(&cache->views);
}
