/* reply_reader.h - the hiredis reply reader of the query path: replies built in an arena, and
 * absurd arrays refused.
 *
 * hiredis' own constructors make two or three mallocs per reply element (the reply, its
 * string, an array's table): a catalog page of 100 views cost some 200 malloc/free pairs.
 * These build every object of a reply in one arena owned by the reader instead, reset once
 * the reply has been used. A reply therefore lives until reply_reader_release: callbacks copy
 * what they keep (as they already must).
 *
 * hiredis 0.14 allocates an array's element table as soon as it reads the header, so 13
 * bytes ("*2147483647\r\n") would ask for 16 GiB. Redis is trusted, but a reply is still
 * input: this reader fails such a reply ("out of memory"), which the client treats as a
 * broken connection. */
#ifndef CATALOGD_REPLY_READER_H
#define CATALOGD_REPLY_READER_H

#include <hiredis.h>

#define REPLY_MAX_ELEMENTS 65536 /* a catalog page is at most 1002 */

/* Like redisReaderCreate; NULL when out of memory. */
redisReader *reply_reader_new(void);

/* The reply redisReaderGetReply last returned has been used: its memory is reused for the
 * next. Never freeReplyObject a reply of this reader. */
void reply_reader_release(redisReader *reader);

/* redisReaderFree, and the arena. */
void reply_reader_free(redisReader *reader);

#endif
