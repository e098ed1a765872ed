/* unpark.c - see unpark.h. */
#include "projection/unpark.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct pass {
    struct redis_sync *redis;
    struct store *store;
    const struct apply_target *target;
    struct parked_set *parked;
    struct unpark_result *out;
};

static int take_event(const struct store_event *event, void *arg)
{
    apply_event_from_store(event, arg);
    return 1; /* one is all we asked for */
}

/* Tries the event "seq" of "queue"; returns non-zero to leave the rest of the queue waiting. */
static int unpark_one(const char *queue, int64_t seq, void *arg)
{
    struct pass *pass = arg;
    struct unpark_result *out = pass->out;
    if (out->gone || (out->status != APPLY_OK && out->status != APPLY_REFUSED))
        return 1; /* the pass is over */
    struct apply_event event = {0};
    char err[sizeof(out->err)];
    int read = store_read_events(pass->store, seq - 1, 1, take_event, &event);
    int rc = APPLY_REFUSED;
    if (read < 0) {
        snprintf(err, sizeof(err), "reading parked event %" PRId64 ": %s", seq,
                 store_errmsg(pass->store));
    } else if (read == 0 || event.seq != seq) {
        out->gone = seq; /* the caller rebuilds: nothing more to try here */
        apply_event_clear(&event);
        return 1;
    } else if (event.kind == APPLY_POISON) {
        snprintf(err, sizeof(err), "parked event %" PRId64 " is still not a valid event", seq);
    } else {
        int64_t left;
        rc = apply_unpark(pass->redis, pass->target, queue, &event, &left, err, sizeof(err));
    }
    apply_event_clear(&event);
    if (rc == APPLY_OK) {
        parked_set_remove(pass->parked, seq);
        out->applied++;
        return 0;
    }
    if (out->status == APPLY_OK || rc != APPLY_REFUSED) {
        out->status = rc;
        memcpy(out->err, err, sizeof(out->err));
    }
    return 1;
}

void unpark_all(struct redis_sync *redis, struct store *store, const struct apply_target *target,
                struct parked_set *parked, struct unpark_result *out)
{
    struct pass pass = {redis, store, target, parked, out};
    char err[sizeof(out->err)];
    int64_t listed;
    memset(out, 0, sizeof(*out));
    int rc = apply_list_parked(redis, target, unpark_one, &pass, &listed, err, sizeof(err));
    if (rc != APPLY_OK && (out->status == APPLY_OK || out->status == APPLY_REFUSED)) {
        out->status = rc;
        memcpy(out->err, err, sizeof(out->err));
    }
}
