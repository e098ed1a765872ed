/* page.h - the pure parts of a catalog page: reading Redis' replies and assembling the body
 * from the stored views, byte for byte. No I/O, so the fuzzer calls these very functions. */
#ifndef CATALOGD_PAGE_H
#define CATALOGD_PAGE_H

#include <hiredis.h>
#include <stddef.h>

/* Step 1's reply, EXEC of ZRANGEBYLEX and ZCARD: [[id...], total]. Returns 0 with "*ids"
 * (an array reply) and "*total", or -1 when the reply has another shape. */
int page_read_ids(const redisReply *reply, const redisReply **ids, long long *total);

/* Step 2's reply, MGET of the views: the bytes page_write_body needs for the JSON array of
 * its string elements (nils, products deleted in between, are left out). 0 when "views" is
 * not an array. */
size_t page_body_size(const redisReply *views);

/* Writes "[view,view,...]" into "out" (page_body_size bytes) and returns its length. */
size_t page_write_body(const redisReply *views, char *out);

#endif
