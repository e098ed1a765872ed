/* product.c - parses and validates command bodies (create, patch, stock delta) into drafts.
 * Pure: no I/O. Invariant: BODY_OK is returned only when every field present passed its rule
 * and every required field is present, so a draft never carries a value the contract forbids;
 * otherwise the struct validation lists every failing field, not just the first.
 *
 * Each command is a table of field rules, and every member of a body goes through the rules
 * as a struct member. Two readers make those members:
 * - the fast path (fast_members) reads a plain body, which is nearly every body a client
 *   sends: one flat object of known keys, each once, whose values are strings without
 *   escapes or numbers without exponent. It declines anything else, before any rule has run.
 * - jansson reads every body the fast path declines. The only hand-written scanning on that
 *   path is the recovery from numbers too large for jansson (see recover_overflow), which
 *   only reads a prefix jansson has already accepted.
 * A body the fast path reads is one jansson reads to the same members, so both give the same
 * verdict; fuzz_body checks it on every input (product_parse with fast 0 and 1). */
#include "product.h"

#include <assert.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/slice.h"
#include "common/xmalloc.h"
#include "money.h"

#define BODY_FIELD "(body)"

/* Messages: static text, short and specific. */
#define MSG_REQUIRED     "is required"
#define MSG_UNKNOWN      "unknown field"
#define MSG_READ_ONLY    "is read-only"
#define MSG_STRING       "must be a string"
#define MSG_SKU          "must be 1-64 characters from A-Z a-z 0-9 . _ -"
#define MSG_NAME_LENGTH  "must be 1-200 characters after trimming"
#define MSG_NAME_CONTROL "must not contain control characters"
#define MSG_NAME_UTF8    "must be valid UTF-8"
#define MSG_NUMBER       "must be a number"
#define MSG_INTEGER      "must be an integer"
#define MSG_STOCK_RANGE  "must be between 0 and 2147483647"
#define MSG_DELTA_ZERO   "must not be zero"
#define MSG_DELTA_RANGE  "must be between -2147483647 and 2147483647"
#define MSG_PATCH_EMPTY  "must contain at least one of name, price, stock"

/* What a member's value is, as the rules see it. A number jansson could not hold (it fails
 * the whole decode on them) is replaced with null and parsed again, and its key remembered
 * with what it looked like (see recover_overflow). */
enum value_kind {
    VALUE_OTHER = 0, /* an object, an array, true, false or null */
    VALUE_STRING,
    VALUE_INTEGER,
    VALUE_REAL,
    VALUE_INTEGER_TOO_BIG, /* 99999999999999999999 or its negative: an integer, out of range */
    VALUE_REAL_TOO_BIG,    /* 1e309: a real, out of range */
};

struct overflowed_key {
    const char *key; /* points into the working copy of the body; not NUL-terminated */
    size_t key_len;
    enum value_kind kind; /* VALUE_INTEGER_TOO_BIG or VALUE_REAL_TOO_BIG */
};

/* What the field rules fill in. */
struct parsed {
    struct product_draft draft;
    int64_t delta;
};

/* One member of the body's object, as a rule sees it. */
struct member {
    struct slice key; /* decoded */
    enum value_kind kind;
    struct slice text;    /* VALUE_STRING: the decoded string (valid UTF-8) */
    int64_t integer;      /* VALUE_INTEGER */
    struct slice literal; /* a number as the client wrote it; {NULL, 0}: find it in "body" */
    const char *body;     /* the body as the client sent it, for member_literal */
    size_t body_len;
};

/* A rule checks one member's value and stores it into "*into". It returns NULL when the value
 * is good, else the static message for the client. */
typedef const char *field_check(const struct member *member, struct parsed *into);

struct field_rule {
    const char *name;
    unsigned bit; /* enum product_field bit set on success, 0 for a rule that always fails */
    int required;
    field_check *check;
};

/* ---- validation bookkeeping ---- */

static void validation_reset(struct validation *v)
{
    memset(v, 0, sizeof *v);
}

