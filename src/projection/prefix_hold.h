/* prefix_hold.h - which catalog keeps the read model under a Redis prefix.
 *
 * Two deployments given the same Redis and prefix by mistake (two write models, one read
 * model) would each find the read model "diverged" from its own write model and rebuild it
 * from its own, in turn, forever; in between, each would serve the other's catalog. So the
 * projector that writes the read model holds {prefix}:holder, which names its catalog and
 * instance, with an expiry it refreshes every PREFIX_HOLD_EVERY_MS; the projector of another
 * catalog finds it held and keeps out, writing nothing, until the holder stops (it lets go) or
 * dies (the expiry passes), and the prefix then stays free PREFIX_HOLD_YIELD_MS (a holder
 * whose key went with all of Redis' data claims it back first). Instances of one catalog (one
 * PostgreSQL database, which keeps the catalog's name) name the same catalog: a new leader
 * takes over at once. Needs Redis 5 or later (a script that reads TIME, then writes). */
#ifndef CATALOGD_PREFIX_HOLD_H
#define CATALOGD_PREFIX_HOLD_H

#include <stddef.h>
#include <stdint.h>

#define PREFIX_HOLD_EVERY_MS 1000
#define PREFIX_HOLD_TTL_MS   5000
/* How long a held-out catalog waits on a prefix it found free: longer than the holder can go
 * between two refreshes while it recovers from the same loss (its next refresh, behind the
 * wait for its fencing epoch when instances share the write model). */
#define PREFIX_HOLD_YIELD_MS 5000
#define CATALOG_DIGEST_LEN   32 /* hex digits */

struct prefix_hold;
struct redis_sync;

/* Writes the digest of a catalog's name (the first CATALOG_DIGEST_LEN hex digits of its
 * SHA-256) and a NUL into "out": what the holder key and the instances' channel name it by. */
void catalog_digest(const char *catalog, char out[CATALOG_DIGEST_LEN + 1]);

/* "catalog" names the write model (the same text in every instance of one catalog; only its
 * digest is stored), "instance_id" this process, for the others' messages. */
struct prefix_hold *prefix_hold_new(const char *prefix, const char *catalog,
                                    const char *instance_id);
void prefix_hold_free(struct prefix_hold *hold); /* accepts NULL */

enum prefix_hold_status {
    PREFIX_HOLD_ERROR = -1,    /* Redis did not answer ("err" says why) */
    PREFIX_HOLD_ELSEWHERE = 0, /* another catalog holds it: prefix_hold_holder names it */
    PREFIX_HOLD_OURS = 1,      /* this catalog holds it, until PREFIX_HOLD_TTL_MS from now */
};

/* Claims the prefix, or refreshes this catalog's hold, when PREFIX_HOLD_EVERY_MS passed since
 * the last time; in between, answers what the last time found. */
enum prefix_hold_status prefix_hold_keep(struct prefix_hold *hold, struct redis_sync *redis,
                                         char *err, size_t errlen);

/* The monotonic time (clock.h) at which the last call began that found the prefix this
 * catalog's, or found Redis refusing writes to anyone: no other catalog can have taken it
 * before PREFIX_HOLD_TTL_MS after that. 0 before. */
uint64_t prefix_hold_confirmed_ms(const struct prefix_hold *hold);

/* The instance of the catalog that held the prefix when prefix_hold_keep last found it held
 * elsewhere. */
const char *prefix_hold_holder(const struct prefix_hold *hold);

/* Whether another catalog holds the prefix now, read by the rules prefix_hold_keep reads a
 * hold by, writing nothing (catalogd verify): 1, and prefix_hold_holder names its instance; 0
 * when this catalog holds it or no one does; -1 when Redis did not answer ("err" says why). */
int prefix_hold_peek_elsewhere(struct prefix_hold *hold, struct redis_sync *redis, char *err,
                               size_t errlen);

/* Lets go of the prefix if this catalog still holds it (on a clean stop), so that another
 * catalog need not wait for the expiry. */
void prefix_hold_release(struct prefix_hold *hold, struct redis_sync *redis);

#endif
