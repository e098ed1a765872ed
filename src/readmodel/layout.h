/* layout.h - the Redis key layout of the read model: its schema, shared by the side that
 * writes it (projection/) and the side that reads it (query/). One table of key kinds
 * (layout.c) names every key; C builds keys with layout_key and the Lua scripts get the same
 * names from layout_lua_names, so a key is spelled in one place. Everything lives under a
 * prefix (default "catalogd"):
 *
 *   {prefix}:gen                   the generation that queries read, e.g. "3"
 *   {prefix}:gen-counter           the last generation number handed out
 *   {prefix}:generations           hash: every generation not yet dropped -> the Unix ms it
 *                                  was retired at ("0" while building or current)
 *   {prefix}:rebuild-lock          "<token> <host> <pid>" of the one rebuild (or garbage
 *                                  collection) running, with an expiry it keeps refreshing
 *   {prefix}:projector-epoch       the fencing epoch of the instance that projects, when
 *                                  several share one write model: its term's number from the
 *                                  write model (store_lead); every script it runs checks it
 *   {prefix}:projection            not a key: the pub/sub channel between instances (bus.h)
 *   {prefix}:g{N}:checkpoint       the last event seq applied to generation N
 *   {prefix}:g{N}:checkpoint-event "<product id> <version> <recorded_at>" of that event: tells
 *                                  a write model that went back in time (a restored backup)
 *   {prefix}:g{N}:p:{id}           the product's view, ready-to-send JSON
 *   {prefix}:g{N}:sku:{sku}        the id of the product that owns the sku
 *   {prefix}:g{N}:all              sorted set, every product id, score 0
 *   {prefix}:g{N}:in_stock         sorted set, ids of products with stock > 0, score 0
 *   {prefix}:g{N}:parked           hash: queue -> events parked in it
 *   {prefix}:g{N}:parked:{queue}   list: seqs of parked events, oldest first. A queue is a
 *                                  sku (products interact in the read model only through
 *                                  their sku), or "#{id}" for an event whose sku is unknown.
 *
 * UUIDv7 ids sort by creation time, so ZRANGEBYLEX over the sorted sets pages in creation
 * order in O(log N + page). A rebuild fills generation N+1 while N serves, then switches
 * {prefix}:gen in one atomic step. */
#ifndef CATALOGD_LAYOUT_H
#define CATALOGD_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define LAYOUT_PREFIX_MAX 64
#define LAYOUT_BASE_MAX   96  /* "{prefix}:g{N}:" with the longest prefix and N */
#define LAYOUT_KEY_MAX    256 /* any key: a base and the longest argument (a sku, an id) */

enum layout_key {
    /* Outside any generation. */
    KEY_GEN,
    KEY_GEN_COUNTER,
    KEY_GENERATIONS,
    KEY_REBUILD_LOCK,
    KEY_PROJECTOR_EPOCH,
    KEY_CHANNEL,
    /* In generation N: "{prefix}:g{N}:" then the name, then the argument if any. */
    KEY_CHECKPOINT,
    KEY_CHECKPOINT_EVENT,
    KEY_VIEW,
    KEY_SKU,
    KEY_ALL,
    KEY_IN_STOCK,
    KEY_PARKED,
    KEY_PARKED_QUEUE,
    KEY_KIND_COUNT,
};

/* 1 when keys of "kind" belong to a generation. */
int layout_in_generation(enum layout_key kind);

/* Writes "{prefix}:g{gen}:" into "out" ("cap" bytes, LAYOUT_BASE_MAX is enough). Returns the
 * length. */
size_t layout_base(const char *prefix, int64_t gen, char *out, size_t cap);

/* Writes the key of "kind" into "out": for a global key "{prefix}:{name}" (where "prefix_or_base"
 * is the prefix), for a key of a generation "{base}{name}{argument}" (where it is the base from
 * layout_base). "argument" ("argument_len" bytes, may be NULL) is the id, sku or queue of the
 * kinds that take one. Returns the length (a NUL follows it), or 0 when "cap" is too small
 * (nothing useful is written then). With "out" NULL, only returns the length. */
size_t layout_key(enum layout_key kind, const char *prefix_or_base, const char *argument,
                  size_t argument_len, char *out, size_t cap);

/* A SCAN MATCH pattern for every key that starts with "start" (its glob characters
 * escaped): "{start}*". "cap" must be at least 2 * strlen(start) + 2. */
void layout_match_pattern(const char *start, char *out, size_t cap);

/* Lua that defines one local per key kind of a generation, holding its name: "local
 * KEY_VIEW = 'p:'" and so on. Every script that touches the read model starts with it. */
const char *layout_lua_names(void);

#endif
