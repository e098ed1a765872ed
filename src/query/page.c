/* page.c - see page.h. */
#include "query/page.h"

#include <string.h>

#include "common/digits.h"

int64_t page_generation(const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_NIL) return 0;
    if (reply->type != REDIS_REPLY_STRING || reply->len == 0 || reply->len >= DIGITS_U64_MAX)
        return -1;
    int64_t gen = 0;
    for (size_t i = 0; i < reply->len; i++) {
        if (reply->str[i] < '0' || reply->str[i] > '9') return -1;
        gen = gen * 10 + (reply->str[i] - '0');
    }
    return gen;
}

int page_read_ids(const redisReply *reply, const redisReply **generation, const redisReply **ids,
                  long long *total)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        (reply->element[0]->type != REDIS_REPLY_STRING &&
         reply->element[0]->type != REDIS_REPLY_NIL) ||
        reply->element[1]->type != REDIS_REPLY_ARRAY ||
        reply->element[2]->type != REDIS_REPLY_INTEGER || reply->element[2]->integer < 0)
        return -1;
    *generation = reply->element[0];
    *ids = reply->element[1];
    *total = reply->element[2]->integer;
    return 0;
}

size_t page_body_size(const redisReply *views)
{
    if (views->type != REDIS_REPLY_ARRAY) return 0;
    size_t size = 2; /* [ and ] */
    for (size_t i = 0; i < views->elements; i++)
        if (views->element[i]->type == REDIS_REPLY_STRING) size += views->element[i]->len + 1;
    return size;
}

size_t page_write_body(const redisReply *views, char *out)
{
    size_t used = 0;
    out[used++] = '[';
    for (size_t i = 0; i < views->elements; i++) {
        const redisReply *view = views->element[i];
        if (view->type != REDIS_REPLY_STRING) continue;
        if (used > 1) out[used++] = ',';
        memcpy(out + used, view->str, view->len);
        used += view->len;
    }
    out[used++] = ']';
    return used;
}
