/* bus.c - the pub/sub channel between instances: one thread listens, one publishes the
 * newest committed head. Invariant: neither thread ever waits on Redis longer than
 * BUS_TIMEOUT_MS per call, so a stalled Redis cannot hold up stopping for long. */
#include "projection/bus.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "projection/prefix_hold.h"
#include "projection/redis_sync.h"
#include "readmodel/layout.h"

/* The listener reconnects when nothing came for this long: the projecting instance sends
 * news every second while idle, so silence means a lost connection or no projector. */
#define BUS_TIMEOUT_MS     1500
#define BUS_BACKOFF_MIN_MS 50
#define BUS_BACKOFF_MAX_MS 1000

struct bus {
    struct redis_url redis_url;
    char channel[LAYOUT_KEY_MAX];
    struct bus_handlers handlers;
    pthread_t listener, publisher;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;           /* guarded by lock */
    int64_t committed_head; /* guarded by lock: the newest head to publish */
};

static int stopping(struct bus *bus)
{
    pthread_mutex_lock(&bus->lock);
    int stop = bus->stopping;
    pthread_mutex_unlock(&bus->lock);
    return stop;
}

/* Sleeps "ms" or until stopping. */
static void nap(struct bus *bus, int ms)
{
    struct timespec deadline = clock_deadline_after_ms((uint64_t)ms);
    pthread_mutex_lock(&bus->lock);
    while (!bus->stopping)
        if (pthread_cond_timedwait(&bus->wake, &bus->lock, &deadline) == ETIMEDOUT) break;
    pthread_mutex_unlock(&bus->lock);
}

static int next_backoff(int ms)
{
    return ms * 2 > BUS_BACKOFF_MAX_MS ? BUS_BACKOFF_MAX_MS : ms * 2;
}

char *bus_format_news(const struct projection_news *news, size_t *len)
{
    /* "n epoch number generation checkpoint event state parked_total count seq... instance-id":
     * the event with its spaces as commas ("-" when none), the id last, as it may hold
     * spaces. */
    size_t cap = 128 + sizeof(news->checkpoint_event) + strlen(news->state) +
                 strlen(news->instance_id) + news->parked_count * 21;
    char *text = xmalloc(cap);
    int n = snprintf(text, cap, "n %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " ", news->epoch,
                     news->number, news->generation, news->checkpoint);
    size_t used = (size_t)n;
    for (const char *c = news->checkpoint_event; *c; c++)
        text[used++] = *c == ' ' ? ',' : *c;
    if (!news->checkpoint_event[0]) text[used++] = '-';
    used += (size_t)snprintf(text + used, cap - used, " %s %" PRId64 " %zu", news->state,
                             news->parked_total, news->parked_count);
    for (size_t i = 0; i < news->parked_count; i++)
        used += (size_t)snprintf(text + used, cap - used, " %" PRId64, news->parked[i]);
    used += (size_t)snprintf(text + used, cap - used, " %s", news->instance_id);
    *len = used;
    return text;
}

/* Reads one field up to the next space at "*at" (skipping one space before it) into "out"
 * ("cap" bytes with the NUL). Returns its length, or -1 when empty or too long. */
static int read_word(const char **at, const char *end, char *out, size_t cap)
{
    const char *c = *at;
    if (c < end && *c == ' ') c++;
    size_t len = 0;
    while (c + len < end && c[len] != ' ')
        len++;
    if (len == 0 || len >= cap) return -1;
    memcpy(out, c, len);
    out[len] = '\0';
    *at = c + len;
    return (int)len;
}

/* Reads one decimal field at "*at" (skipping one space before it). Returns 0, or -1. */
static int read_number(const char **at, const char *end, int64_t *value)
{
    const char *c = *at;
    if (c < end && *c == ' ') c++;
    if (c >= end || *c < '0' || *c > '9') return -1;
    int64_t v = 0;
    while (c < end && *c >= '0' && *c <= '9') {
        if (v > (INT64_MAX - (*c - '0')) / 10) return -1;
        v = v * 10 + (*c++ - '0');
    }
    *at = c;
    *value = v;
    return 0;
}

