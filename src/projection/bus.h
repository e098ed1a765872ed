/* bus.h - what the instances sharing one write model tell each other, over Redis pub/sub on
 * the channel {prefix}:projection:{catalog digest} (a channel of their catalog's own: two
 * catalogs given one prefix by mistake do not hear each other). Two kinds of message:
 *   "c <head>"   an instance committed events up to seq <head> (wakes the projecting
 *                instance at once; it also polls the log, so a lost message only delays)
 *   news         the projecting instance applied events up to a checkpoint, the log's event
 *                there named (after every batch, and once a second while idle): lets every
 *                other instance answer "Projection: applied" for its own commands, and show
 *                who projects
 * Pub/sub delivers at most once, so nothing depends on a message arriving: a missed wake-up
 * costs a poll interval, a missed news only "pending" answers (news are numbered, so the
 * instance that missed one knows it may have missed an event parked). */
#ifndef CATALOGD_BUS_H
#define CATALOGD_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "common/redis_url.h"

#define BUS_EVENT_MAX 128 /* a checkpoint_event with its NUL: APPLY_FINGERPRINT_MAX fits */

struct projection_news {
    int64_t epoch;  /* the projector's fencing epoch */
    int64_t number; /* 1, 2, ... within the epoch: a follower sees when it missed one */
    int64_t generation;
    int64_t checkpoint; /* every event up to it is in Redis, except the parked ones */
    /* The log's event at the checkpoint, as apply_event_fingerprint writes it (no commas), or
     * "": a follower takes the checkpoint once its log holds that very event, so news of a
     * log that went back in time since (a backup restored) cannot pass for news of this one. */
    char checkpoint_event[BUS_EVENT_MAX];
    char state[16];       /* projector_state_name of the projector */
    int64_t parked_total; /* events parked in the generation now */
    int64_t *parked;      /* events of this batch that were parked */
    size_t parked_count;
    char instance_id[128]; /* the projecting instance */
    /* Set by the listener: this news follows the last one it heard without a gap (same
     * epoch, the next number, the same subscription). */
    int follows_last;
};

struct bus;

struct bus_handlers {
    void (*committed)(int64_t head, void *arg);
    void (*news)(const struct projection_news *news, void *arg);
    void *arg;
};

/* Starts the threads that listen to the channel of "catalog" (its name: prefix_hold.h) and publish
 * "committed" messages, each with its own Redis connection (reconnected with backoff). The handlers
 * run on the listening thread. Returns NULL when a thread cannot start. */
struct bus *bus_start(const struct redis_url *redis, const char *prefix, const char *catalog,
                      const struct bus_handlers *handlers);

/* Writes the channel of "catalog"'s instances into "out" ("cap" bytes, LAYOUT_KEY_MAX is
 * enough). */
void bus_channel(const char *prefix, const char *catalog, char *out, size_t cap);

/* Tells the other instances that events up to "head" are committed. Never blocks: the newest
 * head is published by the bus' own thread. Thread-safe. */
void bus_committed(struct bus *bus, int64_t head);

/* Writes the news message into a malloc'd string ("*len" bytes), for the projector to PUBLISH
 * on its own connection, on the channel bus_channel names. */
char *bus_format_news(const struct projection_news *news, size_t *len);

/* Reads a news message (bus_format_news) into "*news". Returns 0, with "news->parked"
 * malloc'd (free it; NULL when none), or -1 when "text" is not one: the channel is shared
 * with whatever else may publish on it, so anything may come. */
int bus_parse_news(const char *text, size_t len, struct projection_news *news);

/* Stops the threads and frees "bus" (accepts NULL). */
void bus_stop(struct bus *bus);

#endif