/* Copies "field" ("len" bytes of valid UTF-8) into "out", cutting a longer name at a
 * character boundary and ending it with "...". */
static void copy_field_name(const char *field, size_t len, char out[VALIDATION_FIELD_MAX + 1])
{
    if (len <= VALIDATION_FIELD_MAX) {
        memcpy(out, field, len);
        out[len] = '\0';
        return;
    }
    size_t keep = VALIDATION_FIELD_MAX - 3;
    while (keep > 0 && ((unsigned char)field[keep] & 0xC0) == 0x80)
        keep--; /* do not split a multi-byte character */
    memcpy(out, field, keep);
    memcpy(out + keep, "...", 4);
}

/* Lists an error of a field the rules know (there is room for each: VALIDATION_MAX_KNOWN). */
static void validation_add(struct validation *v, const char *field, size_t len, const char *message)
{
    assert(v->error_count < VALIDATION_MAX_ERRORS);
    struct field_error *e = &v->errors[v->error_count++];
    copy_field_name(field, len, e->field);
    e->message = message;
}

/* An unknown field: listed while fewer than VALIDATION_MAX_UNKNOWN are, counted always. */
static void validation_add_unknown(struct validation *v, const char *field, size_t len)
{
    if (v->unknown_listed == VALIDATION_MAX_UNKNOWN) {
        v->unlisted_count++;
        return;
    }
    v->unknown_listed++;
    validation_add(v, field, len, MSG_UNKNOWN);
}

/* Sets "detail" for a 400 and returns BODY_MALFORMED. Bytes outside printable ASCII (jansson
 * quotes the offending input in its messages) become '?', so the detail is always safe text. */
static int malformed(struct validation *v, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static int malformed(struct validation *v, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    vsnprintf(v->detail, sizeof v->detail, format, args);
    va_end(args);
    for (char *c = v->detail; *c; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7E) *c = '?';
    }
    v->error_count = v->unknown_listed = v->unlisted_count = 0;
    return BODY_MALFORMED;
}

/* ---- a member's literal ---- */

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The end of the JSON string that opens at "body[i]" (a quote): the offset past its closing
 * quote. */
static size_t string_end(const char *body, size_t len, size_t i)
{
    for (i++; i < len && body[i] != '"'; i++)
        if (body[i] == '\\') i++;
    return i + 1;
}

/* 1 when the JSON string literal "text" ("len" bytes, quotes included) means "key". A key
 * without escapes is its own text; one with escapes ("pr\u0069ce") is decoded by jansson. */
static int key_is(const char *text, size_t len, struct slice key)
{
    if (!memchr(text, '\\', len))
        return len - 2 == key.len && memcmp(text + 1, key.p, key.len) == 0;
    json_t *decoded = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    int same = json_is_string(decoded) && json_string_length(decoded) == key.len &&
               memcmp(json_string_value(decoded), key.p, key.len) == 0;
    json_decref(decoded);
    return same;
}

/* Finds the text of the value of the top-level member "key" in "body", as the client wrote
 * it: jansson keeps no literal of a number, so this is how a price is read exactly. "body" is
 * text jansson has accepted as one JSON object without duplicate keys, so finding a member
 * needs no grammar, only where strings and nesting begin and end. (A second JSON parser that
 * keeps literals would be two parsers that could disagree about the same bytes.) Returns 0
 * and "*out", or -1 when there is no such member. */
