/* log.h - one level-checked logging macro for the edges (main, handlers, projector loop).
 * Storage and domain code return errors and never print. Lines go to stderr, one per event,
 * as text: "2026-11-28T12:00:00.000Z info projector: caught up at seq 42", or with
 * --log-format json as one JSON object per line, the form log collectors ingest as it is:
 * {"time":"2026-11-28T12:00:00.000Z","level":"info","message":"projector: caught up..."};
 * a request's line also has method, path, status, duration_ms and request_id. */
#ifndef CATALOGD_LOG_H
#define CATALOGD_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
enum log_format { LOG_TEXT = 0, LOG_JSON = 1 };

extern enum log_level log_threshold;
extern enum log_format log_format;

/* Parses "error", "warn", "info" or "debug". Returns 0, or -1 for anything else. */
int log_level_parse(const char *name, enum log_level *out);

/* Parses "text" or "json". Returns 0, or -1 for anything else. */
int log_format_parse(const char *name, enum log_format *out);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One request's line at info level: "method" and "target" (path and query) as log_escape
 * wrote them, "note" ("" if none) said after it. */
void log_request(const char *method, const char *target, int status, double duration_ms,
                 const char *request_id, const char *note);

/* Writes the "len" bytes at "p" into "out" ("cap" > 4 bytes, NUL included) as a log line may
 * carry bytes from the network: printable ASCII as it is, a backslash doubled, every other
 * byte (controls, DEL, anything >= 0x80) as \xHH, so that no line can be split, forged or
 * garbled by what a client sent; what does not fit ends in "...". Returns the length
 * written. */
size_t log_escape(char *out, size_t cap, const char *p, size_t len);

#define LOG(level, ...)                                                                            \
    do {                                                                                           \
        if ((level) <= log_threshold) log_write((level), __VA_ARGS__);                             \
    } while (0)

#endif
