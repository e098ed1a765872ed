/* page.c - see page.h. */
#include "query/page.h"

#include <string.h>

int page_read_ids(const redisReply *reply, const redisReply **ids, long long *total)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_ARRAY ||
        reply->element[1]->type != REDIS_REPLY_INTEGER || reply->element[1]->integer < 0)
        return -1;
    *ids = reply->element[0];
    *total = reply->element[1]->integer;
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
