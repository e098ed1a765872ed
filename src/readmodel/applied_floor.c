/* applied_floor.c - see applied_floor.h. */
#include "readmodel/applied_floor.h"

#include <stddef.h>

void applied_floor_init(struct applied_floor *floor)
{
    atomic_init(&floor->checkpoint, 0);
}

void applied_floor_raise(struct applied_floor *floor, int64_t checkpoint)
{
    if (!floor) return;
    int64_t now = atomic_load(&floor->checkpoint);
    while (checkpoint > now && !atomic_compare_exchange_weak(&floor->checkpoint, &now, checkpoint))
        ;
}

void applied_floor_cap(struct applied_floor *floor, int64_t before, int64_t head)
{
    if (floor && head < before) atomic_compare_exchange_strong(&floor->checkpoint, &before, head);
}

int64_t applied_floor_get(const struct applied_floor *floor)
{
    return floor ? atomic_load(&floor->checkpoint) : 0;
}