int bus_parse_news(const char *text, size_t len, struct projection_news *news)
{
    const char *at = text + 1, *end = text + len;
    int64_t count = 0;
    memset(news, 0, sizeof(*news));
    if (len < 2 || text[0] != 'n' || read_number(&at, end, &news->epoch) < 0 ||
        read_number(&at, end, &news->number) < 0 || read_number(&at, end, &news->generation) < 0 ||
        read_number(&at, end, &news->checkpoint) < 0 ||
        read_word(&at, end, news->checkpoint_event, sizeof(news->checkpoint_event)) < 0 ||
        read_word(&at, end, news->state, sizeof(news->state)) < 0)
        return -1;
    if (strcmp(news->checkpoint_event, "-") == 0) news->checkpoint_event[0] = '\0';
    for (char *c = news->checkpoint_event; *c; c++)
        if (*c == ',') *c = ' ';
    if (read_number(&at, end, &news->parked_total) < 0 || read_number(&at, end, &count) < 0 ||
        count > (int64_t)(len / 2))
        return -1;
    int64_t *parked = count > 0 ? xmalloc((size_t)count * sizeof(*parked)) : NULL;
    for (int64_t i = 0; i < count; i++)
        if (read_number(&at, end, &parked[i]) < 0) goto fail;
    if (at >= end || *at++ != ' ' || at == end || (size_t)(end - at) >= sizeof(news->instance_id))
        goto fail;
    memcpy(news->instance_id, at, (size_t)(end - at));
    news->parked = parked;
    news->parked_count = (size_t)count;
    return 0;
fail:
    free(parked);
    return -1;
}

/* What the listener last heard on its subscription: the epoch and number of the last news,
 * or 0 (nothing yet: the first news after subscribing may follow a gap). */
struct heard {
    int64_t epoch, number;
};

static void take_message(struct bus *bus, const redisReply *reply, struct heard *heard)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(reply->element[0]->str, "message") != 0 ||
        reply->element[2]->type != REDIS_REPLY_STRING || reply->element[2]->len < 2)
        return;
    const char *text = reply->element[2]->str;
    size_t len = reply->element[2]->len;
    int64_t head;
    struct projection_news news;
    const char *at = text + 1;
    if (text[0] == 'c' && read_number(&at, text + len, &head) == 0 && at == text + len)
        bus->handlers.committed(head, bus->handlers.arg);
    else if (bus_parse_news(text, len, &news) == 0) {
        news.follows_last =
            heard->number > 0 && news.epoch == heard->epoch && news.number == heard->number + 1;
        *heard = (struct heard){news.epoch, news.number};
        bus->handlers.news(&news, bus->handlers.arg);
        free(news.parked);
    }
}

static void *listen_main(void *arg)
{
    struct bus *bus = arg;
    int backoff_ms = BUS_BACKOFF_MIN_MS;
    char err[256];
    while (!stopping(bus)) {
        err[0] = '\0';
        struct redis_sync *redis =
            redis_sync_connect(&bus->redis_url, BUS_TIMEOUT_MS, err, sizeof(err));
        if (redis) {
            const char *argv[] = {"SUBSCRIBE", bus->channel};
            redis_sync_append(redis, 2, argv, NULL);
            redisReply *reply;
            struct heard heard = {0, 0};
            while (!stopping(bus) && redis_sync_get_reply(redis, &reply, err, sizeof(err)) == 0) {
                backoff_ms = BUS_BACKOFF_MIN_MS;
                take_message(bus, reply, &heard);
                freeReplyObject(reply);
            }
            redis_sync_close(redis);
        }
        /* A timeout is routine (no news for a while); anything else is worth a debug line. */
        LOG(LOG_DEBUG, "bus: listening again after: %s", err);
        nap(bus, backoff_ms);
        backoff_ms = next_backoff(backoff_ms);
    }
    return NULL;
}