static int member_literal(const char *body, size_t len, struct slice key, struct slice *out)
{
    size_t i = 0;
    while (i < len && body[i] != '{')
        i++;
    for (i++; i < len;) {
        while (i < len && (is_json_space(body[i]) || body[i] == ','))
            i++;
        if (i >= len || body[i] != '"') return -1; /* the closing brace */
        size_t key_start = i, key_end = string_end(body, len, i);
        i = key_end;
        while (i < len && (is_json_space(body[i]) || body[i] == ':'))
            i++;
        size_t value_start = i;
        int depth = 0;
        for (; i < len; i++) {
            char c = body[i];
            if (c == '"') {
                i = string_end(body, len, i) - 1;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if ((c == '}' || c == ']') && depth > 0) {
                depth--;
            } else if (depth == 0 && (c == ',' || c == '}')) {
                break;
            }
        }
        size_t value_end = i;
        while (value_end > value_start && is_json_space(body[value_end - 1]))
            value_end--;
        if (key_is(body + key_start, key_end - key_start, key)) {
            *out = (struct slice){body + value_start, value_end - value_start};
            return 0;
        }
    }
    return -1;
}

/* ---- UTF-8 and names ---- */

/* Decodes one code point of valid UTF-8 at "s" (at most "len" bytes) into "*cp". Returns its
 * byte length, or 0 for an invalid sequence (jansson only hands us valid UTF-8; this is the
 * belt to its braces). */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    static const struct {
        unsigned char mask, lead;
        size_t length;
        uint32_t min;
    } forms[] = {
        {0x80, 0x00, 1, 0},
        {0xE0, 0xC0, 2, 0x80},
        {0xF0, 0xE0, 3, 0x800},
        {0xF8, 0xF0, 4, 0x10000},
    };

    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        if ((s[0] & forms[f].mask) != forms[f].lead) continue;
        size_t n = forms[f].length;
        if (n > len) return 0;
        uint32_t value = s[0] & (uint32_t)(0x7F >> (n == 1 ? 0 : n));
        for (size_t i = 1; i < n; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            value = value << 6 | (s[i] & 0x3F);
        }
        if (value < forms[f].min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF))
            return 0;
        *cp = value;
        return n;
    }
    return 0;
}

/* Unicode White_Space (PropList.txt), trimmed from both ends of a name. */
static int is_white_space(uint32_t cp)
{
    static const struct {
        uint32_t first, last;
    } ranges[] = {
        {0x0009, 0x000D}, {0x0020, 0x0020}, {0x0085, 0x0085}, {0x00A0, 0x00A0}, {0x1680, 0x1680},
        {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
    };

    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        if (cp >= ranges[i].first && cp <= ranges[i].last) return 1;
    }
    return 0;
}

/* C0 and C1 control characters, and DEL. */
static int is_control(uint32_t cp)
{
    return cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F);
}

