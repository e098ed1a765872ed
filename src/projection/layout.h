/* layout.h - the Redis key layout of the read model, shared by the projector (writes) and
 * the query side (reads). Everything lives under a prefix (default "catalogd"):
 *
 *   {prefix}:gen             the generation that queries read, e.g. "3"
 *   {prefix}:gen-counter     the last generation number handed out (INCR)
 *   {prefix}:rebuild-lock    held by the one rebuild that may run (SET NX PX)
 *   {prefix}:g{N}:checkpoint last event seq applied to generation N
 *   {prefix}:g{N}:p:{id}     the product's view, ready-to-send JSON
 *   {prefix}:g{N}:sku:{sku}  the product id that owns the sku
 *   {prefix}:g{N}:all        sorted set, every product id, score 0
 *   {prefix}:g{N}:in_stock   sorted set, ids of products with stock > 0, score 0
 *
 * UUIDv7 ids sort by creation time, so ZRANGEBYLEX over the sorted sets pages in creation
 * order in O(log N + page). A rebuild fills generation N+1 while N serves, then switches
 * {prefix}:gen in one atomic step. */
#ifndef CATALOGD_LAYOUT_H
#define CATALOGD_LAYOUT_H

#include <inttypes.h>
#include <stdio.h>

#define LAYOUT_PREFIX_MAX 64
#define LAYOUT_BASE_MAX   96 /* "{prefix}:g{N}:" with the longest prefix and N */
#define LAYOUT_KEY_MAX    256

/* "{prefix}:{name}" for the keys outside any generation: "gen", "gen-counter",
 * "rebuild-lock". */
static inline int layout_global_key(const char *prefix, const char *name, char *out, size_t cap)
{
    return snprintf(out, cap, "%s:%s", prefix, name);
}

/* "{prefix}:g{N}:", the start of every key of generation "gen". */
static inline int layout_generation_base(const char *prefix, int64_t gen, char *out, size_t cap)
{
    return snprintf(out, cap, "%s:g%" PRId64 ":", prefix, gen);
}

#endif
