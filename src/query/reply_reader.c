/* reply_reader.c - hiredis' reply objects built in a per-reader arena (reply_reader.h).
 *
 * The arena is a list of blocks. The first block is kept for the reader's life; a reply too
 * big for it (a page of 1000 views) takes more blocks, freed when that reply is released.
 * hiredis builds a reply only from complete items and returns it as soon as it is whole, so
 * when a reply is released no object of the next one exists yet: resetting is safe. */
#include "query/reply_reader.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_BLOCK_BYTES (64 * 1024) /* a page of 100 views and its replies fit */

/* hiredis frees its input buffer once emptied if it has more than 16 KiB spare, and grows it
 * again (by copying, doubling) for the next page. A page of 1000 views fits in this much,
 * kept between replies. */
#define KEPT_INPUT_BYTES (512 * 1024)

struct block {
    struct block *next; /* the block filled before this one */
    size_t cap, used;
    alignas(max_align_t) unsigned char bytes[];
};

struct arena {
    struct block *current; /* the newest block; the list ends at the first */
};

static struct block *block_new(size_t cap, struct block *next)
{
    struct block *b = malloc(sizeof(*b) + cap);
    if (!b) return NULL;
    b->next = next;
    b->cap = cap;
    b->used = 0;
    return b;
}

static void *arena_alloc(struct arena *arena, size_t size)
{
    size = (size + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    struct block *b = arena->current;
    if (b->cap - b->used < size) {
        size_t cap = size > FIRST_BLOCK_BYTES ? size : FIRST_BLOCK_BYTES;
        if (!(b = block_new(cap, b))) return NULL;
        arena->current = b;
    }
    void *p = b->bytes + b->used;
    b->used += size;
    return p;
}

/* Back to the first block, empty. */
static void arena_reset(struct arena *arena)
{
    while (arena->current->next) {
        struct block *spent = arena->current;
        arena->current = spent->next;
        free(spent);
    }
    arena->current->used = 0;
}

/* A new reply object, linked into its parent array. */
static redisReply *new_object(const redisReadTask *task, int type)
{
    redisReply *r = arena_alloc(task->privdata, sizeof(*r));
    if (!r) return NULL;
    memset(r, 0, sizeof(*r));
    r->type = type;
    if (task->parent) ((redisReply *)task->parent->obj)->element[task->idx] = r;
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    char *copy = arena_alloc(task->privdata, len + 1);
    redisReply *r = copy ? new_object(task, task->type) : NULL;
    if (!r) return NULL;
    memcpy(copy, str, len);
    copy[len] = '\0';
    r->str = copy;
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
    if (elements > REPLY_MAX_ELEMENTS) return NULL; /* the reader reports out of memory */
    redisReply **table = NULL;
    if (elements > 0) {
        table = arena_alloc(task->privdata, (size_t)elements * sizeof(*table));
        if (!table) return NULL;
        memset(table, 0, (size_t)elements * sizeof(*table));
    }
    redisReply *r = new_object(task, REDIS_REPLY_ARRAY);
    if (!r) return NULL;
    r->element = table;
    r->elements = elements > 0 ? (size_t)elements : 0;
    return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = new_object(task, REDIS_REPLY_INTEGER);
    if (r) r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    return new_object(task, REDIS_REPLY_NIL); /* "$-1" and "*-1": not the task's type */
}

/* hiredis frees a partial reply this way when the reader fails: the arena keeps it until
 * the reader is freed. */
static void free_object(void *reply)
{
    (void)reply;
}

static redisReplyObjectFunctions arena_functions = {
    create_string, create_array, create_integer, create_nil, free_object,
};

redisReader *reply_reader_new(void)
{
    struct arena *arena = malloc(sizeof(*arena));
    if (!arena) return NULL;
    arena->current = block_new(FIRST_BLOCK_BYTES, NULL);
    redisReader *reader = arena->current ? redisReaderCreateWithFunctions(&arena_functions) : NULL;
    if (!reader) {
        free(arena->current);
        free(arena);
        return NULL;
    }
    reader->privdata = arena;
    reader->maxbuf = KEPT_INPUT_BYTES;
    return reader;
}

void reply_reader_release(redisReader *reader)
{
    arena_reset(reader->privdata);
}

void reply_reader_free(redisReader *reader)
{
    struct arena *arena = reader->privdata;
    redisReaderFree(reader);
    arena_reset(arena);
    free(arena->current);
    free(arena);
}