/* Start of the last code point of "s" ("len" > 0 bytes). */
static size_t utf8_last_start(const unsigned char *s, size_t len)
{
    size_t i = len - 1;
    while (i > 0 && (s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

static const char *check_name(const struct member *member, struct parsed *into)
{
    if (member->kind != VALUE_STRING) return MSG_STRING;

    const unsigned char *s = (const unsigned char *)member->text.p;
    size_t start = 0, end = member->text.len;
    uint32_t cp;
    size_t n;

    while (start < end && (n = utf8_decode(s + start, end - start, &cp)) > 0 && is_white_space(cp))
        start += n;
    while (end > start) {
        size_t last = utf8_last_start(s + start, end - start) + start;
        if (utf8_decode(s + last, end - last, &cp) != end - last || !is_white_space(cp)) break;
        end = last;
    }

    size_t characters = 0;
    for (size_t i = start; i < end; i += n) {
        n = utf8_decode(s + i, end - i, &cp);
        if (n == 0) return MSG_NAME_UTF8;
        if (is_control(cp)) return MSG_NAME_CONTROL;
        characters++;
    }
    if (characters < 1 || characters > PRODUCT_NAME_MAX) return MSG_NAME_LENGTH;
    /* At most PRODUCT_NAME_MAX code points of at most 4 bytes: it fits. */
    memcpy(into->draft.name, s + start, end - start);
    into->draft.name[end - start] = '\0';
    return NULL;
}

/* ---- the other field rules ---- */

static const char *check_sku(const struct member *member, struct parsed *into)
{
    if (member->kind != VALUE_STRING) return MSG_STRING;

    const char *s = member->text.p;
    size_t len = member->text.len;
    if (!product_sku_valid(s, len)) return MSG_SKU;
    memcpy(into->draft.sku, s, len);
    into->draft.sku[len] = '\0';
    return NULL;
}

/* The price is read from its literal, exactly (money_parse), never through the double that
 * jansson made of it: a double cannot tell "0.10000000000000001" (seventeen decimals) from
 * "0.10", nor "1e-400" from "0". */
static const char *check_price(const struct member *member, struct parsed *into)
{
    struct slice literal = member->literal;
    int64_t cents;
    if (member->kind == VALUE_OTHER || member->kind == VALUE_STRING) return MSG_NUMBER;
    if (literal.p == NULL &&
        member_literal(member->body, member->body_len, member->key, &literal) < 0)
        return MSG_NUMBER; /* not reached: jansson found the member in the same text */
    int rc = money_parse(literal.p, literal.len, &cents);
    if (rc < 0) return money_error_message(rc);
    into->draft.price_cents = cents;
    return NULL;
}

/* Reads a JSON integer in [min, max] into "*out", or returns the message why not. */
static const char *check_integer(const struct member *member, int64_t min, int64_t max,
                                 const char *range_message, int64_t *out)
{
    if (member->kind == VALUE_INTEGER_TOO_BIG) return range_message;
    if (member->kind != VALUE_INTEGER) return MSG_INTEGER;
    if (member->integer < min || member->integer > max) return range_message;
    *out = member->integer;
    return NULL;
}

static const char *check_stock(const struct member *member, struct parsed *into)
{
    return check_integer(member, 0, PRODUCT_STOCK_MAX, MSG_STOCK_RANGE, &into->draft.stock);
}

static const char *check_delta(const struct member *member, struct parsed *into)
{
    const char *message =
        check_integer(member, -PRODUCT_DELTA_MAX, PRODUCT_DELTA_MAX, MSG_DELTA_RANGE, &into->delta);
    if (message == NULL && into->delta == 0) return MSG_DELTA_ZERO;
    return message;
}

static const char *check_read_only(const struct member *member, struct parsed *into)
{
    (void)member, (void)into;
    return MSG_READ_ONLY;
}

/* The delta's presence bit, outside enum product_field. */
#define FIELD_DELTA (1u << 8)

static const struct field_rule create_rules[] = {
    {"sku", PRODUCT_FIELD_SKU, 1, check_sku},
    {"name", PRODUCT_FIELD_NAME, 1, check_name},
    {"price", PRODUCT_FIELD_PRICE, 1, check_price},
    {"stock", PRODUCT_FIELD_STOCK, 1, check_stock},
};

static const struct field_rule patch_rules[] = {
    {"name", PRODUCT_FIELD_NAME, 0, check_name},
    {"price", PRODUCT_FIELD_PRICE, 0, check_price},
    {"stock", PRODUCT_FIELD_STOCK, 0, check_stock},
    {"id", 0, 0, check_read_only},
    {"sku", 0, 0, check_read_only},
    {"version", 0, 0, check_read_only},
};

static const struct field_rule delta_rules[] = {
    {"delta", FIELD_DELTA, 1, check_delta},
};

#define RULES(table) table, sizeof table / sizeof table[0]

/* The most rules of one table: the fast path keeps room for one member per rule. */
#define RULES_MAX 8
_Static_assert(sizeof create_rules / sizeof create_rules[0] <= RULES_MAX, "create fits");
_Static_assert(sizeof patch_rules / sizeof patch_rules[0] <= RULES_MAX, "patch fits");
_Static_assert(sizeof delta_rules / sizeof delta_rules[0] <= RULES_MAX, "delta fits");
_Static_assert(RULES_MAX + 1 <= VALIDATION_MAX_KNOWN, "every rule's error and body's are listed");

/* ---- decoding ---- */

static int is_number_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* jansson failed on a number too large for it, ending at byte "end" of "buf". If that number
 * is the value of a top-level key whose text has no escapes, overwrites the number in "buf" with
 * null (padded with spaces), records the key in "*found" and returns 0; else returns -1.
 * The bytes before the number are JSON that jansson accepted, so a scan that tracks strings
 * and nesting depth is enough to know where the number sits. */
static int recover_overflow(char *buf, size_t end, struct overflowed_key *found)
{
    size_t number_start = end;
    while (number_start > 0 && is_number_char(buf[number_start - 1]))
        number_start--;
    if (number_start == end || end - number_start < 4) return -1;

    /* Forward scan: depth, and the last string that opened at depth 1 (a key candidate). */
    int depth = 0, in_string = 0, escaped = 0, top_is_object = 0, key_has_escape = 0;
    size_t key_open = 0, key_close = 0;
    for (size_t i = 0; i < number_start; i++) {
        char c = buf[i];
        if (in_string) {
            if (escaped) {
                escaped = 0;
            } else if (c == '\\') {
                escaped = 1;
                if (depth == 1) key_has_escape = 1;
            } else if (c == '"') {
                in_string = 0;
                if (depth == 1) key_close = i;
            }
        } else if (c == '"') {
            in_string = 1;
            if (depth == 1) {
                key_open = i;
                key_has_escape = 0;
            }
        } else if (c == '{' || c == '[') {
            if (depth == 0) top_is_object = c == '{';
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    if (in_string || depth != 1 || !top_is_object || key_close <= key_open || key_has_escape)
        return -1;

    /* Between the key's closing quote and the number: only spaces and one colon. */
    size_t i = number_start;
    while (i > 0 && is_json_space(buf[i - 1]))
        i--;
    if (i == 0 || buf[i - 1] != ':') return -1;
    i--;
    while (i > 0 && is_json_space(buf[i - 1]))
        i--;
    if (i == 0 || i - 1 != key_close) return -1;

    found->key = buf + key_open + 1;
    found->key_len = key_close - key_open - 1;
    found->kind = VALUE_INTEGER_TOO_BIG;
    for (size_t k = number_start; k < end; k++) {
        if (buf[k] == '.' || buf[k] == 'e' || buf[k] == 'E') found->kind = VALUE_REAL_TOO_BIG;
    }
    memcpy(buf + number_start, "null", 4);
    memset(buf + number_start + 4, ' ', end - number_start - 4);
    return 0;
}

/* Numbers out of jansson's range that one body may hold (each costs a decode of its own). */
#define OVERFLOWS_MAX 16

/* The object a body decoded to, with the keys whose numbers had to be replaced. */
struct decoded {
    json_t *object;
    const char *body; /* as sent, for the literals of its members */
    size_t body_len;
    char *copy; /* working copy of the body, made on the first overflow; owns the keys below */
    int overflow_count;
    struct overflowed_key overflows[OVERFLOWS_MAX];
};

static void decoded_free(struct decoded *d)
{
    json_decref(d->object);
    free(d->copy);
}

/* What a non-object body is called in the 400 detail, by json_type. */
static const char *const json_type_names[] = {
    [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
    [JSON_INTEGER] = "a number", [JSON_REAL] = "a number",  [JSON_TRUE] = "true",
    [JSON_FALSE] = "false",      [JSON_NULL] = "null",
};

/* Decodes "body" into one JSON object in "*d" (to release with decoded_free, also on
 * failure). Returns 0, or BODY_MALFORMED with "v->detail" set. */
static int decode_object(const char *body, size_t len, struct decoded *d, struct validation *v)
{
    const size_t flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL;
    const char *text = body;
    json_error_t error;
    size_t i = 0;

    memset(d, 0, sizeof *d);
    d->body = body;
    d->body_len = len;
    while (i < len && is_json_space(body[i]))
        i++;
    if (i == len) return malformed(v, "body is empty; expected a JSON object");

    for (;;) {
        d->object = json_loadb(text, len, flags, &error);
        if (d->object != NULL) break;
        if (json_error_code(&error) != json_error_numeric_overflow)
            return malformed(v, "body is not valid JSON: %s at line %d column %d", error.text,
                             error.line, error.column);
        if (d->overflow_count == OVERFLOWS_MAX)
            return malformed(v, "body has too many out-of-range numbers");
        if (d->copy == NULL) {
            d->copy = xmalloc(len);
            memcpy(d->copy, body, len);
            text = d->copy;
        }
        if (error.position < 0 || (size_t)error.position > len ||
            recover_overflow(d->copy, (size_t)error.position, &d->overflows[d->overflow_count]) < 0)
            return malformed(v, "body has a number out of range (%s) at line %d column %d",
                             error.text, error.line, error.column);
        d->overflow_count++;
    }

    if (!json_is_object(d->object))
        return malformed(v, "body must be a JSON object, got %s",
                         json_type_names[json_typeof(d->object)]);
    return 0;
}

/* The member "key": "value" of the decoded object, as the rules see it. */
static struct member member_of(const struct decoded *d, const char *key, const json_t *value)
{
    struct member m = {.key = {key, strlen(key)}, .body = d->body, .body_len = d->body_len};

    for (int i = 0; i < d->overflow_count; i++) {
        if (d->overflows[i].key_len == m.key.len &&
            memcmp(d->overflows[i].key, key, m.key.len) == 0) {
            m.kind = d->overflows[i].kind;
            return m;
        }
    }
    if (json_is_string(value)) {
        m.kind = VALUE_STRING;
        m.text = (struct slice){json_string_value(value), json_string_length(value)};
    } else if (json_is_integer(value)) {
        m.kind = VALUE_INTEGER;
        m.integer = json_integer_value(value);
    } else if (json_is_real(value)) {
        m.kind = VALUE_REAL;
    }
    return m;
}

/* ---- the fast path ---- */

#define FAST_DECLINED 1 /* not an enum body_status: the body is left to jansson */

/* The longest number the fast path reads, and the most digits of an integer: below them a
 * number can neither overflow jansson's json_int_t nor strtod (jansson's verdict on those
 * is recover_overflow's to report). */
#define FAST_NUMBER_MAX         40
#define FAST_INTEGER_DIGITS_MAX 18

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static size_t skip_json_space(const char *body, size_t len, size_t i)
{
    while (i < len && is_json_space(body[i]))
        i++;
    return i;
}

/* Reads the string that opens at "body[i]" (a quote) into "*m" when it is plain: no escape,
 * no control character, valid UTF-8. Returns the offset past its closing quote, or 0. */
static size_t fast_string(const char *body, size_t len, size_t i, struct member *m)
{
    size_t start = ++i;
    while (i < len && body[i] != '"') {
        unsigned char c = (unsigned char)body[i];
        uint32_t cp;
        size_t n = 1;
        if (c < 0x20 || c == '\\') return 0;
        if (c >= 0x80 && (n = utf8_decode((const unsigned char *)body + i, len - i, &cp)) == 0)
            return 0;
        i += n;
    }
    if (i == len) return 0;
    m->kind = VALUE_STRING;
    m->text = (struct slice){body + start, i - start};
    return i + 1;
}

/* Reads the number at "body[i]" into "*m" when it is plain: JSON's grammar without exponent,
 * at most FAST_NUMBER_MAX bytes, an integer of at most FAST_INTEGER_DIGITS_MAX digits.
 * Returns the offset past it, or 0. */
static size_t fast_number(const char *body, size_t len, size_t i, struct member *m)
{
    size_t start = i;
    if (i < len && body[i] == '-') i++;
    size_t digits = i;
    if (i < len && body[i] == '0') {
        i++;
    } else {
        if (i == len || !is_digit(body[i])) return 0;
        while (i < len && is_digit(body[i]))
            i++;
    }
    size_t integer_end = i;
    m->kind = VALUE_INTEGER;
    if (i < len && body[i] == '.') {
        if (++i == len || !is_digit(body[i])) return 0;
        while (i < len && is_digit(body[i]))
            i++;
        m->kind = VALUE_REAL;
    }
    if ((i < len && (body[i] == 'e' || body[i] == 'E')) || i - start > FAST_NUMBER_MAX) return 0;
    if (m->kind == VALUE_INTEGER) {
        if (integer_end - digits > FAST_INTEGER_DIGITS_MAX) return 0;
        int64_t n = 0;
        for (size_t k = digits; k < integer_end; k++)
            n = n * 10 + (body[k] - '0');
        m->integer = body[start] == '-' ? -n : n;
    }
    m->literal = (struct slice){body + start, i - start};
    return i;
}

/* The rule named exactly by the "len" bytes at "key", or NULL. */
static const struct field_rule *rule_named(const struct field_rule *rules, size_t rule_count,
                                           const char *key, size_t len)
{
    for (size_t r = 0; r < rule_count; r++) {
        if (strlen(rules[r].name) == len && memcmp(rules[r].name, key, len) == 0) return &rules[r];
    }
    return NULL;
}

/* Reads a plain body into "members" (room for "rule_count"), in body order, with the rule of
 * each in "member_rules". Returns BODY_OK, or FAST_DECLINED for a body that is not plain:
 * not one object, a key unknown, repeated or escaped, a value other than a plain string or
 * number (fast_string, fast_number), anything after the object but spaces. */
static int fast_members(const char *body, size_t len, const struct field_rule *rules,
                        size_t rule_count, struct member *members,
                        const struct field_rule **member_rules, size_t *count)
{
    size_t i = skip_json_space(body, len, 0);
    unsigned taken = 0;

    *count = 0;
    if (i == len || body[i] != '{') return FAST_DECLINED;
    i = skip_json_space(body, len, i + 1);
    if (i < len && body[i] == '}')
        return skip_json_space(body, len, i + 1) == len ? BODY_OK : FAST_DECLINED;
    for (;;) {
        if (i == len || body[i] != '"') return FAST_DECLINED;
        size_t key = ++i;
        while (i < len && body[i] != '"' && body[i] != '\\')
            i++;
        if (i == len || body[i] != '"') return FAST_DECLINED;
        size_t key_len = i - key;
        const struct field_rule *rule = rule_named(rules, rule_count, body + key, key_len);
        if (rule == NULL || (taken & 1u << (rule - rules))) return FAST_DECLINED;
        taken |= 1u << (rule - rules);
        i = skip_json_space(body, len, i + 1);
        if (i == len || body[i] != ':') return FAST_DECLINED;
        i = skip_json_space(body, len, i + 1);
        struct member *m = &members[*count];
        *m = (struct member){.key = {body + key, key_len}, .body = body, .body_len = len};
        i = i < len && body[i] == '"' ? fast_string(body, len, i, m) : fast_number(body, len, i, m);
        if (i == 0) return FAST_DECLINED;
        member_rules[(*count)++] = rule;
        i = skip_json_space(body, len, i);
        if (i < len && body[i] == '}') break;
        if (i == len || body[i] != ',') return FAST_DECLINED;
        i = skip_json_space(body, len, i + 1);
    }
    return skip_json_space(body, len, i + 1) == len ? BODY_OK : FAST_DECLINED;
}

/* ---- the rules over the members ---- */

/* Runs "rule" (NULL: the key is unknown) over "m", into "into" and "v". */
static void check_member(const struct field_rule *rule, const struct member *m, struct parsed *into,
                         struct validation *v, unsigned *seen, unsigned *passed)
{
    if (rule == NULL) {
        validation_add_unknown(v, m->key.p, m->key.len);
        return;
    }
    *seen |= rule->bit;
    const char *message = rule->check(m, into);
    if (message != NULL)
        validation_add(v, m->key.p, m->key.len, message);
    else
        *passed |= rule->bit;
}

/* Runs "rules" over the decoded object in body order. Returns the bits of the fields present,
 * good or bad, and sets "*passed" to those that passed. */
static unsigned check_decoded(const struct decoded *d, const struct field_rule *rules,
                              size_t rule_count, struct parsed *into, struct validation *v,
                              unsigned *passed)
{
    unsigned seen = 0;
    const char *key;
    json_t *value;

    json_object_foreach(d->object, key, value)
    {
        struct member m = member_of(d, key, value);
        check_member(rule_named(rules, rule_count, key, m.key.len), &m, into, v, &seen, passed);
    }
    return seen;
}

/* The common shape of the three parsers: the members' rules, then missing required fields in
 * rule order. "patch" adds its one rule across fields: at least one updatable field must be
 * present (a present but bad one already has its own error). */
static int parse_body(const char *body, size_t len, const struct field_rule *rules,
                      size_t rule_count, int patch, int fast, struct parsed *into,
                      struct validation *v)
{
    struct member members[RULES_MAX];
    const struct field_rule *member_rules[RULES_MAX];
    size_t count = 0;
    unsigned seen = 0, passed = 0;
    int rc = FAST_DECLINED;

    validation_reset(v);
    memset(into, 0, sizeof *into);
    assert(rule_count <= RULES_MAX);
    if (fast) rc = fast_members(body, len, rules, rule_count, members, member_rules, &count);
    if (rc == BODY_OK) {
        for (size_t k = 0; k < count; k++)
            check_member(member_rules[k], &members[k], into, v, &seen, &passed);
    } else {
        struct decoded d;
        rc = decode_object(body, len, &d, v);
        if (rc == BODY_OK) seen = check_decoded(&d, rules, rule_count, into, v, &passed);
        decoded_free(&d);
    }
    if (rc == BODY_OK) {
        for (size_t r = 0; r < rule_count; r++) {
            if (rules[r].required && !(seen & rules[r].bit))
                validation_add(v, rules[r].name, strlen(rules[r].name), MSG_REQUIRED);
        }
        if (patch && !(seen & (PRODUCT_FIELD_NAME | PRODUCT_FIELD_PRICE | PRODUCT_FIELD_STOCK)))
            validation_add(v, BODY_FIELD, strlen(BODY_FIELD), MSG_PATCH_EMPTY);
        into->draft.fields = passed;
        int failed = v->error_count + v->unlisted_count;
        if (failed > 0 && v->unlisted_count == 0) {
            snprintf(v->detail, sizeof v->detail, "%d field%s failed validation: see errors",
                     failed, failed == 1 ? "" : "s");
            rc = BODY_INVALID;
        } else if (failed > 0) {
            snprintf(v->detail, sizeof v->detail,
                     "%d fields failed validation: see errors (it lists the first %d of the %d "
                     "unknown fields)",
                     failed, v->unknown_listed, v->unknown_listed + v->unlisted_count);
            rc = BODY_INVALID;
        }
    }
    if (rc != BODY_OK) memset(into, 0, sizeof *into);
    return rc;
}

int product_parse(enum body_kind kind, const char *body, size_t len, int fast,
                  struct product_draft *draft, int64_t *delta, struct validation *v)
{
    struct parsed parsed;
    int rc;

    switch (kind) {
    case BODY_CREATE:
        rc = parse_body(body, len, RULES(create_rules), 0, fast, &parsed, v);
        break;
    case BODY_PATCH:
        rc = parse_body(body, len, RULES(patch_rules), 1, fast, &parsed, v);
        break;
    default:
        rc = parse_body(body, len, RULES(delta_rules), 0, fast, &parsed, v);
        break;
    }
    if (draft) *draft = parsed.draft;
    if (delta) *delta = parsed.delta;
    return rc;
}

int product_parse_create(const char *body, size_t len, struct product_draft *out,
                         struct validation *v)
{
    return product_parse(BODY_CREATE, body, len, 1, out, NULL, v);
}

int product_parse_patch(const char *body, size_t len, struct product_draft *out,
                        struct validation *v)
{
    return product_parse(BODY_PATCH, body, len, 1, out, NULL, v);
}

int product_parse_stock_delta(const char *body, size_t len, int64_t *delta, struct validation *v)
{
    return product_parse(BODY_STOCK_DELTA, body, len, 1, NULL, delta, v);
}

void product_apply_draft(struct product *p, const struct product_draft *draft)
{
    if (draft->fields & PRODUCT_FIELD_SKU) memcpy(p->sku, draft->sku, sizeof p->sku);
    if (draft->fields & PRODUCT_FIELD_NAME) memcpy(p->name, draft->name, sizeof p->name);
    if (draft->fields & PRODUCT_FIELD_PRICE) p->price_cents = draft->price_cents;
    if (draft->fields & PRODUCT_FIELD_STOCK) p->stock = draft->stock;
}
