/* reply_reader.c - hiredis' own reply constructors with createArray bounded. */
#include "query/reply_reader.h"

#include <pthread.h>

static redisReplyObjectFunctions bounded_functions;
static void *(*hiredis_create_array)(const redisReadTask *task, int elements);
static pthread_once_t bounded_once = PTHREAD_ONCE_INIT;
static const redisReplyObjectFunctions *hiredis_functions;

static void *create_array_bounded(const redisReadTask *task, int elements)
{
    if (elements > REPLY_MAX_ELEMENTS) return NULL; /* the reader reports out of memory */
    return hiredis_create_array(task, elements);
}

static void make_bounded_functions(void)
{
    bounded_functions = *hiredis_functions;
    hiredis_create_array = bounded_functions.createArray;
    bounded_functions.createArray = create_array_bounded;
}

redisReader *reply_reader_new(void)
{
    redisReader *reader = redisReaderCreate();
    if (!reader) return NULL;
    hiredis_functions = reader->fn; /* hiredis' defaults: the same for every reader */
    pthread_once(&bounded_once, make_bounded_functions);
    reader->fn = &bounded_functions;
    return reader;
}
