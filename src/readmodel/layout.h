/* layout.h - the Redis key layout of the read model: its schema, shared by the side that
 * writes it (projection/) and the side that reads it (query/). One table of key kinds
 * (layout.c) names every key; C builds keys with layout_key and the Lua scripts get the same
 * names from layout_lua_names, so a key is spelled in one place. Everything lives under a
 * prefix (default "catalogd"):
 *
 *   {prefix}:gen-v2                the generation that queries read, e.g. "3". The name carries
 *                                  the layout's version: a catalogd of another layout finds no
 *                                  generation of its own and rebuilds one, and the collection
 *                                  drops the other layout's generations (registered, not current)
 *   {prefix}:gen-counter           the last generation number handed out
 *   {prefix}:generations           hash: every generation not yet dropped -> the Unix ms it
 *                                  was retired at ("0" while building or current)
 *   {prefix}:rebuild-lock          "<token> <host> <pid>" of the one rebuild (or garbage
 *                                  collection) running, with an expiry it keeps refreshing
 *   {prefix}:projector-epoch       "<epoch>:<random>", the fence of the instance that
 *                                  projects, when several share one write model: its term's
 *                                  number from the write model (store_lead), and a part no
 *                                  other term has; every script it runs checks it
 *   {prefix}:projection:{catalog}  not a key: the pub/sub channel between the instances of
 *                                  one catalog (bus.h), by its digest (prefix_hold.h)
 *   {prefix}:holder                "<catalog digest> <expiry> <instance id>" of the catalog whose
 *                                  projector keeps this read model, with an expiry it keeps
 *                                  refreshing: another catalog's keeps out (prefix_hold.h)
 *   {prefix}:confirmed-run         the run id of the Redis process the projector confirmed holds
 *                                  every event applied: queries read nothing from another
 *                                  (a Redis back with an older state; confirmed_run.h)
 *   {prefix}:g{N}:checkpoint       the last event seq applied to generation N
 *   {prefix}:g{N}:checkpoint-event "<product id> <version> <recorded_at> <nonce>" of that event
 *                                  (no nonce for an event logged before events had one): tells
 *                                  a write model that went back in time (a restored backup)
 *   {prefix}:g{N}:in               sorted set, score 0: the views of the products in stock,
 *                                  each member the ready-to-send JSON itself
 *   {prefix}:g{N}:out              sorted set, score 0: the views of the products out of stock
 *   {prefix}:g{N}:skus             hash: sku -> the id of the product that owns it
 *   {prefix}:g{N}:parked           hash: queue -> events parked in it
 *   {prefix}:g{N}:parked:{queue}   list: seqs of parked events, oldest first. A queue is a
 *                                  sku (products interact in the read model only through
 *                                  their sku), or "#{id}" for an event whose sku is unknown.
 *
 * Every view starts with {"id":"<id>", so the members of a view set sort by id, and UUIDv7
 * ids sort by creation time: ZRANGEBYLEX returns a page of views in creation order, ready to
 * send, in O(log N + page), and a view by id is the one member in the range
 * [{"id":"<id>" .. ({"id":"<id>" and a 0xff byte) of one of the two sets. The
 * catalog is the two sets merged. A view is a member, not a key of its own: no per-key
 * overhead, no id stored twice, and a page is one range read rather than a lookup per view.
 * A rebuild fills generation N+1 while N serves, then switches {prefix}:gen-v2 in one atomic
 * step. */
#ifndef CATALOGD_LAYOUT_H
#define CATALOGD_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define LAYOUT_PREFIX_MAX 64
#define LAYOUT_BASE_MAX   96  /* "{prefix}:g{N}:" with the longest prefix and N */
#define LAYOUT_KEY_MAX    256 /* any key: a base and the longest argument (a sku, an id) */

/* The largest generation number. Lua's numbers are doubles, exact only up to 2^53: a pointer
 * that names a larger one names no generation, and no rebuild hands one out. Scripts know it
 * as the text GENERATION_MAX. */
#define GENERATION_MAX ((INT64_C(1) << 53) - 1)

enum layout_key {
    /* Outside any generation. */
    KEY_GEN,
    KEY_GEN_COUNTER,
    KEY_GENERATIONS,
    KEY_REBUILD_LOCK,
    KEY_PROJECTOR_EPOCH,
    KEY_CHANNEL,
    KEY_HOLDER,
    KEY_CONFIRMED_RUN,
    /* In generation N: "{prefix}:g{N}:" then the name, then the argument if any. */
    KEY_CHECKPOINT,
    KEY_CHECKPOINT_EVENT,
    KEY_IN_STOCK,
    KEY_OUT_OF_STOCK,
    KEY_SKUS,
    KEY_PARKED,
    KEY_PARKED_QUEUE,
    KEY_KIND_COUNT,
};

/* 1 when keys of "kind" belong to a generation. */
int layout_in_generation(enum layout_key kind);

/* 1 when "name" ("len" bytes, a key of a generation without its base) is of one of the
 * layout's kinds: a name of its own, or a kind that takes an argument followed by one. */
int layout_known_in_generation(const char *name, size_t len);

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

/* A bound of ZRANGEBYLEX over a view set: "open" ('[' or '('), then {"id":"<id>", then a
 * 0xff byte when "past" (every view of that id sorts before it). The views of product "id"
 * are the range [bound('[', id, 0), bound('(', id, 1)); the views after it start at
 * bound('(', id, 1). "cap" must be at least LAYOUT_VIEW_BOUND_MAX for an id of 36 bytes.
 * Returns the length. */
#define LAYOUT_VIEW_BOUND_MAX 48
size_t layout_view_bound(char open, const char *id, size_t id_len, int past, char *out, size_t cap);

/* A SCAN MATCH pattern for every key that starts with "start" (its glob characters
 * escaped): "{start}*". "cap" must be at least 2 * strlen(start) + 2. */
void layout_match_pattern(const char *start, char *out, size_t cap);

/* Lua that defines one local per key kind of a generation, holding its name: "local
 * KEY_SKUS = 'skus'" and so on. Every script that touches the read model starts with it. */
const char *layout_lua_names(void);

#endif
