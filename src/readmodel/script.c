/* script.c - assembles a script's text once and hashes it. */
#include "readmodel/script.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <string.h>

#include "common/digits.h"
#include "common/xmalloc.h"
#include "readmodel/layout.h"

/* guards_hold: a guard's key of another type (written by hand) holds no guard's value:
 * fenced, as when its value differs, so that its holder takes it again; not an error that
 * would stop every script for good. */
static const char HELPERS[] = "local function guards_hold()\n"
                              "  local n = tonumber(ARGV[1])\n"
                              "  for i = 1, n do\n"
                              "    if redis.pcall('GET', ARGV[2 * i]) ~= ARGV[2 * i + 1] then\n"
                              "      return nil, 'FENCED ' .. ARGV[2 * i]\n"
                              "    end\n"
                              "  end\n"
                              "  return 2 * n + 2\n"
                              "end\n"
                              /* GET of a pointer that a key of another type (written
                                 by hand) leaves unset: false, as when it is missing. */
                              "local function pointer_at(key)\n"
                              "  local value = redis.pcall('GET', key)\n"
                              "  if type(value) == 'table' then return false end\n"
                              "  return value\n"
                              "end\n"
                              /* The number of the generation a pointer's text names, as
                                 digits: one written by hand with leading zeros ("01")
                                 names it all the same; anything else ("abc", "inf", a key
                                 of another type, a number past GENERATION_MAX) names none:
                                 nil. */
                              "local function generation_named(text)\n"
                              "  local n = string.match(text or '', '^0*([1-9]%d*)$')\n"
                              "  if n and (#n < #GENERATION_MAX or (#n == #GENERATION_MAX\n"
                              "      and n <= GENERATION_MAX)) then return n end\n"
                              "  return nil\n"
                              "end\n"
                              /* Is "a" above "b"? Both in decimal without leading zeros
                                 (seqs, versions), compared as text: exact past 2^53,
                                 where tonumber's doubles round. */
                              "local function decimal_above(a, b)\n"
                              "  return #a > #b or (#a == #b and a > b)\n"
                              "end\n"
                              "local function type_is(key, wanted)\n"
                              "  local found = redis.call('TYPE', key)['ok']\n"
                              "  return found == 'none' or found == wanted\n"
                              "end\n"
                              /* The view of product "id" in generation "base" and the set
                                 that holds it, or nil (layout.h: a view set's members). */
                              "local function view_of(base, id)\n"
                              "  local low, high = '[{\"id\":\"' .. id .. '\"', "
                              "'({\"id\":\"' .. id .. '\"\\255'\n"
                              "  local found = redis.call('ZRANGEBYLEX', base .. KEY_IN_STOCK, "
                              "low, high, 'LIMIT', 0, 1)[1]\n"
                              "  if found then return found, KEY_IN_STOCK end\n"
                              "  found = redis.call('ZRANGEBYLEX', base .. KEY_OUT_OF_STOCK, low, "
                              "high, 'LIMIT', 0, 1)[1]\n"
                              "  if found then return found, KEY_OUT_OF_STOCK end\n"
                              "  return nil\n"
                              "end\n";

static pthread_mutex_t prepare_lock = PTHREAD_MUTEX_INITIALIZER;

static void prepare(struct script *s)
{
    if (atomic_load(&s->ready)) return;
    pthread_mutex_lock(&prepare_lock);
    if (!atomic_load(&s->ready)) {
        const char *names = layout_lua_names();
        size_t names_len = strlen(names), helpers_len = sizeof(HELPERS) - 1;
        size_t body_len = strlen(s->body);
        s->text_len = names_len + helpers_len + body_len;
        s->text = xmalloc(s->text_len + 1);
        memcpy(s->text, names, names_len);
        memcpy(s->text + names_len, HELPERS, helpers_len);
        memcpy(s->text + names_len + helpers_len, s->body, body_len + 1);
        unsigned char digest[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)s->text, s->text_len, digest);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            digits_hex(s->sha + 2 * i, digest[i], 2);
        s->sha[SCRIPT_SHA_LEN] = '\0';
        atomic_store(&s->ready, 1);
    }
    pthread_mutex_unlock(&prepare_lock);
}

const char *script_text(struct script *s, size_t *len)
{
    prepare(s);
    *len = s->text_len;
    return s->text;
}

const char *script_sha(struct script *s)
{
    prepare(s);
    return s->sha;
}
