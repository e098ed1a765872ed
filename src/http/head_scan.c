/* head_scan.c - reads the raw head of an HTTP/1 request for its framing fields.
 * Invariant: the lines are split exactly where picohttpparser (h2o's parser) splits them, so
 * the fields counted here are the fields h2o saw; values are compared as text. */
#include "http/head_scan.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

/* The start of the request line: picohttpparser skips one empty line before it. */
static size_t request_line_start(const char *bytes, size_t len)
{
    if (len >= 2 && bytes[0] == '\r' && bytes[1] == '\n') return 2;
    if (len >= 1 && bytes[0] == '\n') return 1;
    return 0;
}

size_t head_end(const char *bytes, size_t len, size_t from)
{
    size_t start = request_line_start(bytes, len);
    /* An empty line ("\n\n" or "\n\r\n") ending at or after "from" starts at most three
     * bytes earlier. */
    size_t i = from > start + 3 ? from - 3 : start;
    for (;;) {
        const char *lf = i < len ? memchr(bytes + i, '\n', len - i) : NULL;
        if (!lf) return 0;
        i = (size_t)(lf - bytes) + 1;
        if (i < len && bytes[i] == '\n') return i + 1;
        if (i + 1 < len && bytes[i] == '\r' && bytes[i + 1] == '\n') return i + 2;
    }
}

/* A field whose count (and, for Content-Length, value) decides the framing. */
struct counted_field {
    const char *name;
    size_t count_offset; /* of the int counter in struct head_facts */
};

#define COUNTER(field) offsetof(struct head_facts, field)
static const struct counted_field COUNTED[] = {
    {"content-length", COUNTER(content_length_fields)},
    {"transfer-encoding", COUNTER(transfer_encoding_fields)},
    {"host", COUNTER(host_fields)},
};
#define COUNTED_COUNT (sizeof(COUNTED) / sizeof(COUNTED[0]))

static struct slice trim(const char *p, size_t len)
{
    while (len && (p[0] == ' ' || p[0] == '\t')) {
        p++;
        len--;
    }
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    return (struct slice){p, len};
}

/* Counts one field line ("line", without its line end) into "facts"; "first_length" keeps
 * the first Content-Length's value. */
static void count_field(struct slice line, struct head_facts *facts, struct slice *first_length)
{
    const char *colon = memchr(line.p, ':', line.len);
    if (!colon) return; /* picohttpparser refuses such a line: h2o never got this far */
    size_t name_len = (size_t)(colon - line.p);
    struct slice value = trim(colon + 1, line.len - name_len - 1);
    for (size_t i = 0; i < COUNTED_COUNT; i++) {
        if (strlen(COUNTED[i].name) != name_len ||
            strncasecmp(line.p, COUNTED[i].name, name_len) != 0)
            continue;
        int *count = (int *)((char *)facts + COUNTED[i].count_offset);
        if (count == &facts->content_length_fields) {
            if (*count == 0)
                *first_length = value;
            else if (value.len != first_length->len ||
                     memcmp(value.p, first_length->p, value.len) != 0)
                facts->content_lengths_differ = 1;
        }
        (*count)++;
        return;
    }
}

int head_scan(const char *bytes, size_t len, struct head_facts *out)
{
    memset(out, 0, sizeof(*out));
    struct slice first_length = {"", 0};
    size_t i = request_line_start(bytes, len);
    int request_line = 1;
    while (i < len) {
        const char *lf = memchr(bytes + i, '\n', len - i);
        if (!lf) return -1;
        size_t line_len = (size_t)(lf - (bytes + i));
        if (line_len && bytes[i + line_len - 1] == '\r') line_len--;
        struct slice line = {bytes + i, line_len};
        i = (size_t)(lf - bytes) + 1;
        if (request_line) {
            request_line = 0;
        } else if (line.len == 0) {
            out->length = i;
            return 0;
        } else if (line.p[0] == ' ' || line.p[0] == '\t') {
            out->folded_lines++;
        } else {
            count_field(line, out, &first_length);
        }
    }
    return -1;
}

static int has_folded_line(const struct head_facts *f, int minor)
{
    (void)minor;
    return f->folded_lines > 0;
}

static int has_two_hosts(const struct head_facts *f, int minor)
{
    (void)minor;
    return f->host_fields > 1;
}

static int has_differing_lengths(const struct head_facts *f, int minor)
{
    (void)minor;
    return f->content_lengths_differ;
}

static int has_length_and_encoding(const struct head_facts *f, int minor)
{
    (void)minor;
    return f->transfer_encoding_fields > 0 && f->content_length_fields > 0;
}

