/* inflight_keys.c - a small mutex-guarded chained hash set of strings. It holds only the keys
 * of commands in flight, so it stays small: at most the commands queued at once. */
#include "command/inflight_keys.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

#define BUCKETS 1024

struct entry {
    struct entry *next;
    char key[]; /* NUL-terminated */
};

struct inflight_keys {
    pthread_mutex_t lock;
    struct entry *buckets[BUCKETS];
};

static size_t bucket_of(const char *key)
{
    uint64_t hash = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        hash = (hash ^ *p) * 1099511628211ULL;
    return (size_t)(hash % BUCKETS);
}

struct inflight_keys *inflight_keys_new(void)
{
    struct inflight_keys *keys = xcalloc(1, sizeof(*keys));
    pthread_mutex_init(&keys->lock, NULL);
    return keys;
}

void inflight_keys_free(struct inflight_keys *keys)
{
    if (!keys) return;
    for (size_t i = 0; i < BUCKETS; i++) {
        struct entry *e = keys->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&keys->lock);
    free(keys);
}

int inflight_keys_add(struct inflight_keys *keys, const char *key)
{
    size_t bucket = bucket_of(key), len = strlen(key);
    struct entry *fresh = xmalloc(sizeof(*fresh) + len + 1);
    memcpy(fresh->key, key, len + 1);
    pthread_mutex_lock(&keys->lock);
    for (struct entry *e = keys->buckets[bucket]; e; e = e->next) {
        if (strcmp(e->key, key) == 0) {
            pthread_mutex_unlock(&keys->lock);
            free(fresh);
            return -1;
        }
    }
    fresh->next = keys->buckets[bucket];
    keys->buckets[bucket] = fresh;
    pthread_mutex_unlock(&keys->lock);
    return 0;
}

void inflight_keys_remove(struct inflight_keys *keys, const char *key)
{
    size_t bucket = bucket_of(key);
    pthread_mutex_lock(&keys->lock);
    for (struct entry **link = &keys->buckets[bucket]; *link; link = &(*link)->next) {
        if (strcmp((*link)->key, key) == 0) {
            struct entry *gone = *link;
            *link = gone->next;
            free(gone);
            break;
        }
    }
    pthread_mutex_unlock(&keys->lock);
}
