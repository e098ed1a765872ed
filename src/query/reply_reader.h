/* reply_reader.h - a hiredis reply reader that refuses absurd arrays. hiredis 0.14 allocates
 * an array's element table as soon as it reads the header, so 13 bytes ("*2147483647\r\n")
 * ask for 16 GiB. Redis is trusted, but a reply is still input: this reader fails such a
 * reply ("out of memory"), which the client treats as a broken connection. */
#ifndef CATALOGD_REPLY_READER_H
#define CATALOGD_REPLY_READER_H

#include <hiredis.h>

#define REPLY_MAX_ELEMENTS 65536 /* a catalog page is at most 1002 */

/* Like redisReaderCreate; free with redisReaderFree. NULL when out of memory. */
redisReader *reply_reader_new(void);

#endif
