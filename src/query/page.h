/* page.h - the pure parts of reading the read model: the generation named by a reply, a
 * catalog page's replies and its body, assembled from the stored views byte for byte. No I/O,
 * so the fuzzer calls these very functions. */
#ifndef CATALOGD_PAGE_H
#define CATALOGD_PAGE_H

#include <hiredis.h>
#include <stddef.h>
#include <stdint.h>

/* The generation named by a reply to GET {prefix}:gen: its number, 0 for nil (there is
 * none), or -1 when the reply is not a generation. */
int64_t page_generation(const redisReply *reply);

/* Step 1's reply, EXEC of GET {prefix}:gen, ZRANGEBYLEX and ZCARD: [generation, [id...],
 * total]. Returns 0 with "*generation" (a string or nil reply), "*ids" (an array reply) and
 * "*total", or -1 when the reply has another shape. */
int page_read_ids(const redisReply *reply, const redisReply **generation, const redisReply **ids,
                  long long *total);

/* Step 2's reply, MGET of the views: the bytes page_write_body needs for the JSON array of
 * its string elements (nils, products deleted in between, are left out). 0 when "views" is
 * not an array. */
size_t page_body_size(const redisReply *views);

/* Writes "[view,view,...]" into "out" (page_body_size bytes) and returns its length. */
size_t page_write_body(const redisReply *views, char *out);

#endif
