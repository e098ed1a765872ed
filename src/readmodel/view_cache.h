/* view_cache.h - product views kept in the server's own memory (a near cache), so that a GET by
 * id can answer without the round trip to Redis.
 *
 * Exact, not eventually right. Read-your-writes holds because of two rules:
 *   - The projector forgets a product here after Redis took its new view and before its
 *     checkpoint moves. So the cache has forgotten it before any command that changed it can
 *     answer `Projection: applied` (projector.c). When the projector cannot tell what Redis
 *     took (a batch without a clear answer, a reload), it forgets everything.
 *   - A view read from Redis is stored only if nothing was forgotten in its stripe since the
 *     read was sent (the ticket taken before it). A read that raced an apply therefore never
 *     puts back the view the apply replaced.
 * Views are stored with the generation they were read in, and a lookup names the generation
 * that Redis last named to the caller: a rebuild's switch, or a read model that was lost,
 * leaves the stored views behind.
 *
 * Used only where this process's projector is the only one that writes the read model (one
 * instance, SQLite): another instance's projector could change a view that this one holds.
 * Bounded by a byte budget, the table of slots included; a new view replaces the one in its
 * slot.
 * Thread-safe: loop threads look up and store, the projector forgets. */
#ifndef CATALOGD_VIEW_CACHE_H
#define CATALOGD_VIEW_CACHE_H

#include <stddef.h>
#include <stdint.h>

/* Larger views are never kept (they are rare, and would crowd the budget). */
#define VIEW_CACHE_MAX_VIEW 16384

struct view_cache;

/* Taken before a read of a view is sent; view_cache_store checks it. */
struct view_cache_ticket {
    uint64_t seq;
};

struct view_cache_stats {
    uint64_t hits, misses; /* lookups that found the view, or not (view_cache_count_miss too) */
    uint64_t bytes;        /* held by the views now */
    uint64_t views;        /* held now */
};

/* A cache of at most "max_bytes": a quarter of it at most for the table of slots (one slot
 * per 256 bytes) and a sixty-fourth for their tags, the rest for the views. NULL when "max_bytes"
 * is 0: every function below accepts a NULL cache and does nothing. */
struct view_cache *view_cache_new(size_t max_bytes);
void view_cache_free(struct view_cache *cache);

/* The ticket for a read of the view of product "id" (UUID_TEXT_LEN bytes). */
struct view_cache_ticket view_cache_ticket(struct view_cache *cache, const char *id);

/* Keeps the view of "id" read in "generation", unless the product was forgotten (or everything
 * was) since "ticket" was taken: then the view may be older than Redis' and is dropped. */
void view_cache_store(struct view_cache *cache, const char *id, int64_t generation,
                      struct view_cache_ticket ticket, const char *view, size_t len);

/* Copies the view of "id" read in "generation" into memory from "alloc" (called with the
 * length, under the cache's lock: it must not call the cache). Returns the length, or 0 when
 * the cache does not hold it. */
size_t view_cache_copy(struct view_cache *cache, const char *id, int64_t generation,
                       char *(*alloc)(void *arg, size_t len), void *arg, char **out);

/* Counts a miss for "id" when the cache may not answer (Redis has named no generation to the
 * caller lately): its view is read from Redis, as a miss's is. */
void view_cache_count_miss(struct view_cache *cache, const char *id);

/* Forgets the view of "id": its next read goes to Redis. */
void view_cache_forget(struct view_cache *cache, const char *id);

/* Forgets every view. */
void view_cache_forget_all(struct view_cache *cache);

void view_cache_get_stats(struct view_cache *cache, struct view_cache_stats *out);

#endif
