/* script.h - a Lua script that runs inside Redis against the read model. Its text is the
 * layout's key names (layout_lua_names), the helpers every script shares, then its own body;
 * callers run it by SHA1 (EVALSHA), sending the text only when Redis does not know it yet.
 *
 * Fencing: the first arguments of every script that writes are its guards, "ARGV[1]" = n,
 * then n pairs (key, value). The script writes nothing unless each key holds exactly its
 * value (the generation it writes is the current one; the rebuild lock is still ours), and
 * answers the error "FENCED <key>" otherwise. A writer that lost its right to write (a
 * rebuild whose lock expired while it was frozen, a projector whose generation was replaced)
 * can therefore never write again, whatever its timing. Shared helpers:
 *   guards_hold()        the index of the first argument after the guards, or nil and the
 *                        error text
 *   type_is(key, type)   the key is absent or of that type */
#ifndef CATALOGD_SCRIPT_H
#define CATALOGD_SCRIPT_H

#include <stdatomic.h>
#include <stddef.h>

#define SCRIPT_SHA_LEN 40

struct script {
    const char *body;
    /* Filled on first use. */
    atomic_int ready;
    char *text;
    size_t text_len;
    char sha[SCRIPT_SHA_LEN + 1];
};

#define SCRIPT(body_text)                                                                          \
    {                                                                                              \
        .body = (body_text)                                                                        \
    }

/* A key that must hold "value" for a script to write. */
struct script_guard {
    const char *key;
    const char *value;
};

/* The whole text of "s" ("*len" bytes) and its SHA1 in hex. Thread-safe. */
const char *script_text(struct script *s, size_t *len);
const char *script_sha(struct script *s);

#endif
