/* page.h - the pure parts of reading the read model: the generation named by a reply, a
 * catalog page's reply and its body, assembled from the stored views byte for byte. No I/O,
 * so the fuzzer calls these very functions. */
#ifndef CATALOGD_PAGE_H
#define CATALOGD_PAGE_H

#include <hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "common/slice.h"

#define CATALOG_PAGE_MAX 1000 /* views in a page, at most */

/* The generation named by a reply to GET {prefix}:gen-v2: its number, 0 for nil (there is
 * none), or -1 when the reply is not a generation. */
int64_t page_generation(const redisReply *reply);

/* What a generation check found in a generation that is there but that Redis is not known
 * to hold whole: not confirmed in this Redis process (confirmed_run.h), or at a checkpoint
 * below the floor (applied_floor.h). The read answers 503, never that state. */
#define PAGE_UNCONFIRMED (-2)

/* The checkpoint a reply to GET of a generation's checkpoint names, or -1 when it names none
 * (nil, or not a checkpoint as catalogd writes it: the projector rebuilds over it). */
int64_t page_checkpoint(const redisReply *reply);

/* The generation a read made in generation "read_in" finds, from the replies to MGET
 * {prefix}:gen-v2 {prefix}:confirmed-run ("pointer") and to GET of read_in's checkpoint
 * ("checkpoint"), sent in that order in one transaction to the Redis whose run id is "run_id",
 * with "floor" the applied floor in read_in when the read was sent: as page_generation, but
 * 0 (none) when the pointer names read_in and read_in has no checkpoint, and
 * PAGE_UNCONFIRMED when it names one that Redis was not confirmed in, or read_in at a
 * checkpoint below "floor". Every generation has a checkpoint from its first write on, so a
 * pointer written by hand to a generation that is not there names none: queries answer 503,
 * not an empty catalog or a 404. -1 when the replies are not such. */
int64_t page_live_generation(const redisReply *pointer, const redisReply *checkpoint,
                             int64_t read_in, const char *run_id, int64_t floor);

/* The same rule in two steps, for replies that come one by one: page_pointer reads the MGET
 * reply (-1 when it is not such; "*confirmed" 1 when the run id is "run_id"'s), and
 * page_checked_generation adds "checkpoint", the GET reply (NULL: none came). */
int64_t page_pointer(const redisReply *pointer, const char *run_id, int *confirmed);
int64_t page_checked_generation(int64_t gen, int confirmed, const redisReply *checkpoint,
                                int64_t read_in, int64_t floor);

/* A page's reply, EXEC of the generation check (the MGET and the GET above), then per view
 * set read (the in-stock views, then for the whole catalog the out-of-stock views) its
 * ZRANGEBYLEX and its ZCARD. */
struct page_reply {
    const redisReply *pointer;    /* the MGET reply, an array */
    const redisReply *checkpoint; /* a string or nil reply */
    const redisReply *views[2];   /* array replies, in id order; views[1] NULL for one set */
    long long sizes[2];           /* the sets' sizes */
    long long total;              /* the sets' sizes added up */
};

/* Reads EXEC's reply for "sets" (1 or 2) view sets. Returns 0, or -1 when it has another
 * shape. */
int page_read(const redisReply *reply, int sets, struct page_reply *out);

/* Merges the sets' views by id into "out": at most "limit" of them, "*more" set when views
 * are left, "*second_taken" how many of them came from views[1]. Returns how many, or -1
 * when a member is not a view (layout.h: every member starts with its id). */
int page_merge(const struct page_reply *page, int limit, struct slice *out, int *more,
               size_t *second_taken);

/* The bytes page_write_body needs for the JSON array of "count" views. */
size_t page_body_size(const struct slice *views, size_t count);

/* Writes "[view,view,...]" into "out" (page_body_size bytes) and returns its length. */
size_t page_write_body(const struct slice *views, size_t count, char *out);

#endif
