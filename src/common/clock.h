/* clock.h - wall-clock and monotonic time, and deadlines for condition variables. */
#ifndef CATALOGD_CLOCK_H
#define CATALOGD_CLOCK_H

#include <pthread.h>
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

/* Condition variables that catalogd waits on with a deadline keep time by CLOCK_MONOTONIC, so
 * that a step of the wall clock (NTP, a virtual machine resumed) neither stretches nor cuts a
 * wait: initialize them with clock_cond_init and take deadlines from clock_deadline_after_*. */
static inline void clock_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

/* The CLOCK_MONOTONIC instant "us" microseconds from now: a deadline for pthread_cond_timedwait
 * on a condition variable made by clock_cond_init. */
static inline struct timespec clock_deadline_after_us(uint64_t us)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(us / 1000000);
    deadline.tv_nsec += (long)(us % 1000000) * 1000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    return deadline;
}

/* The same, "ms" milliseconds from now. */
static inline struct timespec clock_deadline_after_ms(uint64_t ms)
{
    return clock_deadline_after_us(ms * 1000);
}

#endif
