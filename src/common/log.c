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
enum log_format log_format = LOG_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"text", "json"};

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

int log_format_parse(const char *name, enum log_format *out)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
        if (strcmp(name, format_names[i]) == 0) {
            *out = (enum log_format)i;
            return 0;
        }
    }
    return -1;
}

static void now_stamp(char stamp[TIMESTAMP_LEN + 1])
{
    struct timeval now;
    gettimeofday(&now, NULL);
    timestamp_format((uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_usec / 1000, stamp);
}

/* Appends "text" as the inside of a JSON string: quote, backslash and every byte outside
 * printable ASCII escaped, so the line stays one valid JSON object whatever the text holds.
 * Returns the new length (at most "cap" - 1). */
static size_t json_escape(char *out, size_t used, size_t cap, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        size_t width = (*c == '"' || *c == '\\') ? 2 : (*c >= 0x20 && *c < 0x7f) ? 1 : 6;
        if (used + width + 1 > cap) break;
        if (width == 1) {
            out[used++] = (char)*c;
        } else if (width == 2) {
            out[used++] = '\\';
            out[used++] = (char)*c;
        } else {
            memcpy(out + used, "\\u00", 4);
            out[used + 4] = hex[*c >> 4];
            out[used + 5] = hex[*c & 15];
            used += 6;
        }
    }
    out[used] = '\0';
    return used;
}

static void emit(char *line, size_t len, size_t cap)
{
    if (len > cap - 2) len = cap - 2;
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

/* A JSON line: time, level, message, then "fields" (",\"key\":value..." or ""). */
static void emit_json(enum log_level level, const char *message, const char *fields)
{
    char line[2048], stamp[TIMESTAMP_LEN + 1];
    now_stamp(stamp);
    size_t used =
        (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"message\":\"",
                         stamp, level_names[level]);
    used = json_escape(line, used, sizeof(line) - 4, message);
    used += (size_t)snprintf(line + used, sizeof(line) - used, "\"%s}", fields);
    emit(line, used, sizeof(line));
}

void log_write(enum log_level level, const char *fmt, ...)
{
    char message[1024];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(message, sizeof(message), fmt, args);
    va_end(args);
    if (n < 0) message[0] = '\0';
    if (log_format == LOG_JSON) {
        emit_json(level, message, "");
        return;
    }
    char line[1100], stamp[TIMESTAMP_LEN + 1];
    now_stamp(stamp);
    int used = snprintf(line, sizeof(line), "%s %s %s", stamp, level_names[level], message);
    emit(line, used < 0 ? 0 : (size_t)used, sizeof(line));
}

void log_request(const char *method, const char *target, int status, double duration_ms,
                 const char *request_id, const char *note)
{
    if (LOG_INFO > log_threshold) return;
    if (log_format == LOG_TEXT) {
        log_write(LOG_INFO, "request %s %s %d %.3fms id=%s%s%s", method, target, status,
                  duration_ms, request_id, note[0] ? " " : "", note);
        return;
    }
    /* method, target and the id are log_escape'd or server-made: printable ASCII, but a
     * quote or backslash still needs JSON's escape. */
    char fields[1500], escaped[700];
    size_t n = (size_t)snprintf(fields, sizeof(fields), ",\"method\":\"");
    n = json_escape(fields, n, sizeof(fields) - 200, method);
    n += (size_t)snprintf(fields + n, sizeof(fields) - n, "\",\"path\":\"");
    n = json_escape(fields, n, sizeof(fields) - 150, target);
    json_escape(escaped, 0, sizeof(escaped), request_id);
    snprintf(fields + n, sizeof(fields) - n,
             "\",\"status\":%d,\"duration_ms\":%.3f,\"request_id\":\"%s\"", status, duration_ms,
             escaped);
    emit_json(LOG_INFO, note[0] ? note : "request", fields);
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
