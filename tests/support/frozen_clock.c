/* frozen_clock.c - an LD_PRELOAD library for tests: while the file named by FROZEN_CLOCK_FILE
 * holds a positive number of Unix milliseconds, CLOCK_REALTIME reads that time in a process
 * whose executable is named catalogd; otherwise the real time. It stands in for clocks set
 * back, or hosts whose clocks are apart: two commands recorded in the same millisecond.
 * Built by the test that uses it: cc -shared -fPIC -o frozen_clock.so frozen_clock.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static int in_catalogd = -1;

static int is_catalogd(void)
{
    if (in_catalogd < 0) {
        char exe[512];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = '\0';
        const char *name = strrchr(exe, '/');
        in_catalogd = name && strcmp(name + 1, "catalogd") == 0;
    }
    return in_catalogd;
}

/* The frozen time in ms, or 0 when the clock runs. */
static long long frozen_ms(void)
{
    const char *path = getenv("FROZEN_CLOCK_FILE");
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) return 0;
    char text[32] = {0};
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    return n > 0 ? atoll(text) : 0;
}

int clock_gettime(clockid_t clock, struct timespec *ts)
{
    if (!real_clock_gettime) real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real_clock_gettime(clock, ts);
    if (rc != 0 || clock != CLOCK_REALTIME || !is_catalogd()) return rc;
    long long ms = frozen_ms();
    if (ms > 0) {
        ts->tv_sec = ms / 1000;
        ts->tv_nsec = (ms % 1000) * 1000000;
    }
    return rc;
}
