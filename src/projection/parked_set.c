/* parked_set.c - open addressing with linear probing; 0 marks an empty slot (seqs start at
 * 1), and removal shifts later entries back so that no tombstones accumulate. */
#include "projection/parked_set.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

#include "common/xmalloc.h"

#define INITIAL_SLOTS 16 /* a power of two */

struct parked_set {
    pthread_mutex_t lock;
    int64_t *slots;
    size_t slot_count; /* a power of two */
    size_t count;
};

static size_t home(const struct parked_set *set, int64_t seq)
{
    uint64_t h = (uint64_t)seq * 0x9e3779b97f4a7c15ULL; /* Fibonacci hashing */
    return (size_t)(h >> 32) & (set->slot_count - 1);
}

/* The slot holding "seq", or the empty slot where it would go. */
static size_t find(const struct parked_set *set, int64_t seq)
{
    size_t i = home(set, seq);
    while (set->slots[i] != 0 && set->slots[i] != seq)
        i = (i + 1) & (set->slot_count - 1);
    return i;
}

struct parked_set *parked_set_new(void)
{
    struct parked_set *set = xcalloc(1, sizeof(*set));
    pthread_mutex_init(&set->lock, NULL);
    set->slot_count = INITIAL_SLOTS;
    set->slots = xcalloc(set->slot_count, sizeof(*set->slots));
    return set;
}

void parked_set_free(struct parked_set *set)
{
    if (!set) return;
    free(set->slots);
    pthread_mutex_destroy(&set->lock);
    free(set);
}

static void grow(struct parked_set *set)
{
    int64_t *old = set->slots;
    size_t old_count = set->slot_count;
    set->slot_count *= 2;
    set->slots = xcalloc(set->slot_count, sizeof(*set->slots));
    for (size_t i = 0; i < old_count; i++)
        if (old[i] != 0) set->slots[find(set, old[i])] = old[i];
    free(old);
}

void parked_set_add(struct parked_set *set, int64_t seq)
{
    assert(seq > 0);
    pthread_mutex_lock(&set->lock);
    if (2 * (set->count + 1) > set->slot_count) grow(set); /* at most half full */
    size_t i = find(set, seq);
    if (set->slots[i] == 0) {
        set->slots[i] = seq;
        set->count++;
    }
    pthread_mutex_unlock(&set->lock);
}

void parked_set_remove(struct parked_set *set, int64_t seq)
{
    pthread_mutex_lock(&set->lock);
    size_t mask = set->slot_count - 1, hole = find(set, seq);
    if (set->slots[hole] == seq && seq != 0) {
        set->slots[hole] = 0;
        set->count--;
        /* Shift back each later entry of the run whose home is not between the hole and it. */
        for (size_t i = (hole + 1) & mask; set->slots[i] != 0; i = (i + 1) & mask) {
            size_t want = home(set, set->slots[i]);
            if (((i - want) & mask) >= ((i - hole) & mask)) {
                set->slots[hole] = set->slots[i];
                set->slots[i] = 0;
                hole = i;
            }
        }
    }
    pthread_mutex_unlock(&set->lock);
}

void parked_set_clear(struct parked_set *set)
{
    pthread_mutex_lock(&set->lock);
    for (size_t i = 0; i < set->slot_count; i++)
        set->slots[i] = 0;
    set->count = 0;
    pthread_mutex_unlock(&set->lock);
}

int parked_set_has(struct parked_set *set, int64_t seq)
{
    if (seq <= 0) return 0;
    pthread_mutex_lock(&set->lock);
    int found = set->slots[find(set, seq)] == seq;
    pthread_mutex_unlock(&set->lock);
    return found;
}

size_t parked_set_count(struct parked_set *set)
{
    pthread_mutex_lock(&set->lock);
    size_t count = set->count;
    pthread_mutex_unlock(&set->lock);
    return count;
}
