/* json_out.h - JSON text written by hand into a bounded buffer, for the texts catalogd writes
 * on every request (a view, a problem): jansson's pack and dump cost many times more. The
 * caller writes the structure; json_out_escaped makes any string safe inside quotes. */
#ifndef CATALOGD_JSON_OUT_H
#define CATALOGD_JSON_OUT_H

#include <stddef.h>
#include <string.h>

/* An output buffer that remembers running out of room instead of writing past it. */
struct json_out {
    char *out;
    size_t cap; /* bytes, one kept for the NUL */
    size_t len;
    int full;
};

static inline void json_out_bytes(struct json_out *w, const char *bytes, size_t n)
{
    if (w->full || n > w->cap - 1 - w->len) {
        w->full = 1;
        return;
    }
    memcpy(w->out + w->len, bytes, n);
    w->len += n;
}

static inline void json_out_text(struct json_out *w, const char *text)
{
    json_out_bytes(w, text, strlen(text));
}

/* Writes the NUL-terminated "text" as the inside of a JSON string: quote, backslash and
 * control characters escaped, every other byte (UTF-8 included) as is. At most 6 bytes out
 * per byte in (a control character as \u00XX). */
static inline void json_out_escaped(struct json_out *w, const char *text)
{
    /* Short escapes JSON has names for; other control characters become \u00XX. */
    static const char *const named_escapes[0x20] = {
        ['\b'] = "\\b", ['\t'] = "\\t", ['\n'] = "\\n", ['\f'] = "\\f", ['\r'] = "\\r",
    };
    static const char hex[] = "0123456789abcdef";
    const char *run = text; /* start of the bytes not yet written */

    for (const char *c = text;; c++) {
        unsigned char byte = (unsigned char)*c;
        if (byte >= 0x20 && byte != '"' && byte != '\\') continue;
        json_out_bytes(w, run, (size_t)(c - run));
        if (byte == '\0') return;
        if (byte == '"') {
            json_out_text(w, "\\\"");
        } else if (byte == '\\') {
            json_out_text(w, "\\\\");
        } else if (named_escapes[byte] != NULL) {
            json_out_text(w, named_escapes[byte]);
        } else {
            char escape[7] = {'\\', 'u', '0', '0', hex[byte >> 4], hex[byte & 0x0F], '\0'};
            json_out_text(w, escape);
        }
        run = c + 1;
    }
}

/* Ends the text with a NUL. Returns its length, or 0 (and an empty text) when it did not fit. */
static inline size_t json_out_finish(struct json_out *w)
{
    if (w->full) {
        w->out[0] = '\0';
        return 0;
    }
    w->out[w->len] = '\0';
    return w->len;
}

#endif