static void *publish_main(void *arg)
{
    struct bus *bus = arg;
    struct redis_sync *redis = NULL;
    int64_t published = 0;
    int backoff_ms = BUS_BACKOFF_MIN_MS;
    char err[256];
    pthread_mutex_lock(&bus->lock);
    for (;;) {
        while (!bus->stopping && bus->committed_head <= published)
            pthread_cond_wait(&bus->wake, &bus->lock);
        if (bus->stopping) break;
        int64_t head = bus->committed_head;
        pthread_mutex_unlock(&bus->lock);
        if (!redis) redis = redis_sync_connect(&bus->redis_url, BUS_TIMEOUT_MS, err, sizeof(err));
        char text[32];
        int n = snprintf(text, sizeof(text), "c %" PRId64, head);
        const char *argv[] = {"PUBLISH", bus->channel, text};
        size_t lens[] = {7, strlen(bus->channel), (size_t)n};
        redisReply *reply =
            redis ? redis_sync_command(redis, 3, argv, lens, err, sizeof(err)) : NULL;
        if (reply) {
            freeReplyObject(reply);
            backoff_ms = BUS_BACKOFF_MIN_MS;
        } else {
            /* Dropped: the projecting instance polls the log anyway. */
            redis_sync_close(redis);
            redis = NULL;
            nap(bus, backoff_ms);
            backoff_ms = next_backoff(backoff_ms);
        }
        published = head;
        pthread_mutex_lock(&bus->lock);
    }
    pthread_mutex_unlock(&bus->lock);
    redis_sync_close(redis);
    return NULL;
}

void bus_channel(const char *prefix, const char *catalog, char *out, size_t cap)
{
    char digest[CATALOG_DIGEST_LEN + 1];
    catalog_digest(catalog, digest);
    layout_key(KEY_CHANNEL, prefix, digest, CATALOG_DIGEST_LEN, out, cap);
}

struct bus *bus_start(const struct redis_url *redis, const char *prefix, const char *catalog,
                      const struct bus_handlers *handlers)
{
    struct bus *bus = xcalloc(1, sizeof(*bus));
    bus->redis_url = *redis;
    bus->handlers = *handlers;
    bus_channel(prefix, catalog, bus->channel, sizeof(bus->channel));
    pthread_mutex_init(&bus->lock, NULL);
    clock_cond_init(&bus->wake);
    if (pthread_create(&bus->listener, NULL, listen_main, bus) != 0) goto fail;
    if (pthread_create(&bus->publisher, NULL, publish_main, bus) != 0) {
        pthread_mutex_lock(&bus->lock);
        bus->stopping = 1;
        pthread_mutex_unlock(&bus->lock);
        pthread_join(bus->listener, NULL);
        goto fail;
    }
    return bus;
fail:
    pthread_mutex_destroy(&bus->lock);
    pthread_cond_destroy(&bus->wake);
    free(bus);
    return NULL;
}

void bus_committed(struct bus *bus, int64_t head)
{
    pthread_mutex_lock(&bus->lock);
    if (head > bus->committed_head) {
        bus->committed_head = head;
        pthread_cond_broadcast(&bus->wake);
    }
    pthread_mutex_unlock(&bus->lock);
}

void bus_stop(struct bus *bus)
{
    if (!bus) return;
    pthread_mutex_lock(&bus->lock);
    bus->stopping = 1;
    pthread_cond_broadcast(&bus->wake);
    pthread_mutex_unlock(&bus->lock);
    pthread_join(bus->listener, NULL);
    pthread_join(bus->publisher, NULL);
    pthread_mutex_destroy(&bus->lock);
    pthread_cond_destroy(&bus->wake);
    free(bus);
}
