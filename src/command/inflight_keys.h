/* inflight_keys.h - the Idempotency-Keys of commands accepted but not yet answered, shared by
 * all loop threads: a second request with a key still in this set gets 409 instead of
 * queueing behind the first. Thread-safe. */
#ifndef CATALOGD_INFLIGHT_KEYS_H
#define CATALOGD_INFLIGHT_KEYS_H

struct inflight_keys;

struct inflight_keys *inflight_keys_new(void);
void inflight_keys_free(struct inflight_keys *keys);

/* Adds "key". Returns 0, or -1 if it is already in flight. */
int inflight_keys_add(struct inflight_keys *keys, const char *key);
void inflight_keys_remove(struct inflight_keys *keys, const char *key);

#endif
