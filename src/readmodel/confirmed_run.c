/* confirmed_run.c - see confirmed_run.h. */
#include "readmodel/confirmed_run.h"

#include <string.h>

int confirmed_run_parse(const char *text, size_t len, char out[RUN_ID_LEN + 1])
{
    static const char field[] = "run_id:";
    const size_t field_len = sizeof(field) - 1;
    for (size_t at = 0; at + field_len + RUN_ID_LEN <= len; at++) {
        if ((at > 0 && text[at - 1] != '\n') || memcmp(text + at, field, field_len) != 0) continue;
        const char *id = text + at + field_len;
        for (size_t i = 0; i < RUN_ID_LEN; i++)
            if (!strchr("0123456789abcdef", id[i]) || id[i] == '\0') return -1;
        size_t end = at + field_len + RUN_ID_LEN;
        if (end < len && text[end] != '\r' && text[end] != '\n') return -1;
        memcpy(out, id, RUN_ID_LEN);
        out[RUN_ID_LEN] = '\0';
        return 0;
    }
    return -1;
}

const char *run_id_refusal(const char *error)
{
    return strstr(error, "NOPERM") ? RUN_ID_REFUSED : "Redis refused the session";
}

int confirmed_run_is(const redisReply *reply, const char *run_id)
{
    return run_id[0] && reply->type == REDIS_REPLY_STRING && reply->len == RUN_ID_LEN &&
           memcmp(reply->str, run_id, RUN_ID_LEN) == 0;
}