static int has_encoding_in_http10(const struct head_facts *f, int minor)
{
    return f->transfer_encoding_fields > 0 && minor == 0;
}

static int has_two_encodings(const struct head_facts *f, int minor)
{
    (void)minor;
    return f->transfer_encoding_fields > 1;
}

int head_field(const char *bytes, size_t len, const char *name, struct slice *value)
{
    size_t name_len = strlen(name), i = request_line_start(bytes, len);
    const char *lf = i < len ? memchr(bytes + i, '\n', len - i) : NULL; /* the request line */
    while (lf) {
        i = (size_t)(lf - bytes) + 1;
        lf = i < len ? memchr(bytes + i, '\n', len - i) : NULL;
        if (!lf) break; /* an unfinished line is no field yet */
        size_t line_len = (size_t)(lf - (bytes + i));
        if (line_len && bytes[i + line_len - 1] == '\r') line_len--;
        if (line_len == 0) break; /* the end of the head */
        if (line_len > name_len && bytes[i + name_len] == ':' &&
            strncasecmp(bytes + i, name, name_len) == 0) {
            *value = trim(bytes + i + name_len + 1, line_len - name_len - 1);
            return 0;
        }
    }
    return -1;
}

/* Where the next byte of a head falls, for head_syntax_check. */
enum syntax_state {
    BEFORE_REQUEST_LINE = 0, /* zeroed: a new head */
    AFTER_LEADING_CR,        /* of the one empty line allowed before the request line */
    IN_METHOD,
    IN_TARGET,
    IN_VERSION,
    AFTER_VERSION,
    AT_LINE_START, /* of a field line, or of the empty line that ends the head */
    IN_NAME,
    BEFORE_VALUE,
    IN_VALUE,
    AFTER_LINE_CR,  /* a CR ending the request line or a field line */
    AFTER_FINAL_CR, /* a CR at the start of a line: the head's end, if LF follows */
    HEAD_DONE,
};

static const char VERSION_PREFIX[] = "HTTP/1.";

static const char *const BAD_REQUEST_LINE = "a request line that is not \"METHOD TARGET HTTP/1.x\"";
static const char *const CONTROL_IN_REQUEST_LINE = "a control character in the request line";
static const char *const BARE_CR = "a CR that is not followed by LF";
static const char *const TOO_MANY_LINES = "more than 100 header lines";
static const char *const EMPTY_NAME = "a header line with an empty name";
static const char *const NO_COLON = "a header line without a colon";
static const char *const NAME_NOT_TOKEN =
    "a header name that is not a token (a space before the colon, or a character outside "
    "RFC 9110's tchar)";
static const char *const CONTROL_IN_VALUE = "a control character in a header value";

