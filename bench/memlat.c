/* memlat.c - what one dependent memory load costs on this machine, by working-set size: the
 * physical bound under a catalog page that walks a sorted set too big for the CPU's caches.
 *
 * Built and run by bench/run.sh (cc -O2 bench/memlat.c), pinned to the CPU that Redis runs
 * on. For each size it fills that many bytes with 64-byte cells linked into one random cycle
 * (Sattolo's shuffle: every cell once, in an order no prefetcher can guess), then follows the
 * links: each load's address is the previous load's value, as in a walk from a skiplist node
 * to the next and from a node to its member's string. Transparent huge pages are refused for
 * the buffer (MADV_NOHUGEPAGE), as Redis refuses them for its heap (disable-thp), so a miss
 * pays the same page walks that Redis's would.
 *
 * Prints one JSON line: {"type": "memlat", "ns_per_load": {"<bytes>": ns, ...}}. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define CELL           64 /* one cache line: no two links share one */
#define LOADS_PER_SIZE (4u << 20)

static const size_t SIZES[] = {32u << 10, 256u << 10, 2u << 20,  8u << 20,
                               32u << 20, 128u << 20, 512u << 20};

struct cell {
    struct cell *next;
    char pad[CELL - sizeof(struct cell *)];
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* xorshift64*: a shuffle needs no better randomness, and rand()'s 31 bits are too few for the
 * largest sizes' cell counts. */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

/* Links "n" cells into one cycle through every cell, in random order. */
static void link_cycle(struct cell *cells, size_t n, uint64_t *state)
{
    size_t *order = malloc(n * sizeof(*order));
    if (!order) exit(1);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) { /* Sattolo: j < i, so the result is one cycle */
        size_t j = next_random(state) % i, t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        cells[order[i]].next = &cells[order[(i + 1) % n]];
    free(order);
}

/* Nanoseconds per load of a walk of "loads" links from "start"; the end cell is returned
 * through "end" so that the walk cannot be optimised away. */
static double walk(struct cell *start, unsigned loads, struct cell **end)
{
    struct cell *at = start;
    double t0 = now_ns();
    for (unsigned i = 0; i < loads; i++)
        at = at->next;
    double t1 = now_ns();
    *end = at;
    return (t1 - t0) / loads;
}

int main(void)
{
    uint64_t state = 88172645463325252ull;
    uintptr_t sink = 0;
    printf("{\"type\": \"memlat\", \"ns_per_load\": {");
    for (size_t s = 0; s < sizeof(SIZES) / sizeof(SIZES[0]); s++) {
        size_t n = SIZES[s] / CELL;
        struct cell *cells =
            mmap(NULL, SIZES[s], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (cells == MAP_FAILED) return 1;
        madvise(cells, SIZES[s], MADV_NOHUGEPAGE);
        link_cycle(cells, n, &state);
        struct cell *end;
        walk(cells, n < LOADS_PER_SIZE ? n : LOADS_PER_SIZE, &end); /* warm: caches, TLB */
        double ns = walk(end, LOADS_PER_SIZE, &end);
        sink += (uintptr_t)end;
        printf("%s\"%zu\": %.2f", s ? ", " : "", SIZES[s], ns);
        munmap(cells, SIZES[s]);
    }
    printf("}}\n");
    return sink == 1; /* never: keeps the walks' results alive */
}
