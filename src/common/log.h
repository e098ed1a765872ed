/* log.h - one level-checked logging macro for the edges (main, handlers, projector loop).
 * Storage and domain code return errors and never print. Lines go to stderr, one per event:
 * "2026-11-28T12:00:00.000Z info projector: caught up at seq 42". */
#ifndef CATALOGD_LOG_H
#define CATALOGD_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern enum log_level log_threshold;

/* Parses "error", "warn", "info" or "debug". Returns 0, or -1 for anything else. */
int log_level_parse(const char *name, enum log_level *out);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG(level, ...)                                                                            \
    do {                                                                                           \
        if ((level) <= log_threshold) log_write((level), __VA_ARGS__);                             \
    } while (0)

#endif
