/* hotpaths.c - a callgrind driver for catalogd's pure hot paths (no I/O, no Redis, no SQLite).
 *
 * Built and run by bench/run.sh (cc -O2 -g -D_GNU_SOURCE -Isrc bench/hotpaths.c, every .c of
 * src/domain, -ljansson -lm; then valgrind --tool=callgrind --toggle-collect=hot_MODE).
 * -D_GNU_SOURCE as in the Makefile: view.c calls memmem, which needs it to be declared.
 *
 * Modes (argv[1]); each runs N iterations (argv[2]) of one path inside one function that is
 * never inlined, so --toggle-collect=<function> counts exactly the loop and nothing of the
 * setup, the dynamic linker or exit:
 *   create  hot_create: product_parse_create (parse + validate) of a create body, then
 *           product_apply_draft and view_encode (what the writer does per POST, minus the
 *           id/clock, which are fixed here so every iteration does the same work)
 *   encode  hot_encode: view_encode of a fixed product
 *   cursor  hot_cursor: cursor_decode of a fixed cursor
 * Every iteration's result feeds a checksum that is printed, so nothing is optimised away;
 * a failing parse or decode exits 1 (the driver would otherwise measure an error path). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/cursor.h"
#include "domain/product.h"
#include "domain/view.h"

#define NOINLINE __attribute__((noinline))

static const char CREATE_BODY[] =
    "{\"sku\":\"GAMER-PC-01\",\"name\":\"PC Gamer Ultra\",\"price\":5000.00,\"stock\":5}";
static const char FIXED_ID[] = "01a22251-dd91-7000-8f9f-c3d82b98a444";
static const char FIXED_TS[] = "2026-11-28T13:22:00.209Z";

static void fixed_product(struct product *p)
{
    memset(p, 0, sizeof(*p));
    memcpy(p->id, FIXED_ID, sizeof(FIXED_ID));
    memcpy(p->created_at, FIXED_TS, sizeof(FIXED_TS));
    memcpy(p->updated_at, FIXED_TS, sizeof(FIXED_TS));
    p->version = 1;
}

NOINLINE uint64_t hot_create(long n);
NOINLINE uint64_t hot_encode(long n);
NOINLINE uint64_t hot_cursor(long n);

NOINLINE uint64_t hot_create(long n)
{
    static char out[VIEW_MAX];
    uint64_t sum = 0;
    for (long i = 0; i < n; i++) {
        struct product_draft draft;
        struct validation v;
        struct product p;
        if (product_parse_create(CREATE_BODY, sizeof(CREATE_BODY) - 1, &draft, &v) != BODY_OK) {
            fprintf(stderr, "hotpaths: create body rejected: %s\n", v.detail);
            exit(1);
        }
        fixed_product(&p);
        product_apply_draft(&p, &draft);
        sum += view_encode(&p, out, sizeof(out));
    }
    return sum;
}

NOINLINE uint64_t hot_encode(long n)
{
    static char out[VIEW_MAX];
    struct product p;
    struct product_draft draft;
    struct validation v;
    if (product_parse_create(CREATE_BODY, sizeof(CREATE_BODY) - 1, &draft, &v) != BODY_OK) exit(1);
    fixed_product(&p);
    product_apply_draft(&p, &draft);
    uint64_t sum = 0;
    for (long i = 0; i < n; i++) {
        p.version = 1 + (i & 7); /* keep the compiler from hoisting the call out of the loop */
        sum += view_encode(&p, out, sizeof(out));
    }
    return sum;
}

NOINLINE uint64_t hot_cursor(long n)
{
    char cursor[CURSOR_LEN + 1];
    char id[UUID_TEXT_LEN + 1];
    if (cursor_encode(FIXED_ID, cursor) < 0) exit(1);
    uint64_t sum = 0;
    for (long i = 0; i < n; i++) {
        if (cursor_decode(cursor, CURSOR_LEN, id) < 0) {
            fprintf(stderr, "hotpaths: cursor rejected\n");
            exit(1);
        }
        sum += (unsigned char)id[(size_t)i % UUID_TEXT_LEN];
    }
    return sum;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s create|encode|cursor N\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    uint64_t sum;
    if (strcmp(argv[1], "create") == 0)
        sum = hot_create(n);
    else if (strcmp(argv[1], "encode") == 0)
        sum = hot_encode(n);
    else if (strcmp(argv[1], "cursor") == 0)
        sum = hot_cursor(n);
    else {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    printf("%s n=%ld checksum=%llu\n", argv[1], n, (unsigned long long)sum);
    return 0;
}
