/* page.c - see page.h. */
#include "query/page.h"

#include <limits.h>
#include <string.h>

#include "common/digits.h"
#include "domain/view.h"
#include "readmodel/confirmed_run.h"
#include "readmodel/layout.h"

int64_t page_generation(const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_NIL) return 0;
    /* As catalogd writes it: a leading zero ("007", by hand) would name another key prefix in
       the by-sku script, which builds it from the text. */
    int64_t gen;
    if (reply->type != REDIS_REPLY_STRING ||
        digits_parse_canonical(reply->str, reply->len, 0, GENERATION_MAX, &gen) < 0)
        return -1;
    return gen;
}

int64_t page_pointer(const redisReply *pointer, const char *run_id, int *confirmed)
{
    if (pointer->type != REDIS_REPLY_ARRAY || pointer->elements != 2) return -1;
    const redisReply *run = pointer->element[1];
    if (run->type != REDIS_REPLY_STRING && run->type != REDIS_REPLY_NIL) return -1;
    *confirmed = confirmed_run_is(run, run_id);
    return page_generation(pointer->element[0]);
}

int64_t page_checkpoint(const redisReply *reply)
{
    int64_t checkpoint;
    if (reply->type != REDIS_REPLY_STRING ||
        digits_parse_canonical(reply->str, reply->len, 0, INT64_MAX, &checkpoint) < 0)
        return -1;
    return checkpoint;
}

int64_t page_checked_generation(int64_t gen, int confirmed, const redisReply *checkpoint,
                                int64_t read_in, int64_t floor)
{
    if (gen < 0 || !checkpoint ||
        (checkpoint->type != REDIS_REPLY_STRING && checkpoint->type != REDIS_REPLY_NIL))
        return -1;
    if (gen == 0) return 0;
    if (gen == read_in) {
        int64_t at = page_checkpoint(checkpoint);
        if (at < 0) return 0;
        if (at < floor) return PAGE_UNCONFIRMED;
    }
    return confirmed ? gen : PAGE_UNCONFIRMED;
}

int64_t page_live_generation(const redisReply *pointer, const redisReply *checkpoint,
                             int64_t read_in, const char *run_id, int64_t floor)
{
    int confirmed = 0;
    int64_t gen = page_pointer(pointer, run_id, &confirmed);
    return page_checked_generation(gen, confirmed, checkpoint, read_in, floor);
}

int page_read(const redisReply *reply, int sets, struct page_reply *out)
{
    memset(out, 0, sizeof(*out));
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 + 2 * (size_t)sets ||
        reply->element[0]->type != REDIS_REPLY_ARRAY ||
        (reply->element[1]->type != REDIS_REPLY_STRING &&
         reply->element[1]->type != REDIS_REPLY_NIL))
        return -1;
    out->pointer = reply->element[0];
    out->checkpoint = reply->element[1];
    for (int set = 0; set < sets; set++) {
        const redisReply *views = reply->element[2 + 2 * set], *size = reply->element[3 + 2 * set];
        /* Counts past what a sum can hold are no set Redis has: a reply read wrong. */
        if (views->type != REDIS_REPLY_ARRAY || size->type != REDIS_REPLY_INTEGER ||
            size->integer < 0 || size->integer > LLONG_MAX - out->total)
            return -1;
        out->views[set] = views;
        out->sizes[set] = size->integer;
        out->total += size->integer;
    }
    return 0;
}

/* The id of a member of a view set, or NULL when it is not a view. */
static const char *member_id(const redisReply *member)
{
    if (member->type != REDIS_REPLY_STRING) return NULL;
    return view_id(member->str, member->len);
}

int page_merge(const struct page_reply *page, int limit, struct slice *out, int *more,
               size_t *second_taken)
{
    static const redisReply none = {.type = REDIS_REPLY_ARRAY};
    const redisReply *a = page->views[0], *b = page->views[1] ? page->views[1] : &none;
    size_t i = 0, j = 0;
    int count = 0;
    while (count < limit && (i < a->elements || j < b->elements)) {
        const char *id_a = i < a->elements ? member_id(a->element[i]) : NULL;
        const char *id_b = j < b->elements ? member_id(b->element[j]) : NULL;
        if ((i < a->elements && !id_a) || (j < b->elements && !id_b)) return -1;
        const redisReply *next;
        if (id_a && (!id_b || memcmp(id_a, id_b, UUID_TEXT_LEN) < 0))
            next = a->element[i++];
        else
            next = b->element[j++];
        out[count++] = (struct slice){next->str, next->len};
    }
    *more = i < a->elements || j < b->elements;
    *second_taken = j;
    return count;
}

size_t page_body_size(const struct slice *views, size_t count)
{
    size_t size = 2 + (count > 0 ? count - 1 : 0); /* brackets and commas */
    for (size_t i = 0; i < count; i++)
        size += views[i].len;
    return size;
}

size_t page_write_body(const struct slice *views, size_t count, char *out)
{
    size_t used = 0;
    out[used++] = '[';
    for (size_t i = 0; i < count; i++) {
        if (i > 0) out[used++] = ',';
        memcpy(out + used, views[i].p, views[i].len);
        used += views[i].len;
    }
    out[used++] = ']';
    return used;
}
