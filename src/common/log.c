/* log.c - timestamped, level-checked lines on stderr; one write(2) per line so lines from
 * different threads never interleave. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "domain/timestamp.h"

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    char line[1024];
    struct timeval now;
    gettimeofday(&now, NULL);
    char stamp[TIMESTAMP_LEN + 1];
    timestamp_format((uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_usec / 1000, stamp);
    int used = snprintf(line, sizeof(line), "%s %s ", stamp, level_names[level]);
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(line + used, sizeof(line) - (size_t)used - 1, fmt, args);
    va_end(args);
    size_t len = (size_t)used + (n < 0 ? 0 : (size_t)n);
    if (len > sizeof(line) - 2) len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

size_t log_escape(char *out, size_t cap, const char *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        size_t width = c == '\\' ? 2 : (c >= 0x20 && c < 0x7f) ? 1 : 4;
        if (n + width + 4 > cap) { /* room for "..." and the NUL */
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        if (width == 1) {
            out[n++] = (char)c;
        } else if (width == 2) {
            out[n++] = '\\';
            out[n++] = '\\';
        } else {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}