/* A control character, by RFC 9110's reading: below 0x20, or DEL. */
static int is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* RFC 9110 5.6.2: tchar. */
static int is_token_char(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Moves "*syntax" past one byte "c" at offset "at". Returns the reason the head is refused,
 * or NULL. */
static const char *syntax_step(struct head_syntax *syntax, unsigned char c, size_t at)
{
    switch ((enum syntax_state)syntax->state) {
    case BEFORE_REQUEST_LINE:
        if (c == '\r') {
            syntax->state = AFTER_LEADING_CR;
            return NULL;
        }
        syntax->state = IN_METHOD;
        return c == '\n' ? NULL : syntax_step(syntax, c, at);
    case AFTER_LEADING_CR:
        syntax->state = IN_METHOD;
        return c == '\n' ? NULL : BARE_CR;
    case IN_METHOD:
    case IN_TARGET:
        if (c == ' ') {
            syntax->state = syntax->state == IN_METHOD ? IN_TARGET : IN_VERSION;
            return NULL;
        }
        return is_control(c) ? CONTROL_IN_REQUEST_LINE : NULL;
    case IN_VERSION:
        if (syntax->version_at < (int)sizeof(VERSION_PREFIX) - 1) {
            return c == (unsigned char)VERSION_PREFIX[syntax->version_at++] ? NULL
                                                                            : BAD_REQUEST_LINE;
        }
        syntax->state = AFTER_VERSION;
        return c >= '0' && c <= '9' ? NULL : BAD_REQUEST_LINE;
    case AFTER_VERSION:
        if (c != '\r' && c != '\n') return BAD_REQUEST_LINE;
        syntax->state = c == '\r' ? AFTER_LINE_CR : AT_LINE_START;
        return NULL;
    case AT_LINE_START:
        if (c == '\r' || c == '\n') {
            syntax->state = c == '\r' ? AFTER_FINAL_CR : HEAD_DONE;
            return NULL;
        }
        if (syntax->field_lines == HEAD_MAX_FIELD_LINES) {
            syntax->field_len = 0; /* no one field is at fault */
            return TOO_MANY_LINES;
        }
        if (syntax->field_lines > 0 && (c == ' ' || c == '\t')) { /* obs-fold: head_scan's */
            syntax->state = IN_VALUE;
            return NULL;
        }
        syntax->field_at = at;
        syntax->field_len = 0;
        syntax->state = IN_NAME;
        return syntax_step(syntax, c, at);
    case IN_NAME:
        if (c == ':') {
            syntax->state = BEFORE_VALUE;
            return syntax->field_len ? NULL : EMPTY_NAME;
        }
        if (c == '\r' || c == '\n') return NO_COLON;
        if (!is_token_char(c)) return NAME_NOT_TOKEN;
        syntax->field_len++;
        return NULL;
    case BEFORE_VALUE:
        if (c == ' ' || c == '\t') return NULL;
        syntax->state = IN_VALUE;
        return syntax_step(syntax, c, at);
    case IN_VALUE:
        if (c == '\r' || c == '\n') {
            syntax->field_lines++;
            syntax->state = c == '\r' ? AFTER_LINE_CR : AT_LINE_START;
            return NULL;
        }
        return is_control(c) && c != '\t' ? CONTROL_IN_VALUE : NULL;
    case AFTER_LINE_CR:
    case AFTER_FINAL_CR:
        if (c != '\n') return BARE_CR;
        syntax->state = syntax->state == AFTER_LINE_CR ? AT_LINE_START : HEAD_DONE;
        return NULL;
    case HEAD_DONE:
        break;
    }
    return NULL;
}

/* How many bytes from "at" syntax_step would let pass in the state "syntax" is in, changing
 * nothing but the name's length: most of a head is targets, names and values, and a run of
 * them is checked in this one loop rather than a step per byte. */
static size_t plain_run(const struct head_syntax *syntax, const unsigned char *bytes, size_t at,
                        size_t len)
{
    size_t i = at;
    switch ((enum syntax_state)syntax->state) {
    case IN_METHOD:
    case IN_TARGET:
        while (i < len && bytes[i] != ' ' && !is_control(bytes[i]))
            i++;
        break;
    case IN_NAME:
        while (i < len && is_token_char(bytes[i]))
            i++;
        break;
    case IN_VALUE: /* CR and LF are control characters: a run ends at the line's end */
        while (i < len && (!is_control(bytes[i]) || bytes[i] == '\t'))
            i++;
        break;
    default:
        break;
    }
    return i - at;
}

const char *head_syntax_check(const char *bytes, size_t len, struct head_syntax *syntax)
{
    const unsigned char *u = (const unsigned char *)bytes;
    while (!syntax->problem && syntax->state != HEAD_DONE && syntax->checked < len) {
        size_t run = plain_run(syntax, u, syntax->checked, len);
        if (syntax->state == IN_NAME) syntax->field_len += run;
        syntax->checked += run;
        if (syntax->checked == len) break;
        size_t at = syntax->checked++;
        syntax->problem = syntax_step(syntax, u[at], at);
    }
    return syntax->problem;
}

/* RFC 9112: 5.2 (obs-fold), 3.2 (more than one Host), 6.3 (differing Content-Length), 6.1
 * (Transfer-Encoding with Content-Length, or in HTTP/1.0). Each rule is a test and its reason,
 * tried in order. */
static const struct {
    int (*applies)(const struct head_facts *facts, int http_minor);
    const char *reason;
} RULES[] = {
    {has_folded_line, "a header field folded onto a second line (obs-fold)"},
    {has_two_hosts, "more than one Host header"},
    {has_differing_lengths, "Content-Length headers with different values"},
    {has_length_and_encoding, "both Content-Length and Transfer-Encoding"},
    {has_encoding_in_http10, "Transfer-Encoding in an HTTP/1.0 request"},
    {has_two_encodings, "more than one Transfer-Encoding header"},
};

const char *head_framing_problem(const struct head_facts *facts, int http_minor)
{
    for (size_t i = 0; i < sizeof(RULES) / sizeof(RULES[0]); i++)
        if (RULES[i].applies(facts, http_minor)) return RULES[i].reason;
    return NULL;
}

int head_http_minor(const char *bytes, size_t len)
{
    size_t start = request_line_start(bytes, len);
    const char *line = bytes + start, *lf = memchr(line, '\n', len - start);
    if (!lf) return -1;
    const char *end = lf > line && lf[-1] == '\r' ? lf - 1 : lf;
    return end > line && end[-1] >= '0' && end[-1] <= '9' ? end[-1] - '0' : -1;
}
