/* layout.c - the table of key kinds. See layout.h for what each key holds. */
#include "readmodel/layout.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *lua_name; /* the local that holds the name in scripts */
    const char *name;
    int in_generation;
} KINDS[KEY_KIND_COUNT] = {
    [KEY_GEN] = {"KEY_GEN", "gen-v2", 0},
    [KEY_GEN_COUNTER] = {"KEY_GEN_COUNTER", "gen-counter", 0},
    [KEY_GENERATIONS] = {"KEY_GENERATIONS", "generations", 0},
    [KEY_REBUILD_LOCK] = {"KEY_REBUILD_LOCK", "rebuild-lock", 0},
    [KEY_PROJECTOR_EPOCH] = {"KEY_PROJECTOR_EPOCH", "projector-epoch", 0},
    [KEY_CHANNEL] = {"KEY_CHANNEL", "projection:", 0},
    [KEY_HOLDER] = {"KEY_HOLDER", "holder", 0},
    [KEY_CONFIRMED_RUN] = {"KEY_CONFIRMED_RUN", "confirmed-run", 0},
    [KEY_CHECKPOINT] = {"KEY_CHECKPOINT", "checkpoint", 1},
    [KEY_CHECKPOINT_EVENT] = {"KEY_CHECKPOINT_EVENT", "checkpoint-event", 1},
    [KEY_IN_STOCK] = {"KEY_IN_STOCK", "in", 1},
    [KEY_OUT_OF_STOCK] = {"KEY_OUT_OF_STOCK", "out", 1},
    [KEY_SKUS] = {"KEY_SKUS", "skus", 1},
    [KEY_PARKED] = {"KEY_PARKED", "parked", 1},
    [KEY_PARKED_QUEUE] = {"KEY_PARKED_QUEUE", "parked:", 1},
};

int layout_in_generation(enum layout_key kind)
{
    assert(kind >= 0 && kind < KEY_KIND_COUNT);
    return KINDS[kind].in_generation;
}

int layout_known_in_generation(const char *name, size_t len)
{
    for (int kind = 0; kind < KEY_KIND_COUNT; kind++) {
        if (!KINDS[kind].in_generation) continue;
        size_t n = strlen(KINDS[kind].name);
        int takes_argument = KINDS[kind].name[n - 1] == ':';
        if (takes_argument ? len > n && memcmp(name, KINDS[kind].name, n) == 0
                           : len == n && memcmp(name, KINDS[kind].name, n) == 0)
            return 1;
    }
    return 0;
}

size_t layout_base(const char *prefix, int64_t gen, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s:g%" PRId64 ":", prefix, gen);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t layout_key(enum layout_key kind, const char *prefix_or_base, const char *argument,
                  size_t argument_len, char *out, size_t cap)
{
    assert(kind >= 0 && kind < KEY_KIND_COUNT);
    size_t head = strlen(prefix_or_base), name = strlen(KINDS[kind].name);
    size_t separator = KINDS[kind].in_generation ? 0 : 1; /* the base ends in ':' already */
    size_t len = head + separator + name + (argument ? argument_len : 0);
    if (!out) return len;
    if (len + 1 > cap) return 0;
    memcpy(out, prefix_or_base, head);
    if (separator) out[head] = ':';
    memcpy(out + head + separator, KINDS[kind].name, name);
    if (argument) memcpy(out + head + separator + name, argument, argument_len);
    out[len] = '\0';
    return len;
}

size_t layout_view_bound(char open, const char *id, size_t id_len, int past, char *out, size_t cap)
{
    static const char head[] = "{\"id\":\"";
    size_t len = 1 + (sizeof(head) - 1) + id_len + 1 + (past ? 1 : 0);
    assert(len <= cap);
    out[0] = open;
    memcpy(out + 1, head, sizeof(head) - 1);
    memcpy(out + sizeof(head), id, id_len);
    out[sizeof(head) + id_len] = '"';
    if (past) out[sizeof(head) + id_len + 1] = (char)0xff;
    return len;
}

void layout_match_pattern(const char *start, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *c = start; *c && n + 3 < cap; c++) {
        if (strchr("*?[]\\", *c)) out[n++] = '\\';
        out[n++] = *c;
    }
    out[n++] = '*';
    out[n] = '\0';
}

static char lua_names[1024];
static pthread_once_t lua_names_once = PTHREAD_ONCE_INIT;

static void write_lua_names(void)
{
    size_t used = 0;
    for (int kind = 0; kind < KEY_KIND_COUNT; kind++) {
        if (!KINDS[kind].in_generation) continue;
        int n = snprintf(lua_names + used, sizeof(lua_names) - used, "local %s = '%s'\n",
                         KINDS[kind].lua_name, KINDS[kind].name);
        assert(n > 0 && (size_t)n < sizeof(lua_names) - used);
        used += (size_t)n;
    }
    int n = snprintf(lua_names + used, sizeof(lua_names) - used,
                     "local GENERATION_MAX = '%" PRId64 "'\n", GENERATION_MAX);
    assert(n > 0 && (size_t)n < sizeof(lua_names) - used);
}

const char *layout_lua_names(void)
{
    pthread_once(&lua_names_once, write_lua_names);
    return lua_names;
}
