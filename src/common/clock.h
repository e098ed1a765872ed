/* clock.h - wall-clock and monotonic milliseconds, and deadlines for condition variables. */
#ifndef CATALOGD_CLOCK_H
#define CATALOGD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline uint64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline uint64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The CLOCK_REALTIME instant "us" microseconds from now: a deadline for pthread_cond_timedwait. */
static inline struct timespec clock_deadline_after_us(uint64_t us)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)(us / 1000000);
    deadline.tv_nsec += (long)(us % 1000000) * 1000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    return deadline;
}

/* The CLOCK_REALTIME instant "ms" from now: a deadline for pthread_cond_timedwait. */
static inline struct timespec clock_deadline_after_ms(uint64_t ms)
{
    return clock_deadline_after_us(ms * 1000);
}

#endif
