/* leadership.c - the thread that keeps asking the store whether this instance leads.
 * Invariant: a check that fails clears "leading" before anyone can read a stale 1 again, and
 * each time "leading" turns 1 again the term counts one more. */
#include "projection/leadership.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "command/store.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

struct leadership {
    char db_path[4096];
    char instance_id[128];
    pthread_t thread;
    /* The term times two, plus 1 while this instance leads: one word, so that a reader sees
     * a leading and a term that go together. Written by the thread only. */
    _Atomic uint64_t term_and_leading;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* a confirmation asked for, or stopping */
    pthread_cond_t done; /* a check finished */
    int stopping;        /* guarded by lock */
    uint64_t asked;      /* guarded by lock: confirmations asked for */
    uint64_t checks;     /* guarded by lock: checks finished */
    char leader[128];    /* guarded by lock */
    int64_t epoch;       /* guarded by lock: of this instance's term, while it leads */
    int64_t epoch_above; /* guarded by lock: the last confirmation's floor for the epoch */

    struct store *store; /* owned by the thread */
};

/* Clears "leading"; returns whether it was set. */
static int lose(struct leadership *l)
{
    uint64_t was = atomic_load(&l->term_and_leading);
    atomic_store(&l->term_and_leading, was & ~(uint64_t)1);
    return (int)(was & 1);
}

/* Sets "leading" to the store's answer, a new term when it turns 1; returns whether it changed. */
static int set_leading(struct leadership *l, int leading)
{
    uint64_t was = atomic_load(&l->term_and_leading);
    if ((was & 1) == (leading != 0)) return 0;
    if (!leading) return lose(l);
    atomic_store(&l->term_and_leading, ((was >> 1) + 1) << 1 | 1);
    return 1;
}

/* One question to the store. Logs each change of who leads. */
static void check(struct leadership *l)
{
    char err[256];
    struct store_leader answer = {0};
    pthread_mutex_lock(&l->lock);
    int64_t epoch_above = l->epoch_above;
    pthread_mutex_unlock(&l->lock);
    if (!l->store && store_open_reader(l->db_path, &l->store, err, sizeof(err)) < 0) {
        if (lose(l)) LOG(LOG_WARN, "leadership: lost (cannot reach the write model: %s)", err);
    } else if (store_lead(l->store, l->instance_id, epoch_above, &answer) < 0) {
        if (lose(l)) LOG(LOG_WARN, "leadership: lost (%s)", store_errmsg(l->store));
        answer.instance_id[0] = '\0';
    } else if (set_leading(l, answer.leading)) {
        if (answer.leading)
            LOG(LOG_INFO, "leadership: this instance projects now");
        else
            LOG(LOG_INFO, "leadership: lost; %s projects", answer.instance_id);
    }
    pthread_mutex_lock(&l->lock);
    snprintf(l->leader, sizeof(l->leader), "%s", answer.instance_id);
    l->epoch = answer.leading ? answer.epoch : 0;
    l->checks++;
    pthread_cond_broadcast(&l->done);
    pthread_mutex_unlock(&l->lock);
}

static void *leadership_main(void *arg)
{
    struct leadership *l = arg;
    pthread_mutex_lock(&l->lock);
    while (!l->stopping) {
        pthread_mutex_unlock(&l->lock);
        check(l);
        struct timespec deadline = clock_deadline_after_ms(LEADERSHIP_POLL_MS);
        pthread_mutex_lock(&l->lock);
        while (!l->stopping && l->asked <= l->checks)
            if (pthread_cond_timedwait(&l->wake, &l->lock, &deadline) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

struct leadership *leadership_start(const char *db_path, const char *instance_id)
{
    struct leadership *l = xcalloc(1, sizeof(*l));
    snprintf(l->db_path, sizeof(l->db_path), "%s", db_path);
    snprintf(l->instance_id, sizeof(l->instance_id), "%s", instance_id);
    pthread_mutex_init(&l->lock, NULL);
    clock_cond_init(&l->wake);
    clock_cond_init(&l->done);
    if (pthread_create(&l->thread, NULL, leadership_main, l) != 0) {
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->wake);
        pthread_cond_destroy(&l->done);
        free(l);
        return NULL;
    }
    return l;
}

int leadership_leading(struct leadership *l, uint64_t *term)
{
    uint64_t now = atomic_load(&l->term_and_leading);
    if (term) *term = now >> 1;
    return (int)(now & 1);
}

int leadership_confirm(struct leadership *l, int timeout_ms, int64_t epoch_above, int64_t *epoch)
{
    struct timespec deadline = clock_deadline_after_ms((uint64_t)timeout_ms);
    pthread_mutex_lock(&l->lock);
    /* A check that began before this call may have read the store before the question: wait
     * for one that begins after it. */
    uint64_t wanted = l->checks + 2;
    l->asked = wanted;
    l->epoch_above = epoch_above;
    pthread_cond_signal(&l->wake);
    int timed_out = 0;
    while (l->checks < wanted && !l->stopping && !timed_out)
        timed_out = pthread_cond_timedwait(&l->done, &l->lock, &deadline) == ETIMEDOUT;
    int confirmed = l->checks >= wanted && leadership_leading(l, NULL);
    *epoch = l->epoch;
    pthread_mutex_unlock(&l->lock);
    return confirmed;
}

void leadership_leader(struct leadership *l, char *instance_id, size_t len)
{
    pthread_mutex_lock(&l->lock);
    snprintf(instance_id, len, "%s", l->leader);
    pthread_mutex_unlock(&l->lock);
}

void leadership_stop(struct leadership *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->lock);
    l->stopping = 1;
    pthread_cond_broadcast(&l->wake);
    pthread_cond_broadcast(&l->done);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    store_close(l->store);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->wake);
    pthread_cond_destroy(&l->done);
    free(l);
}
