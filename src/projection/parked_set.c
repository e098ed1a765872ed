/* parked_set.c - two small arrays under one mutex: parking is rare, so linear scans do. */
#include "projection/parked_set.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "domain/uuid7.h"

struct parked_set {
    pthread_mutex_t lock;
    char (*products)[UUID_TEXT_LEN + 1];
    size_t product_count, product_cap;
    int64_t *seqs;
    size_t seq_count, seq_cap;
};

struct parked_set *parked_set_new(void)
{
    struct parked_set *set = xcalloc(1, sizeof(*set));
    pthread_mutex_init(&set->lock, NULL);
    return set;
}

void parked_set_free(struct parked_set *set)
{
    if (!set) return;
    free(set->products);
    free(set->seqs);
    pthread_mutex_destroy(&set->lock);
    free(set);
}

static int has_product_locked(const struct parked_set *set, const char *product_id)
{
    for (size_t i = 0; i < set->product_count; i++)
        if (strcmp(set->products[i], product_id) == 0) return 1;
    return 0;
}

void parked_set_add(struct parked_set *set, const char *product_id, int64_t seq)
{
    pthread_mutex_lock(&set->lock);
    if (!has_product_locked(set, product_id)) {
        if (set->product_count == set->product_cap) {
            set->product_cap = set->product_cap ? 2 * set->product_cap : 8;
            set->products = xrealloc(set->products, set->product_cap * sizeof(*set->products));
        }
        snprintf(set->products[set->product_count++], UUID_TEXT_LEN + 1, "%s", product_id);
    }
    if (set->seq_count == set->seq_cap) {
        set->seq_cap = set->seq_cap ? 2 * set->seq_cap : 16;
        set->seqs = xrealloc(set->seqs, set->seq_cap * sizeof(*set->seqs));
    }
    set->seqs[set->seq_count++] = seq;
    pthread_mutex_unlock(&set->lock);
}

void parked_set_clear(struct parked_set *set)
{
    pthread_mutex_lock(&set->lock);
    set->product_count = 0;
    set->seq_count = 0;
    pthread_mutex_unlock(&set->lock);
}

int parked_set_has_product(struct parked_set *set, const char *product_id)
{
    pthread_mutex_lock(&set->lock);
    int found = has_product_locked(set, product_id);
    pthread_mutex_unlock(&set->lock);
    return found;
}

int parked_set_has_seq(struct parked_set *set, int64_t seq)
{
    pthread_mutex_lock(&set->lock);
    int found = 0;
    for (size_t i = 0; !found && i < set->seq_count; i++)
        found = set->seqs[i] == seq;
    pthread_mutex_unlock(&set->lock);
    return found;
}

size_t parked_set_products(struct parked_set *set)
{
    pthread_mutex_lock(&set->lock);
    size_t count = set->product_count;
    pthread_mutex_unlock(&set->lock);
    return count;
}
